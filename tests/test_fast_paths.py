"""The golden model's fast paths against the reference functions they replace.

:class:`~accel.quant.numerics.Float64Requantizer` against the scalar double-rounding reference
of ``test_numerics`` (Python integers), at the edges of its proven domain, on every tie pattern
and on hypothesis-chosen cases; the exact float GEMM chunking against integer matmul on
worst-case accumulators; the fused convolution, the dense layer and the strided max pool
against the plain integer path (int64 matmul, :func:`numerics.requantize`'s int64 path).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.quant import golden
from accel.quant import numerics as nx
from accel.quant.numerics import INT32_MAX
from accel.quant.qnet import QConv2D, QDense, QMaxPool2D, QuantParams, Requant
from accel.spec.shapes import window_2d

from .test_numerics import ref_mbqm

HYPOTHESIS = settings(max_examples=300, deadline=None, derandomize=True, database=None)
MULTIPLIERS = [0, 1, 2**30, 2**30 + 1, 1518500250, 2**31 - 2, 2**31 - 1]


def exact_limit(m: int, shift: int, zp: int = 128) -> int:
    """The largest |acc| :func:`nx.float64_requantize_exact` admits (from its condition)."""
    return min(INT32_MAX,
               (2**53 - 2**30 - 2 ** (30 - shift) - abs(zp) * 2 ** (31 - shift)) // max(m, 1))


def ref_requantize(acc, m, shift, zp, lo, hi):
    return min(max(ref_mbqm(int(acc), int(m), int(shift)) + zp, lo), hi)


def int_path(acc, m, shift, zp, lo, hi):
    """numerics.requantize's int64 path (SRDHM, then RoundingDivideByPOT), forced."""
    values = np.asarray(acc, np.int64)
    return np.clip(nx._mbqm(values, np.asarray(m, np.int64), np.asarray(shift, np.int64), False)
                   + zp, lo, hi)


# --- Float64Requantizer -----------------------------------------------------------------------


def test_the_exactness_condition():
    assert nx.float64_requantize_exact(3 * 2**20, 2**31 - 1, -12, zero_point=-128)
    assert not nx.float64_requantize_exact(3 * 2**20, 2**31 - 1, -13, zero_point=-128)
    assert not nx.float64_requantize_exact(2**22 + 1, 2**31 - 1, 0)
    assert not nx.float64_requantize_exact(1, 2**30, 1)  # a left shift: the int path
    assert not nx.float64_requantize_exact(1, 2**30, -23)  # 2**(30 + 23) alone is too much
    assert not nx.float64_requantize_exact(1, 2**30, 0, zero_point=2**30 + 1)
    # |zero_point| * 2**(31 - shift) beyond int64 (a warning, an error in tests, once)
    assert not nx.float64_requantize_exact(0, 1477991215, -21, zero_point=-2627)
    assert not nx.float64_requantize_exact(0, 1, -31, zero_point=2**30)
    assert nx.requantize(12345, 1477991215, -21, -2627, -(2**31), INT32_MAX) == (
        ref_requantize(12345, 1477991215, -21, -2627, -(2**31), INT32_MAX))
    for m in MULTIPLIERS:
        for shift in (0, -1, -9, -14):
            limit = exact_limit(m, shift)
            assert nx.float64_requantize_exact(limit, m, shift, zero_point=-128)
            if limit < INT32_MAX:
                assert not nx.float64_requantize_exact(limit + 1, m, shift, zero_point=-128)
    with pytest.raises(ValueError, match=r"^acc_abs_max must be >= 0, not -1$"):
        nx.float64_requantize_exact(-1, 2**30, 0)
    with pytest.raises(ValueError, match=r"^acc_abs_max is too large for exact float64 "):
        nx.Float64Requantizer(2**31 - 1, 0, 0, -128, 127, acc_abs_max=2**23)
    with pytest.raises(ValueError, match=r"^dtype int8 does not hold act_min\.\.act_max$"):
        nx.Float64Requantizer(2**30, 0, 0, -129, 127, acc_abs_max=1, dtype=np.int8)


