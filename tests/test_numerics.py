"""Tests of accel.quant.numerics against independent scalar references on Python integers.

Each reference below is written from the C++ semantics (explicit truncating division, explicit
int32 checks) or from the exact mathematical characterisation (``fractions.Fraction``), never
from the vectorized implementation, and the vectorized functions are compared with them element
for element on thousands of seeded random cases and at the extremes.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.quant import numerics as nx
from accel.quant.numerics import INT32_MAX, INT32_MIN

SEEDS = [0, 1, 2]
HYPOTHESIS = settings(max_examples=300, deadline=None, derandomize=True, database=None)
int32s = st.integers(INT32_MIN, INT32_MAX)

# Values at and around every edge of the int32 range and of the rounding thresholds.
INT32_EDGES = [
    INT32_MIN, INT32_MIN + 1, INT32_MIN + 2, -(2**30) - 1, -(2**30), -(2**30) + 1, -65536,
    -32385, -256, -255, -129, -128, -127, -3, -2, -1, 0, 1, 2, 3, 127, 128, 255, 256, 32385,
    65536, 2**30 - 1, 2**30, 2**30 + 1, INT32_MAX - 2, INT32_MAX - 1, INT32_MAX,
]  # fmt: skip


# --- independent scalar references ----------------------------------------------------------


def c_div(n: int, d: int) -> int:
    """C/C++ integer division: truncates toward zero."""
    q = abs(n) // abs(d)
    return q if (n >= 0) == (d > 0) else -q


def in_int32(v: int) -> bool:
    return INT32_MIN <= v <= INT32_MAX


def round_away(f: Fraction) -> int:
    """std::round on an exact rational: nearest integer, ties away from zero."""
    magnitude = math.floor(abs(f) + Fraction(1, 2))
    return magnitude if f >= 0 else -magnitude


def ref_srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def ref_rdbpot(x: int, e: int) -> int:
    # RoundingDivideByPOT is exactly round-half-away-from-zero of x / 2**e.
    return round_away(Fraction(x, 1 << e))


def ref_mbqm(x: int, m: int, shift: int) -> int | None:
    """Double rounding, as in TFLite's common.cc; None where the int32 shift overflows."""
    left, right = max(shift, 0), max(-shift, 0)
    shifted = x * (1 << left)
    if not in_int32(shifted):
        return None
    return ref_rdbpot(ref_srdhm(shifted, m), right)


def ref_mbqm_single(x: int, m: int, shift: int) -> int | None:
    total = 31 - shift
    result = (x * m + (1 << (total - 1))) >> total  # Python >> floors, like an arithmetic shift
    return result if in_int32(result) else None


def ref_quantize_multiplier(real: float, single_rounding: bool = False) -> tuple[int, int]:
    if real == 0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_away(Fraction(q) * 2**31)
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if single_rounding and shift > 30:
        return 2**31 - 1, 30
    return q_fixed, shift


def ref_quantize(real: np.float32, scale: np.float32, zp: int, lo: int, hi: int) -> int:
    ratio = np.float32(real) / np.float32(scale)  # TFLite divides in float32
    return min(max(round_away(Fraction(float(ratio))) + zp, lo), hi)


def ref_pow2_round_shift(x: int, s: int) -> int:
    if s <= 0:
        return x * 2**-s
    return math.floor(Fraction(x, 2**s) + Fraction(1, 2))  # half toward +infinity


def random_int32(rng: np.random.Generator, n: int) -> np.ndarray:
    """A mix of full-range int32 values, accumulator-sized values and the edges."""
    full = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    small = rng.integers(-(2**20), 2**20, n)
    return np.concatenate([full, small, INT32_EDGES])


def random_multipliers(rng: np.random.Generator, n: int) -> np.ndarray:
    normal = rng.integers(2**30, 2**31 - 1, n, endpoint=True)
    return np.concatenate([normal, [0, 1, 2**30, 2**31 - 2, 2**31 - 1]])


# --- int_range, saturate, signed_bits_for ---------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "signed", "expected"),
    [
        (8, True, (-128, 127)),
        (8, False, (0, 255)),
        (1, True, (-1, 0)),
        (32, True, (INT32_MIN, INT32_MAX)),
        (63, True, (-(2**62), 2**62 - 1)),
    ],
)
def test_int_range(bits, signed, expected):
    assert nx.int_range(bits, signed) == expected


@pytest.mark.parametrize("bits", [0, 64, 8.0, True, "8"])
def test_int_range_rejects_bad_bits(bits):
    with pytest.raises(ValueError, match=r"^bits must be an integer in 1\.\.63, not "):
        nx.int_range(bits)


