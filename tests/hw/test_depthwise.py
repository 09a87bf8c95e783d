# amaranth: UnusedElaboratable=no
"""The depthwise convolution stage in amaranth.sim: bit-exact with TFLite's
DepthwiseConvPerChannel (accel.quant.tflite_kernels) under random valid gaps and ready stalls,
back-to-back frames; its cycles per frame against depthwise_cycles; parameter checks."""

from __future__ import annotations

import numpy as np
import pytest

from accel.hw.depthwise import (
    DepthwiseStage,
    depthwise_cycles,
    depthwise_lanes,
    depthwise_utilization,
)
from accel.plan.blocks import WindowPlan
from accel.plan.timing import window_period
from accel.quant import tflite_kernels as tk

from .streams import consumer, producer, run_simulation


def _layer(rng, *, shape, kernel, strides, padding, m, rows, cols, relu=False):
    h, w, cin = shape
    kh, kw = kernel
    cout = cin * m
    weights = rng.integers(-127, 128, size=(1, kh, kw, cout))
    bias = rng.integers(-3000, 3000, size=cout)
    zp_in = int(rng.integers(-128, 128))
    zp_out = int(rng.integers(-100, 100))
    s_in = float(rng.uniform(0.01, 0.1))
    s_w = rng.uniform(0.001, 0.02, size=cout).astype(np.float32)
    s_out = float(rng.uniform(0.02, 0.3))
    mult, shift = tk.depthwise_multipliers(s_in, s_w, s_out)
    act = (zp_out, 127) if relu else (-128, 127)
    params = dict(height=h, width=w, channels=cin, kernel=kernel, strides=strides,
                  padding=padding, depth_multiplier=m, rows=rows, cols=cols, weights=weights,
                  bias=bias, multiplier=mult, shift=shift, input_zero_point=zp_in,
                  output_zero_point=zp_out, act_min=act[0], act_max=act[1])

    def golden(x):
        return tk.depthwise_conv2d(
            x, weights, bias, input_zero_point=zp_in, strides=strides, padding=padding,
            multiplier=mult, shift=shift, output_zero_point=zp_out, act_min=act[0],
            act_max=act[1])

    return params, golden


