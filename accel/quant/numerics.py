"""Integer arithmetic semantics: rounding, saturation, requantization, accumulator widths.

This module is the one place where the integer semantics of the accelerator are defined. The
golden model (a NumPy int8 CNN that must agree bit for bit with TensorFlow Lite's reference
kernels) and the tests of the hardware both call it, so each function states its contract
exactly.

Conventions
-----------
- Every function is vectorized: arguments are NumPy arrays of any shape (or scalars) and
  broadcast with NumPy's rules, so a per-channel parameter of shape ``(C,)`` applies along the
  last axis, the channel axis of an NHWC tensor. A scalar result comes back as a NumPy scalar.
- Integer results are ``int64`` (``quantize_multiplier_array`` returns ``int32``, the type
  TFLite stores). All intermediates are ``int64`` and provably in range: nothing wraps.
- Bad arguments (wrong type, outside the documented domain) raise :class:`ValueError` naming the
  parameter and the value. Where TFLite's C++ would overflow an ``int32`` (undefined behaviour,
  or a check that only debug builds make) we raise :class:`OverflowError` rather than guess what
  a given machine would do. Realistic layers never get there (see *Accumulator widths*).
- Tensor scales are ``float32`` quantities, as stored in a ``.tflite`` file. Functions taking a
  tensor scale round it to ``float32`` first and then follow the float/double operation order of
  the TFLite source, so the golden model sees the very numbers the interpreter sees.

The tflite-int8 pipeline
------------------------
With ``x`` the int8 input, ``w`` the int8 weights (symmetric, ``[-127, 127]``) and ``b`` the
int32 bias of output channel ``c``::

    acc[c] = b[c] + sum_i (x_i - zp_in) * w[i, c]
    M[c], n[c] = quantize_multiplier(effective_scale(s_in, s_w[c], s_out))
    y[c] = clamp(multiply_by_quantized_multiplier(acc[c], M[c], n[c]) + zp_out, act_min, act_max)

which is :func:`requantize`. ``M * 2**(n - 31)`` approximates the real factor
``s_in * s_w[c] / s_out`` with ``M`` in ``[2**30, 2**31)``. ``act_min``/``act_max`` come from
:func:`fused_activation_range` (this is how a fused ReLU or ReLU6 appears).

Rounding, precisely:

- :func:`round_half_away_from_zero` is C's ``round``: ties go away from zero. Used by
  :func:`quantize`, :func:`quantize_multiplier`, :func:`fused_activation_range` and
  :func:`requantize_float`.
- :func:`saturating_rounding_doubling_high_mul` (SRDHM) is ``a * b / 2**31`` rounded half
  toward +infinity, saturated (its only overflow, ``INT32_MIN * INT32_MIN``, gives
  ``INT32_MAX``).
- :func:`rounding_divide_by_pot` is ``x / 2**e`` rounded half away from zero.
- :func:`multiply_by_quantized_multiplier` therefore rounds twice (SRDHM, then the right shift);
  its ``single_rounding`` variant rounds ``x * M / 2**(31 - n)`` once, half toward +infinity.
- :func:`pow2_round_shift` is ``x / 2**s`` rounded half toward +infinity: add ``2**(s - 1)``,
  shift right arithmetically. In hardware that is one adder, and the cheapest rounding there is.

The pow2 scheme
---------------
hls4ml-style fixed point: a value with ``f`` fraction bits is ``real = q * 2**-f``. A product of
an input with ``f_in`` and a weight with ``f_w`` fraction bits has ``f_in + f_w``; the bias is
quantized to that too. The output, with ``f_out`` fraction bits, is
``pow2_requantize(acc, f_in + f_w - f_out, bits)``: a rounding shift, then saturation. There is
no multiplier per output channel, and no zero point.

Accumulator widths
------------------
Each term of a layer's accumulation is ``p = u * w`` with ``u`` in ``[ul, uh]`` (``u = x - zp``
for tflite-int8, ``u = x`` for pow2) and ``w`` in ``[wl, wh]``. A product is bilinear, so its
extremes are at the corners: ``pmin = min(ul*wl, ul*wh, uh*wl, uh*wh)`` and ``pmax`` likewise.
``T`` such terms plus a bias in ``[bl, bh]`` lie in ::

    [min(bl, 0) + T * min(pmin, 0),  max(bh, 0) + T * max(pmax, 0)]

(:func:`accumulator_range`). Widening each range to include 0 (a no-op for every format here,
since ``x = zp``, ``w = 0`` and ``b = 0`` are all possible) makes the interval contain every
*partial* sum too, with or without the bias and in any order: the systolic array adds the terms
in a different order than TFLite, and every value an accumulator register ever holds is such a
partial sum. Both ends are attained (every term at the same corner, the bias at its end), so
the interval is exact, not an estimate. :func:`signed_bits_for` gives the fewest
two's-complement bits ``N`` with ``-2**(N-1) <= low`` and ``high <= 2**(N-1) - 1``; an ``N``-bit
accumulator therefore cannot overflow, by construction, and ``N - 1`` bits can (tested).

``T`` is ``kh * kw * cin`` for a convolution (padding contributes ``x = zp``, so zero) and the
number of input features for a dense layer. For tflite-int8, ``x - zp`` spans ``[-255, 255]``
and ``w`` spans ``[-127, 127]``, so ``|p| <= 32385``: a 3x3 convolution over 32 channels
(``T = 288``) needs 25 bits without bias, a dense layer over 7*7*64 = 3136 features 28 bits.
TFLite itself accumulates in ``int32``, which holds 66311 worst-case terms without bias; the
functions here accept an ``acc`` only within ``int32`` for the same reason.

Which TFLite kernel uses what
-----------------------------
Read from the TensorFlow sources (``tensorflow/lite/kernels/...``); what runs in the PyPI
interpreter with ``OpResolverType.BUILTIN_REF``:

- ``CONV_2D`` and ``DEPTHWISE_CONV_2D`` int8: ``reference_integer_ops::ConvPerChannel`` /
  ``DepthwiseConvPerChannel`` (``internal/reference/integer_ops/conv.h``,
  ``depthwise_conv.h``). ``acc`` is ``int32``: ``sum w * (x + input_offset)`` with
  ``input_offset = -zp_in`` over the in-image taps only (padding is skipped, i.e. contributes
  0), plus bias; then ``MultiplyByQuantizedMultiplier`` with the per-channel multiplier and
  shift, plus ``zp_out``, clamped: :func:`requantize`. The multipliers come from
  ``PopulateConvolutionQuantizationParams`` (``kernels/kernel_util.cc``):
  ``QuantizeMultiplier(double(s_in) * double(s_w[c]) / double(s_out))`` for every channel, also
  for per-tensor weights: :func:`effective_scale`, :func:`quantize_multiplier_array`.
- ``FULLY_CONNECTED`` int8 (``kernels/fully_connected.cc``,
  ``internal/reference/integer_ops/fully_connected.h``): older releases requantize like conv,
  with ``MultiplyByQuantizedMultiplier``; the per-tensor multiplier comes from
  ``GetQuantizedConvolutionMultipler``, which multiplies the two scales in *float32* before
  dividing in double (``effective_scale(..., float32_product=True)``), the per-channel ones as
  conv does. Since the commit "Make the fully_connected ref kernel do requant in float"
  (TF 2.20 / LiteRT), the *reference* path (per-tensor and per-channel) instead computes
  ``int32(round(double(acc) * (double(s_in) * double(s_w) / double(s_out))))`` and then adds
  ``zp_out`` and clamps: :func:`requantize_float`. The optimized path still uses the
  multiplier. Per-tensor FC also adds a weight offset ``-zp_w`` (0 for symmetric weights).
- ``MAX_POOL_2D`` int8 (``reference_integer_ops::MaxPool``, ``integer_ops/pooling.h``): the max
  over the window clipped to the image (padding never wins), clamped to the fused-activation
  range; no requantization (input and output share scale and zero point).
  (``AVERAGE_POOL_2D`` divides with ``(acc +- n/2) / n``, i.e. rounds half away from zero.)
- ``QUANTIZE`` float to int8 (``reference_ops::AffineQuantize``, ``reference/quantize.h``):
  ``round(val / float(scale))`` in *float32*, plus ``zp`` and clamp in double: :func:`quantize`.
  ``DEQUANTIZE``: ``float(double(scale) * (q - zp))``: :func:`dequantize`.
- Fused activations (``CalculateActivationRangeQuantized``, ``kernels/kernel_util.cc``):
  ``zp + int32(round(f / scale))`` in float32 for ``f`` = 0, 6, -1, 1, intersected with the
  type's range: :func:`fused_activation_range`.
- ``SOFTMAX`` int8 (``kernels/activations.cc``; ``reference_ops::Softmax`` in
  ``reference/softmax.h`` on the reference path, a uint16 LUT (``SoftmaxInt8LUT``) or gemmlowp
  on the optimized one): per row, ``d = x - max(x)``; entries with ``d < diff_min`` output -128.
  Otherwise ``d`` is scaled by ``MultiplyByQuantizedMultiplierGreaterThanOne`` (SRDHM of
  ``d << left_shift``; the multiplier and shift from ``PreprocessSoftmaxScaling(beta, s_in, 5)``
  encode ``beta * s_in * 2**26``) into Q5.26, ``exp`` is gemmlowp's fixed-point
  ``exp_on_negative_values`` (Q0.31), the sum is kept in Q12.19, its reciprocal comes from
  ``GetReciprocal`` (Newton-Raphson), and the output is
  ``RoundingDivideByPOT(reciprocal * exp, bits_over_unit + 31 - 8) - 128``, clamped, with the
  output scale fixed at 1/256 and zero point -128. Implemented in :mod:`accel.quant.softmax`
  (not in hardware: the accelerator returns the logits).
- ``MultiplyByQuantizedMultiplierGreaterThanOne`` and ``...SmallerThanOneExp`` are
  :func:`multiply_by_quantized_multiplier` with ``shift >= 0`` and ``shift <= 0``; no int8 op
  this project needs uses anything else.
- Rounding mode of ``MultiplyByQuantizedMultiplier``: double rounding unless TFLite is built
  with ``TFLITE_SINGLE_ROUNDING`` (``internal/common.cc``), and the PyPI builds are not (their
  MUL and MEAN kernels are observed to double-round). Beware the XNNPACK delegate, on by default
  in the Python interpreter: it rounds once, in its own way, in the ops it takes (observed for
  CONV_2D, ADD and MUL). Reference comparisons must therefore use ``BUILTIN_REF``, the
  reference kernels without default delegates.
"""

