"""WindowReplay and ColumnAccumulator in amaranth.sim against NumPy, under random stalls."""

import numpy as np
import pytest

from accel.hw.accumulate import ColumnAccumulator
from accel.hw.replay import WindowReplay

from .streams import consumer, producer, run_simulation


def run(dut, feeds, drains):
    run_simulation(dut, [*feeds, *drains], max_cycles=20_000)


@pytest.mark.parametrize("seed", range(6))
def test_replay_matches_model(seed):
    rng = np.random.default_rng(seed)
    lanes, kt, ft = int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 4))
    windows_per_frame, frames = int(rng.integers(1, 4)), 2
    n = windows_per_frame * frames * kt
    values = rng.integers(-128, 128, (n, lanes))
    beats = [{"data": values[i].tolist(),
              "last": int((i + 1) % (windows_per_frame * kt) == 0)} for i in range(n)]
    expected = []
    for w in range(n // kt):
        frame_end = (w + 1) % windows_per_frame == 0
        for f in range(ft):
            for k in range(kt):
                expected.append((values[w * kt + k].tolist(), k, f, f * kt + k, int(k == 0),
                                 int(k == kt - 1), int(frame_end and f == ft - 1 and
                                                       k == kt - 1)))
    dut = WindowReplay(lanes=lanes, k_tiles=kt, f_tiles=ft)
    got = []
    run(dut, [producer(dut.i, beats, rng=rng, gap=0.3)],
        [consumer(dut.o, len(expected), got, rng=rng, stall=0.3,
                  convert=lambda p: (list(p.data), p.kt, p.ft, p.addr, p.first, p.last,
                                     p.frame_last))])
    assert got == expected, f"seed {seed}"


def test_replay_sustains_one_beat_per_cycle():
    kt, ft, windows = 4, 3, 5
    dut = WindowReplay(lanes=2, k_tiles=kt, f_tiles=ft)
    beats = [{"data": [i, -i], "last": int(i == windows * kt - 1)} for i in range(windows * kt)]
    seen = []

    async def drain(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        while len(seen) < windows * kt * ft:
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.o.valid):
                seen.append(cycle)

    run_simulation(dut, [producer(dut.i, beats), drain], max_cycles=5_000)
    # After the first window is in, every cycle delivers a beat: no bubbles at window ends.
    assert seen[-1] - seen[0] + 1 == windows * kt * ft


@pytest.mark.parametrize("seed", range(5))
def test_accumulator_matches_model(seed):
    rng = np.random.default_rng(seed)
    cols, kt, groups = int(rng.integers(1, 4)), int(rng.integers(1, 5)), 7
    y = rng.integers(-(2**20), 2**20, (groups * kt, cols))
    beats = [{"y": y[i].tolist(), "first": int(i % kt == 0), "last": int(i % kt == kt - 1),
              "frame_last": int(i == groups * kt - 1)} for i in range(groups * kt)]
    expected = [(y[g * kt:(g + 1) * kt].sum(axis=0).tolist(), int(g == groups - 1))
                for g in range(groups)]
    dut = ColumnAccumulator(cols=cols, acc_bits=24)
    got = []
    run(dut, [producer(dut.i, beats, rng=rng, gap=0.3)],
        [consumer(dut.o, groups, got, rng=rng, stall=0.4,
                  convert=lambda p: (list(p.data), p.last))])
    assert got == expected, f"seed {seed}"