def _words(x: np.ndarray, lanes: int, fill: int) -> list[dict]:
    n, h, w, c = x.shape
    g = -(-c // lanes)
    padded = np.full((n, h, w, g * lanes), fill, np.int64)
    padded[..., :c] = x
    flat = padded.reshape(-1, lanes)
    per_frame = h * w * g
    return [{"data": row.tolist(), "last": int(k % per_frame == per_frame - 1)}
            for k, row in enumerate(flat)]


def _unpack(words: list, n: int, oh: int, ow: int, cout: int, lanes: int) -> np.ndarray:
    g = -(-cout // lanes)
    values = np.array([w[0] for w in words]).reshape(n, oh, ow, g * lanes)
    return values[..., :cout], np.array([w[1] for w in words])


CASES = [
    # (shape, kernel, strides, padding, m, rows, cols)
    ((5, 7, 3), (3, 3), (1, 1), "same", 1, 1, 2),
    ((7, 5, 5), (3, 3), (2, 2), "same", 2, 2, 2),
    ((6, 5, 4), (2, 3), (1, 2), "valid", 3, 2, 3),
    ((5, 5, 2), (3, 3), (2, 1), "valid", 1, 1, 1),
    ((4, 6, 7), (1, 1), (1, 1), "valid", 2, 1, 3),
    ((6, 6, 6), (3, 3), (1, 1), "same", 3, 3, 3),
    ((5, 6, 3), (5, 3), (2, 2), "same", 1, 2, 4),
    ((5, 4, 3), (3, 2), (1, 1), "valid", 2, 5, 1),  # R * C = 5: L = 2, 4 PEs
]

#: Cycles per frame the window generator adds at a frame boundary: with VALID padding and a
#: stride smaller than the kernel its kh + sh - 1 rows cannot hold the next frame's first rows
#: while the last windows of a frame are read (accel/hw/window.py), so the first window of the
#: next frame waits for pixels (and the reader sees a pixel the cycle after it is written:
#: one cycle more each). The PEs take exactly depthwise_cycles beats per frame; the plan's
#: timing model (window_period) predicts the period with the refill.
REFILL = {2: 2, 7: 6}


@pytest.mark.parametrize("case", range(len(CASES)))
def test_depthwise_matches_tflite(case):
    shape, kernel, strides, padding, m, rows, cols = CASES[case]
    seed = 1200 + case
    rng = np.random.default_rng(seed)
    params, golden = _layer(rng, shape=shape, kernel=kernel, strides=strides, padding=padding,
                            m=m, rows=rows, cols=cols, relu=case % 2 == 1)
    dut = DepthwiseStage(**params)
    frames = 2
    x = rng.integers(-128, 128, size=(frames, *shape))
    want = golden(x)
    words = _words(x, dut.lanes, fill=0)
    oh, ow = dut.out_shape
    count = frames * oh * ow * dut.groups
    got: list = []
    run_simulation(dut, [
        producer(dut.i, words, rng=rng, gap=0.3),
        consumer(dut.o, count, got, rng=rng, stall=0.3,
                 convert=lambda p: (list(p.data), int(p.last))),
    ], max_cycles=200_000)
    values, last = _unpack(got, frames, oh, ow, shape[2] * m, dut.pes)
    assert np.array_equal(values, want), f"seed {seed}: hardware differs from TFLite"
    per_frame = oh * ow * dut.groups
    assert last.tolist() == [int(k % per_frame == per_frame - 1) for k in range(count)], seed
    # lanes past cin * m carry the output zero point
    pad = np.array([w[0] for w in got]).reshape(frames, oh, ow, -1)[..., shape[2] * m:]
    assert np.all(pad == params["output_zero_point"]), seed


def _timed(dut, words, count):
    """Run without stalls; return the cycles at which output beats were taken."""
    times: list[int] = []

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        while len(times) < count:
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.o.valid):
                times.append(cycle)

    run_simulation(dut, [producer(dut.i, words), sink], max_cycles=200_000)
    return times


@pytest.mark.parametrize("case", range(len(CASES)))
def test_cycles_per_frame_match_formula(case):
    shape, kernel, strides, padding, m, rows, cols = CASES[case]
    rng = np.random.default_rng(1300 + case)
    params, _ = _layer(rng, shape=shape, kernel=kernel, strides=strides, padding=padding,
                       m=m, rows=rows, cols=cols)
    dut = DepthwiseStage(**params)
    frames = 3
    x = rng.integers(-128, 128, size=(frames, *shape))
    oh, ow = dut.out_shape
    per_frame = oh * ow * dut.groups
    times = _timed(dut, _words(x, dut.lanes, 0), frames * per_frame)
    ends = [times[(f + 1) * per_frame - 1] for f in range(frames)]
    formula = depthwise_cycles(height=shape[0], width=shape[1], channels=shape[2],
                               kernel=kernel, strides=strides, padding=padding,
                               depth_multiplier=m, rows=rows, cols=cols)
    assert formula == dut.cycles
    periods = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    assert periods == [formula + REFILL.get(case, 0)] * (frames - 1), case
    window = WindowPlan.build(height=shape[0], width=shape[1], channels=shape[2],
                              kernel=kernel, strides=strides, padding=padding, lanes=dut.lanes,
                              zero_point=params["input_zero_point"], bits=8)
    assert window_period(window) == periods[0], case


def test_latency():
    # 1x1 kernel, one group: the output pixel's only beat is its last tap.
    rng = np.random.default_rng(1400)
    params, _ = _layer(rng, shape=(1, 1, 2), kernel=(1, 1), strides=(1, 1), padding="valid",
                       m=1, rows=1, cols=2)
    dut = DepthwiseStage(**params)
    taken: list[int] = []
    seen: list[int] = []

    async def watch(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        while not seen:
            await ctx.tick()
            cycle += 1
            beats = dut.window.windows
            if ctx.get(beats.valid) and ctx.get(beats.ready) and not taken:
                taken.append(cycle)
            if ctx.get(dut.o.valid):
                seen.append(cycle)

    run_simulation(dut, [producer(dut.i, _words(np.zeros((1, 1, 1, 2), int), 2, 0)), watch],
                   max_cycles=1000)
    assert seen[0] - taken[0] == dut.latency


def test_lanes_and_cycles():
    assert depthwise_lanes(rows=2, cols=3, depth_multiplier=3) == 2
    assert depthwise_lanes(rows=2, cols=2, depth_multiplier=3) == 1
    # MobileNetV1 0.25's first depthwise: 48x48x8, 3x3 SAME, on 8 PEs: 9 cycles a pixel
    assert depthwise_cycles(height=48, width=48, channels=8, kernel=3, padding="same",
                            rows=2, cols=4) == 48 * 48 * 9
    assert depthwise_cycles(height=5, width=5, channels=5, kernel=3, strides=2,
                            padding="valid", depth_multiplier=2, rows=2, cols=2) == 4 * 9 * 3
    assert depthwise_utilization(channels=64, rows=4, cols=4) == 1.0
    assert depthwise_utilization(channels=8, rows=4, cols=4) == 0.5  # 16 lanes, 8 channels
    assert depthwise_utilization(channels=5, depth_multiplier=2, rows=2, cols=2) == 10 / 12
    assert depthwise_utilization(channels=4, depth_multiplier=2, rows=5, cols=1) == 8 / 10


def test_parameter_errors():
    rng = np.random.default_rng(1500)
    params, _ = _layer(rng, shape=(4, 4, 2), kernel=(3, 3), strides=(1, 1), padding="same",
                       m=2, rows=1, cols=2)
    with pytest.raises(ValueError, match=r"^depth_multiplier must be a positive integer, not 0$"):
        DepthwiseStage(**{**params, "depth_multiplier": 0})
    with pytest.raises(ValueError, match=r"^rows \* cols must be at least depth_multiplier 2, "
                                         r"not 1 \* 1$"):
        DepthwiseStage(**{**params, "cols": 1})
    with pytest.raises(ValueError, match=r"^weights must have shape \(3, 3, 4\), not \(3, 3, 2\)$"):
        DepthwiseStage(**{**params, "weights": np.zeros((3, 3, 2), int)})
    with pytest.raises(TypeError, match=r"^bias must be an array of integers"):
        DepthwiseStage(**{**params, "bias": np.zeros(4)})
    with pytest.raises(ValueError, match=r"^padding must be 'valid' or 'same', not 'full'$"):
        DepthwiseStage(**{**params, "padding": "full"})


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(25))
def test_depthwise_random_layers(seed):
    # Random geometry (kernels up to 4x4, also larger than a SAME image), m, array and numbers.
    rng = np.random.default_rng(1700 + seed)
    padding = ("same", "valid")[int(rng.integers(2))]
    kh, kw = (int(v) for v in rng.integers(1, 5, 2))
    h = int(rng.integers(kh if padding == "valid" else 1, 8))
    w = int(rng.integers(kw if padding == "valid" else 1, 8))
    cin, m = int(rng.integers(1, 8)), int(rng.integers(1, 4))
    strides = tuple(int(v) for v in rng.integers(1, 3, 2))
    rows, cols = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    cols = max(cols, -(-m // rows))
    params, golden = _layer(rng, shape=(h, w, cin), kernel=(kh, kw), strides=strides,
                            padding=padding, m=m, rows=rows, cols=cols,
                            relu=bool(rng.integers(2)))
    dut = DepthwiseStage(**params)
    x = rng.integers(-128, 128, size=(2, h, w, cin))
    oh, ow = dut.out_shape
    got: list = []
    run_simulation(dut, [
        producer(dut.i, _words(x, dut.lanes, 0), rng=rng, gap=0.3),
        consumer(dut.o, 2 * oh * ow * dut.groups, got, rng=rng, stall=0.3,
                 convert=lambda p: (list(p.data), int(p.last))),
    ], max_cycles=100_000)
    values, _ = _unpack(got, 2, oh, ow, cin * m, dut.pes)
    assert np.array_equal(values, golden(x)), f"seed {1700 + seed}: hardware differs"
