"""TFLite's int8 reference kernels for the MLPerf Tiny operators, bit for bit, in NumPy.

Pure functions on integer arrays (NHWC, ``int8`` codes as any integer dtype) and plain
parameters; no layer classes. Each ``*_params`` / ``*_multiplier(s)`` function derives the
integer parameters of one kernel from the ``float32`` scales of its tensors, in the precision
and order of the TFLite source, with the primitives of :mod:`accel.quant.numerics`. What runs
in ``ai_edge_litert`` (2.3) with ``OpResolverType.BUILTIN_REF``, read from the LiteRT sources
(``tflite/kernels/*.cc``, ``kernels/internal/reference/``) and confirmed on thousands of random
one-operator models (``examples/tflite_ops``, ``tests/test_tflite_kernels.py``):

``DEPTHWISE_CONV_2D``
    ``reference_integer_ops::DepthwiseConvPerChannel`` (``integer_ops/depthwise_conv.h``).
    Filter ``(1, kh, kw, cin * m)``; output channel ``c * m + j`` (``j < m``, the depth
    multiplier) sees input channel ``c`` only. ``acc = bias + sum w * (x - zp_in)`` over the
    in-image taps (padding is skipped, i.e. contributes the zero point), in int32; then
    ``MultiplyByQuantizedMultiplier`` with double rounding (SRDHM, then RoundingDivideByPOT),
    plus ``zp_out``, clamped to the fused activation. The per-channel multipliers come from
    ``PopulateConvolutionQuantizationParams``: ``QuantizeMultiplier(double(s_in) *
    double(s_w[c]) / double(s_out))``, also for a per-tensor filter scale -- exactly CONV_2D's
    requantization (:func:`accel.quant.numerics.requantize`); the float requantization of
    the FC reference kernel disagrees on 1,132 of the fixture's outputs. The depth multiplier
    is ``filter channels / input channels``: the option is not read (options 1, 2 and 3 on a
    4-over-2-channel filter all run, identically).
``AVERAGE_POOL_2D``
    ``reference_integer_ops::AveragePool`` (``integer_ops/pooling.h``). The sum of the raw int8
    codes over the window clipped to the image (no zero point is subtracted), divided by the
    number of in-image taps (so an edge window of a SAME pool averages fewer values, never
    padding), rounded half away from *code* 0 (``(acc +- n/2) / n`` with C division:
    :func:`~accel.quant.numerics.divide_round_half_away_from_zero`; a negative sum's tie goes
    down, e.g. -3/2 -> -2), then clamped to the fused activation range. On the fixture,
    rounding about the zero point instead would differ on 6,940 outputs, half-to-even on
    9,675, floor division on 36,738, dividing by the full window (padding as zero points) on
    26,947. No requantization: the kernel assumes the output shares the input's scale and
    zero point, but only a debug-build ``DCHECK`` says so; given another output quantization
    the interpreter writes the same raw average, clamped to the fused activation of the
    *output* tensor (observed).
``ADD``
    ``reference_integer_ops::Add`` (``integer_ops/add.h``), parameters from ``add.cc``'s
    ``Prepare``: ``left_shift = 20``; ``twice_max = 2 * double(max(s1, s2))``; input ``i``'s
    multiplier ``QuantizeMultiplierSmallerThanOneExp(s_i / twice_max)`` (so the larger input
    gets exactly ``(2**30, 0)``, one half) and the output's ``QuantizeMultiplierSmallerThanOneExp
    (twice_max / (2**20 * s_out))``. Per element: ``((x_i - zp_i) << 20)`` scaled by its own
    multiplier (``MultiplyByQuantizedMultiplierSmallerThanOneExp``: SRDHM, then
    RoundingDivideByPOT), the two summed in int32, scaled by the output multiplier the same
    way, plus ``zp_out``, clamped to the fused activation (ReLU/ReLU6/ReLU_N1_TO_1). Three
    roundings, each half away from zero after a half-up SRDHM. With 20 bits of headroom the
    result equals ``round(real sum)`` except next to exact halves; with scales in small
    ratios (1/3, 3/2, ...: the fixture's 30 %) ``round(real sum)`` differs on 818 outputs and
    single rounding on 1,611. An output factor ``twice_max / (2**20 * s_out)`` of 1 or more
    makes ``TFLITE_CHECK`` abort the interpreter's process (observed); :func:`add_params`
    raises :class:`ValueError`.
``MEAN`` (over H and W of a 4-D tensor, ``keep_dims`` true or false)
    ``reference_ops::QuantizedMeanOrSum`` (``reference/reduce.h``): on the reference path of
    ``reduce.cc`` every int8 mean goes there, whatever ``keep_dims``, the axes, and whether the
    input and output scales and zero points are equal (no special case for them; the
    optimized kernel has one for ``keep_dims`` 4-D H/W means, the reference kernel does not).
    ``Prepare`` makes ``(M, e) = QuantizeMultiplier(double(s_in) / double(s_out))``; the kernel
    folds ``1/n`` (``n = H * W``) into it: ``k = min(floor(log2 n), 32, 31 + e)``, ``M' =
    (M << k) / n`` (int64, truncated), ``e' = e - k``; then per output ``sum(x) - zp_in * n``
    goes through ``MultiplyByQuantizedMultiplier(., M', e')`` (double rounding), plus
    ``zp_out``, clamped to int8. No fused activation. So the mean is *not* rounded on its
    own: ``1/n`` is a truncated 31-bit fixed-point factor. With equal input and output
    quantization (713 fixture cases) ``round(mean)`` differs on 534 outputs and TFLite's
    older truncating ``sum / n`` on 2,660; the older ``integer_ops::Mean`` (scale, then
    divide with rounding) differs on 754 outputs of all 2,000 cases.
``PAD``
    ``optimized_ops::PadImageStyle`` / ``Pad`` via ``pad.cc``'s ``EvalInt`` (the reference
    registration calls the same code for int8): the input codes are copied unchanged and the
    border is filled with the *output* tensor's zero point (without a ``constant_values``
    input); nothing is requantized, even when the output's scale or zero point differ from the
    input's (15 % of the fixture: padding with the input's zero point would differ on 58,157
    outputs). Paddings per side and axis, ``>= 0``; "image-style" (no batch or channel
    padding) and general paddings give the same result.
``CONCATENATION``
    ``reference_ops::Concatenation``: a plain copy (``memcpy`` of each input's slab along the
    axis). For int8, ``concatenation.cc``'s ``Prepare`` *refuses* the model unless every input
    has exactly the output's scale and zero point (``TF_LITE_ENSURE_EQ``); only uint8 has a
    rescaling path (``ConcatenationWithScaling``: ``round(q * (s_i / s_out) - zp_i * (s_i /
    s_out)) + zp_out`` in float32). So there is no inexact int8 concatenation to reproduce:
    :func:`concatenation` raises :class:`ValueError` for it, as the interpreter does
    (``allocate_tensors`` fails, observed; the converter's quantizer constrains an int8
    concatenation's inputs to the output's scale, so converted models meet the condition).

Window and padding geometry (SAME: ``out = ceil(n / s)``, the smaller half of the padding
before) is :func:`accel.spec.shapes.window_2d`, the same as for CONV_2D and MAX_POOL_2D.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..spec.shapes import window_2d
from . import numerics
from .windows import extract_windows

__all__ = [
    "AddParams",
    "add",
    "add_params",
    "average_pool2d",
    "concatenation",
    "depthwise_conv2d",
    "depthwise_conv2d_acc",
    "depthwise_multipliers",
    "mean_hw",
    "mean_multiplier",
    "pad",
]

INT8_MIN, INT8_MAX = numerics.int_range(8)


# --- argument checking ----------------------------------------------------------------------


def _int_array(name: str, value: ArrayLike, ndim: int | None = None) -> NDArray[np.int64]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an array of integers, not dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, not shape {arr.shape}")
    return arr.astype(np.int64)


def _int8_codes(name: str, value: ArrayLike, ndim: int | None = 4) -> NDArray[np.int64]:
    arr = _int_array(name, value, ndim)
    if arr.size and (int(arr.min()) < INT8_MIN or int(arr.max()) > INT8_MAX):
        raise ValueError(f"{name} must hold int8 codes, not values in "
                         f"{int(arr.min())}..{int(arr.max())}")
    return arr


def _zero_point(name: str, value: object) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer in -128..127, not {value!r}")
    if not INT8_MIN <= value <= INT8_MAX:
        raise ValueError(f"{name} must be an integer in -128..127, not {value!r}")
    return int(value)


def _pair(name: str, value: object) -> tuple[int, int]:
    try:
        a, b = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of positive integers, not {value!r}") from None
    for v in (a, b):
        if isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a pair of positive integers, not {value!r}")
    return int(a), int(b)


def _padding(value: object) -> str:
    if value not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', not {value!r}")
    return str(value)


def _act_range(act_min: int, act_max: int) -> tuple[int, int]:
    lo, hi = int(act_min), int(act_max)
    if not INT8_MIN <= lo <= hi <= INT8_MAX:
        raise ValueError(f"act_min, act_max must satisfy -128 <= act_min <= act_max <= 127, "
                         f"not {act_min!r}, {act_max!r}")
    return lo, hi


# --- DEPTHWISE_CONV_2D ------------------------------------------------------------------------


def depthwise_multipliers(
    input_scale: float, weight_scale: ArrayLike, output_scale: float
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Per-channel ``(multipliers, shifts)`` of DEPTHWISE_CONV_2D, from the float32 scales.

    ``QuantizeMultiplier(double(s_in) * double(s_w[c]) / double(s_out))`` per output channel,
    as ``PopulateConvolutionQuantizationParams``; a single (per-tensor) ``weight_scale`` gives
    one pair, which broadcasts over the channels.

    Parameters
    ----------
    input_scale, output_scale : float
        Tensor scales, finite and > 0 as float32.
    weight_scale : array_like of float
        Filter scale(s): one per output channel (``cin * depth_multiplier``), or one.
    """
    scale = np.atleast_1d(numerics.effective_scale(input_scale, weight_scale, output_scale))
    multiplier, shift = numerics.quantize_multiplier_array(scale)
    return np.atleast_1d(multiplier), np.atleast_1d(shift)


