# amaranth: UnusedElaboratable=no
"""Block tests of the average-pool unit and the global mean (amaranth.sim), bit-exact against
:func:`accel.quant.tflite_kernels.average_pool2d` and :func:`~accel.quant.tflite_kernels.mean_hw`,
with random valid gaps and ready stalls, odd sizes and back-to-back frames."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from accel.hw.avgpool import AvgPool, GlobalMean, reciprocals
from accel.quant import numerics, tflite_kernels
from tests.hw.streams import consumer, producer
from tests.hw.test_maxpool import _watchdog, expected_words
from tests.hw.test_window import pixel_beats


def run_block(dut, frames, n_out, *, seed, gap=0.3, stall=0.3, updates=1):
    rng = np.random.default_rng(seed)
    beats = pixel_beats(frames, dut.lanes, rng)
    results: list = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(_watchdog(4 * (len(beats) * updates + n_out) + 200, f"seed {seed}"),
                      background=True)
    sim.add_testbench(producer(dut.i, beats, rng=rng, gap=gap))
    sim.add_testbench(consumer(
        dut.o, n_out, results, rng=rng, stall=stall,
        convert=lambda p: [*(int(v) for v in p.data), int(p.last)],
    ))
    sim.run()
    return np.array(results, dtype=np.int64).reshape(n_out, dut.lanes + 1)


def _data(rng, shape, extreme=None):
    x = rng.integers(-128, 128, shape)
    if extreme is not None:
        x[:] = extreme
    else:
        ends = rng.random(shape) < 0.3
        x[ends] = rng.choice([-128, 127], ends.sum())
    return x


def check_pool(*, seed, height, width, channels, pool, strides=None, padding="valid", lanes=1,
               frames=2, activation="linear", extreme=None, gap=0.3, stall=0.3):
    rng = np.random.default_rng(seed + 1000)
    zp = int(rng.integers(-128, 128))
    act_min, act_max = numerics.fused_activation_range(activation, 0.05, zp, 8)
    dut = AvgPool(height=height, width=width, channels=channels, pool=pool, strides=strides,
                  padding=padding, lanes=lanes, zero_point=zp, act_min=int(act_min),
                  act_max=int(act_max))
    x = _data(rng, (frames, height, width, channels), extreme)
    oh, ow = dut.out_shape
    updates = dut.pool[0] * dut.pool[1] // (dut.strides[0] * dut.strides[1]) + 1
    got = run_block(dut, x, frames * oh * ow * dut.groups, seed=seed, gap=gap, stall=stall,
                    updates=updates)
    want = expected_words(tflite_kernels.average_pool2d(
        x, pool_size=dut.pool, strides=dut.strides, padding=padding, act_min=int(act_min),
        act_max=int(act_max)), lanes, zp)
    assert np.array_equal(got, want), (
        f"seed {seed}: {height}x{width}x{channels} pool={pool} s={strides} {padding} "
        f"lanes={lanes} {activation}: first mismatch at beat "
        f"{np.argwhere((got != want).any(1))[0][0]}")


def _random_pool(seed):
    rng = np.random.default_rng(seed)
    while True:
        height, width = (int(v) for v in rng.integers(1, 9, 2))
        pool = tuple(int(v) for v in rng.integers(1, 5, 2))
        strides = tuple(int(v) for v in rng.integers(1, 3, 2))
        padding = str(rng.choice(["valid", "same"]))
        if padding == "valid" and (pool[0] > height or pool[1] > width):
            continue
        return dict(height=height, width=width, channels=int(rng.integers(1, 8)), pool=pool,
                    strides=strides, padding=padding, lanes=int(rng.integers(1, 4)),
                    activation=str(rng.choice(["linear", "relu", "relu6"])))


@pytest.mark.parametrize("seed", range(40))
def test_pool_random(seed):
    check_pool(seed=seed, **_random_pool(seed))


@pytest.mark.parametrize(
    "params",
    [
        dict(height=8, width=8, channels=4, pool=2, lanes=2),
        dict(height=7, width=7, channels=3, pool=3, strides=2, padding="same", lanes=2),
        dict(height=5, width=6, channels=2, pool=3, strides=1, padding="same"),
        dict(height=7, width=5, channels=3, pool=(7, 5), lanes=2),  # global average pool
        dict(height=25, width=5, channels=2, pool=(25, 5), lanes=2),  # DS-CNN's 25x5 pool
        dict(height=1, width=1, channels=2, pool=3, strides=2, padding="same"),
    ],
    ids=lambda p: "{height}x{width}x{channels}-p{pool}-s{}-{}".format(
        p.get("strides"), p.get("padding", "valid"), **p),
)
@pytest.mark.parametrize("extreme", [None, -128, 127])
def test_pool_edges_and_worst_sums(params, extreme):
    # All codes at -128 or 127: the largest sums of every edge window, where an inexact
    # reciprocal would show first.
    check_pool(seed=7, frames=3, extreme=extreme, **params)


def test_pool_no_stalls():
    check_pool(seed=5, height=8, width=6, channels=3, pool=2, lanes=2, gap=0.0, stall=0.0)


@pytest.mark.parametrize("bits", [8, 16])
def test_reciprocals_exact_worst_case(bits):
    # Every sum of every count up to 31x31 taps (the constructor checks only the counts of its
    # own windows). (t * m) >> shift is non-decreasing in t and t // n is constant on each
    # block [k n, k n + n - 1], so they agree on a block exactly when they agree at its two
    # ends: checking every block's ends (and the range's last sum) checks every sum.
    counts = set(range(1, 31 * 31 + 1))
    shift, table = reciprocals(counts, bits)
    for n in (1, 2, 3, 7, 125, 961, *range(900, 961)):
        top = n * (1 << (bits - 1)) + n // 2
        starts = np.arange(0, top + 1, n, dtype=np.int64)
        t = np.concatenate([starts, np.minimum(starts + n - 1, top), [top]])
        assert np.array_equal((t * table[n]) >> shift, t // n), n


def _latency(dut, beats):
    seen: list[int] = []

    async def bench(ctx):
        cycle = 0
        for beat in beats:
            ctx.set(dut.i.payload, beat)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        while not ctx.get(dut.o.valid):
            await ctx.tick()
            cycle += 1
        seen.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen[0] + 1  # the accepting tick counts as the first cycle


def test_latency():
    x = np.zeros((1, 3, 4, 2), dtype=np.int64)
    dut = AvgPool(height=3, width=4, channels=2, pool=(3, 4), lanes=2)
    assert _latency(dut, pixel_beats(x, 2, np.random.default_rng(0))) == dut.latency
    mean = GlobalMean(height=3, width=4, channels=2, lanes=2, input_zero_point=0,
                      output_zero_point=0, multiplier=2**30, shift=1)
    assert _latency(mean, pixel_beats(x, 2, np.random.default_rng(0))) == mean.latency


# --- MEAN -----------------------------------------------------------------------------------


def check_mean(*, seed, height, width, channels, lanes, frames=3, keep_dims=True, extreme=None,
               gap=0.3, stall=0.3):
    rng = np.random.default_rng(seed + 2000)
    s_in, s_out = (float(np.float32(10 ** rng.uniform(-2.5, -0.5))) for _ in range(2))
    if rng.random() < 0.3:
        s_out = s_in
    zp_in, zp_out = (int(v) for v in rng.integers(-128, 128, 2))
    mult, shift = tflite_kernels.mean_multiplier(s_in, s_out)
    dut = GlobalMean(height=height, width=width, channels=channels, lanes=lanes,
                     input_zero_point=zp_in, output_zero_point=zp_out, multiplier=mult,
                     shift=shift, keep_dims=keep_dims)
    x = _data(rng, (frames, height, width, channels), extreme)
    got = run_block(dut, x, frames * dut.groups, seed=seed, gap=gap, stall=stall)
    y = tflite_kernels.mean_hw(x, input_zero_point=zp_in, output_zero_point=zp_out,
                               multiplier=mult, shift=shift, keep_dims=keep_dims)
    assert y.shape[1:-1] == dut.out_shape
    want = expected_words(y.reshape(frames, 1, 1, channels), lanes, zp_out)
    assert np.array_equal(got, want), (
        f"seed {seed}: {height}x{width}x{channels} lanes={lanes} m={mult} e={shift}: first "
        f"mismatch at beat {np.argwhere((got != want).any(1))[0][0]}")


@pytest.mark.parametrize("seed", range(24))
def test_mean_random(seed):
    rng = np.random.default_rng(seed)
    check_mean(seed=seed, height=int(rng.integers(1, 8)), width=int(rng.integers(1, 8)),
               channels=int(rng.integers(1, 9)), lanes=int(rng.integers(1, 4)),
               keep_dims=bool(rng.integers(2)))


@pytest.mark.parametrize("extreme", [-128, 127])
def test_mean_extremes(extreme):
    check_mean(seed=1, height=5, width=5, channels=3, lanes=2, extreme=extreme)
    check_mean(seed=2, height=1, width=1, channels=1, lanes=1, extreme=extreme)


def test_mean_no_stalls():
    check_mean(seed=4, height=4, width=3, channels=5, lanes=2, gap=0.0, stall=0.0)


@pytest.mark.parametrize(
    ("cls", "kwargs", "exc", "message"),
    [
        (AvgPool, dict(height=0), ValueError, r"^height must be a positive integer, not 0$"),
        (AvgPool, dict(pool=(2, 0)), ValueError,
         r"^pool must be a positive integer or a pair of them, not \(2, 0\)$"),
        (AvgPool, dict(padding="full"), ValueError,
         r"^padding must be 'valid' or 'same', not 'full'$"),
        (AvgPool, dict(bits=17), ValueError, r"^bits must be an integer in 2\.\.16, not 17$"),
        (AvgPool, dict(act_min=5, act_max=1), ValueError,
         r"^act_min 5 must not exceed act_max 1$"),
        (AvgPool, dict(pool=5), ValueError,
         r"^pool \(5, 5\) is larger than the input \(4, 4\) with padding 'valid'$"),
        (GlobalMean, dict(input_zero_point=200), ValueError,
         r"^input_zero_point must be an integer in -128\.\.127, not 200$"),
        (GlobalMean, dict(shift=31), ValueError,
         r"^shift must be an integer in -31\.\.30, not 31$"),
        (GlobalMean, dict(keep_dims=1), TypeError, r"^keep_dims must be a bool, not 1$"),
    ],
)
def test_bad_parameters(cls, kwargs, exc, message):
    base = (dict(height=4, width=4, channels=1, pool=2) if cls is AvgPool else
            dict(height=4, width=4, channels=1, input_zero_point=0, output_zero_point=0,
                 multiplier=2**30, shift=0))
    with pytest.raises(exc, match=message):
        cls(**(base | kwargs))
