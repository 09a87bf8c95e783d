"""``accel sim MODEL --board B`` run through the CLI for tests that check a reference model's
outputs: the run's JSON report and the hardware's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from accel.cli import main


def sim_on_board(model: Path, inputs: Path, *, board: str, array: str, images: int,
                 build_dir: Path, out: Path) -> tuple[dict, np.ndarray]:
    """Simulate the first ``images`` of ``inputs`` through ``model`` as planned for ``board``;
    assert it exits 0 and is bit-exact with the golden model on every layer; return the JSON
    report and the outputs (``-o``'s ``output``)."""
    result = CliRunner().invoke(main, [
        "sim", str(model), "--board", board, "--array", array, "--input", str(inputs),
        "--images", str(images), "--build-dir", str(build_dir), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["bit_exact"] and r["mismatches"] == 0, r["first_mismatch"]
    with np.load(out) as data:
        return r, data["output"]