import functools
import math
from typing import Any, Final, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ACTIVATIONS",
    "Float64Requantizer",
    "INT32_MAX",
    "INT32_MIN",
    "IntArray",
    "accumulator_bits",
    "accumulator_bound",
    "accumulator_range",
    "dequantize",
    "divide_round_half_away_from_zero",
    "effective_scale",
    "float64_requantize_exact",
    "fused_activation_range",
    "int_range",
    "multiply_by_quantized_multiplier",
    "pow2_requantize",
    "pow2_round_shift",
    "quantize",
    "quantize_multiplier",
    "quantize_multiplier_array",
    "quantize_multiplier_smaller_than_one_exp",
    "requantize",
    "requantize_float",
    "requantize_wide",
    "wide_multiplier_for_scale",
    "round_half_away_from_zero",
    "rounding_divide_by_pot",
    "saturate",
    "saturating_rounding_doubling_high_mul",
    "signed_bits_for",
]

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1

#: Fused activations :func:`fused_activation_range` knows (the names ``accel.spec`` uses, plus
#: TFLite's ``RELU_N1_TO_1``).
ACTIVATIONS: Final = ("linear", "relu", "relu6", "relu_n1_to_1")

#: What the integer functions return: an ``int64`` array, or an ``int64`` NumPy scalar when
#: every argument was a scalar.
IntArray: TypeAlias = NDArray[np.int64] | np.int64

# pow2_round_shift works on values of at most 63 bits, so that adding the rounding half and
# shifting left can be checked and never wrap int64.
_POW2_LIMIT: Final = 2**62


# --- argument checking ----------------------------------------------------------------------


def _what(value: object, arr: np.ndarray) -> str:
    return repr(value) if arr.ndim == 0 else f"an array of dtype {arr.dtype}"


def _as_int(name: str, value: ArrayLike) -> NDArray[np.int64]:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"{name} must be an integer or an array of integers, not {value!r}"
        ) from None
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > 2**63 - 1:
        raise ValueError(f"{name} must fit in int64, not {int(arr.max())}")
    if arr.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be an integer or an array of integers, not {_what(value, arr)}"
        )
    return arr.astype(np.int64, copy=False)


def _check_within(name: str, arr: NDArray[np.int64], lo: int, hi: int) -> None:
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        raise ValueError(f"{name} must lie in {lo}..{hi}, not {int(arr[bad].flat[0])}")


def _as_int32(name: str, value: ArrayLike) -> NDArray[np.int64]:
    arr = _as_int(name, value)
    _check_within(name, arr, INT32_MIN, INT32_MAX)
    return arr


def _as_float(name: str, value: ArrayLike) -> NDArray[np.floating]:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a number or an array of numbers, not {value!r}") from None
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a number or an array of numbers, not {_what(value, arr)}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{name} must not be NaN")
    return arr


def _as_scale(name: str, value: ArrayLike, *, float32: bool) -> NDArray[np.floating]:
    arr = _as_float(name, value).astype(np.float64)
    # A tensor scale is a float32 in the model file; round it as TFLite would (huge values
    # become inf and are then rejected, so the overflow warning is expected and silenced).
    with np.errstate(over="ignore"):
        converted = arr.astype(np.float32) if float32 else arr
    bad = ~np.isfinite(converted) | (converted <= 0)
    if bad.any():
        kind = " as a float32" if float32 else ""
        raise ValueError(f"{name} must be finite and > 0{kind}, not {float(arr[bad].flat[0])!r}")
    return converted


