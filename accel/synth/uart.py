"""A minimal 8N1 UART: a receiver and a transmitter with stream interfaces.

Both count ``divisor`` clock cycles per bit (``divisor = clock / baud``, at least 4). The
receiver synchronizes ``rx`` through two flip-flops, finds the start bit's falling edge, checks
that the line is still low in the middle of the start bit (a shorter low glitch is ignored),
samples every bit in its middle and delivers a byte when the stop bit is high. A byte whose stop
bit is low (a framing error, or a break) is dropped and the receiver waits for the line to go
high before it looks for the next start bit, so that it never starts inside a byte. A byte that
arrives while ``o`` is not ready is dropped and flagged in ``overrun`` (sticky). The
transmitter sends ``i``'s bytes LSB first with one start and one stop bit.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import cdc, stream, wiring
from amaranth.lib.wiring import In, Out


def _check_divisor(divisor: object) -> int:
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 4:
        raise ValueError(f"divisor must be an integer of at least 4, not {divisor!r}")
    return divisor


class UartRx(wiring.Component):
    """8N1 receiver.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    rx : In(1)
        The serial input (idle high), asynchronous.
    o : Out(stream.Signature(8))
        Received bytes.
    overrun : Out(1)
        Set (and kept) when a byte was dropped because ``o`` was not ready.
    """

    def __init__(self, *, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = cdc.FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self.divisor))
        bits = Signal(range(8))
        shift = Signal(8)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("idle"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)  # to the start bit's middle
                    m.next = "start"
            with m.State("start"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    m.next = "idle"  # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                    m.next = "data"
            with m.State("data"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bits.eq(bits + 1),
                                 shift.eq(Cat(shift[1:], rx))]
                    with m.If(bits == 7):
                        m.next = "stop"
            with m.State("stop"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    m.next = "idle"
                with m.Else():
                    m.next = "framing"
            with m.State("framing"):  # no stop bit: drop the byte, wait for the idle line
                with m.If(rx):
                    m.next = "idle"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1)
        The serial output (idle high).
    """

    def __init__(self, *, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        frame = Signal(10, init=0x3FF)  # stop, data[7:0], start; shifted out LSB first
        left = Signal(range(11))
        # Ready in the stop bit's last cycle too, so that back-to-back bytes have no idle cycle.
        m.d.comb += [self.tx.eq(frame[0]),
                     self.i.ready.eq((left == 0) | ((left == 1) & (timer == 0)))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [frame.eq(Cat(0, self.i.payload, 1)), left.eq(10),
                         timer.eq(self.divisor - 1)]
        with m.Elif(left != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [frame.eq(Cat(frame[1:], 1)), left.eq(left - 1),
                             timer.eq(self.divisor - 1)]
        return m
