"""A streamed stage's weight source: its weights from external memory, one frame per image
(per batch of images at ``batch > 1``), regrouped into the array's tiles.

::

    mem_cmd / mem_rsp <-> BurstReader -> tile assembler -> tiles (R * C weights per beat)

The plan lays the weights out in consumption order (:mod:`accel.plan.weights`), so every image
(or batch) reads the same ``words_per_image`` words from ``base``: the frame request is a
constant, offered continuously, and the reader prefetches the next frame's weights while the
stage works on the current one. A tile is offered until taken, so a batched stage holds it
on ``o`` for its ``batch`` beats (:class:`~accel.hw.stage.ComputeStage`).
``words_per_tile`` words make one tile; the first word's low bits are PE ``(0, 0)``'s weight,
row-major.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan.weights import StreamedWeights
from .burst_reader import BurstReader, burst_request_layout

__all__ = ["WeightStream", "weight_port_signature"]


def weight_port_signature(*, addr_width: int, max_burst: int,
                          word_width: int) -> wiring.Signature:
    """A weight-memory port, from the reader's side: exactly
    :class:`~accel.hw.burst_reader.BurstReader`'s memory side, ``mem_cmd`` (burst requests
    ``(addr, length)``) out and ``mem_rsp`` (``word_width``-bit words, in request order) in."""
    return wiring.Signature({
        "mem_cmd": Out(stream.Signature(burst_request_layout(addr_width, max_burst))),
        "mem_rsp": In(stream.Signature(word_width)),
    })


class WeightStream(wiring.Component):
    """Reads a stage's streamed weights (:class:`~accel.plan.weights.StreamedWeights`) and
    offers them as tiles of ``lanes = rows * cols`` weights.

    Parameters
    ----------
    plan : StreamedWeights
    lanes : int
        Weights per tile (``rows * cols``), at most ``words_per_tile * weights_per_word``.

    Members
    -------
    mem : Out(weight_port_signature(...))
        The memory port (``mem_cmd`` out, ``mem_rsp`` in), any latency and stalls.
    o : Out(stream.Signature(data.ArrayLayout(signed(weight_bits), lanes)))
        The tiles in address order, frame after frame. At ``plan.batch > 1`` from an output
        register, so that the next tile's words are gathered while a tile is held for the
        batch's beats (straight from the assembler, a tile of two or more words would cost
        one cycle more than the ``batch`` beats that use it: 25 % slower at batch 4,
        measured).
    """

    def __init__(self, *, plan: StreamedWeights, lanes: int):
        if not isinstance(lanes, int) or not 0 < lanes <= plan.words_per_tile * \
                plan.weights_per_word:
            raise ValueError(f"lanes must be an integer from 1 to "
                             f"{plan.words_per_tile * plan.weights_per_word}, not {lanes!r}")
        self.plan, self.lanes = plan, lanes
        self.reader = BurstReader(word_width=plan.word_bits, addr_width=plan.addr_bits,
                                  count_width=plan.count_bits, max_burst=plan.max_burst,
                                  fifo_depth=plan.fifo_depth)
        super().__init__({
            "mem": Out(weight_port_signature(addr_width=plan.addr_bits,
                                             max_burst=plan.max_burst,
                                             word_width=plan.word_bits)),
            "o": Out(stream.Signature(data.ArrayLayout(signed(plan.weight_bits), lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.plan
        m.submodules.reader = reader = self.reader
        wiring.connect(m, reader.mem_cmd, wiring.flipped(self.mem.mem_cmd))
        wiring.connect(m, wiring.flipped(self.mem.mem_rsp), reader.mem_rsp)
        # One frame per image, the same every time: always offered, so the reader moves on to
        # the next image's words as soon as the last one's have arrived.
        m.d.comb += [reader.frames.valid.eq(1),
                     reader.frames.payload.base.eq(p.base),
                     reader.frames.payload.count.eq(p.words_per_image)]

        # The tile assembler: words_per_tile - 1 words held, the last passed straight through
        # (so a one-word tile flows at one per cycle).
        k = p.words_per_tile
        word = reader.o.payload.data
        # The assembler's output handshake: straight to ``o`` at batch 1, else into the
        # output register.
        tile_valid, tile_ready = Signal(), Signal()
        tile = Signal(self.o.payload.shape())
        if p.batch == 1:
            m.d.comb += [self.o.valid.eq(tile_valid), tile_ready.eq(self.o.ready),
                         self.o.payload.eq(tile)]
        else:
            m.d.comb += tile_ready.eq(~self.o.valid | self.o.ready)
            with m.If(tile_valid & tile_ready):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(tile)]
            with m.Elif(self.o.ready):
                m.d.sync += self.o.valid.eq(0)
        if k == 1:
            bits = word
            m.d.comb += [tile_valid.eq(reader.o.valid), reader.o.ready.eq(tile_ready)]
        else:
            held = [Signal(p.word_bits, name=f"held{j}") for j in range(k - 1)]
            count = Signal(range(k))
            full = count == k - 1
            bits = Cat(*held, word)
            m.d.comb += [tile_valid.eq(reader.o.valid & full),
                         reader.o.ready.eq(~full | tile_ready)]
            with m.If(reader.o.valid & reader.o.ready):
                m.d.sync += count.eq(0)
                with m.If(~full):
                    m.d.sync += count.eq(count + 1)
                    with m.Switch(count):
                        for j in range(k - 1):
                            with m.Case(j):
                                m.d.sync += held[j].eq(word)
        wb, per_word = p.weight_bits, p.weights_per_word
        for lane in range(self.lanes):
            w, j = divmod(lane, per_word)
            offset = w * p.word_bits + j * wb
            m.d.comb += tile[lane].eq(bits[offset:offset + wb])
        return m
