"""The join of a residual block: a skip buffer on each input that the plan gives one, then the
TFLite int8 ``ADD`` of the two aligned streams.

::

    input 1 (lanes per beat) -> [SkipBuffer(depth 1)] --> AddMerge -> pixels (lanes per beat)
    input 2 (lanes per beat) -> [SkipBuffer(depth 2)] -/

The depths come from :class:`~accel.plan.join.AddStagePlan` (:func:`accel.plan.join.skip_depths`
says why they cannot deadlock); input 1 is the merge's ``residual`` (its ``last`` is passed on),
input 2 its ``shortcut``.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan.join import AddStagePlan
from .add_merge import AddMerge, SkipBuffer
from .layouts import pixel_layout

__all__ = ["AddStage"]


class AddStage(wiring.Component):
    """A residual ``Add`` as a streaming stage with two inputs.

    Parameters
    ----------
    plan : AddStagePlan

    Members
    -------
    a, b : In(stream.Signature(pixel_layout(plan.lanes, 8)))
        The layer's first and second inputs, ``lanes`` channels per beat.
    o : Out(stream.Signature(pixel_layout(plan.lanes, 8)))
        The sums.
    """

    def __init__(self, *, plan: AddStagePlan):
        if not isinstance(plan, AddStagePlan):
            raise TypeError(f"plan must be an AddStagePlan, not {plan!r}")
        self.plan = plan
        self.in_lanes = self.out_lanes = plan.lanes
        self.merge = AddMerge(**plan.component_args())
        self.buffers = [SkipBuffer(depth=d, lanes=plan.lanes) if d else None
                        for d in plan.skip_depths]
        layout = pixel_layout(plan.lanes, 8)
        super().__init__({"a": In(stream.Signature(layout)), "b": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout))})

    @property
    def inputs(self) -> tuple:
        """The input streams in the layer's input order."""
        return (self.a, self.b)

    @property
    def feed(self) -> tuple:
        """``(stream, frame_end)``: the first input's beats as the merge takes them."""
        return self.merge.residual, self.merge.residual.payload.last

    def elaborate(self, platform):
        m = Module()
        m.submodules.merge = self.merge
        for n, (port, buffer, dest) in enumerate(zip(
                (self.a, self.b), self.buffers, (self.merge.residual, self.merge.shortcut),
                strict=True)):
            if buffer is None:
                wiring.connect(m, wiring.flipped(port), dest)
            else:
                m.submodules[f"skip{n}"] = buffer
                wiring.connect(m, wiring.flipped(port), buffer.i)
                wiring.connect(m, buffer.o, dest)
        wiring.connect(m, self.merge.o, wiring.flipped(self.o))
        return m
