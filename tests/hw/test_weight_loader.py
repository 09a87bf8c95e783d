# amaranth: UnusedElaboratable=no
"""WeightLoader alone (random gaps and write stalls, frames ending mid-word), then the whole
iCEBreaker power-up path in amaranth.sim: quad-SPI flash (behavioural model on the pins) ->
BurstReader -> WeightLoader -> SPRAMBurstMemory, then BurstReader streaming the SPRAM back, all
bit-exact against the flash image."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring

from accel.hw.burst_reader import BurstReader
from accel.hw.spi_flash import SPIFlashReader
from accel.hw.spram import SPRAMBurstMemory
from accel.hw.weight_loader import WeightLoader

from .spi_flash_model import SPIFlashModel
from .streams import consumer, producer, run_simulation, stream_get, stream_put


def _pack(values, ratio, width):
    out = []
    for k in range(0, len(values), ratio):
        out.append(sum(v << (width * j) for j, v in enumerate(values[k:k + ratio])))
    return out


@pytest.mark.parametrize(("src", "dst"), [(8, 16), (8, 32), (16, 16)])
def test_packing_under_stalls(src, dst):
    seed = src * 100 + dst
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 1 << src, n).tolist() for n in (9, 4, 1, 30)]
    beats = [{"data": v, "last": int(i == len(f) - 1)} for f in frames for i, v in enumerate(f)]
    expected_data = [w for f in frames for w in _pack(f, dst // src, src)]
    dut = WeightLoader(src_width=src, dst_width=dst, dst_addr_width=10, dst_base=5)
    got = []
    run_simulation(dut, [producer(dut.i, beats, rng=rng, gap=0.3),
                         consumer(dut.writes, len(expected_data), got, rng=rng, stall=0.4,
                                  convert=lambda p: (p.addr, p.data))])
    assert got == [(5 + k, w) for k, w in enumerate(expected_data)], f"seed {seed}"


class _PowerUp(wiring.Component):
    """Flash -> SPRAM loader and SPRAM -> weight stream, as an iCEBreaker top would wire it."""

    def __init__(self):
        self.flash = SPIFlashReader(command=0x6B, max_burst=32, usrmclk=False)
        self.load_reader = BurstReader(word_width=8, addr_width=24, count_width=16,
                                       max_burst=32, fifo_depth=64)
        self.loader = WeightLoader(src_width=8, dst_width=16, dst_addr_width=14)
        self.spram = SPRAMBurstMemory(width=16, depth=16384, max_burst=16, primitive=False)
        self.reader = BurstReader(word_width=16, addr_width=14, count_width=14, max_burst=16,
                                  fifo_depth=32)
        super().__init__({"load": wiring.In(self.load_reader.frames.signature.flip()),
                          "frames": wiring.In(self.reader.frames.signature.flip()),
                          "o": wiring.Out(self.reader.o.signature)})

    def elaborate(self, platform):
        m = Module()
        for name in ("flash", "load_reader", "loader", "spram", "reader"):
            m.submodules[name] = getattr(self, name)
        wiring.connect(m, self.load_reader.mem_cmd, self.flash.cmd)
        wiring.connect(m, self.flash.rsp, self.load_reader.mem_rsp)
        wiring.connect(m, self.load_reader.o, self.loader.i)
        wiring.connect(m, self.loader.writes, self.spram.writes)
        wiring.connect(m, self.reader.mem_cmd, self.spram.cmd)
        wiring.connect(m, self.spram.rsp, self.reader.mem_rsp)
        wiring.connect(m, wiring.flipped(self.load), self.load_reader.frames)
        wiring.connect(m, wiring.flipped(self.frames), self.reader.frames)
        wiring.connect(m, self.reader.o, wiring.flipped(self.o))
        return m


def test_flash_to_spram_to_stream():
    seed = 77
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    offset, size = 256, 600                 # the weight image at a flash offset, in bytes
    words = _pack(list(image[offset:offset + size]), 2, 8)
    dut = _PowerUp()
    flash = SPIFlashModel(image, command=0x6B)
    frames = [(0, len(words)), (100, 50)]
    expected = [(words[b + i], int(i == n - 1)) for b, n in frames for i in range(n)]
    got = []

    async def boot(ctx):
        await stream_put(ctx, dut.load, {"base": offset, "count": size})
        await ctx.tick().until(dut.loader.done)
        assert ctx.get(dut.loader.loaded) == len(words)
        for base, count in frames:
            await stream_put(ctx, dut.frames, {"base": base, "count": count})

    async def sink(ctx):
        for _ in expected:
            if rng.random() < 0.3:
                await ctx.tick().repeat(int(rng.integers(1, 4)))
            payload = await stream_get(ctx, dut.o)
            got.append((payload.data, payload.last))
        flash.done = True

    run_simulation(dut, [boot, sink, flash.testbench(dut.flash)], max_cycles=100_000)
    assert got == expected, f"seed {seed}: words differ"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"dst_width": 12}, r"^dst_width must be a multiple of src_width \(8\), not 12$"),
    ({"dst_base": 1 << 14}, r"^dst_base must be an address below 2\*\*14, not 16384$"),
    ({"src_width": 0}, r"^src_width must be a positive integer, not 0$"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WeightLoader(**{"dst_addr_width": 14, **kwargs})
