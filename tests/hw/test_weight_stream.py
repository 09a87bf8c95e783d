# amaranth: UnusedElaboratable=no
"""Streamed weights: the layout in memory, the tile reader, and a whole Dense stage reading its
weights from a random-latency memory with refresh pauses, bit-exact with the golden model under
random stalls on every stream."""

from __future__ import annotations

import numpy as np
import pytest

from accel.errors import AccelError
from accel.hw.stage import ComputeStage
from accel.hw.weight_stream import WeightStream
from accel.plan.plan import make_plan
from accel.plan.weights import ExternalMemory, StreamedWeights, WeightPlacement, pack_tiles
from accel.quant import golden
from accel.quant.random_model import random_quantized
from accel.spec import Dense, Network

from .burst_memory import BurstMemoryModel
from .streams import consumer, producer, run_simulation
from .test_stage import from_words, to_words

#: A small memory with short bursts, so that frames take several bursts.
MEMORY = ExternalMemory(kind="sdram", size_bytes=1 << 16, word_bits=16, clock_mhz=100.0,
                        words_per_cycle=0.9, max_burst=8, read_latency=4, source="test")


def test_pack_tiles_layout():
    # Two tiles of 1 x 3 int8 weights in 16-bit words: 2 words per tile, the second padded.
    tiles = np.array([[[1, -1, 5]], [[-128, 127, 0]]])
    words = pack_tiles(tiles, 8, 16)
    assert words.tolist() == [0xFF01, 0x0005, 0x7F80, 0x0000]
    # 4-bit weights: four per word, the first in the low bits.
    assert pack_tiles(np.array([[[1, 2, -1, -8]]]), 4, 16).tolist() == [0x8F21]
    with pytest.raises(AccelError, match=r"^16-bit weights do not fit 8-bit memory words$"):
        pack_tiles(tiles, 16, 8)


def _memory_words(plans, fill_to: int) -> list[int]:
    words = [0] * fill_to
    for p in plans:
        words[p.base:p.end] = [int(w) for w in p.words]
    return words


def run_streamed_stage(dut, ws, x, zero_point, *, seed, rng, outputs):
    """Run the streamed ComputeStage ``dut`` on images ``x`` with its weights (``ws``) in a
    burst memory model (random latency, refresh pauses), 30 % input gaps and output stalls;
    returns the ``outputs`` output beats as ``(data, last)`` and the memory model."""
    memory = BurstMemoryModel(_memory_words([ws], ws.end + 8), np.random.default_rng(seed),
                              latency=(1, 12), refresh_period=60, refresh_cycles=6)
    got = []
    take = consumer(dut.o, outputs, got, rng=rng, stall=0.3,
                    convert=lambda p: (list(p.data), p.last))

    async def consume(ctx):
        await take(ctx)
        memory.done = True

    run_simulation(dut, [producer(dut.i, to_words(x, dut.in_lanes, zero_point), rng=rng,
                                  gap=0.3),
                         consume, memory.clock(), memory.commands(dut.weights.mem_cmd),
                         memory.responses(dut.weights.mem_rsp)], max_cycles=50_000)
    return got, memory


@pytest.mark.parametrize(("shape", "bits", "seed"), [((1, 2), 8, 1), ((3, 2), 8, 2),
                                                    ((1, 3), 8, 3), ((2, 3), 4, 4)])
def test_tiles_in_order_under_stalls(shape, bits, seed):
    rng = np.random.default_rng(seed)
    rows, cols = shape
    half = 1 << (bits - 1)
    tiles = rng.integers(-half, half, (37, rows, cols))
    plan = StreamedWeights.build(memory=MEMORY, base=40, tiles=tiles, weight_bits=bits,
                                 compute_cycles=37)
    dut = WeightStream(plan=plan, lanes=rows * cols)
    memory = BurstMemoryModel(_memory_words([plan], plan.end + 8), np.random.default_rng(seed),
                              latency=(1, 9), refresh_period=50, refresh_cycles=5)
    images = 3
    got = []
    take = consumer(dut.o, images * len(tiles), got, rng=rng, stall=0.3,
                    convert=lambda p: list(p))

    async def consume(ctx):
        await take(ctx)
        memory.done = True

    run_simulation(dut, [consume, memory.clock(), memory.commands(dut.mem.mem_cmd),
                         memory.responses(dut.mem.mem_rsp)], max_cycles=20_000)
    want = np.tile(tiles.reshape(len(tiles), -1), (images, 1))
    assert np.array_equal(np.array(got), want), f"seed {seed}"
    assert all(1 <= n <= MEMORY.max_burst for _, n in memory.requests)
    assert memory.requests[0][0] == 40


@pytest.mark.parametrize(("array", "scheme", "seed"), [
    ((1, 2), "tflite-int8", 4), ((3, 2), "tflite-int8", 5), ((2, 3), "tflite-int8", 6),
    ((2, 3), "pow2", 7)])
def test_streamed_dense_stage_matches_golden(array, scheme, seed):
    rng = np.random.default_rng(seed)
    net = Network("n", (29,), (Dense(7, activation="relu"), Dense(3)))
    # pow2 with 4-bit weights: four weights per 16-bit word.
    bits = {"weight_bits": 4} if scheme == "pow2" else {}
    qnet = random_quantized(net, seed, scheme=scheme, **bits)
    placement = WeightPlacement(family="ecp5", bram_blocks=None, memories=(MEMORY,),
                                stream=("dense",))
    stage_plan = make_plan(qnet, *array, weights=placement).stages[0]
    ws = stage_plan.streamed
    assert ws is not None and stage_plan.array.weight_roms == ()
    assert stage_plan.cycles == max(ws.compute_cycles, ws.bandwidth_cycles)
    dut = ComputeStage(plan=stage_plan)
    x = rng.integers(qnet.input.qmin, qnet.input.qmax + 1, (3, 29))
    want = golden.run(qnet, x)["dense"]
    assert ws.weights_per_word == 16 // qnet.layers[0].weight_bits
    got, _ = run_streamed_stage(dut, ws, x, qnet.input.zero_point, seed=seed, rng=rng,
                                outputs=3 * -(-7 // dut.out_lanes))
    values = from_words(got, 7, dut.out_lanes).reshape(want.shape)
    assert np.array_equal(values, want), f"seed {seed}"
    assert [g[1] for g in got].count(1) == 3
