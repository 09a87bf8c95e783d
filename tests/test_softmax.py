"""Tests of accel.quant.softmax against a scalar transliteration of TFLite's reference kernel.

The reference below follows ``reference_ops::Softmax`` (``reference/softmax.h``),
``PreprocessSoftmaxScaling`` / ``CalculateInputRadius`` (``quantization_util.cc``),
``GetReciprocal`` (``common.h``) and gemmlowp's ``fixedpoint.h`` statement by statement, on
Python integers, with every int32 intermediate checked to stay in range. The vectorized module
is compared with it on thousands of seeded random rows; ``tests/test_tflite_ops.py`` compares it
with the interpreter itself.
"""

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.quant.softmax import (
    OUTPUT_SCALE,
    OUTPUT_ZERO_POINT,
    SoftmaxScaling,
    exp_on_negative_values,
    one_over_one_plus_x_for_x_in_0_1,
    softmax_int8,
    softmax_scaling,
)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SEEDS = [0, 1, 2]
HYPOTHESIS = settings(max_examples=300, deadline=None, derandomize=True, database=None)


# --- the scalar reference -----------------------------------------------------------------------


def i32(v: int) -> int:
    """An int32 result of C++ arithmetic; the reference must never leave the range."""
    assert INT32_MIN <= v <= INT32_MAX, v
    return v


def c_div(n: int, d: int) -> int:
    q = abs(n) // abs(d)
    return q if (n >= 0) == (d > 0) else -q


def srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return i32(c_div(ab + nudge, 1 << 31))


def rdbpot(x: int, exponent: int) -> int:
    """Round half away from zero of x / 2**exponent."""
    q, r = divmod(abs(x), 1 << exponent)
    q += 2 * r >= (1 << exponent) if exponent else 0
    return q if x >= 0 else -q


def saturating_shift_left(x: int, exponent: int) -> int:
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return i32(x << exponent)


def rounding_half_sum(a: int, b: int) -> int:
    total = a + b
    return c_div(total + (1 if total >= 0 else -1), 2)


