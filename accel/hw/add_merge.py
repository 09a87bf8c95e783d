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
one is added to beat ``k`` of the other); five register stages (offsets, input multiplies,
input rounding and sum, output multiply, output rounding and clamp) follow, all advancing
together whenever the output register is empty or being read, so one beat per cycle goes
through. ``latency`` is the number of cycles from a pair accepted to its result valid on
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

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.gemmlowp import rounding_divide_by_pot as _rdbpot
from accel.hw.gemmlowp import srdhm_of_product as _srdhm
from accel.hw.layouts import check_int, pixel_layout
from accel.spec.shapes import ceil_div

__all__ = ["AddMerge", "SkipBuffer", "skip_buffer_depth"]

_INT8 = (-128, 127)
_LEFT_SHIFT = 20


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
        pipeline can deadlock.
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
        self.latency = 1
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
        self.latency = 5
        layout = pixel_layout(self.lanes, 8)
        super().__init__({
            "residual": In(stream.Signature(layout)),
            "shortcut": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        L, G = self.lanes, self.groups
        valid_lanes = self.channels - (G - 1) * L
        zp, mult = self.zero_points, self.multipliers
        advance = ~self.o.valid | self.o.ready
        both = self.residual.valid & self.shortcut.valid
        take = advance & both
        m.d.comb += [
            self.residual.ready.eq(advance & self.shortcut.valid),
            self.shortcut.ready.eq(advance & self.residual.valid),
        ]

        group = Signal(range(G))
        with m.If(take):
            m.d.sync += group.eq(Mux(self.residual.payload.last | (group == G - 1), 0, group + 1))

        def stage(name, value, shape):
            reg = Signal(shape, name=name)
            with m.If(advance):
                m.d.sync += reg.eq(value)
            return reg

        # Sideband through the same registers as the data.
        valid = take
        last = self.residual.payload.last
        lastg = group == G - 1
        side = []
        for n in range(self.latency - 1):
            valid = stage(f"valid{n + 1}", valid, 1)
            last = stage(f"last{n + 1}", last, 1)
            lastg = stage(f"lastg{n + 1}", lastg, 1)
            side.append((valid, last, lastg))

        outs = []
        for lane in range(L):
            d_r = stage(f"d_r{lane}", self.residual.payload.data[lane] - zp["residual"], signed(9))
            d_s = stage(f"d_s{lane}", self.shortcut.payload.data[lane] - zp["shortcut"], signed(9))
            (m_r, e_r), (m_s, e_s), (m_o, e_o) = (mult[k] for k in ("residual", "shortcut",
                                                                     "output"))
            p_r = stage(f"p_r{lane}", d_r * m_r, signed(41))
            p_s = stage(f"p_s{lane}", d_s * m_s, signed(41))
            # SRDHM of (d << 20) * M: the product is p << 20 (exact, |.| < 2**60).
            s_r = _rdbpot(_srdhm(Cat(Const(0, _LEFT_SHIFT), p_r).as_signed()), -e_r)
            s_s = _rdbpot(_srdhm(Cat(Const(0, _LEFT_SHIFT), p_s).as_signed()), -e_s)
            total = stage(f"sum{lane}", s_r + s_s, signed(32))
            p_o = stage(f"p_o{lane}", total * m_o, signed(64))
            raw = _rdbpot(_srdhm(p_o), -e_o) + zp["output"]
            clamped = Mux(raw < self.act_min, self.act_min,
                          Mux(raw > self.act_max, self.act_max, raw))
            outs.append((lane, clamped))

        with m.If(advance):
            m.d.sync += [self.o.valid.eq(side[-1][0]), self.o.payload.last.eq(side[-1][1])]
            for lane, value in outs:
                if lane >= valid_lanes:
                    value = Mux(side[-1][2], zp["output"], value)
                m.d.sync += self.o.payload.data[lane].eq(value)
        return m
