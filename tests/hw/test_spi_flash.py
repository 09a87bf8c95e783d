# amaranth: UnusedElaboratable=no
"""SPIFlashReader against the behavioural flash on its pins: random requests with gaps, random
stalls on the byte stream, every command and two clock divisors; bit-exact bytes, and the
transactions the flash saw. Then the BurstReader on top of it, as a weight stream from flash."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.sim import Simulator

from accel.hw.burst_reader import BurstReader
from accel.hw.spi_flash import SPIFlashReader

from .spi_flash_model import SPIFlashModel
from .streams import stream_get, stream_put


def _run(dut, testbenches, flash, max_cycles):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in testbenches:
        sim.add_testbench(tb)
    steps = 0
    while sim.advance():
        steps += 1
        if steps > 4 * max_cycles:
            break
    assert flash.done, "simulation did not finish"


@pytest.mark.parametrize(("command", "divisor"), [(0x03, 1), (0x0B, 1), (0x0B, 2), (0x6B, 1),
                                                  (0x6B, 3)])
def test_bursts_under_stalls(command, divisor):
    seed = command + divisor
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, 1 << 12, dtype=np.uint8).tobytes()
    dut = SPIFlashReader(command=command, divisor=divisor, max_burst=16, usrmclk=False)
    flash = SPIFlashModel(image, command=command)
    requests = [(int(rng.integers(0, len(image) - 16)), int(rng.integers(1, 17)))
                for _ in range(12)]
    expected = b"".join(image[a:a + n] for a, n in requests)
    got = bytearray()

    async def producer(ctx):
        for addr, length in requests:
            if rng.random() < 0.4:
                await ctx.tick().repeat(int(rng.integers(1, 30)))
            await stream_put(ctx, dut.cmd, {"addr": addr, "length": length})

    async def consumer(ctx):
        for _ in expected:
            if rng.random() < 0.3:
                await ctx.tick().repeat(int(rng.integers(1, 40)))
            got.append(await stream_get(ctx, dut.rsp))
        await ctx.tick().repeat(10)  # let the last transaction end
        flash.done = True

    _run(dut, [producer, consumer, flash.testbench(dut)], flash, 100_000)
    assert bytes(got) == expected, f"seed {seed}: bytes differ"
    assert flash.transactions == [(command, a, n) for a, n in requests], f"seed {seed}"


class _FlashStream(wiring.Component):
    """BurstReader over SPIFlashReader: frames in, bytes out, the flash pins outside."""

    def __init__(self, **flash_kwargs):
        self.reader = BurstReader(word_width=8, addr_width=24, count_width=16, max_burst=32,
                                  fifo_depth=64)
        self.flash = SPIFlashReader(max_burst=32, usrmclk=False, **flash_kwargs)
        super().__init__({"frames": wiring.In(self.reader.frames.signature.flip()),
                          "o": wiring.Out(self.reader.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader, m.submodules.flash = self.reader, self.flash
        wiring.connect(m, self.reader.mem_cmd, self.flash.cmd)
        wiring.connect(m, self.flash.rsp, self.reader.mem_rsp)
        wiring.connect(m, wiring.flipped(self.frames), self.reader.frames)
        wiring.connect(m, self.reader.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("command", [0x0B, 0x6B])
def test_weight_frames_from_flash(command):
    seed = 40 + command
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, 1 << 12, dtype=np.uint8).tobytes()
    dut = _FlashStream(command=command)
    flash = SPIFlashModel(image, command=command)
    frames = [(1000, 150), (3, 70), (1000, 150)]
    expected = [(image[b + i], int(i == n - 1)) for b, n in frames for i in range(n)]
    got = []

    async def producer(ctx):
        for base, count in frames:
            await stream_put(ctx, dut.frames, {"base": base, "count": count})

    async def consumer(ctx):
        for _ in expected:
            if rng.random() < 0.2:
                await ctx.tick().repeat(int(rng.integers(1, 60)))
            payload = await stream_get(ctx, dut.o)
            got.append((payload.data, payload.last))
        await ctx.tick().repeat(10)
        flash.done = True

    _run(dut, [producer, consumer, flash.testbench(dut.flash)], flash, 200_000)
    assert got == expected, f"seed {seed}: words differ"
    assert all(n <= 32 for _, _, n in flash.transactions), flash.transactions


def test_usrmclk_on_ecp5_only():
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    assert "USRMCLK" in verilog.convert(SPIFlashReader(), platform=ULX3S_85F_Platform(),
                                        emit_src=False)
    assert "USRMCLK" not in verilog.convert(SPIFlashReader(), platform=ICEBreakerPlatform(),
                                            emit_src=False)
    assert "USRMCLK" in verilog.convert(SPIFlashReader(usrmclk=True), emit_src=False)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"command": 0xEB}, ValueError, r"^command must be one of 0x03, 0x0b, 0x6b, not 235$"),
    ({"divisor": 0}, ValueError, r"^divisor must be a positive integer, not 0$"),
    ({"max_burst": 1.5}, ValueError, r"^max_burst must be a positive integer, not 1\.5$"),
    ({"usrmclk": 1}, TypeError, r"^usrmclk must be None, True or False, not 1$"),
])
def test_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        SPIFlashReader(**kwargs)
