"""Running hostile cases and judging their results.

A case is refused correctly when the command exits with status 2, prints exactly one line on
stderr that starts ``accel: error:`` and names what was wrong (the file, or the option), shows
no traceback, finishes within its deadline and stays under the 1 GB address-space limit (an
``out of memory`` refusal is a failure: it means accel tried to allocate first). Cases whose
mutation may leave a valid file (a flipped weight byte) may also succeed with status 0.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 1 << 30


@dataclass
class Case:
    """One hostile input: a command line, what its error must name, whether success is OK."""

    id: str
    argv: list[str]
    names: tuple[str, ...]
    may_succeed: bool = False
    timeout: int = 20
    extra: dict = field(default_factory=dict)


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_cases(cases: list[Case], workdir: Path) -> list[dict]:
    """Run ``cases`` in one worker process (cwd ``workdir``, 1 GB address space)."""
    spec = workdir / "cases.json"
    out = workdir / "results.json"
    spec.write_text(json.dumps([{"id": c.id, "argv": c.argv, "timeout": c.timeout}
                                for c in cases]))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "HOME": str(workdir), "COLUMNS": "100"}
    budget = 60 + sum(c.timeout for c in cases)
    proc = subprocess.run([sys.executable, "-m", "tests.hostile.worker", str(spec), str(out)],
                          cwd=workdir, env=env, preexec_fn=_limit, capture_output=True,
                          text=True, timeout=budget)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def problems(cases: list[Case], results: list[dict]) -> list[str]:
    """What is wrong with each result (empty when every case was handled as promised)."""
    bad = []
    for case, r in zip(cases, results, strict=True):
        why = judge(case, r)
        if why:
            bad.append(f"{case.id}: {why} | argv {case.argv} | stderr {r.get('stderr', '')!r}"
                       f"{' | ' + r['exception'][-800:] if r.get('exception') else ''}")
    return bad


def judge(case: Case, r: dict) -> str | None:
    if r.get("timeout"):
        return f"no answer within {case.timeout} s"
    if r.get("exception"):
        return "an exception escaped"
    err = r["stderr"]
    if "Traceback" in err or "Traceback" in r["stdout"]:
        return "traceback"
    if r["exit_code"] == 0 and case.may_succeed:
        return None if err == "" else "status 0 with output on stderr"
    if r["exit_code"] != 2:
        return f"exit status {r['exit_code']}, 2 expected"
    lines = err.splitlines()
    if len(lines) != 1 or not lines[0].startswith("accel: error: "):
        return f"{len(lines)} lines on stderr, one 'accel: error:' line expected"
    if "out of memory" in err:
        return "ran out of memory instead of refusing first"
    if len(err) > 1200:
        return f"a {len(err)}-character message"
    if case.names and not any(name in err for name in case.names):
        return f"the message does not name {' or '.join(case.names)}"
    return None
