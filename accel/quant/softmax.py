"""TFLite's int8 SOFTMAX, bit for bit: the reference kernel's gemmlowp fixed-point arithmetic.

What runs
---------
With ``OpResolverType.BUILTIN_REF`` the interpreter registers ``Register_SOFTMAX_REF``
(``tflite/kernels/register_ref.cc``), i.e. ``SoftmaxPrepare<kReference>`` and
``SoftmaxEval<kReference>`` (``tflite/kernels/activations.cc``). For int8 input and output the
reference *Prepare* does not build a lookup table (the LUT ``PopulateSoftmaxLookupTable`` /
``SoftmaxInt8LUT`` is the optimized kernel's): it calls ``PreprocessSoftmaxScaling`` and
``CalculateInputRadius`` (``kernels/internal/quantization_util.cc``), and *Eval* runs
``reference_ops::Softmax`` (``kernels/internal/reference/softmax.h``), which is built from
gemmlowp's fixed-point primitives (``fixedpoint/fixedpoint.h``: ``exp_on_negative_values``,
``one_over_one_plus_x_for_x_in_0_1``, ``Rescale``) and ``GetReciprocal``
(``kernels/internal/common.h``). The output scale is 1/256 and the zero point -128 (Prepare
checks both). (Old TensorFlow releases filled the optimized kernel's float table in Prepare
for every kernel type; the LiteRT sources branch on ``kReference``.) Checked bit for bit against
ai-edge-litert 2.3 on thousands of random cases (``tests/test_tflite_ops.py``).

The arithmetic (``QM.N`` is a signed 32-bit fixed-point number with ``M`` integer and ``N``
fraction bits)::

    real             = min(double(beta) * double(input_scale) * 2**26, 2**31 - 1)   # > 1
    M, left_shift    = QuantizeMultiplier(real)                # Q31 multiplier, shift 1..31
    diff_min         = -floor(31 * 2**26 / 2**left_shift)
    d                = x - max(row)                                  # per element, <= 0
    a                = SRDHM(d * 2**left_shift, M)                   # Q5.26, where d >= diff_min
    e                = exp_on_negative_values(a)                     # Q0.31
    sum              = sum over the row of RoundingDivideByPOT(e, 12)   # Q12.19
    k                = 32 - bit_length(sum)                          # count of leading zeros
    r                = one_over_one_plus_x_for_x_in_0_1(sum * 2**k - 2**31)   # Q0.31
    y                = RoundingDivideByPOT(SRDHM(r, e), 35 - k) - 128, clamped to int8
    y                = -128 where d < diff_min

with ``SRDHM`` and ``RoundingDivideByPOT`` the integer semantics of
:mod:`accel.quant.numerics`. This is TFLite built without ``TFLITE_SINGLE_ROUNDING`` (the PyPI
builds), where ``MultiplyByQuantizedMultiplierGreaterThanOne(d, M, s)`` is
``SRDHM(d * 2**s, M)``.

int32 semantics
---------------
Everything is computed in ``int64`` NumPy arrays that hold int32 values. gemmlowp's additions
wrap on overflow (undefined behaviour in C++); none of the ones here can overflow for any int8
input (the fixed-point formats bound the operands), and each is checked anyway. The
saturations are gemmlowp's: ``SRDHM(INT32_MIN, INT32_MIN)`` and the saturating left shifts of
``Rescale``. One input the kernel does not survive is refused with :class:`OverflowError`: a
row whose sum of exponentials reaches ``2**28`` (512.0 in Q12.19), where
``TFLITE_CHECK(0 <= exponent && exponent <= 31)`` aborts the interpreter (observed: 511 equal
entries pass, 512 abort). That takes at least 512 entries close to the row maximum, and it
also rules out the int32 overflow of the sum itself (4096 entries).

Not in hardware: the accelerator returns the int8 logits; this is the golden model's last step.
"""

from typing import Final, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import numerics

__all__ = [
    "OUTPUT_SCALE",
    "OUTPUT_ZERO_POINT",
    "SoftmaxScaling",
    "exp_on_negative_values",
    "one_over_one_plus_x_for_x_in_0_1",
    "softmax_int8",
    "softmax_scaling",
]

#: The int8 softmax output format that TFLite requires: ``real = (q + 128) / 256``.
OUTPUT_SCALE: Final = 1.0 / 256
OUTPUT_ZERO_POINT: Final = -128

_INT32_MIN: Final = numerics.INT32_MIN
_INT32_MAX: Final = numerics.INT32_MAX

# Formats of reference_ops::Softmax: the scaled differences are Q5.26, the sum Q12.19.
_DIFF_INTEGER_BITS: Final = 5
_ACCUM_INTEGER_BITS: Final = 12

