"""Packs a stream of narrow words (flash bytes) into wide words and writes them to consecutive
addresses of a memory with a write stream: how weights get from the flash into SPRAM (which has
no bitstream contents) or SDRAM at power-up."""

from __future__ import annotations

from amaranth import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .burst_reader import word_layout

__all__ = ["WeightLoader", "write_layout"]


def write_layout(addr_width: int, data_width: int) -> data.StructLayout:
    """One whole-word write."""
    return data.StructLayout({"addr": unsigned(addr_width), "data": unsigned(data_width)})


class WeightLoader(wiring.Component):
    """Loads frames of ``src_width``-bit words into ``dst_width``-bit memory words.

    Each destination word takes ``dst_width // src_width`` source words, the first in the least
    significant bits (the little-endian order the weight image is written in). A frame (its
    ``last`` word) that ends inside a destination word writes it zero-padded. Frames are written
    from ``dst_base`` on, one after another.

    Parameters
    ----------
    src_width : int
        Bits per source word (8 for flash bytes).
    dst_width : int
        Bits per destination word, a multiple of ``src_width``.
    dst_addr_width : int
        Destination address bits.
    dst_base : int
        The first destination address.

    Members
    -------
    i : In(stream.Signature(word_layout(src_width)))
        Source words, ``last`` on each frame's final one (a BurstReader's output).
    writes : Out(stream.Signature(write_layout(dst_addr_width, dst_width)))
    loaded : Out(dst_addr_width + 1)
        Destination words written so far; it reaches the image size when the load is done.
    done : Out(1)
        High after the write that ended a frame, until the next word arrives.
    """

    def __init__(self, *, src_width: int = 8, dst_width: int = 16, dst_addr_width: int,
                 dst_base: int = 0):
        for name, value in (("src_width", src_width), ("dst_width", dst_width),
                            ("dst_addr_width", dst_addr_width)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if dst_width % src_width:
            raise ValueError(f"dst_width must be a multiple of src_width ({src_width}), "
                             f"not {dst_width!r}")
        if not isinstance(dst_base, int) or not 0 <= dst_base < 2 ** dst_addr_width:
            raise ValueError(f"dst_base must be an address below 2**{dst_addr_width}, "
                             f"not {dst_base!r}")
        self.src_width, self.dst_width = src_width, dst_width
        self.dst_addr_width, self.dst_base = dst_addr_width, dst_base
        super().__init__({
            "i": In(stream.Signature(word_layout(src_width))),
            "writes": Out(stream.Signature(write_layout(dst_addr_width, dst_width))),
            "loaded": Out(dst_addr_width + 1),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        ratio = self.dst_width // self.src_width
        word = Signal(self.dst_width)
        slot = Signal(range(ratio))
        addr = Signal(self.dst_addr_width, init=self.dst_base)
        ends_frame = Signal()

        # The input is taken while no write is waiting; a word (full, or ended by `last`)
        # becomes the write register.
        m.d.comb += self.i.ready.eq(~self.writes.valid)
        with m.If(self.writes.valid & self.writes.ready):
            m.d.sync += [self.writes.valid.eq(0), addr.eq(addr + 1),
                         self.loaded.eq(self.loaded + 1), self.done.eq(ends_frame)]
        with m.If(self.i.valid & self.i.ready):
            shifted = self.i.payload.data << (slot * self.src_width)
            merged = word | shifted
            full = (slot == ratio - 1) | self.i.payload.last
            m.d.sync += self.done.eq(0)
            with m.If(full):
                m.d.sync += [self.writes.valid.eq(1), self.writes.payload.addr.eq(addr),
                             self.writes.payload.data.eq(merged), word.eq(0), slot.eq(0),
                             ends_frame.eq(self.i.payload.last)]
            with m.Else():
                m.d.sync += [word.eq(merged), slot.eq(slot + 1)]
        return m
