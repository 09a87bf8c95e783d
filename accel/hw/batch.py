"""A batch of images per weight frame: the input and output buffers of a streamed stage at
``batch = B > 1`` (:mod:`accel.plan.weights`, "Batches").

A streamed Dense stage reads its weight tiles from external memory in address order, f-tile
by f-tile, ``Kt`` k-tiles each. At batch ``B`` every tile is used for ``B`` images before the
next one is read, so the weight words per image drop by ``B``::

    for ft in range(Ft): for kt in range(Kt): for b in range(B):
        array beat (x_b[kt], W[ft, kt])      # x_b: image b's input vector

- :class:`BatchReplay` holds ``B`` input vectors (in two banks: the next batch fills one
  while the other is replayed) and sends their beats in that order, tagged as
  :class:`~accel.hw.replay.WindowReplay` tags them (``kt``, ``ft``, ``first``, ``last``;
  ``frame_last`` on the batch's last beat).
- :class:`BatchAccumulator` keeps ``B`` sets of column sums (one per image, for the f-tile in
  progress), stores each finished sum at its image's place in one of two output banks, and
  hands the sums on image by image (``Ft`` words per image, ``last`` on its final word), so
  the requantizer behind it sees exactly the stream of a batch-1 stage.

The memories are the plan's (:func:`accel.plan.weights.batch_memories`).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan.blocks import REPLAY_FIFO_DEPTH, REPLAY_LATENCY
from ..plan.weights import BATCH_ACCUMULATOR_LATENCY, BATCH_FIFO_DEPTH
from .accumulate import accumulate_in_layout
from .layouts import check_int, pixel_layout
from .replay import replay_layout

__all__ = ["BatchAccumulator", "BatchReplay"]


class BatchReplay(wiring.Component):
    """Buffers ``batch`` input vectors of ``k_tiles`` beats and replays them ``f_tiles`` times,
    the images interleaved beat by beat (see module doc).

    Parameters
    ----------
    lanes, k_tiles, f_tiles, bits : int
        As for :class:`~accel.hw.replay.WindowReplay`.
    batch : int
        Images per batch, at least 2.

    Members
    -------
    i : In(stream.Signature(pixel_layout(lanes, bits)))
        The input vectors, ``k_tiles`` beats each, image after image.
    o : Out(stream.Signature(replay_layout(...)))
        Per batch, for each f-tile and k-tile, the k-tile's beat of every image in turn.

    Attributes
    ----------
    latency : int
        Cycles from taking a batch's last beat to offering its first replayed beat, when the
        previous batch is out and ``o`` is ready (:data:`~accel.plan.blocks.REPLAY_LATENCY`).
    """

    def __init__(self, *, lanes: int, k_tiles: int, f_tiles: int, batch: int, bits: int = 8):
        self.lanes = check_int("lanes", lanes, 1)
        self.k_tiles = check_int("k_tiles", k_tiles, 1)
        self.f_tiles = check_int("f_tiles", f_tiles, 1)
        self.batch = check_int("batch", batch, 2)
        self.bits = check_int("bits", bits, 2)
        self.latency = REPLAY_LATENCY
        super().__init__({
            "i": In(stream.Signature(pixel_layout(self.lanes, self.bits))),
            "o": Out(stream.Signature(replay_layout(lanes=self.lanes, k_tiles=self.k_tiles,
                                                    f_tiles=self.f_tiles, bits=self.bits))),
        })

    def elaborate(self, platform):
        m = Module()
        kt_n, ft_n, b_n = self.k_tiles, self.f_tiles, self.batch
        bank = b_n * kt_n  # image b's beat kt is word b * Kt + kt of its bank
        word = data.ArrayLayout(signed(self.bits), self.lanes)
        m.submodules.mem = mem = memory.Memory(shape=word, depth=2 * bank, init=[])
        wr = mem.write_port()
        rd = mem.read_port(domain="sync", transparent_for=())
        layout = replay_layout(lanes=self.lanes, k_tiles=kt_n, f_tiles=ft_n, bits=self.bits)
        m.submodules.out = out = fifo.SyncFIFO(width=layout.size, depth=REPLAY_FIFO_DEPTH)
        full = Signal(2)

        # --- write side: the images arrive in order, so a bank fills sequentially ---
        w_bank = Signal()
        w_ptr = Signal(range(bank))
        take = self.i.valid & self.i.ready
        m.d.comb += [self.i.ready.eq(~full.bit_select(w_bank, 1)),
                     wr.addr.eq(Mux(w_bank, bank, 0) + w_ptr),
                     wr.data.eq(self.i.payload.data), wr.en.eq(take)]
        set_full = Signal(2)
        with m.If(take):
            with m.If(w_ptr == bank - 1):
                m.d.sync += [w_ptr.eq(0), w_bank.eq(~w_bank)]
                m.d.comb += set_full.bit_select(w_bank, 1).eq(1)
            with m.Else():
                m.d.sync += w_ptr.eq(w_ptr + 1)

        # --- read side: ft, then kt, then the image b; r_ptr = b * Kt + kt ---
        r_bank = Signal()
        r_b = Signal(range(b_n))
        r_kt = Signal(range(kt_n))
        r_ft = Signal(range(ft_n))
        r_ptr = Signal(range(bank))
        inflight = Signal()
        meta = Signal(layout)
        issue = full.bit_select(r_bank, 1) & (out.level + inflight < out.depth)
        last_b, last_kt, last_ft = r_b == b_n - 1, r_kt == kt_n - 1, r_ft == ft_n - 1
        m.d.comb += [rd.addr.eq(Mux(r_bank, bank, 0) + r_ptr), rd.en.eq(issue)]
        clear_full = Signal(2)
        m.d.sync += inflight.eq(issue)
        with m.If(issue):
            m.d.sync += [meta.kt.eq(r_kt), meta.ft.eq(r_ft), meta.first.eq(r_kt == 0),
                         meta.last.eq(last_kt),
                         meta.frame_last.eq(last_b & last_kt & last_ft)]
            with m.If(~last_b):
                m.d.sync += [r_b.eq(r_b + 1), r_ptr.eq(r_ptr + kt_n)]
            with m.Else():
                m.d.sync += r_b.eq(0)
                with m.If(~last_kt):
                    m.d.sync += [r_kt.eq(r_kt + 1), r_ptr.eq(r_kt + 1)]
                with m.Else():
                    m.d.sync += [r_kt.eq(0), r_ptr.eq(0)]
                    with m.If(~last_ft):
                        m.d.sync += r_ft.eq(r_ft + 1)
                    with m.Else():
                        m.d.sync += [r_ft.eq(0), r_bank.eq(~r_bank)]
                        m.d.comb += clear_full.bit_select(r_bank, 1).eq(1)
        m.d.sync += full.eq((full | set_full) & ~clear_full)

        beat = Signal(layout)
        m.d.comb += [beat.eq(meta), beat.data.eq(rd.data),
                     out.w_data.eq(beat), out.w_en.eq(inflight),
                     self.o.valid.eq(out.r_rdy), self.o.payload.eq(out.r_data),
                     out.r_en.eq(self.o.ready)]
        return m


class BatchAccumulator(wiring.Component):
    """Sums the array's k-tile beats of a batch (``batch`` images interleaved, see module doc)
    and hands the sums on image by image.

    Parameters
    ----------
    cols, acc_bits : int
        As for :class:`~accel.hw.accumulate.ColumnAccumulator`.
    batch : int
        Images per batch, at least 2.
    f_tiles : int
        Sums (f-tiles) per image.

    Members
    -------
    i : In(stream.Signature(accumulate_in_layout(...)))
        Array beats in batch order (:class:`BatchReplay`'s): ``first`` and ``last`` mark the
        k-tiles 0 and ``Kt - 1`` of a sum; the image is the beat's place in the batch.
    o : Out(stream.Signature(pixel_layout(cols, acc_bits)))
        Per image, its ``f_tiles`` sums in f-tile order, ``last`` on the image's final one.

    Attributes
    ----------
    latency : int
        Cycles from taking a batch's last beat to offering its first image's first sum, when
        ``o`` is ready and the output banks were free.
    """

    def __init__(self, *, cols: int, acc_bits: int, batch: int, f_tiles: int):
        self.cols = check_int("cols", cols, 1)
        self.acc_bits = check_int("acc_bits", acc_bits, 2, 64)
        self.batch = check_int("batch", batch, 2)
        self.f_tiles = check_int("f_tiles", f_tiles, 1)
        # take -> full (register) -> read issued -> read data into the FIFO -> offered
        self.latency = BATCH_ACCUMULATOR_LATENCY
        super().__init__({
            "i": In(stream.Signature(accumulate_in_layout(cols=self.cols,
                                                          acc_bits=self.acc_bits))),
            "o": Out(stream.Signature(pixel_layout(self.cols, self.acc_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        b_n, ft_n = self.batch, self.f_tiles
        bank = b_n * ft_n  # image b's sum ft is word b * Ft + ft of its bank
        word = data.ArrayLayout(signed(self.acc_bits), self.cols)
        # The sums in progress, one word per image, read and written in the cycle a beat is
        # taken (an asynchronous read: LUT RAM); consecutive beats are different images.
        m.submodules.sums = sums = memory.Memory(shape=word, depth=b_n, init=[])
        s_rd = sums.read_port(domain="comb")
        s_wr = sums.write_port()
        m.submodules.outs = outs = memory.Memory(shape=word, depth=2 * bank, init=[])
        o_wr = outs.write_port()
        o_rd = outs.read_port(domain="sync", transparent_for=())
        m.submodules.fifo = out = fifo.SyncFIFO(width=word.size + 1, depth=BATCH_FIFO_DEPTH)
        full = Signal(2)

        # --- input: accumulate, and file each finished sum at (image, f-tile) ---
        b = Signal(range(b_n))
        ft = Signal(range(ft_n))
        w_bank = Signal()
        w_ptr = Signal(range(bank))  # b * Ft + ft
        beat = self.i.payload
        take = self.i.valid & self.i.ready
        total = Signal(word)
        for c in range(self.cols):
            m.d.comb += total[c].eq(Mux(beat.first, 0, s_rd.data[c]) + beat.y[c])
        m.d.comb += [
            self.i.ready.eq(~full.bit_select(w_bank, 1)),
            s_rd.addr.eq(b), s_wr.addr.eq(b), s_wr.data.eq(total), s_wr.en.eq(take),
            o_wr.addr.eq(Mux(w_bank, bank, 0) + w_ptr), o_wr.data.eq(total),
            o_wr.en.eq(take & beat.last),
        ]
        set_full = Signal(2)
        with m.If(take):
            with m.If(b != b_n - 1):
                m.d.sync += [b.eq(b + 1), w_ptr.eq(w_ptr + ft_n)]
            with m.Else():
                m.d.sync += [b.eq(0), w_ptr.eq(ft)]
                with m.If(beat.last):
                    with m.If(ft != ft_n - 1):
                        m.d.sync += [ft.eq(ft + 1), w_ptr.eq(ft + 1)]
                    with m.Else():
                        m.d.sync += [ft.eq(0), w_ptr.eq(0), w_bank.eq(~w_bank)]
                        m.d.comb += set_full.bit_select(w_bank, 1).eq(1)

        # --- output: a full bank, read in address order (image by image) ---
        r_bank = Signal()
        r_ptr = Signal(range(bank))
        r_ft = Signal(range(ft_n))
        inflight = Signal()
        last = Signal()
        issue = full.bit_select(r_bank, 1) & (out.level + inflight < out.depth)
        m.d.comb += [o_rd.addr.eq(Mux(r_bank, bank, 0) + r_ptr), o_rd.en.eq(issue)]
        clear_full = Signal(2)
        m.d.sync += inflight.eq(issue)
        with m.If(issue):
            m.d.sync += [last.eq(r_ft == ft_n - 1),
                         r_ft.eq(Mux(r_ft == ft_n - 1, 0, r_ft + 1))]
            with m.If(r_ptr == bank - 1):
                m.d.sync += [r_ptr.eq(0), r_bank.eq(~r_bank)]
                m.d.comb += clear_full.bit_select(r_bank, 1).eq(1)
            with m.Else():
                m.d.sync += r_ptr.eq(r_ptr + 1)
        m.d.sync += full.eq((full | set_full) & ~clear_full)

        m.d.comb += [out.w_data.eq(Cat(o_rd.data, last)), out.w_en.eq(inflight),
                     self.o.valid.eq(out.r_rdy),
                     self.o.payload.data.eq(out.r_data[:word.size]),
                     self.o.payload.last.eq(out.r_data[word.size]),
                     out.r_en.eq(self.o.ready)]
        return m
