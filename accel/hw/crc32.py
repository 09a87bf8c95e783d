"""A streaming CRC-32, the one ``zlib.crc32`` computes (reflected polynomial ``0xEDB88320``,
initial value and final XOR ``0xFFFFFFFF``), over one word of ``data_width`` bits per cycle:
the bytes of a word are taken least significant first, so a stream of little-endian words has
the CRC of its bytes. The weight image's payload check (:mod:`accel.synth.weight_image`).
"""

from __future__ import annotations

from amaranth import Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CRC32", "POLYNOMIAL", "crc32_step"]

#: The reflected CRC-32 (IEEE 802.3) polynomial.
POLYNOMIAL = 0xEDB88320


def crc32_step(crc, byte):
    """One byte into the (uninverted) CRC register; works on ints and on Amaranth values."""
    crc = crc ^ byte
    for _ in range(8):
        if isinstance(crc, int):
            crc = (crc >> 1) ^ (POLYNOMIAL if crc & 1 else 0)
        else:
            crc = (crc >> 1) ^ (crc[0].replicate(32) & Const(POLYNOMIAL, 32))
    return crc


class CRC32(wiring.Component):
    """CRC-32 of the words taken from ``i`` since the last ``clear``.

    Parameters
    ----------
    data_width : int
        Bits per input word, a positive multiple of 8.

    Members
    -------
    i : In(stream.Signature(data_width))
        Always ready: a word is taken on every cycle ``i.valid`` is high.
    clear : In(1)
        Restart (the word taken in the same cycle is the first of the new message).
    crc : Out(32)
        ``zlib.crc32`` of the words taken so far, from the cycle after the last one.
    """

    def __init__(self, *, data_width: int = 8):
        if not isinstance(data_width, int) or isinstance(data_width, bool) or \
                data_width <= 0 or data_width % 8:
            raise ValueError(f"data_width must be a positive multiple of 8, not {data_width!r}")
        self.data_width = data_width
        super().__init__({"i": In(stream.Signature(data_width)), "clear": In(1),
                          "crc": Out(32)})

    def elaborate(self, platform):
        m = Module()
        state = Signal(32, init=0xFFFFFFFF)
        m.d.comb += [self.i.ready.eq(1), self.crc.eq(~state)]
        start = Signal(32)
        m.d.comb += start.eq(state)
        with m.If(self.clear):
            m.d.comb += start.eq(0xFFFFFFFF)
        crc = start
        for k in range(self.data_width // 8):
            # A signal per bit step: each step uses its input twice, so nested expressions
            # would grow exponentially with the word width.
            for bit in range(8):
                stepped = Signal(32, name=f"crc_{k}_{bit}")
                value = crc ^ self.i.payload[8 * k:8 * k + 8] if bit == 0 else crc
                m.d.comb += stepped.eq((value >> 1) ^ (value[0].replicate(32)
                                                        & Const(POLYNOMIAL, 32)))
                crc = stepped
        with m.If(self.i.valid):
            m.d.sync += state.eq(crc)
        with m.Elif(self.clear):
            m.d.sync += state.eq(0xFFFFFFFF)
        return m
