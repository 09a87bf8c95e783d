"""A whole compute stage (window -> replay -> array -> accumulate -> requantize -> pool) in
amaranth.sim, bit-exact with the golden model, under random stalls."""

import numpy as np
import pytest

from accel.hw.stage import ComputeStage, tile_weights
from accel.plan.plan import make_plan
from accel.quant import golden
from accel.quant.random_model import random_quantized
from accel.sim.harness import stage_words
from accel.spec import Conv2D, Dense, Flatten, MaxPooling2D, Network

from .streams import consumer, producer, run_simulation


def to_words(x: np.ndarray, lanes: int, fill: int) -> list[dict]:
    """(N, H, W, C) or (N, n) activations -> channel-group words, ``last`` per frame (a dense
    input is one pixel of n channels): the harness's packing, plus the framing bit."""
    frames = x if x.ndim == 4 else x[:, None, :]
    words = stage_words(frames, lanes, fill)
    per_frame = len(words) // len(x)
    return [{"data": w.tolist(), "last": int(k % per_frame == per_frame - 1)}
            for k, w in enumerate(words)]


def from_words(words: list, channels: int, lanes: int) -> np.ndarray:
    groups = -(-channels // lanes)
    values = np.array([w[0] for w in words]).reshape(-1, groups * lanes)[:, :channels]
    return values


def test_tile_weights_order():
    net = Network("n", (4, 4, 3), (Conv2D(5, 2),))
    layer = random_quantized(net, 0).layers[0]
    tiles = tile_weights(layer, rows=2, cols=2)  # G = 2, Kt = 2*2*2 = 8, Ft = 3
    assert tiles.shape == (24, 2, 2)
    # tile ft * Kt + kt with kt = tap * G + g: tap (1, 0) is 2, group 1 is channel 2 (+ pad)
    ft, kt = 2, 2 * 2 + 1
    assert tiles[ft * 8 + kt, 0, 0] == layer.weights[1, 0, 2, 4]
    assert np.all(tiles[ft * 8 + kt, 1, :] == 0) and np.all(tiles[ft * 8 + kt, :, 1] == 0)


CASES = [
    # (input shape, layers, array)
    ((6, 6, 2), (Conv2D(3, 3, padding="same", activation="relu"), MaxPooling2D()), (2, 2)),
    ((5, 7, 3), (Conv2D(4, (2, 3), strides=2, activation="relu6"),), (2, 3)),
    ((4, 4, 1), (Conv2D(2, 1),), (1, 1)),
    ((7, 5, 5), (Conv2D(3, 3, padding="same"), MaxPooling2D(pool_size=3, strides=2,
                                                           padding="same")), (3, 2)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_conv_stage_matches_golden(case):
    shape, layers, (rows, cols) = CASES[case]
    rng = np.random.default_rng(case)
    net = Network("n", shape, (*layers, Flatten(), Dense(2)))
    qnet = random_quantized(net, case)
    stage_plan = make_plan(qnet, rows, cols).stages[0]
    conv = qnet.layers[0]
    dut = ComputeStage(plan=stage_plan)
    x = rng.integers(-128, 128, (2, *shape))
    outputs = golden.run(qnet, x)
    want = outputs[stage_plan.pool or stage_plan.layer]
    words = to_words(x, dut.in_lanes, conv.input.zero_point)
    n_out = want.shape[0] * want.shape[1] * want.shape[2] * -(-want.shape[3] // dut.out_lanes)
    got = []
    run_simulation(dut, [producer(dut.i, words, rng=rng, gap=0.2),
                         consumer(dut.o, n_out, got, rng=rng, stall=0.2,
                                  convert=lambda p: (list(p.data), p.last))],
                   max_cycles=200_000)
    values = from_words(got, want.shape[-1], dut.out_lanes).reshape(want.shape)
    assert np.array_equal(values, want), f"case {case}"
    assert [w[1] for w in got].count(1) == len(x)


def test_dense_stage_matches_golden():
    rng = np.random.default_rng(9)
    net = Network("n", (13,), (Dense(5, activation="relu"),))
    qnet = random_quantized(net, 9)
    stage_plan = make_plan(qnet, 3, 2).stages[0]
    dut = ComputeStage(plan=stage_plan)
    x = rng.integers(-128, 128, (3, 13))
    want = golden.run(qnet, x)["dense"]
    got = []
    run_simulation(dut, [producer(dut.i, to_words(x, dut.in_lanes, qnet.input.zero_point),
                                  rng=rng, gap=0.3),
                         consumer(dut.o, 3 * -(-5 // dut.out_lanes), got, rng=rng, stall=0.3,
                                  convert=lambda p: (list(p.data), p.last))],
                   max_cycles=100_000)
    assert np.array_equal(from_words(got, 5, dut.out_lanes).reshape(want.shape), want)