def test_int_range_rejects_bad_signed():
    with pytest.raises(ValueError, match=r"^signed must be True or False, not 1$"):
        nx.int_range(8, 1)


def test_saturate():
    x = np.array([-1000, -129, -128, 0, 127, 128, 1000])
    assert np.array_equal(nx.saturate(x, 8), [-128, -128, -128, 0, 127, 127, 127])
    assert np.array_equal(nx.saturate(x, 8, signed=False), [0, 0, 0, 0, 127, 128, 255])
    assert nx.saturate(300, 8) == 127


def test_saturate_rejects_floats():
    with pytest.raises(ValueError, match=r"^x must be an integer or an array of integers, not "):
        nx.saturate(np.array([1.5]), 8)


def test_signed_bits_for_matches_definition():
    for lo in range(-300, 301, 7):
        for hi in range(lo, 301, 11):
            n = nx.signed_bits_for(lo, hi)
            assert -(2 ** (n - 1)) <= lo and hi <= 2 ** (n - 1) - 1, (lo, hi, n)
            if n > 1:
                assert not (-(2 ** (n - 2)) <= lo and hi <= 2 ** (n - 2) - 1), (lo, hi, n)


@pytest.mark.parametrize(
    ("lo", "hi", "bits"),
    [(0, 0, 1), (-1, 0, 1), (0, 1, 2), (-128, 127, 8), (-129, 0, 9), (0, 128, 9),
     (INT32_MIN, INT32_MAX, 32), (-(2**100), 0, 101)],
)  # fmt: skip
def test_signed_bits_for_examples(lo, hi, bits):
    assert nx.signed_bits_for(lo, hi) == bits


def test_signed_bits_for_errors():
    with pytest.raises(ValueError, match=r"^lo must not exceed hi, not 2 > 1$"):
        nx.signed_bits_for(2, 1)
    with pytest.raises(ValueError, match=r"^hi must be an integer, not 1\.0$"):
        nx.signed_bits_for(0, 1.0)


# --- rounding, quantize, dequantize ---------------------------------------------------------


def test_round_half_away_from_zero_ties_and_hard_cases():
    x = np.array([0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994,
                  2.0**52 + 1, np.inf, -np.inf])  # fmt: skip
    expected = [1, -1, 2, -2, 3, -3, 0, 0, 2.0**52 + 1, np.inf, -np.inf]
    assert np.array_equal(nx.round_half_away_from_zero(x), expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_round_half_away_from_zero_random(seed):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 100, 2000), rng.integers(-1000, 1000, 500) + 0.5])
    for dtype in (np.float64, np.float32):
        values = x.astype(dtype)
        got = nx.round_half_away_from_zero(values)
        assert got.dtype == dtype
        expected = [round_away(Fraction(float(v))) for v in values]
        assert np.array_equal(got, expected), f"seed={seed} dtype={dtype}"


