"""The hardware plan: the third typed stage (spec -> quantized network -> **plan** -> HW).

A plan maps every compute layer of a :class:`~accel.quant.qnet.QuantizedNetwork` to one
streaming stage and sizes it. It is plain data (printed by ``accel plan``, written into the
generator's JSON sidecar) and the single place where folding and cycle counts are decided.

The stage
---------
Every Conv2D and Dense layer becomes one stage::

    pixels -> window generator -> replay (Ft times) -> R x C systolic array
           -> column accumulators -> requantizer -> [max pool] -> pixels

A Dense layer is a 1x1 convolution on a 1x1 "image" whose channels are the flattened input:
the activation stream is already in NHWC flatten order, so Flatten needs no hardware.

For a layer with a ``kh x kw`` kernel over ``cin`` input channels and ``F`` filters on an
``R x C`` array (R rows reduce over input channels, C columns are output channels):

- the window of one output pixel is ``Kt = kh * kw * ceil(cin / R)`` beats of R channel values
  (one per tap and channel group; the array's k-tiles);
- the filters are ``Ft = ceil(F / C)`` f-tiles of C;
- for each output pixel, for each f-tile, the window's Kt beats go through the array on
  consecutive cycles and each column accumulates them; so one output pixel takes
  ``Kt * Ft`` array cycles and the whole layer ``out_h * out_w * Kt * Ft``.

Depthwise and pooling stages
----------------------------
A DepthwiseConv2D layer becomes a :class:`DepthwiseStagePlan`: the planner gives it a budget
of ``rows x cols`` multipliers, of which ``L * m`` PEs are built (``L = floor(R * C / m)``
input channels per beat, taps reduced in time; :mod:`accel.hw.depthwise`), and its cycles
are ``out_h * out_w * kh * kw * ceil(cin / L)``; it is balanced like the other stages (the
fewest PEs within the heaviest layer's cycles). An average pool, a global mean, or a max pool
that no Conv2D directly precedes becomes a :class:`PoolStagePlan`: no PEs, the lanes of the
stream it reads, one cycle per input beat and window containing it.

Zero padding
------------
A ZeroPadding2D (TFLite ``PAD``, which pads with the zero point) is no stage: when one Conv2D
or DepthwiseConv2D reads it, its amounts are folded into that layer's window as explicit
per-side padding (``Geometry.padding`` ``((top, bottom), (left, right))``,
:func:`~accel.spec.shapes.fold_padding`), and the window generator's padding taps are the input
zero point, as for SAME. A PAD read by anything else (a pool's padding means something else),
by several layers, or one that puts whole windows outside the image is refused in one line.

The cycle model
---------------
A stage's cycles per frame are ``out_h * out_w * Kt * Ft`` (the array busy every cycle); the
pipeline's steady-state interval is the slowest stage's, or the input stream's (one value per
cycle: ``h * w * c`` per image) if that is slower, and the ideal is ``total MACs / total PEs``.
Frame-boundary refill is mostly hidden (a window generator fills its next frame's first rows
while its stage still works on the last); where it is not (VALID padding with a stride below
the kernel), a stage's period is longer than its cycles, and the interval uses the period
(:func:`.timing.stage_period`). The first image's latency and the periods are modelled beat
by beat (:mod:`.timing`, :attr:`NetworkPlan.latency_cycles`).

Streamed weights
----------------
Given a :class:`~.weights.WeightPlacement` (a board's block RAMs and external memories),
:func:`make_plan` streams Dense layers' weights from external memory while the ROMs would not
fit (:mod:`.weights`). Such a stage carries a :class:`~.weights.StreamedWeights` (memory,
base address, words per image, burst, FIFO, layout); its cycles are the larger of the array's
and its words over the memory's words per cycle, and the interval is at least all streamed
words over that rate (:attr:`NetworkPlan.stream_cycles`, the memory is shared).
The planner gives the heaviest layer the whole ``R x C`` array and every other
layer the fewest PEs (rows at most R, columns at most C) that keep it within that interval.

The hardware IR
---------------
A stage carries one typed sub-plan per block (:mod:`.blocks`, :mod:`.requant`): window,
replay, array (with the tiled weights), accumulator, requantizer (a :class:`RequantMode`
and its constants), and the fused pool, each with the memories, multipliers, FIFO depths and
latency its component needs; :class:`~accel.hw.accelerator.Accelerator` is built from the
plan alone. Stages and the channel regroups between them are nodes that name the tensors
they consume and produce (``input`` is the model input), so the plan is a graph, and the
accelerator connects nodes by those names.

Forks and joins
---------------
The planner walks the layers in file order (a topological order). A tensor that two layers
read is a fork; a residual ``Add`` is an :class:`~accel.plan.join.AddStagePlan` that reads two
tensors, with the fewest lanes that keep it within the interval, regroups to those lanes on
both inputs, and a skip buffer on the input that needs one (the short branch), its depth
computed from the two branches' geometry so that no image sequence can deadlock
(:mod:`.join`). A channel ``Concatenate`` of two tensors is a
:class:`~accel.plan.concat.ConcatStagePlan`, joined the same way, with lanes that divide its
first input's channels and a skip buffer on both inputs (:mod:`.concat`). Supported: two-branch
forks that one ``Add`` or ``Concatenate`` joins, each branch a chain of one-input layers
(ResNet-8's blocks). Nested branches, a tensor read by three layers and a ``Concatenate`` of
more than two inputs are refused in one line naming the layer.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass

from ..errors import AccelError
from ..quant.qnet import (
    QAdd,
    QAvgPool2D,
    QConcatenate,
    QConv2D,
    QDense,
    QDepthwiseConv2D,
    QFlatten,
    QMaxPool2D,
    QMean,
    QPad,
    QSoftmax,
    QuantizedNetwork,
)
from ..quant.requant_mode import RequantMode
from ..spec import INPUT
from ..spec.shapes import ceil_div, fold_padding, window_2d
from .blocks import (
    AccumulatorPlan,
    ArrayPlan,
    AvgPoolPlan,
    DepthwisePlan,
    MeanPlan,
    PoolPlan,
    RegroupPlan,
    ReplayPlan,
    WindowPlan,
    depthwise_frame_cycles,
    depthwise_lane_count,
    pool_stage_cycles,
)
from .concat import (
    ConcatStagePlan,
    concat_lane_count,
    concat_skip_depths,
    deepen_concat_buffers,
)
from .join import AddStagePlan, add_lane_count, deepen_skip_buffers, skip_depths
from .memory import FAMILIES, MemoryPlan
from .requant import RequantPlan
from .stage_base import LaneStage, StageMemories
from .weights import ExternalMemory, StreamedWeights, WeightPlacement, check_batch

__all__ = ["DepthwiseStagePlan", "Geometry", "NetworkPlan", "PoolStagePlan", "RequantMode",
           "StagePlan", "depthwise_stage_cycles", "make_plan", "parse_array", "plan_dict",
           "stage_cycles", "streamed_stage_cycles"]


@dataclass(frozen=True)
class Geometry:
    """The input/output tensor shapes and window of one stage (a Dense is 1x1 with
    ``in_channels`` = the flattened length)."""

    in_h: int
    in_w: int
    in_channels: int
    kernel: tuple[int, int]
    strides: tuple[int, int]
    #: ``"valid"``, ``"same"``, or explicit ``((top, bottom), (left, right))`` where a PAD is
    #: folded into the window (:func:`~accel.spec.shapes.window_2d`).
    padding: str | tuple
    out_h: int
    out_w: int
    filters: int


@dataclass(frozen=True, eq=False)
class StagePlan(StageMemories):
    """One streaming stage: a Conv2D or Dense layer, sized for its array.

    Members
    -------
    index : int
        Stage number, from 0.
    layer : str
        The quantized layer's name; ``pool`` names a fused max pool after it (or None).
    kind : str
        ``conv2d`` or ``dense``.
    geometry : Geometry
    rows, cols : int
        The stage's array: R rows (input channels reduced per cycle), C columns (filters).
    k_tiles, f_tiles : int
        Kt and Ft (see module doc).
    cycles : int
        Predicted array cycles per frame (the cycle model).
    macs : int
        The layer's multiply-accumulates per frame.
    inputs : tuple of str
        The tensors it consumes (one today), ``rows`` values per beat.
    output : str
        The tensor it produces (the pool's name if one is fused, else the layer's),
        ``cols`` values per beat.
    in_bits, out_bits, in_zero_point, out_zero_point : int
    out_scale : float
    window : WindowPlan or None
        None for a Dense layer (its window is its whole input vector).
    replay : ReplayPlan
    array : ArrayPlan
    accumulator : AccumulatorPlan
    requant : RequantPlan
    maxpool : PoolPlan or None
    streamed : StreamedWeights or None
        Set when the weights come from external memory instead of ROMs (a Dense layer
        only, :mod:`.weights`); ``cycles`` is then the larger of the array's and the
        bandwidth bound.
    """

    index: int
    layer: str
    pool: str | None
    kind: str
    geometry: Geometry
    rows: int
    cols: int
    k_tiles: int
    f_tiles: int
    cycles: int
    macs: int
    inputs: tuple[str, ...]
    output: str
    in_bits: int
    out_bits: int
    in_zero_point: int
    out_zero_point: int
    out_scale: float
    window: WindowPlan | None
    replay: ReplayPlan
    array: ArrayPlan
    accumulator: AccumulatorPlan
    requant: RequantPlan
    maxpool: PoolPlan | None
    streamed: StreamedWeights | None = None

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def in_lanes(self) -> int:
        """Values per input beat (``rows``)."""
        return self.rows

    @property
    def out_lanes(self) -> int:
        """Values per output beat (``cols``)."""
        return self.cols

    @property
    def weight_bits(self) -> int:
        return self.array.weight_bits

    @property
    def weight_count(self) -> int:
        """Weights held in the stage's ROMs."""
        return self.array.weights.size

    @property
    def ideal_cycles(self) -> float:
        return self.macs / self.pes

    @property
    def utilization(self) -> float:
        return self.macs / (self.cycles * self.pes)

    @property
    def memories(self) -> tuple[MemoryPlan, ...]:
        """Every memory the stage's blocks instantiate."""
        # A batched streamed stage buffers its inputs in its batch buffers instead of the
        # replay's memory (:mod:`.weights`, "Batches"), and its replay has an output FIFO
        # (a WindowReplay's output is a register).
        batched = self.streamed is not None and self.streamed.batch > 1
        found = [*self.array.weight_roms,
                 *((self.replay.fifo,) if batched else (self.replay.memory,)),
                 self.array.fifo, self.requant.params, self.requant.fifo]
        if self.window is not None:
            found.insert(len(self.array.weight_roms), self.window.memory)
        if self.maxpool is not None:
            found.extend(self.maxpool.memories)
        if self.streamed is not None:
            found.extend(self.streamed.memories)
        return tuple(found)

    @property
    def multipliers(self) -> dict:
        """Hardware multipliers per FPGA family (Gowin in 9x9 halves): the PEs' and the
        requantizer's (the weight address is a counter of the replay, no product)."""
        return {f: self.array.multipliers[f] + self.requant.multipliers[f] for f in FAMILIES}

    @property
    def latencies(self) -> dict:
        """Each block's ``latency`` in cycles (window, replay, array stream, accumulator,
        requantizer, max pool), as defined in the blocks' docstrings."""
        found = {"replay": self.replay.latency, "array": self.array.latency,
                 "accumulator": self.accumulator.latency, "requant": self.requant.latency}
        if self.window is not None:
            found = {"window": self.window.latency, **found}
        if self.maxpool is not None:
            found["pool"] = self.maxpool.latency
        return found


