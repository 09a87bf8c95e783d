"""A stand-alone pooling stage: average pool, global mean, or a max pool that no convolution
precedes directly (a max pool right after a Conv2D is fused into its
:class:`~accel.hw.stage.ComputeStage`).

::

    pixels (L channels per beat) --> AvgPool | GlobalMean | MaxPool --> pixels (L per beat)

The stage keeps the channel grouping of the stream it reads, so no regroup is needed around
it; its block is built from the :class:`~accel.plan.plan.PoolStagePlan`'s sub-plan.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan.blocks import AvgPoolPlan, MeanPlan, PoolPlan
from ..plan.plan import PoolStagePlan
from .avgpool import AvgPool, GlobalMean
from .layouts import pixel_layout
from .maxpool import MaxPool

__all__ = ["PoolStage"]

#: The block of each pooling sub-plan.
_UNITS = {AvgPoolPlan: AvgPool, MeanPlan: GlobalMean, PoolPlan: MaxPool}


class PoolStage(wiring.Component):
    """A pooling layer as a streaming stage.

    Parameters
    ----------
    plan : PoolStagePlan

    Members
    -------
    i : In(stream.Signature(pixel_layout(plan.lanes, plan.in_bits)))
        Input pixels, ``lanes`` channels per beat, ``last`` on the frame's final beat.
    o : Out(stream.Signature(pixel_layout(plan.lanes, plan.out_bits)))
        Pooled pixels, ``lanes`` channels per beat, ``last`` on the frame's final beat.
    """

    def __init__(self, *, plan: PoolStagePlan):
        if not isinstance(plan, PoolStagePlan):
            raise TypeError(f"plan must be a PoolStagePlan, not {plan!r}")
        self.plan = plan
        self.in_lanes = self.out_lanes = plan.lanes
        # Built here (not in elaborate) so testbenches can watch it.
        self.unit = _UNITS[type(plan.unit)].from_plan(plan.unit)
        super().__init__({
            "i": In(stream.Signature(pixel_layout(plan.lanes, plan.in_bits))),
            "o": Out(stream.Signature(pixel_layout(plan.lanes, plan.out_bits))),
        })

    @property
    def feed(self) -> tuple:
        """``(stream, frame_end)``: the beats the pool takes, and the one ending a frame."""
        return self.unit.i, self.unit.i.payload.last

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self.unit
        wiring.connect(m, wiring.flipped(self.i), self.unit.i)
        wiring.connect(m, self.unit.o, wiring.flipped(self.o))
        return m