@pytest.mark.parametrize("seed", SEEDS)
def test_quantize_matches_reference(seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(0, 3, (200, 4)).astype(np.float32)
    scale = rng.uniform(0.005, 0.2, 4).astype(np.float32)  # per channel, last axis
    zp = rng.integers(-128, 128, 4)
    got = nx.quantize(real, scale, zp)
    expected = [[ref_quantize(real[i, c], scale[c], int(zp[c]), -128, 127) for c in range(4)]
                for i in range(200)]  # fmt: skip
    assert got.dtype == np.int64
    assert np.array_equal(got, expected), f"seed={seed}"


def test_quantize_ties_clamps_and_scalars():
    got = nx.quantize([0.25, -0.25, 0.75, -0.75, 1e30, -np.inf], 0.5, 0)
    assert np.array_equal(got, [1, -1, 2, -2, 127, -128])
    assert nx.quantize(1.0, 0.5, 3, bits=4) == 5
    assert nx.quantize(100.0, 1.0, 0, bits=8, signed=False) == 100
    assert isinstance(nx.quantize(0.3, 0.1, 0), np.int64)


def test_quantize_divides_in_float32():
    # real = float32(2.5 * s) makes the float32 quotient exactly 2.5 (a tie) for some k while
    # the exact quotient is not; TFLite rounds the float32 quotient, and so must we.
    scale = np.float32(0.1)
    found = 0
    for k in range(-60, 60):
        real = np.float32((k + 0.5) * float(scale))
        f32 = round_away(Fraction(float(real / scale)))
        exact = round_away(Fraction(float(real)) / Fraction(float(scale)))
        assert nx.quantize(real, scale, 0) == max(-128, min(127, f32))
        found += f32 != exact
    assert found, "no case where float32 and exact division disagree: the test proves nothing"


def test_quantize_errors():
    with pytest.raises(ValueError, match=r"^scale must be finite and > 0 as a float32, not 0\.0$"):
        nx.quantize(1.0, 0.0, 0)
    with pytest.raises(ValueError, match=r"^scale must be finite and > 0 as a float32, not 1e-50$"):
        nx.quantize(1.0, 1e-50, 0)
    with pytest.raises(ValueError, match=r"^zero_point must lie in -128\.\.127, not 128$"):
        nx.quantize(1.0, 0.1, 128)
    with pytest.raises(ValueError, match=r"^real must not be NaN$"):
        nx.quantize([1.0, np.nan], 0.1, 0)
    with pytest.raises(ValueError, match=r"^shapes do not broadcast: real \(2, 4\), scale \(3,\)"):
        nx.quantize(np.zeros((2, 4)), np.ones(3), 0)
    with pytest.raises(ValueError, match=r"^zero_point must be an integer or an array of integ"):
        nx.quantize(1.0, 0.1, 0.5)


@pytest.mark.parametrize("seed", SEEDS)
def test_dequantize_is_tflite_in_float32(seed):
    rng = np.random.default_rng(seed)
    q = rng.integers(-128, 128, (100, 3))
    scale = rng.uniform(0.001, 1.0, 3)
    zp = rng.integers(-128, 128, 3)
    got = nx.dequantize(q, scale, zp)
    assert got.dtype == np.float64
    for i in range(100):
        for c in range(3):
            s = float(np.float32(scale[c]))
            expected = s * (int(q[i, c]) - int(zp[c]))
            assert got[i, c] == expected, f"seed={seed}"
            assert np.float32(got[i, c]) == np.float32(expected)


def test_quantize_dequantize_round_trip():
    q = np.arange(-128, 128)
    assert np.array_equal(nx.quantize(nx.dequantize(q, 0.037, 5), 0.037, 5), q)


# --- fused activations and effective scales -------------------------------------------------


@pytest.mark.parametrize(
    ("activation", "scale", "zp", "expected"),
    [
        ("linear", 0.1, 0, (-128, 127)),
        ("relu", 0.1, -20, (-20, 127)),
        ("relu", 0.1, -128, (-128, 127)),
        ("relu6", 6.0 / 255, -128, (-128, 127)),
        ("relu6", 0.05, -128, (-128, -8)),
        ("relu6", 0.01, 0, (0, 127)),
        ("relu_n1_to_1", 0.01, 0, (-100, 100)),
        ("relu_n1_to_1", 0.001, 0, (-128, 127)),
    ],
)
def test_fused_activation_range(activation, scale, zp, expected):
    assert nx.fused_activation_range(activation, scale, zp) == expected


def test_fused_activation_range_rounds_in_float32():
    for scale in np.linspace(0.02, 0.2, 500):
        s = np.float32(scale)
        hi = min(127, -128 + round_away(Fraction(float(np.float32(6.0) / s))))
        assert nx.fused_activation_range("relu6", scale, -128) == (-128, hi), scale


def test_fused_activation_range_errors():
    with pytest.raises(ValueError, match=r"^activation must be one of linear, relu, relu6, relu_"):
        nx.fused_activation_range("tanh", 0.1, 0)
    with pytest.raises(ValueError, match=r"^scale must be a single number \(per tensor\), not "):
        nx.fused_activation_range("relu", [0.1, 0.2], 0)


def test_effective_scale_orders_operations_like_tflite():
    rng = np.random.default_rng(5)
    s_in, s_w, s_out = (rng.uniform(1e-4, 1, 300).astype(np.float32) for _ in range(3))
    got = nx.effective_scale(s_in, s_w, s_out)
    got32 = nx.effective_scale(s_in, s_w, s_out, float32_product=True)
    for i in range(300):
        a, b, c = float(s_in[i]), float(s_w[i]), float(s_out[i])
        assert got[i] == a * b / c
        assert got32[i] == float(np.float32(s_in[i] * s_w[i])) / c
    assert (got != got32).any(), "the float32 product should differ somewhere"


# --- QuantizeMultiplier ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("real", "expected"),
    [
        (0.0, (0, 0)),
        (1.0, (2**30, 1)),
        (0.5, (2**30, 0)),
        (0.75, (3 * 2**29, 0)),
        (2.0**-31, (2**30, -30)),
        (2.0**-32, (2**30, -31)),
        (2.0**-33, (0, 0)),
        (5e-324, (0, 0)),
        (1e-10, (0, 0)),  # below 2**-32: flushed to zero
        (3e-10, None),  # just above: shift -31, from the reference
        (1 - 2.0**-40, (2**30, 1)),  # rounds up to 2**31: halved, shift + 1
        (float(np.nextafter(2.0**-32, 0)), (2**30, -31)),  # the carry happens before the flush
        (2.0**31, (2**30, 32)),
    ],
)
def test_quantize_multiplier_edges(real, expected):
    if expected is None:
        expected = ref_quantize_multiplier(real)
    assert nx.quantize_multiplier(real) == expected
    assert nx.quantize_multiplier(real) == ref_quantize_multiplier(real)
    m, s = nx.quantize_multiplier_array(np.array([real]))
    assert (int(m[0]), int(s[0])) == expected


