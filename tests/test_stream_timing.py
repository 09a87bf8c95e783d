"""The streamed stage's cycle model (:mod:`accel.plan.stream_timing`) where it skips cycles
against the same model stepped one cycle at a time: the tiles' times and the final state are
identical, on random memories and offers with long waits (where the skips happen), and
through a network's streamed Dense stage at batch 1, 2 and 3. And the one run of the timing
model that gives both a plan's latency and its interval."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from accel.plan import stream_timing
from accel.plan.plan import make_plan
from accel.plan.stream_timing import WeightPath
from accel.plan.timing import frame_times, interval, latency
from accel.plan.weights import ExternalMemory, WeightPlacement
from accel.quant.random_model import random_quantized
from accel.spec import Conv2D, Dense, Flatten, MaxPooling2D, Network

from .test_timing_exact import CASES


class SteppedPath(WeightPath):
    """The model with no skipping: every cycle is a :meth:`step`."""

    def idle(self) -> bool:
        return False

    def takes(self, first: int, n: int) -> list[int]:
        times: list[int] = []
        offered = first
        while len(times) < n:
            t = self.t
            if self.step(t >= offered):
                times.append(t)
                offered = t + 1
        return times


def _random_stream(rng) -> SimpleNamespace:
    burst = int(rng.integers(1, 17))
    latency = int(rng.integers(1, 13))
    period = int(rng.choice([0, int(rng.integers(20, 120))]))
    memory = SimpleNamespace(read_latency=latency, refresh_period=period,
                             refresh_cycles=int(rng.integers(1, 11)) if period else 0)
    k = int(rng.integers(1, 5))
    return SimpleNamespace(memory=memory, max_burst=burst,
                           fifo_depth=2 * burst + latency + int(rng.integers(0, 4)),
                           words_per_image=k * int(rng.integers(1, 60)), words_per_tile=k)


@pytest.mark.parametrize("seed", range(40))
def test_skipping_matches_stepping(seed):
    rng = np.random.default_rng(seed)
    ws = _random_stream(rng)
    fast, stepped = WeightPath(ws), SteppedPath(ws)
    tiles = 3 * ws.words_per_image // ws.words_per_tile
    offer, got, want = 0, [], []
    for _ in range(tiles):
        # Mostly back to back, sometimes a long wait (a frame's input, a refresh or more).
        offer += int(rng.choice([0, 1, int(rng.integers(2, 3000))], p=[0.6, 0.3, 0.1]))
        got.append(fast.take(max(offer, got[-1] + 1) if got else offer))
        want.append(stepped.take(max(offer, want[-1] + 1) if want else offer))
    assert got == want, f"seed {seed}: {ws}"
    assert vars(fast) == vars(stepped), f"seed {seed}: {ws}"


MEMORY = ExternalMemory(kind="sdram", size_bytes=1 << 16, word_bits=16, clock_mhz=100.0,
                        words_per_cycle=0.969, max_burst=16, read_latency=8, source="test",
                        refresh_period=97, refresh_cycles=5)


@pytest.mark.parametrize(("batch", "seed"), [(1, 1), (2, 2), (3, 3)])
def test_streamed_dense_times_match_stepping(batch, seed, monkeypatch):
    net = Network("n", (6, 6, 1), (Conv2D(4, 3, activation="relu"), MaxPooling2D(),
                                   Flatten(), Dense(12, activation="relu"), Dense(3)))
    placement = WeightPlacement(family="ecp5", bram_blocks=None, memories=(MEMORY,),
                                stream=("dense",), batch=batch)
    plan = make_plan(random_quantized(net, seed), 2, 2, weights=placement)
    (stage,) = plan.streamed_stages
    rng = np.random.default_rng(seed)
    kt = stage.k_tiles
    # Six batches of input vectors, each vector's beats back to back after a random wait.
    offered, t = [], 0
    for _ in range(6 * batch):
        t += int(rng.integers(0, 4000))
        offered += range(t, t + kt)
        t += kt
    fast = stream_timing.streamed_dense_times(stage, offered)
    monkeypatch.setattr(stream_timing, "WeightPath", SteppedPath)
    assert fast == stream_timing.streamed_dense_times(stage, offered), f"seed {seed}"



@pytest.mark.parametrize("case", [*sorted(CASES), "streamed 1", "streamed 2", "streamed 3"])
def test_one_run_gives_latency_and_interval(case):
    """The plan reads its latency from the first batch of the interval's three-batch run
    (:func:`accel.plan.timing.output_times`): every tensor's times for the first batch alone
    are a prefix of those over three (the networks of ``test_timing_exact``, whose latency
    and interval the simulator checks, and a streamed Dense stage at batch 1 to 3)."""
    if case.startswith("streamed"):
        batch = int(case.split()[1])
        net = Network("n", (6, 6, 1), (Conv2D(4, 3, activation="relu"), MaxPooling2D(),
                                       Flatten(), Dense(12, activation="relu"), Dense(3)))
        placement = WeightPlacement(family="ecp5", bram_blocks=None, memories=(MEMORY,),
                                    stream=("dense",), batch=batch)
        plan = make_plan(random_quantized(net, batch), 2, 2, weights=placement)
    else:
        shape, layers, array, _ = CASES[case]
        plan = make_plan(random_quantized(Network(case, shape, layers), 7), *array)
    one, three = frame_times(plan, plan.batch), frame_times(plan, 3 * plan.batch)
    assert one.keys() == three.keys()
    for tensor, times in one.items():
        assert times == three[tensor][:len(times)], f"{case}: {tensor}"
    out = one[plan.output_stage.output]
    assert plan.latency_cycles == latency(plan) == out[len(out) // plan.batch - 1], case
    assert plan.interval_cycles >= interval(plan) > 0, case
