"""Column accumulators: add up the array's k-tile outputs into one sum per output channel.

The array emits, per beat, ``C`` column sums over one k-tile of a window. The beats of one
(pixel, f-tile) arrive consecutively, tagged ``first`` (k-tile 0) and ``last`` (k-tile
``Kt - 1``); :class:`ColumnAccumulator` keeps one register per column, restarts it after
``last`` and emits the ``C`` totals on ``last`` as a channel-group word (lane ``c`` is output
channel ``ft * C + c``), which is the requantizer's input. One beat per cycle in; the output
register is refilled in the cycle it drains, so it never throttles the array unless the
requantizer stalls.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan.blocks import AccumulatorPlan
from .layouts import check_int, pixel_layout


def accumulate_in_layout(*, cols: int, acc_bits: int) -> data.StructLayout:
    """An array output beat with its framing: ``y`` (``cols`` sums), ``first``, ``last``,
    ``frame_last``."""
    return data.StructLayout({
        "y": data.ArrayLayout(signed(acc_bits), cols),
        "first": 1,
        "last": 1,
        "frame_last": 1,
    })


class ColumnAccumulator(wiring.Component):
    """Sums consecutive array beats from ``first`` to ``last``, per column.

    Parameters
    ----------
    cols : int
        Columns (lanes).
    acc_bits : int
        Width of the sums (enough for the whole window: see ``numerics.accumulator_bits``).

    Members
    -------
    i : In(stream.Signature(accumulate_in_layout(...)))
        Array outputs.
    o : Out(stream.Signature(pixel_layout(cols, acc_bits)))
        One word per (pixel, f-tile); ``last`` on the frame's final word.

    Attributes
    ----------
    latency : int
        Cycles from the cycle ``i`` takes a sum's ``last`` beat to the cycle the sum is offered
        on ``o`` (:attr:`accel.plan.blocks.AccumulatorPlan.latency`).
    """

    def __init__(self, *, cols: int, acc_bits: int):
        self.cols = check_int("cols", cols, 1)
        self.acc_bits = check_int("acc_bits", acc_bits, 2, 64)
        self.latency = AccumulatorPlan(cols=self.cols, acc_bits=self.acc_bits).latency
        super().__init__({
            "i": In(stream.Signature(accumulate_in_layout(cols=self.cols,
                                                          acc_bits=self.acc_bits))),
            "o": Out(stream.Signature(pixel_layout(self.cols, self.acc_bits))),
        })

    @classmethod
    def from_plan(cls, plan: AccumulatorPlan) -> ColumnAccumulator:
        """The block of a :class:`~accel.plan.blocks.AccumulatorPlan`."""
        return cls(**plan.component_args())

    def elaborate(self, platform):
        m = Module()
        acc = [Signal(signed(self.acc_bits), name=f"acc{c}") for c in range(self.cols)]
        # The output register is free, or drains this cycle.
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        take = self.i.valid & self.i.ready
        # Each register is 0 when a sum starts: it is cleared (a synchronous reset, the
        # flip-flops' own) as it hands a total out, so the adder needs no multiplexer in front
        # of its carry chain choosing 0 on ``first`` (the beats of one sum are consecutive,
        # ``first`` to ``last``; the registers start at 0).
        with m.If(take):
            for c in range(self.cols):
                total = acc[c] + self.i.payload.y[c]
                with m.If(self.i.payload.last):
                    m.d.sync += [acc[c].eq(0), self.o.payload.data[c].eq(total)]
                with m.Else():
                    m.d.sync += acc[c].eq(total)
            with m.If(self.i.payload.last):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(self.i.payload.frame_last)]
        return m