def _int_param(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
    return int(value)


def _bool_param(name: str, value: object) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, not {value!r}")
    return bool(value)


def _broadcast(**arrays: np.ndarray) -> None:
    try:
        np.broadcast_shapes(*(arr.shape for arr in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{name} {arr.shape}" for name, arr in arrays.items())
        raise ValueError(f"shapes do not broadcast: {shapes}") from None


def _first(mask: np.ndarray, **arrays: np.ndarray) -> str:
    # Describe the first element where `mask` holds, for an error message.
    index = np.argwhere(mask)[0] if mask.ndim else ()
    parts = []
    for name, arr in arrays.items():
        full = np.broadcast_to(arr, mask.shape)
        parts.append(f"{name}={full[tuple(index)].item()!r}")
    return ", ".join(parts)


def _result(arr: np.ndarray) -> Any:
    # A 0-d result (all arguments scalars) comes back as a NumPy scalar.
    return arr[()] if arr.ndim == 0 else arr


def _check_int32_result(values: NDArray[np.int64], what: str, **arrays: np.ndarray) -> None:
    bad = (values < INT32_MIN) | (values > INT32_MAX)
    if bad.any():
        raise OverflowError(f"{what} overflows int32 at {_first(bad, **arrays)}")


# --- ranges and saturation -----------------------------------------------------------------


def int_range(bits: int, signed: bool = True) -> tuple[int, int]:
    """The range of a two's-complement (or unsigned) integer type.

    Parameters
    ----------
    bits : int
        Width in bits, 1..63.
    signed : bool
        Two's complement if true, unsigned otherwise.

    Returns
    -------
    tuple of int
        ``(lo, hi)``: ``(-2**(bits-1), 2**(bits-1) - 1)`` or ``(0, 2**bits - 1)``.
    """
    bits = _int_param("bits", bits, 1, 63)
    if _bool_param("signed", signed):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def saturate(x: ArrayLike, bits: int, signed: bool = True) -> IntArray:
    """Clamp integers to the range of a ``bits``-wide integer type.

    Parameters
    ----------
    x : array_like of int
        Values to clamp.
    bits, signed
        The target type, as for :func:`int_range`.

    Returns
    -------
    IntArray
        ``min(max(x, lo), hi)`` with ``(lo, hi) = int_range(bits, signed)``.
    """
    lo, hi = int_range(bits, signed)
    return _result(np.clip(_as_int("x", x), lo, hi))


def signed_bits_for(lo: int, hi: int) -> int:
    """The fewest two's-complement bits that hold every integer in ``[lo, hi]``.

    Parameters
    ----------
    lo, hi : int
        The range, ``lo <= hi``; arbitrary-precision Python integers are fine.

    Returns
    -------
    int
        The least ``N >= 1`` with ``-2**(N-1) <= lo`` and ``hi <= 2**(N-1) - 1``.
    """
    for name, value in (("lo", lo), ("hi", hi)):
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, not {value!r}")
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"lo must not exceed hi, not {lo} > {hi}")
    bits = 1
    if hi > 0:
        bits = max(bits, hi.bit_length() + 1)
    if lo < 0:
        bits = max(bits, (-lo - 1).bit_length() + 1)
    return bits


# --- float <-> int --------------------------------------------------------------------------


def _round_away(x: NDArray[np.floating]) -> NDArray[np.floating]:
    # x - trunc(x) is exact in binary floating point, and so is trunc(x) +- 1 whenever the
    # fraction is nonzero, so this rounds exactly (unlike floor(x + 0.5), which can round
    # 0.49999999999999994 up). inf - inf warns "invalid"; the result is still inf.
    with np.errstate(invalid="ignore"):
        whole = np.trunc(x)
        bump = (np.abs(x - whole) >= 0.5).astype(x.dtype)
        return whole + np.copysign(bump, x)


def round_half_away_from_zero(x: ArrayLike) -> NDArray[np.floating]:
    """Round to the nearest integer, ties away from zero: C's ``round`` / ``std::round``.

    Parameters
    ----------
    x : array_like of float
        Values to round; ``float32`` stays ``float32`` (the rounding is exact in either),
        integers become ``float64``.

    Returns
    -------
    ndarray of float
        The rounded values (infinities unchanged), same float dtype.
    """
    return _result(_round_away(_as_float("x", x)))


def quantize(
    real: ArrayLike, scale: ArrayLike, zero_point: ArrayLike, bits: int = 8, signed: bool = True
) -> IntArray:
    """Quantize real values: ``clamp(round(real / scale) + zero_point)``, as TFLite does.

    This is TFLite's reference ``AffineQuantize`` (the QUANTIZE op): ``real`` and ``scale`` are
    ``float32`` and the division is done in ``float32``, then rounded half away from zero,
    offset by the zero point and clamped to the type's range.

    Parameters
    ----------
    real : array_like of float
        Values to quantize (converted to ``float32``; NaN is rejected, infinities clamp).
    scale : array_like of float
        Quantization step(s), finite and > 0 as a ``float32``; per channel it broadcasts
        along the last axis.
    zero_point : array_like of int
        Zero point(s), within the target type's range.
    bits, signed
        The target integer type, as for :func:`int_range`.

    Returns
    -------
    IntArray
        The quantized values.
    """
    lo, hi = int_range(bits, signed)
    with np.errstate(over="ignore"):  # |real| beyond float32 becomes inf and clamps
        values = _as_float("real", real).astype(np.float32)
    steps = _as_scale("scale", scale, float32=True)
    zp = _as_int("zero_point", zero_point)
    _check_within("zero_point", zp, lo, hi)
    _broadcast(real=values, scale=steps, zero_point=zp)
    with np.errstate(over="ignore"):
        ratio = values / steps
    unclamped = _round_away(ratio).astype(np.float64) + zp
    return _result(np.clip(unclamped, lo, hi).astype(np.int64))


def dequantize(q: ArrayLike, scale: ArrayLike, zero_point: ArrayLike) -> NDArray[np.float64]:
    """Real values of quantized ones: ``scale * (q - zero_point)``.

    Parameters
    ----------
    q : array_like of int
        Quantized values.
    scale : array_like of float
        Quantization step(s), finite and > 0 as a ``float32`` (rounded to it, as TFLite stores
        it); per channel it broadcasts along the last axis.
    zero_point : array_like of int
        Zero point(s).

    Returns
    -------
    ndarray of float64
        ``double(float32(scale)) * (q - zero_point)``; cast to ``float32`` it is exactly what
        TFLite's DEQUANTIZE produces.
    """
    values = _as_int("q", q)
    steps = _as_scale("scale", scale, float32=True).astype(np.float64)
    zp = _as_int("zero_point", zero_point)
    _broadcast(q=values, scale=steps, zero_point=zp)
    return _result(steps * (values - zp).astype(np.float64))


def fused_activation_range(
    activation: str, scale: float, zero_point: int, bits: int = 8, signed: bool = True
) -> tuple[int, int]:
    """The output clamp ``(act_min, act_max)`` that implements a fused activation.

    As TFLite's ``CalculateActivationRangeQuantized``: the bound for a real value ``f`` is
    ``zero_point + round(float32(f) / float32(scale))`` (division in ``float32``, ties away
    from zero), intersected with the range of the output type.

    Parameters
    ----------
    activation : str
        One of :data:`ACTIVATIONS`: ``"linear"`` (the whole type range), ``"relu"``
        (``f >= 0``), ``"relu6"`` (``0 <= f <= 6``) or ``"relu_n1_to_1"`` (``-1 <= f <= 1``).
    scale : float
        Output scale (per tensor), finite and > 0 as a ``float32``.
    zero_point : int
        Output zero point, within the output type's range.
    bits, signed
        The output integer type, as for :func:`int_range`.

    Returns
    -------
    tuple of int
        ``(act_min, act_max)``, with ``act_min <= act_max``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
    lo, hi = int_range(bits, signed)
    step = _as_scale("scale", scale, float32=True)
    if step.ndim != 0:
        raise ValueError(f"scale must be a single number (per tensor), not shape {step.shape}")
    zp = _int_param("zero_point", zero_point, lo, hi)

    def bound(real: float) -> float:
        q = float(_round_away(np.float32(real) / step))
        # TFLite refuses such a model at load time (no_integer_overflow_from_quantization).
        if not INT32_MIN <= q <= INT32_MAX:
            raise ValueError(f"activation {activation}: {real} / scale {float(step)!r} "
                             f"overflows int32, as TFLite rejects it")
        return zp + q

    if activation == "relu":
        return max(lo, zp), hi
    if activation == "relu6":
        return max(lo, zp), int(min(hi, bound(6.0)))
    if activation == "relu_n1_to_1":
        return int(max(lo, bound(-1.0))), int(min(hi, bound(1.0)))
    return lo, hi


# --- the TFLite requantization ------------------------------------------------------------


def effective_scale(
    input_scale: ArrayLike,
    weight_scale: ArrayLike,
    output_scale: ArrayLike,
    *,
    float32_product: bool = False,
) -> NDArray[np.float64]:
    """The real factor ``input_scale * weight_scale / output_scale`` of a conv or dense layer.

    Computed in the precision and order of TFLite, which matters for the last bit of the
    multiplier: the three scales are ``float32``; by default they are widened to ``double``
    and evaluated as ``(s_in * s_w) / s_out`` (``PopulateConvolutionQuantizationParams`` and
    per-channel FULLY_CONNECTED, and the float requantization of the FC reference kernel).

    Parameters
    ----------
    input_scale, weight_scale, output_scale : array_like of float
        The scales, each finite and > 0 as a ``float32``; ``weight_scale`` may be per channel.
    float32_product : bool
        Multiply ``s_in * s_w`` in ``float32`` before widening, as TFLite's
        ``GetQuantizedConvolutionMultipler`` does for per-tensor FULLY_CONNECTED.

    Returns
    -------
    ndarray of float64
        The effective scale(s), for :func:`quantize_multiplier_array` or
        :func:`requantize_float`.
    """
    s_in = _as_scale("input_scale", input_scale, float32=True)
    s_w = _as_scale("weight_scale", weight_scale, float32=True)
    s_out = _as_scale("output_scale", output_scale, float32=True)
    _broadcast(input_scale=s_in, weight_scale=s_w, output_scale=s_out)
    if _bool_param("float32_product", float32_product):
        with np.errstate(over="ignore", under="ignore"):
            product = (s_in * s_w).astype(np.float64)
    else:
        product = s_in.astype(np.float64) * s_w.astype(np.float64)
    return _result(product / s_out.astype(np.float64))


def quantize_multiplier(
    real_multiplier: float, *, single_rounding: bool = False
) -> tuple[int, int]:
    """Encode a real factor as a Q31 multiplier and a power-of-two shift, as TFLite does.

    TFLite's ``QuantizeMultiplier`` (``quantization_util.cc``): with
    ``real = q * 2**shift``, ``q`` in ``[0.5, 1)`` (``frexp``), the multiplier is
    ``round(q * 2**31)`` (ties away from zero). If that rounds up to ``2**31`` it becomes
    ``2**30`` and ``shift`` grows by one. Factors with ``shift < -31`` (below about ``2**-32``)
    flush to ``(0, 0)``. So ``real ~= multiplier * 2**(shift - 31)``.

    Parameters
    ----------
    real_multiplier : float
        The factor, finite and >= 0 (0 gives ``(0, 0)``).
    single_rounding : bool
        Also saturate ``shift > 30`` to ``(2**31 - 1, 30)``, as TFLite built with
        ``TFLITE_SINGLE_ROUNDING`` does. Without it a shift above 30 is returned as is (and
        :func:`multiply_by_quantized_multiplier` will reject it).

    Returns
    -------
    tuple of int
        ``(multiplier, shift)``, multiplier ``0`` or in ``[2**30, 2**31)``.
    """
    if isinstance(real_multiplier, bool | np.bool_) or not isinstance(
        real_multiplier, int | float | np.integer | np.floating
    ):
        raise ValueError(f"real_multiplier must be a finite number >= 0, not {real_multiplier!r}")
    value = float(real_multiplier)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"real_multiplier must be a finite number >= 0, not {real_multiplier!r}")
    saturate_shift = _bool_param("single_rounding", single_rounding)
    if value == 0.0:
        return 0, 0
    fraction, shift = math.frexp(value)
    scaled = fraction * 2.0**31  # exact: a power-of-two scaling of a double in [0.5, 1)
    whole = math.trunc(scaled)
    q_fixed = whole + (1 if scaled - whole >= 0.5 else 0)
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if saturate_shift and shift > 30:
        return (1 << 31) - 1, 30
    return q_fixed, shift


def quantize_multiplier_array(
    reals: ArrayLike, *, single_rounding: bool = False
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """:func:`quantize_multiplier` over an array, for per-channel requantization.

    Parameters
    ----------
    reals : array_like of float
        Factors, each finite and >= 0.
    single_rounding : bool
        As for :func:`quantize_multiplier`.

    Returns
    -------
    tuple of ndarray of int32
        ``(multipliers, shifts)`` of the shape of ``reals``, element for element equal to
        :func:`quantize_multiplier`.
    """
    values = _as_float("reals", reals).astype(np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        raise ValueError(f"reals must be finite and >= 0, not {float(values[bad].flat[0])!r}")
    saturate_shift = _bool_param("single_rounding", single_rounding)
    fraction, exponent = np.frexp(values)  # frexp(0) == (0, 0) gives (0, 0) below, as wanted
    scaled = np.ldexp(fraction, 31)
    whole = np.trunc(scaled)
    q_fixed = whole.astype(np.int64) + (scaled - whole >= 0.5)
    shift = exponent.astype(np.int64)
    carry = q_fixed == 1 << 31
    q_fixed = np.where(carry, q_fixed >> 1, q_fixed)
    shift = shift + carry
    tiny = shift < -31
    q_fixed = np.where(tiny, 0, q_fixed)
    shift = np.where(tiny, 0, shift)
    if saturate_shift:
        big = shift > 30
        q_fixed = np.where(big, (1 << 31) - 1, q_fixed)
        shift = np.where(big, 30, shift)
    return _result(q_fixed.astype(np.int32)), _result(shift.astype(np.int32))


_MASK31: Final = (1 << 31) - 1


def _srdhm(a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.int64]:
    total = np.multiply(a, b)  # |a * b| <= 2**62: exact in int64
    # nudge = 2**30 if a*b >= 0 else 1 - 2**30; (p >> 63) is 0 or -1, so this is branch-free.
    sign = total >> 63
    total += 1 << 30
    total -= sign & _MASK31
    # C++ division truncates toward zero, NumPy's >> rounds toward -infinity: adding
    # 2**31 - 1 to negative dividends first turns the floor into the truncation.
    total += (total >> 63) & _MASK31
    total >>= 31
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    if np.any(overflow):
        total = np.where(overflow, INT32_MAX, total)
    return total


def saturating_rounding_doubling_high_mul(a: ArrayLike, b: ArrayLike) -> IntArray:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int32 values.

    The high 32 bits of ``2 * a * b``, rounded: ``(a * b + nudge) / 2**31`` with C's
    truncating division, ``nudge = 2**30`` if ``a * b >= 0`` and ``1 - 2**30`` otherwise.
    That is ``a * b / 2**31`` rounded half toward +infinity. The one result that does not fit,
    ``a == b == INT32_MIN``, saturates to ``INT32_MAX``.

    Parameters
    ----------
    a, b : array_like of int
        Operands in the int32 range; they broadcast.

    Returns
    -------
    IntArray
        The results, in the int32 range.
    """
    lhs = _as_int32("a", a)
    rhs = _as_int32("b", b)
    _broadcast(a=lhs, b=rhs)
    return _result(_srdhm(lhs, rhs))


def _rdbpot(x: NDArray[np.int64], exponent: NDArray[np.int64]) -> NDArray[np.int64]:
    mask = np.left_shift(np.int64(1), exponent) - 1  # per channel: small
    remainder = x & mask
    # Round up when the remainder exceeds half (or equals it, for negative x): away from 0.
    remainder -= (mask >> 1)
    remainder += x >> 63  # the threshold is one higher where x < 0
    result = x >> exponent
    result += remainder > 0
    return result


def rounding_divide_by_pot(x: ArrayLike, exponent: ArrayLike) -> IntArray:
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent``, ties away from zero.

    ``(x >> e) + (remainder > threshold)`` with ``remainder = x & (2**e - 1)`` and
    ``threshold = (2**e - 1) >> 1``, plus one if ``x < 0``; an arithmetic shift with
    round-half-away-from-zero.

    Parameters
    ----------
    x : array_like of int
        Dividends in the int32 range.
    exponent : array_like of int
        Exponents in 0..31; they broadcast against ``x`` (e.g. per channel).

    Returns
    -------
    IntArray
        The rounded quotients.
    """
    values = _as_int32("x", x)
    exponents = _as_int("exponent", exponent)
    _check_within("exponent", exponents, 0, 31)
    _broadcast(x=values, exponent=exponents)
    return _result(_rdbpot(values, exponents))


def _check_multiplier_shift(
    multiplier: ArrayLike, shift: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    multipliers = _as_int("multiplier", multiplier)
    _check_within("multiplier", multipliers, 0, INT32_MAX)
    shifts = _as_int("shift", shift)
    _check_within("shift", shifts, -31, 30)
    return multipliers, shifts


def _mbqm(
    x: NDArray[np.int64],
    multiplier: NDArray[np.int64],
    shift: NDArray[np.int64],
    single_rounding: bool,
) -> NDArray[np.int64]:
    if single_rounding:
        total_shift = 31 - shift  # 1..62
        # |x * multiplier| < 2**62 and the rounding term is at most 2**61: no int64 overflow.
        result = (x * multiplier + np.left_shift(np.int64(1), total_shift - 1)) >> total_shift
        _check_int32_result(
            result, "the single-rounding product", x=x, multiplier=multiplier, shift=shift
        )
        return result
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    # TFLite computes x * (1 << left_shift) in int32; where that overflows its result is
    # undefined, so refuse rather than pick a wraparound.
    shifted = x << left
    _check_int32_result(shifted, "x * 2**shift", x=x, shift=shift)
    return _rdbpot(_srdhm(shifted, multiplier), right)


def multiply_by_quantized_multiplier(
    x: ArrayLike, multiplier: ArrayLike, shift: ArrayLike, *, single_rounding: bool = False
) -> IntArray:
    """TFLite's ``MultiplyByQuantizedMultiplier``: ``x * multiplier * 2**(shift - 31)``, rounded.

    Default (double rounding, how TFLite is built unless ``TFLITE_SINGLE_ROUNDING``)::

        RoundingDivideByPOT(SRDHM(x * 2**max(shift, 0), multiplier), max(-shift, 0))

    Single rounding::

        (x * multiplier + 2**(30 - shift)) >> (31 - shift)     # round half toward +infinity

    Parameters
    ----------
    x : array_like of int
        Values in the int32 range (an accumulator).
    multiplier : array_like of int
        Q31 multipliers in ``0..2**31 - 1``, from :func:`quantize_multiplier`; broadcast.
    shift : array_like of int
        Shifts in ``-31..30``; broadcast.
    single_rounding : bool
        Use the single-rounding variant.

    Returns
    -------
    IntArray
        The scaled values, in the int32 range.

    Raises
    ------
    OverflowError
        If ``x * 2**shift`` (double rounding) or the result (single rounding) leaves the int32
        range, where TFLite's own arithmetic is undefined. Only a ``shift > 0`` (a real factor
        of at least 1) with a large ``x`` gets there.
    """
    values = _as_int32("x", x)
    multipliers, shifts = _check_multiplier_shift(multiplier, shift)
    _broadcast(x=values, multiplier=multipliers, shift=shifts)
    single = _bool_param("single_rounding", single_rounding)
    return _result(_mbqm(values, multipliers, shifts, single))


def _check_act_range(
    act_min: ArrayLike, act_max: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    lo = _as_int32("act_min", act_min)
    hi = _as_int32("act_max", act_max)
    _broadcast(act_min=lo, act_max=hi)
    bad = lo > hi
    if bad.any():
        raise ValueError(
            f"act_min must not exceed act_max, not {_first(bad, act_min=lo, act_max=hi)}"
        )
    return lo, hi


def requantize(
    acc: ArrayLike,
    multiplier: ArrayLike,
    shift: ArrayLike,
    zero_point: ArrayLike,
    act_min: ArrayLike,
    act_max: ArrayLike,
    *,
    single_rounding: bool = False,
) -> IntArray:
    """The output stage of TFLite's int8 conv (and older dense) kernels.

    ``clamp(MultiplyByQuantizedMultiplier(acc, multiplier, shift) + zero_point, act_min,
    act_max)``.

    Parameters
    ----------
    acc : array_like of int
        Accumulators (bias included) in the int32 range, e.g. of shape ``(..., C)``.
    multiplier, shift : array_like of int
        As for :func:`multiply_by_quantized_multiplier`; shape ``(C,)`` for per channel.
    zero_point : array_like of int
        Output zero point, in the int32 range.
    act_min, act_max : array_like of int
        Output clamp, ``act_min <= act_max``, e.g. from :func:`fused_activation_range`.
    single_rounding : bool
        As for :func:`multiply_by_quantized_multiplier`.

    Returns
    -------
    IntArray
        The outputs, in ``[act_min, act_max]``.

    Raises
    ------
    OverflowError
        Where TFLite's int32 arithmetic would overflow (see
        :func:`multiply_by_quantized_multiplier`; also the addition of the zero point).
    """
    values = _as_int32("acc", acc)
    multipliers, shifts = _check_multiplier_shift(multiplier, shift)
    zp = _as_int32("zero_point", zero_point)
    lo, hi = _check_act_range(act_min, act_max)
    _broadcast(
        acc=values, multiplier=multipliers, shift=shifts, zero_point=zp, act_min=lo, act_max=hi
    )
    single = _bool_param("single_rounding", single_rounding)
    if not single and values.size:
        # The exact float64 shortcut, where the accumulators' actual magnitude proves it.
        # (The bound: max(-min, max) of the data, two reductions.)
        acc_abs_max = max(-int(values.min()), int(values.max()))
        if float64_requantize_exact(acc_abs_max, multipliers, shifts, zp):
            shape = np.broadcast_shapes(values.shape, multipliers.shape, shifts.shape,
                                        zp.shape, lo.shape, hi.shape)
            fast = Float64Requantizer(multipliers, shifts, zp, lo, hi, acc_abs_max=acc_abs_max)
            return _result(fast(np.broadcast_to(values, shape)))
    shifted = _mbqm(values, multipliers, shifts, single) + zp
    _check_int32_result(
        shifted, "the scaled accumulator plus zero_point", acc=values, zero_point=zp
    )
    return _result(np.clip(shifted, lo, hi))


def requantize_float(
    acc: ArrayLike,
    scale: ArrayLike,
    zero_point: ArrayLike,
    act_min: ArrayLike,
    act_max: ArrayLike,
) -> IntArray:
    """The output stage of TFLite's FULLY_CONNECTED reference kernel since TF 2.20.

    ``clamp(round(double(acc) * scale) + zero_point, act_min, act_max)`` with ``round``
    half away from zero and ``scale`` the ``double`` effective scale from
    :func:`effective_scale`.

    Parameters
    ----------
    acc : array_like of int
        Accumulators (bias included) in the int32 range.
    scale : array_like of float
        Effective scale(s) ``s_in * s_w / s_out`` (``float64``, finite, > 0); per channel it
        broadcasts along the last axis.
    zero_point : array_like of int
        Output zero point, in the int32 range.
    act_min, act_max : array_like of int
        Output clamp, ``act_min <= act_max``.

    Returns
    -------
    IntArray
        The outputs, in ``[act_min, act_max]``.

    Raises
    ------
    OverflowError
        If the rounded product, or it plus the zero point, leaves the int32 range (undefined in
        TFLite's C++).
    """
    values = _as_int32("acc", acc)
    factors = _as_scale("scale", scale, float32=False)
    zp = _as_int32("zero_point", zero_point)
    lo, hi = _check_act_range(act_min, act_max)
    _broadcast(acc=values, scale=factors, zero_point=zp, act_min=lo, act_max=hi)
    rounded = _round_away(values.astype(np.float64) * factors)
    bad = (rounded < INT32_MIN) | (rounded > INT32_MAX)
    if bad.any():
        raise OverflowError(
            f"round(acc * scale) overflows int32 at {_first(bad, acc=values, scale=factors)}"
        )
    shifted = rounded.astype(np.int64) + zp
    _check_int32_result(shifted, "round(acc * scale) plus zero_point", acc=values, zero_point=zp)
    return _result(np.clip(shifted, lo, hi))


# --- requantization in float64, exactly ------------------------------------------------------

#: Every integer of magnitude at most 2**53 is a float64, and so is ``n * 2**-k`` for such an
#: ``n`` (and any ``k`` down to the normal range).
_F64_INTEGERS: Final = 2**53


def float64_requantize_exact(
    acc_abs_max: ArrayLike, multiplier: ArrayLike, shift: ArrayLike, zero_point: ArrayLike = 0
) -> bool:
    """Whether :class:`Float64Requantizer` equals :func:`requantize` (double rounding) for
    every accumulator of magnitude at most ``acc_abs_max``.

    That holds when, for every channel, ``shift <= 0`` (a real factor below 1), ``|zero_point|
    <= 2**30`` and ``acc_abs_max * multiplier + 2**30 + 2**(30 - shift) + |zero_point| *
    2**(31 - shift) <= 2**53``; see
    :class:`Float64Requantizer` for the proof. For any Q31 multiplier, ``shift >= -12`` and an
    int8 zero point that is any ``|acc| <= 3 * 2**20``. A layer's bound from its weights (what
    the golden model uses) is wider than its real accumulators, but often small enough.

    Parameters
    ----------
    acc_abs_max : array_like of int
        Bound(s) on ``|acc|`` (for :class:`Float64Requantizer` with an ``offset``, also on
        ``|partial|`` and ``|offset|``), >= 0; per channel they broadcast.
    multiplier, shift : array_like of int
        As for :func:`requantize`.
    zero_point : array_like of int
        The output zero point(s).
    """
    bound = _as_int("acc_abs_max", acc_abs_max)
    multipliers, shifts = _check_multiplier_shift(multiplier, shift)
    zp = _as_int("zero_point", zero_point)
    if (bound < 0).any():
        raise ValueError(f"acc_abs_max must be >= 0, not {int(bound.min())}")
    if (shifts > 0).any() or (np.abs(zp) > 2**30).any() or (bound > INT32_MAX).any():
        return False
    # In Python integers (object arrays, per channel): |zero_point| * D can pass 2**63.
    denominator = 2 ** (31 - shifts).astype(object)
    need = (bound.astype(object) * multipliers.astype(object) + (1 << 30) + denominator // 2
            + np.abs(zp).astype(object) * denominator)
    return bool(np.all(need <= _F64_INTEGERS))


class Float64Requantizer:
    """:func:`requantize` with double rounding, evaluated in float64, exactly, on bounded
    accumulators: about 8 vectorized passes instead of the 20-odd int64 passes of
    SRDHM + RoundingDivideByPOT, and no int64 accumulators needed (float32 GEMM results go in
    directly).

    Construct it once per layer; calling it requantizes ``acc = partial + offset`` (``offset``
    per channel, e.g. the bias, added in float64 so that ``partial`` may be a float32 GEMM
    result).

    Why it is exact. Let ``p = acc * M`` (an integer), ``e = -shift >= 0``, ``D = 2**(31+e)``.
    SRDHM is ``s = floor((p + 2**30) / 2**31)`` (``a*b/2**31`` rounded half up), and
    RoundingDivideByPOT rounds ``s / 2**e`` half away from zero, which for ``e >= 1`` is
    ``floor((s + 2**(e-1)) / 2**e)`` if ``s >= 0`` and ``floor((s + 2**(e-1) - 1) / 2**e)``
    if ``s < 0``. With the identity ``floor((floor(a / m) + k) / n) = floor((a + k*m) /
    (m*n))`` (integers ``a, k``; ``m, n >= 1``) the two roundings become one::

        y = floor(p / D + 1/2 + h)   if p >= -2**30    (s >= 0)
        y = floor(p / D + 1/2 - h)   if p <  -2**30    (s < 0),     h = 2**-(1+e)

    For ``-2**30 <= p < 0`` both lines give 0 (``p / D + 1/2 +- h`` lies in ``[0, 1)``), so
    the sign of ``p`` may choose: ``y = floor(t + copysign(h, t) + 1/2)`` with ``t = p / D``.
    For ``e = 0``, RoundingDivideByPOT is the identity and ``y = floor(t + 1/2)``: ``h = 0``.
    The zero point, an integer, goes inside the floor (``floor(v) + zp = floor(v + zp)``), and
    the output is the clamp of ``y + zp`` to ``[act_min, act_max]``. Where ``act_min >= zp``
    (a fused ReLU) the first line serves for every ``p``: for ``p < 0`` both lines give
    ``y <= 0`` (``t < 0`` and ``h <= 1/4``), and every ``y <= 0`` clamps to ``act_min``.

    Every value formed on the way (``partial * M / D``, ``offset * M / D``, ``t``,
    ``t +- h``, ``t +- h + 1/2 + zp``) is ``n / D`` for an integer ``|n| <= |x| * M + 2**30 +
    2**(30+e) + |zp| * D``, ``|x|`` the largest of ``|partial|``, ``|offset|``, ``|acc|``.
    When that is at most 2**53 (:func:`float64_requantize_exact`) each such value is a
    float64, so every multiplication and addition, being correctly rounded, is exact; so are
    ``floor``, the clamp and the final cast of an integer inside ``[act_min, act_max]``.
    TFLite's overflow cases cannot occur:
    ``shift <= 0`` shifts nothing left, SRDHM saturates only for a negative multiplier, and
    ``|y + zp| < 2**31`` as ``|zp| <= 2**30``.

    Parameters
    ----------
    multiplier, shift, zero_point, act_min, act_max
        As for :func:`requantize` (per channel along the last axis, or scalars).
    acc_abs_max : array_like of int
        Bound(s) on ``|partial|``, ``|offset|`` and ``|partial + offset|``.
    offset : array_like of int, optional
        Added to every ``partial`` (per channel), in float64.
    dtype : numpy dtype
        Integer type of the result; it must hold ``[act_min, act_max]``.

    Raises
    ------
    ValueError
        If :func:`float64_requantize_exact` does not prove the bound, or ``dtype`` is too
        narrow.
    """

    def __init__(
        self,
        multiplier: ArrayLike,
        shift: ArrayLike,
        zero_point: ArrayLike,
        act_min: ArrayLike,
        act_max: ArrayLike,
        *,
        acc_abs_max: ArrayLike,
        offset: ArrayLike | None = None,
        dtype: Any = np.int64,
    ) -> None:
        multipliers, shifts = _check_multiplier_shift(multiplier, shift)
        zp = _as_int32("zero_point", zero_point)
        lo, hi = _check_act_range(act_min, act_max)
        if not float64_requantize_exact(acc_abs_max, multipliers, shifts, zp):
            raise ValueError("acc_abs_max is too large for exact float64 requantization "
                             "(or a shift is positive, or |zero_point| > 2**30)")
        self.dtype = np.dtype(dtype)
        info = np.iinfo(self.dtype)
        if int(lo.min(initial=0)) < info.min or int(hi.max(initial=0)) > info.max:
            raise ValueError(f"dtype {self.dtype} does not hold act_min..act_max")
        exponents = -shifts
        self._scale = np.ldexp(multipliers.astype(np.float64), -(31 + exponents))
        self._half = np.where(exponents > 0, np.ldexp(1.0, -1 - exponents), 0.0)
        self._any_half = bool((exponents > 0).any())
        # A fused ReLU (act_min >= zp) clamps every p < 0 to act_min whichever line applies
        # (both give y <= 0): the first line serves all, as one constant.
        self._relu = bool((lo >= zp).all())
        self._offset = None if offset is None else (
            _as_int32("offset", offset).astype(np.float64) * self._scale)
        self._rounding = zp.astype(np.float64) + 0.5
        if self._relu:
            self._rounding = self._rounding + self._half
        self._low = lo.astype(np.float64)
        self._high = hi.astype(np.float64)

    def __call__(self, partial: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The requantized ``partial + offset``: integer values (any int or float dtype) whose
        bound the constructor was given. ``out`` (of ``dtype``) receives the result."""
        t = np.multiply(partial, self._scale, dtype=np.float64)
        if not isinstance(t, np.ndarray):  # 0-d arguments give a scalar: make it writable
            t = np.asarray(t, np.float64).copy()
        if self._offset is not None:
            t += self._offset
        if self._any_half and not self._relu:
            t += np.copysign(self._half, t)
        t += self._rounding
        np.floor(t, out=t)
        if out is None:
            out = np.empty(t.shape, self.dtype)
        return np.clip(t, self._low, self._high, out=out, casting="unsafe")


