"""The weight image file: round trip, each header check as one AccelError line, the offsets."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from accel.errors import AccelError
from accel.synth.weight_image import (
    FLASH_LAYOUTS,
    HEADER_BYTES,
    flash_offset,
    pack_weight_image,
    read_weight_image,
    write_weight_image,
)


def _payload(seed=5, n=64):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_round_trip(tmp_path):
    payload = _payload()
    path = write_weight_image(tmp_path / "w.img", payload, word_width=16, flash_offset=0x20000)
    data = path.read_bytes()
    assert len(data) == HEADER_BYTES + len(payload) and data[:4] == b"AWI1"
    assert struct.unpack_from("<HHIII", data, 4) == (1, 16, 64, zlib.crc32(payload), 0x20000)
    image = read_weight_image(path)
    assert (image.payload, image.word_width, image.flash_offset) == (payload, 16, 0x20000)


def _corrupt(data, at, value):
    data = bytearray(data)
    data[at] = value
    return bytes(data)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: _corrupt(d, 0, ord("X")), r"not a weight image \(magic b'XWI1'"),
    (lambda d: _corrupt(d, 4, 2), r"format version 2 is not supported \(only 1\)$"),
    (lambda d: d[:-1], r"header says 64 payload bytes, the file has 63$"),
    (lambda d: d[:10], r"10 bytes is too short for the 20-byte header$"),
    (lambda d: _corrupt(d, 30, d[30] ^ 1), r"payload CRC-32 is 0x[0-9a-f]{8}, the header says "),
])
def test_bad_images_are_one_line(tmp_path, change, message):
    good = pack_weight_image(_payload(), word_width=16, flash_offset=0)
    path = tmp_path / "w.img"
    path.write_bytes(change(good))
    with pytest.raises(AccelError, match=rf"^{path}: {message}") as info:
        read_weight_image(path)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(AccelError, match=r"cannot read the weight image"):
        read_weight_image(tmp_path / "none.img")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"word_width": 12}, r"^word_width must be a positive multiple of 8 below 65536, not 12$"),
    ({"payload": b"abc"}, r"^payload must be whole 16-bit words, not 3 bytes$"),
    ({"payload": b""}, r"^payload must not be empty$"),
    ({"flash_offset": -1}, r"^flash_offset must be an integer in \[0, 2\*\*32\), not -1$"),
])
def test_bad_parameters(kwargs, message):
    args = {"payload": b"abcd", "word_width": 16, "flash_offset": 0, **kwargs}
    payload = args.pop("payload")
    with pytest.raises(ValueError, match=message):
        pack_weight_image(payload, **args)


def test_offsets():
    assert flash_offset("icebreaker") == 0x20000
    assert flash_offset("ulx3s-85f") == 0x1E0000
    for layout in FLASH_LAYOUTS.values():
        assert layout.offset >= layout.max_bitstream and layout.offset % layout.erase_block == 0
    with pytest.raises(AccelError, match=r"^--board tangnano9k: no weight-image flash layout"):
        flash_offset("tangnano9k")
