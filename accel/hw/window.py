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
  soon as the pixels it needs have arrived, not a whole row later.
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

from amaranth import Cat, Module, Mux, Signal, unsigned
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
        ``windows`` is ready: the write, the block RAM read and the output register
        (:data:`accel.plan.blocks.WINDOW_LATENCY`).
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
        base_i = Signal(range(depth))  # address of the slot of tap row r0 + ti (if in image)

        # The tap's position, kept in registers rather than derived from the counters in the
        # same cycle: r0 + ti, c0 + tj, (c0 + tj) * G + tg and c0 * G each cost an adder, and in
        # series with the comparisons below they made this block the slowest path of the
        # accelerator (33.6 MHz on iCE40). Each is updated alongside the counters it stands for.
        r = Signal(range(-pt, max(r0_last + KH, 1)), init=-pt)  # r0 + ti
        c = Signal(range(-pl, max(c0_last + KW, 1)), init=-pl)  # c0 + tj
        cg_lo, cg_hi = -pl * G, (c0_last + KW) * G
        cg = Signal(range(cg_lo, max(cg_hi, 1)), init=cg_lo)  # c * G + tg
        c0g = Signal(range(cg_lo, max(c0_last * G + 1, 1)), init=cg_lo)  # c0 * G
        rel = Signal(range(-pt, KH), init=-pt)  # r - Rlow: r0 + ti - max(r0, 0)

        # Tap and writer flags kept in registers: ``pad``, ``last_*`` and ``available`` are
        # each computed one cycle ahead from the counters' next values (a comparator per
        # outcome of this cycle's handshakes, which then only select), so no comparator chain
        # runs from a counter through ``issue`` into ``ahead`` or a neighbour's handshake.
        def is_pad(r_, c_):
            return (r_ < 0) | (r_ >= H) | (c_ < 0) | (c_ >= W)

        pad0 = -pt < 0 or -pt >= H or -pl < 0 or -pl >= W  # the first tap's
        pad = Signal(init=pad0)
        last_g = Signal(init=G == 1)
        last_j = Signal(init=KW == 1)
        last_i = Signal(init=KH == 1)
        last_col = Signal(init=OW == 1)
        last_row = Signal(init=OH == 1)
        first = Signal(init=1)
        last_win = last_i & last_j & last_g

        # The tap's read address base_i + cg, kept in a register (updated alongside base_i and
        # cg, each of its updates one adder from registers) so the block RAM address comes
        # from flip-flops rather than through the adder.
        addr = Signal(range(cg_lo, depth + max(cg_hi, 1)), init=cg_lo)

        # Writer position in its current row (column * G + group) and address.
        w_pos = Signal(range(WG))
        w_last = Signal(init=WG == 1)  # w_pos == WG - 1
        w_addr = Signal(range(depth))
        # The beat at the reader's counters can go (see the module documentation).
        available = pad | (rel < ahead) | ((rel == ahead) & (cg < w_pos))

        advance = ~self.windows.valid | self.windows.ready
        issue = Signal()
        m.d.comb += [
            issue.eq(advance & available),
            rd.en.eq(advance),
            rd.addr.eq(Mux(pad, 0, addr)),
        ]

        def wrap(value):
            # value < 2 * depth: one conditional subtraction is a modulo.
            return Mux(value >= depth, value - depth, value)

        # Rows by which Rlow advances when the reader leaves this output row, and Rlow's slot
        # after it. They depend only on r0, base_lo and last_row, which change only when an
        # output row ends; with at least two beats per output row they have been stable for a
        # cycle whenever a row ends, so registers computed from them in the cycle before hold
        # the right values and take the adder, the row step and the wrap (a carry chain and a
        # comparison in series) off the path from r0 into base_i and ahead.
        frame_step = (H - max(r0_last, 0)) % NR
        row_step = Signal(range(SH + 1))
        m.d.comb += row_step.eq(Mux(r0 + SH > 0, Mux(r0 >= 0, SH, r0 + SH), 0))
        base_lo_calc = Signal.like(base_lo)
        m.d.comb += base_lo_calc.eq(
            Mux(last_row, wrap(base_lo + frame_step * WG), wrap(base_lo + row_step * WG))
        )
        rows_calc = Signal(range(max(SH, H) + 1))
        m.d.comb += rows_calc.eq(Mux(last_row, H - max(r0_last, 0), row_step))
        if self.beats_per_window * OW >= 2:
            base_lo_next = Signal.like(base_lo)
            rows_released = Signal.like(rows_calc)
            m.d.sync += [base_lo_next.eq(base_lo_calc), rows_released.eq(rows_calc)]
        else:
            base_lo_next, rows_released = base_lo_calc, rows_calc
        row_end = last_win & last_col
        row_released = issue & row_end
        r0_next = Mux(last_row, -pt, r0 + SH)

        # The reader's registers after a beat issues (``_i``); issue selects them.
        counters = (tg, tj, ti, ocol, orow, r0, c0, base_lo, base_i, r, c, cg, c0g, rel)
        nxt = [Signal.like(reg, name=f"{reg.name}_i") for reg in counters]
        m.d.comb += [n.eq(reg) for reg, n in zip(counters, nxt, strict=True)]
        (tg_i, tj_i, ti_i, ocol_i, orow_i, r0_i, c0_i, base_lo_i, base_i_i,
         r_i, c_i, cg_i, c0g_i, rel_i) = nxt
        m.d.comb += [tg_i.eq(Mux(last_g, 0, tg + 1)), cg_i.eq(cg + 1)]
        with m.If(last_g):
            m.d.comb += [tj_i.eq(Mux(last_j, 0, tj + 1)), c_i.eq(c + 1)]
            with m.If(last_j):
                m.d.comb += [ti_i.eq(Mux(last_i, 0, ti + 1)), r_i.eq(r + 1), rel_i.eq(rel + 1),
                             c_i.eq(c0), cg_i.eq(c0g)]
                with m.If(~last_i):
                    with m.If(r >= 0):
                        m.d.comb += base_i_i.eq(wrap(base_i + WG))
                with m.Elif(~last_col):
                    m.d.comb += [ocol_i.eq(ocol + 1), c0_i.eq(c0 + SW), base_i_i.eq(base_lo),
                                 c_i.eq(c0 + SW), c0g_i.eq(c0g + SW * G), cg_i.eq(c0g + SW * G),
                                 r_i.eq(r0), rel_i.eq(Mux(r0 < 0, r0, 0))]
                with m.Else():
                    m.d.comb += [
                        ocol_i.eq(0),
                        c0_i.eq(-pl),
                        c_i.eq(-pl),
                        c0g_i.eq(cg_lo),
                        cg_i.eq(cg_lo),
                        base_lo_i.eq(base_lo_next),
                        base_i_i.eq(base_lo_next),
                        r_i.eq(r0_next),
                        rel_i.eq(Mux(r0_next < 0, r0_next, 0)),
                    ]
                    with m.If(last_row):
                        m.d.comb += [orow_i.eq(0), r0_i.eq(-pt)]
                    with m.Else():
                        m.d.comb += [orow_i.eq(orow + 1), r0_i.eq(r0 + SH)]
        pad_i = is_pad(r_i, c_i)
        # addr after a beat issues, case by case as the counters above: the next group or
        # column adds 1; the next tap row goes back KW * G - 1 and on by the slot step of
        # base_i (none while r < 0, WG, or WG - depth where base_i wraps); a new window starts
        # at base_lo + c0g + SW * G, a new output row at Rlow's next slot + cg_lo.
        back = 1 - KW * G
        addr_tap_row = addr + Mux(r >= 0, Mux(base_i == depth - WG, back + WG - depth, back + WG),
                                  back)
        addr_i = Mux(~(last_g & last_j), addr + 1,
                     Mux(~last_i, addr_tap_row,
                         Mux(~last_col, base_lo + c0g + SW * G, base_lo_next + cg_lo)))
        with m.If(issue):
            m.d.sync += addr.eq(addr_i)
            m.d.sync += [reg.eq(n) for reg, n in zip(counters, nxt, strict=True)]
            m.d.sync += [
                pad.eq(pad_i),
                last_g.eq(tg_i == G - 1),
                last_j.eq(tj_i == KW - 1),
                last_i.eq(ti_i == KH - 1),
                last_col.eq(ocol_i == OW - 1),
                last_row.eq(orow_i == OH - 1),
                first.eq((ti_i == 0) & (tj_i == 0) & (tg_i == 0)),
            ]
        c0g_n = Mux(issue, c0g_i, c0g)

        # The current output row is the last one that reads row Rlow, and the writer is left of
        # the current window: both kept in registers (updated from the values the counters take
        # next), so pixels.ready is one LUT level from flip-flops and the stage before does not
        # wait on the comparisons' carry chains.
        releases = Signal(init=(OH == 1) | (-pt + SH > 0))
        behind = Signal(init=0 < cg_lo)
        releases_n = Mux(row_released,
                         Mux(last_row, (OH == 1) | (-pt + SH > 0),
                             (orow + 1 == OH - 1) | (r0 + 2 * SH > 0)),
                         releases)
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
        w_pos_w = Signal.like(w_pos)  # w_pos after a write
        m.d.comb += w_pos_w.eq(Mux(w_last, 0, w_pos + 1))
        w_pos_n = Mux(write, w_pos_w, w_pos)
        m.d.sync += [w_pos.eq(w_pos_n), releases.eq(releases_n), behind.eq(w_pos_n < c0g_n)]
        with m.If(write):
            m.d.sync += [w_addr.eq(Mux(w_addr == depth - 1, 0, w_addr + 1)),
                         w_last.eq(Mux(w_last, WG == 1, w_pos == WG - 2))]

        # ``ahead`` after this cycle for each outcome of the handshakes, from registers: issue
        # and the write only select.
        ahead_rel = Signal(range(-SH - H - 1, NR + 1))  # ahead after a row release
        m.d.comb += ahead_rel.eq(ahead - rows_released)
        ahead_w = Mux(row_end, Mux(w_last, ahead_rel + 1, ahead_rel), Mux(w_last, ahead + 1, ahead))
        ahead_h = Mux(row_end, ahead_rel, ahead)
        ahead_i = Mux(write, ahead_w, ahead_h)
        ahead_n = Mux(row_written, ahead + 1, ahead)
        m.d.sync += ahead.eq(Mux(issue, ahead_i, ahead_n))

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