@pytest.mark.parametrize("m", MULTIPLIERS)
@pytest.mark.parametrize("shift", [0, -1, -2, -3, -9, -13, -14])
def test_at_the_edges_of_the_proven_domain(m, shift):
    limit = exact_limit(m, shift)
    acc = np.array([-limit, -limit + 1, limit - 1, limit, 0, -1, 1, -2, 2])
    for zp, lo, hi in ((0, -(2**31), INT32_MAX), (-128, -128, 127), (5, -(2**30), 2**30)):
        got = nx.Float64Requantizer(m, shift, zp, lo, hi, acc_abs_max=limit)(acc)
        want = [ref_requantize(a, m, shift, zp, lo, hi) for a in acc]
        assert got.tolist() == want, (m, shift, zp)


@pytest.mark.parametrize("shift", range(0, -7, -1))
def test_every_tie_pattern(shift):
    # With M = 2**30 (+ small), acc * M / 2**31 lands on halves for odd acc (SRDHM ties) and
    # s / 2**e on halves for every residue class of acc (RoundingDivideByPOT ties), both signs.
    acc = np.arange(-5000, 5001)
    for m in (2**30, 2**30 + 1, 2**31 - 1, 3 * 2**29):
        got = nx.Float64Requantizer(m, shift, 0, -(2**31), INT32_MAX, acc_abs_max=5000)(acc)
        assert np.array_equal(got, int_path(acc, m, shift, 0, -(2**31), INT32_MAX)), m
        for zp, lo in ((-3, -3), (-3, 2), (7, 6)):  # a fused ReLU (act_min >= zp), and not
            clamped = nx.Float64Requantizer(m, shift, zp, lo, 300, acc_abs_max=5000)(acc)
            assert np.array_equal(clamped, int_path(acc, m, shift, zp, lo, 300)), (m, zp, lo)
        assert got.tolist()[:50] == [ref_requantize(a, m, shift, 0, -(2**31), INT32_MAX)
                                     for a in acc[:50]]


@HYPOTHESIS
@given(st.data())
def test_float64_requantizer_hypothesis(data):
    m = data.draw(st.one_of(st.sampled_from(MULTIPLIERS), st.integers(0, INT32_MAX)))
    shift = data.draw(st.integers(-14, 0))
    limit = exact_limit(m, shift)
    acc = data.draw(st.lists(st.one_of(st.integers(-limit, limit),
                                       st.sampled_from([-limit, limit, 0, -1, 1])),
                             min_size=1, max_size=20))
    zp = data.draw(st.integers(-128, 127))
    lo = data.draw(st.integers(-(2**31), 0))
    hi = data.draw(st.integers(0, INT32_MAX))
    got = nx.Float64Requantizer(m, shift, zp, lo, hi, acc_abs_max=limit)(np.array(acc))
    assert got.tolist() == [ref_requantize(a, m, shift, zp, lo, hi) for a in acc]
    # requantize itself takes the shortcut here and must agree too
    assert np.asarray(nx.requantize(acc, m, shift, zp, lo, hi)).tolist() == got.tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float64_requantizer_per_channel_with_offset(seed):
    # A float32 partial sum plus an int bias (the fused convolution's use), per channel.
    rng = np.random.default_rng(seed)
    channels = 24
    m = rng.integers(2**30, 2**31, channels)
    m[:3] = (2**30, 2**31 - 1, 0)
    shift = rng.integers(-14, 1, channels)
    bias = rng.integers(-(2**20), 2**20, channels)
    partial = rng.integers(-(2**21), 2**21 + 1, (500, channels))
    partial[0], partial[1] = -(2**21), 2**21
    bound = np.full(channels, 3 * 2**20)
    f = nx.Float64Requantizer(m, shift, -3, -100, 90, acc_abs_max=bound, offset=bias,
                              dtype=np.int8)
    got = f(partial.astype(np.float32))
    assert got.dtype == np.int8
    assert np.array_equal(got, int_path(partial + bias, m, shift, -3, -100, 90))