def depthwise_conv2d_acc(
    x: ArrayLike,
    weights: ArrayLike,
    bias: ArrayLike | None,
    *,
    input_zero_point: int,
    strides: tuple[int, int],
    padding: str,
) -> NDArray[np.int64]:
    """The int32 accumulators of DEPTHWISE_CONV_2D, ``(N, OH, OW, cin * m)``.

    Parameters
    ----------
    x : array_like of int
        int8 input codes, NHWC.
    weights : array_like of int
        int8 filter in TFLite's layout ``(1, kh, kw, cin * m)`` (or ``(kh, kw, cin * m)``);
        its channel count must be a multiple of ``cin``; the quotient is the depth multiplier.
    bias : array_like of int or None
        int32 bias per output channel, or None.
    input_zero_point : int
        The input's zero point, int8.
    strides : (int, int)
        ``(stride_h, stride_w)``, >= 1.
    padding : str
        ``"same"`` or ``"valid"``.
    """
    xs = _int8_codes("x", x)
    w = _int_array("weights", weights)
    if w.ndim == 4:
        if w.shape[0] != 1:
            raise ValueError(f"weights must have shape (1, kh, kw, C), not {w.shape}")
        w = w[0]
    if w.ndim != 3:
        raise ValueError(f"weights must have shape (1, kh, kw, C), not {w.shape}")
    cin = xs.shape[3]
    cout = w.shape[2]
    if cin == 0 or cout % cin:
        raise ValueError(f"weights' {cout} channels must be a multiple of the input's {cin}")
    depth_multiplier = cout // cin
    zp = _zero_point("input_zero_point", input_zero_point)
    window = window_2d(xs.shape[1:3], w.shape[:2], _pair("strides", strides), _padding(padding))
    kh, kw = w.shape[:2]
    # |x - zp| <= 255: the sum of the kh * kw taps is exact in int32 when this bound allows
    # (it always does for int8 weights), which is several times faster than int64.
    wide = kh * kw * 255 * int(np.abs(w).max(initial=0)) >= 2**31
    dtype = np.int64 if wide else np.int32
    if depth_multiplier > 1:
        xs = xs[..., np.repeat(np.arange(cin), depth_multiplier)]  # input channel of c*m + j
    # Padding contributes x = zp, i.e. 0 after the subtraction: TFLite skips those taps.
    p = window.padding_amounts
    n, h, w_in = xs.shape[:3]
    u = np.zeros((n, h + p["top"] + p["bottom"], w_in + p["left"] + p["right"], cout), dtype)
    np.subtract(xs, zp, out=u[:, p["top"]:p["top"] + h, p["left"]:p["left"] + w_in],
                casting="unsafe")  # |x - zp| <= 255: no wrap in int32
    oh, ow = window.out_shape
    sh, sw = window.rows.stride, window.cols.stride
    taps = w.astype(dtype)
    acc = np.zeros((xs.shape[0], oh, ow, cout), dtype)
    term = np.empty_like(acc)
    for i in range(kh):
        for j in range(kw):
            np.multiply(u[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw],
                        taps[i, j], out=term)
            acc += term
    acc = acc.astype(np.int64)
    if bias is not None:
        b = _int_array("bias", bias, 1)
        if b.shape != (cout,):
            raise ValueError(f"bias must have shape ({cout},), not {b.shape}")
        acc = acc + b
    return acc


