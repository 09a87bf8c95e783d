"""Average pooling (TFLite ``AVERAGE_POOL_2D``) and global mean (TFLite ``MEAN`` over H, W) on
streams of channel-group pixels in raster order.

Semantics
---------
:class:`AvgPool` is :func:`accel.quant.tflite_kernels.average_pool2d` bit for bit: output
``(o, p)``, channel ``ch``, is the sum ``s`` of the raw codes ``x[r, c, ch]`` over the window
clipped to the image (``window_2d`` geometry; SAME padding never takes part), divided by the
number ``n = rows(o) * cols(p)`` of in-image taps and rounded half away from code 0
(``sign(s) * ((|s| + n // 2) // n)``), then clamped to ``act_min..act_max`` (the fused
activation). A global average pool (Keras ``GlobalAveragePooling2D`` converted to
``AVERAGE_POOL_2D``) is ``pool = (height, width)``.

:class:`GlobalMean` is :func:`accel.quant.tflite_kernels.mean_hw` bit for bit
(``reference_ops::QuantizedMeanOrSum``): per channel ``sum(x - zp_in)`` over the frame, then
``MultiplyByQuantizedMultiplier(., M', e')`` with ``1 / (H * W)`` folded into the multiplier
(``k = min(floor(log2 n), 32, 31 + e)``, ``M' = (M << k) // n``, ``e' = e - k``), plus
``zp_out``, clamped to the output type. ``keep_dims`` only names the output shape: either way
the output is one pixel of ``C`` channels per frame.

Division without a divider
--------------------------
The quotient ``q = t // n`` of ``t = |s| + n // 2`` is ``(t * R_n) >> K`` with one shift ``K``
for the block and a reciprocal ``R_n = ceil(2**K / n)`` per tap count ``n`` that occurs (a
constant table indexed by the window's row and column counts). *Proof of exactness.* For a
window of ``n`` taps, ``|s| <= n * 2**(bits - 1)``, so ``0 <= t < T_n = n * 2**(bits - 1) +
n // 2 + 1``. ``K`` is chosen with ``2**K >= n * T_n`` for every ``n``. Write ``R_n * n =
2**K + e`` with ``0 <= e < n`` and ``t = q * n + r`` with ``0 <= r <= n - 1``; then
``t * R_n / 2**K = t / n + t * e / (n * 2**K)``, which is ``>= q`` and
``< q + (n - 1) / n + T_n * e / (n * 2**K) <= q + (n - 1) / n + 1 / n = q + 1`` because
``T_n * e < T_n * n <= 2**K``. So the floor is ``q`` for every ``t`` that can occur. The
constructor also checks every such ``t`` exhaustively (cheap for the sizes that exist), and the
tests drive the extreme sums (all codes at the type's minimum and maximum, for every edge
window). One ``(bits + 1 + log2 n) x (K - log2 n)``-bit multiply per lane.

Buffering scheme (:class:`AvgPool`)
-----------------------------------
That of :class:`~accel.hw.maxpool.MaxPool` with sums in place of maxima: a
:class:`~amaranth.lib.memory.Memory` of ``slots`` pooled rows of partial sums (``acc_bits``
per lane), every input beat added (read-modify-write through a read port transparent to the
write port) into each window containing it, complete rows read out in order while the next
rows accumulate. Read-out then runs through two more registers (magnitude and reciprocal
lookup; multiply, sign, clamp). Non-overlapping pools take one beat per cycle; an input pixel in
``m`` windows takes ``m`` cycles.

:class:`GlobalMean` keeps one word of sums per channel group; the beats of a frame's last
pixel do not write back but go through a fixed three-stage pipeline (sum, multiply, round and
clamp) into a :class:`~amaranth.lib.fifo.SyncFIFOBuffered`; a credit counter keeps ``i.ready``
low while the FIFO could overflow.

In both, the input ``last`` bit is not checked (positions are counted); the output ``last``
marks the final beat of a frame; lanes past ``channels`` in the last group are filled with the
output zero point.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.gemmlowp import rounding_divide_by_pot as _rdbpot
from accel.hw.gemmlowp import srdhm_of_product as _srdhm
from accel.hw.layouts import check_int, check_padding, check_pair, pixel_layout
from accel.plan.blocks import (
    AVG_POOL_LATENCY,
    MEAN_CREDITS,
    MEAN_LATENCY,
    MEAN_STAGES,
    AvgPoolPlan,
    MeanPlan,
    avg_pool_acc_bits,
    axis_table,
)
from accel.spec.shapes import AxisWindow, ceil_div, window_2d

__all__ = ["AvgPool", "GlobalMean", "reciprocals"]


def _counts(axis: AxisWindow) -> list[int]:
    """In-image taps of each window along one axis."""
    return [min(axis.start(o) + axis.kernel, axis.size) - max(axis.start(o), 0)
            for o in range(axis.out)]


def reciprocals(counts: set[int], bits: int) -> tuple[int, dict[int, int]]:
    """``(K, {n: R_n})`` with ``(t * R_n) >> K == t // n`` for every ``t`` that a window of
    ``n`` taps of ``bits``-bit codes can give (see the module documentation), checked."""
    bound = {n: n * (1 << (bits - 1)) + n // 2 + 1 for n in counts}
    shift = max((n * bound[n] - 1).bit_length() for n in counts)
    table = {n: -(-(1 << shift) // n) for n in counts}
    for n, r in table.items():
        # The proof, re-checked at every sum that matters: (t * r) >> shift is non-decreasing
        # and t // n constant on each block [k n, k n + n - 1], so the two agree on a block
        # exactly when they agree at its ends.
        starts = np.arange(0, bound[n], n, dtype=np.int64)
        t = np.concatenate([starts, np.minimum(starts + n - 1, bound[n] - 1)])
        if not np.array_equal((t * r) >> shift, t // n):
            raise AssertionError(f"reciprocal of {n} is not exact")  # pragma: no cover
    return shift, table


def _clamp(value, lo: int, hi: int):
    return Mux(value < lo, lo, Mux(value > hi, hi, value))


class AvgPool(wiring.Component):
    """Average pooling of channel-group pixels (TFLite ``AVERAGE_POOL_2D`` int8 semantics).

    Parameters
    ----------
    height, width : int
        Input image size, >= 1.
    channels : int
        Channels ``C``, >= 1; a pixel is ``ceil(C / lanes)`` beats in and out.
    pool : int or (int, int)
        Window size ``(ph, pw)``; ``(height, width)`` for a global average pool.
    strides : int or (int, int), optional
        Window step ``(sh, sw)``; default ``pool`` (as Keras).
    padding : str
        ``"valid"`` or ``"same"``; padded taps are not counted.
    lanes : int
        Channels per beat, >= 1.
    bits : int
        Width of a (signed) code, 2..16.
    act_min, act_max : int, optional
        The fused activation's clamp within the ``bits`` range; default the whole range.
    zero_point : int
        Fill value of the lanes past ``channels`` in the last group (the tensor's zero point).

    Members
    -------
    i : In(stream.Signature(pixel_layout(lanes, bits)))
        Input pixels at full resolution; ``last`` is ignored.
    o : Out(stream.Signature(pixel_layout(lanes, bits)))
        Averaged pixels in raster order; ``last`` on the final beat of each frame.

    Attributes
    ----------
    latency : int
        Cycles from accepting the input beat that completes an output row to that row's first
        beat valid on ``o`` (no earlier rows waiting, consumer ready).
    out_shape : (int, int)
        Output rows and columns.
    groups : int
        Beats per pixel.
    slots : int
        Pooled rows of partial sums held in block RAM.
    acc_bits : int
        Width of a partial sum.
    recip_shift : int
        ``K``: the quotient of ``t`` by ``n`` is ``(t * R_n) >> K``.
    reciprocal : dict of int to int
        ``R_n`` for each tap count ``n`` that occurs.
    """

    def __init__(
        self,
        *,
        height: int,
        width: int,
        channels: int,
        pool: int | tuple[int, int],
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        lanes: int = 1,
        bits: int = 8,
        act_min: int | None = None,
        act_max: int | None = None,
        zero_point: int = 0,
    ) -> None:
        self.height = check_int("height", height, 1)
        self.width = check_int("width", width, 1)
        self.channels = check_int("channels", channels, 1)
        self.pool = check_pair("pool", pool)
        self.strides = self.pool if strides is None else check_pair("strides", strides)
        self.padding = check_padding(padding)
        self.lanes = check_int("lanes", lanes, 1)
        self.bits = check_int("bits", bits, 2, 16)
        lo, hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        self.zero_point = check_int("zero_point", zero_point, lo, hi)
        self.act_min = lo if act_min is None else check_int("act_min", act_min, lo, hi)
        self.act_max = hi if act_max is None else check_int("act_max", act_max, lo, hi)
        if self.act_min > self.act_max:
            raise ValueError(f"act_min {self.act_min} must not exceed act_max {self.act_max}")
        if self.padding == "valid" and (self.pool[0] > self.height or self.pool[1] > self.width):
            raise ValueError(
                f"pool {self.pool} is larger than the input "
                f"{(self.height, self.width)} with padding 'valid'"
            )
        self.window = window_2d((self.height, self.width), self.pool, self.strides, self.padding)
        self.out_shape = self.window.out_shape
        self.groups = ceil_div(self.channels, self.lanes)
        self._rows = axis_table(self.window.rows)
        self._cols = axis_table(self.window.cols)
        self._row_counts = _counts(self.window.rows)
        self._col_counts = _counts(self.window.cols)
        self.slots = max(n for _, n, _, _, _ in self._rows) + 1
        self.acc_bits = avg_pool_acc_bits(self.bits, self.pool)
        self.recip_shift, self.reciprocal = reciprocals(
            {a * b for a in set(self._row_counts) for b in set(self._col_counts)}, self.bits)
        self.latency = AVG_POOL_LATENCY
        layout = pixel_layout(self.lanes, self.bits)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    @classmethod
    def from_plan(cls, plan: AvgPoolPlan | MeanPlan):
        """The block of its sub-plan (:class:`~accel.plan.blocks.AvgPoolPlan` or
        :class:`~accel.plan.blocks.MeanPlan`)."""
        return cls(**plan.component_args())

    def elaborate(self, platform):
        m = Module()

        H, W, G, L, bits = self.height, self.width, self.groups, self.lanes, self.bits
        A = self.acc_bits
        OH, OW = self.out_shape
        NS = self.slots
        OWG = OW * G
        depth = NS * OWG
        valid_lanes = self.channels - (G - 1) * L
        n_max_r = NS - 1
        n_max_c = max(n for _, n, _, _, _ in self._cols)

        m.submodules.partial = partial = memory.Memory(
            shape=unsigned(L * A), depth=depth, init=[]
        )
        wr = partial.write_port()
        rd_acc = partial.read_port(transparent_for=(wr,))
        rd_out = partial.read_port()

        def table(entries, column, shape):
            return Array(Const(entry[column], shape) for entry in entries)

        # --- accumulate (as MaxPool, with sums) ----------------------------------------------
        r = Signal(range(H))
        c = Signal(range(W))
        g = Signal(range(G))
        k = Signal(range(max(n_max_r, 1)))
        p = Signal(range(max(n_max_c, 1)))
        acc_base = Signal(range(NS))
        inflight = Signal(range(NS + 1))
        ready_rows = Signal(range(NS + 1))

        rows, cols = self._rows, self._cols
        r_next = Mux(r == H - 1, 0, r + 1)
        c_next = Mux(c == W - 1, 0, c + 1)
        row_facts, col_facts = [], []

        def held(entries, column, shape, facts, name):
            value = Signal(shape, init=entries[0][column], name=name)
            facts.append((value, table(entries, column, shape)))
            return value

        lo_mod = held([(lo % NS,) for lo, *_ in rows], 0, range(NS), row_facts, "lo_mod")
        n_r = held(rows, 1, range(n_max_r + 1), row_facts, "n_r")
        first_r = held(rows, 2, range(n_max_r + 1), row_facts, "first_r")
        opens = held(rows, 3, range(NS + 1), row_facts, "opens")
        completes = held(rows, 4, range(NS + 1), row_facts, "completes")
        lo_c = held(cols, 0, range(OW), col_facts, "lo_c")
        n_c = held(cols, 1, range(n_max_c + 1), col_facts, "n_c")
        first_c = held(cols, 2, range(n_max_c + 1), col_facts, "first_c")

        slot = Signal(range(NS))
        slot_sum = acc_base + lo_mod + k
        m.d.comb += slot.eq(
            Mux(slot_sum >= 2 * NS, slot_sum - 2 * NS, Mux(slot_sum >= NS, slot_sum - NS, slot_sum))
        )
        updates = (n_r != 0) & (n_c != 0)
        last_update = ~updates | ((k == n_r - 1) & (p == n_c - 1))
        row_start = (c == 0) & (g == 0) & (k == 0) & (p == 0)
        may_go = ~row_start | (inflight + opens <= NS)
        go = self.i.valid & may_go
        take = go & last_update
        m.d.comb += [
            self.i.ready.eq(may_go & last_update),
            rd_acc.addr.eq(slot * OWG + (lo_c + p) * G + g),
        ]
        last_beat_of_row = (c == W - 1) & (g == G - 1)

        with m.If(go & ~last_update):
            with m.If(p == n_c - 1):
                m.d.sync += [p.eq(0), k.eq(k + 1)]
            with m.Else():
                m.d.sync += p.eq(p + 1)
        with m.If(take):
            m.d.sync += [k.eq(0), p.eq(0), g.eq(Mux(g == G - 1, 0, g + 1))]
            with m.If(g == G - 1):
                m.d.sync += c.eq(c_next)
                m.d.sync += [value.eq(lookup[c_next]) for value, lookup in col_facts]
                with m.If(c == W - 1):
                    m.d.sync += r.eq(r_next)
                    m.d.sync += [value.eq(lookup[r_next]) for value, lookup in row_facts]
                    with m.If(r == H - 1):
                        next_base = acc_base + OH % NS
                        m.d.sync += acc_base.eq(Mux(next_base >= NS, next_base - NS, next_base))

        v1 = Signal()
        first1 = Signal()
        addr1 = Signal.like(rd_acc.addr)
        x1 = Signal(L * bits)
        row_done1 = Signal()
        completes1 = Signal.like(completes)
        m.d.sync += [
            v1.eq(go & updates),
            first1.eq((k >= first_r) & (p >= first_c)),
            addr1.eq(rd_acc.addr),
            x1.eq(self.i.payload.data.as_value()),
            row_done1.eq(take & last_beat_of_row),
            completes1.eq(completes),
        ]
        sums = []
        for lane in range(L):
            old = rd_acc.data[lane * A : (lane + 1) * A].as_signed()
            new = x1[lane * bits : (lane + 1) * bits].as_signed()
            sums.append(Mux(first1, new, old + new)[:A])
        m.d.comb += [wr.en.eq(v1), wr.addr.eq(addr1), wr.data.eq(Cat(*sums))]

        # --- emit ------------------------------------------------------------------------------
        e_addr = Signal(range(depth))
        e_pos = Signal(range(OWG))
        e_row = Signal(range(OH))
        e_col = Signal(range(OW))
        e_grp = Signal(range(G))
        advance = ~self.o.valid | self.o.ready
        issue = advance & (ready_rows != 0)
        row_emitted = issue & (e_pos == OWG - 1)
        m.d.comb += [rd_out.en.eq(advance), rd_out.addr.eq(e_addr)]
        with m.If(issue):
            m.d.sync += [
                e_addr.eq(Mux(e_addr == depth - 1, 0, e_addr + 1)),
                e_pos.eq(Mux(row_emitted, 0, e_pos + 1)),
                e_grp.eq(Mux(e_grp == G - 1, 0, e_grp + 1)),
            ]
            with m.If(e_grp == G - 1):
                m.d.sync += e_col.eq(Mux(e_col == OW - 1, 0, e_col + 1))
            with m.If(row_emitted):
                m.d.sync += e_row.eq(Mux(e_row == OH - 1, 0, e_row + 1))

        m.d.sync += [
            inflight.eq(inflight + Mux(go & row_start, opens, 0) - row_emitted),
            ready_rows.eq(ready_rows + Mux(row_done1, completes1, 0) - row_emitted),
        ]

        # Tap count of the window being read, as a (row count, column count) table index.
        ph, pw = self.pool
        rc_table = Array(Const(n, range(ph + 1)) for n in self._row_counts)
        cc_table = Array(Const(n, range(pw + 1)) for n in self._col_counts)
        K = self.recip_shift
        recip = Array(
            Const(self.reciprocal.get(a * b, 0), range(max(self.reciprocal.values()) + 1))
            for a in range(ph + 1) for b in range(pw + 1)
        )
        halves = Array(Const((a * b) // 2, range(ph * pw + 1))
                       for a in range(ph + 1) for b in range(pw + 1))

        ev1, e_lastg1, e_last1 = Signal(), Signal(), Signal()
        e_rc1, e_cc1 = Signal(range(ph + 1)), Signal(range(pw + 1))
        ev2, e_lastg2, e_last2 = Signal(), Signal(), Signal()
        R2 = Signal.like(recip[0])
        mags2 = [Signal(A + 1, name=f"mag{lane}") for lane in range(L)]
        negs2 = [Signal(name=f"neg{lane}") for lane in range(L)]
        with m.If(advance):
            m.d.sync += [
                ev1.eq(issue),
                e_lastg1.eq(e_grp == G - 1),
                e_last1.eq(row_emitted & (e_row == OH - 1)),
                e_rc1.eq(rc_table[e_row]),
                e_cc1.eq(cc_table[e_col]),
            ]
            index = e_rc1 * (pw + 1) + e_cc1
            m.d.sync += [ev2.eq(ev1), e_lastg2.eq(e_lastg1), e_last2.eq(e_last1),
                         R2.eq(recip[index])]
            for lane in range(L):
                s = rd_out.data[lane * A : (lane + 1) * A].as_signed()
                m.d.sync += [
                    mags2[lane].eq(Mux(s < 0, -s, s) + halves[index]),
                    negs2[lane].eq(s < 0),
                ]
            lanes_out = []
            for lane in range(L):
                q = (mags2[lane] * R2) >> K
                value = _clamp(Mux(negs2[lane], -q, q), self.act_min, self.act_max)
                if lane >= valid_lanes:
                    value = Mux(e_lastg2, self.zero_point, value)
                lanes_out.append(value[:bits])
            m.d.sync += [
                self.o.valid.eq(ev2),
                self.o.payload.data.eq(Cat(*lanes_out)),
                self.o.payload.last.eq(e_last2),
            ]
        return m


def mean_folded_multiplier(count: int, multiplier: int, shift: int) -> tuple[int, int]:
    """MEAN's ``(M', e')``: ``1 / count`` folded into ``(M, e)`` as ``QuantizedMeanOrSum`` does
    (the same three lines as :func:`accel.quant.tflite_kernels.mean_hw`)."""
    k = min(count.bit_length() - 1, 32, 31 + shift)
    return (multiplier << k) // count, shift - k


class GlobalMean(wiring.Component):
    """TFLite int8 ``MEAN`` over H and W of each frame (``QuantizedMeanOrSum``), one output pixel
    per frame.

    Parameters
    ----------
    height, width : int
        Input image size, >= 1.
    channels : int
        Channels ``C``, >= 1; a pixel is ``ceil(C / lanes)`` beats in and out.
    lanes : int
        Channels per beat, >= 1.
    input_zero_point, output_zero_point : int
        The tensors' zero points, int8.
    multiplier, shift : int
        ``QuantizeMultiplier(s_in / s_out)`` (:func:`~accel.quant.tflite_kernels.
        mean_multiplier`): ``0..2**31 - 1`` and ``-31..30``.
    keep_dims : bool
        Whether the output tensor is ``(1, 1, C)`` (``out_shape``) or ``(C,)``; the stream is the
        same.

    Members
    -------
    i : In(stream.Signature(pixel_layout(lanes, 8)))
        Input pixels; ``last`` is ignored.
    o : Out(stream.Signature(pixel_layout(lanes, 8)))
        The means of a frame: ``ceil(C / lanes)`` beats, ``last`` on the final one.

    Attributes
    ----------
    latency : int
        Cycles from accepting a frame's last beat to its result beat valid on ``o`` (consumer
        ready, output FIFO empty).
    out_shape : tuple of int
        ``(1, 1)`` with ``keep_dims``, else ``()``.
    folded_multiplier, folded_shift : int
        ``M'`` and ``e'``.
    groups : int
        Beats per pixel.
    """

    _STAGES = MEAN_STAGES

    def __init__(
        self,
        *,
        height: int,
        width: int,
        channels: int,
        lanes: int = 1,
        input_zero_point: int,
        output_zero_point: int,
        multiplier: int,
        shift: int,
        keep_dims: bool = True,
    ) -> None:
        self.height = check_int("height", height, 1)
        self.width = check_int("width", width, 1)
        self.channels = check_int("channels", channels, 1)
        self.lanes = check_int("lanes", lanes, 1)
        self.input_zero_point = check_int("input_zero_point", input_zero_point, -128, 127)
        self.output_zero_point = check_int("output_zero_point", output_zero_point, -128, 127)
        self.multiplier = check_int("multiplier", multiplier, 0, 2**31 - 1)
        self.shift = check_int("shift", shift, -31, 30)
        if not isinstance(keep_dims, bool):
            raise TypeError(f"keep_dims must be a bool, not {keep_dims!r}")
        self.keep_dims = keep_dims
        self.out_shape = (1, 1) if keep_dims else ()
        n = self.height * self.width
        self.folded_multiplier, self.folded_shift = mean_folded_multiplier(
            n, self.multiplier, self.shift)
        if not -31 <= self.folded_shift <= 30:
            raise ValueError(f"shift {shift} with {n} taps folds to {self.folded_shift}, "
                             f"outside TFLite's -31..30")
        # TFLite computes sum << left in int32; where that can overflow its result is undefined.
        self.sum_bits = 9 + n.bit_length()  # |sum(x - zp)| <= 255 * n
        if (255 * n) << max(self.folded_shift, 0) >= 2**31:
            raise ValueError(f"shift {shift} with {n} taps overflows TFLite's int32 sum shift")
        self.groups = ceil_div(self.channels, self.lanes)
        self.latency = MEAN_LATENCY
        layout = pixel_layout(self.lanes, 8)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    @classmethod
    def from_plan(cls, plan: AvgPoolPlan | MeanPlan):
        """The block of its sub-plan (:class:`~accel.plan.blocks.AvgPoolPlan` or
        :class:`~accel.plan.blocks.MeanPlan`)."""
        return cls(**plan.component_args())

    def elaborate(self, platform):
        m = Module()
        G, L, S = self.groups, self.lanes, self.sum_bits
        n = self.height * self.width
        valid_lanes = self.channels - (G - 1) * L
        left, right = max(self.folded_shift, 0), max(-self.folded_shift, 0)

        m.submodules.sums = sums = memory.Memory(shape=unsigned(L * S), depth=G, init=[])
        wr = sums.write_port()
        rd = sums.read_port(transparent_for=(wr,))

        depth = MEAN_CREDITS
        m.submodules.out = out = fifo.SyncFIFOBuffered(width=L * 8 + 1, depth=depth)
        credits = Signal(range(depth + 1))  # results in the pipeline or the FIFO

        pixel = Signal(range(n))
        g = Signal(range(G))
        final = pixel == n - 1
        ready = ~final | (credits < depth)
        take = self.i.valid & ready
        m.d.comb += [self.i.ready.eq(ready), rd.addr.eq(g)]
        with m.If(take):
            m.d.sync += g.eq(Mux(g == G - 1, 0, g + 1))
            with m.If(g == G - 1):
                m.d.sync += pixel.eq(Mux(final, 0, pixel + 1))

        # Stage 1: the read data is there; add (or start the sum) and write back.
        v1, first1, final1, lastg1 = Signal(), Signal(), Signal(), Signal()
        x1 = Signal(L * 8)
        addr1 = Signal(range(G))
        m.d.sync += [
            v1.eq(take), first1.eq(pixel == 0), final1.eq(final), lastg1.eq(g == G - 1),
            x1.eq(self.i.payload.data.as_value()), addr1.eq(g),
        ]
        totals = []
        for lane in range(L):
            old = rd.data[lane * S : (lane + 1) * S].as_signed()
            new = x1[lane * 8 : (lane + 1) * 8].as_signed() - self.input_zero_point
            totals.append(Mux(first1, new, old + new)[:S].as_signed())
        m.d.comb += [wr.en.eq(v1 & ~final1), wr.addr.eq(addr1), wr.data.eq(Cat(*totals))]

        # Stages 2..3 (free running): multiply, then round, add the zero point and clamp.
        v2, lastg2, v3, lastg3 = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [v2.eq(v1 & final1), lastg2.eq(lastg1), v3.eq(v2), lastg3.eq(lastg2)]
        results = []
        for lane in range(L):
            product = Signal(signed(S + left + 32), name=f"product{lane}")
            m.d.sync += product.eq((totals[lane] << left) * self.folded_multiplier)
            raw = _rdbpot(_srdhm(product), right) + self.output_zero_point
            value = Signal(signed(8), name=f"mean{lane}")
            m.d.sync += value.eq(_clamp(raw, -128, 127))
            if lane >= valid_lanes:
                value = Mux(lastg3, self.output_zero_point, value)
            results.append(value[:8])

        # One result per beat of the final pixel; the last of them ends the frame.
        m.d.comb += [
            out.w_data.eq(Cat(*results, lastg3)),
            out.w_en.eq(v3),
            self.o.payload.eq(out.r_data),
            self.o.valid.eq(out.r_rdy),
            out.r_en.eq(self.o.ready),
        ]
        m.d.sync += credits.eq(credits + (take & final) - (self.o.valid & self.o.ready))
        return m
