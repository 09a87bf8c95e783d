"""Our side of the generated LiteDRAM core (:mod:`accel.synth.litedram`): the native user port
as an Amaranth signature, a reader that serves burst requests from it, and the init sequencer
that a core without a CPU needs (it plays the BIOS on the core's Wishbone CSR port).
"""

from __future__ import annotations

from amaranth import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .burst_reader import burst_request_layout

__all__ = ["LiteDRAMReader", "SDRAMInit", "native_port_signature", "wishbone_signature"]


def native_port_signature(addr_width: int, data_width: int) -> wiring.Signature:
    """LiteDRAM's native user port, from the user's side: ``cmd`` (one word per command, ``we``
    for a write), ``wdata`` (data and byte enables) and ``rdata`` (read words, in order).
    The Verilog ports ``user_port_<name>_cmd_valid`` etc. connect to it one to one."""
    return wiring.Signature({
        "cmd": Out(stream.Signature(data.StructLayout({"addr": unsigned(addr_width), "we": 1}))),
        "wdata": Out(stream.Signature(data.StructLayout({"data": unsigned(data_width),
                                                         "we": unsigned(data_width // 8)}))),
        "rdata": In(stream.Signature(data_width)),
    })


def wishbone_signature() -> wiring.Signature:
    """The core's 32-bit classic Wishbone CSR port (``wb_ctrl_*``), from the master's side;
    ``adr`` is a word address (CSR byte address / 4)."""
    return wiring.Signature({
        "adr": Out(30), "dat_w": Out(32), "dat_r": In(32), "sel": Out(4), "cyc": Out(1),
        "stb": Out(1), "we": Out(1), "ack": In(1), "err": In(1), "cti": Out(3), "bte": Out(2),
    })


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


class LiteDRAMReader(wiring.Component):
    """Serves burst read requests from a LiteDRAM native port: a request ``(addr, length)``
    becomes ``length`` read commands to consecutive words, and the words come back in order.

    The native port takes one command per word and pipelines them, so a burst within a row
    streams at up to a word per cycle. ``rsp`` passes ``rdata`` through, so its consumer must
    have room for every word it asks for (the :class:`~accel.hw.burst_reader.BurstReader`
    does), or the controller stalls on the port.

    Parameters
    ----------
    addr_width : int
        Word address bits of the port (25 for 32 MB of 16-bit words).
    data_width : int
        Port data width in bits.
    max_burst : int
        The longest request, in words.

    Members
    -------
    cmd : In(stream.Signature(burst_request_layout(addr_width, max_burst)))
    rsp : Out(stream.Signature(data_width))
    port : Out(native_port_signature(addr_width, data_width))
    """

    def __init__(self, *, addr_width: int = 25, data_width: int = 16, max_burst: int = 64):
        for name, value in (("addr_width", addr_width), ("data_width", data_width),
                            ("max_burst", max_burst)):
            _positive(name, value)
        if data_width % 8:
            raise ValueError(f"data_width must be a multiple of 8, not {data_width!r}")
        self.addr_width, self.data_width, self.max_burst = addr_width, data_width, max_burst
        super().__init__({
            "cmd": In(stream.Signature(burst_request_layout(addr_width, max_burst))),
            "rsp": Out(stream.Signature(data_width)),
            "port": Out(native_port_signature(addr_width, data_width)),
        })

    def elaborate(self, platform):
        m = Module()
        addr = Signal(self.addr_width)
        left = Signal(range(self.max_burst + 1))
        m.d.comb += [
            self.cmd.ready.eq(left == 0),
            self.port.cmd.valid.eq(left != 0),
            self.port.cmd.payload.addr.eq(addr),
            self.port.cmd.payload.we.eq(0),
            self.port.wdata.valid.eq(0),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [addr.eq(self.cmd.payload.addr), left.eq(self.cmd.payload.length)]
        with m.If(self.port.cmd.valid & self.port.cmd.ready):
            m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
        m.d.comb += [
            self.rsp.valid.eq(self.port.rdata.valid),
            self.rsp.payload.eq(self.port.rdata.payload),
            self.port.rdata.ready.eq(self.rsp.ready),
        ]
        return m


class SDRAMInit(wiring.Component):
    """Runs a LiteDRAM core's SDRAM init sequence over its Wishbone CSR port, then gives the
    DFI to the controller and sets ``init_done``, as the LiteX BIOS does with a CPU.

    Parameters
    ----------
    steps : sequence of :class:`accel.synth.litedram.InitStep`
        The sequence (``GeneratedCore.init_sequence``).
    csr : dict
        CSR name -> byte address (``GeneratedCore.csr``).
    clk_freq : float
        The core's clock in Hz.
    power_up_us : float
        The wait with CKE high before the first command (SDR parts ask for 100-200 us).

    A ``delay`` step waits that many cycles (each CSR write already takes several), except the
    first after CKE goes high, which lasts at least ``power_up_us``.

    Members
    -------
    bus : Out(wishbone_signature())
    done : Out(1)
        High once ``ddrctrl_init_done`` is written; the core's user port works from then.
    """

    def __init__(self, *, steps, csr: dict, clk_freq: float, power_up_us: float = 200.0):
        if not isinstance(clk_freq, (int, float)) or clk_freq <= 0:
            raise ValueError(f"clk_freq must be a positive frequency in Hz, not {clk_freq!r}")
        if not isinstance(power_up_us, (int, float)) or power_up_us < 0:
            raise ValueError(f"power_up_us must be a non-negative number, not {power_up_us!r}")
        names = {"address": "sdram_dfii_pi0_address", "baddress": "sdram_dfii_pi0_baddress",
                 "control": "sdram_dfii_control", "command": "sdram_dfii_pi0_command"}
        needed = [*names.values(), "sdram_dfii_pi0_command_issue", "ddrctrl_init_done"]
        missing = [name for name in needed if name not in csr]
        if missing:
            raise ValueError(f"csr lacks {', '.join(missing)}")
        power_up = int(-(-power_up_us * clk_freq // 1e6))
        program = []            # ("write", byte address, value) or ("wait", cycles)
        powered = False
        for step in steps:
            if step.kind == "delay":
                cycles = step.value
                if not powered:
                    cycles, powered = max(cycles, power_up), True
                program.append(("wait", cycles))
            elif step.kind in names:
                program.append(("write", csr[names[step.kind]], step.value))
                if step.kind == "command":
                    program.append(("write", csr["sdram_dfii_pi0_command_issue"], 1))
            else:
                raise ValueError(f"unknown init step kind {step.kind!r}")
        program.append(("write", csr["sdram_dfii_control"], 0x01))   # DFII_CONTROL_SEL
        program.append(("write", csr["ddrctrl_init_done"], 1))
        self.program = tuple(program)
        super().__init__({"bus": Out(wishbone_signature()), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        longest = max([op[1] for op in self.program if op[0] == "wait"], default=1)
        timer = Signal(range(longest + 1))
        m.d.comb += [self.bus.sel.eq(0b1111), self.bus.we.eq(1)]
        with m.FSM():
            for index, op in enumerate(self.program):
                following = f"step{index + 1}" if index + 1 < len(self.program) else "DONE"
                if op[0] == "write":
                    _, address, value = op
                    with m.State(f"step{index}"):
                        m.d.comb += [self.bus.cyc.eq(1), self.bus.stb.eq(1),
                                     self.bus.adr.eq(address >> 2), self.bus.dat_w.eq(value)]
                        with m.If(self.bus.ack | self.bus.err):
                            m.next = f"gap{index}"
                    # One idle cycle ends the bus cycle before the next begins.
                    with m.State(f"gap{index}"):
                        m.next = following
                else:
                    with m.State(f"step{index}"):
                        with m.If(timer == op[1]):
                            m.d.sync += timer.eq(0)
                            m.next = following
                        with m.Else():
                            m.d.sync += timer.eq(timer + 1)
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
        return m
