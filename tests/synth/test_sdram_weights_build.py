# amaranth: UnusedElaboratable=no
"""The ULX3S-85F weight memory for real (slow, synth): the PLL makes the system clock and a
phase-shifted SDRAM clock (EHXPLLL CLKOS), ULX3SWeightMemory loads the weight image from flash
into SDRAM at power-up, and a small consumer reads the whole image back through
``mem_cmd``/``mem_rsp`` (a BurstReader) over and over, checking each pass's CRC-32 against
the CRC of what was written; LEDs show ready and error (2, 3), a good pass, a bad pass
(0, 1) and a heartbeat per pass (4), and the UART answers status requests (0xA7 -> 0x5C,
status). Through yosys, nextpnr and ecppack; prints utilization, Fmax and the tool seconds."""

from __future__ import annotations

import json
import os
import time

import pytest
from amaranth import Cat, Elaboratable, Module, Signal
from amaranth.lib import io, wiring

from accel.environ import environ
from accel.host.link import SYNC_STATUS, SYNC_STATUS_OUT
from accel.hw.burst_reader import BurstReader
from accel.hw.crc32 import CRC32
from accel.synth import litedram
from accel.synth.boards import get_board
from accel.synth.build import tool_environment
from accel.synth.pll import PllClock
from accel.synth.sdram_weights import ULX3SWeightMemory, weight_memory_clock
from accel.synth.uart import UartRx, UartTx
from accel.synth.weight_image import FLASH_LAYOUTS, HEADER_BYTES

from .litedram_marks import needs_litedram

pytestmark = [pytest.mark.slow, pytest.mark.synth,
              needs_litedram]

#: The system clock asked of the PLL (MHz): the fastest this top met at nextpnr seed 1 (the
#: measurements are in bench/sdram_weights.md); ACCEL_SDRAM_WEIGHTS_MHZ overrides it.
CLOCK_MHZ = float(os.environ.get("ACCEL_SDRAM_WEIGHTS_MHZ", "85"))
BAUD = 115_200


class _CheckTop(Elaboratable):
    def __init__(self, core, config):
        self.core, self.config = core, config

    def elaborate(self, platform):
        m = Module()
        layout = FLASH_LAYOUTS["ulx3s-85f"]
        m.submodules.memory = memory = ULX3SWeightMemory(
            core=self.core, config=self.config, max_length=layout.capacity - HEADER_BYTES)
        m.submodules.reader = reader = BurstReader(word_width=16, addr_width=25, count_width=24,
                                                   max_burst=64, fifo_depth=256)
        wiring.connect(m, reader.mem_cmd, memory.mem_cmd)
        wiring.connect(m, memory.mem_rsp, reader.mem_rsp)

        # The whole image, pass after pass; each pass's CRC-32 against the written one. The
        # words are registered first: the FIFO's block RAM output is slow to the CRC's XORs.
        m.submodules.crc = crc = CRC32(data_width=16)
        first = Signal(init=1)
        good, bad, beat = Signal(), Signal(), Signal()
        word, valid, last = Signal(16), Signal(), Signal()
        m.d.sync += [word.eq(reader.o.payload.data), valid.eq(reader.o.valid),
                     last.eq(reader.o.valid & reader.o.payload.last)]
        m.d.comb += [reader.frames.valid.eq(memory.ready),
                     reader.frames.payload.base.eq(0),
                     reader.frames.payload.count.eq(memory.length[1:]),
                     reader.o.ready.eq(1),
                     crc.i.valid.eq(valid), crc.i.payload.eq(word), crc.clear.eq(first)]
        m.d.sync += first.eq(0)
        check = Signal()
        with m.If(last):
            m.d.sync += [check.eq(1), first.eq(1), beat.eq(~beat)]
        with m.If(check):
            m.d.sync += check.eq(0)
            with m.If(crc.crc == memory.crc):
                m.d.sync += good.eq(1)
            with m.Else():
                m.d.sync += bad.eq(1)

        # LEDs 2 and 3 are the memory's ready and error.
        for index, value in zip((0, 1, 4), (good, bad, beat), strict=True):
            m.submodules[f"led{index}"] = led = io.Buffer("o", platform.request("led", index,
                                                                                dir="-"))
            m.d.comb += led.o.eq(value)

        # Status over the UART: 0xA7 -> 0x5C, the memory's status with bit 6 (a good pass) and
        # bit 7 (a bad pass).
        divisor = round(CLOCK_MHZ * 1e6 / BAUD)
        m.submodules.rx = rx = UartRx(divisor=divisor)
        m.submodules.tx = tx = UartTx(divisor=divisor)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [rx.rx.eq(rx_buf.i), tx_buf.o.eq(tx.tx), rx.o.ready.eq(1)]
        status = Signal(8)
        with m.FSM():
            with m.State("wait"):
                with m.If(rx.o.valid & (rx.o.payload == SYNC_STATUS)):
                    m.d.sync += status.eq(Cat(memory.status[:6], good, bad))
                    m.next = "head"
            with m.State("head"):
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(SYNC_STATUS_OUT)]
                with m.If(tx.i.ready):
                    m.next = "status"
            with m.State("status"):
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(status)]
                with m.If(tx.i.ready):
                    m.next = "wait"
        return m


def test_ulx3s_weight_memory_bitstream(tmp_path):
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    board = get_board("ulx3s-85f")
    pll, config = weight_memory_clock(CLOCK_MHZ)
    core = litedram.generate_core(config)
    top = PllClock(pll=pll, top=_CheckTop(core, config), phase_domain="sdram")
    env = {**tool_environment(board), "AMARANTH_USE_YOSYS": "builtin"}
    start = time.perf_counter()
    with environ(env):
        ULX3S_85F_Platform().build(
            top, name="top", build_dir=str(tmp_path), do_program=False,
            script_after_synth="tee -q -o stat.json stat -json",
            nextpnr_opts="--report report.json --seed 1")
    seconds = time.perf_counter() - start
    report = json.loads((tmp_path / "report.json").read_text())
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    fmax = {clk: round(v["achieved"], 1) for clk, v in report["fmax"].items()}
    util = {bel: v["used"] for bel, v in report["utilization"].items() if v["used"]}
    print(f"pll {pll.to_json()} phase {pll.phase_deg} deg\ncells {cells}\n"
          f"utilization {util}\nfmax {fmax}\nbuild {seconds:.1f} s")
    assert (tmp_path / "top.bit").stat().st_size > 100_000
    assert cells.get("EHXPLLL") == 1 and cells.get("ODDRX1F") == 1, cells
    assert cells.get("USRMCLK") == 1, cells
    # One clock is timed: the system clock (the phase-shifted one only drives the ODDRX1F).
    assert len(fmax) == 1 and min(fmax.values()) >= pll.output_mhz, fmax