def ref_exp_on_negative_values(a: int) -> int:
    """exp_on_negative_values for FixedPoint<int32, 5> (26 fraction bits)."""
    quarter = 1 << 24
    a_mod = i32((a & (quarter - 1)) - quarter)
    y = saturating_shift_left(a_mod, 5)  # Rescale<0>
    x = i32(y + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(i32(srdhm(i32(x4_over_4 + x3), 715827883) + x2), 1)
    result = i32(1895147668 + srdhm(1895147668, i32(x + poly)))
    remainder = i32(a_mod - a)
    for exponent, multiplier in ((-2, 1672461947), (-1, 1302514674), (0, 790015084),
                                 (1, 290630308), (2, 39332535), (3, 720401), (4, 242)):
        if remainder & (1 << (26 + exponent)):
            result = srdhm(result, multiplier)
    return INT32_MAX if a == 0 else result


def ref_one_over_one_plus_x(a: int) -> int:
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = i32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = i32((1 << 29) - srdhm(half_denominator, x))
        x = i32(x + saturating_shift_left(srdhm(x, one_minus), 2))
    return saturating_shift_left(x, 1)


def ref_scaling(input_scale: float, beta: float) -> tuple[int, int, int]:
    real = min(float(np.float32(beta)) * float(np.float32(input_scale)) * (1 << 26),
               (1 << 31) - 1.0)
    assert real > 1
    fraction, shift = math.frexp(real)
    scaled = fraction * 2.0**31
    q = math.floor(scaled) + (scaled - math.floor(scaled) >= 0.5)
    if q == 1 << 31:
        q //= 2
        shift += 1
    diff_min = -math.floor(1.0 * 31 * (1 << 26) / (1 << shift))
    return q, shift, diff_min


def ref_softmax_row(row: list[int], input_scale: float, beta: float) -> list[int]:
    multiplier, left_shift, diff_min = ref_scaling(input_scale, beta)
    top = max(row)
    exps = {}
    total = 0
    for c, value in enumerate(row):
        diff = value - top
        if diff >= diff_min:
            exps[c] = ref_exp_on_negative_values(srdhm(i32(diff << left_shift), multiplier))
            total = i32(total + rdbpot(exps[c], 12))
    headroom_plus_one = 32 - total.bit_length()
    num_bits_over_unit = 12 - headroom_plus_one
    shifted_scale = ref_one_over_one_plus_x(i32((total << headroom_plus_one) - (1 << 31)))
    exponent = num_bits_over_unit + 31 - 8
    assert 0 <= exponent <= 31  # TFLITE_CHECK
    out = []
    for c in range(len(row)):
        if c in exps:
            unsat = rdbpot(srdhm(shifted_scale, exps[c]), exponent)
            out.append(max(-128, min(127, unsat - 128)))
        else:
            out.append(-128)
    return out


def random_rows(rng: np.random.Generator, rows: int, depth: int) -> np.ndarray:
    kind = rng.integers(0, 3)
    if kind == 0:
        return rng.integers(-128, 128, size=(rows, depth))
    if kind == 1:  # narrow: many ties and near-ties
        centre = int(rng.integers(-128, 128))
        return np.clip(rng.integers(centre - 3, centre + 4, size=(rows, depth)), -128, 127)
    return rng.choice([-128, 127, int(rng.integers(-128, 128))], size=(rows, depth))


def random_scale(rng: np.random.Generator) -> float:
    return float(np.float32(2.0 ** rng.uniform(-25.5, 8)))


# --- the whole operator --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_matches_the_scalar_reference(seed):
    rng = np.random.default_rng(seed)
    for _ in range(150):
        depth = int(rng.choice([1, 2, 3, 10, int(rng.integers(1, 60))]))
        scale = random_scale(rng)
        beta = 1.0 if rng.random() < 0.7 else float(np.float32(2.0 ** rng.uniform(-2, 2)))
        if float(np.float32(beta)) * scale * 2.0**26 <= 1:
            beta = 1.0
        x = random_rows(rng, 5, depth)
        got = softmax_int8(x, input_scale=scale, beta=beta)
        want = [ref_softmax_row(row.tolist(), scale, beta) for row in x]
        assert got.tolist() == want, f"seed {seed}: scale={scale!r} beta={beta!r} x={x.tolist()}"


@HYPOTHESIS
@given(
    row=st.lists(st.integers(-128, 127), min_size=1, max_size=24),
    log2_scale=st.floats(-25.9, 10),
    beta=st.sampled_from([1.0, 0.5, 2.0, 0.1, 3.7]),
)
def test_softmax_matches_the_scalar_reference_hypothesis(row, log2_scale, beta):
    scale = float(np.float32(2.0**log2_scale))
    if float(np.float32(beta)) * scale * 2.0**26 <= 1:
        return
    assert softmax_int8(row, input_scale=scale, beta=beta).tolist() == ref_softmax_row(
        row, scale, beta)


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_is_within_half_a_step_of_the_float_softmax(seed):
    # The fixed-point exp and reciprocal are accurate to about 2**-20: the output is the
    # rounded float softmax, off by at most 0.5 output steps plus that.
    rng = np.random.default_rng(seed)
    for _ in range(300):
        x = random_rows(rng, 4, int(rng.integers(1, 40)))
        scale = float(np.float32(2.0 ** rng.uniform(-12, 3)))
        beta = float(np.float32(rng.choice([1.0, rng.uniform(0.3, 3.0)])))
        got = softmax_int8(x, input_scale=scale, beta=beta)
        z = np.float64(beta) * scale * (x - x.max(axis=-1, keepdims=True))
        p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
        exact = np.clip(p / OUTPUT_SCALE + OUTPUT_ZERO_POINT, -128, 127)
        assert np.abs(got - exact).max() <= 0.5 + 2.0**-10, (seed, scale, beta, x.tolist())


def test_softmax_of_one_entry_is_the_largest_code():
    # exp(0) = 1 - 2**-31, sum 1, reciprocal 1: 256/256 clamps to 127 (255/256).
    assert softmax_int8([[5]], input_scale=0.1).tolist() == [[127]]
    assert softmax_int8([-128], input_scale=1e-3).tolist() == [127]


def test_softmax_of_equal_entries_is_uniform():
    # These, and the pinned outputs of the tests around, are what ai-edge-litert 2.3's
    # reference kernel returns for the same inputs.
    for depth, code in [(2, 0), (4, -64), (10, -102), (256, -127)]:
        assert softmax_int8(np.full(depth, 7), input_scale=0.5).tolist() == [code] * depth


def test_softmax_drops_differences_below_diff_min():
    # With a large input scale the multiplier is capped (shift 31, diff_min 0): everything
    # below the row maximum outputs -128 and the maxima share the probability.
    assert softmax_scaling(input_scale=100.0).diff_min == 0
    assert softmax_int8([[3, 3, 2, -128]], input_scale=100.0).tolist() == [[0, 0, -128, -128]]


def test_softmax_rows_of_511_equal_entries_pass_and_512_are_refused():
    # Observed with ai-edge-litert 2.3 (BUILTIN_REF): 511 equal entries give -127 everywhere;
    # 512 make the Q12.19 sum 2**28 and TFLITE_CHECK(exponent <= 31) aborts the process.
    assert set(softmax_int8(np.full(511, 5), input_scale=0.1).tolist()) == {-127}
    with pytest.raises(OverflowError, match=r"^a row's sum of exponentials reaches 2\*\*28"):
        softmax_int8(np.full((2, 512), 5), input_scale=0.1)
    # Long rows are fine when most entries are far below the maximum.
    row = np.full(1000, -128)
    row[0] = 127
    assert softmax_int8(row, input_scale=0.1)[0] == 127


def test_softmax_ignores_the_zero_point():
    rng = np.random.default_rng(3)
    x = rng.integers(-100, 50, size=(20, 12))
    for shift in (-28, 1, 77):
        assert np.array_equal(softmax_int8(x + shift, input_scale=0.07),
                              softmax_int8(x, input_scale=0.07))


def test_softmax_runs_over_the_last_axis_of_any_shape():
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, size=(2, 3, 4, 7)).astype(np.int8)
    got = softmax_int8(x, input_scale=0.03)
    assert got.dtype == np.int64 and got.shape == x.shape
    flat = softmax_int8(x.reshape(-1, 7), input_scale=0.03)
    assert np.array_equal(got.reshape(-1, 7), flat)
    for i, row in enumerate(x.reshape(-1, 7)):
        assert np.array_equal(flat[i], softmax_int8(row, input_scale=0.03))
    assert softmax_int8(np.zeros((0, 5), np.int8), input_scale=0.03).shape == (0, 5)


