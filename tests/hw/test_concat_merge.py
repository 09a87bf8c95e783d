# amaranth: UnusedElaboratable=no
"""Block tests of the channel concatenation merge (amaranth.sim), bit-exact against
:func:`accel.quant.tflite_kernels.concatenation` (a plain copy at other widths) under seeded
random gaps on both inputs and stalls on the output; its latency and full rate; its parameter
errors."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from accel.hw.concat_merge import ConcatMerge
from accel.plan.concat import CONCAT_LATENCY
from accel.quant import tflite_kernels
from accel.spec.shapes import ceil_div
from tests.hw.streams import consumer, producer
from tests.hw.test_maxpool import _watchdog, expected_words
from tests.hw.test_window import pixel_beats


def check(*, seed, height, width, channels, lanes, bits=8, frames=2, gap=0.3, stall=0.3):
    """Two random streams of ``channels`` (C_a, C_b) through the merge; returns the cycles the
    simulation ran."""
    rng = np.random.default_rng(seed)
    half = 1 << (bits - 1)
    zp = int(rng.integers(-half, half))
    dut = ConcatMerge(channels=channels, lanes=lanes, bits=bits, zero_point=zp)
    xa = rng.integers(-half, half, (frames, height, width, channels[0]))
    xb = rng.integers(-half, half, (frames, height, width, channels[1]))
    if bits == 8:
        y = tflite_kernels.concatenation([xa, xb], input_scales=[0.5, 0.5],
                                         input_zero_points=[zp, zp], output_scale=0.5,
                                         output_zero_point=zp)
    else:  # the pow2 scheme's widths: a copy too (golden model's _run_concatenate)
        y = np.concatenate([xa, xb], axis=-1)
    want = expected_words(y, lanes, zp)
    results: list = []
    cycles = [0]

    async def clock(ctx):
        while True:
            await ctx.tick()
            cycles[0] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(_watchdog(10 * len(want) + 200, f"seed {seed}"), background=True)
    sim.add_testbench(clock, background=True)
    # Junk in the padding lanes of both inputs (pixel_beats), which the merge must replace.
    sim.add_testbench(producer(dut.first, pixel_beats(xa, lanes, rng, bits), rng=rng, gap=gap))
    sim.add_testbench(producer(dut.second, pixel_beats(xb, lanes, rng, bits), rng=rng,
                               gap=gap))
    sim.add_testbench(consumer(dut.o, len(want), results, rng=rng, stall=stall,
                               convert=lambda p: [*(int(v) for v in p.data), int(p.last)]))
    sim.run()
    got = np.array(results, dtype=np.int64)
    assert np.array_equal(got, want), (
        f"seed {seed}: {channels} lanes={lanes} bits={bits}: first mismatch at beat "
        f"{np.argwhere((got != want).any(1))[0][0]}")
    return cycles[0]


@pytest.mark.parametrize("seed", range(24))
def test_random(seed):
    rng = np.random.default_rng(seed + 700)
    lanes = int(rng.integers(1, 4))
    channels = (lanes * int(rng.integers(1, 4)), int(rng.integers(1, 8)))
    check(seed=seed, height=int(rng.integers(1, 5)), width=int(rng.integers(1, 5)),
          channels=channels, lanes=lanes, bits=int(rng.choice([4, 8, 10])))


def test_flattened_vectors():
    """A concatenation of two Dense outputs: one 1x1 "pixel" per frame."""
    check(seed=5, height=1, width=1, channels=(4, 3), lanes=2, frames=4)


def test_no_stalls_full_rate():
    """Both inputs always offered, the output always taken: one beat per cycle (the last
    output beat leaves ``latency`` cycles after the last input beat is taken)."""
    frames, h, w, channels, lanes = 3, 3, 4, (4, 5), 2
    beats = frames * h * w * (channels[0] // lanes + ceil_div(channels[1], lanes))
    cycles = check(seed=3, height=h, width=w, channels=channels, lanes=lanes, gap=0.0,
                   stall=0.0, frames=frames)
    # The consumer testbench samples the last beat one tick after it is valid.
    assert cycles <= beats + CONCAT_LATENCY + 2


def test_latency():
    dut = ConcatMerge(channels=(2, 2), lanes=2)
    seen: list[int] = []

    async def bench(ctx):
        ctx.set(dut.first.payload, {"data": [1, 2], "last": 1})
        ctx.set(dut.first.valid, 1)
        await ctx.tick()
        ctx.set(dut.first.valid, 0)
        for cycle in range(1, 10):
            if ctx.get(dut.o.valid):
                seen.append(cycle)
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [dut.latency] == [CONCAT_LATENCY]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(channels=(0, 2)), r"^channels must be a positive integer, not 0$"),
        (dict(channels=(2, 2, 2)), r"^channels must be a pair of integers, not \(2, 2, 2\)$"),
        (dict(channels=(3, 2), lanes=2),
         r"^lanes must divide the first input's 3 channels, not 2$"),
        (dict(zero_point=128), r"^zero_point must be an integer in -128\.\.127, not 128$"),
        (dict(bits=0), r"^bits must be a positive integer, not 0$"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        ConcatMerge(**(dict(channels=(2, 2)) | kwargs))