# --- the pow2 scheme ------------------------------------------------------------------------


def _round_mul_shift(values: NDArray[np.int64], m: int, n: int) -> NDArray[np.int64] | None:
    """``sign(p) * ((|p| + half) >> n)`` for ``p = values * m`` (``half = 2**(n-1)``, 0 if
    ``n == 0``), exactly in int64, or None where an intermediate could leave 63 bits.

    The products reach 80 bits (31-bit accumulators, 48-bit multipliers), so ``m`` is split
    into a high and a low 24-bit part and the shift is applied to the sum of the two partial
    products in two steps, which is exact because ``floor(floor(x / a) / b) == floor(x / (a
    * b))``."""
    u = np.abs(values)
    amax = int(u.max(initial=0))
    half = 1 << (n - 1) if n > 0 else 0
    if amax * m < 2**62:
        if n > 62:  # |p| < 2**62 <= 2**(n-1): every quotient rounds to 0
            r = np.zeros_like(u)
        else:
            r = (u * m + half) >> n
    elif amax < 2**32 and m < 2**54 and n >= 24:
        if n > 86:  # |p| < 2**86 <= 2**(n-1)
            r = np.zeros_like(u)
        else:
            mh, ml = m >> 24, m & 0xFFFFFF
            low = u * ml + (half & 0xFFFFFF)          # < 2**57
            r = (u * mh + (half >> 24) + (low >> 24)) >> (n - 24)   # < 2**63 before the shift
    else:
        return None
    return np.where(values < 0, -r, r)


