# amaranth: UnusedElaboratable=no
"""Block tests of the fork (amaranth.sim): every output carries exactly the input's beats, in
order, under seeded random input gaps and independent random stalls on every output; the
input advances only once every output has taken the beat."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from accel.hw.fork import Fork
from tests.hw.streams import consumer, producer
from tests.hw.test_maxpool import _watchdog


@pytest.mark.parametrize("seed", range(6))
def test_every_output_gets_every_beat_in_order(seed):
    rng = np.random.default_rng(seed)
    outputs, lanes = int(rng.integers(2, 4)), int(rng.integers(1, 4))
    dut = Fork(outputs=outputs, lanes=lanes)
    n = 60
    words = rng.integers(-128, 128, (n, lanes))
    lasts = rng.random(n) < 0.2
    beats = [{"data": [int(v) for v in w], "last": int(e)} for w, e in zip(words, lasts,
                                                                            strict=True)]
    results = [[] for _ in range(outputs)]
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(_watchdog(40 * n + 100, f"seed {seed}"), background=True)
    sim.add_testbench(producer(dut.i, beats, rng=rng, gap=0.3))
    for k in range(outputs):
        # Each output stalls on its own (the stall rate differs per output).
        sim.add_testbench(consumer(dut.o[k], n, results[k], rng=np.random.default_rng(
            seed * 10 + k), stall=0.2 + 0.2 * k,
            convert=lambda p: [*(int(v) for v in p.data), int(p.last)]))
    sim.run()
    want = np.concatenate([words, lasts[:, None].astype(np.int64)], axis=1)
    for k in range(outputs):
        assert np.array_equal(np.array(results[k]), want), f"seed {seed}: output {k}"


def test_the_input_waits_for_every_output():
    dut = Fork(outputs=2, lanes=1)
    seen = []

    async def bench(ctx):
        ctx.set(dut.i.payload, {"data": [5], "last": 1})
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.o[0].ready, 1)
        ctx.set(dut.o[1].ready, 0)
        seen.append((ctx.get(dut.o[0].valid), ctx.get(dut.o[1].valid), ctx.get(dut.i.ready)))
        await ctx.tick()  # output 0 took the beat, output 1 did not
        seen.append((ctx.get(dut.o[0].valid), ctx.get(dut.o[1].valid), ctx.get(dut.i.ready)))
        ctx.set(dut.o[1].ready, 1)
        seen.append((ctx.get(dut.o[0].valid), ctx.get(dut.o[1].valid), ctx.get(dut.i.ready)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(1, 1, 0), (0, 1, 0), (0, 1, 1)]


def test_bad_parameters():
    with pytest.raises(ValueError, match=r"^outputs must be an integer >= 2, not 1$"):
        Fork(outputs=1, lanes=1)
