# amaranth: UnusedElaboratable=no
"""BurstReader against the behavioural burst memory: random latency, stalls and refresh pauses
on the memory side, random frame gaps and output stalls; every frame's words bit-exact and in
order, ``last`` on each frame's final word, bursts never longer than ``max_burst``."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from accel.hw.burst_reader import BurstReader

from .burst_memory import BurstMemoryModel
from .streams import stream_get, stream_put


def run(dut, memory, frames, *, seed, frame_gap=0.3, stall=0.3, max_cycles=200_000):
    rng = np.random.default_rng(seed + 1000)
    expected = [(memory.words[base + i], int(i == count - 1))
                for base, count in frames for i in range(count)]
    got = []
    cycles = {}

    async def producer(ctx):
        for base, count in frames:
            if rng.random() < frame_gap:
                await ctx.tick().repeat(int(rng.integers(1, 20)))
            await stream_put(ctx, dut.frames, {"base": base, "count": count})

    async def consumer(ctx):
        for _ in expected:
            if rng.random() < stall:
                await ctx.tick().repeat(int(rng.integers(1, 4)))
            payload = await stream_get(ctx, dut.o)
            got.append((payload.data, payload.last))
        cycles["end"] = memory.now
        memory.done = True

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in (producer, consumer, memory.clock(), memory.commands(dut.mem_cmd),
               memory.responses(dut.mem_rsp)):
        sim.add_testbench(tb)
    steps = 0
    while sim.advance():  # until every testbench is done, with a bound instead of a hang
        steps += 1
        if steps > 4 * max_cycles:
            break
    assert memory.done, f"seed {seed}: got {len(got)} of {len(expected)} words"
    if got != expected:
        first = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        raise AssertionError(f"seed {seed}: first mismatch at word {first}: "
                             f"{got[first]} != {expected[first]}")
    assert all(1 <= length <= dut.max_burst for _, length in memory.requests), \
        f"seed {seed}: {memory.requests}"
    return cycles["end"]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("max_burst", "fifo_depth"), [(8, 16), (4, 4), (16, 64)])
def test_frames_under_stalls(seed, max_burst, fifo_depth):
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 1 << 16, 4096).tolist()
    memory = BurstMemoryModel(words, np.random.default_rng(seed + 7), strict=True)
    frames = [(int(rng.integers(0, 3000)), int(rng.integers(1, 100))) for _ in range(6)]
    frames.append((0, 1))               # a one-word frame
    frames.append(frames[0])            # the same weights again, as every image re-reads them
    dut = BurstReader(word_width=16, addr_width=12, count_width=10, max_burst=max_burst,
                      fifo_depth=fifo_depth)
    run(dut, memory, frames, seed=seed)


def test_full_rate_without_stalls():
    # With no stalls anywhere and the FIFO deep enough to cover the latency, the reader keeps
    # one word per cycle flowing: 1000 words in little more than 1000 cycles.
    words = list(range(2000))
    memory = BurstMemoryModel(words, np.random.default_rng(0), latency=(6, 6), cmd_stall=0,
                              rsp_gap=0, refresh_period=0)
    dut = BurstReader(word_width=16, addr_width=11, count_width=11, max_burst=8, fifo_depth=32)
    end = run(dut, memory, [(100, 1000)], seed=0, frame_gap=0, stall=0)
    assert end < 1000 + 20, end


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_burst": 0}, r"^max_burst must be a positive integer, not 0$"),
    ({"word_width": True}, r"^word_width must be a positive integer, not True$"),
    ({"fifo_depth": 4, "max_burst": 8}, r"^fifo_depth must be at least max_burst \(8\), not 4$"),
])
def test_bad_parameters(kwargs, message):
    params = {"word_width": 16, "addr_width": 12, "count_width": 10, "max_burst": 8,
              "fifo_depth": 16, **kwargs}
    with pytest.raises(ValueError, match=message):
        BurstReader(**params)