def requantize_wide(
    acc: ArrayLike,
    multiplier: int,
    shift: int,
    zero_point: int,
    act_min: int,
    act_max: int,
) -> IntArray:
    """``clamp(round(acc * multiplier / 2**shift) + zero_point)``, one rounding, ties away
    from zero, computed exactly (split int64 products, or Python integers where even those
    could overflow).

    The hardware form of TFLite's float FULLY_CONNECTED requantization: see
    :func:`wide_multiplier_for_scale`, which finds ``multiplier`` and ``shift`` and proves the
    two equal over a layer's accumulator range.
    """
    m, n = int(multiplier), int(shift)
    values = np.asarray(acc)
    if values.dtype.kind in "iu" and m >= 0 and n >= 0 and values.dtype.itemsize <= 8 \
            and (values.dtype.kind == "i" or int(values.max(initial=0)) < 2**63):
        r = _round_mul_shift(values.astype(np.int64), m, n)
        if r is not None:
            return _result(np.clip(r + zero_point, act_min, act_max))
    values = np.asarray(acc, dtype=object)
    half = 1 << (n - 1) if n > 0 else 0

    def one(a: int) -> int:
        p = int(a) * m
        q = (p + half) >> n if p >= 0 else -((-p + half) >> n)
        return min(max(q + zero_point, act_min), act_max)

    return _result(np.vectorize(one, otypes=[np.int64])(values))