# gemmlowp constants (raw int32 values, as in fixedpoint.h).
_EXP_MINUS_ONE_EIGHTH: Final = 1895147668  # exp(-1/8) in Q0.31
_ONE_THIRD: Final = 715827883  # 1/3 in Q0.31
# exp(-2**k) in Q0.31 for k = -2..4: the barrel shifter of exp_on_negative_values.
_EXP_BARREL: Final = (
    (-2, 1672461947),
    (-1, 1302514674),
    (0, 790015084),
    (1, 290630308),
    (2, 39332535),
    (3, 720401),
    (4, 242),
)
_FORTY_EIGHT_SEVENTEENTHS: Final = 1515870810  # 48/17 in Q2.29
_MINUS_THIRTY_TWO_SEVENTEENTHS: Final = -1010580540  # -32/17 in Q2.29
_ONE_Q2_29: Final = 1 << 29


class SoftmaxScaling(NamedTuple):
    """The per-tensor constants the reference kernel derives in Prepare.

    Members
    -------
    multiplier : int
        Q31 multiplier of ``beta * input_scale * 2**26`` (capped at ``2**31 - 1``), in
        ``[2**30, 2**31)``.
    left_shift : int
        Its power-of-two exponent, ``1..31``.
    diff_min : int
        The most negative ``x - max(row)`` that still contributes (``<= 0``); smaller
        differences output -128.
    """

    multiplier: int
    left_shift: int
    diff_min: int


# --- argument checking ----------------------------------------------------------------------


def _float32_param(name: str, value: object) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    with np.errstate(over="ignore"):
        single = np.float32(value)
    if not np.isfinite(single):
        raise ValueError(f"{name} must be a finite number (as a float32), not {value!r}")
    return float(single)


def _int8_rows(x: ArrayLike) -> NDArray[np.int64]:
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"x must be an array of int8 values, not {x!r}") from None
    if arr.dtype.kind not in "iu":
        what = repr(x) if arr.ndim == 0 else f"an array of dtype {arr.dtype}"
        raise ValueError(f"x must be an array of int8 values, not {what}")
    if arr.ndim == 0:
        raise ValueError(f"x must have at least one axis (softmax runs over the last), not {x!r}")
    if arr.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last axis, not shape {arr.shape}")
    values = arr.astype(np.int64)
    bad = (values < -128) | (values > 127)
    if bad.any():
        raise ValueError(f"x must hold int8 values (-128..127), not {int(values[bad].flat[0])}")
    return values


def _as_int32_raw(name: str, value: ArrayLike) -> NDArray[np.int64]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer or an array of integers, not {value!r}")
    values = arr.astype(np.int64)
    bad = (values < _INT32_MIN) | (values > _INT32_MAX)
    if bad.any():
        raise ValueError(
            f"{name} must lie in {_INT32_MIN}..{_INT32_MAX}, not {int(values[bad].flat[0])}"
        )
    return values


# --- gemmlowp fixed-point primitives on int32 values held in int64 ---------------------------


def _add(a: NDArray[np.int64], b: NDArray[np.int64] | int) -> NDArray[np.int64]:
    # gemmlowp's Add/Sub are plain int32 arithmetic; overflow would be undefined behaviour, and
    # the operand ranges of this kernel exclude it. Checked so that a mistake cannot hide.
    total = a + b
    if ((total < _INT32_MIN) | (total > _INT32_MAX)).any():
        raise OverflowError("int32 overflow in a fixed-point addition")  # pragma: no cover
    return total


def _srdhm(a: NDArray[np.int64], b: NDArray[np.int64] | int) -> NDArray[np.int64]:
    return np.asarray(numerics.saturating_rounding_doubling_high_mul(a, b))


def _rdbpot(x: NDArray[np.int64], exponent: NDArray[np.int64] | int) -> NDArray[np.int64]:
    return np.asarray(numerics.rounding_divide_by_pot(x, exponent))


def _saturating_shift_left(x: NDArray[np.int64], exponent: int) -> NDArray[np.int64]:
    # SaturatingRoundingMultiplyByPOT<exponent> with exponent > 0: a left shift that saturates
    # to INT32_MAX / INT32_MIN beyond +-(2**(31 - exponent) - 1).
    threshold = (1 << (31 - exponent)) - 1
    shifted = np.where(x > threshold, _INT32_MAX, x << exponent)
    return np.where(x < -threshold, _INT32_MIN, shifted)


def _rounding_half_sum(a: NDArray[np.int64], b: int) -> NDArray[np.int64]:
    # (a + b + sign) / 2 with C's truncating division, sign = +1 if a + b >= 0 else -1.
    total = a + b
    nudged = total + np.where(total >= 0, 1, -1)
    return np.sign(nudged) * (np.abs(nudged) >> 1)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(
    a: NDArray[np.int64],
) -> NDArray[np.int64]:
    # Q0.31 in [-1/4, 0) -> Q0.31: Taylor expansion around -1/8.
    x = _add(a, 1 << 28)
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdbpot(x4, 2)
    poly = _rdbpot(_add(_srdhm(_add(x4_over_4, x3), _ONE_THIRD), x2), 1)
    return _add(_srdhm(_EXP_MINUS_ONE_EIGHTH, _add(x, poly)), _EXP_MINUS_ONE_EIGHTH)