@dataclass(frozen=True, eq=False)
class DepthwiseStagePlan(StageMemories):
    """One depthwise stage (:class:`~accel.hw.depthwise.DepthwiseStage`): a
    DepthwiseConv2D layer on a budget of ``rows x cols`` multipliers, of which
    ``L * m`` PEs are built (``L`` input channels per beat, see :mod:`accel.hw.depthwise`).

    Members
    -------
    index, layer, pool, kind, geometry, cycles, macs, inputs, output : as :class:`StagePlan`
        (``kind`` is ``depthwise_conv2d``, ``pool`` is None, ``geometry.filters`` is
        ``cin * m``).
    rows, cols : int
        The multiplier budget the planner gave the stage.
    in_bits, out_bits, in_zero_point, out_zero_point, out_scale : as :class:`StagePlan`
    window : WindowPlan
        ``L`` channels per beat.
    depthwise : DepthwisePlan
        The PEs: lanes, weights, sums, FIFO, latency.
    requant : RequantPlan
        ``L * m`` lanes.
    """

    index: int
    layer: str
    pool: None
    kind: str
    geometry: Geometry
    rows: int
    cols: int
    cycles: int
    macs: int
    inputs: tuple[str, ...]
    output: str
    in_bits: int
    out_bits: int
    in_zero_point: int
    out_zero_point: int
    out_scale: float
    window: WindowPlan
    depthwise: DepthwisePlan
    requant: RequantPlan

    @property
    def pes(self) -> int:
        return self.depthwise.pes

    @property
    def in_lanes(self) -> int:
        return self.depthwise.lanes

    @property
    def out_lanes(self) -> int:
        return self.depthwise.pes

    @property
    def weight_bits(self) -> int:
        return 8

    @property
    def weight_count(self) -> int:
        return self.depthwise.weights.size

    @property
    def ideal_cycles(self) -> float:
        return self.macs / self.pes

    @property
    def utilization(self) -> float:
        return self.macs / (self.cycles * self.pes)

    @property
    def memories(self) -> tuple[MemoryPlan, ...]:
        return (self.depthwise.weight_rom, self.window.memory, self.depthwise.sums,
                self.depthwise.fifo, self.requant.params, self.requant.fifo)

    @property
    def multipliers(self) -> dict:
        return {f: self.depthwise.multipliers[f] + self.requant.multipliers[f]
                for f in FAMILIES}

    @property
    def latencies(self) -> dict:
        """Window read; PEs to requantizer output (``depthwise``, requantizer included)."""
        return {"window": self.window.latency, "depthwise": self.depthwise.latency,
                "requant": self.requant.latency}


