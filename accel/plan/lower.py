"""Lowering one quantized Conv2D/Dense layer (and its fused max pool) to typed sub-plans.

Everything the stage's hardware needs is decided here, once: operand and accumulator widths,
the weight tiling in the array's address order, the requantization mode and its constants
(including the planner's choice of ``wide``), and every block's sub-plan.
"""

from __future__ import annotations

import numpy as np

from ..errors import AccelError
from ..quant import numerics
from ..quant.qnet import QConv2D, QDense, QDepthwiseConv2D, QMaxPool2D
from ..quant.requant_mode import RequantMode
from .blocks import (
    AccumulatorPlan,
    ArrayPlan,
    DepthwisePlan,
    PoolPlan,
    ReplayPlan,
    WindowPlan,
)
from .memory import FAMILIES
from .requant import RequantPlan, multipliers_per_lane

__all__ = ["accumulator_bits", "input_bits", "lower_depthwise_blocks",
           "lower_stage_blocks",
           "requant_plan", "tile_weights", "wide_constants"]

def tile_weights(layer: QConv2D | QDense, rows: int, cols: int) -> np.ndarray:
    """The layer's weights as array tiles ``(Ft * Kt, rows, cols)``, tile ``ft * Kt + kt``.

    k-tile ``kt`` of a convolution is tap ``kt // G`` (row-major over ``kh, kw``) and channel
    group ``kt % G`` (``G = ceil(cin / rows)``), i.e. the window generator's beat order; of a
    dense layer it is inputs ``kt * rows ..``. f-tile ``ft`` holds filters ``ft * cols ..``.
    Positions past ``cin`` or ``F`` are zero.
    """
    w = layer.weights
    if isinstance(layer, QDense):
        w = w.reshape(1, 1, *w.shape)  # a 1x1 convolution over the flattened input
    kh, kw, cin, filters = w.shape
    groups = -(-cin // rows)
    f_tiles = -(-filters // cols)
    padded = np.zeros((kh, kw, groups * rows, f_tiles * cols), np.int64)
    padded[:, :, :cin, :filters] = w
    # (kh, kw, G, R, Ft, C) -> (Ft, kh, kw, G, R, C) -> (Ft * Kt, R, C)
    tiles = padded.reshape(kh, kw, groups, rows, f_tiles, cols).transpose(4, 0, 1, 2, 3, 5)
    return tiles.reshape(f_tiles * kh * kw * groups, rows, cols)


def input_bits(layer) -> int:
    """Width of the array operand ``x - zp_in`` (9 bits for int8 with a nonzero zero point)."""
    q = layer.input
    return numerics.signed_bits_for(q.qmin - q.zero_point, q.qmax - q.zero_point)


def _window_range(layer) -> tuple[int, int]:
    q = layer.input
    # A depthwise output sums its kh * kw taps of one input channel only.
    shape = layer.weights.shape
    terms = int(shape[0] * shape[1]) if isinstance(layer, QDepthwiseConv2D) \
        else int(np.prod(shape[:-1]))
    return numerics.accumulator_range(
        terms=terms, x_range=(q.qmin - q.zero_point, q.qmax - q.zero_point),
        w_range=(int(layer.weights.min()), int(layer.weights.max())))


def accumulator_bits(layer: QConv2D | QDense) -> int:
    """Width of the window sums (bias excluded): exact for the layer's actual weights."""
    return numerics.signed_bits_for(*_window_range(layer))


def wide_constants(layer: QConv2D | QDense) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel integer ``(multiplier, shift)`` that reproduce the layer's float
    requantization for every accumulator it can produce (proven by
    :func:`accel.quant.numerics.wide_multiplier_for_scale`), or None if some channel has none
    of at most 48 bits."""
    rq = layer.requant
    lo, hi = _window_range(layer)
    int32 = (-(2**31), 2**31 - 1)
    mults, shifts = [], []
    for ch, scale in enumerate(np.asarray(rq.scale, np.float64)):
        b = int(layer.bias[ch])
        # The hardware adds the bias and saturates to int32 before the product.
        acc_range = (max(lo + b, int32[0]), min(hi + b, int32[1]))
        try:
            m, n = numerics.wide_multiplier_for_scale(
                float(scale), rq.zero_point, rq.act_min, rq.act_max, acc_range)
        except ValueError:
            return None
        if n > 255:
            return None
        mults.append(m)
        shifts.append(n)
    return np.array(mults, dtype=np.int64), np.array(shifts, dtype=np.int64)


def _out_channels(layer) -> int:
    if isinstance(layer, QDepthwiseConv2D):
        return int(layer.weights.shape[2] * layer.weights.shape[3])
    return int(layer.weights.shape[-1])


def requant_plan(layer: QConv2D | QDense, lanes: int, acc_bits: int, *,
                 allow_wide: bool = True, beat_cycles: int = 1) -> RequantPlan:
    """The layer's requantizer. A float requantization becomes ``wide`` when an integer
    multiplier is proven exact and takes fewer hardware multipliers than the 53-bit
    significand (it always takes fewer LUTs: no rounding to 53 bits). ``beat_cycles``: the
    fewest cycles between the stage's accumulator beats (room for a serial lane)."""
    rq = layer.requant
    mode = RequantMode.parse(rq.mode)
    channels = _out_channels(layer)
    args = dict(channels=channels, lanes=lanes, acc_bits=acc_bits, out_bits=layer.output.bits,
                bias=layer.bias.astype(np.int64), act_min=rq.act_min, act_max=rq.act_max,
                beat_cycles=beat_cycles)
    if mode is RequantMode.TFLITE:
        return RequantPlan.build(mode=mode, multiplier=rq.multiplier.astype(np.int64),
                                 shift=rq.shift.astype(np.int64), zero_point=rq.zero_point,
                                 **args)
    if mode is RequantMode.POW2:
        return RequantPlan.build(mode=mode, shift=rq.shift.astype(np.int64), zero_point=0,
                                 **args)
    exact = wide_constants(layer) if allow_wide and acc_bits <= 32 else None
    if exact is not None:
        wide = RequantPlan.build(mode=RequantMode.WIDE, multiplier=exact[0], shift=exact[1],
                                 zero_point=rq.zero_point, **args)
        if all(multipliers_per_lane(wide.mult_bits, f) <= multipliers_per_lane(53, f)
               for f in FAMILIES):
            return wide
    return RequantPlan.build(mode=RequantMode.FLOAT, scale=np.asarray(rq.scale, np.float64),
                             zero_point=rq.zero_point, **args)


def lower_stage_blocks(layer: QConv2D | QDense, pool: QMaxPool2D | None, geometry, rows: int,
                       cols: int, k_tiles: int, f_tiles: int, *,
                       allow_wide: bool = True, streamed: bool = False,
                       batch: int = 1) -> dict:
    """The sub-plans of one stage (keyword arguments of :class:`~accel.plan.plan.StagePlan`);
    ``streamed``: the array takes its weights from a stream (no ROMs, no weight address);
    ``batch``: its images per weight frame (:mod:`accel.hw.batch`)."""
    if pool is not None and (pool.act_min > layer.requant.act_min
                             or pool.act_max < layer.requant.act_max):
        raise AccelError(f"layer {pool.name}: the pool clamps to [{pool.act_min}, "
                         f"{pool.act_max}], narrower than {layer.name}'s output; put the "
                         f"activation before the pool")
    g, in_bits = geometry, layer.input.bits
    window = None
    if isinstance(layer, QConv2D):
        window = WindowPlan.build(height=g.in_h, width=g.in_w, channels=g.in_channels,
                                  kernel=g.kernel, strides=g.strides, padding=g.padding,
                                  lanes=rows, zero_point=layer.input.zero_point, bits=in_bits)
    acc_bits = accumulator_bits(layer)
    maxpool = None
    if pool is not None:
        maxpool = PoolPlan.build(height=g.out_h, width=g.out_w, channels=g.filters,
                                 pool=pool.pool_size, strides=pool.strides,
                                 padding=pool.padding, lanes=cols, bits=layer.output.bits,
                                 zero_point=layer.output.zero_point)
    return dict(
        window=window,
        replay=ReplayPlan.build(lanes=rows, k_tiles=k_tiles, f_tiles=f_tiles, bits=in_bits),
        array=ArrayPlan.build(rows=rows, cols=cols, k_tiles=k_tiles, f_tiles=f_tiles,
                              input_bits=input_bits(layer), weight_bits=layer.weight_bits,
                              weights=tile_weights(layer, rows, cols), act_bits=in_bits,
                              streamed=streamed),
        accumulator=AccumulatorPlan(cols=cols, acc_bits=acc_bits),
        # One accumulator beat per Kt array beats, and the array takes one beat per cycle; a
        # batch's sums leave the BatchAccumulator one a cycle (a serial requantizer would
        # hold them back, and the whole batch with them).
        requant=requant_plan(layer, cols, acc_bits, allow_wide=allow_wide,
                             beat_cycles=k_tiles if batch == 1 else 1),
        maxpool=maxpool,
    )


def lower_depthwise_blocks(layer: QDepthwiseConv2D, geometry, rows: int, cols: int, *,
                           allow_wide: bool = True) -> dict:
    """The sub-plans of one depthwise stage on a ``rows x cols`` multiplier budget (keyword
    arguments of :class:`~accel.plan.plan.DepthwiseStagePlan`): window generator (``L``
    channels per beat), PEs, requantizer (``L * m`` lanes)."""
    g, q = geometry, layer.input
    kh, kw, cin, mult = layer.weights.shape
    if q.bits != 8 or layer.output.bits != 8 or layer.weight_bits != 8:
        raise AccelError(f"layer {layer.name}: the depthwise stage is built for int8 "
                         f"activations and weights, not {q.bits}-bit activations and "
                         f"{layer.weight_bits}-bit weights")
    lanes = rows * cols // mult
    window = WindowPlan.build(height=g.in_h, width=g.in_w, channels=cin, kernel=g.kernel,
                              strides=g.strides, padding=g.padding, lanes=lanes,
                              zero_point=q.zero_point, bits=q.bits)
    # The PEs' sums are exact for these weights; the requantizer takes them at that width.
    probe = DepthwisePlan.build(
        rows=rows, cols=cols, depth_multiplier=mult, channels=cin, kernel=g.kernel,
        out_shape=(g.out_h, g.out_w), weights=layer.weights.reshape(kh, kw, cin * mult),
        input_zero_point=q.zero_point, input_range=(q.qmin, q.qmax), requant_latency=0)
    requant = requant_plan(layer, probe.pes, probe.acc_bits, allow_wide=allow_wide)
    depthwise = DepthwisePlan.build(
        rows=rows, cols=cols, depth_multiplier=mult, channels=cin, kernel=g.kernel,
        out_shape=(g.out_h, g.out_w), weights=layer.weights.reshape(kh, kw, cin * mult),
        input_zero_point=q.zero_point, input_range=(q.qmin, q.qmax),
        requant_latency=requant.latency)
    return dict(window=window, depthwise=depthwise, requant=requant)