def test_quantize_multiplier_single_rounding_saturates_shift():
    assert nx.quantize_multiplier(2.0**31, single_rounding=True) == (2**31 - 1, 30)
    assert nx.quantize_multiplier(2.0**30, single_rounding=True) == (2**31 - 1, 30)
    assert nx.quantize_multiplier(2.0**30) == (2**30, 31)
    assert nx.quantize_multiplier(2.0**29, single_rounding=True) == (2**30, 30)
    m, s = nx.quantize_multiplier_array([2.0**31, 1.0], single_rounding=True)
    assert m.tolist() == [2**31 - 1, 2**30] and s.tolist() == [30, 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_quantize_multiplier_random(seed):
    rng = np.random.default_rng(seed)
    reals = np.concatenate([2.0 ** rng.uniform(-40, 40, 2000), rng.uniform(0, 1, 1000)])
    # Values whose Q31 significand is an exact tie (k + 1/2) / 2**31 hit the rounding rule.
    ties = (rng.integers(2**30, 2**31, 200) + 0.5) / 2**31 * 2.0 ** rng.integers(-20, 20, 200)
    reals = np.concatenate([reals, ties])
    m, s = nx.quantize_multiplier_array(reals)
    assert m.dtype == np.int32 and s.dtype == np.int32
    for i, real in enumerate(reals):
        expected = ref_quantize_multiplier(float(real))
        assert nx.quantize_multiplier(float(real)) == expected, f"seed={seed} real={real!r}"
        assert (int(m[i]), int(s[i])) == expected, f"seed={seed} real={real!r}"
        if expected[0]:
            assert 2**30 <= expected[0] < 2**31
            approx = expected[0] * 2.0 ** (expected[1] - 31)
            assert abs(approx - real) <= real * 2.0**-31, f"seed={seed} real={real!r}"


def test_quantize_multiplier_array_keeps_shape_and_scalars():
    m, s = nx.quantize_multiplier_array(np.full((2, 3), 0.25))
    assert m.shape == s.shape == (2, 3)
    m, s = nx.quantize_multiplier_array(0.25)
    assert (m, s) == (2**30, -1) and isinstance(m, np.int32)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "1", True])
def test_quantize_multiplier_rejects(bad):
    with pytest.raises(ValueError, match=r"^real_multiplier must be a finite number >= 0, not "):
        nx.quantize_multiplier(bad)


def test_quantize_multiplier_array_rejects_negative():
    with pytest.raises(ValueError, match=r"^reals must be finite and >= 0, not -0\.5$"):
        nx.quantize_multiplier_array([0.5, -0.5])


# --- SaturatingRoundingDoublingHighMul and RoundingDivideByPOT ------------------------------


def test_srdhm_edges_exhaustively():
    a, b = np.meshgrid(INT32_EDGES, INT32_EDGES)
    got = nx.saturating_rounding_doubling_high_mul(a, b)
    for x, y, r in zip(a.flat, b.flat, got.flat, strict=True):
        assert r == ref_srdhm(int(x), int(y)), (x, y)
    assert nx.saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX


@pytest.mark.parametrize("seed", SEEDS)
def test_srdhm_random(seed):
    rng = np.random.default_rng(seed)
    a = random_int32(rng, 2000)
    b = rng.permutation(random_int32(rng, 2000))
    got = nx.saturating_rounding_doubling_high_mul(a, b)
    for x, y, r in zip(a.tolist(), b.tolist(), got.tolist(), strict=True):
        assert r == ref_srdhm(x, y), f"seed={seed} a={x} b={y}"


