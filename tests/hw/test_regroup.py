# amaranth: UnusedElaboratable=no
"""Block tests of the channel regrouper (amaranth.sim), bit-exact against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from accel.hw.regroup import ChannelRegroup
from accel.spec.shapes import ceil_div
from tests.hw.streams import consumer, producer


def words(pixels: np.ndarray, lanes: int, fill, frame: int) -> np.ndarray:
    """Rows (lanes..., last) of pixels (N, C) as channel-group words; lanes past C are
    ``fill`` (an int, or a generator of junk)."""
    n, c = pixels.shape
    groups = ceil_div(c, lanes)
    if isinstance(fill, np.random.Generator):
        padded = fill.integers(-128, 128, (n, groups * lanes))
    else:
        padded = np.full((n, groups * lanes), fill, dtype=np.int64)
    padded[:, :c] = pixels
    out = padded.reshape(-1, lanes)
    last = ((np.arange(len(out)) + 1) % (frame * groups) == 0).astype(np.int64)
    return np.hstack([out, last[:, None]])


def _watchdog(cycles: int, what: str):
    async def testbench(ctx):
        for _ in range(cycles):
            await ctx.tick()
        raise AssertionError(f"{what}: still running after {cycles} cycles")

    return testbench


def check(*, seed, channels, lanes_in, lanes_out, pixels=24, frame=12, gap=0.3, stall=0.3):
    rng = np.random.default_rng(seed)
    zp = int(rng.integers(-128, 128))
    x = rng.integers(-128, 128, (pixels, channels))
    dut = ChannelRegroup(channels=channels, lanes_in=lanes_in, lanes_out=lanes_out,
                         zero_point=zp)
    beats = [
        {"data": [int(v) for v in row[:-1]], "last": int(row[-1])}
        for row in words(x, lanes_in, rng, frame)
    ]
    want = words(x, lanes_out, zp, frame)
    results: list = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(_watchdog(5 * (len(beats) + len(want)) + 100, f"seed {seed}"),
                      background=True)
    sim.add_testbench(producer(dut.i, beats, rng=rng, gap=gap))
    sim.add_testbench(consumer(
        dut.o, len(want), results, rng=rng, stall=stall,
        convert=lambda p: [*(int(v) for v in p.data), int(p.last)],
    ))
    sim.run()
    got = np.array(results, dtype=np.int64).reshape(want.shape)
    assert np.array_equal(got, want), (
        f"seed {seed}: C={channels} {lanes_in}->{lanes_out}: first mismatch at beat "
        f"{np.argwhere((got != want).any(1))[0][0]}"
    )


@pytest.mark.parametrize("seed", range(60))
def test_random(seed):
    rng = np.random.default_rng(seed)
    check(seed=seed, channels=int(rng.integers(1, 11)), lanes_in=int(rng.integers(1, 9)),
          lanes_out=int(rng.integers(1, 9)))


@pytest.mark.parametrize(
    ("channels", "lanes_in", "lanes_out"),
    [(1, 1, 4), (8, 8, 4), (4, 1, 4), (3, 4, 1), (10, 3, 4), (7, 4, 4), (16, 4, 8), (5, 2, 3)],
)
def test_cases(channels, lanes_in, lanes_out):
    check(seed=channels * 100 + lanes_in * 10 + lanes_out, channels=channels,
          lanes_in=lanes_in, lanes_out=lanes_out)
    check(seed=1, channels=channels, lanes_in=lanes_in, lanes_out=lanes_out, gap=0.0,
          stall=0.0)


@pytest.mark.parametrize(
    ("channels", "lanes_in", "lanes_out"), [(1, 1, 4), (3, 1, 4), (8, 8, 4), (16, 4, 8), (5, 3, 2)]
)
def test_throughput(channels, lanes_in, lanes_out):
    # With both sides at full speed a pixel takes max(groups_in, groups_out) cycles.
    dut = ChannelRegroup(channels=channels, lanes_in=lanes_in, lanes_out=lanes_out)
    x = np.random.default_rng(0).integers(-128, 128, (20, channels))
    beats = [{"data": [int(v) for v in row[:-1]], "last": int(row[-1])}
             for row in words(x, lanes_in, 0, 20)]
    n_out = 20 * dut.groups_out
    cycles: list[int] = []

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        while len(cycles) < n_out:
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            cycle += 1
            if valid:
                cycles.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer(dut.i, beats))
    sim.add_testbench(sink)
    sim.run()
    per_pixel = max(dut.groups_in, dut.groups_out)
    assert cycles[-1] - cycles[0] + 1 <= 20 * per_pixel, (cycles[-1] - cycles[0] + 1, per_pixel)


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        (dict(channels=0), ValueError, r"^channels must be a positive integer, not 0$"),
        (dict(lanes_in=None), TypeError, r"^lanes_in must be a positive integer, not None$"),
        (dict(lanes_out=0), ValueError, r"^lanes_out must be a positive integer, not 0$"),
        (dict(bits=1), ValueError, r"^bits must be an integer >= 2, not 1$"),
        (dict(zero_point=-129), ValueError,
         r"^zero_point must be an integer in -128\.\.127, not -129$"),
    ],
)
def test_bad_parameters(kwargs, exc, message):
    params = dict(channels=3, lanes_in=1, lanes_out=4) | kwargs
    with pytest.raises(exc, match=message):
        ChannelRegroup(**params)
