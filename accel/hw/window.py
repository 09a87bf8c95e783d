"""Sliding-window generator (line buffer): channel-group pixels in, convolution windows out.

Buffering scheme
----------------
The block keeps ``NR = kh + sh - 1`` input rows (``kh - 1`` rows of history plus what a stride of
``sh`` needs) in one :class:`~amaranth.lib.memory.Memory` of ``NR * width * groups`` words of
``lanes * bits`` bits, with one write port (the input) and one synchronous read port (the
output), so it maps to a simple dual-port block RAM. Input row ``R`` (counted over all frames,
which follow each other with no gap) lives in slot ``R mod NR``; the writer therefore just
increments its address, wrapping at the end of the memory.

The writer and the reader are decoupled by one counter, ``ahead``: the number of complete input
rows written at or after ``Rlow``, the first in-image row that the reader's current output row
needs (the row of its topmost in-image tap). ``ahead`` is between ``-sh`` (the reader has
skipped ahead, e.g. past rows that ``valid`` padding drops or that a stride larger than the
kernel never reads) and ``NR``.

- The reader issues a beat when its tap is in the padding, or lies in a complete row
  (``r - Rlow < ahead``), or in the row being written and at a position already written
  (``r - Rlow == ahead`` and ``(c, g)`` before the write pointer). So a window can start as
  soon as the pixels it needs have arrived, not a whole row later. The test is a register
  computed the cycle before from the reader's next position and the writer's state, so a
  pixel is seen a cycle after its write.
- The writer may fill row ``Rlow + ahead`` when its slot is free, i.e. ``ahead < NR``. When
  ``ahead == NR`` its slot is ``Rlow``'s own, and the writer may still fill the columns left of
  the current window (``column < c0``) provided the current output row is the last that needs
  row ``Rlow``: no later window of this row reads them. So while the reader works on one
  output row, the writer fills the ``sh`` rows the next output row adds (the last of them
  behind the reader, column by column); it waits only when the buffer is full.

Neither side ever deadlocks: the reader needs rows up to ``Rlow + kh - 1 < Rlow + NR``, which
the writer can always reach; when the writer is blocked (``ahead == NR``) every row the reader
needs is complete. The input ``last`` bit is not checked; positions are counted (``height``,
``width`` and ``channels`` are the contract).

Output order and throughput
---------------------------
For each output pixel in raster order, for each tap ``(i, j)`` in row-major order, for each
channel group ``g``: one beat with ``x[r0 + i, c0 + j, g * lanes + k]`` in lane ``k``, where
``(r0, c0)`` is the window's top-left corner from :func:`accel.spec.shapes.window_2d`; the zero
point where the tap is in the padding or the lane is past ``channels``. This is the ``(kh, kw,
cin)`` flattening of a Keras kernel. The read side is a two-stage pipeline (address -> block
RAM -> output register) that stalls as a whole on ``windows.ready``: one beat per cycle while
the rows are there and the consumer is ready.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.layouts import check_int, check_padding, check_pair, pixel_layout, window_layout
from accel.plan.blocks import (
    WINDOW_LATENCY,
    WINDOW_READ_LATENCY,
    WindowPlan,
    line_buffer_rows,
)
from accel.spec.shapes import ceil_div, window_2d

__all__ = ["WindowGenerator"]


class WindowGenerator(wiring.Component):
    """Line buffer that turns a stream of pixels into the stream of convolution windows.

    Parameters
    ----------
    height, width : int
        Input image size, >= 1.
    channels : int
        Input channels ``C``, >= 1; a pixel is ``ceil(C / lanes)`` beats.
    kernel : int or (int, int)
        Window size ``(kh, kw)``.
    strides : int or (int, int)
        Window step ``(sh, sw)``; default 1.
    padding : str
        ``"valid"`` or ``"same"`` (TensorFlow's rules, :func:`accel.spec.shapes.window_2d`).
    lanes : int
        Channels per beat, >= 1.
    zero_point : int
        Value of padding taps and of lanes past ``channels`` (the input zero point).
    bits : int
        Width of a (signed) value, >= 2.

    Members
    -------
    pixels : In(stream.Signature(pixel_layout(lanes, bits)))
        Input pixels, channel groups innermost, frames back to back; ``last`` is ignored.
    windows : Out(stream.Signature(window_layout(lanes, bits)))
        One beat per (output pixel, tap, channel group). ``first``/``last`` mark the first and
        last beat of a window, ``frame_last`` the last beat of a frame.

    Attributes
    ----------
    out_shape : (int, int)
        Output rows and columns.
    groups : int
        Beats per pixel, ``ceil(channels / lanes)``.
    beats_per_window : int
        ``kh * kw * groups``.
    buffer_rows : int
        Input rows held in block RAM, ``kh + sh - 1``
        (:func:`accel.plan.blocks.line_buffer_rows`).
    latency : int
        Cycles from the cycle ``pixels`` takes a beat to the cycle the first window beat that
        reads it is offered on ``windows``, when the reader is waiting for that pixel and
        ``windows`` is ready: the write, the availability register, the block RAM read and
        the output register (:data:`accel.plan.blocks.WINDOW_LATENCY`).
    read_latency : int
        Of those, the cycles from a beat's read address to the beat on ``windows``.
    """

    def __init__(
        self,
        *,
        height: int,
        width: int,
        channels: int,
        kernel: int | tuple[int, int],
        strides: int | tuple[int, int] = 1,
        padding: str = "valid",
        lanes: int = 1,
        zero_point: int = 0,
        bits: int = 8,
    ) -> None:
        self.height = check_int("height", height, 1)
        self.width = check_int("width", width, 1)
        self.channels = check_int("channels", channels, 1)
        self.kernel = check_pair("kernel", kernel)
        self.strides = check_pair("strides", strides)
        self.padding = check_padding(padding)
        self.lanes = check_int("lanes", lanes, 1)
        self.bits = check_int("bits", bits, 2)
        lo, hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        self.zero_point = check_int("zero_point", zero_point, lo, hi)
        if self.padding == "valid" and (
            self.kernel[0] > self.height or self.kernel[1] > self.width
        ):
            raise ValueError(
                f"kernel {self.kernel} is larger than the input "
                f"{(self.height, self.width)} with padding 'valid'"
            )
        self.window = window_2d(
            (self.height, self.width), self.kernel, self.strides, self.padding
        )
        self.out_shape = self.window.out_shape
        self.groups = ceil_div(self.channels, self.lanes)
        self.beats_per_window = self.kernel[0] * self.kernel[1] * self.groups
        self.buffer_rows = line_buffer_rows(self.kernel, self.strides)
        self.latency = WINDOW_LATENCY
        self.read_latency = WINDOW_READ_LATENCY
        super().__init__({
            "pixels": In(stream.Signature(pixel_layout(self.lanes, self.bits))),
            "windows": Out(stream.Signature(window_layout(self.lanes, self.bits))),
        })

    @classmethod
    def from_plan(cls, plan: WindowPlan) -> WindowGenerator:
        """The block of a stage's :class:`~accel.plan.blocks.WindowPlan`."""
        return cls(**plan.component_args())

    def elaborate(self, platform):
        m = Module()

        H, W, G, L, bits = self.height, self.width, self.groups, self.lanes, self.bits
        KH, KW = self.kernel
        SH, SW = self.strides
        OH, OW = self.out_shape
        pt, pl = self.window.rows.pad_before, self.window.cols.pad_before
        NR = self.buffer_rows
        WG = W * G
        depth = NR * WG
        valid_lanes = self.channels - (G - 1) * L  # lanes in use in the last group

        m.submodules.lines = lines = memory.Memory(
            shape=unsigned(L * bits), depth=depth, init=[]
        )
        wr = lines.write_port()
        rd = lines.read_port()

        # Complete rows written at or after Rlow (see the module documentation).
        ahead = Signal(range(-SH, NR + 1))

        # --- reader: counters of the beat being issued ------------------------------------------
        orow = Signal(range(OH))
        ocol = Signal(range(OW))
        ti = Signal(range(KH))
        tj = Signal(range(KW))
        tg = Signal(range(G))
        r0_last, c0_last = (OH - 1) * SH - pt, (OW - 1) * SW - pl
        r0 = Signal(range(-pt, r0_last + 1), init=-pt)  # window top row, in image coordinates
        c0 = Signal(range(-pl, c0_last + 1), init=-pl)  # window left column
        base_lo = Signal(range(depth))  # address of row Rlow's slot
        s_lo = Signal(range(NR))  # ... and that slot's number
        s_i = Signal(range(NR))  # the slot of tap row r0 + ti (Rlow's while r < 0)

        # The tap's position, kept in registers rather than derived from the counters in the
        # same cycle: r0 + ti, c0 + tj, (c0 + tj) * G + tg and c0 * G each cost an adder, and in
        # series with the comparisons below they made this block the slowest path of the
        # accelerator (33.6 MHz on iCE40). Each is updated alongside the counters it stands for;
        # cg1 and c0gs are the column positions the next beat and the next window start at.
        r = Signal(range(-pt, max(r0_last + KH, 1)), init=-pt)  # r0 + ti
        c = Signal(range(-pl, max(c0_last + KW, 1)), init=-pl)  # c0 + tj
        cg_lo, cg_hi = -pl * G, (c0_last + KW) * G
        c0g = Signal(range(cg_lo, max(c0_last * G + 1, 1)), init=cg_lo)  # c0 * G
        c0gs_hi = (c0_last + SW) * G + 1
        c0gs = Signal(range(cg_lo + SW * G, max(c0gs_hi, cg_lo + SW * G + 1)),
                      init=cg_lo + SW * G)  # c0g + SW * G: the next window's
        cg = Signal(range(cg_lo, max(cg_hi, 1)), init=cg_lo)  # c * G + tg
        cg1 = Signal(range(cg_lo + 1, max(cg_hi + 1, 2)), init=cg_lo + 1)  # cg + 1
        rel = Signal(range(-pt, KH), init=-pt)  # r - Rlow: r0 + ti - max(r0, 0)
        rel1 = Signal(range(-pt + 1, KH + 1), init=-pt + 1)  # rel + 1: the next tap row's
        # rel at this output row's next window: min(r0, 0), as r0 is (-pt at the start)
        rel_win = Signal(range(-pt, 1), init=-pt)


        def pad_rows(r_):
            return (r_ < 0) | (r_ >= H)

        def pad_cols(c_):
            return (c_ < 0) | (c_ >= W)

        # Tap flags kept in registers: ``pad_r``/``pad_c`` (the tap is in the top/bottom or
        # left/right padding) and ``last_*`` are each computed one cycle ahead from the
        # counters' next values (a comparator per outcome of this cycle's handshakes, which
        # then only select), so no comparator chain runs from a counter through ``issue``.
        pad_r = Signal(init=-pt < 0 or -pt >= H)
        pad_c = Signal(init=-pl < 0 or -pl >= W)
        pad = pad_r | pad_c
        last_g = Signal(init=G == 1)
        last_j = Signal(init=KW == 1)
        last_i = Signal(init=KH == 1)
        last_col = Signal(init=OW == 1)
        last_row = Signal(init=OH == 1)
        first = Signal(init=1)
        last_win = last_i & last_j & last_g
        row_end = last_win & last_col
        # The same two, each in one register (set with the last_* flags), for the handshake
        # logic: issue & win_end and issue & at_row_end are then one LUT from flip-flops.
        win_end = Signal(init=G == 1 and KW == 1 and KH == 1)
        at_row_end = Signal(init=G == 1 and KW == 1 and KH == 1 and OW == 1)

        # The tap's read address (base of its row's slot + cg), kept in a register and moved
        # by a register each time: +1 within a tap row, ``step`` to the next tap row (back
        # KW * G - 1 and on by the slot step, none while r < 0), ``win_addr`` to the next
        # window (Rlow's slot + c0gs), Rlow's next slot + cg_lo to the next output row. So the
        # block RAM address comes from flip-flops and each update is one adder.
        addr = Signal(range(cg_lo, depth + max(cg_hi, 1)), init=cg_lo)
        back = 1 - KW * G
        step_lo, step_hi = min(back, back + WG - depth), back + WG
        step0 = back + (WG - depth if NR == 1 else WG) if -pt >= 0 else back
        step = Signal(range(step_lo, step_hi + 1), init=step0)
        win_addr = Signal(range(cg_lo + SW * G, depth + max(c0gs_hi, 1)),
                          init=cg_lo + SW * G)

        # Writer position in its current row (column * G + group), the next one, and address.
        w_pos = Signal(range(WG))
        w_posn = Signal(range(WG), init=1 % WG)  # w_pos after a write: (w_pos + 1) mod WG
        w_last = Signal(init=WG == 1)  # w_pos == WG - 1
        w_addr = Signal(range(depth))

        # Whether the beat at the reader's counters can go (see the module documentation):
        # pad | (rel < ahead) | ((rel == ahead) & (cg < w_pos)), kept in a register computed
        # the cycle before (below), so that ``issue``, which enables every reader register,
        # is one LUT from flip-flops.
        avail = Signal(init=(-pt < 0 or -pt >= H or -pl < 0 or -pl >= W) or -pt < 0)

        advance = ~self.windows.valid | self.windows.ready
        issue = Signal()
        m.d.comb += [
            issue.eq(advance & avail),
            rd.en.eq(advance),
            rd.addr.eq(Mux(pad, 0, addr)),
        ]

        def wrap(value):
            # value < 2 * depth: one conditional subtraction is a modulo.
            return Mux(value >= depth, value - depth, value)

        def wrap_slot(value):
            return Mux(value >= NR, value - NR, value)

        # Rows by which Rlow advances when the reader leaves this output row, Rlow's slot
        # after it and rel there. They depend only on r0, base_lo and last_row, which change
        # only when an output row ends; with at least two beats per output row they have
        # been stable for a cycle whenever a row ends, so registers computed from them in the
        # cycle before hold the right values and take the adder, the row step and the wrap (a
        # carry chain and a comparison in series) off the paths into addr, ahead and avail.
        frame_step = (H - max(r0_last, 0)) % NR
        row_step = Signal(range(SH + 1))
        m.d.comb += row_step.eq(Mux(r0 + SH > 0, Mux(r0 >= 0, SH, r0 + SH), 0))
        r0_next = Mux(last_row, -pt, r0 + SH)
        calc = {
            "base_lo_next": (base_lo, Mux(last_row, wrap(base_lo + frame_step * WG),
                                          wrap(base_lo + row_step * WG))),
            "s_lo_next": (s_lo, Mux(last_row, wrap_slot(s_lo + frame_step),
                                    wrap_slot(s_lo + row_step))),
            "rows_released": (Signal(range(max(SH, H) + 1)),
                              Mux(last_row, H - max(r0_last, 0), row_step)),
        }
        calc["rel_row"] = (rel, Mux(r0_next < 0, r0_next, 0))
        # rel at the next row start plus the rows released: comparing it with ahead is
        # comparing that rel with ahead after the release.
        calc["rel_row_rr"] = (Signal(range(-pt, KH + max(SH, H) + 1)),
                              calc["rel_row"][1] + calc["rows_released"][1])
        calc["rows_released1"] = (Signal(range(-1, max(SH, H) + 1)), calc["rows_released"][1] - 1)
        held = {}
        for name, (like, value) in calc.items():
            if self.beats_per_window * OW >= 2:
                held[name] = Signal.like(like, name=name)
                m.d.sync += held[name].eq(value)
            else:
                held[name] = value
        base_lo_next, s_lo_next = held["base_lo_next"], held["s_lo_next"]
        rows_released, rows_released1 = held["rows_released"], held["rows_released1"]
        rel_row, rel_row_rr = held["rel_row"], held["rel_row_rr"]

        # The four ways the reader moves on after a beat: within a tap row (the next group or
        # column), to the next tap row, to the next window, to the next output row. Each
        # register's value after a beat issues is given for each; ``issue`` only enables.
        s_tap, s_row, s_win = ~(last_g & last_j), ~last_i, ~last_col

        def by_case(within, tap_row, window, out_row):
            return Mux(s_tap, within, Mux(s_row, tap_row, Mux(s_win, window, out_row)))

        tg_i = Mux(last_g, 0, tg + 1)
        tj_i = Mux(last_g, Mux(last_j, 0, tj + 1), tj)
        ti_i = Mux(s_tap, ti, Mux(last_i, 0, ti + 1))
        ocol_i = Mux(row_end, 0, Mux(last_win, ocol + 1, ocol))
        orow_i = Mux(row_end, Mux(last_row, 0, orow + 1), orow)
        c_next_win = c0 + SW
        win_end_i = (tg_i == G - 1) & (tj_i == KW - 1) & (ti_i == KH - 1)
        # The slot of the next tap row: Rlow's next while r < 0 (Rlow is row 0's slot).
        s_i_next = Mux(r >= 0, Mux(s_i == NR - 1, 0, s_i + 1), s_i)
        updates = [
            (tg, tg_i), (tj, tj_i), (ti, ti_i), (ocol, ocol_i), (orow, orow_i),
            (first, (ti_i == 0) & (tj_i == 0) & (tg_i == 0)),
            (last_g, tg_i == G - 1), (last_j, tj_i == KW - 1), (last_i, ti_i == KH - 1),
            (last_col, ocol_i == OW - 1), (last_row, orow_i == OH - 1),
            (win_end, win_end_i),
            (at_row_end, win_end_i & (ocol_i == OW - 1)),
            (r0, Mux(row_end, r0_next, r0)),
            (c0, by_case(c0, c0, c_next_win, -pl)),
            (base_lo, Mux(row_end, base_lo_next, base_lo)),
            (s_lo, Mux(row_end, s_lo_next, s_lo)),
            (s_i, by_case(s_i, s_i_next, s_lo, s_lo_next)),
            (r, by_case(r, r + 1, r0, r0_next)),
            (c, by_case(Mux(last_g, c + 1, c), c0, c_next_win, -pl)),
            (c0g, by_case(c0g, c0g, c0gs, cg_lo)),
            (c0gs, by_case(c0gs, c0gs, c0gs + SW * G, cg_lo + SW * G)),
            (cg, by_case(cg1, c0g, c0gs, cg_lo)),
            (cg1, by_case(cg1 + 1, c0g + 1, c0gs + 1, cg_lo + 1)),
            (rel, by_case(rel, rel1, rel_win, rel_row)),
            (rel1, by_case(rel1, rel1 + 1, rel_win + 1, rel_row + 1)),
            (rel_win, Mux(row_end, rel_row, rel_win)),
            (addr, by_case(addr + 1, addr + step, win_addr, base_lo_next + cg_lo)),
            (win_addr, by_case(win_addr, win_addr, win_addr + SW * G,
                               base_lo_next + cg_lo + SW * G)),
        ]
        # The pad flags and the tap-row step of the next beat, each a comparison of a
        # register with a constant per case.
        pad_r_cases = [pad_r, (r < -1) | (r >= H - 1), pad_rows(r0),
                       Mux(last_row, int(-pt < 0 or -pt >= H), (r0 < -SH) | (r0 >= H - SH))]
        pad_c_cases = [Mux(last_g, (c < -1) | (c >= W - 1), pad_c), pad_cols(c0),
                       (c0 < -SW) | (c0 >= W - SW), int(-pl < 0 or -pl >= W)]

        def step_for(nonneg, slot_last):
            # From the last tap of a row to the first of the next: back, then on a slot
            # (wrapping) unless the row is above the image.
            return Mux(nonneg, Mux(slot_last, back + WG - depth, back + WG), back)

        step_i = by_case(
            step,
            step_for(r >= -1, Mux(r >= 0, s_i == (NR - 2) % NR, s_i == NR - 1)),
            step_for(r0 >= 0, s_lo == NR - 1),
            step_for(Mux(last_row, int(-pt >= 0), r0 >= -SH), s_lo_next == NR - 1))
        updates += [(pad_r, by_case(*pad_r_cases)), (pad_c, by_case(*pad_c_cases)), (step, step_i)]
        with m.If(issue):
            m.d.sync += [reg.eq(value) for reg, value in updates]

        # --- writer ----------------------------------------------------------------------------
        # The current output row is the last one that reads row Rlow, and the writer is left of
        # the current window: both kept in registers (updated from the values the counters take
        # next), so pixels.ready is one LUT level from flip-flops and the stage before does not
        # wait on the comparisons' carry chains.
        releases = Signal(init=(OH == 1) | (-pt + SH > 0))
        behind = Signal(init=0 < cg_lo)
        row_released = issue & at_row_end
        m.d.comb += self.pixels.ready.eq(
            (ahead < NR) | ((ahead == NR) & releases & behind)
        )
        write = self.pixels.valid & self.pixels.ready
        m.d.comb += [
            wr.en.eq(write),
            wr.addr.eq(w_addr),
            wr.data.eq(self.pixels.payload.data.as_value()),
        ]
        row_written = write & w_last
        with m.If(write):
            m.d.sync += [w_pos.eq(w_posn), w_posn.eq(Mux(w_posn == WG - 1, 0, w_posn + 1)),
                         w_addr.eq(Mux(w_addr == depth - 1, 0, w_addr + 1)),
                         w_last.eq(w_posn == WG - 1)]
        m.d.sync += releases.eq(Mux(row_released,
                                    Mux(last_row, (OH == 1) | (-pt + SH > 0),
                                        (orow == OH - 2) | (r0 > -2 * SH)),
                                    releases))

        def left_of(x):
            # w_pos after this cycle's write < x.
            return Mux(write, w_posn < x, w_pos < x)

        m.d.sync += behind.eq(Mux(issue & win_end, Mux(last_col, left_of(cg_lo), left_of(c0gs)),
                                  left_of(c0g)))

        # ``ahead`` after this cycle: a row written adds one, a row end releases rows; the
        # handshakes only select among values computed from registers.
        ahead_rel = Signal(range(-SH - H - 1, NR + 1))  # ahead after a row release
        ahead_rel1 = Signal(range(-SH - H, NR + 2))  # ... and a row written
        m.d.comb += [ahead_rel.eq(ahead - rows_released), ahead_rel1.eq(ahead - rows_released1)]
        m.d.sync += ahead.eq(Mux(row_released, Mux(row_written, ahead_rel1, ahead_rel),
                                 Mux(row_written, ahead + 1, ahead)))

        # ``avail`` for the next cycle, from this cycle's registers: the reader's position
        # after this cycle (a beat that issues moves it, case by case, every comparison
        # between registers; a row end also releases rows, which rel_row_rr = rel_row +
        # rows_released accounts for) against the writer's state at the start of this cycle.
        # This cycle's write shows a cycle later, which can only delay a beat (writes only
        # make beats available; the rows a row end releases are the reader's own), by one
        # cycle: WINDOW_LATENCY counts it. In exchange neither the write nor the variants it
        # would select are on the path, and ``issue`` only picks between two values.
        pads = [pr | pc for pr, pc in zip(pad_r_cases, pad_c_cases, strict=True)]
        # (rel < ahead) | ((rel == ahead) & (cg < w_pos)) is one comparison of (rel, cg) with
        # (ahead, w_pos) in lexicographic order: of the concatenations, rel and ahead above
        # the low bits that hold cg and w_pos (both below WG where it matters; a tap with cg
        # < 0 is in the padding). One carry chain, no adder.
        low_bits = max(WG - 1, 1).bit_length()
        writer = Cat(w_pos, Const(0, low_bits - len(w_pos)), ahead).as_signed()

        def before(rel_, cg_):
            rel_ = Value.cast(rel_)
            if not rel_.shape().signed:  # (a 0 above it: its top bit is not a sign)
                rel_ = Cat(rel_, Const(0, 1))
            low = Const(cg_, low_bits) if isinstance(cg_, int) else cg_[:low_bits]
            return Cat(low, Const(0, low_bits - len(low)), rel_).as_signed() < writer

        if KW * G >= 2:
            # The tap row's last beat goes to the next tap row, window or output row; which,
            # and that beat's rel, cg and pad, are fixed while the reader is in a tap row (they
            # change only as it leaves one), and a tap row of two or more beats has been there
            # a cycle by its last beat: registers computed in the cycle before hold them, and
            # a step is then within the row or out of it, one comparison each.
            out_rel = Signal(range(-pt, KH + max(SH, H) + 1), name="out_rel")
            out_cg = Signal(range(cg_lo, max(c0gs_hi, 1)), name="out_cg")
            out_pad = Signal(name="out_pad")
            m.d.sync += [
                out_rel.eq(Mux(s_row, rel1, Mux(s_win, rel_win, rel_row_rr))),
                out_cg.eq(Mux(s_row, c0g, Mux(s_win, c0gs, cg_lo))),
                out_pad.eq(Mux(s_row, pads[1], Mux(s_win, pads[2], pads[3]))),
            ]
            moved = Mux(s_tap, pads[0] | before(rel, cg1), out_pad | before(out_rel, out_cg))
        else:  # every beat ends a tap row
            moved = by_case(pads[0] | before(rel, cg1), pads[1] | before(rel1, c0g),
                            pads[2] | before(rel_win, c0gs), pads[3] | before(rel_row_rr, cg_lo))
        stay = pad | before(rel, cg)
        m.d.sync += avail.eq(Mux(issue, moved, stay))

        # --- stage 1 (block RAM output) and stage 2 (output register) ------------------------
        v1 = Signal()
        pad1 = Signal()
        last_g1 = Signal()
        first1 = Signal()
        last1 = Signal()
        frame_last1 = Signal()
        with m.If(advance):
            m.d.sync += [
                v1.eq(issue),
                pad1.eq(pad),
                last_g1.eq(last_g),
                first1.eq(first),
                last1.eq(last_win),
                frame_last1.eq(last_win & last_col & last_row),
            ]
            lanes_out = []
            for k in range(L):
                value = rd.data[k * bits : (k + 1) * bits]
                fill = pad1 | last_g1 if k >= valid_lanes else pad1
                lanes_out.append(Mux(fill, self.zero_point, value)[:bits])
            m.d.sync += [
                self.windows.valid.eq(v1),
                self.windows.payload.data.eq(Cat(*lanes_out)),
                self.windows.payload.first.eq(first1),
                self.windows.payload.last.eq(last1),
                self.windows.payload.frame_last.eq(frame_last1),
            ]
        return m
