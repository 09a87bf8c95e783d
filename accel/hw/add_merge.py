"""The merge stage of a residual ``ADD`` (TFLite int8 semantics) and the skip-path buffer.

Arithmetic (per lane; exactly :func:`accel.quant.tflite_kernels.add`)
--------------------------------------------------------------------
For the two int8 inputs ``x_r`` (``residual``: the long branch's output) and ``x_s``
(``shortcut``: the skip path), each with its own zero point and ``(multiplier, shift)`` from
:func:`~accel.quant.tflite_kernels.add_params`::

    scaled_r = RDBPOT(SRDHM((x_r - zp_r) << 20, M_r), -shift_r)
    scaled_s = RDBPOT(SRDHM((x_s - zp_s) << 20, M_s), -shift_s)
    out      = clamp(RDBPOT(SRDHM(scaled_r + scaled_s, M_o), -shift_o) + zp_o, act_min, act_max)

SRDHM is gemmlowp's SaturatingRoundingDoublingHighMul, RDBPOT its RoundingDivideByPOT; all
shifts are ``<= 0`` (``QuantizeMultiplierSmallerThanOneExp``). ``(x - zp) << 20`` is at most
``255 * 2**20 < 2**28`` in magnitude, so the SRDHM saturation case (both operands
``INT32_MIN``) cannot occur and is not built; the product ``((x - zp) << 20) * M`` is computed
as ``(x - zp) * M`` (a 9 x 31-bit multiply) with the shift folded into the constant rounding.
Which TFLite input (``input1``/``input2``) is which stream does not matter: give each stream
the parameters of the tensor it carries.

Pipeline
--------
A beat is taken when both inputs offer one (the streams are aligned by position: beat ``k`` of
one is added to beat ``k`` of the other). The datapath is :class:`accel.plan.join.AddDatapath`
(its widths from the exact ranges of the values, its products cut into pieces that are one
18 x 18 multiplier each, so the plan's multiplier count is what synthesis builds), with one
register stage per step so that no stage holds more than one multiplier or one carry chain:
SRDHM of ``p << k`` and RoundingDivideByPOT are each one addition of a constant and a shift
(:func:`~accel.plan.join.srdhm_shifted`, :func:`~accel.plan.join.rdbpot`). A stage loads
whenever it is empty or the stage after it moves, so one beat per cycle goes through, and
behind a stalled output the bubbles close up: a beat waits only for the beat ahead of it,
as behind a FIFO (the pipeline holds ``latency`` beats, and takes a new pair while it is not
full or its output is being read), which is what the plan's timing model assumes.
``latency`` is the number of cycles from a pair accepted to its result valid on
``o``. ``last`` is taken from ``residual``; lanes past ``channels`` in a pixel's last group
are filled with the output zero point.

Skip-path buffer (:class:`SkipBuffer`) and the rule for its depth
-----------------------------------------------------------------
In a fork/join (a stream forked into a long branch and a skip path, joined again here) the fork
hands each beat to both sides at once and the join takes a beat from each side at once. While
the long branch has not yet produced its output beat ``k``, every beat the fork emits after
beat ``k`` has to wait in the skip path. If the long branch needs its input beats up to index
``k + lead - 1`` (and no later one) before its output beat ``k`` can appear, the skip path must
hold ``lead`` beats: with one place fewer the fork cannot deliver beat ``k + lead - 1`` (the
skip side is full), the long branch waits for it, and nothing moves again -- for any image
sequence, since ``lead`` is a property of the geometry, not of the data. Hence the rule
(:func:`skip_buffer_depth`)::

    depth >= lead = max over output beats k of (input beats the long branch must have
                    accepted before its output beat k is available) - k

For the usual branch that keeps the shape, the largest lead is that of the first output beat
(a frame's first output waits for the most input: the window generator's look-ahead, e.g.
``(pad-adjusted rows below) * W * G + columns * G`` beats for a KxK convolution), and every
stage's *internal* buffering counts against it only if the stage must fill it before it
emits. Pipeline latency (cycles) adds no beats to the rule: the fork simply waits; adding the
long branch's latency in beats on top only avoids bubbles while the first result travels.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.layouts import check_int, pixel_layout
from accel.plan.join import LEFT_SHIFT, SKIP_LATENCY, add_datapath, rdbpot, srdhm_shifted
from accel.quant.numerics import signed_bits_for
from accel.spec.shapes import ceil_div

__all__ = ["AddMerge", "SkipBuffer", "skip_buffer_depth"]

_INT8 = (-128, 127)


def skip_buffer_depth(*, lead: int, latency_beats: int = 0) -> int:
    """The depth of a :class:`SkipBuffer` that makes a fork/join deadlock-free.

    Parameters
    ----------
    lead : int
        ``max_k (input beats the long branch must have accepted before its output beat k is
        available) - k``, >= 1 (see the module documentation).
    latency_beats : int
        Optional extra places, >= 0 (e.g. the long branch's latency in cycles at one beat per
        cycle) so the fork does not stall while the first result travels; not needed for
        freedom from deadlock.

    Returns
    -------
    int
        ``lead + latency_beats``.
    """
    return check_int("lead", lead, 1) + check_int("latency_beats", latency_beats, 0)


class SkipBuffer(wiring.Component):
    """A FIFO of pixel beats for the skip path of a fork/join, of a depth the caller provides.

    Parameters
    ----------
    depth : int
        Beats held, >= 1; at least :func:`skip_buffer_depth` of the long branch, or the
        pipeline can deadlock, and at least 3 for a beat every cycle (the plan's
        :data:`~accel.plan.join.SKIP_FULL_RATE_DEPTH`).
    lanes : int
        Values per beat, >= 1.
    bits : int
        Width of a value, >= 1.

    Members
    -------
    i : In(stream.Signature(pixel_layout(lanes, bits)))
        Beats from the fork.
    o : Out(stream.Signature(pixel_layout(lanes, bits)))
        The same beats in order, to the join.

    Attributes
    ----------
    latency : int
        Cycles from a beat accepted on ``i`` (buffer empty) to it valid on ``o``.
    """

    def __init__(self, *, depth: int, lanes: int = 1, bits: int = 8) -> None:
        self.depth = check_int("depth", depth, 1)
        self.lanes = check_int("lanes", lanes, 1)
        self.bits = check_int("bits", bits, 1)
        self.latency = SKIP_LATENCY
        layout = pixel_layout(self.lanes, self.bits)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        # SyncFIFOBuffered's depth counts its output register: ``depth`` beats in all.
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(
            width=self.lanes * self.bits + 1, depth=self.depth)
        m.d.comb += [
            q.w_data.eq(self.i.payload.as_value()),
            q.w_en.eq(self.i.valid),
            self.i.ready.eq(q.w_rdy),
            self.o.payload.eq(q.r_data),
            self.o.valid.eq(q.r_rdy),
            q.r_en.eq(self.o.ready),
        ]
        return m


class AddMerge(wiring.Component):
    """TFLite int8 ``ADD`` of two aligned streams of channel-group pixels, pipelined.

    Parameters
    ----------
    channels : int
        Channels ``C``, >= 1; a pixel is ``ceil(C / lanes)`` beats on every stream.
    lanes : int
        Channels per beat, >= 1.
    residual_zero_point, shortcut_zero_point, output_zero_point : int
        The tensors' zero points, int8.
    residual_multiplier, shortcut_multiplier, output_multiplier : int
        Q31 multipliers in ``0..2**31 - 1`` (:func:`~accel.quant.tflite_kernels.add_params`).
    residual_shift, shortcut_shift, output_shift : int
        Their shifts, ``-31..0``.
    act_min, act_max : int
        The fused activation's clamp (ReLU, ReLU6, ...), int8, ``act_min <= act_max``.

    Members
    -------
    residual : In(stream.Signature(pixel_layout(lanes, 8)))
        The long branch's output; its ``last`` is passed on.
    shortcut : In(stream.Signature(pixel_layout(lanes, 8)))
        The skip path (through a :class:`SkipBuffer`); its ``last`` is ignored.
    o : Out(stream.Signature(pixel_layout(lanes, 8)))
        The sums.

    Attributes
    ----------
    latency : int
        Cycles from a pair of beats accepted to its result valid on ``o`` (consumer ready).
    groups : int
        Beats per pixel.
    """

    def __init__(
        self,
        *,
        channels: int,
        lanes: int = 1,
        residual_zero_point: int,
        shortcut_zero_point: int,
        output_zero_point: int,
        residual_multiplier: int,
        residual_shift: int,
        shortcut_multiplier: int,
        shortcut_shift: int,
        output_multiplier: int,
        output_shift: int,
        act_min: int = _INT8[0],
        act_max: int = _INT8[1],
    ) -> None:
        self.channels = check_int("channels", channels, 1)
        self.lanes = check_int("lanes", lanes, 1)
        self.zero_points = {
            name: check_int(f"{name}_zero_point", value, *_INT8)
            for name, value in (("residual", residual_zero_point),
                                ("shortcut", shortcut_zero_point),
                                ("output", output_zero_point))
        }
        self.multipliers = {
            name: (check_int(f"{name}_multiplier", mult, 0, 2**31 - 1),
                   check_int(f"{name}_shift", shift, -31, 0))
            for name, mult, shift in (("residual", residual_multiplier, residual_shift),
                                      ("shortcut", shortcut_multiplier, shortcut_shift),
                                      ("output", output_multiplier, output_shift))
        }
        self.act_min = check_int("act_min", act_min, *_INT8)
        self.act_max = check_int("act_max", act_max, *_INT8)
        if self.act_min > self.act_max:
            raise ValueError(f"act_min {self.act_min} must not exceed act_max {self.act_max}")
        self.groups = ceil_div(self.channels, self.lanes)
        self.datapath = add_datapath(
            zero_points=(self.zero_points["residual"], self.zero_points["shortcut"]),
            multipliers_q31=tuple(self.multipliers[k] for k in ("residual", "shortcut",
                                                                "output")),
            output_zero_point=self.zero_points["output"], act_min=self.act_min,
            act_max=self.act_max)
        self.latency = self.datapath.latency
        layout = pixel_layout(self.lanes, 8)
        super().__init__({
            "residual": In(stream.Signature(layout)),
            "shortcut": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        L, G = self.lanes, self.groups
        path = self.datapath
        valid_lanes = self.channels - (G - 1) * L
        # Stage n (1..latency; the last is the output register) loads from stage n - 1 when
        # it is empty or is itself moving on: bubbles close up behind a stalled output, so
        # a beat waits only for the one ahead of it, as behind a FIFO.
        L_ = self.latency
        valids = [Signal(name=f"valid{n}") for n in range(1, L_)] + [self.o.valid]
        load = [Signal(name=f"load{n}") for n in range(1, L_ + 1)]
        moving = self.o.ready
        for n in range(L_ - 1, -1, -1):
            m.d.comb += load[n].eq(~valids[n] | moving)
            moving = load[n]
        both = self.residual.valid & self.shortcut.valid
        take = load[0] & both
        m.d.comb += [
            self.residual.ready.eq(load[0] & self.shortcut.valid),
            self.shortcut.ready.eq(load[0] & self.residual.valid),
        ]
        previous = take
        for n in range(L_):
            with m.If(load[n]):
                m.d.sync += valids[n].eq(previous)
            previous = valids[n]

        group = Signal(range(G))
        with m.If(take):
            m.d.sync += group.eq(Mux(self.residual.payload.last | (group == G - 1), 0, group + 1))

        def stage(name, value, lo, hi, n):
            """A register of pipeline stage ``n`` (from 1) holding ``value``, whose range is
            ``[lo, hi]``."""
            reg = Signal(signed(signed_bits_for(lo, hi)), name=name)
            with m.If(load[n - 1]):
                m.d.sync += reg.eq(value)
            return reg

        def pieces_stage(name, a, a_lo, a_hi, constant):
            """The register stage of the pieces of ``a * constant`` (a
            :class:`~accel.plan.join.ConstantProduct`): ``(register, offset, lo, hi)``."""
            pieces = []
            for n, (offset, odd) in enumerate(constant.pieces):
                q = stage(f"{name}_q{n}", a * odd, a_lo * odd, a_hi * odd, 3)
                pieces.append((q, offset, a_lo * odd, a_hi * odd))
            if not pieces:
                pieces = [(stage(f"{name}_q0", Const(0, 1), 0, 0, 3), 0, 0, 0)]
            return pieces

        def sum_stage(name, pieces, n):
            total = sum((q.as_signed() << offset for q, offset, _, _ in pieces), Const(0, 1))
            lo = sum(v << offset for _, offset, v, _ in pieces)
            hi = sum(v << offset for _, offset, _, v in pieces)
            return stage(name, total, lo, hi, n), lo, hi

        def rounding(name, value, lo, hi, k, exponent, n):
            """``rdbpot(srdhm_shifted(value, k), exponent)`` in register stages ``n`` and
            ``n + 1``."""
            j = 31 - k
            if j > 0:
                h_lo, h_hi = srdhm_shifted(lo, k), srdhm_shifted(hi, k)
                h = stage(f"{name}_h", (value + (1 << (j - 1))) >> j, h_lo, h_hi, n)
            else:
                h_lo, h_hi = lo << -j, hi << -j
                h = stage(f"{name}_h", value << -j, h_lo, h_hi, n)
            r_lo, r_hi = rdbpot(h_lo, exponent), rdbpot(h_hi, exponent)
            if exponent == 0:
                r = stage(f"{name}_r", h, r_lo, r_hi, n + 1)
            else:
                half = 1 << (exponent - 1)
                r = stage(f"{name}_r", (h + Mux(h < 0, half - 1, half)) >> exponent, r_lo,
                          r_hi, n + 1)
            return r, r_lo, r_hi

        # Sideband through the same stages as the data.
        last, lastg = self.residual.payload.last, group == G - 1
        for n in range(1, L_):
            flags = []
            for name, value in (("last", last), ("lastg", lastg)):
                reg = Signal(name=f"{name}{n}")
                with m.If(load[n - 1]):
                    m.d.sync += reg.eq(value)
                flags.append(reg)
            last, lastg = flags

        outs = []
        streams = (self.residual, self.shortcut)
        for lane in range(L):
            scaled = []
            for i, ((zp, const, shift), port) in enumerate(zip(path.inputs, streams,
                                                               strict=True)):
                # The raw input first: a skip buffer's block RAM output is slow to arrive.
                x = stage(f"x{i}_{lane}", port.payload.data[lane], _INT8[0], _INT8[1], 1)
                d = stage(f"d{i}_{lane}", x - zp, const.a_lo, const.a_hi, 2)
                pieces = pieces_stage(f"m{i}_{lane}", d, const.a_lo, const.a_hi, const)
                p, lo, hi = sum_stage(f"p{i}_{lane}", pieces, 4)
                scaled.append(rounding(f"s{i}_{lane}", p, lo, hi, LEFT_SHIFT + const.shift,
                                       -shift, 5))
            (s0, lo0, hi0), (s1, lo1, hi1) = scaled
            total = stage(f"t{lane}", s0 + s1, lo0 + lo1, hi0 + hi1, 7)
            # t * odd(M_o): every (piece of t, piece of the constant) product in one stage,
            # the sums over the pieces of t in the next, their sum in the third.
            const = path.output_product
            partial = []
            for n, (offset, odd) in enumerate(const.pieces):
                terms = []
                for offset_t, bits, is_signed in path.out_split:
                    lo, hi = path.split_range(offset_t, bits, is_signed)
                    part = total[offset_t:offset_t + bits]
                    part = part.as_signed() if is_signed else part
                    q = stage(f"o_q{n}_{offset_t}_{lane}", part * odd, lo * odd, hi * odd, 8)
                    terms.append((q, offset_t, lo * odd, hi * odd))
                q, lo, hi = sum_stage(f"o_s{n}_{lane}", terms, 9)
                partial.append((q, offset, lo, hi))
            if not partial:
                zero = stage(f"o_q0_{lane}", Const(0, 1), 0, 0, 8)
                partial = [(stage(f"o_s0_{lane}", zero, 0, 0, 9), 0, 0, 0)]
            p, lo, hi = sum_stage(f"o_p{lane}", partial, 10)
            raw, lo, hi = rounding(f"o{lane}", p, lo, hi, const.shift, -path.output_shift, 11)
            # The clamp of raw + zp, compared on raw (in parallel with the addition).
            zp_o = path.output_zero_point
            clamped = Mux(raw < self.act_min - zp_o, self.act_min,
                          Mux(raw > self.act_max - zp_o, self.act_max, (raw + zp_o)[:8]))
            outs.append((lane, clamped))

        with m.If(load[-1]):
            m.d.sync += self.o.payload.last.eq(last)
            for lane, value in outs:
                if lane >= valid_lanes:
                    value = Mux(lastg, path.output_zero_point, value)
                m.d.sync += self.o.payload.data[lane].eq(value)
        return m
