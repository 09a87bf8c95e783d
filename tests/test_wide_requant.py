"""The integer stand-in for TFLite's float FULLY_CONNECTED requantization is exact."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.quant import numerics


@settings(max_examples=25, deadline=None)
@given(log_scale=st.floats(-14, 2), zp=st.integers(-128, 127), relu=st.booleans(),
       seed=st.integers(0, 2**16))
def test_exhaustive_over_the_whole_accumulator_range(log_scale, zp, relu, seed):
    """Every accumulator of a 17-bit range, not just the points the proof checks."""
    scale = float(np.float64(2.0**log_scale) * (1 + np.random.default_rng(seed).random()))
    act_min, act_max = (max(zp, -128), 127) if relu else (-128, 127)
    lo, hi = -(2**16), 2**16
    m, n = numerics.wide_multiplier_for_scale(scale, zp, act_min, act_max, (lo, hi))
    acc = np.arange(lo, hi + 1)
    want = numerics.requantize_float(acc, scale, zp, act_min, act_max)
    got = numerics.requantize_wide(acc, m, n, zp, act_min, act_max)
    assert np.array_equal(want, got), (scale, zp, m, n)


def test_ties_round_away_from_zero():
    # scale 1/2: acc = +-3 gives +-1.5, which both paths round to +-2.
    assert list(numerics.requantize_wide([3, -3, 1, -1], 1, 1, 0, -128, 127)) == [2, -2, 1, -1]
    m, n = numerics.wide_multiplier_for_scale(0.5, 0, -128, 127, (-1000, 1000))
    assert list(numerics.requantize_wide([3, -3], m, n, 0, -128, 127)) == [2, -2]


def test_impossible_precision_is_reported():
    with pytest.raises(ValueError, match=r"^no multiplier of at most 16 bits reproduces"):
        numerics.wide_multiplier_for_scale(1.234567891234e-7, 0, -128, 127, (-(2**30), 2**30),
                                           max_bits=16)


def _python_wide(acc, m, n, zp, act_min, act_max):
    half = 1 << (n - 1) if n > 0 else 0
    out = []
    for a in acc:
        p = int(a) * m
        q = (p + half) >> n if p >= 0 else -((-p + half) >> n)
        out.append(min(max(q + zp, act_min), act_max))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_int64_paths_equal_python_integers(seed):
    """The split 80-bit products (and the all-zero shifts beyond them) against Python ints."""
    rng = np.random.default_rng(seed)
    for _ in range(300):
        m = int(rng.integers(1, 2 ** int(rng.integers(1, 54))))
        n = int(rng.integers(0, 100))
        amax = 2 ** int(rng.integers(1, 32))
        acc = rng.integers(-amax, amax, size=40)
        acc[:4] = [amax - 1, -amax, 1 << max(n - 1, 0) if n < 31 else 0, -1]
        act_min, act_max = (-128, 127) if rng.integers(2) else (-(2**40), 2**40)
        zp = int(rng.integers(-128, 128))
        got = numerics.requantize_wide(acc, m, n, zp, act_min, act_max)
        want = _python_wide(acc, m, n, zp, act_min, act_max)
        assert list(got) == want, (seed, m, n, amax)
