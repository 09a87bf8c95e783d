# amaranth: UnusedElaboratable=no
"""Batched streamed stages (``--batch B``): the batch replay's beat order, the batch
accumulator against NumPy sums, and whole streamed Dense stages at B > 1 reading a
random-latency memory with refresh pauses, bit-exact with the golden model under random
stalls on every stream; the plan's buffers, bandwidth and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from accel.errors import AccelError
from accel.hw.batch import BatchAccumulator, BatchReplay
from accel.hw.stage import ComputeStage
from accel.plan.memory import MemoryKind
from accel.plan.plan import make_plan
from accel.plan.weights import ExternalMemory, WeightPlacement, check_batch_fits
from accel.quant import golden
from accel.quant.random_model import random_quantized
from accel.spec import Dense, Network

from .burst_memory import BurstMemoryModel
from .streams import consumer, producer, run_simulation
from .test_stage import from_words, to_words
from .test_weight_stream import run_streamed_stage

MEMORY = ExternalMemory(kind="sdram", size_bytes=1 << 16, word_bits=16, clock_mhz=100.0,
                        words_per_cycle=0.9, max_burst=8, read_latency=4, source="test")


@pytest.mark.parametrize(("k_tiles", "f_tiles", "batch", "seed"),
                         [(3, 2, 2, 1), (1, 3, 3, 2), (4, 1, 4, 3)])
def test_batch_replay_order_under_stalls(k_tiles, f_tiles, batch, seed):
    rng = np.random.default_rng(seed)
    batches = 2
    x = rng.integers(-128, 128, (batches, batch, k_tiles, 2))
    dut = BatchReplay(lanes=2, k_tiles=k_tiles, f_tiles=f_tiles, batch=batch)
    beats = [{"data": x[g, b, k].tolist(), "last": int(k == k_tiles - 1)}
             for g in range(batches) for b in range(batch) for k in range(k_tiles)]
    got = []
    n = batches * f_tiles * k_tiles * batch
    take = consumer(dut.o, n, got, rng=rng, stall=0.3,
                    convert=lambda p: (list(p.data), int(p.kt), int(p.ft), int(p.first),
                                       int(p.last), int(p.frame_last)))
    run_simulation(dut, [producer(dut.i, beats, rng=rng, gap=0.3), take], max_cycles=20_000)
    want = [(x[g, b, k].tolist(), k, f, int(k == 0), int(k == k_tiles - 1),
             int(f == f_tiles - 1 and k == k_tiles - 1 and b == batch - 1))
            for g in range(batches) for f in range(f_tiles) for k in range(k_tiles)
            for b in range(batch)]
    assert got == want, f"seed {seed}"


@pytest.mark.parametrize(("k_tiles", "f_tiles", "batch", "seed"),
                         [(3, 2, 2, 4), (1, 1, 3, 5), (2, 3, 4, 6)])
def test_batch_accumulator_sums_image_by_image(k_tiles, f_tiles, batch, seed):
    rng = np.random.default_rng(seed)
    batches, cols = 3, 2
    y = rng.integers(-1000, 1000, (batches, f_tiles, k_tiles, batch, cols))
    dut = BatchAccumulator(cols=cols, acc_bits=16, batch=batch, f_tiles=f_tiles)
    beats = [{"y": y[g, f, k, b].tolist(), "first": int(k == 0), "last": int(k == k_tiles - 1),
              "frame_last": 0}
             for g in range(batches) for f in range(f_tiles) for k in range(k_tiles)
             for b in range(batch)]
    got = []
    take = consumer(dut.o, batches * batch * f_tiles, got, rng=rng, stall=0.4,
                    convert=lambda p: (list(p.data), int(p.last)))
    run_simulation(dut, [producer(dut.i, beats, rng=rng, gap=0.2), take], max_cycles=20_000)
    sums = y.sum(axis=2)  # (batches, f_tiles, batch, cols)
    want = [(sums[g, f, b].tolist(), int(f == f_tiles - 1))
            for g in range(batches) for b in range(batch) for f in range(f_tiles)]
    assert got == want, f"seed {seed}"


def _stage(array, batch, seed, scheme="tflite-int8"):
    net = Network("n", (29,), (Dense(7, activation="relu"), Dense(3)))
    bits = {"weight_bits": 4} if scheme == "pow2" else {}
    qnet = random_quantized(net, seed, scheme=scheme, **bits)
    placement = WeightPlacement(family="ecp5", bram_blocks=None, memories=(MEMORY,),
                                stream=("dense",), batch=batch)
    return qnet, make_plan(qnet, *array, weights=placement)


@pytest.mark.parametrize(("array", "batch", "scheme", "seed"), [
    ((2, 3), 2, "tflite-int8", 7), ((3, 2), 4, "tflite-int8", 8), ((1, 2), 3, "pow2", 9)])
def test_batched_streamed_stage_matches_golden(array, batch, scheme, seed):
    rng = np.random.default_rng(seed)
    qnet, plan = _stage(array, batch, seed, scheme)
    stage_plan = plan.stages[0]
    ws = stage_plan.streamed
    assert ws.batch == batch and [m.name for m in ws.buffers] == [
        "batch_inputs", "batch_sums", "batch_outputs", "batch_fifo"]
    dut = ComputeStage(plan=stage_plan)
    images = 2 * batch
    x = rng.integers(qnet.input.qmin, qnet.input.qmax + 1, (images, 29))
    want = golden.run(qnet, x)["dense"]
    got, memory = run_streamed_stage(dut, ws, x, qnet.input.zero_point, seed=seed, rng=rng,
                                     outputs=images * -(-7 // dut.out_lanes))
    values = from_words(got, 7, dut.out_lanes).reshape(want.shape)
    assert np.array_equal(values, want), f"seed {seed}"
    assert [g[1] for g in got].count(1) == images
    # One frame per batch: the memory served two frames (and perhaps a prefetched part).
    served = sum(n for _, n in memory.requests)
    assert 2 * ws.words_per_image <= served < 3 * ws.words_per_image + 2 * MEMORY.max_burst


def test_batch_buffers_and_bandwidth_in_the_plan():
    _, one = _stage((2, 3), 1, 1)
    _, four = _stage((2, 3), 4, 1)
    s1, s4 = one.stages[0], four.stages[0]
    ws = s4.streamed
    assert s1.streamed.buffers == () and s1.streamed.batch == 1
    kt, ft = s4.k_tiles, s4.f_tiles
    inputs, sums, outputs, _ = ws.buffers
    rows, cols, acc = s4.rows, s4.cols, s4.accumulator.acc_bits
    assert (inputs.kind, inputs.words, inputs.bits) == (MemoryKind.RAM, 2 * 4 * kt, rows * 8)
    assert (sums.words, sums.bits, sums.sync_read) == (4, cols * acc, False)
    assert (outputs.words, outputs.bits) == (2 * 4 * ft, cols * acc)
    # The buffers replace the replay's memory, and are counted in the stage's memories.
    assert s4.replay.memory not in s4.memories and all(m in s4.memories for m in ws.buffers)
    assert ws.bandwidth_cycles == -(-ws.words_per_image * 10 // (4 * 9))
    w1 = s1.streamed.words_per_image
    assert s1.streamed.bandwidth_cycles == -(-w1 * 10 // 9)
    assert four.stream_cycles == ws.bandwidth_cycles and four.batch == 4


def test_batch_refusals():
    with pytest.raises(AccelError, match=r"^--batch 0: must be an integer of at least 1$"):
        _stage((2, 3), 0, 1)
    qnet = random_quantized(Network("n", (29,), (Dense(7), Dense(3))), 1)
    placement = WeightPlacement(family="ecp5", bram_blocks=None, memories=(MEMORY,), batch=2)
    with pytest.raises(AccelError, match=r"^--batch 2: no layer streams its weights on the "
                                         r"board, so there is nothing to batch"):
        make_plan(qnet, 2, 2, weights=placement)


def test_a_batch_whose_buffers_do_not_fit_is_refused():
    net = Network("n", (2048,), (Dense(64), Dense(3)))
    qnet = random_quantized(net, 1)
    memory = ExternalMemory(kind="sdram", size_bytes=1 << 20, word_bits=16, clock_mhz=100.0,
                            words_per_cycle=0.9, max_burst=8, read_latency=4, source="test")
    placement = WeightPlacement(family="ecp5", bram_blocks=8, memories=(memory,),
                                stream=("dense",), batch=16, board="b")
    plan = make_plan(qnet, 4, 4, weights=placement)
    buffers = sum(m.blocks("ecp5") for m in plan.stages[0].streamed.buffers)
    need = plan.bram_blocks("ecp5")
    assert buffers > 0 and need > 8
    with pytest.raises(AccelError, match=rf"^--batch 16: stage 0 \(dense\) buffers 16 images "
                                         rf"in {buffers} block RAMs; the plan needs {need}, "
                                         rf"more than the 8 of --board b$"):
        check_batch_fits(plan, placement)
    from dataclasses import replace
    check_batch_fits(make_plan(qnet, 4, 4, weights=replace(placement, batch=1)),
                     replace(placement, batch=1))


@pytest.mark.parametrize(("array", "batch"), [((1, 4), 4), ((2, 3), 3)])
def test_batched_stage_takes_one_beat_per_cycle(array, batch):
    # With a memory faster than the batch needs (a tile of ``words_per_tile`` words per
    # ``batch`` beats), no input gaps and no output stalls, a batch's Kt * Ft * B array beats
    # enter on consecutive cycles: the weight stream gathers the next tile while one is held.
    qnet, plan = _stage(array, batch, 10)
    stage_plan = plan.stages[0]
    ws = stage_plan.streamed
    assert ws.words_per_tile <= batch
    dut = ComputeStage(plan=stage_plan)
    x = np.random.default_rng(10).integers(-128, 128, (batch, 29))
    words = [0] * (ws.end + 8)
    words[ws.base:ws.end] = [int(w) for w in ws.words]
    memory = BurstMemoryModel(words, np.random.default_rng(10), latency=(1, 1), cmd_stall=0,
                              rsp_gap=0, refresh_period=0)
    feed, _ = dut.feed
    beats = stage_plan.k_tiles * stage_plan.f_tiles * batch
    fired = []

    async def watch(ctx):
        cycle = 0
        while len(fired) < beats:
            _, _, valid, ready = await ctx.tick().sample(feed.valid, feed.ready)
            cycle += 1
            if valid and ready:
                fired.append(cycle)
        memory.done = True

    got = []
    run_simulation(dut, [producer(dut.i, to_words(x, dut.in_lanes, qnet.input.zero_point)),
                         consumer(dut.o, batch * -(-7 // dut.out_lanes), got,
                                  convert=lambda p: (list(p.data), p.last)), watch,
                         memory.clock(), memory.commands(dut.weights.mem_cmd),
                         memory.responses(dut.weights.mem_rsp)], max_cycles=20_000)
    assert fired[-1] - fired[0] == beats - 1
    assert np.array_equal(from_words(got, 7, dut.out_lanes), golden.run(qnet, x)["dense"])
