"""The weight image's consumer: takes the image (:mod:`accel.synth.weight_image`) as a byte
stream, checks its header, packs the payload into memory words on a write stream and checks
its CRC-32. The flash power-up loader and the UART load command both feed it.
"""

from __future__ import annotations

import struct

from amaranth import Module, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..synth.weight_image import HEADER_BYTES, MAGIC, VERSION
from .crc32 import CRC32
from .weight_loader import WeightLoader, write_layout

__all__ = ["ImageReceiver", "check_expect"]


def check_expect(expect, *, max_length: int, word_width: int) -> tuple[int, int] | None:
    """``expect`` (``None``, or the payload length and CRC-32 of the one image a design takes)
    if it is one a receiver of ``max_length`` bytes and ``word_width``-bit words can take;
    else ``ValueError``."""
    if expect is None:
        return None
    ok = isinstance(expect, tuple) and len(expect) == 2
    if ok:
        length, crc = expect
        ok = (isinstance(length, int) and 0 < length <= max_length
              and length % (word_width // 8) == 0
              and isinstance(crc, int) and 0 <= crc < 1 << 32)
    if not ok:
        raise ValueError(f"expect must be (whole-word length up to max_length, 32-bit CRC), "
                         f"not {expect!r}")
    return expect


class ImageReceiver(wiring.Component):
    """Receives one weight image per ``start`` (the first one out of reset).

    The header must carry the magic and version, ``word_width``, a payload length of 1 to
    ``max_length`` whole words and ``flash_offset`` (an image made for another board is
    refused); with ``expect``, also exactly that payload length and CRC-32 (an image made for
    another network, or another build of it, is refused: the bitstream's requantizer constants
    and weight layout belong to one image). A refused header ends the image at once (``done``
    with ``header_ok`` low) and no payload byte is taken; otherwise exactly ``length`` payload
    bytes are.

    Parameters
    ----------
    flash_offset : int
        The offset the header must name.
    word_width : int
        Bits per memory word, a multiple of 8.
    dst_addr_width : int
        Memory word address bits.
    max_length : int
        The largest payload in bytes that the memory holds.
    expect : tuple of (int, int) or None
        ``(payload length, CRC-32)`` of the one image this design was built for, or ``None``
        to take any image that fits (the UART development loader).

    Members
    -------
    i : In(stream.Signature(8))
        The image's bytes.
    writes : Out(stream.Signature(write_layout(dst_addr_width, word_width)))
        The payload's words, to addresses 0, 1, ...
    start : In(1)
        Receive another image (taken once ``done``).
    header_done : Out(1)
        The header has been checked (``header_ok`` is valid), until ``start``.
    payload : Out(1)
        Payload bytes are being taken (the header was accepted, the payload is not complete).
    done : Out(1)
        The image is over, until ``start``.
    header_ok, crc_ok : Out(1)
        The header was accepted; the payload's CRC-32 matched and every word was written (the
        weights may be used). Valid from ``header_done`` and ``done`` respectively.
    length : Out(32)
        The payload length from the header.
    """

    def __init__(self, *, flash_offset: int, word_width: int, dst_addr_width: int,
                 max_length: int, expect: tuple[int, int] | None = None):
        for name, value in (("word_width", word_width), ("dst_addr_width", dst_addr_width),
                            ("max_length", max_length)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if word_width % 8:
            raise ValueError(f"word_width must be a multiple of 8, not {word_width!r}")
        if not isinstance(flash_offset, int) or not 0 <= flash_offset < 1 << 32:
            raise ValueError(f"flash_offset must be an integer in [0, 2**32), "
                             f"not {flash_offset!r}")
        if max_length > (word_width // 8) << dst_addr_width:
            raise ValueError(f"max_length must fit 2**{dst_addr_width} words of {word_width} "
                             f"bits, not {max_length!r}")
        self.flash_offset, self.word_width = flash_offset, word_width
        self.dst_addr_width, self.max_length = dst_addr_width, max_length
        self.expect = check_expect(expect, max_length=max_length, word_width=word_width)
        super().__init__({
            "i": In(stream.Signature(8)),
            "writes": Out(stream.Signature(write_layout(dst_addr_width, word_width))),
            "start": In(1), "header_done": Out(1), "payload": Out(1), "done": Out(1),
            "header_ok": Out(1), "crc_ok": Out(1), "length": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        packer = WeightLoader(src_width=8, dst_width=self.word_width,
                              dst_addr_width=self.dst_addr_width)
        addr_reset = Signal()
        # A new image is written from address 0 again: reset the packer (idle by then).
        m.submodules.packer = ResetInserter(addr_reset)(packer)
        m.submodules.crc = crc = CRC32(data_width=8)
        wiring.connect(m, packer.writes, wiring.flipped(self.writes))

        header = Signal(8 * HEADER_BYTES)
        magic, version, width, length, want_crc, offset = (
            header[0:32], header[32:48], header[48:64], header[64:96], header[96:128],
            header[128:160])
        m.d.comb += self.length.eq(length)
        word_bytes = self.word_width // 8
        valid = ((magic == struct.unpack("<I", MAGIC)[0]) & (version == VERSION)
                 & (width == self.word_width) & (length != 0) & (length <= self.max_length)
                 & (length % word_bytes == 0) & (offset == self.flash_offset))
        if self.expect is not None:
            valid &= (length == self.expect[0]) & (want_crc == self.expect[1])
        count = Signal(32)

        with m.FSM():
            with m.State("HEADER"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    # Bytes arrive first-to-last; shifting right leaves byte k at bits 8k.
                    m.d.sync += [header.eq((header >> 8)
                                           | (self.i.payload << 8 * (HEADER_BYTES - 1))),
                                 count.eq(count + 1)]
                    with m.If(count == HEADER_BYTES - 1):
                        m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += crc.clear.eq(1)
                m.d.sync += [self.header_ok.eq(valid), self.header_done.eq(1), count.eq(length)]
                m.next = "PAYLOAD"
                with m.If(~valid):
                    m.next = "DONE"
            with m.State("PAYLOAD"):
                m.d.comb += [self.payload.eq(1),
                             packer.i.valid.eq(self.i.valid),
                             packer.i.payload.data.eq(self.i.payload),
                             packer.i.payload.last.eq(count == 1),
                             self.i.ready.eq(packer.i.ready),
                             crc.i.valid.eq(self.i.valid & packer.i.ready),
                             crc.i.payload.eq(self.i.payload)]
                with m.If(self.i.valid & packer.i.ready):
                    m.d.sync += count.eq(count - 1)
                    with m.If(count == 1):
                        m.next = "FLUSH"
            with m.State("FLUSH"):
                # The last word is written when the packer says so.
                with m.If(packer.done):
                    m.d.sync += self.crc_ok.eq(crc.crc == want_crc)
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                with m.If(self.start):
                    m.d.comb += addr_reset.eq(1)
                    m.d.sync += [count.eq(0), self.header_ok.eq(0), self.crc_ok.eq(0),
                                 self.header_done.eq(0)]
                    m.next = "HEADER"
        return m
