"""A read-only SPI / quad-SPI NOR flash reader with the same burst request/response interface as
the other weight memories: a request ``(addr, length)`` becomes one flash transaction (select,
command, 24-bit address, dummy clocks, ``length`` bytes), and the bytes come out as a stream.

Supported read commands (SPI mode 0, MSB first, 3-byte addresses, so the first 16 MB):

========  =======================  ======  ==========  ========================
command   name                     dummy   data lanes  note
========  =======================  ======  ==========  ========================
``0x03``  Read                     0       1           slow parts limit its SCK
``0x0B``  Fast Read                8       1
``0x6B``  Fast Read Quad Output    8       4           needs the flash's QE bit
========  =======================  ======  ==========  ========================

The flash clock runs at the system clock divided by ``2 * divisor``; it pauses (low) when the
output stream is full, which SPI flashes allow, so nothing is lost under backpressure. On ECP5
the flash clock pin is the configuration clock, reachable only through the ``USRMCLK``
primitive; it is instantiated (driven by ``sck``) when ``usrmclk`` says so.
"""

from __future__ import annotations

from amaranth import Cat, Const, Instance, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .burst_reader import burst_request_layout

__all__ = ["READ_COMMANDS", "SPIFlashReader", "is_ecp5"]

#: command -> (dummy clocks, data lanes)
READ_COMMANDS = {0x03: (0, 1), 0x0B: (8, 1), 0x6B: (8, 4)}

ADDR_WIDTH = 24


def is_ecp5(platform) -> bool:
    """Whether ``platform`` is an Amaranth Lattice ECP5 platform."""
    return getattr(platform, "family", None) == "ecp5"


