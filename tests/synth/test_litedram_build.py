# amaranth: UnusedElaboratable=no
"""The generated LiteDRAM core on the ULX3S-85F for real: a top with our SDRAMInit,
LiteDRAMReader and BurstReader, the core as an ``Instance`` on the board's raw SDRAM pins, and
the SDRAM clock from an ``ODDRX1F`` (the system clock inverted: a 180-degree phase, which a PLL
output will replace), through yosys, nextpnr and ecppack. Slow; needs LiteDRAM (see
``test_litedram.py``) and the YoWASP tools. Prints utilization and Fmax."""

from __future__ import annotations

import json

import pytest
from amaranth import ClockSignal, Const, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib import io, wiring

from accel.environ import environ
from accel.hw.burst_reader import BurstReader
from accel.hw.litedram_port import LiteDRAMReader, SDRAMInit
from accel.synth import litedram
from accel.synth.boards import get_board
from accel.synth.build import tool_environment

from .litedram_marks import needs_litedram

pytestmark = [pytest.mark.slow, pytest.mark.synth,
              needs_litedram]

CONFIG = litedram.SDRAMCoreConfig(sys_clk_freq=25e6)   # the board's oscillator, no PLL yet


class _Top(Elaboratable):
    def __init__(self, core):
        self.core = core

    def elaborate(self, platform):
        m = Module()
        core = self.core
        sdram = platform.request("sdram", 0, dir="-")
        m.submodules.init = init = SDRAMInit(steps=core.init_sequence, csr=core.csr,
                                             clk_freq=CONFIG.sys_clk_freq)
        m.submodules.port_reader = port_reader = LiteDRAMReader(max_burst=64)
        m.submodules.reader = reader = BurstReader(word_width=16, addr_width=25,
                                                   count_width=24, max_burst=64, fifo_depth=256)
        wiring.connect(m, reader.mem_cmd, port_reader.cmd)
        wiring.connect(m, port_reader.rsp, reader.mem_rsp)
        port, bus = port_reader.port, init.bus
        init_done = Signal()
        m.submodules.core = Instance(
            "litedram_core",
            i_clk=ClockSignal(), i_rst=ResetSignal(allow_reset_less=True),
            o_init_done=init_done,
            o_sdram_a=sdram.a.io, o_sdram_ba=sdram.ba.io, o_sdram_cas_n=sdram.cas.io,
            o_sdram_ras_n=sdram.ras.io, o_sdram_we_n=sdram.we.io, o_sdram_cs_n=sdram.cs.io,
            o_sdram_cke=sdram.clk_en.io, o_sdram_dm=sdram.dqm.io, io_sdram_dq=sdram.dq.io,
            i_user_port_weights_cmd_valid=port.cmd.valid,
            o_user_port_weights_cmd_ready=port.cmd.ready,
            i_user_port_weights_cmd_we=port.cmd.payload.we,
            i_user_port_weights_cmd_addr=port.cmd.payload.addr,
            i_user_port_weights_wdata_valid=port.wdata.valid,
            o_user_port_weights_wdata_ready=port.wdata.ready,
            i_user_port_weights_wdata_we=port.wdata.payload.we,
            i_user_port_weights_wdata_data=port.wdata.payload.data,
            o_user_port_weights_rdata_valid=port.rdata.valid,
            i_user_port_weights_rdata_ready=port.rdata.ready,
            o_user_port_weights_rdata_data=port.rdata.payload,
            i_wb_ctrl_adr=bus.adr, i_wb_ctrl_dat_w=bus.dat_w, o_wb_ctrl_dat_r=bus.dat_r,
            i_wb_ctrl_sel=bus.sel, i_wb_ctrl_cyc=bus.cyc, i_wb_ctrl_stb=bus.stb,
            i_wb_ctrl_we=bus.we, o_wb_ctrl_ack=bus.ack, o_wb_ctrl_err=bus.err,
            i_wb_ctrl_cti=bus.cti, i_wb_ctrl_bte=bus.bte)
        m.submodules.sdram_clk = Instance("ODDRX1F", i_SCLK=ClockSignal(), i_RST=Const(0),
                                          i_D0=Const(0), i_D1=Const(1), o_Q=sdram.clk.io)
        platform.add_file("litedram_core.v", core.verilog.read_text())
        # Read the whole SDRAM, frame after frame, into an XOR checksum on the LEDs.
        m.d.comb += [reader.frames.valid.eq(init.done & init_done),
                     reader.frames.payload.base.eq(0),
                     reader.frames.payload.count.eq((1 << 24) - 1),
                     reader.o.ready.eq(1)]
        checksum = Signal(16)
        with m.If(reader.o.valid):
            m.d.sync += checksum.eq(checksum ^ reader.o.payload.data)
        for i in range(8):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(checksum[i] ^ checksum[i + 8])
        return m


def test_ulx3s_bitstream(tmp_path):
    board = get_board("ulx3s-85f")
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    core = litedram.generate_core(CONFIG)
    env = {**tool_environment(board), "AMARANTH_USE_YOSYS": "builtin"}
    with environ(env):
        ULX3S_85F_Platform().build(
            _Top(core), name="top", build_dir=str(tmp_path), do_program=False,
            script_after_synth="tee -q -o stat.json stat -json",
            nextpnr_opts="--report report.json --seed 1")
    report = json.loads((tmp_path / "report.json").read_text())
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    fmax = {clk: round(v["achieved"], 1) for clk, v in report["fmax"].items()}
    util = {bel: v["used"] for bel, v in report["utilization"].items() if v["used"]}
    print(f"cells {cells}\nutilization {util}\nfmax {fmax}")
    assert (tmp_path / "top.bit").stat().st_size > 100_000
    assert cells.get("TRELLIS_IO", 0) >= 16 and cells.get("ODDRX1F") == 1, cells
    assert min(fmax.values()) > CONFIG.sys_clk_freq / 1e6, fmax
