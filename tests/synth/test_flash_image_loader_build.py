# amaranth: UnusedElaboratable=no
"""Board build of the power-up weight load (slow, synth): on the iCEBreaker, quad-SPI flash
-> FlashImageLoader (header check, CRC-32) -> the four SB_SPRAM256KA, with crc_ok and the
parity of the SPRAM read back on the two LEDs. Through yosys, nextpnr and icepack; prints
utilization and Fmax."""

from __future__ import annotations

import json

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.lib import io, wiring

from accel.environ import environ
from accel.hw.flash_image_loader import FlashImageLoader
from accel.hw.spi_flash import SPIFlashReader
from accel.hw.spram import SPRAMBurstMemory
from accel.synth.boards import get_board
from accel.synth.build import tool_environment
from accel.synth.weight_image import flash_offset

pytestmark = [pytest.mark.slow, pytest.mark.synth]


class _Top(Elaboratable):
    def elaborate(self, platform):
        m = Module()
        m.submodules.flash = flash = SPIFlashReader(command=0x6B, max_burst=64)
        pins = platform.request("spi_flash_4x", 0, dir="-")
        m.submodules.sck = sck = io.Buffer("o", pins.clk)
        m.submodules.cs = cs = io.Buffer("o", pins.cs)
        m.d.comb += [sck.o.eq(flash.sck), cs.o.eq(flash.cs)]
        for k in range(4):
            m.submodules[f"dq{k}"] = buf = io.Buffer("io", pins.dq[k])
            m.d.comb += [buf.o.eq(flash.dq_o[k]), buf.oe.eq(flash.dq_oe[k]),
                         flash.dq_i[k].eq(buf.i)]
        m.submodules.loader = loader = FlashImageLoader(
            flash_offset=flash_offset("icebreaker"), word_width=32, dst_addr_width=15,
            max_length=4 * 32768, max_burst=64)
        m.submodules.spram = spram = SPRAMBurstMemory(width=32, depth=32768, max_burst=16)
        wiring.connect(m, loader.mem_cmd, flash.cmd)
        wiring.connect(m, flash.rsp, loader.mem_rsp)
        wiring.connect(m, loader.writes, spram.writes)
        # After the load, read the SPRAM back (a parity of the words on the second LED), or
        # synthesis removes the never-read memory.
        addr = Signal(15)
        parity = Signal()
        m.d.comb += [spram.cmd.valid.eq(loader.done & loader.crc_ok),
                     spram.cmd.payload.addr.eq(addr), spram.cmd.payload.length.eq(16),
                     spram.rsp.ready.eq(1)]
        with m.If(spram.cmd.valid & spram.cmd.ready):
            m.d.sync += addr.eq(addr + 16)
        with m.If(spram.rsp.valid):
            m.d.sync += parity.eq(parity ^ spram.rsp.payload.xor())
        leds = [loader.done & loader.crc_ok, parity]
        for i, value in enumerate(leds):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(value)
        return m


def test_icebreaker_build(tmp_path):
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    board = get_board("icebreaker")
    with environ({**tool_environment(board), "AMARANTH_USE_YOSYS": "builtin"}):
        ICEBreakerPlatform().build(_Top(), name="top", build_dir=str(tmp_path),
                                   do_program=False,
                                   script_after_synth="tee -q -o stat.json stat -json",
                                   nextpnr_opts="--report report.json --seed 1")
    report = json.loads((tmp_path / "report.json").read_text())
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    fmax = {clk: round(v["achieved"], 1) for clk, v in report["fmax"].items()}
    util = {bel: v["used"] for bel, v in report["utilization"].items() if v["used"]}
    print(f"icebreaker: cells {cells}\nutilization {util}\nfmax {fmax}")
    assert cells.get("SB_SPRAM256KA") == 4, cells
    assert min(fmax.values()) > board.clock_mhz, fmax
