# amaranth: UnusedElaboratable=no
"""The streamed-weight board top's wiring in amaranth.sim: the accelerator's weights<N> ports
on one memory (directly, or through the WeightArbiter when two stages stream), its input held
until the memory says ``ready``, served by the memory model with random latency, data gaps and
refresh pauses, images in with random gaps and logits out with random stalls; bit-exact with
the golden model. Also the arbiter alone with three BurstReaders on a strict burst memory, and
the iCEBreaker's SPRAM weight memory (flash -> loader -> SPRAM) on the flash model."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Elaboratable, Module
from amaranth.lib import wiring

from accel.hw.accelerator import Accelerator
from accel.hw.burst_reader import BurstReader
from accel.hw.weight_arbiter import WeightArbiter
from accel.plan.plan import make_plan
from accel.plan.weight_memory import weight_memory_plan
from accel.plan.weights import ExternalMemory, WeightPlacement, image_payload
from accel.quant import golden
from accel.quant.random_model import random_quantized
from accel.sim.memory_model import MemoryModel
from accel.spec import Conv2D, Dense, Flatten, MaxPooling2D, Network
from accel.synth.weight_image import pack_weight_image
from accel.synth.weights_top import SPRAMWeights, StreamedAccelerator, WeightsTop

from .burst_memory import BurstMemoryModel
from .spi_flash_model import SPIFlashModel
from .streams import consumer, producer, run_simulation

MEMORY = ExternalMemory(kind="sdram", size_bytes=1 << 16, word_bits=16, clock_mhz=100.0,
                        words_per_cycle=0.969, max_burst=16, read_latency=8, source="test")
HOLD = 300  # cycles the memory is "loading" before ready


def _plan(seed, stream, memory=MEMORY):
    net = Network("n", (6, 6, 1), (Conv2D(4, 3, activation="relu"), MaxPooling2D(),
                                   Flatten(), Dense(12, activation="relu"), Dense(3)))
    qnet = random_quantized(net, seed)
    placement = WeightPlacement(family="ecp5", bram_blocks=None, memories=(memory,),
                                stream=stream)
    return qnet, make_plan(qnet, 2, 2, weights=placement)


class _Bench(Elaboratable):
    """StreamedAccelerator on a MemoryModel holding the weight image, ``run`` after HOLD."""

    def __init__(self, plan, seed):
        self.dut = StreamedAccelerator(accelerator=Accelerator(plan))
        mp = self.dut.memory_plan
        payload = image_payload([s.streamed for s in plan.streamed_stages])
        words = np.frombuffer(payload, "<u2")
        self.memory = MemoryModel(words=words, base=0, addr_width=mp.addr_bits,
                                  max_burst=mp.max_burst, word_width=mp.word_bits, seed=seed,
                                  gap_percent=10, min_latency=4, refresh_period=200,
                                  refresh_cycles=8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        m.submodules.memory = self.memory
        wiring.connect(m, self.dut.mem, self.memory.port)
        return m


@pytest.mark.parametrize(("stream", "seed"), [(("dense",), 3), (("dense", "dense_1"), 5)])
def test_streamed_accelerator_is_bit_exact_and_held(stream, seed):
    qnet, plan = _plan(seed, stream)
    assert [s.layer for s in plan.streamed_stages] == list(stream)
    bench = _Bench(plan, seed)
    dut = bench.dut
    assert dut.memory_plan.arbitrated == (len(stream) > 1)
    rng = np.random.default_rng(seed)
    images = rng.integers(-128, 128, (3, 6, 6, 1))
    want = golden.run(qnet, images)[qnet.layers[-1].name].reshape(len(images), -1)
    values = images.reshape(len(images), -1)
    beats = [{"data": [int(v)], "last": int(k == values.shape[1] - 1)}
             for image in values for k, v in enumerate(image)]
    got, held = [], []

    async def hold(ctx):
        ctx.set(dut.run, 0)
        for _ in range(HOLD):
            await ctx.tick()
            # Nothing may enter, and no weight is read, before the memory is ready.
            held.append(ctx.get(dut.i.ready) or ctx.get(bench.memory.words_sent))
        ctx.set(dut.run, 1)

    testbenches = [hold, producer(dut.i, beats, rng=rng, gap=0.2),
                   consumer(dut.o, want.size, got, rng=np.random.default_rng(seed + 1),
                            stall=0.2, convert=lambda p: (p.data[0], p.last))]
    run_simulation(bench, testbenches, max_cycles=200_000)
    assert not any(held), f"seed {seed}: input taken or weights read before ready"
    logits = np.array([v for v, _ in got]).reshape(want.shape)
    assert np.array_equal(logits, want), f"seed {seed}: {logits} != {want}"
    assert [last for _, last in got] == [int(k == want.shape[1] - 1)
                                         for _ in range(len(images))
                                         for k in range(want.shape[1])]


class _ArbiterBench(Elaboratable):
    def __init__(self, frames, queue_depth):
        self.readers = [BurstReader(word_width=16, addr_width=12, count_width=10, max_burst=8,
                                    fifo_depth=24) for _ in frames]
        self.arbiter = WeightArbiter(ports=len(frames), addr_width=12, max_burst=8,
                                     word_width=16, queue_depth=queue_depth)

    def elaborate(self, platform):
        m = Module()
        m.submodules.arbiter = self.arbiter
        for k, reader in enumerate(self.readers):
            m.submodules[f"reader{k}"] = reader
            wiring.connect(m, reader.mem_cmd, self.arbiter.ports[k].mem_cmd)
            wiring.connect(m, self.arbiter.ports[k].mem_rsp, reader.mem_rsp)
        return m


@pytest.mark.parametrize("seed", [1, 2])
def test_arbiter_routes_every_word_to_its_reader(seed):
    rng = np.random.default_rng(seed)
    words = [int(w) for w in rng.integers(0, 1 << 16, 1024)]
    frames = [(0, 100), (300, 37), (700, 64)]   # (base, count) per reader, each read twice
    bench = _ArbiterBench(frames, queue_depth=3)
    memory = BurstMemoryModel(words, rng, latency=(1, 10), cmd_stall=0.3, rsp_gap=0.2,
                              refresh_period=150, refresh_cycles=6, strict=True)
    results = [[] for _ in frames]
    finished = []

    def frames_bench(reader, base, count):
        async def testbench(ctx):
            for _ in range(2):
                ctx.set(reader.frames.valid, 1)
                ctx.set(reader.frames.payload, {"base": base, "count": count})
                await ctx.tick().until(reader.frames.ready)
                ctx.set(reader.frames.valid, 0)
        return testbench

    def done_bench(k, count):
        inner = consumer(bench.readers[k].o, 2 * count, results[k],
                         rng=np.random.default_rng(seed * 10 + k), stall=0.3,
                         convert=lambda p: int(p.data))

        async def testbench(ctx):
            await inner(ctx)
            finished.append(k)
            if len(finished) == len(frames):
                memory.done = True
        return testbench

    testbenches = [memory.clock(), memory.commands(bench.arbiter.mem.mem_cmd),
                   memory.responses(bench.arbiter.mem.mem_rsp)]
    for k, (base, count) in enumerate(frames):
        testbenches += [frames_bench(bench.readers[k], base, count), done_bench(k, count)]
    run_simulation(bench, testbenches, max_cycles=100_000)
    for k, (base, count) in enumerate(frames):
        assert results[k] == 2 * [int(w) for w in words[base:base + count]], \
            f"seed {seed}: reader {k} got other words"
    # Requests from all three readers were interleaved, not served one reader after another.
    owners = [next(k for k, (b, c) in enumerate(frames) if b <= addr < b + c)
              for addr, _ in memory.requests]
    assert len(set(owners[:6])) == 3, f"seed {seed}: {owners}"


def test_arbiter_rejects_a_single_port():
    with pytest.raises(ValueError, match=r"^ports must be an integer of at least 2, not 1$"):
        WeightArbiter(ports=1, addr_width=8, max_burst=8, word_width=16, queue_depth=2)


def test_spram_weights_load_check_and_serve():
    spram = ExternalMemory(kind="spram", size_bytes=128 << 10, word_bits=16, clock_mhz=12.0,
                           words_per_cycle=64 / 65, max_burst=16, read_latency=2, source="test")
    _, plan = _plan(7, ("dense", "dense_1"), memory=spram)
    mp = weight_memory_plan(plan)
    assert mp.spram_blocks == 1 and mp.memory.kind == "spram"
    payload = image_payload([s.streamed for s in plan.streamed_stages])
    offset = 0x100
    image = bytes(offset) + pack_weight_image(payload, word_width=16, flash_offset=offset)
    dut = SPRAMWeights(plan=mp, flash_offset=offset, primitive=False)
    flash = SPIFlashModel(image, command=0x0B)
    words = np.frombuffer(payload, "<u2")
    got = []

    async def reader(ctx):
        await ctx.tick().until(dut.ready | dut.error)
        assert ctx.get(dut.ready) and not ctx.get(dut.error)
        assert ctx.get(dut.status) & 0b111101 == 0b111101   # ready, up, loaded, header, crc
        for base in range(0, len(words), 16):
            length = min(16, len(words) - base)
            ctx.set(dut.mem_cmd.valid, 1)
            ctx.set(dut.mem_cmd.payload, {"addr": base, "length": length})
            await ctx.tick().until(dut.mem_cmd.ready)
            ctx.set(dut.mem_cmd.valid, 0)
            ctx.set(dut.mem_rsp.ready, 1)
            for _ in range(length):
                (word,) = await ctx.tick().sample(dut.mem_rsp.payload).until(dut.mem_rsp.valid)
                got.append(int(word))
            ctx.set(dut.mem_rsp.ready, 0)
        flash.done = True

    run_simulation(dut, [flash.testbench(dut.flash), reader], max_cycles=400_000)
    assert got == [int(w) for w in words]


class _Passthrough(Elaboratable):
    """A stand-in board top: the accelerator only, its streams driven by the testbenches."""

    def __init__(self, streamed):
        self.streamed = streamed

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = self.streamed
        return m


@pytest.mark.slow
def test_weights_top_runs_from_flash_through_spram():
    # The iCEBreaker chain in full: flash model -> loader -> SPRAM -> arbiter (two streamed
    # stages) -> accelerator, which takes no image until the CRC-checked load is done.
    spram = ExternalMemory(kind="spram", size_bytes=128 << 10, word_bits=16, clock_mhz=12.0,
                           words_per_cycle=64 / 65, max_burst=16, read_latency=2, source="test")
    seed = 11
    qnet, plan = _plan(seed, ("dense", "dense_1"), memory=spram)
    streamed = StreamedAccelerator(accelerator=Accelerator(plan))
    mp = streamed.memory_plan
    payload = image_payload([s.streamed for s in plan.streamed_stages])
    offset = 0x40
    memory = SPRAMWeights(plan=mp, flash_offset=offset, primitive=False)
    top = WeightsTop(top=_Passthrough(streamed), streamed=streamed, memory=memory)
    flash = SPIFlashModel(bytes(offset) + pack_weight_image(payload, word_width=16,
                                                            flash_offset=offset),
                          command=0x0B)
    rng = np.random.default_rng(seed)
    images = rng.integers(-128, 128, (2, 6, 6, 1))
    want = golden.run(qnet, images)[qnet.layers[-1].name].reshape(len(images), -1)
    beats = [{"data": [int(v)], "last": int(k == 35)}
             for image in images.reshape(2, -1) for k, v in enumerate(image)]
    got, early = [], []

    async def watch(ctx):
        while not ctx.get(memory.ready):
            early.append(ctx.get(streamed.i.ready))
            await ctx.tick()

    async def stop_flash(ctx):
        await ctx.tick().until(memory.ready | memory.error)
        flash.done = True

    testbenches = [flash.testbench(memory.flash), watch, stop_flash,
                   producer(streamed.i, beats, rng=rng, gap=0.2),
                   consumer(streamed.o, want.size, got, rng=np.random.default_rng(seed + 1),
                            stall=0.2, convert=lambda p: int(p.data[0]))]
    run_simulation(top, testbenches, max_cycles=400_000)
    assert len(early) > 16 * len(payload) and not any(early), f"seed {seed}"
    assert np.array_equal(np.array(got).reshape(want.shape), want), f"seed {seed}"