@dataclass(frozen=True, eq=False)
class PoolStagePlan(LaneStage):
    """A stand-alone pooling stage (:class:`~accel.hw.pool_stage.PoolStage`): an average pool,
    a global mean, or a max pool that cannot be fused into a convolution. No PEs; it keeps
    the channel grouping of the stream it reads (``lanes`` values per beat in and out).

    Members
    -------
    index, layer, pool, kind, geometry, cycles, inputs, output : as :class:`StagePlan`
        (``kind`` is ``avg_pool2d``, ``mean`` or ``max_pool2d``; ``geometry.kernel`` is the
        pool window, ``geometry.filters`` the channels).
    rows, cols, macs : int
        0: no array.
    lanes : int
    in_bits, out_bits, in_zero_point, out_zero_point, out_scale : as :class:`StagePlan`
    unit : AvgPoolPlan, MeanPlan or PoolPlan
        The block's sub-plan.
    """

    index: int
    layer: str
    pool: None
    kind: str
    geometry: Geometry
    rows: int
    cols: int
    cycles: int
    macs: int
    inputs: tuple[str, ...]
    output: str
    in_bits: int
    out_bits: int
    in_zero_point: int
    out_zero_point: int
    out_scale: float
    lanes: int
    unit: AvgPoolPlan | MeanPlan | PoolPlan
    window: None = None
    requant: None = None

    @property
    def memories(self) -> tuple[MemoryPlan, ...]:
        return self.unit.memories

    @property
    def multipliers(self) -> dict:
        if isinstance(self.unit, PoolPlan):  # comparators only
            return {f: 0 for f in FAMILIES}
        return dict(self.unit.multipliers)

    @property
    def latencies(self) -> dict:
        return {} if isinstance(self.unit, PoolPlan) else {self.kind: self.unit.latency}


@dataclass(frozen=True, eq=False)
class NetworkPlan:
    """The whole accelerator: its nodes (stages and regroups) in dataflow order, and the
    array size the user allowed.

    Members
    -------
    stages : tuple of StagePlan or DepthwiseStagePlan
        The compute stages, in order.
    regroups : tuple of RegroupPlan
        The channel regroups on the edges between them.
    input_tensor, output_tensor : str
        The tensor the input port feeds (``input``, one value per beat) and the one the
        output port carries (one value per beat).
    input_bits, input_zero_point, input_scale : the input port's quantization.
    scheme, source : str
        The quantized network's scheme and where it came from.
    softmax_in_software : bool
        The network ends in a softmax that the host applies to the logits.
    """

    name: str
    max_rows: int
    max_cols: int
    stages: tuple[StagePlan, ...]
    input_shape: tuple[int, ...]
    output_layer: str
    output_shape: tuple[int, ...]
    regroups: tuple[RegroupPlan, ...] = ()
    input_tensor: str = "input"
    output_tensor: str = ""
    input_bits: int = 8
    input_zero_point: int = 0
    input_scale: float = 1.0
    scheme: str = ""
    source: str = ""
    softmax_in_software: bool = False

    @property
    def nodes(self) -> tuple:
        """Stages and regroups in an order where every node follows the producers of its
        inputs (a topological order of the dataflow graph)."""
        producers = {}
        for node in (*self.regroups, *self.stages):
            producers[node.output] = node
        order, seen = [], set()

        def visit(tensor: str) -> None:
            node = producers.get(tensor)
            if node is None or id(node) in seen:
                return
            for name in _node_inputs(node):
                visit(name)
            seen.add(id(node))
            order.append(node)

        visit(self.output_tensor)
        return tuple(order)

    @property
    def pes(self) -> int:
        return sum(s.pes for s in self.stages)

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.stages)

    @property
    def input_cycles(self) -> int:
        """Cycles to stream one image in: the input port carries one value per cycle."""
        return math.prod(self.input_shape)

    @property
    def output_cycles(self) -> int:
        """Cycles to stream one result out, one value per cycle (every value of the last
        stage's output: logits, or a whole feature map when the network ends in a Conv2D)."""
        return math.prod(self.output_shape)

    @property
    def output_stage(self) -> StagePlan:
        """The stage whose output the output port carries."""
        return self.stages[-1]

    @property
    def output_bits(self) -> int:
        return self.output_stage.out_bits

    @property
    def streamed_stages(self) -> tuple[StagePlan, ...]:
        """The stages whose weights are streamed from external memory."""
        return tuple(s for s in self.stages if getattr(s, "streamed", None) is not None)

    @property
    def batch(self) -> int:
        """Images per weight frame of the streamed stages (1 if nothing streams)."""
        return max((s.streamed.batch for s in self.streamed_stages), default=1)

    @property
    def stream_cycles(self) -> int:
        """Cycles per inference the external memory needs for every streamed weight (they
        share it): all streamed words over its words per cycle and the batch; 0 if nothing
        streams."""
        streams = [s.streamed for s in self.streamed_stages]
        if not streams:
            return 0
        return math.ceil(sum(w.words_per_image for w in streams)
                         / (streams[0].memory.words_per_cycle * self.batch))

    @functools.cached_property
    def interval_cycles(self) -> int:
        """Predicted steady-state cycles per inference, images back to back with no input
        gaps or output stalls: the slowest stage, the input or the output stream, and any
        window generator's refill at a frame boundary (a line buffer that cannot take the
        next frame's first rows while the last windows are read), as the timing model follows
        three images through the plan (:func:`.timing.interval`), or the weight stream's
        bandwidth (:attr:`stream_cycles`) if that is slower. Equal to the measured interval
        cycle for cycle without streamed weights (``tests/test_accelerator.py``,
        ``test_timing_exact.py``); with streamed Dense stages (any batch) the model follows
        the weight stream itself (:mod:`.stream_timing` for one, :mod:`.shared_stream_timing`
        for several on the arbiter: exact against the deterministic memory model, where the
        refresh pauses make each image's interval depend on where it falls in the refresh
        period; this is the third image's, at batch B the third batch's per image, rounded
        up). Computed once per plan."""
        from .stream_timing import streams_exact
        from .timing import interval

        if streams_exact(self):  # the weight stream is in the cycle model: no bound needed
            return interval(self, self._output_times)
        return max(interval(self, self._output_times), self.stream_cycles)

    @functools.cached_property
    def _output_times(self) -> list[int]:
        """:func:`.timing.output_times`, which both :attr:`interval_cycles` and
        :attr:`latency_cycles` read (the model's run is the planner's slowest step)."""
        from .timing import output_times

        return output_times(self, status=self._timing_status)

    @functools.cached_property
    def _timing_status(self) -> dict:
        """Filled by :attr:`_output_times`: whether the shared weight memory's fixed point
        (:mod:`.shared_stream_timing`) was reached (``settled``) and in how many passes."""
        return {}

    @property
    def streams_settled(self) -> bool:
        """Whether the timing model's run reached the fixed point of the streamed stages
        that share the weight memory (True with fewer than two: there is none to find)."""
        self._output_times  # noqa: B018 - runs the model, which fills the status
        return self._timing_status.get("settled", True)

    @property
    def interval_bound(self) -> str:
        """What sets :attr:`interval_cycles`: ``stage N (layer) compute``, ``... bandwidth``,
        ``weight bandwidth`` (streamed stages together), ``input`` or ``output``."""
        slowest = max(self.stages, key=lambda s: s.cycles)
        candidates = [(self.input_cycles, "input"), (self.output_cycles, "output")]
        streamed = getattr(slowest, "streamed", None)
        kind = streamed.bound if streamed is not None else "compute"
        candidates.insert(0, (slowest.cycles,
                              f"stage {slowest.index} ({slowest.layer}) {kind}"))
        candidates.append((self.stream_cycles, "weight bandwidth"))
        return max(candidates, key=lambda c: c[0])[1]

    @functools.cached_property
    def latency_cycles(self) -> int:
        """Cycles from the first image's first input value to the last output beat of the
        last stage (what :func:`accel.sim.run.report` measures as ``latency_cycles``).

        Exact under these conditions: the first image (nothing in flight before it), no input
        gaps, no output stalls. It is derived beat by beat (:mod:`.timing`) from each block's
        stated latency and throughput: a conv stage's window can start once its line buffer
        holds the window's pixels and the replay bank is free, then the array, accumulator,
        requantizer and pool pipelines follow; a Dense stage starts after its whole input;
        regroups, the line buffer's writer and an overlapping pool add the waits they impose.
        Equal to the measured latency cycle for cycle on the test networks, random small
        conv/pool/dense chains and digits_small 2x4 (1,107) (``tests/test_accelerator.py``).
        Computed once per plan.
        """
        from .timing import latency

        # At batch B the first image is out with its batch.
        return latency(self, self._output_times)

    @property
    def latency_exact(self) -> bool:
        """Whether :attr:`latency_cycles` and :attr:`interval_cycles` are exact: every stage
        is of a kind the timing model follows beat by beat (:data:`.timing.EXACT_KINDS`) and
        reads its weights from ROMs, or is a streamed Dense stage at any batch, alone or
        sharing the memory with others through the arbiter, the fixed point of their times
        reached (:func:`.stream_timing.streams_exact`: exact against the harness's
        deterministic memory model, ``accel sim --gaps 0``), and the model's assumptions
        about forks and joins hold (:func:`.timing.joins_exact`)."""
        from .stream_timing import streamed_exact, streams_exact
        from .timing import EXACT_KINDS, joins_exact

        return all(s.kind in EXACT_KINDS and (getattr(s, "streamed", None) is None
                                              or streamed_exact(s))
                   for s in self.stages) and streams_exact(self) and joins_exact(self)

    @property
    def ideal_cycles(self) -> float:
        """Total MACs / total PEs: every PE busy on every cycle."""
        return self.macs / self.pes

    @property
    def memory_bits(self) -> dict:
        total: dict = {}
        for s in self.stages:
            for key, bits in s.memory_bits.items():
                total[key] = total.get(key, 0) + bits
        return total

    @property
    def multipliers(self) -> dict:
        """Hardware multipliers per FPGA family (see :attr:`StagePlan.multipliers`), with the
        regroups' (:attr:`RegroupPlan.multipliers`)."""
        return {f: sum(s.multipliers[f] for s in self.stages)
                + sum(r.multipliers[f] for r in self.regroups) for f in FAMILIES}

    def bram_blocks(self, family: str) -> int:
        """Block RAMs on ``family``: the sum of every memory's (regroups hold none)."""
        return sum(s.bram_blocks(family) for s in self.stages)