@HYPOTHESIS
@given(int32s, int32s)
def test_srdhm_is_round_half_up_of_the_product(a, b):
    got = int(nx.saturating_rounding_doubling_high_mul(a, b))
    assert got == ref_srdhm(a, b)
    if not a == b == INT32_MIN:
        assert got == math.floor(Fraction(a * b, 2**31) + Fraction(1, 2))


def test_rdbpot_edges_exhaustively():
    x, e = np.meshgrid(INT32_EDGES, np.arange(32))
    got = nx.rounding_divide_by_pot(x, e)
    for v, k, r in zip(x.flat, e.flat, got.flat, strict=True):
        assert r == ref_rdbpot(int(v), int(k)), (v, k)


@pytest.mark.parametrize("seed", SEEDS)
def test_rdbpot_random_with_broadcast_exponents(seed):
    rng = np.random.default_rng(seed)
    x = random_int32(rng, 3000)[: 3000 // 8 * 8].reshape(-1, 8)
    e = rng.integers(0, 32, 8)  # one exponent per "channel"
    got = nx.rounding_divide_by_pot(x, e)
    for i in range(x.shape[0]):
        for c in range(8):
            v, k = int(x[i, c]), int(e[c])
            expected = ref_rdbpot(v, k)
            assert got[i, c] == expected, f"seed={seed} x={v} exponent={k}"
            # and the gemmlowp bit formula, written out on Python ints
            mask = (1 << k) - 1
            bits = (v >> k) + ((v & mask) > (mask >> 1) + (v < 0))
            assert bits == expected


def test_rdbpot_errors():
    with pytest.raises(ValueError, match=r"^exponent must lie in 0\.\.31, not 32$"):
        nx.rounding_divide_by_pot(1, 32)
    with pytest.raises(
        ValueError, match=r"^x must lie in -2147483648\.\.2147483647, not 2147483648$"
    ):
        nx.rounding_divide_by_pot(2**31, 1)


# --- MultiplyByQuantizedMultiplier and requantize -------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("single_rounding", [False, True])
def test_mbqm_random(seed, single_rounding):
    rng = np.random.default_rng(seed)
    ref = ref_mbqm_single if single_rounding else ref_mbqm
    x = random_int32(rng, 1500)
    m = rng.choice(random_multipliers(rng, 1500), x.size)
    s = rng.integers(-31, 31, x.size)
    expected = [ref(*args) for args in zip(x.tolist(), m.tolist(), s.tolist(), strict=True)]
    ok = np.array([e is not None for e in expected])
    assert ok.sum() > x.size // 2, "too few valid cases"
    got = nx.multiply_by_quantized_multiplier(x[ok], m[ok], s[ok], single_rounding=single_rounding)
    want = [e for e in expected if e is not None]
    mismatch = np.flatnonzero(got != want)
    assert mismatch.size == 0, (
        f"seed={seed} x={x[ok][mismatch[:1]]} m={m[ok][mismatch[:1]]} s={s[ok][mismatch[:1]]}"
    )
    for i in np.flatnonzero(~ok)[:20]:  # each case TFLite cannot compute must be refused
        with pytest.raises(OverflowError, match=r"overflows int32 at x="):
            nx.multiply_by_quantized_multiplier(x[i], m[i], s[i], single_rounding=single_rounding)


@HYPOTHESIS
@given(int32s, st.integers(0, INT32_MAX), st.integers(-31, 30))
def test_mbqm_hypothesis(x, m, shift):
    for single, ref in ((False, ref_mbqm), (True, ref_mbqm_single)):
        expected = ref(x, m, shift)
        if expected is None:
            with pytest.raises(OverflowError):
                nx.multiply_by_quantized_multiplier(x, m, shift, single_rounding=single)
        else:
            assert nx.multiply_by_quantized_multiplier(x, m, shift, single_rounding=single) == (
                expected
            )


def test_mbqm_extremes():
    for x in INT32_EDGES:
        for m in (0, 1, 2**30, 2**31 - 1):
            for shift in (-31, -30, -1, 0):
                assert nx.multiply_by_quantized_multiplier(x, m, shift) == ref_mbqm(x, m, shift)
    # shift 30 only works for tiny x in double rounding; single rounding overflows sooner
    assert nx.multiply_by_quantized_multiplier(1, 2**30, 30) == 2**29
    assert nx.multiply_by_quantized_multiplier(-2, 2**30, 30) == -(2**30)
    with pytest.raises(OverflowError, match=r"^x \* 2\*\*shift overflows int32 at x=2, shift=30$"):
        nx.multiply_by_quantized_multiplier(2, 2**30, 30)
    with pytest.raises(OverflowError, match=r"^the single-rounding product overflows int32 at x="):
        nx.multiply_by_quantized_multiplier(2**20, 2**31 - 1, 30, single_rounding=True)


def test_mbqm_double_and_single_rounding_differ_by_at_most_one():
    # Rounding twice differs from rounding once near ties (by one step at most): the reason the
    # rounding mode of the reference build matters for bit-exactness.
    x = np.arange(-5000, 5000)
    double = nx.multiply_by_quantized_multiplier(x, 1518500250, -9)
    single = nx.multiply_by_quantized_multiplier(x, 1518500250, -9, single_rounding=True)
    assert (double != single).any() and (np.abs(double - single) <= 1).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"multiplier": -1}, r"^multiplier must lie in 0\.\.2147483647, not -1$"),
        ({"multiplier": 2**31}, r"^multiplier must lie in 0\.\.2147483647, not 2147483648$"),
        ({"shift": -32}, r"^shift must lie in -31\.\.30, not -32$"),
        ({"shift": 31}, r"^shift must lie in -31\.\.30, not 31$"),
        ({"x": INT32_MIN - 1}, r"^x must lie in -2147483648\.\.2147483647, not -2147483649$"),
        ({"x": 1.0}, r"^x must be an integer or an array of integers, not 1\.0$"),
    ],
)
def test_mbqm_errors(kwargs, message):
    args = {"x": 1, "multiplier": 2**30, "shift": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        nx.multiply_by_quantized_multiplier(**args)


@pytest.mark.parametrize("seed", SEEDS)
def test_requantize_per_channel(seed):
    rng = np.random.default_rng(seed)
    channels = 16
    acc = rng.integers(-(2**22), 2**22, (64, channels))
    acc[0] = INT32_MIN // 4
    acc[1] = INT32_MAX // 4
    m, s = nx.quantize_multiplier_array(rng.uniform(1e-5, 0.9, channels))
    zp, act_min, act_max = int(rng.integers(-128, 128)), -128, int(rng.integers(0, 128))
    got = nx.requantize(acc, m, s, zp, act_min, act_max)
    assert got.shape == acc.shape
    for i in range(acc.shape[0]):
        for c in range(channels):
            expected = ref_mbqm(int(acc[i, c]), int(m[c]), int(s[c])) + zp
            expected = min(max(expected, act_min), act_max)
            assert got[i, c] == expected, f"seed={seed} acc={acc[i, c]} channel={c}"


def test_requantize_scalar_and_errors():
    assert nx.requantize(1000, 2**30, -2, 3, -128, 127) == 127  # 1000 / 8 + 3 = 128, clamped
    with pytest.raises(ValueError, match=r"^act_min must not exceed act_max, not act_min=5, "):
        nx.requantize(0, 2**30, 0, 0, 5, 4)
    with pytest.raises(ValueError, match=r"^acc must lie in -2147483648\.\.2147483647, not "):
        nx.requantize(2**31, 2**30, 0, 0, -128, 127)
    with pytest.raises(OverflowError, match=r"^the scaled accumulator plus zero_point overflows"):
        nx.requantize(INT32_MAX, 2**31 - 1, 0, 10, -128, 127)


@pytest.mark.parametrize("seed", SEEDS)
def test_requantize_float(seed):
    rng = np.random.default_rng(seed)
    acc = np.concatenate([rng.integers(-(2**24), 2**24, 3000), [INT32_MIN, INT32_MAX, 0]])
    scale = nx.effective_scale(rng.uniform(0.01, 0.1), rng.uniform(1e-3, 1e-2), 0.05)
    zp = int(rng.integers(-128, 128))
    got = nx.requantize_float(acc, scale, zp, -128, 127)
    for a, r in zip(acc.tolist(), got.tolist(), strict=True):
        product = float(a) * float(scale)  # one IEEE double multiplication, as in C++
        expected = min(max(round_away(Fraction(product)) + zp, -128), 127)
        assert r == expected, f"seed={seed} acc={a}"


def test_requantize_float_ties_and_overflow():
    assert np.array_equal(nx.requantize_float([1, -1, 3, -3], 0.5, 0, -128, 127), [1, -1, 2, -2])
    with pytest.raises(OverflowError, match=r"^round\(acc \* scale\) overflows int32 at acc="):
        nx.requantize_float(INT32_MAX, 2.0, 0, -128, 127)
    with pytest.raises(ValueError, match=r"^scale must be finite and > 0, not -1\.0$"):
        nx.requantize_float(1, -1.0, 0, -128, 127)


def test_requantize_end_to_end_against_float():
    # The integer pipeline approximates the real computation within one output step.
    rng = np.random.default_rng(11)
    s_in, s_out = 0.02, 0.05
    s_w = rng.uniform(0.001, 0.01, 8).astype(np.float32)
    x = rng.integers(-128, 128, (50, 288))
    w = rng.integers(-127, 128, (288, 8))
    zp_in, zp_out = 5, -3
    acc = (x - zp_in) @ w
    m, s = nx.quantize_multiplier_array(nx.effective_scale(s_in, s_w, s_out))
    y = nx.requantize(acc, m, s, zp_out, -128, 127)
    real = (acc * np.float64(s_in) * s_w.astype(np.float64)) / s_out + zp_out
    inside = (real > -127) & (real < 126)
    assert (np.abs(y - real)[inside] <= 0.5 + 1e-6).all()


# --- pow2 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_pow2_round_shift_random(seed):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.integers(-(2**40), 2**40, 2000), rng.integers(-64, 64, 500)])
    s = rng.integers(-8, 24, x.size)
    got = nx.pow2_round_shift(x, s)
    for v, k, r in zip(x.tolist(), s.tolist(), got.tolist(), strict=True):
        assert r == ref_pow2_round_shift(v, k), f"seed={seed} x={v} shift={k}"


def test_pow2_round_shift_rounds_half_up():
    x = np.array([-5, -3, -1, 1, 3, 5, 7, -7])
    assert np.array_equal(nx.pow2_round_shift(x, 1), [-2, -1, 0, 1, 2, 3, 4, -3])
    assert nx.pow2_round_shift(7, 0) == 7
    assert nx.pow2_round_shift(-3, -4) == -48
    assert nx.pow2_round_shift(2**62 - 1, 62) == 1
    assert nx.pow2_round_shift(-(2**62), 62) == -1


def test_pow2_round_shift_errors():
    with pytest.raises(
        OverflowError, match=r"^x \* 2\*\*-shift overflows 63 bits at x=2, shift=-61$"
    ):
        nx.pow2_round_shift(2, -61)
    with pytest.raises(
        ValueError, match=r"^x must lie in -4611686018427387904\.\.4611686018427387903"
    ):
        nx.pow2_round_shift(2**62, 1)
    with pytest.raises(ValueError, match=r"^shift must lie in -62\.\.62, not 63$"):
        nx.pow2_round_shift(1, 63)


def test_pow2_requantize():
    acc = np.array([-10_000, -6, -5, -2, 2, 5, 6, 10_000])
    assert np.array_equal(nx.pow2_requantize(acc, 2, 8), [-128, -1, -1, 0, 1, 1, 2, 127])
    assert np.array_equal(nx.pow2_requantize(acc, 2, 4, act_min=0), [0, 0, 0, 0, 1, 1, 2, 7])
    with pytest.raises(ValueError, match=r"^act_max must be an integer in -8\.\.7, not 8$"):
        nx.pow2_requantize(acc, 2, 4, act_max=8)
    with pytest.raises(ValueError, match=r"^act_min must not exceed act_max, not 3 > 2$"):
        nx.pow2_requantize(acc, 2, 4, act_min=3, act_max=2)


# --- accumulator widths ---------------------------------------------------------------------


def worst_case_sums(terms, x_range, w_range, bias_range):
    """Build actual operand vectors at every corner and return their sums (numpy int64)."""
    sums = []
    for u in x_range:
        for w in w_range:
            for b in bias_range:
                xs = np.full(terms, u, dtype=np.int64)
                ws = np.full(terms, w, dtype=np.int64)
                sums.append(int(np.dot(xs, ws)) + b)
    return sums


def fits(value, bits):
    return -(2 ** (bits - 1)) <= value <= 2 ** (bits - 1) - 1


@pytest.mark.parametrize("terms", [1, 9, 27, 288, 576, 3136, 66311, 66312, 10**6])
@pytest.mark.parametrize("bias_range", [(0, 0), (-1000, 5000), nx.int_range(32)])
def test_accumulator_bits_tflite_int8_is_safe_and_tight(terms, bias_range):
    bits = nx.accumulator_bits(terms=terms, bias_range=bias_range)
    # The worst case, built from real int8 data: x = 127 with zp = -128 gives x - zp = 255,
    # x = -128 with zp = 127 gives -255; weights at +-127; the bias at its ends.
    x_hi, zp_lo = np.int64(127), np.int64(-128)
    x_lo, zp_hi = np.int64(-128), np.int64(127)
    diffs = (int(x_lo - zp_hi), int(x_hi - zp_lo))
    assert diffs == (-255, 255)
    sums = worst_case_sums(terms, diffs, (-127, 127), bias_range)
    assert all(fits(v, bits) for v in sums), (terms, bias_range, bits)
    assert not all(fits(v, bits - 1) for v in sums), (terms, bias_range, bits)
    # and against the magnitude bound
    bound = nx.accumulator_bound(
        terms=terms, x_abs_max=255, w_abs_max=127, bias_abs_max=max(map(abs, bias_range))
    )
    assert max(abs(v) for v in sums) == bound


@pytest.mark.parametrize("input_bits", [4, 8, 12, 16])
@pytest.mark.parametrize("weight_bits", [4, 8, 16])
@pytest.mark.parametrize("terms", [1, 9, 100, 4096])
def test_accumulator_bits_pow2_is_safe_and_tight(input_bits, weight_bits, terms):
    bits = nx.accumulator_bits(
        terms=terms,
        input_bits=input_bits,
        weight_bits=weight_bits,
        input_offset=False,
        weight_symmetric=False,
        bias_range=nx.int_range(input_bits + weight_bits),
    )
    sums = worst_case_sums(
        terms,
        nx.int_range(input_bits),
        nx.int_range(weight_bits),
        nx.int_range(input_bits + weight_bits),
    )
    assert all(fits(v, bits) for v in sums)
    assert not all(fits(v, bits - 1) for v in sums)


def test_accumulator_bits_examples_from_the_docs():
    assert nx.accumulator_bits(terms=3 * 3 * 32) == 25
    assert nx.accumulator_bits(terms=7 * 7 * 64) == 28
    assert nx.accumulator_bits(terms=66311, bias_range=(0, 0)) == 32  # TFLite's int32 limit
    assert nx.accumulator_bits(terms=66312) == 33


@pytest.mark.parametrize("seed", SEEDS)
def test_accumulator_range_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    for _ in range(20):
        x_range = tuple(sorted(rng.integers(-6, 7, 2).tolist()))
        w_range = tuple(sorted(rng.integers(-6, 7, 2).tolist()))
        bias_range = tuple(sorted(rng.integers(-20, 21, 2).tolist()))
        xs = np.arange(x_range[0], x_range[1] + 1)
        ws = np.arange(w_range[0], w_range[1] + 1)
        products = np.multiply.outer(xs, ws).ravel()
        # every partial sum of up to 2 terms, with and without the bias
        partial = {0, *products.tolist()}
        partial |= set(np.add.outer(products, products).ravel().tolist())
        biases = range(bias_range[0], bias_range[1] + 1)
        values = partial | {p + b for p in partial for b in biases}
        low, high = nx.accumulator_range(
            terms=2, x_range=x_range, w_range=w_range, bias_range=bias_range
        )
        assert low <= min(values) and max(values) <= high, f"seed={seed}"
        full = {p + b for p in np.add.outer(products, products).ravel().tolist() for b in biases}
        if x_range[0] <= 0 <= x_range[1] and w_range[0] <= 0 <= w_range[1]:
            if bias_range[0] <= 0 <= bias_range[1]:
                assert (low, high) == (min(full), max(full)), f"seed={seed}"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"terms": 0}, r"^terms must be an integer >= 1, not 0$"),
        ({"terms": 2.0}, r"^terms must be an integer >= 1, not 2\.0$"),
        ({"x_range": (3, 1)}, r"^x_range must be a \(low, high\) pair of integers with low <= hig"),
        ({"w_range": (1,)}, r"^w_range must be a \(low, high\) pair of integers"),
        ({"bias_range": (0.0, 1)}, r"^bias_range must be a \(low, high\) pair of integers"),
    ],
)
def test_accumulator_range_errors(kwargs, message):
    args = {"terms": 9, "x_range": (-255, 255), "w_range": (-127, 127)} | kwargs
    with pytest.raises(ValueError, match=message):
        nx.accumulator_range(**args)


def test_accumulator_bound_errors():
    with pytest.raises(ValueError, match=r"^x_abs_max must be an integer >= 0, not -1$"):
        nx.accumulator_bound(terms=1, x_abs_max=-1, w_abs_max=1)
