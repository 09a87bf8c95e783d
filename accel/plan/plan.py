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

The cycle model
---------------
A stage's cycles per frame are ``out_h * out_w * Kt * Ft`` (the array busy every cycle); the
pipeline's steady-state interval is the slowest stage's, or the input stream's (one value per
cycle: ``h * w * c`` per image) if that is slower, and the ideal is ``total MACs / total PEs``.
Frame-boundary refill is hidden (a window generator fills its next frame's first rows while
its stage still works on the last). The first image's latency is modelled beat by beat
(:mod:`.timing`, :attr:`NetworkPlan.latency_cycles`).
The planner gives the heaviest layer the whole ``R x C`` array and every other
layer the fewest PEs (rows at most R, columns at most C) that keep it within that interval.

The hardware IR
---------------
A stage carries one typed sub-plan per block (:mod:`.blocks`, :mod:`.requant`): window,
replay, array (with the tiled weights), accumulator, requantizer (a :class:`RequantMode`
and its constants), and the fused pool, each with the memories, multipliers, FIFO depths and
latency its component needs; :class:`~accel.hw.accelerator.Accelerator` is built from the
plan alone. Stages and the channel regroups between them are nodes that name the tensors
they consume and produce (``input`` is the model input), so the plan is a graph; today's
planner emits chains, and the accelerator connects nodes by those names.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field

from ..errors import AccelError
from ..quant.qnet import QConv2D, QDense, QFlatten, QMaxPool2D, QSoftmax, QuantizedNetwork
from ..quant.requant_mode import RequantMode
from .blocks import (
    AccumulatorPlan,
    ArrayPlan,
    PoolPlan,
    RegroupPlan,
    ReplayPlan,
    WindowPlan,
)
from .memory import FAMILIES, MemoryPlan
from .requant import RequantPlan

__all__ = ["Geometry", "NetworkPlan", "RequantMode", "StagePlan", "make_plan", "parse_array",
           "plan_dict", "stage_cycles"]


@dataclass(frozen=True)
class Geometry:
    """The input/output tensor shapes and window of one stage (a Dense is 1x1 with
    ``in_channels`` = the flattened length)."""

    in_h: int
    in_w: int
    in_channels: int
    kernel: tuple[int, int]
    strides: tuple[int, int]
    padding: str
    out_h: int
    out_w: int
    filters: int


@dataclass(frozen=True, eq=False)
class StagePlan:
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
    extra_multipliers : dict
        Multipliers per family outside the array and the requantizer.
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
    extra_multipliers: dict = field(default_factory=dict)

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def ideal_cycles(self) -> float:
        return self.macs / self.pes

    @property
    def utilization(self) -> float:
        return self.macs / (self.cycles * self.pes)

    @property
    def memories(self) -> tuple[MemoryPlan, ...]:
        """Every memory the stage's blocks instantiate."""
        found = [*self.array.weight_roms, self.replay.memory, self.replay.fifo,
                 self.array.fifo, self.requant.params, self.requant.fifo]
        if self.window is not None:
            found.insert(len(self.array.weight_roms), self.window.memory)
        if self.maxpool is not None:
            found.append(self.maxpool.memory)
        return tuple(found)

    @property
    def memory_bits(self) -> dict:
        """Bits per memory name (``weights``, ``line_buffer``, ``requant``, ``pool``, ...)."""
        bits = {"weights": 0, "line_buffer": 0, "requant": 0, "pool": 0}
        for memory in self.memories:
            bits[memory.name] = bits.get(memory.name, 0) + memory.total_bits
        return bits

    @property
    def multipliers(self) -> dict:
        """Hardware multipliers per FPGA family (Gowin in 9x9 halves): the PEs', the
        requantizer's and the stage's address arithmetic."""
        return {f: self.array.multipliers[f] + self.requant.multipliers[f]
                + self.extra_multipliers.get(f, 0) for f in FAMILIES}

    def bram_blocks(self, family: str) -> int:
        return sum(memory.blocks(family) for memory in self.memories)

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
class NetworkPlan:
    """The whole accelerator: its nodes (stages and regroups) in dataflow order, and the
    array size the user allowed.

    Members
    -------
    stages : tuple of StagePlan
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
    def interval_cycles(self) -> int:
        """Predicted steady-state cycles per inference: the slowest stage, or the input or
        output stream if that is slower (tiny layers on wide images). With no input gaps or
        output stalls it equals the measured interval cycle for cycle on the test networks
        (``tests/test_accelerator.py``)."""
        return max(max(s.cycles for s in self.stages), self.input_cycles, self.output_cycles)

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
        from .timing import first_image_times

        return first_image_times(self)[self.output_stage.output][-1]

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
        """Hardware multipliers per FPGA family (see :attr:`StagePlan.multipliers`)."""
        return {f: sum(s.multipliers[f] for s in self.stages) for f in FAMILIES}

    def bram_blocks(self, family: str) -> int:
        """Block RAMs on ``family``: the sum of every memory's (regroups hold none)."""
        return sum(s.bram_blocks(family) for s in self.stages)