def wide_multiplier_for_scale(
    scale: float,
    zero_point: int,
    act_min: int,
    act_max: int,
    acc_range: tuple[int, int],
    *,
    max_bits: int = 48,
) -> tuple[int, int]:
    """An integer ``(multiplier, shift)`` whose :func:`requantize_wide` equals
    :func:`requantize_float` for *every* accumulator in ``acc_range``; ``ValueError`` if no
    multiplier of at most ``max_bits`` bits does.

    Why a finite check proves it: both functions are non-decreasing step functions of ``acc``
    (rounding and clamping are monotone; so is the double multiplication). Between two output
    levels ``v`` and ``v + 1`` the float path steps where ``acc * scale`` passes ``v + 1/2``,
    i.e. next to ``t = (v + 1/2) / scale``, and the integer path next to ``t' = (v + 1/2) *
    2**shift / multiplier``. Away from these points neither function changes, so evaluating
    both at every integer within 1 of each ``t`` and ``t'`` (for every ``v`` the clamp lets
    through) and at the ends of the range covers every place they could differ. The
    multiplier is widened from 16 bits until that check passes.

    A pure function of its arguments, so it is cached: a plan asks it once per output channel
    for every array size it tries.
    """
    return _wide_multiplier(float(scale), int(zero_point), int(act_min), int(act_max),
                            int(acc_range[0]), int(acc_range[1]), int(max_bits))