def test_requantize_keeps_its_int_path_beyond_the_bound():
    acc = np.array([2**30, -(2**30), 7])
    m, shift = 2**31 - 1, -3
    assert nx.requantize(acc, m, shift, 0, -(2**31), INT32_MAX).tolist() == [
        ref_requantize(a, m, shift, 0, -(2**31), INT32_MAX) for a in acc]
    with pytest.raises(OverflowError, match=r"^x \* 2\*\*shift overflows int32"):
        nx.requantize(2**30, 2**30, 2, 0, -128, 127)


# --- exact GEMMs and the fused operators --------------------------------------------------------


def conv_layer(rng, kh, kw, cin, filters, *, zp_in, stride, padding, extreme=False):
    if extreme:  # every weight at a corner: the worst-case accumulators
        weights = rng.choice([-127, 127], (kh, kw, cin, filters))
    else:
        weights = rng.integers(-127, 128, (kh, kw, cin, filters))
    bias = rng.integers(-(2**16), 2**16, filters)
    scale = rng.uniform(1e-5, 0.9, filters)
    m, s = nx.quantize_multiplier_array(scale)
    zp_out = int(rng.integers(-128, 128))
    requant = Requant(mode="multiplier", multiplier=np.asarray(m, np.int64),
                      shift=np.asarray(s, np.int64), scale=scale, zero_point=zp_out,
                      act_min=max(-128, zp_out), act_max=127)
    return QConv2D(name="conv", input=QuantParams(scale=0.01, zero_point=zp_in),
                   output=QuantParams(scale=0.02, zero_point=zp_out), weights=weights,
                   bias=bias, weight_scale=np.ones(filters), strides=(stride, stride),
                   padding=padding, requant=requant, activation="relu")


def plain_conv(x, layer, window):
    """The integer reference: int64 windows and matmul, int64 requantization."""
    kh, kw, cin, filters = layer.weights.shape
    win = golden.extract_windows(x.astype(np.int64) - layer.input.zero_point, window, 0)
    acc = win.reshape(-1, kh * kw * cin) @ layer.weights.reshape(-1, filters).astype(np.int64)
    acc = acc.reshape(*win.shape[:3], filters) + layer.bias
    r = layer.requant
    return acc, int_path(acc, r.multiplier, r.shift, r.zero_point, r.act_min, r.act_max)


@pytest.mark.parametrize("seed", range(6))
def test_fused_conv_matches_the_integer_path(seed):
    rng = np.random.default_rng(seed)
    kh, kw = rng.integers(1, 4, 2)
    cin, filters = int(rng.integers(1, 40)), int(rng.integers(1, 20))
    h, w = rng.integers(max(kh, kw), 12, 2)
    layer = conv_layer(rng, int(kh), int(kw), cin, filters, zp_in=int(rng.integers(-128, 128)),
                       stride=int(rng.integers(1, 3)), padding=("same", "valid")[seed % 2],
                       extreme=seed < 3)
    window = window_2d((int(h), int(w)), (int(kh), int(kw)), layer.strides, layer.padding)
    x = rng.integers(-128, 128, (5, int(h), int(w), cin))
    x[0] = -128
    x[1] = 127  # with extreme weights, the accumulators reach their bounds
    acc, want = plain_conv(x, layer, window)
    assert np.array_equal(golden.conv2d_acc(x, layer, window), acc), seed
    for batch in (x, x.astype(np.int8)):
        got = golden.conv2d(batch, layer, window)
        assert got.dtype == np.int8 and np.array_equal(got, want), seed


def test_a_wide_convolution_chunks_its_float32_gemm():
    # 3x3x512 at the corners: 4608 terms of 255 * 127, far beyond 2**24 in one dot product.
    rng = np.random.default_rng(7)
    layer = conv_layer(rng, 3, 3, 512, 4, zp_in=-128, stride=1, padding="same", extreme=True)
    prepared = golden._prepared(layer)
    assert len(prepared.gemm.chunks) > 1
    window = window_2d((4, 4), (3, 3), (1, 1), "same")
    x = np.where(layer.weights[..., 0].sum() > 0, 127, -128) * np.ones((2, 4, 4, 512), int)
    x[1] = rng.choice([-128, 127], (4, 4, 512))
    acc, want = plain_conv(x, layer, window)
    assert np.array_equal(golden.conv2d_acc(x, layer, window), acc)
    assert np.array_equal(golden.conv2d(x, layer, window), want)


