"""The channel ``Concatenate`` in the hardware plan: its lanes, its skip buffers and their depth.

TFLite's int8 ``CONCATENATION`` is a copy: the interpreter refuses an int8 model whose inputs do
not share the output's scale and zero point (:class:`~accel.quant.qnet.QuantizedNetwork`
refuses it in one line too), so the hardware only has to interleave the two streams, per pixel
the first input's channels then the second's (:class:`~accel.hw.concat_merge.ConcatStage`).

Lanes
-----
The stage carries ``lanes`` channels per beat on both inputs and the output, and ``lanes``
divides the first input's channels ``C_a``: then a pixel's output groups are exactly the first
input's ``C_a / lanes`` groups followed by the second input's ``ceil(C_b / lanes)`` groups
(``C_a / lanes + ceil(C_b / lanes) = ceil((C_a + C_b) / lanes)``), and the merge is a switch
between the two streams, with no shifting of values across lanes. The planner takes the fewest
such lanes that keep the stage within the interval (:func:`concat_lane_count`).

Skip buffers and why they suffice (:func:`concat_skip_depths`)
-------------------------------------------------------------
Both inputs come from one fork tensor ``F`` through chains of one-input nodes, as for the
residual ``Add`` (:mod:`.join`, whose bounds ``need`` and ``dep`` per beat, counted in beats of
``F``, this reuses: :func:`~accel.plan.join.branch_bounds`). The merge takes pixel ``p``'s
``G_a`` beats of the first input, then its ``G_b`` beats of the second. Suppose the pipeline
stops for good with the merge waiting for beat ``w`` of input ``x`` while the other input
``y``'s next beat (index ``s``) waits at the merge. As for the Add, the fork is stuck, so ``y``
refuses: its buffer of ``D_y`` beats holds beats ``s .. s + D_y - 1`` and ``y`` offers beat
``s + D_y``, having accepted at least ``dep_y[s + D_y]`` beats of ``F``, while ``x`` has
accepted fewer than ``need_x[w]``; so ``dep_y[s + D_y] < need_x[w]``. When the merge waits on
the first input at beat ``w = p * G_a + g``, the second's next beat is ``s = p * G_b``; when it
waits on the second at ``w = p * G_b + g``, the first's next is ``s = (p + 1) * G_a``. The least
``D_y`` with ``need_x[w] <= dep_y[s(w) + D_y]`` for every ``w`` (frames extended periodically)
rules the stop out for every image sequence. Unlike an Add, which takes a pair at once, the
merge reads its inputs in turn, so each waits while the other's channels of a pixel go out:
both inputs get a buffer (at least :data:`~accel.plan.join.SKIP_FULL_RATE_DEPTH` beats, the
least that takes a beat every cycle, and on top of a non-zero lead the other branch's pipeline
latency in beats), so that neither branch is held back by the interleaving while the buffers
have room. :func:`deepen_concat_buffers` then makes each as deep as the timing model finds it
filling with images back to back, and :func:`accel.plan.timing.join_timing_fault` checks that
no buffer fills, so the plan's latency and interval stay exact.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..spec.shapes import ceil_div
from .join import SKIP_FULL_RATE_DEPTH, _chain_latency, branch_bounds
from .memory import FAMILIES, MemoryKind, MemoryPlan
from .stage_base import LaneStage

__all__ = ["CONCAT_LATENCY", "ConcatStagePlan", "concat_lane_count", "concat_skip_depths",
           "deepen_concat_buffers"]

#: :attr:`accel.hw.concat_merge.ConcatMerge.latency`: its output register (a beat taken in
#: cycle ``t`` is offered from ``t + 1``).
CONCAT_LATENCY = 1


def concat_lane_count(pixels: int, channels: tuple[int, int], target: int) -> int:
    """The fewest lanes dividing ``channels[0]`` that take a concatenation of ``pixels``
    pixels within ``target`` cycles per frame at one beat per cycle (``channels[0]`` if none
    does): see the module documentation for why the lanes divide the first input's
    channels."""
    first, second = channels
    divisors = [n for n in range(1, first + 1) if first % n == 0]
    for lanes in divisors:
        if pixels * ceil_div(first + second, lanes) <= target:
            return lanes
    return first


@dataclass(frozen=True, eq=False)
class ConcatStagePlan(LaneStage):
    """A channel ``Concatenate`` of two streams: the :class:`~accel.hw.concat_merge.ConcatStage`.

    Members
    -------
    index, layer, pool, kind, geometry, cycles, inputs, output : as
        :class:`~accel.plan.plan.StagePlan` (``kind`` is ``concatenate``, ``pool`` None,
        ``geometry`` the 1x1 "window" on the output shape; ``inputs`` the two tensors, ``lanes``
        values per beat each, in the layer's input order).
    rows, cols, macs : int
        0: no array.
    lanes : int
        Channels per beat on both inputs and the output; divides ``in_channels[0]``.
    in_channels : tuple of int
        Channels of the first and the second input.
    in_bits, out_bits, in_zero_point, out_zero_point, out_scale : as ``StagePlan`` (one
        quantization: the inputs share the output's).
    skip_depths : tuple of int
        Beats of :class:`~accel.hw.add_merge.SkipBuffer` on each input, from
        :func:`concat_skip_depths` then :func:`deepen_concat_buffers`.
    leads : tuple of int
        The least depth per input for freedom from deadlock, for the record.
    """

    index: int
    layer: str
    pool: None
    kind: str
    geometry: object
    rows: int
    cols: int
    cycles: int
    macs: int
    inputs: tuple[str, str]
    output: str
    in_bits: int
    out_bits: int
    in_zero_point: int
    out_zero_point: int
    out_scale: float
    lanes: int
    in_channels: tuple[int, int]
    skip_depths: tuple[int, int]
    leads: tuple[int, int]
    window: None = None
    requant: None = None

    @property
    def channels(self) -> int:
        return self.geometry.filters

    @property
    def groups(self) -> tuple[int, int]:
        """Beats per pixel of each input."""
        return (self.in_channels[0] // self.lanes, ceil_div(self.in_channels[1], self.lanes))

    @property
    def memories(self) -> tuple[MemoryPlan, ...]:
        """The skip buffers (a SyncFIFOBuffered's depth counts its output register)."""
        return tuple(MemoryPlan("skip_fifo", MemoryKind.FIFO, depth - 1,
                                self.lanes * self.out_bits + 1)
                     for depth in self.skip_depths if depth > 1)

    @property
    def multipliers(self) -> dict:
        return dict.fromkeys(FAMILIES, 0)

    @property
    def latencies(self) -> dict:
        return {"concat": CONCAT_LATENCY}

    def component_args(self) -> dict:
        """The :class:`~accel.hw.concat_merge.ConcatMerge` parameters."""
        return dict(channels=self.in_channels, lanes=self.lanes, bits=self.out_bits,
                    zero_point=self.out_zero_point)

    def to_json(self) -> dict:
        return {"lanes": self.lanes, "in_channels": list(self.in_channels),
                "skip_depths": list(self.skip_depths), "leads": list(self.leads),
                "latency": CONCAT_LATENCY}


def _least_depth_at(need: np.ndarray, nxt: np.ndarray, dep: np.ndarray, fork_beats: int) -> int:
    """The least ``D >= 0`` with ``need[w] <= dep[nxt[w] + D]`` for every ``w`` (indices past
    the frame wrap into the next frame, ``fork_beats`` further on)."""
    n = len(dep)

    def ok(depth: int) -> bool:
        frames, index = np.divmod(nxt + depth, n)
        return bool(np.all(need <= frames * fork_beats + dep[index]))

    lo, hi = 0, n  # at D = n the other input is a frame ahead: dep >= a frame of F
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def concat_skip_depths(chains, fork_beats: int,
                       groups: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(depths, leads)`` of the two inputs of a concatenation reached from a fork tensor of
    ``fork_beats`` beats per frame through ``chains`` (two node lists, maybe empty), with
    ``groups`` beats per pixel each (module documentation)."""
    (need_a, dep_a), (need_b, dep_b) = (branch_bounds(chain, fork_beats) for chain in chains)
    ga, gb = groups
    pixels = len(need_a) // ga
    if len(need_a) != pixels * ga or len(need_b) != pixels * gb:
        raise ValueError(f"the concatenation's inputs have {len(need_a)} and {len(need_b)} "
                         f"beats per frame, not {ga} and {gb} per pixel")
    # Waiting on the first input at beat w = p * ga + g: the second's next beat is p * gb.
    next_b = (np.arange(pixels * ga) // ga) * gb
    # Waiting on the second at beat w = p * gb + g: the first's next is (p + 1) * ga.
    next_a = (np.arange(pixels * gb) // gb + 1) * ga
    leads = (_least_depth_at(need_b, next_a, dep_a, fork_beats),
             _least_depth_at(need_a, next_b, dep_b, fork_beats))
    depths = tuple(max(lead + (_chain_latency(chains[1 - i]) if lead else 0),
                       SKIP_FULL_RATE_DEPTH) for i, lead in enumerate(leads))
    return depths, leads


def deepen_concat_buffers(plan):
    """``plan`` with every concatenation's skip buffers at least as deep as the timing model
    says they fill (images back to back, no gaps or stalls), plus a beat to spare, as
    :func:`~accel.plan.join.deepen_skip_buffers` does for the Add (the model assumes buffers
    that never fill, so deeper buffers do not change its times and one pass suffices)."""
    from .timing import _PERIOD_FRAMES, frame_times

    if not any(isinstance(s, ConcatStagePlan) for s in plan.stages):
        return plan
    record: dict = {}
    frame_times(plan, _PERIOD_FRAMES, record=record)
    stages = []
    for stage in plan.stages:
        if isinstance(stage, ConcatStagePlan):
            depths = []
            for depth, tensor, takes in zip(stage.skip_depths, stage.inputs,
                                            record["takes"][stage.output], strict=True):
                entered = np.asarray(record["accepted"][(tensor, id(stage))])
                waiting = np.arange(len(takes)) - np.searchsorted(np.asarray(takes), entered,
                                                                  side="left")
                depths.append(max(depth, int(waiting.max()) + 1))
            stage = dataclasses.replace(stage, skip_depths=tuple(depths))
        stages.append(stage)
    return dataclasses.replace(plan, stages=tuple(stages))
