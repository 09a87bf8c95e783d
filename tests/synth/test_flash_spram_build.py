# amaranth: UnusedElaboratable=no
"""Board builds of the flash path (slow, synth): on the iCEBreaker, quad-SPI flash -> SPRAM
loader -> weight stream with the four SB_SPRAM256KA; on the ULX3S-85F, the SPI flash reader
with its clock through USRMCLK. Through yosys, nextpnr and the packer; prints utilization and
Fmax."""

from __future__ import annotations

import json

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.lib import io, wiring

from accel.environ import environ
from accel.hw.burst_reader import BurstReader
from accel.hw.spi_flash import SPIFlashReader
from accel.hw.spram import SPRAMBurstMemory
from accel.hw.weight_loader import WeightLoader
from accel.synth.boards import get_board
from accel.synth.build import tool_environment

pytestmark = [pytest.mark.slow, pytest.mark.synth]

IMAGE_OFFSET = 0x100000          # weights after the bitstream, 1 MB into the flash


class _Top(Elaboratable):
    def __init__(self, family):
        self.family = family

    def elaborate(self, platform):
        m = Module()
        quad = self.family == "ice40"
        m.submodules.flash = flash = SPIFlashReader(command=0x6B if quad else 0x0B, max_burst=64)
        if quad:
            pins = platform.request("spi_flash_4x", 0, dir="-")
            m.submodules.sck = sck = io.Buffer("o", pins.clk)
            m.d.comb += sck.o.eq(flash.sck)
            lanes = [pins.dq[k] for k in range(4)]
        else:  # ULX3S: no clock pin, it goes through USRMCLK; wp/hold are separate pins
            pins = platform.request("spi_flash", 0, dir="-")
            lanes = [pins.copi, pins.cipo, pins.wp, pins.hold]
        m.submodules.cs = cs = io.Buffer("o", pins.cs)
        m.d.comb += cs.o.eq(flash.cs)
        for k, lane in enumerate(lanes):
            if quad:
                m.submodules[f"dq{k}"] = buf = io.Buffer("io", lane)
                m.d.comb += [buf.o.eq(flash.dq_o[k]), buf.oe.eq(flash.dq_oe[k]),
                             flash.dq_i[k].eq(buf.i)]
            elif k == 1:
                m.submodules.cipo = buf = io.Buffer("i", lane)
                m.d.comb += flash.dq_i[1].eq(buf.i)
            else:
                # wp/hold are PinsN: the buffer inverts, so drive the asserted sense
                m.submodules[f"dq{k}"] = buf = io.Buffer("o", lane)
                m.d.comb += buf.o.eq(flash.dq_o[k] if k == 0 else 0)
        m.submodules.load_reader = load_reader = BurstReader(
            word_width=8, addr_width=24, count_width=18, max_burst=64, fifo_depth=128)
        wiring.connect(m, load_reader.mem_cmd, flash.cmd)
        wiring.connect(m, flash.rsp, load_reader.mem_rsp)
        checksum = Signal(16)
        if quad:
            m.submodules.loader = loader = WeightLoader(src_width=8, dst_width=32,
                                                        dst_addr_width=15)
            m.submodules.spram = spram = SPRAMBurstMemory(width=32, depth=32768, max_burst=16)
            m.submodules.reader = reader = BurstReader(word_width=32, addr_width=15,
                                                       count_width=16, max_burst=16,
                                                       fifo_depth=32)
            wiring.connect(m, load_reader.o, loader.i)
            wiring.connect(m, loader.writes, spram.writes)
            wiring.connect(m, reader.mem_cmd, spram.cmd)
            wiring.connect(m, spram.rsp, reader.mem_rsp)
            loaded = Signal()
            with m.If(loader.done):
                m.d.sync += loaded.eq(1)
            m.d.comb += [load_reader.frames.valid.eq(1),
                         load_reader.frames.payload.base.eq(IMAGE_OFFSET),
                         load_reader.frames.payload.count.eq(4 * 32768),
                         reader.frames.valid.eq(loaded), reader.frames.payload.count.eq(32767),
                         reader.o.ready.eq(1)]
            with m.If(reader.o.valid):
                m.d.sync += checksum.eq(checksum ^ reader.o.payload.data[:16]
                                        ^ reader.o.payload.data[16:])
        else:
            m.d.comb += [load_reader.frames.valid.eq(1),
                         load_reader.frames.payload.base.eq(IMAGE_OFFSET),
                         load_reader.frames.payload.count.eq(4096), load_reader.o.ready.eq(1)]
            with m.If(load_reader.o.valid):
                m.d.sync += checksum.eq(checksum.rotate_left(1) ^ load_reader.o.payload.data)
        for i in range(2):   # the iCEBreaker has two LEDs
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(checksum[i::2].xor())
        return m


@pytest.mark.parametrize(("board_name", "family"), [("icebreaker", "ice40"),
                                                    ("ulx3s-85f", "ecp5")])
def test_flash_build(tmp_path, board_name, family):
    board = get_board(board_name)
    if family == "ice40":
        from amaranth_boards.icebreaker import ICEBreakerPlatform as Platform
    else:
        from amaranth_boards.ulx3s import ULX3S_85F_Platform as Platform
    with environ({**tool_environment(board), "AMARANTH_USE_YOSYS": "builtin"}):
        Platform().build(_Top(family), name="top", build_dir=str(tmp_path), do_program=False,
                         script_after_synth="tee -q -o stat.json stat -json",
                         nextpnr_opts="--report report.json --seed 1")
    report = json.loads((tmp_path / "report.json").read_text())
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    fmax = {clk: round(v["achieved"], 1) for clk, v in report["fmax"].items()}
    util = {bel: v["used"] for bel, v in report["utilization"].items() if v["used"]}
    print(f"{board_name}: cells {cells}\nutilization {util}\nfmax {fmax}")
    if family == "ice40":
        assert cells.get("SB_SPRAM256KA") == 4, cells
    else:
        assert cells.get("USRMCLK") == 1, cells
    assert min(fmax.values()) > board.clock_mhz, fmax