def depthwise_conv2d(
    x: ArrayLike,
    weights: ArrayLike,
    bias: ArrayLike | None,
    *,
    input_zero_point: int,
    strides: tuple[int, int],
    padding: str,
    multiplier: ArrayLike,
    shift: ArrayLike,
    output_zero_point: int,
    act_min: int,
    act_max: int,
) -> NDArray[np.int64]:
    """DEPTHWISE_CONV_2D int8, per-channel: :func:`depthwise_conv2d_acc`, requantized.

    ``multiplier``/``shift`` from :func:`depthwise_multipliers`; ``act_min``/``act_max`` from
    :func:`accel.quant.numerics.fused_activation_range` of the output. Returns int8 codes
    (as int64), ``(N, OH, OW, cin * m)``.
    """
    acc = depthwise_conv2d_acc(x, weights, bias, input_zero_point=input_zero_point,
                               strides=strides, padding=padding)
    lo, hi = _act_range(act_min, act_max)
    return numerics.requantize(acc, multiplier, shift,
                               _zero_point("output_zero_point", output_zero_point), lo, hi)


# --- AVERAGE_POOL_2D --------------------------------------------------------------------------


def average_pool2d(
    x: ArrayLike,
    *,
    pool_size: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
    act_min: int = INT8_MIN,
    act_max: int = INT8_MAX,
) -> NDArray[np.int64]:
    """AVERAGE_POOL_2D int8: the rounded mean of the in-image codes of each window, clamped.

    Parameters
    ----------
    x : array_like of int
        int8 codes, NHWC. The output has the input's scale and zero point.
    pool_size, strides : (int, int)
        Window and stride, ``(h, w)``.
    padding : str
        ``"same"`` or ``"valid"``; padded taps are not counted.
    act_min, act_max : int
        The fused activation's clamp (:func:`~accel.quant.numerics.fused_activation_range`).
    """
    xs = _int8_codes("x", x)
    window = window_2d(xs.shape[1:3], _pair("pool_size", pool_size), _pair("strides", strides),
                       _padding(padding))
    lo, hi = _act_range(act_min, act_max)
    total = extract_windows(xs, window, 0).sum(axis=(3, 4))
    inside = np.ones((1, *xs.shape[1:3], 1), dtype=np.int64)
    count = extract_windows(inside, window, 0).sum(axis=(3, 4))
    return np.clip(numerics.divide_round_half_away_from_zero(total, count), lo, hi)


