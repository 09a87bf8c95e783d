"""The hostile-input suite: >= 1,000 generated bad or hostile inputs, every one refused with one
line naming the file (or option), exit status 2, no traceback, within its deadline and under a
1 GB address space, and nothing written outside the test's directory (see
:mod:`tests.hostile.harness` for the judgement and :mod:`tests.hostile.cases` for the classes).

Each class runs in one worker process. The fast tier runs a seeded sample of each class; the
slow tier (``-m slow``) runs more mutations with other seeds.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from . import cases as gen
from .harness import ROOT, problems, run_cases


def _snapshot() -> dict:
    """Names, sizes and mtimes of the repository's example files (which the cases read)."""
    out = {}
    for path in sorted((ROOT / "examples").rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path)] = (st.st_size, st.st_mtime_ns)
    return out


def _run(tmp_path, cases):
    before = _snapshot()
    outside = sorted(p.name for p in tmp_path.parent.iterdir())
    results = run_cases(cases, tmp_path)
    bad = problems(cases, results)
    assert not bad, f"{len(bad)} of {len(cases)} cases mishandled:\n" + "\n".join(bad[:25])
    assert _snapshot() == before, "an example file was changed"
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == outside, \
        "something was written next to the test's directory"
    return results


CLASSES = {
    # class: (generator, fast count, slow count)
    "spec": (gen.spec_cases, 300, 1500),
    "keras": (gen.keras_cases, 120, 600),
    "tflite": (gen.tflite_cases, 300, 1500),
    "npz": (gen.npz_cases, 150, 800),
    "npy": (gen.npy_cases, 100, 500),
}


def _seed(name: str, tier: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{name}/{tier}".encode()).digest()[:4], "little")


@pytest.mark.parametrize("name", list(CLASSES))
def test_hostile_files(tmp_path, name):
    generator, count, _ = CLASSES[name]
    seed = _seed(name, "fast")
    cases = generator(tmp_path, np.random.default_rng(seed), count)
    assert len(cases) >= count
    _run(tmp_path, cases)


def test_hostile_options_and_outputs(tmp_path):
    cases = gen.option_cases(tmp_path)
    assert len(cases) >= 80
    _run(tmp_path, cases)
    assert not (tmp_path / "gen").exists() and not (tmp_path / "b").exists()


def test_suite_size():
    """The fast tier alone generates more than 1,000 cases."""
    import tempfile
    from pathlib import Path

    total = 0
    with tempfile.TemporaryDirectory() as d:
        for name, (generator, count, _) in CLASSES.items():
            work = Path(d) / name
            work.mkdir()
            total += len(generator(work, np.random.default_rng(0), count))
        work = Path(d) / "options"
        work.mkdir()
        total += len(gen.option_cases(work))
    assert total >= 1000, total


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CLASSES))
def test_hostile_files_slow(tmp_path, name):
    generator, _, count = CLASSES[name]
    cases = generator(tmp_path, np.random.default_rng(_seed(name, "slow")), count)
    _run(tmp_path, cases)