def _node_inputs(node) -> tuple[str, ...]:
    return node.inputs if isinstance(node, StagePlan) else (node.input,)


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
    if isinstance(layer, QConv2D):
        h, w, cin = info.input_shape
        oh, ow, f = info.output_shape
        kh, kw = layer.weights.shape[:2]
        return Geometry(h, w, cin, (kh, kw), layer.strides, layer.padding, oh, ow, f)
    (n,) = info.input_shape
    return Geometry(1, 1, n, (1, 1), (1, 1), "valid", 1, 1, layer.weights.shape[1])


def _smallest_array(geometry: Geometry, max_rows: int, max_cols: int,
                    target: int) -> tuple[int, int]:
    """The fewest PEs (then the fewest wasted lanes) that finish within ``target`` cycles;
    the fastest shape if none does."""
    best = None
    # Rows beyond the input channels or columns beyond the filters only add idle PEs (the
    # cycles stop falling there), so the search is bounded by the layer, not by the array.
    for rows in range(1, min(max_rows, geometry.in_channels) + 1):
        for cols in range(1, min(max_cols, geometry.filters) + 1):
            cycles, _, _ = stage_cycles(geometry, rows, cols)
            key = (cycles > target, rows * cols if cycles <= target else cycles, cycles)
            if best is None or key < best[0]:
                best = (key, (rows, cols))
    return best[1]


def _regroups(tensor: str, channels: int, lanes_in: int, lanes_out: int, bits: int,
              fill: int, suffix: str = "") -> tuple[list[RegroupPlan], str]:
    """The regroup from ``lanes_in`` to ``lanes_out`` values per beat (none if equal), and the
    tensor name the consumer reads."""
    if lanes_in == lanes_out:
        return [], tensor
    out = f"{tensor}@{suffix}{lanes_out}"
    return [RegroupPlan(input=tensor, output=out, channels=channels, lanes_in=lanes_in,
                        lanes_out=lanes_out, bits=bits, zero_point=fill)], out


def make_plan(qnet: QuantizedNetwork, max_rows: int, max_cols: int, *,
              allow_wide: bool = True) -> NetworkPlan:
    """Plan ``qnet`` on arrays of at most ``max_rows x max_cols`` (see module doc).

    ``allow_wide=False`` keeps every float requantization on the 53-bit float datapath
    instead of a proven-exact integer multiplier (:func:`accel.plan.lower.requant_plan`).
    """
    from .lower import lower_stage_blocks

    if max_rows < 1 or max_cols < 1:
        raise AccelError(f"array must be at least 1x1, not {max_rows}x{max_cols}")
    # The hardware is built for chains so far (forks and joins come with the Add stage).
    qnet.require_chain("the hardware planner")
    infos = {info.name: info for info in qnet.network.infos}
    compute = []  # (layer, geometry, fused pool)
    hw_layers = [layer for layer in qnet.layers if not isinstance(layer, QSoftmax)]
    for position, layer in enumerate(hw_layers):
        where = f"layer {position} ({layer.name})"
        if isinstance(layer, (QConv2D, QDense)):
            compute.append([layer, _geometry(layer, infos[layer.name]), None])
        elif isinstance(layer, QMaxPool2D):
            if not compute or compute[-1][2] is not None or \
                    hw_layers[position - 1] is not compute[-1][0]:
                raise AccelError(f"{where}: a max pool must directly follow a Conv2D to be "
                                 f"fused into its stage")
            compute[-1][2] = layer
        elif isinstance(layer, QFlatten):
            continue
        else:  # pragma: no cover - qnet only holds the types above
            raise AccelError(f"{where}: {layer.kind} has no hardware lowering")
    if not compute:
        raise AccelError(f"{qnet.name}: no Conv2D or Dense layer to put in hardware")
    # The heaviest layer gets the whole array; its cycles set the interval everyone meets.
    fastest = [stage_cycles(g, *_smallest_array(g, max_rows, max_cols, 0))[0]
               for _, g, _ in compute]
    target = max(fastest)
    stages, regroups = [], []
    # The stream arriving at each point: tensor name, channels per "pixel", lanes, bits.
    tensor, channels, lanes, bits = "input", qnet.input_shape[-1], 1, qnet.input.bits
    for index, (layer, geometry, pool) in enumerate(compute):
        rows, cols = _smallest_array(geometry, max_rows, max_cols, target)
        cycles, k_tiles, f_tiles = stage_cycles(geometry, rows, cols)
        kh, kw = geometry.kernel
        macs = geometry.out_h * geometry.out_w * geometry.filters * kh * kw * geometry.in_channels
        fill = layer.input.zero_point
        if isinstance(layer, QDense):
            # Split every pixel into single values (dropping its padding lanes), then pack the
            # whole flattened image ``rows`` values per beat (the stream is in flatten order).
            first, tensor = _regroups(tensor, channels, lanes, 1, bits, fill)
            second, tensor = _regroups(tensor, geometry.in_channels, 1, rows, bits, fill,
                                       "flat")
            regroups += first + second
        else:
            chain, tensor = _regroups(tensor, channels, lanes, rows, bits, fill)
            regroups += chain
        output = pool.name if pool is not None else layer.name
        stages.append(StagePlan(
            index=index, layer=layer.name, pool=pool.name if pool else None,
            kind=layer.kind, geometry=geometry, rows=rows, cols=cols, k_tiles=k_tiles,
            f_tiles=f_tiles, cycles=cycles, macs=macs, inputs=(tensor,), output=output,
            in_bits=layer.input.bits, out_bits=layer.output.bits,
            in_zero_point=layer.input.zero_point, out_zero_point=layer.output.zero_point,
            out_scale=float(layer.output.scale),
            **lower_stage_blocks(layer, pool, geometry, rows, cols, k_tiles, f_tiles,
                                 allow_wide=allow_wide),
        ))
        tensor, channels, lanes, bits = output, geometry.filters, cols, layer.output.bits
    last = compute[-1][0]
    out_chain, tensor = _regroups(tensor, channels, lanes, 1, bits, last.output.zero_point)
    regroups += out_chain
    return NetworkPlan(name=qnet.name, max_rows=max_rows, max_cols=max_cols,
                       stages=tuple(stages), input_shape=tuple(qnet.input_shape),
                       output_layer=qnet.logits_layer.name,
                       output_shape=tuple(infos[qnet.logits_layer.name].output_shape),
                       regroups=tuple(regroups), input_tensor="input", output_tensor=tensor,
                       input_bits=qnet.input.bits, input_zero_point=qnet.input.zero_point,
                       input_scale=float(qnet.input.scale), scheme=qnet.scheme,
                       source=qnet.source,
                       softmax_in_software=qnet.layers[-1].kind == "softmax")


