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
The model leaves out a few cycles per image at frame boundaries, where a window generator
refills its first window: negligible once an image takes more than a few hundred cycles.
The planner gives the heaviest layer the whole ``R x C`` array and every other
layer the fewest PEs (rows at most R, columns at most C) that keep it within that interval.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import AccelError
from ..quant.qnet import QConv2D, QDense, QFlatten, QMaxPool2D, QSoftmax, QuantizedNetwork


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


@dataclass(frozen=True)
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
    memory_bits : dict
        ``weights``, ``line_buffer``, ``requant``, ``pool`` bits.
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
    memory_bits: dict

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def ideal_cycles(self) -> float:
        return self.macs / self.pes

    @property
    def utilization(self) -> float:
        return self.macs / (self.cycles * self.pes)


@dataclass(frozen=True)
class NetworkPlan:
    """The whole accelerator: stages in order, and the array size the user allowed."""

    name: str
    max_rows: int
    max_cols: int
    stages: tuple[StagePlan, ...]
    input_shape: tuple[int, ...]
    output_layer: str
    output_shape: tuple[int, ...]

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
    def interval_cycles(self) -> int:
        """Predicted steady-state cycles per inference: the slowest stage, or the input or
        output stream if that is slower (tiny layers on wide images)."""
        return max(max(s.cycles for s in self.stages), self.input_cycles, self.output_cycles)

    @property
    def latency_cycles(self) -> int:
        """Estimated cycles from an image's first input value to its last output value.

        Convolution stages overlap with what feeds them: one finishes one output row after
        both its own work and its input are done. A Dense stage's window is its whole input,
        so it starts when its input is complete. (An estimate: pipeline fill of a few dozen
        cycles per stage is left out; the seed network at 8x8 measures 2% above it.)
        """
        finish = self.input_cycles
        for stage in self.stages:
            if stage.kind == "dense":
                finish += stage.cycles
            else:
                finish = max(finish, stage.cycles) + stage.cycles // stage.geometry.out_h
        return finish + self.output_cycles

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


def _memory_bits(layer, geometry: Geometry, rows: int, cols: int, k_tiles: int,
                 f_tiles: int, pool: QMaxPool2D | None) -> dict:
    act_bits = layer.input.bits
    groups = math.ceil(geometry.in_channels / rows)
    kh, _ = geometry.kernel
    # The window generator keeps kh rows (plus one being written) of the padded-width input.
    line = (kh + 1) * geometry.in_w * groups * rows * act_bits if geometry.kernel != (1, 1) \
        else geometry.in_channels * act_bits
    pool_bits = 0
    if pool is not None:
        pool_bits = geometry.out_w * geometry.filters * layer.output.bits
    return {
        "weights": k_tiles * f_tiles * rows * cols * layer.weight_bits,
        "line_buffer": line,
        "requant": geometry.filters * (32 + 32 + 6),
        "pool": pool_bits,
    }


def make_plan(qnet: QuantizedNetwork, max_rows: int, max_cols: int) -> NetworkPlan:
    """Plan ``qnet`` on arrays of at most ``max_rows x max_cols`` (see module doc)."""
    if max_rows < 1 or max_cols < 1:
        raise AccelError(f"array must be at least 1x1, not {max_rows}x{max_cols}")
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
    stages = []
    for index, (layer, geometry, pool) in enumerate(compute):
        rows, cols = _smallest_array(geometry, max_rows, max_cols, target)
        cycles, k_tiles, f_tiles = stage_cycles(geometry, rows, cols)
        kh, kw = geometry.kernel
        macs = geometry.out_h * geometry.out_w * geometry.filters * kh * kw * geometry.in_channels
        stages.append(StagePlan(
            index=index, layer=layer.name, pool=pool.name if pool else None,
            kind=layer.kind, geometry=geometry, rows=rows, cols=cols, k_tiles=k_tiles,
            f_tiles=f_tiles, cycles=cycles, macs=macs,
            memory_bits=_memory_bits(layer, geometry, rows, cols, k_tiles, f_tiles, pool),
        ))
    return NetworkPlan(name=qnet.name, max_rows=max_rows, max_cols=max_cols,
                       stages=tuple(stages), input_shape=tuple(qnet.input_shape),
                       output_layer=qnet.logits_layer.name,
                       output_shape=tuple(infos[qnet.logits_layer.name].output_shape))


def plan_dict(plan: NetworkPlan) -> dict:
    """The plan as one JSON-ready object (``accel plan --json`` and the sidecar)."""
    return {
        "name": plan.name,
        "array": f"{plan.max_rows}x{plan.max_cols}",
        "input_shape": list(plan.input_shape),
        "output_layer": plan.output_layer,
        "stages": [{
            "index": s.index, "layer": s.layer, "pool": s.pool, "kind": s.kind,
            "input": [s.geometry.in_h, s.geometry.in_w, s.geometry.in_channels],
            "output": [s.geometry.out_h, s.geometry.out_w, s.geometry.filters],
            "kernel": list(s.geometry.kernel), "strides": list(s.geometry.strides),
            "padding": s.geometry.padding, "array": [s.rows, s.cols], "pes": s.pes,
            "k_tiles": s.k_tiles, "f_tiles": s.f_tiles, "macs": s.macs,
            "cycles": s.cycles, "ideal_cycles": s.ideal_cycles,
            "utilization": s.utilization, "memory_bits": s.memory_bits,
        } for s in plan.stages],
        "pes": plan.pes,
        "macs": plan.macs,
        "input_cycles": plan.input_cycles,
        "interval_cycles": plan.interval_cycles,
        "latency_cycles": plan.latency_cycles,
        "ideal_cycles": plan.ideal_cycles,
        "interval_vs_ideal": plan.interval_cycles / plan.ideal_cycles,
        "memory_bits": plan.memory_bits,
    }
