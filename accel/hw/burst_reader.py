"""A sequential burst reader: frames of consecutive words from a memory with a request/response
interface (address + length out, data words back in order, any latency and stalls) become one
``amaranth.lib.stream`` of words, prefetched into a FIFO.

This is how a streamed-weight stage reads its weights: the planner lays a layer's weights out in
the order the array consumes them, so each frame (image, or batch of images) is one request
``(base, count)`` and the reader splits it into bursts the memory accepts.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BurstReader", "burst_request_layout", "frame_layout", "word_layout"]


def frame_layout(addr_width: int, count_width: int) -> data.StructLayout:
    """A frame request: ``count`` consecutive words from word address ``base``."""
    return data.StructLayout({"base": unsigned(addr_width), "count": unsigned(count_width)})


def burst_request_layout(addr_width: int, max_burst: int) -> data.StructLayout:
    """One memory request: ``length`` (1 to ``max_burst``) consecutive words from ``addr``."""
    return data.StructLayout({"addr": unsigned(addr_width),
                              "length": unsigned(max_burst.bit_length())})


def word_layout(word_width: int) -> data.StructLayout:
    """A word of the output stream; ``last`` marks the final word of a frame."""
    return data.StructLayout({"data": unsigned(word_width), "last": 1})


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


class BurstReader(wiring.Component):
    """Reads frames of consecutive words from a burst memory into a stream.

    A request is issued only when the FIFO has room for all of its words besides those already
    requested, so the memory's responses are never refused (``mem_rsp.ready`` stays high unless
    the memory sends more than was asked for) and any memory latency is hidden once
    ``fifo_depth`` is at least two bursts plus the words that arrive during one latency.

    Parameters
    ----------
    word_width : int
        Bits per memory word.
    addr_width : int
        Bits of a word address.
    count_width : int
        Bits of a frame's word count (frames hold 1 to ``2**count_width - 1`` words).
    max_burst : int
        The longest request the memory accepts, in words.
    fifo_depth : int
        Prefetch FIFO depth in words; at least ``max_burst``.

    Members
    -------
    frames : In(stream.Signature(frame_layout(addr_width, count_width)))
        Frame requests. A new frame is accepted once every word of the previous one has come
        back from the memory (they may still be waiting in the FIFO), so frames queue up
        without gaps in the output beyond one memory latency per frame. A zero ``count`` is
        consumed and produces nothing.
    mem_cmd : Out(stream.Signature(burst_request_layout(addr_width, max_burst)))
        Burst requests to the memory, in address order.
    mem_rsp : In(stream.Signature(word_width))
        The memory's data words, in request order.
    o : Out(stream.Signature(word_layout(word_width)))
        The words of each frame in address order, ``last`` on each frame's final word.
    """

    def __init__(self, *, word_width: int, addr_width: int, count_width: int, max_burst: int,
                 fifo_depth: int):
        for name, value in (("word_width", word_width), ("addr_width", addr_width),
                            ("count_width", count_width), ("max_burst", max_burst),
                            ("fifo_depth", fifo_depth)):
            _positive(name, value)
        if fifo_depth < max_burst:
            raise ValueError(f"fifo_depth must be at least max_burst ({max_burst}), "
                             f"not {fifo_depth!r}")
        self.word_width, self.addr_width, self.count_width = word_width, addr_width, count_width
        self.max_burst, self.fifo_depth = max_burst, fifo_depth
        super().__init__({
            "frames": In(stream.Signature(frame_layout(addr_width, count_width))),
            "mem_cmd": Out(stream.Signature(burst_request_layout(addr_width, max_burst))),
            "mem_rsp": In(stream.Signature(word_width)),
            "o": Out(stream.Signature(word_layout(word_width))),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.fifo_depth
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=self.word_width + 1, depth=depth)

        tx_addr = Signal(self.addr_width)      # next word to request
        tx_left = Signal(self.count_width)     # words of the frame not yet requested
        rx_left = Signal(self.count_width)     # words of the frame not yet received
        inflight = Signal(range(depth + 1))    # requested, not yet received

        # Frames: accepted when the previous one has fully arrived.
        m.d.comb += self.frames.ready.eq((tx_left == 0) & (rx_left == 0))
        with m.If(self.frames.valid & self.frames.ready):
            m.d.sync += [tx_addr.eq(self.frames.payload.base),
                         tx_left.eq(self.frames.payload.count),
                         rx_left.eq(self.frames.payload.count)]

        # Requests: the next burst, when the FIFO has room for it on top of what is in flight.
        length = Signal(range(self.max_burst + 1))
        m.d.comb += length.eq(Mux(tx_left < self.max_burst, tx_left, self.max_burst))
        room = Signal()
        m.d.comb += room.eq(buf.level + inflight + length <= depth)
        # The request is registered (valid/payload stable until taken), as streams require.
        with m.If(~self.mem_cmd.valid & (tx_left != 0) & room):
            m.d.sync += [self.mem_cmd.valid.eq(1),
                         self.mem_cmd.payload.addr.eq(tx_addr),
                         self.mem_cmd.payload.length.eq(length),
                         tx_addr.eq(tx_addr + length),
                         tx_left.eq(tx_left - length)]
        issued = Signal(range(self.max_burst + 1))
        with m.If(~self.mem_cmd.valid & (tx_left != 0) & room):
            m.d.comb += issued.eq(length)
        with m.If(self.mem_cmd.valid & self.mem_cmd.ready):
            m.d.sync += self.mem_cmd.valid.eq(0)

        # Responses into the FIFO, tagged with the frame's last word.
        take = self.mem_rsp.valid & self.mem_rsp.ready
        m.d.comb += [
            self.mem_rsp.ready.eq(buf.w_rdy & (rx_left != 0)),
            buf.w_en.eq(take),
            buf.w_data.eq(Cat(self.mem_rsp.payload, rx_left == 1)),
        ]
        with m.If(take):
            m.d.sync += rx_left.eq(rx_left - 1)
        # Counted when the request is made (not when taken) so ``room`` never over-commits.
        m.d.sync += inflight.eq(inflight + issued - take)

        m.d.comb += [
            self.o.valid.eq(buf.r_rdy),
            self.o.payload.eq(buf.r_data),
            buf.r_en.eq(self.o.ready),
        ]
        return m