def test_softmax_is_monotonic_within_a_row():
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, size=(200, 16))
    y = softmax_int8(x, input_scale=0.05)
    order = np.argsort(x, axis=-1, kind="stable")
    assert (np.diff(np.take_along_axis(y, order, axis=-1), axis=-1) >= 0).all()


# --- the constants ------------------------------------------------------------------------------


@pytest.mark.parametrize(("input_scale", "beta", "expected"), [
    (1 / 16, 1.0, (1 << 30, 23, -248)),  # 2**22: exactly representable
    (1.5 * 2.0**-26, 1.0, (3 << 29, 1, -(31 << 25))),  # multiplier barely above 1
    (64.0, 1.0, (INT32_MAX, 31, 0)),  # capped at 2**31 - 1
    (1.0, 32.0, (INT32_MAX, 31, 0)),
])
def test_softmax_scaling_known_values(input_scale, beta, expected):
    assert softmax_scaling(input_scale=input_scale, beta=beta) == SoftmaxScaling(*expected)


def test_softmax_scaling_matches_the_reference_derivation():
    rng = np.random.default_rng(6)
    for _ in range(2000):
        scale, beta = random_scale(rng), float(np.float32(2.0 ** rng.uniform(-3, 3)))
        if float(np.float32(beta)) * scale * 2.0**26 <= 1:
            continue
        assert tuple(softmax_scaling(input_scale=scale, beta=beta)) == ref_scaling(scale, beta)


def test_softmax_scaling_uses_the_float32_scale():
    # 0.1 is not a float32; the kernel sees float32(0.1), and so do we.
    assert softmax_scaling(input_scale=0.1) == softmax_scaling(
        input_scale=float(np.float32(0.1)))
    assert softmax_scaling(input_scale=0.1).multiplier == round(
        math.frexp(float(np.float32(0.1)) * 2**26)[0] * 2**31)


# --- the fixed-point primitives -----------------------------------------------------------------