# --- ADD ----------------------------------------------------------------------------------------


class AddParams(NamedTuple):
    """ADD's integer parameters (``tflite::ArithmeticParams``), from :func:`add_params`."""

    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int


def add_params(input1_scale: float, input2_scale: float, output_scale: float) -> AddParams:
    """ADD's multipliers and shifts from the three float32 scales, as ``add.cc``'s Prepare.

    ``twice_max = 2 * double(max(s1, s2))``, ``s_i / twice_max`` per input and
    ``twice_max / (2**20 * s_out)`` for the output, each through
    :func:`~accel.quant.numerics.quantize_multiplier_smaller_than_one_exp` (so each must be
    below 1: TFLite aborts otherwise, here :class:`ValueError`).
    """
    s1, s2, s_out = (float(np.float32(s)) for s in (input1_scale, input2_scale, output_scale))
    for name, s in (("input1_scale", s1), ("input2_scale", s2), ("output_scale", s_out)):
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"{name} must be finite and > 0 as a float32, not {s!r}")
    left_shift = 20
    twice_max = 2.0 * max(s1, s2)
    m1, e1 = numerics.quantize_multiplier_smaller_than_one_exp(s1 / twice_max)
    m2, e2 = numerics.quantize_multiplier_smaller_than_one_exp(s2 / twice_max)
    mo, eo = numerics.quantize_multiplier_smaller_than_one_exp(
        twice_max / (float(1 << left_shift) * s_out))
    return AddParams(left_shift, m1, e1, m2, e2, mo, eo)