class SPIFlashReader(wiring.Component):
    """Reads bursts of bytes from an SPI or quad-SPI NOR flash.

    Parameters
    ----------
    command : int
        The read command, one of :data:`READ_COMMANDS` (``0x03``, ``0x0B``, ``0x6B``).
    divisor : int
        Half the flash clock period in system clock cycles (1: SCK at half the system clock).
    max_burst : int
        The longest request, in bytes.
    deselect_cycles : int
        System clock cycles the flash stays deselected between transactions (its tSHSL).
    usrmclk : bool or None
        Drive the flash clock through ECP5's ``USRMCLK`` primitive as well as the ``sck`` port;
        ``None`` (default) does so when elaborated for an ECP5 platform.

    Members
    -------
    cmd : In(stream.Signature(burst_request_layout(24, max_burst)))
        Read ``length`` (1 to ``max_burst``) bytes from byte address ``addr``.
    rsp : Out(stream.Signature(8))
        The bytes, in address order.
    sck : Out(1)
        Flash clock (idle low).
    cs : Out(1)
        High while the flash is selected (the board's ``cs`` resource inverts it to CS#).
    dq_o, dq_oe, dq_i : Out(4), Out(4), In(4)
        IO0 (COPI / DI), IO1 (CIPO / DO), IO2 (WP#), IO3 (HOLD#). In single-lane modes IO2 and
        IO3 are driven high and only ``dq_i[1]`` is read; in the quad data phase every lane is
        released (``dq_oe`` low).
    """

    def __init__(self, *, command: int = 0x0B, divisor: int = 1, max_burst: int = 256,
                 deselect_cycles: int = 4, usrmclk: bool | None = None):
        if command not in READ_COMMANDS:
            known = ", ".join(f"{c:#04x}" for c in READ_COMMANDS)
            raise ValueError(f"command must be one of {known}, not {command!r}")
        for name, value in (("divisor", divisor), ("max_burst", max_burst),
                            ("deselect_cycles", deselect_cycles)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not (usrmclk is None or isinstance(usrmclk, bool)):
            raise TypeError(f"usrmclk must be None, True or False, not {usrmclk!r}")
        self.command, self.divisor, self.max_burst = command, divisor, max_burst
        self.deselect_cycles = deselect_cycles
        self.dummy, self.lanes = READ_COMMANDS[command]
        self._usrmclk = usrmclk
        super().__init__({
            "cmd": In(stream.Signature(burst_request_layout(ADDR_WIDTH, max_burst))),
            "rsp": Out(stream.Signature(8)),
            "sck": Out(1),
            "cs": Out(1),
            # Reset values keep WP# and HOLD# driven high before the first transaction.
            "dq_o": Out(4, init=0b1100),
            "dq_oe": Out(4, init=0b1101),
            "dq_i": In(4),
        })

    def elaborate(self, platform):
        m = Module()
        usrmclk = self._usrmclk if self._usrmclk is not None else is_ecp5(platform)
        if usrmclk:
            m.submodules.usrmclk = Instance("USRMCLK", i_USRMCLKI=self.sck, i_USRMCLKTS=Const(0))

        lanes = self.lanes
        beats = 8 // lanes                          # SCK cycles per data byte
        out_bits = 8 + ADDR_WIDTH                   # command and address, on IO0
        count = Signal(range(max(out_bits, self.dummy, self.max_burst * beats) + 1))
        length = Signal.like(self.cmd.payload.length)
        shift_out = Signal(out_bits)
        shift_in = Signal(8)
        beat = Signal(range(beats))
        # Every SCK edge (and the end of the deselect time) happens on a tick.
        timer = Signal(range(max(self.divisor, self.deselect_cycles)))
        tick = Signal()
        m.d.comb += tick.eq(timer == 0)
        with m.If(~tick):
            m.d.sync += timer.eq(timer - 1)

        # Outside the quad data phase: IO0 driven (command/address), IO1 read, WP#/HOLD# high.
        single_oe, single_o = 0b1101, 0b1100
        sample = self.dq_i[1] if lanes == 1 else self.dq_i
        shifted = Cat(sample, shift_in[:8 - lanes])   # MSB first: earlier bits move up
        byte_done = beat == beats - 1

        with m.If(self.rsp.valid & self.rsp.ready):
            m.d.sync += self.rsp.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    word = Cat(self.cmd.payload.addr, Const(self.command, 8))
                    m.d.sync += [
                        self.cs.eq(1),
                        self.dq_oe.eq(single_oe),
                        self.dq_o.eq(single_o | word[-1]),
                        shift_out.eq(word << 1),
                        count.eq(out_bits),
                        length.eq(self.cmd.payload.length),
                        beat.eq(0),
                        timer.eq(self.divisor - 1),
                    ]
                    m.next = "SHIFT"
            with m.State("SHIFT"):
                with m.If(tick):
                    m.d.sync += timer.eq(self.divisor - 1)
                    with m.If(~self.sck):
                        m.d.sync += [self.sck.eq(1), count.eq(count - 1)]
                    with m.Else():
                        m.d.sync += self.sck.eq(0)
                        with m.If(count == 0):
                            if lanes == 4:
                                m.d.sync += self.dq_oe.eq(0)
                            if self.dummy:
                                m.d.sync += count.eq(self.dummy)
                                m.next = "DUMMY"
                            else:
                                m.d.sync += count.eq(length * beats)
                                m.next = "DATA"
                        with m.Else():
                            m.d.sync += [self.dq_o[0].eq(shift_out[-1]),
                                         shift_out.eq(shift_out << 1)]
            with m.State("DUMMY"):
                with m.If(tick):
                    m.d.sync += timer.eq(self.divisor - 1)
                    with m.If(~self.sck):
                        m.d.sync += [self.sck.eq(1), count.eq(count - 1)]
                    with m.Else():
                        m.d.sync += self.sck.eq(0)
                        with m.If(count == 0):
                            m.d.sync += count.eq(length * beats)
                            m.next = "DATA"
            with m.State("DATA"):
                with m.If(tick):
                    with m.If(~self.sck):
                        # Sample on the rising edge; hold SCK low while the last byte waits.
                        with m.If(~(byte_done & self.rsp.valid)):
                            m.d.sync += [
                                self.sck.eq(1), count.eq(count - 1),
                                timer.eq(self.divisor - 1),
                                shift_in.eq(shifted),
                                beat.eq(Mux(byte_done, 0, beat + 1)),
                            ]
                            with m.If(byte_done):
                                m.d.sync += [self.rsp.payload.eq(shifted), self.rsp.valid.eq(1)]
                    with m.Else():
                        m.d.sync += [self.sck.eq(0), timer.eq(self.divisor - 1)]
                        with m.If(count == 0):
                            m.next = "FINISH"
            with m.State("FINISH"):
                # CS# rises a half SCK period after the last falling edge, never with it.
                with m.If(tick):
                    m.d.sync += [self.cs.eq(0), self.dq_oe.eq(single_oe), self.dq_o.eq(single_o),
                                 timer.eq(self.deselect_cycles - 1)]
                    m.next = "DESELECT"
            with m.State("DESELECT"):
                with m.If(tick):
                    m.next = "IDLE"
        return m
