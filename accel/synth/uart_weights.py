"""Loading a new weight image over the UART link during development, beside the image protocol
of :mod:`accel.synth.uart_top` (same link, 8N1; its sync bytes are ``0xA5`` / ``0x5A``)::

    host -> board:  0xA6, then the image's 20-byte header (accel.synth.weight_image)
    board -> host:  0x5B, then 0x01 (header accepted: send the payload) or 0x00 (refused:
                    wrong magic, version, word width, length or flash offset; send nothing)
    host -> board:  the payload, exactly the header's length in bytes
    board -> host:  0x5B, then 0x03 (loaded, CRC-32 good) or 0x01 (CRC-32 bad: do not use
                    the weights)

Bytes before ``0xA6`` are ignored. The header is answered before the payload is sent, so a
refused image never leaves payload bytes (which may contain any sync byte) on the link. The
memory is written from word 0 while the payload arrives, so the accelerator must not read it
until the final answer (``busy`` low); the top passes received bytes to its image path only
while ``busy`` is low.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..hw.image_receiver import ImageReceiver
from ..hw.weight_loader import write_layout

__all__ = ["SYNC_LOAD", "SYNC_LOADED", "UartWeightLoad"]

SYNC_LOAD = 0xA6
SYNC_LOADED = 0x5B


class UartWeightLoad(wiring.Component):
    """The board side of the UART weight load (see module doc).

    Parameters
    ----------
    flash_offset, word_width, dst_addr_width, max_length
        As for :class:`accel.hw.image_receiver.ImageReceiver` (the board's image).

    Members
    -------
    i : In(stream.Signature(8))
        Every byte received (a ``UartRx``'s output).
    o : Out(stream.Signature(8))
        The answers, to the UART transmitter (the top merges them with its own).
    writes : Out(stream.Signature(write_layout(dst_addr_width, word_width)))
        The weights memory's write stream.
    busy : Out(1)
        A load is in progress (from its sync byte to its last answer byte).
    loaded : Out(1)
        The last load succeeded (header and CRC good); low while one runs.
    """

    def __init__(self, *, flash_offset: int, word_width: int, dst_addr_width: int,
                 max_length: int):
        self._receiver = ImageReceiver(flash_offset=flash_offset, word_width=word_width,
                                       dst_addr_width=dst_addr_width, max_length=max_length)
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "writes": Out(stream.Signature(write_layout(dst_addr_width, word_width))),
            "busy": Out(1), "loaded": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = rx = self._receiver
        wiring.connect(m, rx.writes, wiring.flipped(self.writes))
        status = Signal(8)
        forward = [rx.i.valid.eq(self.i.valid), rx.i.payload.eq(self.i.payload),
                   self.i.ready.eq(rx.i.ready)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid & (self.i.payload == SYNC_LOAD)):
                    # The receiver takes ``start`` when it is done (a previous image);
                    # out of reset it already waits for a header.
                    m.d.comb += rx.start.eq(1)
                    m.d.sync += self.loaded.eq(0)
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += self.busy.eq(1)
                with m.If(rx.header_done):
                    m.d.sync += status.eq(rx.header_ok)
                    m.next = "ANSWER_HEADER"
                with m.Else():
                    m.d.comb += forward
            with m.State("ANSWER_HEADER"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.eq(SYNC_LOADED)]
                with m.If(self.o.ready):
                    m.next = "HEADER_STATUS"
            with m.State("HEADER_STATUS"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.eq(status)]
                with m.If(self.o.ready):
                    m.next = "PAYLOAD"
                    with m.If(~status[0]):
                        m.next = "IDLE"
            with m.State("PAYLOAD"):
                m.d.comb += self.busy.eq(1)
                with m.If(rx.done):
                    m.d.sync += status.eq(rx.header_ok | (rx.crc_ok << 1))
                    m.next = "ANSWER_PAYLOAD"
                with m.Else():
                    m.d.comb += forward
            with m.State("ANSWER_PAYLOAD"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.eq(SYNC_LOADED)]
                with m.If(self.o.ready):
                    m.next = "PAYLOAD_STATUS"
            with m.State("PAYLOAD_STATUS"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.eq(status)]
                with m.If(self.o.ready):
                    m.d.sync += self.loaded.eq(status == 0b11)
                    m.next = "IDLE"
        return m