def _node_inputs(node) -> tuple[str, ...]:
    return (node.input,) if isinstance(node, RegroupPlan) else node.inputs


#: The largest rows or columns of an array (the planner's search is rows x cols per layer).
MAX_ARRAY_SIDE = 256
_ARRAY_RE = re.compile(r"([0-9]{1,6})x([0-9]{1,6})", re.ASCII)


def parse_array(text: str) -> tuple[int, int]:
    """``"4x8"`` -> (4, 8): ASCII digits only (``str.isdigit`` would take ``"²"``), each side
    in ``1..MAX_ARRAY_SIDE``; one-line error otherwise."""
    match = _ARRAY_RE.fullmatch(str(text).strip().lower())
    if match:
        rows, cols = int(match[1]), int(match[2])
        if 1 <= rows <= MAX_ARRAY_SIDE and 1 <= cols <= MAX_ARRAY_SIDE:
            return rows, cols
    shown = str(text) if len(str(text)) <= 40 else str(text)[:37] + "..."
    raise AccelError(f"--array must be ROWSxCOLS with integers from 1 to {MAX_ARRAY_SIDE} "
                     f"(e.g. 4x4), not {shown!r}")


def stage_cycles(geometry: Geometry, rows: int, cols: int) -> tuple[int, int, int]:
    """``(cycles, Kt, Ft)`` of a stage on a ``rows x cols`` array (the cycle model)."""
    kh, kw = geometry.kernel
    k_tiles = kh * kw * math.ceil(geometry.in_channels / rows)
    f_tiles = math.ceil(geometry.filters / cols)
    return geometry.out_h * geometry.out_w * k_tiles * f_tiles, k_tiles, f_tiles


def _geometry(layer, info) -> Geometry:
    if isinstance(layer, (QConv2D, QDepthwiseConv2D)):
        h, w, cin = info.input_shape
        oh, ow, f = info.output_shape
        kh, kw = layer.weights.shape[:2]
        return Geometry(h, w, cin, (kh, kw), layer.strides, layer.padding, oh, ow, f)
    (n,) = info.input_shape
    return Geometry(1, 1, n, (1, 1), (1, 1), "valid", 1, 1, layer.weights.shape[1])


