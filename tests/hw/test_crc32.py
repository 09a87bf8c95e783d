# amaranth: UnusedElaboratable=no
"""CRC32 against zlib.crc32: bytes and wider words, random valid gaps, clear between messages."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from accel.hw.crc32 import CRC32, crc32_step

from .streams import run_simulation, stream_put


def test_python_step_is_zlib():
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, 100, dtype=np.uint8).tobytes()
    crc = 0xFFFFFFFF
    for byte in data:
        crc = crc32_step(crc, byte)
    assert crc ^ 0xFFFFFFFF == zlib.crc32(data)


@pytest.mark.parametrize("width", [8, 16, 32])
def test_matches_zlib_under_gaps(width):
    seed = 40 + width
    rng = np.random.default_rng(seed)
    step = width // 8
    messages = [rng.integers(0, 256, n * step, dtype=np.uint8).tobytes() for n in (1, 37, 5)]
    dut = CRC32(data_width=width)
    got = []

    async def testbench(ctx):
        for message in messages:
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            for k in range(0, len(message), step):
                if rng.random() < 0.4:
                    await ctx.tick().repeat(int(rng.integers(1, 4)))
                await stream_put(ctx, dut.i, int.from_bytes(message[k:k + step], "little"))
            await ctx.tick()
            got.append(ctx.get(dut.crc))

    run_simulation(dut, [testbench], max_cycles=10_000)
    assert got == [zlib.crc32(m) for m in messages], f"seed {seed}"


def test_empty_message_and_reset_value():
    dut = CRC32()

    async def testbench(ctx):
        assert ctx.get(dut.crc) == zlib.crc32(b"")

    run_simulation(dut, [testbench], max_cycles=10)


@pytest.mark.parametrize("width", [0, 12, True])
def test_bad_width(width):
    with pytest.raises(ValueError, match=rf"^data_width must be a positive multiple of 8, "
                                         rf"not {width!r}$"):
        CRC32(data_width=width)
