# amaranth: UnusedElaboratable=no
"""FlashImageLoader in amaranth.sim with the quad-SPI flash model on the reader's pins and the
SPRAM burst memory behind it: a good image loads bit-exactly and verifies; a corrupted payload
byte is caught (crc_ok low); bad headers are refused without writing."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from accel.hw.flash_image_loader import FlashImageLoader
from accel.hw.spi_flash import SPIFlashReader
from accel.hw.spram import SPRAMBurstMemory
from accel.synth.weight_image import HEADER_BYTES, pack_weight_image

from .spi_flash_model import SPIFlashModel
from .streams import run_simulation, stream_get, stream_put

OFFSET = 0x1000


class _Board(wiring.Component):
    """Flash pins -> SPIFlashReader -> FlashImageLoader -> SPRAMBurstMemory."""

    def __init__(self, expect=None):
        self.flash = SPIFlashReader(command=0x6B, max_burst=32, usrmclk=False)
        self.loader = FlashImageLoader(flash_offset=OFFSET, word_width=16, dst_addr_width=14,
                                       max_length=1024, max_burst=32, expect=expect)
        self.spram = SPRAMBurstMemory(width=16, depth=16384, max_burst=16, primitive=False)
        super().__init__({"cmd": wiring.In(self.spram.cmd.signature.flip()),
                          "rsp": Out(self.spram.rsp.signature), "writes": Out(16)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.flash, m.submodules.loader = self.flash, self.loader
        m.submodules.spram = self.spram
        wiring.connect(m, self.loader.mem_cmd, self.flash.cmd)
        wiring.connect(m, self.flash.rsp, self.loader.mem_rsp)
        wiring.connect(m, self.loader.writes, self.spram.writes)
        wiring.connect(m, wiring.flipped(self.cmd), self.spram.cmd)
        wiring.connect(m, self.spram.rsp, wiring.flipped(self.rsp))
        with m.If(self.loader.writes.valid & self.loader.writes.ready):
            m.d.sync += self.writes.eq(self.writes + 1)
        return m


def _flash_with(image: bytes, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    flash = bytearray(rng.integers(0, 256, OFFSET + len(image) + 64, dtype=np.uint8).tobytes())
    flash[OFFSET:OFFSET + len(image)] = image
    return bytes(flash)


def _load(image: bytes, seed: int, *, read_words: int = 0, expect=None):
    dut = _Board(expect)
    model = SPIFlashModel(_flash_with(image, seed), command=0x6B)
    result = {}

    async def boot(ctx):
        await ctx.tick().until(dut.loader.done)
        result.update(header_ok=ctx.get(dut.loader.header_ok), crc_ok=ctx.get(dut.loader.crc_ok),
                      writes=ctx.get(dut.writes), length=ctx.get(dut.loader.length))
        words = []
        for base in range(0, read_words, 16):
            count = min(16, read_words - base)
            await stream_put(ctx, dut.cmd, {"addr": base, "length": count})
            for _ in range(count):
                words.append(await stream_get(ctx, dut.rsp))
        result["words"] = words
        model.done = True

    run_simulation(dut, [boot, model.testbench(dut.flash)], max_cycles=200_000)
    return result


def _payload(seed, n=300):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_good_image_loads_and_verifies():
    seed = 11
    payload = _payload(seed)
    image = pack_weight_image(payload, word_width=16, flash_offset=OFFSET)
    got = _load(image, seed, read_words=len(payload) // 2)
    expected = [int.from_bytes(payload[k:k + 2], "little") for k in range(0, len(payload), 2)]
    assert (got["header_ok"], got["crc_ok"], got["length"]) == (1, 1, len(payload)), f"seed {seed}"
    assert got["writes"] == len(expected), f"seed {seed}"
    assert got["words"] == expected, f"seed {seed}: SPRAM contents differ"


def test_corrupted_byte_is_caught():
    seed = 12
    payload = _payload(seed)
    image = bytearray(pack_weight_image(payload, word_width=16, flash_offset=OFFSET))
    image[HEADER_BYTES + 123] ^= 0x10
    got = _load(bytes(image), seed)
    assert (got["header_ok"], got["crc_ok"]) == (1, 0), f"seed {seed}"


def test_only_the_image_built_for_is_taken():
    """A loader built for one image (its length and CRC, as the board tops are) loads that
    image and refuses a well-formed image of the same size made for other weights, and one of
    another length: a bitstream never runs with another network's weights."""
    seed = 14
    payload = _payload(seed)
    own = (len(payload), zlib.crc32(payload))
    image = pack_weight_image(payload, word_width=16, flash_offset=OFFSET)
    got = _load(image, seed, read_words=4, expect=own)
    assert (got["header_ok"], got["crc_ok"], got["writes"]) == (1, 1, len(payload) // 2)
    other = bytes(reversed(payload))
    assert zlib.crc32(other) != own[1]
    for name, wrong in (("other weights", other), ("other length", payload[:-2])):
        got = _load(pack_weight_image(wrong, word_width=16, flash_offset=OFFSET), seed,
                    expect=own)
        assert (got["header_ok"], got["crc_ok"], got["writes"]) == (0, 0, 0), name


def _edit(image, at, value):
    image = bytearray(image)
    image[at] = value
    return bytes(image)


@pytest.mark.parametrize(("name", "change"), [
    ("magic", lambda d: _edit(d, 1, 0)),
    ("version", lambda d: _edit(d, 4, 9)),
    ("word width", lambda d: _edit(d, 6, 32)),
    ("too long", lambda d: _edit(d, 9, 0x08)),          # 300 + 2048 bytes > max_length
    ("other offset", lambda d: _edit(d, 17, 0x20)),
    ("erased flash", lambda d: b"\xff" * len(d)),
])
def test_bad_header_is_caught(name, change):
    seed = 13
    image = pack_weight_image(_payload(seed, 40), word_width=16, flash_offset=OFFSET)
    got = _load(change(image), seed)
    assert (got["header_ok"], got["crc_ok"], got["writes"]) == (0, 0, 0), f"{name}, seed {seed}"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"word_width": 12}, r"^word_width must be a multiple of 8, not 12$"),
    ({"max_length": 1 << 16}, r"^max_length must fit 2\*\*14 words of 16 bits, not 65536$"),
    ({"flash_offset": 1 << 24}, (r"^flash_offset must leave room for the image below 16 MB, "
                                 r"not 16777216$")),
    ({"max_burst": 0}, r"^max_burst must be a positive integer, not 0$"),
    ({"expect": (3, 0)}, r"^expect must be \(whole-word length up to max_length, 32-bit CRC\)"),
    ({"expect": (2048, 0)}, r"^expect must be"),
])
def test_bad_parameters(kwargs, message):
    args = {"flash_offset": 0, "word_width": 16, "dst_addr_width": 14, "max_length": 1024,
            **kwargs}
    with pytest.raises(ValueError, match=message):
        FlashImageLoader(**args)