def streamed_stage_cycles(geometry: Geometry, rows: int, cols: int, memory: ExternalMemory,
                          weight_bits: int, batch: int = 1) -> int:
    """Cycles per frame of a stage whose weights stream from ``memory``: the array's, or the
    words of its tiles over the memory's words per cycle and the ``batch`` of images that
    share them if that is more (:mod:`.weights`)."""
    cycles, k_tiles, f_tiles = stage_cycles(geometry, rows, cols)
    words = k_tiles * f_tiles * math.ceil(rows * cols / (memory.word_bits // weight_bits))
    return max(cycles, math.ceil(words / (batch * memory.words_per_cycle)))


def _smallest_array(geometry: Geometry, max_rows: int, max_cols: int,
                    target: int, cycles_of=None) -> tuple[int, int]:
    """The fewest PEs (then the fewest wasted lanes) that finish within ``target`` cycles;
    the fastest shape if none does. ``cycles_of(rows, cols)`` gives a shape's cycles
    (default: :func:`stage_cycles`)."""
    best = None
    if cycles_of is None:
        def cycles_of(rows, cols):
            return stage_cycles(geometry, rows, cols)[0]
    # Rows beyond the input channels or columns beyond the filters only add idle PEs (the
    # cycles stop falling there), so the search is bounded by the layer, not by the array.
    for rows in range(1, min(max_rows, geometry.in_channels) + 1):
        for cols in range(1, min(max_cols, geometry.filters) + 1):
            cycles = cycles_of(rows, cols)
            key = (cycles > target, rows * cols if cycles <= target else cycles, cycles)
            if best is None or key < best[0]:
                best = (key, (rows, cols))
    return best[1]


def depthwise_stage_cycles(geometry: Geometry, multiplier: int, rows: int, cols: int) -> int:
    """Cycles per frame of a depthwise stage on ``rows x cols`` multipliers
    (:func:`~accel.plan.blocks.depthwise_frame_cycles`)."""
    lanes = depthwise_lane_count(rows, cols, multiplier)
    return depthwise_frame_cycles((geometry.out_h, geometry.out_w), geometry.kernel,
                                  geometry.in_channels, lanes)


def _smallest_depthwise(geometry: Geometry, multiplier: int, max_rows: int, max_cols: int,
                        target: int) -> tuple[int, int]:
    """As :func:`_smallest_array` for a depthwise stage: the fewest PEs (``L * m``), then the
    smallest budget, that finish within ``target``; the fastest budget if none does."""
    best = None
    for rows in range(1, max_rows + 1):
        for cols in range(1, max_cols + 1):
            lanes = depthwise_lane_count(rows, cols, multiplier)
            if lanes == 0:
                continue
            cycles = depthwise_stage_cycles(geometry, multiplier, rows, cols)
            pes = lanes * multiplier
            key = (cycles > target, pes if cycles <= target else cycles, cycles,
                   rows * cols)
            if best is None or key < best[0]:
                best = (key, (rows, cols))
    return best[1]


def _stage_size(layer, geometry: Geometry, max_rows: int, max_cols: int,
                target: int, memory: ExternalMemory | None = None,
                batch: int = 1) -> tuple[int, int, int]:
    """``(rows, cols, cycles)`` of the stage the planner gives ``layer`` for ``target``;
    ``memory``: its weights stream from there, shared by ``batch`` images."""
    if isinstance(layer, QDepthwiseConv2D):
        mult = layer.weights.shape[3]
        rows, cols = _smallest_depthwise(geometry, mult, max_rows, max_cols, target)
        return rows, cols, depthwise_stage_cycles(geometry, mult, rows, cols)
    if memory is not None:
        def cycles_of(rows, cols):
            return streamed_stage_cycles(geometry, rows, cols, memory, layer.weight_bits,
                                         batch)
        rows, cols = _smallest_array(geometry, max_rows, max_cols, target, cycles_of)
        return rows, cols, cycles_of(rows, cols)
    rows, cols = _smallest_array(geometry, max_rows, max_cols, target)
    return rows, cols, stage_cycles(geometry, rows, cols)[0]


#: Layers that become stages with PEs (the others: pooling stages).
_PE_LAYERS = (QConv2D, QDense, QDepthwiseConv2D)


def _pool_geometry(layer, info) -> Geometry:
    h, w, c = info.input_shape
    if isinstance(layer, QMean):
        return Geometry(h, w, c, (h, w), (1, 1), "valid", 1, 1, c)
    oh, ow, _ = info.output_shape
    return Geometry(h, w, c, tuple(layer.pool_size), tuple(layer.strides), layer.padding,
                    oh, ow, c)


def _pool_stage(layer, g: Geometry, lanes: int, common: dict, tensor: str) -> PoolStagePlan:
    """A stand-alone pooling stage reading ``tensor`` at ``lanes`` values per beat."""
    bits, zp = layer.output.bits, layer.output.zero_point
    if isinstance(layer, QMean):
        unit = MeanPlan.build(height=g.in_h, width=g.in_w, channels=g.in_channels, lanes=lanes,
                              input_zero_point=layer.input.zero_point, output_zero_point=zp,
                              multiplier=int(layer.multiplier), shift=int(layer.shift),
                              keep_dims=bool(layer.keepdims))
        cycles = g.in_h * g.in_w * math.ceil(g.in_channels / lanes)
    else:
        args = dict(height=g.in_h, width=g.in_w, channels=g.in_channels, pool=g.kernel,
                    strides=g.strides, padding=g.padding, lanes=lanes, bits=bits)
        if isinstance(layer, QAvgPool2D):
            unit = AvgPoolPlan.build(**args, act_min=layer.act_min, act_max=layer.act_max,
                                     zero_point=zp)
        else:
            unit = PoolPlan.build(**args, zero_point=zp)
        cycles = pool_stage_cycles(g.in_h, g.in_w, g.in_channels, lanes, g.kernel, g.strides,
                                   g.padding)
    return PoolStagePlan(pool=None, rows=0, cols=0, cycles=cycles, macs=0, inputs=(tensor,),
                         output=layer.name, lanes=lanes, unit=unit, **common)


def _regroups(tensor: str, channels: int, lanes_in: int, lanes_out: int, bits: int,
              fill: int, suffix: str = "") -> tuple[list[RegroupPlan], str]:
    """The regroup from ``lanes_in`` to ``lanes_out`` values per beat (none if equal), and the
    tensor name the consumer reads."""
    if lanes_in == lanes_out:
        return [], tensor
    out = f"{tensor}@{suffix}{lanes_out}"
    return [RegroupPlan(input=tensor, output=out, channels=channels, lanes_in=lanes_in,
                        lanes_out=lanes_out, bits=bits, zero_point=fill)], out


def _add_geometry(info) -> Geometry:
    shape = tuple(info.output_shape)
    h, w, c = shape if len(shape) == 3 else (1, 1, math.prod(shape))
    return Geometry(h, w, c, (1, 1), (1, 1), "valid", h, w, c)


def _output_beats(stage) -> int:
    """Beats per frame of a stage's output stream."""
    g = stage.geometry
    pool = getattr(stage, "maxpool", None)
    pixels = math.prod(pool.out_shape) if pool is not None else g.out_h * g.out_w
    return pixels * ceil_div(g.filters, stage.out_lanes)


def _branches(tensors, nodes, where: str) -> tuple[str, list, list]:
    """The fork tensor of a join reading ``tensors``, and the two chains of nodes from it to
    each input (either may be empty); one-line error unless both are chains of one-input
    nodes from one tensor."""
    producers = {node.output: node for node in nodes}

    def walk(tensor):
        seq, chain = [tensor], []
        while tensor in producers:
            node = producers[tensor]
            inputs = _node_inputs(node)
            if len(inputs) != 1:
                break
            chain.append(node)
            tensor = inputs[0]
            seq.append(tensor)
        return seq, chain

    (seq0, chain0), (seq1, chain1) = walk(tensors[0]), walk(tensors[1])
    fork = next((t for t in seq1 if t in seq0), None)
    if fork is None:
        raise AccelError(f"{where}: its inputs do not branch from one tensor through layers "
                         f"with one input each; nested branches have no hardware lowering")
    return (fork, chain0[:seq0.index(fork)][::-1], chain1[:seq1.index(fork)][::-1])


def _add_stage(layer, g: Geometry, target: int, common: dict, sources, regroup, nodes,
               beats: dict, where: str) -> tuple[AddStagePlan, tuple]:
    """The :class:`~accel.plan.join.AddStagePlan` of ``layer`` (its inputs' streams are
    ``sources``; ``regroup`` adds a regroup to the plan, ``nodes()`` lists the plan's nodes so
    far), with the regroups to its lanes; and ``(where, fork tensor, branch nodes)``."""
    if layer.left_shift != 20 or layer.input.bits != 8 or layer.input2.bits != 8 or \
            layer.output.bits != 8:
        raise AccelError(f"{where}: only TFLite int8 ADD (left shift 20, 8-bit tensors) has a "
                         f"hardware lowering")
    lanes = add_lane_count(g.out_h * g.out_w, g.filters, target)
    inputs = []
    for (tensor, channels, lanes_in, bits), fill in zip(
            sources, (layer.input.zero_point, layer.input2.zero_point), strict=True):
        inputs.append(regroup(tensor, channels, lanes_in, lanes, bits, fill))
    fork, chain0, chain1 = _branches(inputs, nodes(), where)
    depths, leads = skip_depths((chain0, chain1), beats[fork])
    stage = AddStagePlan(
        pool=None, rows=0, cols=0, cycles=g.out_h * g.out_w * ceil_div(g.filters, lanes),
        macs=0, inputs=tuple(inputs), output=layer.name, lanes=lanes,
        zero_points=(layer.input.zero_point, layer.input2.zero_point),
        multipliers_q31=((layer.input1_multiplier, layer.input1_shift),
                         (layer.input2_multiplier, layer.input2_shift),
                         (layer.output_multiplier, layer.output_shift)),
        act_min=int(layer.act_min), act_max=int(layer.act_max), skip_depths=depths,
        leads=leads, **common)
    return stage, (where, fork, [*chain0, *chain1])


def _concat_stage(layer, g: Geometry, target: int, common: dict, sources, regroup, nodes,
                  beats: dict, where: str) -> tuple[ConcatStagePlan, tuple]:
    """The :class:`~accel.plan.concat.ConcatStagePlan` of ``layer`` (arguments as
    :func:`_add_stage`'s), with the regroups to its lanes; and ``(where, fork tensor, branch
    nodes)``."""
    channels = tuple(source[1] for source in sources)
    lanes = concat_lane_count(g.out_h * g.out_w, channels, target)
    # One quantization for inputs and output (the network checks it), so the fill is one.
    inputs = [regroup(tensor, c, lanes_in, lanes, bits, layer.output.zero_point)
              for tensor, c, lanes_in, bits in sources]
    fork, chain0, chain1 = _branches(inputs, nodes(), where)
    groups = (channels[0] // lanes, ceil_div(channels[1], lanes))
    depths, leads = concat_skip_depths((chain0, chain1), beats[fork], groups)
    stage = ConcatStagePlan(
        pool=None, rows=0, cols=0, cycles=g.out_h * g.out_w * sum(groups), macs=0,
        inputs=tuple(inputs), output=layer.name, lanes=lanes, in_channels=channels,
        skip_depths=depths, leads=leads, **common)
    return stage, (where, fork, [*chain0, *chain1])


def _check_pad(pad, users, where: str, positions: dict) -> None:
    """One-line error unless one Conv2D or DepthwiseConv2D reads ``pad`` (which the planner
    folds into its window); a pool's padding is not the PAD's (a max pool's padded taps never
    win, an average pool does not count them)."""
    if len(users) == 1 and isinstance(users[0], (QConv2D, QDepthwiseConv2D)):
        return
    if not users:
        what = "no layer"
    elif len(users) > 1:
        what = f"{len(users)} layers"
    else:
        what = f"layer {positions[users[0].name]} ({users[0].name}, {users[0].kind})"
    raise AccelError(f"{where}: a PAD has a hardware lowering only when one Conv2D or "
                     f"DepthwiseConv2D reads it (it is folded into that window), not {what}")


def _padded_geometry(g: Geometry, pad, pad_info, where: str) -> Geometry:
    """``g`` (a convolution reading ``pad``) on the PAD's input, with the PAD folded into its
    window as explicit padding (:func:`~accel.spec.shapes.fold_padding`)."""
    h, w, _ = pad_info.input_shape
    padding = fold_padding((h, w), pad.padding, g.kernel, g.strides, g.padding)
    win = window_2d((h, w), g.kernel, g.strides, padding)
    for axis, size in ((win.rows, h), (win.cols, w)):
        if axis.pad_before >= axis.kernel or axis.start(axis.out - 1) >= size:
            # The window generator expects an image row or column in every window.
            raise AccelError(f"{where}: the padding {pad.padding} of {pad.name} puts whole "
                             f"windows outside the image; that has no hardware lowering")
    return dataclasses.replace(g, in_h=h, in_w=w, padding=padding)


def _check_joins(joins, nodes, output_tensor: str) -> None:
    """One-line error unless every forked tensor is the fork of one join and nothing else
    reads a tensor inside a join's branches (the skip depths assume both)."""
    readers: dict[str, int] = {output_tensor: 1}
    for node in nodes:
        for name in _node_inputs(node):
            readers[name] = readers.get(name, 0) + 1
    forks = {}
    for where, fork, branch in joins:
        if fork in forks or readers.get(fork, 0) != 2:
            raise AccelError(f"{where}: its branches start at a tensor that other layers read "
                             f"too; only two-branch forks joined once have a hardware lowering")
        forks[fork] = where
        for node in branch:
            if readers.get(node.output, 0) != 1:
                raise AccelError(f"{where}: a tensor inside its branches ({node.output}) is "
                                 f"read elsewhere too; nested branches have no hardware "
                                 f"lowering")
    for name, count in readers.items():
        if count > 1 and name not in forks:
            raise AccelError(f"tensor {name}: read by {count} nodes but not joined again by an "
                             f"Add or a Concatenate; only forks that one joins have a hardware "
                             f"lowering")


def make_plan(qnet: QuantizedNetwork, max_rows: int, max_cols: int, *,
              allow_wide: bool = True, weights: WeightPlacement | None = None) -> NetworkPlan:
    """Plan ``qnet`` on arrays of at most ``max_rows x max_cols`` (see module doc).

    ``allow_wide=False`` keeps every float requantization on the 53-bit float datapath
    instead of a proven-exact integer multiplier (:func:`accel.plan.lower.requant_plan`).

    ``weights`` places the weights for a board (:mod:`.weights`): every weight is in ROMs
    unless the plan then needs more block RAMs than ``weights.bram_blocks``; in that case
    Dense layers (one use per weight per image, the lowest reuse; convolutions stay in ROMs)
    stream from the first of ``weights.memories`` that holds them, the largest layer first,
    until the block RAMs suffice or no Dense layer is left (the fit check then says what does
    not fit). ``weights.stream`` names layers that stream in any case.
    """
    if weights is None:
        return _plan_once(qnet, max_rows, max_cols, allow_wide, frozenset(), None)
    batch = check_batch(weights.batch)
    dense = {layer.name: layer for layer in qnet.layers if isinstance(layer, QDense)}
    where = f"--board {weights.board}" if weights.board else "the board"
    for name in weights.stream:
        if name not in dense:
            raise AccelError(f"--stream {name}: only Dense layers can stream their weights "
                             f"(choose from {', '.join(dense) or 'none in this model'})")
    if weights.stream and not weights.memories:
        raise AccelError(f"{where} has no external memory to stream {weights.stream[0]} "
                         f"from (SDRAM, SPRAM or flash)")
    # Lowest reuse first: every Dense weight is used once per image; among them, the largest
    # layer frees the most block RAM.
    order = sorted((n for n in dense if n not in weights.stream),
                   key=lambda n: -dense[n].weights.size)
    streamed = set(weights.stream)

    def attempt() -> NetworkPlan:
        if not streamed:
            return _plan_once(qnet, max_rows, max_cols, allow_wide, frozenset(), None)
        need = None
        for memory in weights.memories:
            try:
                return _plan_once(qnet, max_rows, max_cols, allow_wide, frozenset(streamed),
                                  memory, batch)
            except _MemoryTooSmall as e:
                need = e
        raise AccelError(f"{qnet.name}: the streamed weights ({', '.join(sorted(streamed))}) "
                         f"need {need.words:,} words of {need.memory.word_bits} bits, more "
                         f"than {where}'s {need.memory.kind} holds "
                         f"({need.memory.words:,} words)")

    plan = attempt()
    while (weights.bram_blocks is not None and weights.memories and order
           and plan.bram_blocks(weights.family) > weights.bram_blocks):
        streamed.add(order.pop(0))
        plan = attempt()
    if batch > 1 and not plan.streamed_stages:
        raise AccelError(f"--batch {batch}: no layer streams its weights on {where}, so there "
                         f"is nothing to batch (--stream LAYER streams a Dense layer)")
    return plan


class _MemoryTooSmall(Exception):
    def __init__(self, memory: ExternalMemory, words: int):
        self.memory, self.words = memory, words


def _plan_once(qnet: QuantizedNetwork, max_rows: int, max_cols: int, allow_wide: bool,
               streamed: frozenset, memory: ExternalMemory | None,
               batch: int = 1) -> NetworkPlan:
    """The plan with the layers named in ``streamed`` reading their weights from
    ``memory``, each weight used for ``batch`` images."""
    from .lower import lower_depthwise_blocks, lower_stage_blocks

    if max_rows < 1 or max_cols < 1:
        raise AccelError(f"array must be at least 1x1, not {max_rows}x{max_cols}")
    infos = {info.name: info for info in qnet.network.infos}
    hw_layers = [layer for layer in qnet.layers if not isinstance(layer, QSoftmax)]
    # A Flatten is no hardware: its readers read the tensor it flattens. Nor is a PAD: it is
    # folded into the window of the convolution that reads it (its padding becomes explicit
    # per-side padding of that window, whose padding taps are the input zero point, which is
    # what TFLite's PAD pads with).
    alias = {INPUT: INPUT}
    pads = {layer.name: layer for layer in hw_layers if isinstance(layer, QPad)}
    for layer in hw_layers:
        if isinstance(layer, (QFlatten, QPad)):
            alias[layer.name] = alias[layer.inputs[0]]
        else:
            alias[layer.name] = layer.name
    readers: dict[str, list] = {}
    for layer in hw_layers:
        if not isinstance(layer, (QFlatten, QPad)):
            for name in layer.inputs:
                readers.setdefault(alias[name], []).append(layer)
    positions = {layer.name: position for position, layer in enumerate(hw_layers)}
    compute = []  # (layer, geometry, fused pool)
    fused: dict[str, list] = {}  # a Conv2D's name -> its entry in ``compute``
    for position, layer in enumerate(hw_layers):
        where = f"layer {position} ({layer.name})"
        if isinstance(layer, QDepthwiseConv2D) and \
                max_rows * max_cols < layer.weights.shape[3]:
            raise AccelError(f"{where}: a depthwise layer with depth_multiplier "
                             f"{layer.weights.shape[3]} needs an array of at least that many "
                             f"PEs, not {max_rows}x{max_cols}")
        source = alias.get(layer.inputs[0]) if layer.inputs else None
        if isinstance(layer, QPad):
            _check_pad(layer, [other for other in hw_layers if layer.name in other.inputs],
                       where, positions)
            continue
        if isinstance(layer, (QConv2D, QDense, QDepthwiseConv2D)):
            geometry = _geometry(layer, infos[layer.name])
            if layer.inputs[0] in pads:
                geometry = _padded_geometry(geometry, pads[layer.inputs[0]],
                                            infos[layer.inputs[0]], where)
            compute.append([layer, geometry, None])
            if isinstance(layer, QConv2D):
                fused[layer.name] = compute[-1]
        elif isinstance(layer, QMaxPool2D) and source in fused and \
                fused[source][2] is None and len(readers[source]) == 1:
            fused[source][2] = layer  # fused into the convolution's stage (its only reader)
        elif isinstance(layer, (QMaxPool2D, QAvgPool2D, QMean)):
            if isinstance(layer, QMaxPool2D) and (layer.act_min > layer.input.qmin
                                                  or layer.act_max < layer.input.qmax):
                raise AccelError(f"{where}: a stand-alone max pool cannot clamp to "
                                 f"[{layer.act_min}, {layer.act_max}]; put the activation "
                                 f"before the pool")
            compute.append([layer, _pool_geometry(layer, infos[layer.name]), None])
        elif isinstance(layer, QConcatenate) and len(layer.inputs) != 2:
            raise AccelError(f"{where}: a Concatenate of {len(layer.inputs)} inputs has no "
                             f"hardware lowering; only of two")
        elif isinstance(layer, (QAdd, QConcatenate)):
            compute.append([layer, _add_geometry(infos[layer.name]), None])
        elif isinstance(layer, QFlatten):
            continue
        else:  # PAD, a softmax inside the network, ...: not planned yet
            raise AccelError(f"{where}: {layer.kind} has no hardware lowering")
        if layer.name != qnet.logits_layer.name and not readers.get(layer.name):
            raise AccelError(f"{where}: its output is not read by any layer; the hardware has "
                             f"one output, the last layer's")
    for name, layers in readers.items():
        if len(layers) > 2:
            where = "the input" if name == INPUT else \
                f"layer {positions[name]} ({name})"
            raise AccelError(f"{where}: read by {len(layers)} layers; the hardware forks a "
                             f"tensor into two branches at most")
    if not compute:
        raise AccelError(f"{qnet.name}: no Conv2D or Dense layer to put in hardware")
    # The heaviest layer gets the whole array; its cycles set the interval everyone meets.
    if not any(isinstance(layer, _PE_LAYERS) for layer, _, _ in compute):
        raise AccelError(f"{qnet.name}: no Conv2D, DepthwiseConv2D or Dense layer to put in "
                         f"hardware")
    def memory_of(layer) -> ExternalMemory | None:
        return memory if layer.name in streamed else None

    fastest = [_stage_size(layer, g, max_rows, max_cols, 0, memory_of(layer), batch)[2]
               for layer, g, _ in compute if isinstance(layer, _PE_LAYERS)]
    next_base = 0  # the next streamed stage's first word address
    target = max(fastest)
    stages, regroups = [], []
    # The stream each layer's output is: tensor name, channels per "pixel", lanes, bits; and
    # the beats per frame of every tensor of the plan.
    streams = {INPUT: ("input", qnet.input_shape[-1], 1, qnet.input.bits)}
    beats = {"input": math.prod(qnet.input_shape)}
    made: dict[str, RegroupPlan] = {}  # a regroup two readers share is built once

    def regroup(tensor, channels, lanes_in, lanes_out, bits, fill, suffix=""):
        chain, out = _regroups(tensor, channels, lanes_in, lanes_out, bits, fill, suffix)
        for node in chain:
            if node.output not in made:
                made[node.output] = node
                regroups.append(node)
                beats[node.output] = (beats[node.input] // ceil_div(channels, lanes_in)
                                      * ceil_div(channels, lanes_out))
        return out

    joins = []
    for index, (layer, geometry, pool) in enumerate(compute):
        kh, kw = geometry.kernel
        fill = layer.input.zero_point
        tensor, channels, lanes, bits = streams[alias[layer.inputs[0]]]
        common = dict(index=index, layer=layer.name, kind=layer.kind, geometry=geometry,
                      in_bits=layer.input.bits, out_bits=layer.output.bits,
                      in_zero_point=layer.input.zero_point,
                      out_zero_point=layer.output.zero_point,
                      out_scale=float(layer.output.scale))
        if isinstance(layer, QAdd):
            stage, join = _add_stage(layer, geometry, target, common,
                                     [streams[alias[name]] for name in layer.inputs], regroup,
                                     lambda: [*regroups, *stages], beats,
                                     f"layer {positions[layer.name]} ({layer.name})")
            joins.append(join)
        elif isinstance(layer, QConcatenate):
            stage, join = _concat_stage(layer, geometry, target, common,
                                        [streams[alias[name]] for name in layer.inputs],
                                        regroup, lambda: [*regroups, *stages], beats,
                                        f"layer {positions[layer.name]} ({layer.name})")
            joins.append(join)
        elif isinstance(layer, (QMaxPool2D, QAvgPool2D, QMean)):
            stage = _pool_stage(layer, geometry, lanes, common, tensor)
        elif isinstance(layer, QDepthwiseConv2D):
            rows, cols, cycles = _stage_size(layer, geometry, max_rows, max_cols, target)
            blocks = lower_depthwise_blocks(layer, geometry, rows, cols,
                                            allow_wide=allow_wide)
            tensor = regroup(tensor, channels, lanes, blocks["depthwise"].lanes, bits, fill)
            stage = DepthwiseStagePlan(
                pool=None, rows=rows, cols=cols, cycles=cycles,
                macs=geometry.out_h * geometry.out_w * geometry.filters * kh * kw,
                inputs=(tensor,), output=layer.name, **common, **blocks)
        else:
            rows, cols, cycles = _stage_size(layer, geometry, max_rows, max_cols, target,
                                             memory_of(layer), batch)
            compute_cycles, k_tiles, f_tiles = stage_cycles(geometry, rows, cols)
            macs = (geometry.out_h * geometry.out_w * geometry.filters * kh * kw
                    * geometry.in_channels)
            if isinstance(layer, QDense):
                # Split every pixel into single values (dropping its padding lanes), then pack
                # the whole flattened image ``rows`` values per beat (the stream is in flatten
                # order).
                tensor = regroup(tensor, channels, lanes, 1, bits, fill)
                tensor = regroup(tensor, geometry.in_channels, 1, rows, bits, fill, "flat")
            else:
                tensor = regroup(tensor, channels, lanes, rows, bits, fill)
            output = pool.name if pool is not None else layer.name
            blocks = lower_stage_blocks(layer, pool, geometry, rows, cols, k_tiles, f_tiles,
                                        allow_wide=allow_wide, streamed=layer.name in streamed,
                                        batch=batch if layer.name in streamed else 1)
            weight_stream = None
            if layer.name in streamed:
                weight_stream = StreamedWeights.build(
                    memory=memory, base=next_base, tiles=blocks["array"].weights,
                    weight_bits=layer.weight_bits, compute_cycles=compute_cycles,
                    batch=batch, k_tiles=k_tiles, in_bits=layer.input.bits,
                    acc_bits=blocks["accumulator"].acc_bits)
                # The next stage's words start at a burst boundary.
                next_base = -(-weight_stream.end // memory.max_burst) * memory.max_burst
                if weight_stream.end > memory.words:
                    raise _MemoryTooSmall(memory, weight_stream.end)
            stage = StagePlan(
                pool=pool.name if pool else None, rows=rows, cols=cols, k_tiles=k_tiles,
                f_tiles=f_tiles, cycles=cycles, macs=macs, inputs=(tensor,), output=output,
                **common, **blocks, streamed=weight_stream,
            )
        stages.append(stage)
        out_channels = geometry.filters
        streams[layer.name] = (stage.output, out_channels, stage.out_lanes, layer.output.bits)
        if pool is not None:
            streams[pool.name] = streams[layer.name]
        beats[stage.output] = _output_beats(stage)
    last = qnet.logits_layer
    tensor, channels, lanes, bits = streams[alias[last.name]]
    tensor = regroup(tensor, channels, lanes, 1, bits, last.output.zero_point)
    _check_joins(joins, [*regroups, *stages], tensor)
    plan = NetworkPlan(name=qnet.name, max_rows=max_rows, max_cols=max_cols,
                       stages=tuple(stages), input_shape=tuple(qnet.input_shape),
                       output_layer=qnet.logits_layer.name,
                       output_shape=tuple(infos[qnet.logits_layer.name].output_shape),
                       regroups=tuple(regroups), input_tensor="input", output_tensor=tensor,
                       input_bits=qnet.input.bits, input_zero_point=qnet.input.zero_point,
                       input_scale=float(qnet.input.scale), scheme=qnet.scheme,
                       source=qnet.source,
                       softmax_in_software=qnet.layers[-1].kind == "softmax")
    return deepen_concat_buffers(deepen_skip_buffers(plan)) if joins else plan


def _memories_json(stage: StagePlan) -> list[dict]:
    return [memory.to_json() for memory in stage.memories]


def _stage_json(s: StagePlan | DepthwiseStagePlan | PoolStagePlan) -> dict:
    common = {
        "index": s.index, "layer": s.layer, "pool": s.pool, "kind": s.kind,
        "inputs": list(s.inputs), "output_tensor": s.output,
        "input": [s.geometry.in_h, s.geometry.in_w, s.geometry.in_channels],
        "output": [s.geometry.out_h, s.geometry.out_w, s.geometry.filters],
        "kernel": list(s.geometry.kernel), "strides": list(s.geometry.strides),
        "padding": s.geometry.padding, "array": [s.rows, s.cols], "pes": s.pes,
        "lanes": [s.in_lanes, s.out_lanes], "macs": s.macs,
        "cycles": s.cycles, "ideal_cycles": s.ideal_cycles,
        "utilization": s.utilization, "memory_bits": s.memory_bits,
        "memories": _memories_json(s),
        "multipliers": s.multipliers,
        "bram_blocks": {f: s.bram_blocks(f) for f in FAMILIES},
        "requant": s.requant.to_json() if s.requant is not None else None,
        "latency": s.latencies,
        "line_buffer_rows": s.window.buffer_rows if s.window is not None else 0,
    }
    if isinstance(s, PoolStagePlan):
        return common
    if isinstance(s, AddStagePlan):
        return {**common, "add": s.to_json()}
    if isinstance(s, ConcatStagePlan):
        return {**common, "concat": s.to_json()}
    if isinstance(s, DepthwiseStagePlan):
        d = s.depthwise
        return {**common, "depth_multiplier": d.depth_multiplier, "groups": d.groups,
                "input_bits": 9, "weight_bits": 8, "acc_bits": d.acc_bits,
                "fifo_depths": {"depthwise": d.fifo.words + 1,
                                "requant": s.requant.fifo_depth}}
    return {**common, "k_tiles": s.k_tiles, "f_tiles": s.f_tiles,
            "input_bits": s.array.input_bits, "weight_bits": s.array.weight_bits,
            "acc_bits": s.accumulator.acc_bits, "psum_bits": list(s.array.psum_bits),
            "fifo_depths": {"array": s.array.fifo_depth, "requant": s.requant.fifo_depth},
            "streamed": s.streamed.to_json() if s.streamed is not None else None}


def plan_dict(plan: NetworkPlan) -> dict:
    """The plan as one JSON-ready object (``accel plan --json`` and the sidecar)."""
    return {
        "name": plan.name,
        "array": f"{plan.max_rows}x{plan.max_cols}",
        "input_shape": list(plan.input_shape),
        "output_layer": plan.output_layer,
        "input_tensor": plan.input_tensor,
        "output_tensor": plan.output_tensor,
        "stages": [_stage_json(s) for s in plan.stages],
        "regroups": [r.to_json() for r in plan.regroups],
        "pes": plan.pes,
        "macs": plan.macs,
        "multipliers": plan.multipliers,
        "bram_blocks": {f: plan.bram_blocks(f) for f in FAMILIES},
        "input_cycles": plan.input_cycles,
        "interval_cycles": plan.interval_cycles,
        "interval_bound": plan.interval_bound,
        "stream_cycles": plan.stream_cycles,
        "batch": plan.batch,
        "weight_memory": (plan.streamed_stages[0].streamed.memory.to_json()
                          if plan.streamed_stages else None),
        "latency_cycles": plan.latency_cycles,
        "latency_exact": plan.latency_exact,
        "ideal_cycles": plan.ideal_cycles,
        "interval_vs_ideal": plan.interval_cycles / plan.ideal_cycles,
        "memory_bits": plan.memory_bits,
    }