def add(
    x1: ArrayLike,
    x2: ArrayLike,
    *,
    input1_zero_point: int,
    input2_zero_point: int,
    output_zero_point: int,
    params: AddParams,
    act_min: int = INT8_MIN,
    act_max: int = INT8_MAX,
) -> NDArray[np.int64]:
    """ADD int8: both inputs offset, shifted left, rescaled, summed, rescaled, clamped.

    Parameters
    ----------
    x1, x2 : array_like of int
        int8 codes of the same shape (NumPy broadcasting also applies, as TFLite's
        ``BroadcastAdd6DSlow`` would elementwise).
    input1_zero_point, input2_zero_point, output_zero_point : int
        The tensors' zero points.
    params : AddParams
        From :func:`add_params`.
    act_min, act_max : int
        The fused activation's clamp on the output.
    """
    a = _int8_codes("x1", x1, None)
    b = _int8_codes("x2", x2, None)
    lo, hi = _act_range(act_min, act_max)
    p = params
    zp1 = _zero_point("input1_zero_point", input1_zero_point)
    zp2 = _zero_point("input2_zero_point", input2_zero_point)
    zp_out = _zero_point("output_zero_point", output_zero_point)

    def direct(a, b):
        scaled1 = numerics.multiply_by_quantized_multiplier(
            (a - zp1) << p.left_shift, p.input1_multiplier, p.input1_shift)
        scaled2 = numerics.multiply_by_quantized_multiplier(
            (b - zp2) << p.left_shift, p.input2_multiplier, p.input2_shift)
        raw = numerics.multiply_by_quantized_multiplier(
            scaled1 + scaled2, p.output_multiplier, p.output_shift)
        return np.clip(raw + zp_out, lo, hi)

    if a.size + b.size < 2 * 256 * 256:
        return direct(a, b)
    # The output is a function of the two int8 codes alone: evaluate it once on all 256 x 256
    # pairs and look the data up (the same arithmetic, so the same bits). A pair the data does
    # not hold may overflow where the data would not: then compute directly.
    codes = np.arange(INT8_MIN, INT8_MAX + 1, dtype=np.int64)
    try:
        table = direct(codes[:, None], codes[None, :])
    except (OverflowError, ValueError):
        return direct(a, b)
    return table[a - INT8_MIN, b - INT8_MIN]


# --- MEAN ---------------------------------------------------------------------------------------


def mean_multiplier(input_scale: float, output_scale: float) -> tuple[int, int]:
    """MEAN's ``QuantizeMultiplier(double(s_in) / double(s_out))`` (``reduce.cc`` Prepare)."""
    ratio = numerics.effective_scale(input_scale, 1.0, output_scale)
    return numerics.quantize_multiplier(float(ratio))


