# amaranth: UnusedElaboratable=no
"""SPRAM and SPRAMArray in amaranth.sim against a Python model: random reads, masked writes and
idle cycles (chip select low), bit-exact, one-cycle read latency."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring

from accel.hw.burst_reader import BurstReader
from accel.hw.spram import SPRAM, SPRAMArray, SPRAMBurstMemory

from .streams import run_simulation, stream_get, stream_put


def _nibble_merge(old: int, new: int, mask: int, width: int) -> int:
    for i in range(width // 4):
        if mask >> i & 1:
            old = (old & ~(0xF << 4 * i)) | (new & (0xF << 4 * i))
    return old


def _exercise(dut, width: int, depth: int, seed: int, ops: int = 600) -> None:
    rng = np.random.default_rng(seed)
    # A few hot addresses spread over every block, so reads hit written words.
    hot = rng.integers(0, depth, 24).tolist() + [0, depth - 1, 16383 % depth]
    model: dict[int, int] = {}
    checked = []

    async def testbench(ctx):
        expect = None  # the word the last cycle's read must show now
        held = 0
        for _ in range(ops):
            kind = rng.choice(["read", "write", "idle"], p=[0.45, 0.35, 0.2])
            addr = int(rng.choice(hot))
            data = int(rng.integers(0, 1 << width, dtype=np.uint64)) if width <= 63 else 0
            mask = int(rng.integers(0, 1 << (width // 4)))
            ctx.set(dut.addr, addr)
            ctx.set(dut.en, kind != "idle")
            ctx.set(dut.w_en, kind == "write")
            ctx.set(dut.w_data, data)
            ctx.set(dut.w_mask, mask)
            await ctx.tick()
            if kind == "read":
                expect = model.get(addr, 0)
                held = expect
            elif kind == "write":
                model[addr] = _nibble_merge(model.get(addr, 0), data, mask, width)
                expect = None  # undefined on the primitive after a write
            if expect is not None or kind == "idle":
                if kind == "idle" and expect is None:
                    continue
                got = ctx.get(dut.r_data)
                want = expect if kind == "read" else held
                assert got == want, (f"seed {seed}: {kind} at {addr:#x}: "
                                     f"r_data {got:#x}, expected {want:#x}")
                checked.append(addr)

    run_simulation(dut, [testbench], max_cycles=ops + 10)
    assert len(checked) > ops // 4, f"seed {seed}: too few checks"


@pytest.mark.parametrize("seed", [1, 2])
def test_spram_model(seed):
    _exercise(SPRAM(primitive=False), 16, 16384, seed)


@pytest.mark.parametrize(("width", "depth"), [(32, 16384), (16, 65536), (32, 32768)])
def test_spram_array_model(width, depth):
    dut = SPRAMArray(width=width, depth=depth, primitive=False)
    _exercise(dut, width, depth, seed=width + depth)


def test_primitive_chosen_for_ice40_ultraplus():
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    text = verilog.convert(SPRAMArray(width=32, depth=16384), platform=ICEBreakerPlatform(),
                           emit_src=False)
    assert text.count("SB_SPRAM256KA ") == 2
    assert "SB_SPRAM256KA" not in verilog.convert(SPRAM(), emit_src=False)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"width": 24, "depth": 16384}, r"^width must be a positive multiple of 16, not 24$"),
    ({"width": 16, "depth": 1000}, r"^depth must be a positive multiple of 16384, not 1000$"),
    ({"width": 64, "depth": 32768},
     r"^a 64 x 32768 memory needs 8 SPRAM blocks, more than max_blocks=4$"),
    ({"width": 16, "depth": 16384, "max_blocks": 0},
     r"^max_blocks must be a positive integer, not 0$"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SPRAMArray(**kwargs)


def test_bad_primitive():
    with pytest.raises(TypeError, match=r"^primitive must be None, True or False, not 'yes'$"):
        SPRAM(primitive="yes")


class _SPRAMStream(wiring.Component):
    """BurstReader over SPRAMBurstMemory; the memory's write stream outside."""

    def __init__(self, width, depth):
        self.memory = SPRAMBurstMemory(width=width, depth=depth, max_burst=8, primitive=False)
        self.reader = BurstReader(word_width=width, addr_width=self.memory.addr_width,
                                  count_width=12, max_burst=8, fifo_depth=16)
        super().__init__({"frames": wiring.In(self.reader.frames.signature.flip()),
                          "o": wiring.Out(self.reader.o.signature),
                          "writes": wiring.In(self.memory.writes.signature.flip())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory, m.submodules.reader = self.memory, self.reader
        wiring.connect(m, self.reader.mem_cmd, self.memory.cmd)
        wiring.connect(m, self.memory.rsp, self.reader.mem_rsp)
        wiring.connect(m, wiring.flipped(self.frames), self.reader.frames)
        wiring.connect(m, self.reader.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.writes), self.memory.writes)
        return m


@pytest.mark.parametrize(("width", "depth"), [(16, 16384), (32, 32768)])
def test_burst_memory_load_then_stream(width, depth):
    seed = width + depth
    rng = np.random.default_rng(seed)
    dut = _SPRAMStream(width, depth)
    region = [int(a) for a in rng.choice(depth // 2, 64, replace=False)] + [16383, 16384 % depth]
    base = int(rng.integers(0, depth // 2 - 600))   # below the late writes
    words = {base + i: int(rng.integers(0, 1 << width, dtype=np.uint64)) for i in range(500)}
    # Writes elsewhere (upper half) go on while the frames are read, to exercise arbitration.
    late = [(depth // 2 + int(a), int(rng.integers(0, 1 << 16))) for a in rng.integers(0, 999, 80)]
    frames = [(base, 500), (base + 17, 40), (base, 1)]
    expected = [(words[b + i], int(i == n - 1)) for b, n in frames for i in range(n)]
    loaded = {"done": False}
    got = []

    async def writer(ctx):
        for addr, value in [*words.items(), *[(a, 0) for a in region if a not in words]]:
            if rng.random() < 0.2:
                await ctx.tick().repeat(int(rng.integers(1, 4)))
            await stream_put(ctx, dut.writes, {"addr": addr, "data": value})
        loaded["done"] = True
        for addr, value in late:
            await stream_put(ctx, dut.writes, {"addr": addr, "data": value})

    async def producer(ctx):
        while not loaded["done"]:
            await ctx.tick()
        for base_, count in frames:
            await stream_put(ctx, dut.frames, {"base": base_, "count": count})

    async def consumer(ctx):
        for _ in expected:
            if rng.random() < 0.3:
                await ctx.tick().repeat(int(rng.integers(1, 4)))
            payload = await stream_get(ctx, dut.o)
            got.append((payload.data, payload.last))

    run_simulation(dut, [writer, producer, consumer], max_cycles=20_000)
    assert got == expected, f"seed {seed}: words differ"


def test_burst_memory_bad_parameters():
    with pytest.raises(ValueError, match=r"^max_burst must be a positive integer, not 0$"):
        SPRAMBurstMemory(width=16, depth=16384, max_burst=0)
