"""Max pooling on a stream of channel-group pixels, with a row buffer of partial maxima.

Semantics
---------
TFLite's ``MAX_POOL_2D`` on integers: output ``(o, p)``, channel ``ch`` is the maximum of
``x[r, c, ch]`` over the window rows ``o * sh - pad_top .. + ph - 1`` and columns
``p * sw - pad_left .. + pw - 1`` *clipped to the image* (padding never takes part), with the
window geometry of :func:`accel.spec.shapes.window_2d`. Any stride works: overlapping windows
(stride < pool), skipped pixels (stride > pool) and the rows/columns that ``valid`` padding
drops. Input and output share scale and zero point, so nothing is requantized.

Buffering scheme
----------------
A :class:`~amaranth.lib.memory.Memory` holds ``NS`` *slots*, one per output row in flight; a
slot is a pooled row of partial maxima, ``out_width * groups`` words of ``lanes * bits`` bits.
``NS`` is one more than the number of output rows that an input row can touch
(``ceil(ph / sh)`` inside the image; one for the usual non-overlapping pools), so one slot is
emptied while the others fill: for a 2x2/2 pool that is two pooled rows, the size of one input
row.

- *Accumulate*: every input beat ``(r, c, g)`` updates, for each output row ``o`` and column
  ``p`` whose clipped window contains ``(r, c)``, the word ``(slot(o), p, g)``: it is written
  with the beat's value at the first in-image pixel of the window and with the lane-wise
  maximum afterwards (read-modify-write through a read port that is transparent to the write
  port, so back-to-back updates of one word see each other). Non-overlapping pools make one
  update per beat and take a beat every cycle; an input pixel in ``n`` windows takes ``n``
  cycles, and a pixel in none (skipped or dropped) one cycle.
- *Emit*: an output row is complete after its last in-image input row; complete rows are read
  out in order through a second read port, one beat per cycle, while the next rows accumulate.
  The slots of output rows are claimed when their first input row starts, and that row waits
  while all slots are still in use.

Rows and columns are mapped to output windows by small constant tables (built from
``window_2d`` at elaboration), so every border case is the same logic. The input ``last`` bit
is not checked (positions are counted); the output ``last`` marks the final beat of a frame.
Lanes past ``channels`` in the last group are filled with ``zero_point``.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.layouts import check_int, check_padding, check_pair, pixel_layout
from accel.plan.blocks import (
    POOL_FIFO_DEPTH,
    POOL_LATENCY,
    PoolPlan,
    axis_table,
    pool_slots,
)
from accel.spec.shapes import ceil_div, window_2d

__all__ = ["MaxPool"]



class MaxPool(wiring.Component):
    """Max pooling of channel-group pixels (TFLite ``MAX_POOL_2D`` semantics).

    Parameters
    ----------
    height, width : int
        Input image size, >= 1.
    channels : int
        Channels ``C``, >= 1; a pixel is ``ceil(C / lanes)`` beats in and out.
    pool : int or (int, int)
        Window size ``(ph, pw)``.
    strides : int or (int, int), optional
        Window step ``(sh, sw)``; default ``pool`` (as Keras).
    padding : str
        ``"valid"`` or ``"same"``; padded positions never win.
    lanes : int
        Channels per beat, >= 1.
    bits : int
        Width of a (signed) value, >= 2.
    zero_point : int
        Fill value of the lanes past ``channels`` in the last group (the tensor's zero point).

    Members
    -------
    i : In(stream.Signature(pixel_layout(lanes, bits)))
        Input pixels at full resolution; ``last`` is ignored.
    o : Out(stream.Signature(pixel_layout(lanes, bits)))
        Pooled pixels in raster order; ``last`` on the final beat of each frame.

    Attributes
    ----------
    out_shape : (int, int)
        Output rows and columns.
    groups : int
        Beats per pixel.
    slots : int
        Pooled rows of partial maxima held in block RAM.
    latency : int
        Cycles from the cycle ``i`` takes the beat that ends the last input row of a pooled
        output row to the cycle that row's first beat is offered on ``o``, with ``o`` ready; the
        row's other beats follow one per cycle (:data:`accel.plan.blocks.POOL_LATENCY`).
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
        zero_point: int = 0,
    ) -> None:
        self.height = check_int("height", height, 1)
        self.width = check_int("width", width, 1)
        self.channels = check_int("channels", channels, 1)
        self.pool = check_pair("pool", pool)
        self.strides = self.pool if strides is None else check_pair("strides", strides)
        self.padding = check_padding(padding)
        self.lanes = check_int("lanes", lanes, 1)
        self.bits = check_int("bits", bits, 2)
        lo, hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        self.zero_point = check_int("zero_point", zero_point, lo, hi)
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
        self.slots = pool_slots(self.window.rows)
        self.latency = POOL_LATENCY
        layout = pixel_layout(self.lanes, self.bits)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    @classmethod
    def from_plan(cls, plan: PoolPlan) -> MaxPool:
        """The block of a stage's :class:`~accel.plan.blocks.PoolPlan`."""
        return cls(**plan.component_args())

    def elaborate(self, platform):
        m = Module()

        H, W, G, L, bits = self.height, self.width, self.groups, self.lanes, self.bits
        OH, OW = self.out_shape
        NS = self.slots
        OWG = OW * G
        depth = NS * OWG
        valid_lanes = self.channels - (G - 1) * L
        n_max_r = NS - 1
        n_max_c = max(n for _, n, _, _, _ in self._cols)

        m.submodules.partial = partial = memory.Memory(
            shape=unsigned(L * bits), depth=depth, init=[]
        )
        wr = partial.write_port()
        # Not transparent: the read-modify-write forwards the writes its reads cannot see.
        rd_acc = partial.read_port()
        rd_out = partial.read_port()

        def table(entries, column, shape):
            return Array(Const(entry[column], shape) for entry in entries)

        # --- accumulate: the position of the input beat and its update ---------------------------
        r = Signal(range(H))
        c = Signal(range(W))
        g = Signal(range(G))
        k = Signal(range(max(n_max_r, 1)))  # output row within the rows containing r
        p = Signal(range(max(n_max_c, 1)))  # output column within the columns containing c
        acc_base = Signal(range(NS))  # slot of output row 0 of the frame being accumulated
        inflight = Signal(range(NS + 1))  # slots claimed and not yet emitted
        ready_rows = Signal(range(NS + 1))  # complete output rows not yet emitted

        rows, cols = self._rows, self._cols
        r_next = Mux(r == H - 1, 0, r + 1)
        c_next = Mux(c == W - 1, 0, c + 1)
        # Per-row and per-column facts, looked up for the next row / column when r / c moves
        # and held in registers: looked up from r and c in the same cycle, the tables sat in
        # series with the handshake logic.
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
        # The next row's ``opens``, so ``may_go`` below needs no table lookup.
        opens_nx = held([(rows[(i + 1) % H][3],) for i in range(H)], 0, range(NS + 1),
                        row_facts, "opens_nx")
        lo_c = held(cols, 0, range(OW), col_facts, "lo_c")
        n_c = held(cols, 1, range(n_max_c + 1), col_facts, "n_c")
        first_c = held(cols, 2, range(n_max_c + 1), col_facts, "first_c")
        # In no window: n_r == 0 / n_c == 0, held as flags so that i.ready compares nothing.
        none_r = held([(n == 0,) for _, n, *_ in rows], 0, 1, row_facts, "none_r")
        none_c = held([(n == 0,) for _, n, *_ in cols], 0, 1, col_facts, "none_c")

        # The handshake reads registered flags only, each updated with the state it
        # summarises (so i.ready is one LUT level from flip-flops, and nothing upstream waits
        # on the counters' comparisons; i.ready drives the requantizer FIFO's level logic):
        #   k_last  k == n_r - 1        p_last  p == n_c - 1
        #   row_start  c == 0, g == 0, k == 0, p == 0 (the beat claims its rows' slots)
        #   may_go  not row_start, or inflight + opens <= NS (the row's slots are free)
        k_last = Signal(init=rows[0][1] <= 1)
        p_last = Signal(init=cols[0][1] <= 1)
        row_start = Signal(init=1)
        may_go = Signal(init=1)
        updates = ~none_r & ~none_c
        last_update = none_r | none_c | (k_last & p_last)
        go = self.i.valid & may_go  # one update (or a pass) happens this cycle
        take = go & last_update
        m.d.comb += self.i.ready.eq(may_go & last_update)
        last_beat_of_row = (c == W - 1) & (g == G - 1)

        with m.If(go & ~last_update):
            m.d.sync += row_start.eq(0)
            with m.If(p_last):
                m.d.sync += [p.eq(0), k.eq(k + 1), p_last.eq(n_c == 1),
                             k_last.eq(k + 2 == n_r)]
            with m.Else():
                m.d.sync += [p.eq(p + 1), p_last.eq(p + 2 == n_c)]
        # The frame's last beat (g, c, r all at their ends), a flag registered with the
        # counters, so that the frame's end (acc_base's enable) is take & a flip-flop rather
        # than take & three counter comparisons.
        frame_last = Signal(init=G == 1 and W == 1 and H == 1)
        g_new = Mux(g == G - 1, 0, g + 1)
        c_new = Mux(g == G - 1, c_next, c)
        r_new = Mux((g == G - 1) & (c == W - 1), r_next, r)
        with m.If(take):
            m.d.sync += [k.eq(0), p.eq(0), g.eq(g_new),
                         k_last.eq(n_r <= 1), p_last.eq(n_c <= 1),
                         row_start.eq(last_beat_of_row),
                         frame_last.eq((g_new == G - 1) & (c_new == W - 1) & (r_new == H - 1))]
            with m.If(g == G - 1):
                m.d.sync += c.eq(c_next)
                m.d.sync += [value.eq(lookup[c_next]) for value, lookup in col_facts]
                m.d.sync += p_last.eq(table(cols, 1, range(n_max_c + 1))[c_next] <= 1)
                with m.If(c == W - 1):
                    m.d.sync += r.eq(r_next)
                    m.d.sync += [value.eq(lookup[r_next]) for value, lookup in row_facts]
                    m.d.sync += k_last.eq(table(rows, 1, range(n_max_r + 1))[r_next] <= 1)
        with m.If(take & frame_last):
            next_base = acc_base + OH % NS
            m.d.sync += acc_base.eq(Mux(next_base >= NS, next_base - NS, next_base))

        # --- read-modify-write, POOL_RMW_STAGES deep: A (slot and column registered) -> B
        # (read address; the read data registered at the end of B) -> C (the comparisons
        # registered) -> D (the new maximum selected, registered) -> E (write). The read in A
        # cannot see the writes of the four cycles before E, so the word is forwarded: B takes
        # the two older ones (in E, and written the cycle before) in place of the read data, C
        # the one in E (two beats back) in place of that, and D the newest (the previous beat's
        # maximum, in E next cycle). No comparator sits in the D -> E loop of back-to-back
        # updates of one word: C compares the beat with everything the previous beat's maximum
        # can be (that beat's value and its own base), and D picks the right comparison with
        # the previous beat's registered choice (max is associative: the order of the merges is
        # free).
        slot_sum = acc_base + lo_mod + k  # < 3 * NS
        slot_a = Signal(range(NS))
        col_a = Signal(range(OW))
        g_a = Signal(range(G))
        x_a, x_b, x_c, x_d = (Signal(L * bits, name=f"x_{s}") for s in "abcd")
        v_a, v_b, v_c, v_d = (Signal(name=f"v_{s}") for s in "abcd")
        # first in-image pixel of its window: the beat's value is the new maximum
        new_a, new_b, new_c, new_d = (Signal(name=f"new_{s}") for s in "abcd")
        done_a, done_b, done_c, done_d, done_e = (Signal(name=f"done_{s}") for s in "abcde")
        completes_a, completes_b, completes_c, completes_d, completes_e = (
            Signal.like(completes, name=f"completes_{s}") for s in "abcde")
        addr_b, addr_c, addr_d = (Signal(range(depth), name=f"addr_{s}") for s in "bcd")
        data_c = Signal(L * bits)
        m.d.sync += [
            slot_a.eq(Mux(slot_sum >= 2 * NS, slot_sum - 2 * NS,
                          Mux(slot_sum >= NS, slot_sum - NS, slot_sum))),
            col_a.eq(lo_c + p),
            g_a.eq(g),
            x_a.eq(self.i.payload.data.as_value()),
            v_a.eq(go & updates),
            new_a.eq((k >= first_r) & (p >= first_c)),
            done_a.eq(take & last_beat_of_row),
            completes_a.eq(completes),
        ]
        m.d.comb += [rd_acc.addr.eq(slot_a * OWG + col_a * G + g_a), rd_acc.en.eq(1)]
        m.d.sync += [
            addr_b.eq(rd_acc.addr), x_b.eq(x_a), v_b.eq(v_a), new_b.eq(new_a),
            done_b.eq(done_a), completes_b.eq(completes_a),
            addr_c.eq(addr_b), x_c.eq(x_b), v_c.eq(v_b), new_c.eq(new_b),
            done_c.eq(done_b), completes_c.eq(completes_b),
            addr_d.eq(addr_c), x_d.eq(x_c), v_d.eq(v_c), new_d.eq(new_c),
            done_d.eq(done_c), completes_d.eq(completes_c),
            done_e.eq(done_d), completes_e.eq(completes_d),
        ]
        # The write pipeline: E (written this cycle), then 1 (written the cycle before).
        e_en, w1_en = Signal(), Signal()
        e_addr, w1_addr = Signal(range(depth)), Signal(range(depth))
        e_data = Signal(L * bits)
        w1_data = Signal(L * bits)
        hit1_c, hit1_d = Signal(), Signal()  # the word is the previous beat's (in E after D)
        hit2_c = Signal()  # the word is the one two beats back (in E during C)
        m.d.sync += [
            w1_en.eq(e_en), w1_addr.eq(e_addr), w1_data.eq(e_data),
            hit1_c.eq(v_c & (addr_c == addr_b)),
            hit2_c.eq(v_d & (addr_d == addr_b)),
            hit1_d.eq(hit1_c),
            data_c.eq(Mux(e_en & (e_addr == addr_b), e_data,
                          Mux(w1_en & (w1_addr == addr_b), w1_data, rd_acc.data))),
        ]
        base_d = Signal(L * bits)  # the word as D would merge it, unless hit1_d
        hit2_d, hit1_e = Signal(), Signal()
        m.d.sync += [
            base_d.eq(Mux(hit2_c, e_data, data_c)),
            hit2_d.eq(hit2_c),
            hit1_e.eq(hit1_d),
        ]
        maxima, picks = [], []
        for lane in range(L):
            def lane_of(word, lane=lane):
                return word[lane * bits : (lane + 1) * bits].as_signed()

            # C compares the beat with registers only (a multiplexer in front of the carry
            # chain was the critical path); D picks among the results:
            #   gt_e     beat > the word in E (two beats back)
            #   gt_data  beat > the forwarded or read word
            #   gt_bd    beat > the base of the beat in D (the previous beat)
            #   gt_x     beat > the previous beat's value
            gt_e, gt_data, gt_bd, gt_x = (Signal(name=f"{n}{lane}")
                                          for n in ("gt_e", "gt_data", "gt_bd", "gt_x"))
            picked_e = Signal(name=f"picked_e{lane}")  # the beat in E took its own value
            m.d.sync += [
                gt_e.eq(lane_of(x_c) > lane_of(e_data)),
                gt_data.eq(lane_of(x_c) > lane_of(data_c)),
                gt_bd.eq(lane_of(x_c) > lane_of(base_d)),
                gt_x.eq(lane_of(x_c) > lane_of(x_d)),
            ]
            # beat > its base, when the previous beat has another word
            gt_base = Mux(hit2_d, gt_e, gt_data)
            # beat > what the previous beat (now in E) merged with: the word two beats back
            # when that beat hit it, else its base
            gt_merged = Mux(hit1_e, gt_e, gt_bd)
            pick = new_d | Mux(hit1_d, Mux(picked_e, gt_x, gt_merged), gt_base)
            merged = Mux(hit1_d, lane_of(e_data), lane_of(base_d))
            maxima.append(Mux(pick, lane_of(x_d), merged))
            picks.append((picked_e, pick))
        m.d.sync += [picked.eq(pick) for picked, pick in picks]
        m.d.sync += [e_en.eq(v_d), e_addr.eq(addr_d), e_data.eq(Cat(*maxima))]
        m.d.comb += [wr.en.eq(e_en), wr.addr.eq(e_addr), wr.data.eq(e_data)]

        # --- emit: complete rows are read out into a FIFO, as far as its credits allow -------
        m.submodules.fifo = out_fifo = fifo.SyncFIFOBuffered(width=L * bits + 1,
                                                              depth=POOL_FIFO_DEPTH)
        # Beats issued and not yet delivered on o (in the read pipeline or the FIFO).
        used = Signal(range(POOL_FIFO_DEPTH + 1))
        e_addr = Signal(range(depth))
        e_pos = Signal(range(OWG))  # column * G + group within the output row
        e_row = Signal(range(OH))
        e_grp = Signal(range(G))
        issue = (ready_rows != 0) & (used < POOL_FIFO_DEPTH)
        row_emitted = issue & (e_pos == OWG - 1)
        deliver = self.o.valid & self.o.ready
        m.d.sync += used.eq(used + issue - deliver)
        m.d.comb += [rd_out.en.eq(1), rd_out.addr.eq(e_addr)]
        with m.If(issue):
            m.d.sync += [
                e_addr.eq(Mux(e_addr == depth - 1, 0, e_addr + 1)),
                e_pos.eq(Mux(row_emitted, 0, e_pos + 1)),
                e_grp.eq(Mux(e_grp == G - 1, 0, e_grp + 1)),
            ]
            with m.If(row_emitted):
                m.d.sync += e_row.eq(Mux(e_row == OH - 1, 0, e_row + 1))

        # may_go for the values row_start, inflight and opens take at the end of this cycle. The
        # sums are formed from registers for each of the three things this cycle can do (no
        # update, an update that keeps the beat, the beat taken), and ``go``/``take``, which
        # follow i.valid, only pick one at the end: in series with the handshake, the adders set
        # the clock (on iCE40, from the requantizer FIFO's r_rdy). The emit side's row_emitted,
        # also from registers, enters the last comparison only. A beat kept for its next update
        # clears row_start; a beat taken sets it at the end of a row, whose slots (opens_nx)
        # must then be free.
        claim = Mux(row_start, opens, 0)  # the slots a beat moving here claims

        def fits(wanted):
            return (wanted <= NS) | (row_emitted & (wanted == NS + 1))

        inflight_kept = inflight - row_emitted
        m.d.sync += [
            inflight.eq(Mux(go & row_start, inflight_kept + opens, inflight_kept)),
            may_go.eq(Mux(go,
                          ~last_update | ~last_beat_of_row
                          | fits(inflight + claim + opens_nx),
                          ~row_start | fits(inflight + opens))),
            ready_rows.eq(ready_rows + Mux(done_e, completes_e, 0) - row_emitted),
        ]

        ev1, e_lastg1, e_last1 = Signal(), Signal(), Signal()
        m.d.sync += [
            ev1.eq(issue),
            e_lastg1.eq(e_grp == G - 1),
            e_last1.eq(row_emitted & (e_row == OH - 1)),
        ]
        lanes_out = []
        for lane in range(L):
            value = rd_out.data[lane * bits : (lane + 1) * bits]
            if lane >= valid_lanes:
                value = Mux(e_lastg1, self.zero_point, value)[:bits]
            lanes_out.append(value)
        ev2 = Signal()
        word2 = Signal(L * bits + 1)
        m.d.sync += [ev2.eq(ev1), word2.eq(Cat(*lanes_out, e_last1))]
        m.d.comb += [
            out_fifo.w_en.eq(ev2),
            out_fifo.w_data.eq(word2),
            self.o.valid.eq(out_fifo.r_rdy),
            out_fifo.r_en.eq(self.o.ready),
            self.o.payload.data.eq(out_fifo.r_data[: L * bits]),
            self.o.payload.last.eq(out_fifo.r_data[L * bits]),
        ]
        return m