def _memories_json(stage: StagePlan) -> list[dict]:
    return [memory.to_json() for memory in stage.memories]


def plan_dict(plan: NetworkPlan) -> dict:
    """The plan as one JSON-ready object (``accel plan --json`` and the sidecar)."""
    return {
        "name": plan.name,
        "array": f"{plan.max_rows}x{plan.max_cols}",
        "input_shape": list(plan.input_shape),
        "output_layer": plan.output_layer,
        "input_tensor": plan.input_tensor,
        "output_tensor": plan.output_tensor,
        "stages": [{
            "index": s.index, "layer": s.layer, "pool": s.pool, "kind": s.kind,
            "inputs": list(s.inputs), "output_tensor": s.output,
            "input": [s.geometry.in_h, s.geometry.in_w, s.geometry.in_channels],
            "output": [s.geometry.out_h, s.geometry.out_w, s.geometry.filters],
            "kernel": list(s.geometry.kernel), "strides": list(s.geometry.strides),
            "padding": s.geometry.padding, "array": [s.rows, s.cols], "pes": s.pes,
            "k_tiles": s.k_tiles, "f_tiles": s.f_tiles, "macs": s.macs,
            "cycles": s.cycles, "ideal_cycles": s.ideal_cycles,
            "utilization": s.utilization, "memory_bits": s.memory_bits,
            "memories": _memories_json(s),
            "multipliers": s.multipliers,
            "bram_blocks": {f: s.bram_blocks(f) for f in FAMILIES},
            "input_bits": s.array.input_bits, "weight_bits": s.array.weight_bits,
            "acc_bits": s.accumulator.acc_bits,
            "psum_bits": list(s.array.psum_bits),
            "requant": s.requant.to_json(),
            "latency": s.latencies,
            "fifo_depths": {"array": s.array.fifo_depth, "requant": s.requant.fifo_depth},
            "line_buffer_rows": s.window.buffer_rows if s.window is not None else 0,
        } for s in plan.stages],
        "regroups": [r.to_json() for r in plan.regroups],
        "pes": plan.pes,
        "macs": plan.macs,
        "multipliers": plan.multipliers,
        "bram_blocks": {f: plan.bram_blocks(f) for f in FAMILIES},
        "input_cycles": plan.input_cycles,
        "interval_cycles": plan.interval_cycles,
        "latency_cycles": plan.latency_cycles,
        "ideal_cycles": plan.ideal_cycles,
        "interval_vs_ideal": plan.interval_cycles / plan.ideal_cycles,
        "memory_bits": plan.memory_bits,
    }