def mean_hw(
    x: ArrayLike,
    *,
    input_zero_point: int,
    output_zero_point: int,
    multiplier: int,
    shift: int,
    keep_dims: bool,
) -> NDArray[np.int64]:
    """MEAN int8 over axes 1 and 2 (H, W) of an NHWC tensor: ``reference_ops::QuantizedMeanOrSum``.

    Parameters
    ----------
    x : array_like of int
        int8 codes, NHWC.
    input_zero_point, output_zero_point : int
        The tensors' zero points.
    multiplier, shift : int
        From :func:`mean_multiplier`.
    keep_dims : bool
        Output ``(N, 1, 1, C)`` if true, ``(N, C)`` otherwise (the values are the same).
    """
    xs = _int8_codes("x", x)
    zp_in = _zero_point("input_zero_point", input_zero_point)
    zp_out = _zero_point("output_zero_point", output_zero_point)
    count = xs.shape[1] * xs.shape[2]
    if count == 0:
        raise ValueError(f"x must have at least one element per channel, not shape {xs.shape}")
    # Fold 1/count into the multiplier, as the kernel does (int64 shift, truncating division).
    k = min(count.bit_length() - 1, 32, 31 + int(shift))
    folded = (int(multiplier) << k) // count
    shifted_sum = xs.sum(axis=(1, 2)) - zp_in * count
    out = numerics.multiply_by_quantized_multiplier(shifted_sum, folded, int(shift) - k)
    out = np.clip(out + zp_out, INT8_MIN, INT8_MAX)
    return out[:, None, None, :] if keep_dims else out


# --- PAD and CONCATENATION ------------------------------------------------------------------


def pad(x: ArrayLike, paddings: ArrayLike, *, output_zero_point: int) -> NDArray[np.int64]:
    """PAD int8: the codes copied unchanged, the border filled with the output's zero point.

    Parameters
    ----------
    x : array_like of int
        int8 codes, any rank.
    paddings : array_like of int
        ``(rank, 2)``: ``(before, after)`` per axis, each >= 0.
    output_zero_point : int
        The output tensor's zero point: the value of every padded element.
    """
    xs = _int8_codes("x", x, None)
    p = _int_array("paddings", paddings, 2)
    if p.shape != (xs.ndim, 2) or (p.size and int(p.min()) < 0):
        raise ValueError(f"paddings must be {xs.ndim} pairs of integers >= 0, not {p.tolist()}")
    zp = _zero_point("output_zero_point", output_zero_point)
    return np.pad(xs, [tuple(int(v) for v in row) for row in p], constant_values=zp)


def concatenation(
    xs: Sequence[ArrayLike],
    *,
    input_scales: Sequence[float],
    input_zero_points: Sequence[int],
    output_scale: float,
    output_zero_point: int,
    axis: int = -1,
) -> NDArray[np.int64]:
    """CONCATENATION int8: an exact copy, when every input is quantized like the output.

    TFLite refuses any other int8 concatenation in ``Prepare`` (``scale`` and ``zero_point``
    of each input must equal the output's, compared as float32 and int32); so does this
    function, with :class:`ValueError`.

    Parameters
    ----------
    xs : sequence of array_like of int
        int8 codes, at least one, equal in every dimension but ``axis``.
    input_scales, input_zero_points : sequence
        Each input's quantization.
    output_scale, output_zero_point
        The output's.
    axis : int
        The axis to concatenate on (default the last, channels in NHWC).
    """
    arrays = [_int8_codes(f"xs[{i}]", v, None) for i, v in enumerate(xs)]
    if not arrays:
        raise ValueError("xs must hold at least one input")
    if len(input_scales) != len(arrays) or len(input_zero_points) != len(arrays):
        raise ValueError(f"input_scales and input_zero_points must have one entry per input "
                         f"({len(arrays)}), not {len(input_scales)} and "
                         f"{len(input_zero_points)}")
    s_out, zp_out = np.float32(output_scale), int(output_zero_point)
    for i, (s, zp) in enumerate(zip(input_scales, input_zero_points, strict=True)):
        if np.float32(s) != s_out or int(zp) != zp_out:
            raise ValueError(
                f"input {i} is quantized (scale {float(np.float32(s))!r}, zero point {int(zp)}) "
                f"unlike the output (scale {float(s_out)!r}, zero point {zp_out}): TFLite's int8 "
                f"CONCATENATION has no rescaling and refuses such a model")
    return np.concatenate(arrays, axis=axis)
