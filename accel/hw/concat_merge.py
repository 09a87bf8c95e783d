"""The channel concatenation of two pixel streams (TFLite int8 ``CONCATENATION`` on the last
axis: a copy, the inputs sharing the output's quantization), and its stage with skip buffers.

::

    first  (lanes per beat) -> SkipBuffer -> ConcatMerge -> pixels (lanes per beat)
    second (lanes per beat) -> SkipBuffer -/

For each pixel the merge passes on the first input's ``C_a / lanes`` beats, then the second's
``ceil(C_b / lanes)``: with ``lanes`` dividing ``C_a`` that is the output's channel-group layout
(:mod:`accel.plan.concat` says why the plan chooses such lanes), so no value moves across lanes.
Lanes past the last channel of a pixel's last beat carry the output zero point, as every stream
of the design does. The buffers' depths come from
:class:`~accel.plan.concat.ConcatStagePlan` (:func:`accel.plan.concat.concat_skip_depths` says
why they cannot deadlock).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan.concat import CONCAT_LATENCY, ConcatStagePlan
from ..spec.shapes import ceil_div
from .add_merge import SkipBuffer
from .layouts import check_int, pixel_layout

__all__ = ["ConcatMerge", "ConcatStage"]


class ConcatMerge(wiring.Component):
    """Per pixel, the first stream's channel groups then the second's.

    Parameters
    ----------
    channels : tuple of int
        ``(C_a, C_b)``, each >= 1: a pixel is ``C_a / lanes`` beats of ``first`` and
        ``ceil(C_b / lanes)`` beats of ``second``.
    lanes : int
        Channels per beat, >= 1, dividing ``C_a``.
    bits : int
        Width of a value, >= 1.
    zero_point : int
        The output's zero point (signed ``bits``-bit), the value of the lanes past the last
        channel of a pixel.

    Members
    -------
    first, second : In(stream.Signature(pixel_layout(lanes, bits)))
        The two inputs; ``second``'s ``last`` (on a frame's final beat) is passed on,
        ``first``'s is ignored.
    o : Out(stream.Signature(pixel_layout(lanes, bits)))
        The concatenation, ``ceil((C_a + C_b) / lanes)`` beats per pixel.

    Attributes
    ----------
    latency : int
        Cycles from a beat accepted to it valid on ``o``; one beat per cycle.
    groups : tuple of int
        Beats per pixel of ``first`` and ``second``.
    """

    def __init__(self, *, channels: tuple[int, int], lanes: int = 1, bits: int = 8,
                 zero_point: int = 0) -> None:
        if not isinstance(channels, tuple) or len(channels) != 2:
            raise ValueError(f"channels must be a pair of integers, not {channels!r}")
        self.channels = tuple(check_int("channels", c, 1) for c in channels)
        self.lanes = check_int("lanes", lanes, 1)
        self.bits = check_int("bits", bits, 1)
        half = 1 << (self.bits - 1)
        self.zero_point = check_int("zero_point", zero_point, -half, half - 1)
        if self.channels[0] % self.lanes:
            raise ValueError(f"lanes must divide the first input's {self.channels[0]} "
                             f"channels, not {self.lanes}")
        self.groups = (self.channels[0] // self.lanes, ceil_div(self.channels[1], self.lanes))
        self.latency = CONCAT_LATENCY
        layout = pixel_layout(self.lanes, self.bits)
        super().__init__({"first": In(stream.Signature(layout)),
                          "second": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        ga, gb = self.groups
        beats = ga + gb
        valid_lanes = self.channels[1] - (gb - 1) * self.lanes
        count = Signal(range(beats))  # the beat of the pixel the merge takes next
        second = Signal()  # the pixel's beats of the second input are next
        m.d.comb += second.eq(count >= ga)
        # The output register loads when empty or read: one beat per cycle.
        load = ~self.o.valid | self.o.ready
        offered = Mux(second, self.second.valid, self.first.valid)
        take = load & offered
        m.d.comb += [self.first.ready.eq(load & ~second),
                     self.second.ready.eq(load & second)]
        with m.If(load):
            m.d.sync += self.o.valid.eq(offered)
        end = count == beats - 1
        with m.If(take):
            m.d.sync += [count.eq(Mux(end, 0, count + 1)),
                         self.o.payload.last.eq(second & end & self.second.payload.last)]
            for lane in range(self.lanes):
                value = Mux(second, self.second.payload.data[lane],
                            self.first.payload.data[lane])
                if lane >= valid_lanes:
                    value = Mux(end, self.zero_point, value)
                m.d.sync += self.o.payload.data[lane].eq(value)
        return m


class ConcatStage(wiring.Component):
    """A channel ``Concatenate`` as a streaming stage with two inputs.

    Parameters
    ----------
    plan : ConcatStagePlan

    Members
    -------
    a, b : In(stream.Signature(pixel_layout(plan.lanes, plan.out_bits)))
        The layer's first and second inputs.
    o : Out(stream.Signature(pixel_layout(plan.lanes, plan.out_bits)))
        The concatenation.
    """

    def __init__(self, *, plan: ConcatStagePlan):
        if not isinstance(plan, ConcatStagePlan):
            raise TypeError(f"plan must be a ConcatStagePlan, not {plan!r}")
        self.plan = plan
        self.in_lanes = self.out_lanes = plan.lanes
        self.merge = ConcatMerge(**plan.component_args())
        self.buffers = [SkipBuffer(depth=d, lanes=plan.lanes, bits=plan.out_bits) if d
                        else None for d in plan.skip_depths]
        layout = pixel_layout(plan.lanes, plan.out_bits)
        super().__init__({"a": In(stream.Signature(layout)), "b": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout))})

    @property
    def inputs(self) -> tuple:
        """The input streams in the layer's input order."""
        return (self.a, self.b)

    @property
    def feed(self) -> tuple:
        """``(stream, frame_end)``: the beats as the merge offers them."""
        return self.merge.o, self.merge.o.payload.last

    def elaborate(self, platform):
        m = Module()
        m.submodules.merge = self.merge
        for n, (port, buffer, dest) in enumerate(zip(
                (self.a, self.b), self.buffers, (self.merge.first, self.merge.second),
                strict=True)):
            if buffer is None:
                wiring.connect(m, wiring.flipped(port), dest)
            else:
                m.submodules[f"skip{n}"] = buffer
                wiring.connect(m, wiring.flipped(port), buffer.i)
                wiring.connect(m, buffer.o, dest)
        wiring.connect(m, self.merge.o, wiring.flipped(self.o))
        return m