def _floor_times(c: NDArray[np.int64], p: int, d: int) -> NDArray[np.int64] | None:
    """``floor(c * p / d)`` elementwise for small ``c`` and positive ``p``, ``d``, exactly in
    int64 (``p = q * d + r``, so the quotient is ``c * q + floor(c * r / d)``), or None if
    ``c * q`` or ``c * r`` could leave 63 bits."""
    q, r = divmod(p, d)
    cmax = int(np.abs(c).max(initial=0)) + 1
    if cmax * q >= 2**62 or cmax * r >= 2**62:
        return None
    return c * q + (c * r) // d


@functools.lru_cache(maxsize=1 << 16)
def _wide_multiplier(scale: float, zero_point: int, act_min: int, act_max: int, lo: int,
                     hi: int, max_bits: int) -> tuple[int, int]:
    num, den = scale.as_integer_ratio() if math.isfinite(scale) else (0, 1)
    if num <= 0:
        raise ValueError(f"scale must be positive, not {scale!r}")
    e = math.floor(math.log2(scale))
    # 2v + 1 for the levels v the clamp lets through: each step sits next to (v + 1/2) / s.
    c = 2 * np.arange(act_min - zero_point - 1, act_max - zero_point + 1, dtype=np.int64) + 1
    taps = np.arange(-1, 3, dtype=np.int64)
    # Bases beyond the range by more than the taps reach add no point: clip them there so
    # that every value stays far inside int64.
    lim = (lo - 4, hi + 4)

    def near(t: NDArray[np.int64]) -> NDArray[np.int64]:
        return (np.clip(t, *lim)[:, None] + taps).ravel()

    def floors(p: int, d: int) -> NDArray[np.int64]:
        t = _floor_times(c, p, d)
        if t is None:
            t = np.array([min(max(int(ci) * p // d, lim[0]), lim[1]) for ci in c],
                         dtype=np.int64)
        return t

    float_points = near(floors(den, 2 * num))         # t = (2v + 1) * den / (2 * num)
    ends = np.array([lo, hi], dtype=np.int64)
    for bits in range(16, max_bits + 1):
        n = bits - 1 - e
        if n < 0:
            continue
        # round(scale * 2**n), half to even (what Fraction's round does)
        m, rem = divmod(num << n, den)
        if 2 * rem > den or (2 * rem == den and m % 2):
            m += 1
        wide_points = near(floors(1 << n, 2 * m))     # t' = (2v + 1) * 2**n / (2 * m)
        # (duplicates and order do not matter to an elementwise comparison)
        candidates = np.concatenate((ends, float_points, wide_points))
        candidates = candidates[(candidates >= lo) & (candidates <= hi)]
        want = requantize_float(candidates, scale, zero_point, act_min, act_max)
        got = requantize_wide(candidates, m, n, zero_point, act_min, act_max)
        if np.array_equal(np.asarray(want), np.asarray(got)):
            return m, n
    raise ValueError(
        f"no multiplier of at most {max_bits} bits reproduces round(acc * {scale!r}) over "
        f"accumulators {lo}..{hi}"
    )


def _pow2_round_shift(x: NDArray[np.int64], shift: NDArray[np.int64]) -> NDArray[np.int64]:
    right = np.maximum(shift, 0)
    left = np.maximum(-shift, 0)
    half = np.where(right > 0, np.left_shift(np.int64(1), np.maximum(right - 1, 0)), 0)
    rounded = (x + half) >> right  # |x| <= 2**62 and half <= 2**61: no int64 overflow
    limit = np.left_shift(np.int64(1), 62 - left)
    bad = (rounded >= limit) | (rounded < -limit)
    if bad.any():
        raise OverflowError(f"x * 2**-shift overflows 63 bits at {_first(bad, x=x, shift=shift)}")
    return rounded << left


def pow2_round_shift(x: ArrayLike, shift: ArrayLike) -> IntArray:
    """Divide by ``2**shift`` rounding half toward +infinity: ``(x + 2**(shift-1)) >> shift``.

    The requantization of the pow2 scheme. One adder and an arithmetic shift in hardware, the
    cheapest rounding there is; it is *not* symmetric (``-2.5`` rounds to ``-2``, ``2.5`` to
    ``3``). ``shift == 0`` is the identity and a negative ``shift`` shifts left (exactly).
    Saturation is separate (:func:`pow2_requantize`).

    Parameters
    ----------
    x : array_like of int
        Values in ``[-2**62, 2**62)`` (accumulators wider than int32 are fine).
    shift : array_like of int
        Shifts in ``-62..62``; broadcast against ``x``.

    Returns
    -------
    IntArray
        The rounded (or left-shifted) values.

    Raises
    ------
    OverflowError
        If a left shift leaves ``[-2**62, 2**62)``.
    """
    values = _as_int("x", x)
    _check_within("x", values, -_POW2_LIMIT, _POW2_LIMIT - 1)
    shifts = _as_int("shift", shift)
    _check_within("shift", shifts, -62, 62)
    _broadcast(x=values, shift=shifts)
    return _result(_pow2_round_shift(values, shifts))


def pow2_requantize(
    acc: ArrayLike,
    shift: ArrayLike,
    bits: int,
    *,
    act_min: int | None = None,
    act_max: int | None = None,
) -> IntArray:
    """The pow2 output stage: :func:`pow2_round_shift`, then saturation to ``bits`` bits.

    Parameters
    ----------
    acc : array_like of int
        Accumulators, as for :func:`pow2_round_shift`.
    shift : array_like of int
        ``f_in + f_w - f_out`` (fraction bits of the product minus those of the output);
        broadcast against ``acc``.
    bits : int
        Output width (signed), 1..63.
    act_min, act_max : int, optional
        A narrower clamp inside the signed ``bits``-bit range (0 for ReLU); default the whole
        range.

    Returns
    -------
    IntArray
        The outputs, in ``[act_min, act_max]``.
    """
    lo, hi = int_range(bits, signed=True)
    floor = lo if act_min is None else _int_param("act_min", act_min, lo, hi)
    ceiling = hi if act_max is None else _int_param("act_max", act_max, lo, hi)
    if floor > ceiling:
        raise ValueError(f"act_min must not exceed act_max, not {floor} > {ceiling}")
    return _result(np.clip(np.asarray(pow2_round_shift(acc, shift)), floor, ceiling))


# --- accumulator widths ---------------------------------------------------------------------


def _range_param(name: str, value: object) -> tuple[int, int]:
    ok = (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(
            isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_) for v in value
        )
        and value[0] <= value[1]
    )
    if not ok:
        raise ValueError(
            f"{name} must be a (low, high) pair of integers with low <= high, not {value!r}"
        )
    return int(value[0]), int(value[1])


def _count_param(name: str, value: object, lo: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {lo}, not {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, not {value!r}")
    return int(value)


def accumulator_range(
    *,
    terms: int,
    x_range: tuple[int, int],
    w_range: tuple[int, int],
    bias_range: tuple[int, int] = (0, 0),
) -> tuple[int, int]:
    """The exact range of every (partial) sum ``bias + sum of terms * (x * w)``.

    See *Accumulator widths* in the module documentation for the derivation.

    Parameters
    ----------
    terms : int
        Number of products summed, >= 1 (``kh * kw * cin`` or ``in_features``).
    x_range : (int, int)
        Range of the activation operand: ``x - zp`` for tflite-int8 (``(-255, 255)``), ``x``
        for pow2.
    w_range : (int, int)
        Range of the weights (``(-127, 127)`` for tflite-int8).
    bias_range : (int, int)
        Range of the bias: the layer's actual ``(min(b), max(b))``, or ``int_range(32)`` for
        any int32 bias.

    Returns
    -------
    tuple of int
        ``(low, high)``: ``min(bl, 0) + terms * min(pmin, 0)`` and
        ``max(bh, 0) + terms * max(pmax, 0)``, with ``pmin``/``pmax`` the extreme products of
        the corners of ``x_range`` and ``w_range``. Attained when the ranges contain 0.
    """
    count = _count_param("terms", terms, 1)
    xl, xh = _range_param("x_range", x_range)
    wl, wh = _range_param("w_range", w_range)
    bl, bh = _range_param("bias_range", bias_range)
    corners = (xl * wl, xl * wh, xh * wl, xh * wh)
    low = min(bl, 0) + count * min(*corners, 0)
    high = max(bh, 0) + count * max(*corners, 0)
    return low, high


def accumulator_bound(*, terms: int, x_abs_max: int, w_abs_max: int, bias_abs_max: int = 0) -> int:
    """A bound on ``|bias + sum of terms * (x * w)|`` from operand magnitudes.

    Parameters
    ----------
    terms : int
        Number of products summed, >= 1.
    x_abs_max, w_abs_max, bias_abs_max : int
        The largest magnitudes of the operands and of the bias (>= 0).

    Returns
    -------
    int
        ``bias_abs_max + terms * x_abs_max * w_abs_max``; attained when the operands can take
        these magnitudes with either sign. :func:`accumulator_range` is exact for asymmetric
        ranges too.
    """
    count = _count_param("terms", terms, 1)
    x_max = _count_param("x_abs_max", x_abs_max, 0)
    w_max = _count_param("w_abs_max", w_abs_max, 0)
    b_max = _count_param("bias_abs_max", bias_abs_max, 0)
    return b_max + count * x_max * w_max


def accumulator_bits(
    *,
    terms: int,
    input_bits: int = 8,
    weight_bits: int = 8,
    input_offset: bool = True,
    weight_symmetric: bool = True,
    bias_range: tuple[int, int] = (0, 0),
) -> int:
    """The accumulator width that makes overflow impossible for a layer's number formats.

    The defaults describe tflite-int8: ``x - zp`` with both in int8 (``[-255, 255]``),
    symmetric int8 weights (``[-127, 127]``). For pow2 pass ``input_offset=False`` (``x``
    itself, no zero point) and ``weight_symmetric=False`` (the full two's-complement range).

    Parameters
    ----------
    terms : int
        Number of products per output, >= 1 (``kh * kw * cin`` or ``in_features``).
    input_bits, weight_bits : int
        Widths of the (signed) activations and weights, 1..63.
    input_offset : bool
        The activation operand is ``x - zp`` with ``zp`` in the activation range
        (``[lo - hi, hi - lo]``) rather than ``x``.
    weight_symmetric : bool
        Weights exclude the most negative code (``[-hi, hi]``).
    bias_range : (int, int)
        Range of the bias, as for :func:`accumulator_range`.

    Returns
    -------
    int
        ``signed_bits_for(*accumulator_range(...))``: enough for every partial sum, and one
        bit fewer is not (for the attained worst case).
    """
    x_lo, x_hi = int_range(input_bits)
    w_lo, w_hi = int_range(weight_bits)
    if _bool_param("input_offset", input_offset):
        x_range = (x_lo - x_hi, x_hi - x_lo)
    else:
        x_range = (x_lo, x_hi)
    w_range = (-w_hi, w_hi) if _bool_param("weight_symmetric", weight_symmetric) else (w_lo, w_hi)
    low, high = accumulator_range(
        terms=terms, x_range=x_range, w_range=w_range, bias_range=bias_range
    )
    return signed_bits_for(low, high)


# --- primitives of the elementwise and pooling kernels ---------------------------------------


def quantize_multiplier_smaller_than_one_exp(real_multiplier: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplierSmallerThanOneExp`` (``quantization_util.cc``).

    :func:`quantize_multiplier` of a factor in ``(0, 1)``, whose shift is therefore ``<= 0``
    (a right shift); ADD's three multipliers are made this way. TFLite aborts the process
    (``TFLITE_CHECK``) for a factor outside ``(0, 1)`` or one that rounds up to a shift of 1;
    here that is a :class:`ValueError`. Factors below about ``2**-32`` flush to ``(0, 0)``.

    Parameters
    ----------
    real_multiplier : float
        The factor, ``0 < real_multiplier < 1``.

    Returns
    -------
    tuple of int
        ``(multiplier, shift)`` with ``shift <= 0``, as :func:`quantize_multiplier`.
    """
    if isinstance(real_multiplier, bool | np.bool_) or not isinstance(
        real_multiplier, int | float | np.integer | np.floating
    ):
        raise ValueError(f"real_multiplier must be a number in (0, 1), not {real_multiplier!r}")
    value = float(real_multiplier)
    if not 0.0 < value < 1.0:
        raise ValueError(f"real_multiplier must be a number in (0, 1), not {real_multiplier!r}")
    multiplier, shift = quantize_multiplier(value)
    if shift > 0:
        raise ValueError(f"real_multiplier {value!r} rounds up to 1 (shift {shift}), which "
                         f"TFLite's TFLITE_CHECK_LE(shift, 0) rejects")
    return multiplier, shift


def divide_round_half_away_from_zero(x: ArrayLike, count: ArrayLike) -> IntArray:
    """``x / count`` rounded to the nearest integer, ties away from zero, exactly.

    TFLite's int8/int16 AVERAGE_POOL_2D (``reference_integer_ops::AveragePool``) writes it
    ``x > 0 ? (x + count / 2) / count : (x - count / 2) / count`` with C's truncating
    division; for even ``count`` the tie ``x / count = k + 1/2`` goes away from zero, for odd
    ``count`` there are no ties. Note that the rounding is about the stored integer 0, not the
    zero point: the kernel averages the raw int8 codes.

    Parameters
    ----------
    x : array_like of int
        Dividends (sums of int8 codes), within int64.
    count : array_like of int
        Divisors, >= 1; they broadcast against ``x``.

    Returns
    -------
    IntArray
        The rounded quotients.
    """
    values = _as_int("x", x)
    counts = _as_int("count", count)
    if counts.size and int(counts.min()) < 1:
        raise ValueError(f"count must be >= 1, not {int(counts.min())}")
    _broadcast(x=values, count=counts)
    half = counts // 2
    magnitude = (np.abs(values) + half) // counts
    return _result(np.where(values > 0, magnitude, -magnitude))
