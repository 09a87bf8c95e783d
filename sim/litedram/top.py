"""A self-checking top around the ``--sim`` LiteDRAM core (its SDRAM model and DFI timing
checker in place of the PHY): our init sequencer brings it up over the Wishbone CSR port, a
writer fills ``fill_words`` words with a pattern through the native port, then two frames are
read back through LiteDRAMReader + BurstReader, the first without output stalls (for the burst
efficiency), the second with LFSR stalls, and compared with the pattern in hardware.

Used by ``tests/synth/test_litedram_sim.py`` (Verilator through cocotb, ``sim/litedram/bench.py``).
"""

from __future__ import annotations

from amaranth import ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from accel.hw.burst_reader import BurstReader
from accel.hw.litedram_port import LiteDRAMReader, SDRAMInit

__all__ = ["LiteDRAMSimTop", "pattern"]


def pattern(addr: int) -> int:
    """The word the writer stores at ``addr``."""
    return (addr * 40503 + 12345) & 0xFFFF


class LiteDRAMSimTop(wiring.Component):
    """Members: ``done``; ``errors`` (words that differ, or a misplaced ``last``);
    ``checked`` (words compared); ``init_cycles``, ``fill_cycles``, ``read_cycles`` (the first,
    unstalled frame: from its request to its last word); ``init_error`` (the core's)."""

    def __init__(self, core, *, fill_words: int, frames, port_name: str = "weights",
                 max_burst: int = 64, fifo_depth: int = 256):
        self.core = core
        self.fill_words = fill_words
        self.frames = tuple(frames)          # (base, count); the first is read without stalls
        self.port_name = port_name
        self.max_burst, self.fifo_depth = max_burst, fifo_depth
        super().__init__({
            "done": Out(1), "errors": Out(16), "checked": Out(32), "init_cycles": Out(32),
            "fill_cycles": Out(32), "read_cycles": Out(32), "init_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        core = self.core
        m.submodules.init = init = SDRAMInit(steps=core.init_sequence, csr=core.csr,
                                             clk_freq=1e8, power_up_us=0)
        m.submodules.port_reader = port_reader = LiteDRAMReader(
            addr_width=core.ports[f"user_port_{self.port_name}_cmd_addr"][1],
            data_width=16, max_burst=self.max_burst)
        m.submodules.reader = reader = BurstReader(
            word_width=16, addr_width=port_reader.addr_width, count_width=24,
            max_burst=self.max_burst, fifo_depth=self.fifo_depth)
        wiring.connect(m, reader.mem_cmd, port_reader.cmd)
        wiring.connect(m, port_reader.rsp, reader.mem_rsp)

        # The native port is shared: the writer has it until the fill is done.
        port = port_reader.port
        cmd_valid, cmd_we, cmd_addr = Signal(), Signal(), Signal(port_reader.addr_width)
        wdata_valid, wdata_data = Signal(), Signal(16)
        cmd_ready, wdata_ready, init_done = Signal(), Signal(), Signal()
        rdata_valid, rdata_data = Signal(), Signal(16)
        p = f"user_port_{self.port_name}"
        ports = {
            "i_clk": ClockSignal(), "i_sim_trace": Const(0), "o_init_done": init_done,
            "o_init_error": self.init_error,
            f"i_{p}_cmd_valid": cmd_valid, f"o_{p}_cmd_ready": cmd_ready,
            f"i_{p}_cmd_we": cmd_we, f"i_{p}_cmd_addr": cmd_addr,
            f"i_{p}_wdata_valid": wdata_valid, f"o_{p}_wdata_ready": wdata_ready,
            f"i_{p}_wdata_we": Const(0b11, 2), f"i_{p}_wdata_data": wdata_data,
            f"o_{p}_rdata_valid": rdata_valid, f"i_{p}_rdata_ready": port.rdata.ready,
            f"o_{p}_rdata_data": rdata_data,
            "i_wb_ctrl_adr": init.bus.adr, "i_wb_ctrl_dat_w": init.bus.dat_w,
            "o_wb_ctrl_dat_r": init.bus.dat_r, "i_wb_ctrl_sel": init.bus.sel,
            "i_wb_ctrl_cyc": init.bus.cyc, "i_wb_ctrl_stb": init.bus.stb,
            "i_wb_ctrl_we": init.bus.we, "o_wb_ctrl_ack": init.bus.ack,
            "o_wb_ctrl_err": init.bus.err, "i_wb_ctrl_cti": init.bus.cti,
            "i_wb_ctrl_bte": init.bus.bte,
        }
        m.submodules.core = Instance("litedram_core", **ports)
        m.d.comb += [port.rdata.valid.eq(rdata_valid), port.rdata.payload.eq(rdata_data)]

        filling = Signal()
        fill_addr = Signal(range(self.fill_words + 1))
        wcmd = Signal()                      # the write command went, its data is next
        m.d.comb += [
            cmd_valid.eq(Mux(filling, ~wcmd, port.cmd.valid)),
            cmd_we.eq(filling),
            cmd_addr.eq(Mux(filling, fill_addr, port.cmd.payload.addr)),
            port.cmd.ready.eq(~filling & cmd_ready),
            wdata_valid.eq(filling & wcmd),
            wdata_data.eq(fill_addr * 40503 + 12345),
        ]
        with m.If(filling & ~wcmd & cmd_ready):
            m.d.sync += wcmd.eq(1)
        with m.If(filling & wcmd & wdata_ready):
            m.d.sync += [wcmd.eq(0), fill_addr.eq(fill_addr + 1)]

        # Output stalls from a 16-bit LFSR (about one cycle in four) in the stalled frame.
        lfsr = Signal(16, init=0xACE1)
        m.d.sync += lfsr.eq(Mux(lfsr[0], (lfsr >> 1) ^ 0xB400, lfsr >> 1))
        stalls = Signal()
        m.d.comb += reader.o.ready.eq(~stalls | (lfsr[0:2] != 0))

        expect_addr = Signal(port_reader.addr_width)
        expect_left = Signal(24)
        timer = Signal(32)
        m.d.sync += timer.eq(timer + 1)
        with m.If(reader.o.valid & reader.o.ready):
            word = reader.o.payload
            bad = ((word.data != (expect_addr * 40503 + 12345)[:16])
                   | (word.last != (expect_left == 1)))
            m.d.sync += [self.checked.eq(self.checked + 1), expect_addr.eq(expect_addr + 1),
                         expect_left.eq(expect_left - 1)]
            with m.If(bad):
                m.d.sync += self.errors.eq(self.errors + 1)

        with m.FSM():
            with m.State("INIT"):
                with m.If(init.done & init_done):
                    m.d.sync += [self.init_cycles.eq(timer), filling.eq(1)]
                    m.next = "FILL"
            with m.State("FILL"):
                with m.If(fill_addr == self.fill_words):
                    m.d.sync += [filling.eq(0), self.fill_cycles.eq(timer - self.init_cycles)]
                    m.next = "FRAME0"
            for index, (base, count) in enumerate(self.frames):
                with m.State(f"FRAME{index}"):
                    m.d.comb += [reader.frames.valid.eq(1),
                                 reader.frames.payload.base.eq(base),
                                 reader.frames.payload.count.eq(count)]
                    with m.If(reader.frames.ready):
                        m.d.sync += [expect_addr.eq(base), expect_left.eq(count),
                                     stalls.eq(index > 0), timer.eq(0)]
                        m.next = f"WAIT{index}"
                with m.State(f"WAIT{index}"):
                    with m.If(reader.o.valid & reader.o.ready & reader.o.payload.last):
                        if index == 0:
                            m.d.sync += self.read_cycles.eq(timer + 1)
                        following = index + 1
                        m.next = (f"FRAME{following}" if following < len(self.frames)
                                  else "DONE")
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
        return m