def _exp_on_negative_values(a: NDArray[np.int64]) -> NDArray[np.int64]:
    fraction_bits = 31 - _DIFF_INTEGER_BITS
    quarter = 1 << (fraction_bits - 2)
    a_mod_quarter_minus_one_quarter = _add(a & (quarter - 1), -quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _saturating_shift_left(a_mod_quarter_minus_one_quarter, _DIFF_INTEGER_BITS)
    )
    remainder = _add(a_mod_quarter_minus_one_quarter, -a)
    for exponent, multiplier in _EXP_BARREL:
        if _DIFF_INTEGER_BITS > exponent:
            bit = (remainder >> (fraction_bits + exponent)) & 1
            result = np.where(bit == 1, _srdhm(result, multiplier), result)
    # The clamp to 0 below -32 only exists for more than 5 integer bits; Q5.26 has exactly 5.
    return np.where(a == 0, _INT32_MAX, result)


def _one_over_one_plus_x_for_x_in_0_1(a: NDArray[np.int64]) -> NDArray[np.int64]:
    half_denominator = _rounding_half_sum(a, _INT32_MAX)  # (1 + a) / 2, Q0.31
    # Newton-Raphson division in Q2.29, from the initial guess 48/17 - 32/17 * d.
    x = _add(_srdhm(half_denominator, _MINUS_THIRTY_TWO_SEVENTEENTHS), _FORTY_EIGHT_SEVENTEENTHS)
    for _ in range(3):
        one_minus_half_denominator_times_x = _add(-_srdhm(half_denominator, x), _ONE_Q2_29)
        # x * (...) is Q4.27; Rescale<2> takes it back to Q2.29, saturating.
        x = _add(x, _saturating_shift_left(_srdhm(x, one_minus_half_denominator_times_x), 2))
    # ExactMulByPot<-1> reinterprets Q2.29 as Q1.30; Rescale<0> shifts left by 1, saturating.
    return _saturating_shift_left(x, 1)


# --- public API ------------------------------------------------------------------------------


def exp_on_negative_values(a: ArrayLike) -> NDArray[np.int64]:
    """gemmlowp's ``exp_on_negative_values`` for Q5.26 input, as the int8 softmax uses it.

    ``exp(a / 2**26)`` in Q0.31 for ``a <= 0``: a Taylor expansion on ``[-1/4, 0)`` for the
    fraction modulo 1/4, multiplied by ``exp(-1/4)``, ``exp(-1/2)``, ..., ``exp(-16)`` for each
    bit set above it (each product an SRDHM); ``a == 0`` gives ``2**31 - 1``.

    Parameters
    ----------
    a : array_like of int
        Raw Q5.26 values in ``-2**31..0``.

    Returns
    -------
    ndarray of int64
        Raw Q0.31 values in ``0..2**31 - 1``, the shape of ``a``.
    """
    values = _as_int32_raw("a", a)
    if (values > 0).any():
        raise ValueError(f"a must be <= 0, not {int(values[values > 0].flat[0])}")
    return _exp_on_negative_values(values)


def one_over_one_plus_x_for_x_in_0_1(a: ArrayLike) -> NDArray[np.int64]:
    """gemmlowp's ``one_over_one_plus_x_for_x_in_0_1``: ``1 / (1 + a / 2**31)`` in Q0.31.

    Three Newton-Raphson steps in Q2.29 on the half denominator ``(1 + a) / 2``; ``a == 0``
    saturates to ``2**31 - 1``. ``GetReciprocal`` feeds it the row sum normalized to
    ``[1, 2)``, minus one.

    Parameters
    ----------
    a : array_like of int
        Raw Q0.31 values in ``0..2**31 - 1``.

    Returns
    -------
    ndarray of int64
        Raw Q0.31 values, the shape of ``a``.
    """
    values = _as_int32_raw("a", a)
    if (values < 0).any():
        raise ValueError(f"a must be >= 0, not {int(values[values < 0].flat[0])}")
    return _one_over_one_plus_x_for_x_in_0_1(values)


