"""The weight image: what ``accel build`` writes next to the bitstream and ``accel program``
puts in the board's flash, for the power-up loader (:mod:`accel.hw.flash_image_loader`) to copy
into SPRAM or SDRAM and check.

Layout (all fields little-endian; the loader reads the header first)::

    offset  size  field
    0       4     magic, b"AWI1"
    4       2     format version (1)
    6       2     word width in bits (the target memory's word; the payload is whole words)
    8       4     payload length in bytes
    12      4     CRC-32 of the payload (zlib.crc32: reflected polynomial 0xEDB88320)
    16      4     the flash byte offset the image is meant for
    20      ...   payload

The payload is the memory contents in word-address order, each word's bytes least significant
first (the order :class:`accel.hw.weight_loader.WeightLoader` packs them in).

Flash offsets per board are in :data:`FLASH_LAYOUTS`: the image goes after the largest
bitstream the device can have, rounded up to the flash's 64 KB erase block, so writing either
image never erases the other (the boards' flashes also erase 4 KB sectors; the 64 KB block is
the coarser of the two, so it holds whichever one the programmer uses).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import AccelError

__all__ = ["FLASH_LAYOUTS", "HEADER_BYTES", "MAGIC", "VERSION", "FlashLayout", "WeightImage",
           "flash_offset", "pack_weight_image", "read_weight_image", "unpack_weight_image",
           "write_weight_image"]

MAGIC = b"AWI1"
VERSION = 1
_HEADER = struct.Struct("<4sHHIII")
HEADER_BYTES = _HEADER.size        # 20


@dataclass(frozen=True)
class FlashLayout:
    """Where a board's weight image lives in its configuration flash.

    Members
    -------
    max_bitstream : int
        The largest bitstream the device takes, in bytes (``source`` says where it comes from).
    erase_block : int
        The flash's erase block in bytes.
    flash_size : int
        The flash's size in bytes.
    source : str
    """

    max_bitstream: int
    erase_block: int
    flash_size: int
    source: str

    @property
    def offset(self) -> int:
        """The weight image's flash offset: after the bitstream, erase-block aligned."""
        return -(-self.max_bitstream // self.erase_block) * self.erase_block

    @property
    def capacity(self) -> int:
        """Bytes available for the whole image (header and payload)."""
        return self.flash_size - self.offset


#: accel board name -> its flash layout.
FLASH_LAYOUTS = {
    # iCE40UP5K bitstreams have a fixed size: 104,090 B (icepack output, TOOLCHAIN.md section 3).
    # Flash: W25Q128JV, 16 MB, 4 KB sectors and 64 KB blocks. Offset 0x20000.
    "icebreaker": FlashLayout(max_bitstream=104_090, erase_block=0x10000,
                              flash_size=16 << 20,
                              source="iCE40UP5K bitstream, fixed size (icepack), measured"),
    # LFE5U-85F: an uncompressed bitstream is the largest (compression only shrinks it):
    # 1,930,043 B, measured with yowasp-ecppack 0.11.1 without --compress on an accel build's
    # top.config. Flash: 16 MB (IS25LP128 / W25Q128JV by revision), 64 KB blocks. Offset
    # 0x1E0000.
    "ulx3s-85f": FlashLayout(max_bitstream=1_930_043, erase_block=0x10000,
                             flash_size=16 << 20,
                             source="LFE5U-85F uncompressed bitstream (ecppack), measured"),
}


def flash_offset(board: str) -> int:
    """The weight image's flash offset on ``board``; one-line error for a board without a
    known flash layout."""
    try:
        return FLASH_LAYOUTS[board].offset
    except KeyError:
        known = ", ".join(sorted(FLASH_LAYOUTS))
        raise AccelError(f"--board {board}: no weight-image flash layout is known "
                         f"(boards with one: {known})") from None


@dataclass(frozen=True)
class WeightImage:
    """A decoded weight image.

    Members
    -------
    payload : bytes
    word_width : int
    flash_offset : int
    crc : int
    """

    payload: bytes
    word_width: int
    flash_offset: int
    crc: int


def pack_weight_image(payload: bytes, *, word_width: int, flash_offset: int) -> bytes:
    """Header and payload as bytes. ``payload`` must be whole ``word_width``-bit words."""
    if not isinstance(word_width, int) or isinstance(word_width, bool) or \
            word_width <= 0 or word_width % 8 or word_width >= 1 << 16:
        raise ValueError(f"word_width must be a positive multiple of 8 below 65536, "
                         f"not {word_width!r}")
    if not isinstance(flash_offset, int) or not 0 <= flash_offset < 1 << 32:
        raise ValueError(f"flash_offset must be an integer in [0, 2**32), not {flash_offset!r}")
    payload = bytes(payload)
    if not payload:
        raise ValueError("payload must not be empty")
    if len(payload) % (word_width // 8):
        raise ValueError(f"payload must be whole {word_width}-bit words, not {len(payload)} "
                         f"bytes")
    if len(payload) >= 1 << 32:
        raise ValueError(f"payload must be shorter than 4 GB, not {len(payload)} bytes")
    header = _HEADER.pack(MAGIC, VERSION, word_width, len(payload), zlib.crc32(payload),
                          flash_offset)
    return header + payload


def write_weight_image(path: str | Path, payload: bytes, *, word_width: int,
                       flash_offset: int) -> Path:
    """Write the image (see module doc) to ``path``; returns the path."""
    path = Path(path)
    path.write_bytes(pack_weight_image(payload, word_width=word_width,
                                       flash_offset=flash_offset))
    return path


def unpack_weight_image(data: bytes, *, name: str = "weight image") -> WeightImage:
    """Decode and check an image: magic, version, word width, length and CRC. Anything wrong
    is one line naming ``name`` and what differs."""
    if len(data) < HEADER_BYTES:
        raise AccelError(f"{name}: {len(data)} bytes is too short for the "
                         f"{HEADER_BYTES}-byte header")
    magic, version, word_width, length, crc, offset = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise AccelError(f"{name}: not a weight image (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise AccelError(f"{name}: format version {version} is not supported (only {VERSION})")
    if word_width == 0 or word_width % 8:
        raise AccelError(f"{name}: word width {word_width} is not a positive multiple of 8")
    actual = len(data) - HEADER_BYTES
    if actual != length:
        raise AccelError(f"{name}: header says {length} payload bytes, the file has {actual}")
    if length == 0 or length % (word_width // 8):
        raise AccelError(f"{name}: payload of {length} bytes is not whole "
                         f"{word_width}-bit words")
    payload = bytes(data[HEADER_BYTES:])
    got = zlib.crc32(payload)
    if got != crc:
        raise AccelError(f"{name}: payload CRC-32 is {got:#010x}, the header says {crc:#010x}")
    return WeightImage(payload=payload, word_width=word_width, flash_offset=offset, crc=crc)


def read_weight_image(path: str | Path) -> WeightImage:
    """Read and check the image at ``path`` (see :func:`unpack_weight_image`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AccelError(f"{path}: cannot read the weight image ({e.strerror})") from None
    return unpack_weight_image(data, name=str(path))