def test_inputs_outside_the_format_take_the_integer_path():
    rng = np.random.default_rng(3)
    layer = conv_layer(rng, 3, 3, 2, 3, zp_in=0, stride=1, padding="same")
    window = window_2d((5, 5), (3, 3), (1, 1), "same")
    x = rng.integers(-1000, 1000, (2, 5, 5, 2))  # not int8: no float bound applies
    acc, _ = plain_conv(x, layer, window)
    assert np.array_equal(golden.conv2d_acc(x, layer, window), acc)


@pytest.mark.parametrize("seed", range(4))
def test_dense_matches_integer_matmul_on_worst_cases(seed):
    rng = np.random.default_rng(seed)
    n_in, units = int(rng.integers(1, 3000)), int(rng.integers(1, 30))
    weights = rng.choice([-127, 127], (n_in, units)) if seed % 2 else \
        rng.integers(-127, 128, (n_in, units))
    zp_in = int(rng.integers(-128, 128))
    layer = QDense(name="dense", input=QuantParams(scale=0.01, zero_point=zp_in),
                   output=QuantParams(scale=0.02, zero_point=0), weights=weights,
                   bias=rng.integers(-(2**20), 2**20, units), weight_scale=np.ones(units),
                   requant=Requant(mode="float", multiplier=np.ones(units, np.int64),
                                   shift=np.zeros(units, np.int64), scale=np.full(units, 1e-4),
                                   zero_point=0, act_min=-128, act_max=127),
                   activation="linear")
    x = rng.integers(-128, 128, (6, n_in))
    x[0], x[1] = -128, 127
    x[2] = np.where(weights[:, 0] > 0, 127, -128)  # the largest first accumulator
    want = (x - zp_in) @ weights + layer.bias
    assert np.array_equal(golden.dense_acc(x, layer), want)
    assert np.array_equal(golden.dense_acc(x.astype(np.int8), layer), want)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("pool", [(2, 2, 2), (3, 3, 2), (2, 3, 1), (3, 2, 3)])
def test_strided_max_pool_matches_the_window_view(padding, pool):
    kh, kw, stride = pool
    rng = np.random.default_rng(kh * 10 + kw + stride)
    x = rng.integers(-128, 128, (3, 9, 8, 5))
    x[0, :3] = -128  # windows of only the lowest value, next to the padding
    for act_min, act_max in ((-128, 127), (-20, 100)):
        layer = QMaxPool2D(name="pool", input=QuantParams(scale=0.1, zero_point=0),
                           output=QuantParams(scale=0.1, zero_point=0), pool_size=(kh, kw),
                           strides=(stride, stride), padding=padding, act_min=act_min,
                           act_max=act_max)
        window = window_2d((9, 8), (kh, kw), layer.strides, padding)
        lowest = np.iinfo(np.int64).min
        want = np.clip(golden.extract_windows(x, window, lowest).max(axis=(3, 4)),
                       act_min, act_max)
        for batch in (x, x.astype(np.int8)):
            got = golden.max_pool2d(batch, layer, window)
            assert got.dtype == batch.dtype and np.array_equal(got, want)


def test_large_shifts_with_a_zero_zero_point():
    # Without a zero point the domain reaches shift -22 (factors near 2**-22).
    for m in MULTIPLIERS:
        for shift in (-15, -21, -22):
            limit = exact_limit(m, shift, zp=0)
            acc = np.array([-limit, limit, -1, 1, 0, limit // 3])
            got = nx.Float64Requantizer(m, shift, 0, -(2**31), INT32_MAX, acc_abs_max=limit)(acc)
            assert got.tolist() == [ref_requantize(a, m, shift, 0, -(2**31), INT32_MAX)
                                    for a in acc]