def softmax_scaling(*, input_scale: float, beta: float = 1.0) -> SoftmaxScaling:
    """The constants of TFLite's reference int8 softmax for an input scale and a ``beta``.

    ``PreprocessSoftmaxScaling(beta, input_scale, 5)`` and ``CalculateInputRadius(5, shift)``
    (``kernels/internal/quantization_util.cc``), both tensor parameters being ``float32``
    widened to ``double``.

    Parameters
    ----------
    input_scale : float
        Scale of the int8 input, finite and > 0 as a ``float32``.
    beta : float
        The softmax's ``beta`` (a ``float32`` in the model), finite.

    Returns
    -------
    SoftmaxScaling
        ``(multiplier, left_shift, diff_min)``.

    Raises
    ------
    ValueError
        If ``beta * input_scale <= 2**-26``: TFLite's ``QuantizeMultiplierGreaterThanOne``
        requires the multiplier to exceed 1 and aborts otherwise.
    """
    scale = _float32_param("input_scale", input_scale)
    if scale <= 0:
        raise ValueError(f"input_scale must be > 0, not {input_scale!r}")
    factor = _float32_param("beta", beta)
    # The product of two float32 values is exact in double, and * 2**26 too.
    real = min(factor * scale * float(1 << (31 - _DIFF_INTEGER_BITS)), float(_INT32_MAX))
    if not real > 1.0:
        raise ValueError(
            "beta * input_scale must exceed 2**-26 (TFLite requires a softmax input "
            f"multiplier > 1), not beta={beta!r}, input_scale={input_scale!r}"
        )
    multiplier, left_shift = numerics.quantize_multiplier(real)
    radius = (((1 << _DIFF_INTEGER_BITS) - 1) << (31 - _DIFF_INTEGER_BITS)) >> left_shift
    return SoftmaxScaling(multiplier=multiplier, left_shift=left_shift, diff_min=-radius)


def softmax_int8(x: ArrayLike, *, input_scale: float, beta: float = 1.0) -> NDArray[np.int64]:
    """TFLite's int8 SOFTMAX over the last axis, as its reference kernel computes it.

    See the module documentation for the arithmetic and the TFLite sources it follows. The
    output is quantized with scale 1/256 and zero point -128 (:data:`OUTPUT_SCALE`,
    :data:`OUTPUT_ZERO_POINT`): ``q = -128`` is probability 0, ``q = 127`` is 255/256.

    Parameters
    ----------
    x : array_like of int
        int8 values (``-128..127``) of any shape with a non-empty last axis; every leading
        index is one independent row.
    input_scale : float
        Scale of ``x`` (its zero point cancels in ``x - max(row)``), finite and > 0 as a
        ``float32``, with ``beta * input_scale > 2**-26``.
    beta : float
        The softmax's ``beta``, finite (``float32``).

    Returns
    -------
    ndarray of int64
        The int8 outputs, the shape of ``x``.

    Raises
    ------
    ValueError
        For a bad argument (see also :func:`softmax_scaling`).
    OverflowError
        If a row's sum of exponentials (Q12.19) reaches ``2**28``, where TFLite's kernel fails
        ``TFLITE_CHECK(exponent <= 31)`` and aborts (or, from 4096 entries on, overflows int32):
        only rows with at least 512 entries close to their maximum get there.
    """
    values = _int8_rows(x)
    multiplier, left_shift, diff_min = softmax_scaling(input_scale=input_scale, beta=beta)
    diff = values - values.max(axis=-1, keepdims=True)
    used = diff >= diff_min
    # Only the used differences are scaled (d * 2**left_shift fits int32 exactly for those);
    # the others are replaced by 0 and masked out below.
    scaled = _srdhm(np.where(used, diff, 0) << left_shift, multiplier)
    exps = _exp_on_negative_values(scaled)
    # Rescale<12> (Q0.31 -> Q12.19) of each exponential, summed over the row.
    total = np.where(used, _rdbpot(exps, _ACCUM_INTEGER_BITS), 0).sum(axis=-1)
    if (total >= 1 << 28).any():
        raise OverflowError(
            "a row's sum of exponentials reaches 2**28 (Q12.19 value 512), where TFLite's "
            "reference softmax aborts (TFLITE_CHECK exponent <= 31); rows this long and flat "
            "are not supported"
        )
    # GetReciprocal: normalize the sum to [1, 2) by its leading zeros, take 1 / (1 + (s - 1)).
    bit_length = np.frexp(total.astype(np.float64))[1].astype(np.int64)  # exact: total < 2**28
    leading_zeros = 32 - bit_length
    reciprocal = _one_over_one_plus_x_for_x_in_0_1((total << leading_zeros) - (1 << 31))
    num_bits_over_unit = _ACCUM_INTEGER_BITS - leading_zeros
    exponent = num_bits_over_unit + 31 - 8
    unsat = _rdbpot(_srdhm(reciprocal[..., None], exps), exponent[..., None])
    out = np.clip(unsat + OUTPUT_ZERO_POINT, -128, 127)
    return np.where(used, out, OUTPUT_ZERO_POINT).astype(np.int64)
