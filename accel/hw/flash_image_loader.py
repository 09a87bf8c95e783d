"""The power-up weight load: reads the weight image (:mod:`accel.synth.weight_image`) from a
byte-wide burst memory (the flash through :class:`~accel.hw.spi_flash.SPIFlashReader`),
checks its header, copies the payload into a memory's write stream (SPRAM's, or SDRAM's
through :class:`~accel.hw.litedram_writer.LiteDRAMWriter`) and checks its CRC-32.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..synth.weight_image import HEADER_BYTES
from .burst_reader import BurstReader, burst_request_layout
from .image_receiver import ImageReceiver, check_expect
from .weight_loader import write_layout

__all__ = ["FlashImageLoader"]

FLASH_ADDR_WIDTH = 24


class FlashImageLoader(wiring.Component):
    """Loads the weight image at ``flash_offset`` once, out of reset.

    The header must carry the magic and version, ``word_width``, a payload length of 1 to
    ``max_length`` bytes and ``flash_offset`` itself (an image written for another offset or
    board is refused) and, with ``expect``, the payload length and CRC-32 of the image the
    design was built for (:class:`~accel.hw.image_receiver.ImageReceiver`); otherwise nothing
    is written, ``done`` rises with ``header_ok`` low.

    Parameters
    ----------
    flash_offset : int
        Byte address of the image in the flash (``accel.synth.weight_image.flash_offset``).
    word_width : int
        Bits per memory word, a multiple of 8.
    dst_addr_width : int
        Memory word address bits.
    max_length : int
        The largest payload in bytes that the memory holds.
    max_burst : int
        The longest flash request, in bytes.
    expect : tuple of (int, int) or None
        ``(payload length, CRC-32)`` the image must have, or ``None``.

    Members
    -------
    mem_cmd : Out(stream.Signature(burst_request_layout(24, max_burst)))
    mem_rsp : In(stream.Signature(8))
        The flash's burst interface (connect to ``SPIFlashReader.cmd`` / ``.rsp``).
    writes : Out(stream.Signature(write_layout(dst_addr_width, word_width)))
        The payload's words, to addresses 0, 1, ...
    done : Out(1)
        The load is over (check ``header_ok`` and ``crc_ok``).
    header_ok : Out(1)
        The header was valid (from ``done``).
    crc_ok : Out(1)
        The payload's CRC-32 matched the header's and every word was written (from ``done``):
        the weights may be used. An LED shows it.
    length : Out(32)
        The payload length from the header.
    """

    def __init__(self, *, flash_offset: int, word_width: int, dst_addr_width: int,
                 max_length: int, max_burst: int = 64,
                 expect: tuple[int, int] | None = None):
        for name, value in (("word_width", word_width), ("dst_addr_width", dst_addr_width),
                            ("max_length", max_length), ("max_burst", max_burst)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if word_width % 8:
            raise ValueError(f"word_width must be a multiple of 8, not {word_width!r}")
        if not isinstance(flash_offset, int) or \
                not 0 <= flash_offset <= (1 << FLASH_ADDR_WIDTH) - HEADER_BYTES - max_length:
            raise ValueError(f"flash_offset must leave room for the image below 16 MB, "
                             f"not {flash_offset!r}")
        if max_length > (word_width // 8) << dst_addr_width:
            raise ValueError(f"max_length must fit 2**{dst_addr_width} words of {word_width} "
                             f"bits, not {max_length!r}")
        self.flash_offset, self.word_width = flash_offset, word_width
        self.dst_addr_width, self.max_length, self.max_burst = dst_addr_width, max_length, max_burst
        self.expect = check_expect(expect, max_length=max_length, word_width=word_width)
        super().__init__({
            "mem_cmd": Out(stream.Signature(burst_request_layout(FLASH_ADDR_WIDTH, max_burst))),
            "mem_rsp": In(stream.Signature(8)),
            "writes": Out(stream.Signature(write_layout(dst_addr_width, word_width))),
            "done": Out(1), "header_ok": Out(1), "crc_ok": Out(1), "length": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader = reader = BurstReader(
            word_width=8, addr_width=FLASH_ADDR_WIDTH, count_width=FLASH_ADDR_WIDTH,
            max_burst=self.max_burst, fifo_depth=2 * self.max_burst)
        m.submodules.image = image = ImageReceiver(
            flash_offset=self.flash_offset, word_width=self.word_width,
            dst_addr_width=self.dst_addr_width, max_length=self.max_length, expect=self.expect)
        wiring.connect(m, reader.mem_cmd, wiring.flipped(self.mem_cmd))
        wiring.connect(m, wiring.flipped(self.mem_rsp), reader.mem_rsp)
        wiring.connect(m, image.writes, wiring.flipped(self.writes))
        m.d.comb += [image.i.valid.eq(reader.o.valid), image.i.payload.eq(reader.o.payload.data),
                     reader.o.ready.eq(image.i.ready),
                     self.done.eq(image.done), self.header_ok.eq(image.header_ok),
                     self.crc_ok.eq(image.crc_ok), self.length.eq(image.length)]

        # Two frames: the header, then (if the receiver accepts it) the payload.
        with m.FSM():
            with m.State("HEADER"):
                m.d.comb += [reader.frames.valid.eq(1),
                             reader.frames.payload.base.eq(self.flash_offset),
                             reader.frames.payload.count.eq(HEADER_BYTES)]
                with m.If(reader.frames.ready):
                    m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(image.payload):
                    m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [reader.frames.valid.eq(1),
                             reader.frames.payload.base.eq(self.flash_offset + HEADER_BYTES),
                             reader.frames.payload.count.eq(image.length)]
                with m.If(reader.frames.ready):
                    m.next = "IDLE"
            with m.State("IDLE"):
                pass
        return m
