"""A fork: one stream read by several consumers (a tensor that two branches of the network
read).

Each consumer takes each beat when it is ready, independently of the others; the beat is
retired from the input once every consumer has taken it, so the input advances only when
all consumers have the beat. No output's ``valid`` depends on another output's ``ready``
(a flag per output records that it has taken the current beat), so a fork never closes a
combinational loop, even when its outputs meet again in the same join.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import check_int, pixel_layout

__all__ = ["Fork"]


class Fork(wiring.Component):
    """A broadcast of ``i`` to ``outputs`` consumers.

    Parameters
    ----------
    outputs : int
        Consumers, >= 2.
    lanes, bits : int
        The payload, :func:`~accel.hw.layouts.pixel_layout` ``(lanes, bits)``.

    Members
    -------
    i : In(stream.Signature(pixel_layout(lanes, bits)))
    o : Out(stream.Signature(pixel_layout(lanes, bits))).array(outputs)
        The same beats, in order, on every output.

    Attributes
    ----------
    latency : int
        0: a beat is offered on every output in the cycle it is offered on ``i``.
    """

    def __init__(self, *, outputs: int, lanes: int, bits: int = 8) -> None:
        self.outputs = check_int("outputs", outputs, 2)
        self.lanes = check_int("lanes", lanes, 1)
        self.bits = check_int("bits", bits, 1)
        self.latency = 0
        layout = pixel_layout(self.lanes, self.bits)
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout)).array(self.outputs)})

    def elaborate(self, platform):
        m = Module()
        taken = [Signal(name=f"taken{n}") for n in range(self.outputs)]
        done = [t | o.ready for t, o in zip(taken, self.o, strict=True)]
        retire = self.i.valid
        for d in done:
            retire = retire & d
        m.d.comb += self.i.ready.eq(retire)
        for t, o, d in zip(taken, self.o, done, strict=True):
            m.d.comb += [o.payload.eq(self.i.payload), o.valid.eq(self.i.valid & ~t)]
            with m.If(retire):
                m.d.sync += t.eq(0)
            with m.Elif(self.i.valid & d):
                m.d.sync += t.eq(1)
        return m