def test_exp_on_negative_values_matches_the_reference_and_exp():
    rng = np.random.default_rng(7)
    a = np.concatenate([
        [0, -1, -(1 << 24), -(1 << 26), -(1 << 30), INT32_MIN, INT32_MIN + 1],
        -rng.integers(0, 1 << 31, size=3000),
        -rng.integers(0, 1 << 24, size=1000),
    ])
    got = exp_on_negative_values(a)
    assert got.tolist() == [ref_exp_on_negative_values(int(v)) for v in a]
    assert got[0] == INT32_MAX
    assert np.abs(got / 2**31 - np.exp(a / 2**26)).max() < 2**-20


def test_one_over_one_plus_x_matches_the_reference_and_division():
    rng = np.random.default_rng(8)
    a = np.concatenate([[0, 1, 1 << 30, INT32_MAX - 1, INT32_MAX],
                        rng.integers(0, 1 << 31, size=3000)])
    got = one_over_one_plus_x_for_x_in_0_1(a)
    assert got.tolist() == [ref_one_over_one_plus_x(int(v)) for v in a]
    assert got[0] == INT32_MAX
    assert np.abs(got / 2**31 - 1 / (1 + a / 2**31)).max() < 2**-26


# --- argument checking ----------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"x": [[1.5, 2.0]]}, r"^x must be an array of int8 values, not an array of dtype float64$"),
    ({"x": [[True, False]]}, r"^x must be an array of int8 values, not an array of dtype bool$"),
    ({"x": [[1, 128]]}, r"^x must hold int8 values \(-128\.\.127\), not 128$"),
    ({"x": [-129]}, r"^x must hold int8 values \(-128\.\.127\), not -129$"),
    ({"x": 5}, r"^x must have at least one axis \(softmax runs over the last\), not 5$"),
    ({"x": np.zeros((3, 0), np.int8)}, r"^x must have a non-empty last axis, not shape \(3, 0\)$"),
    ({"x": "abc"}, r"^x must be an array of int8 values, not 'abc'$"),
    ({"input_scale": 0.0}, r"^input_scale must be > 0, not 0\.0$"),
    ({"input_scale": -1.0}, r"^input_scale must be > 0, not -1\.0$"),
    ({"input_scale": float("nan")}, r"^input_scale must be a finite number \(as a float32\)"),
    ({"input_scale": 1e39}, r"^input_scale must be a finite number \(as a float32\), not 1e\+39$"),
    ({"input_scale": "0.1"}, r"^input_scale must be a finite number, not '0\.1'$"),
    ({"input_scale": True}, r"^input_scale must be a finite number, not True$"),
    ({"beta": float("inf")}, r"^beta must be a finite number \(as a float32\), not inf$"),
    ({"beta": None}, r"^beta must be a finite number, not None$"),
    ({"beta": -1.0}, r"^beta \* input_scale must exceed 2\*\*-26 .* not beta=-1\.0, input_scale"),
    ({"input_scale": 2.0**-26}, r"^beta \* input_scale must exceed 2\*\*-26"),
])
def test_softmax_rejects_bad_arguments(kwargs, message):
    args = {"x": [[1, 2, 3]], "input_scale": 0.1, "beta": 1.0, **kwargs}
    x = args.pop("x")
    with pytest.raises(ValueError, match=message):
        softmax_int8(x, **args)


@pytest.mark.parametrize(("function", "value", "message"), [
    (exp_on_negative_values, [1], r"^a must be <= 0, not 1$"),
    (exp_on_negative_values, [-(2**31) - 1], r"^a must lie in -2147483648\.\.2147483647"),
    (exp_on_negative_values, [0.5], r"^a must be an integer or an array of integers"),
    (one_over_one_plus_x_for_x_in_0_1, [-1], r"^a must be >= 0, not -1$"),
    (one_over_one_plus_x_for_x_in_0_1, [2**31], r"^a must lie in -2147483648\.\.2147483647"),
])
def test_fixed_point_functions_reject_bad_arguments(function, value, message):
    with pytest.raises(ValueError, match=message):
        function(value)


def test_error_messages_are_one_line():
    with pytest.raises(ValueError) as info:
        softmax_int8([[1, 2]], input_scale=1e-9)
    assert "\n" not in str(info.value)
    assert re.search(r"input_scale=1e-09", str(info.value))
