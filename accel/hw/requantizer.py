"""Requantizer: accumulators in channel-group order -> int8 (or N-bit) activations, pipelined.

Arithmetic (per lane, channel ``ch``; every mode is *exactly* a function of
:mod:`accel.quant.numerics`, which is the specification)
---------------------------------------------------------------------------------------------
``mode="tflite"``
    ``requantize(acc + bias[ch], multiplier[ch], shift[ch], zero_point, act_min, act_max,
    single_rounding=single_rounding)``: TFLite's ``MultiplyByQuantizedMultiplier`` as CONV_2D,
    DEPTHWISE_CONV_2D and (before TF 2.20) FULLY_CONNECTED use it. Double rounding (the
    default): ``x << max(shift, 0)``, SaturatingRoundingDoublingHighMul, RoundingDivideByPOT by
    ``max(-shift, 0)``; single rounding: ``(x * M + 2**(30 - shift)) >> (31 - shift)``.
``mode="float"``
    ``requantize_float(acc + bias[ch], scale[ch], zero_point, act_min, act_max)``: the
    FULLY_CONNECTED reference kernel of TF 2.20+, ``round(double(acc) * scale)`` with ``round``
    half away from zero. The hardware computes the exact product ``acc * m`` of the accumulator
    and the 53-bit significand of ``scale = m * 2**e``, rounds it to 53 significant bits (round
    to nearest even, as the ``double`` multiplication does), then rounds half away from zero at
    bit ``-e``: bit-exact with the ``double`` arithmetic.
``mode="wide"``
    ``requantize_wide(acc + bias[ch], multiplier[ch], shift[ch], zero_point, act_min,
    act_max)``: ``round(acc * M / 2**n)``, one rounding half away from zero, with a wide
    integer multiplier (up to 53 bits) -- the integer stand-in for the float FULLY_CONNECTED
    requantization that :func:`~accel.quant.numerics.wide_multiplier_for_scale` proves exact
    over a layer's accumulator range. It is the ``"float"`` datapath without the rounding to
    53 bits; ``acc + bias`` must fit int32 (it saturates there).
``mode="pow2"``
    ``pow2_requantize(acc + bias[ch], shift[ch], out_bits, act_min=act_min, act_max=act_max)``:
    ``(x + 2**(shift - 1)) >> shift`` (a negative shift multiplies by ``2**-shift``), then the
    clamp. No multiplier and no zero point.

Where the numerics module raises ``OverflowError`` (TFLite's int32 arithmetic would overflow,
undefined behaviour in its C++) the hardware saturates instead; such layers are rejected before
they get here (the accumulator widths make them impossible).

Narrow lanes (what the int8 layers get)
---------------------------------------
For ``"tflite"``, ``"float"`` and ``"wide"`` the constructor first asks
:func:`accel.plan.requant.narrow_form` for an integer form proven equal to the mode's
arithmetic on every accumulator of ``acc_bits`` bits: ``x`` clamped to the layer's range of
steps, ``floor((x' * m + r) / 2**n)`` with one ``n`` for the whole layer (the division is
wiring, no barrel shifter), the multiplier ``m`` only as wide as the layer's steps need
(18-26 bits on the digits models, against 31 or 53) and the zero point folded into ``r``.
The product is built in logic, never with ``*``, so it takes no DSP block: DSPs go to the
PEs (the reason for the design; a DSP lane cost 4 to 8 MULT18X18D, more than the PEs at
small arrays, and the iCE40UP5K has 8). With ``beat_cycles`` room (a compute stage gets a
beat per ``Kt`` cycles) the lane multiplies serially, ``digit`` bits a cycle, most
significant first, so its logic is a few adder rows, not ``mult_bits`` of them
(:func:`accel.plan.requant.serial_digits`); otherwise it is a tree of registered pairwise
adds. Each step is one add per cycle (the clamp's comparisons are registered) for a fast
clock. When no narrow form exists (e.g. ``acc + bias`` beyond int32 with a huge left shift),
the mode's DSP datapath below is built.

Pipeline and backpressure
-------------------------
Stage 0 takes a beat and reads the per-channel parameters of its channel group from a ROM
(:class:`~amaranth.lib.memory.Memory`, one word per group holding every lane's parameters); the
next stages add the bias, shift, multiply (split into 16 x 17-bit partial products, one
registered DSP multiply each, summed by a registered adder tree), round and clamp, one register
stage per step. The pipeline never stalls: the result enters a
:class:`~amaranth.lib.fifo.SyncFIFOBuffered` whose depth is sized from the pipeline length
(a serial lane's from the beats it can have in flight,
:func:`accel.plan.requant.requant_timing`), and a credit counter (beats accepted and not yet
delivered) keeps ``i.ready`` low when the FIFO could overflow. With the consumer ready, one
beat per cycle goes through; ``latency`` is the number of cycles from a beat accepted at ``i``
to its result valid at ``o``.

The channel group of a beat is counted (``ceil(channels / lanes)`` beats per pixel) and
restarts after a beat with ``last`` set, which is passed through. Lanes past ``channels`` in the
last group are filled with ``zero_point``.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.layouts import check_int, pixel_layout
from accel.plan.requant import (
    A_CHUNK,
    B_CHUNK,
    K_MAX,
    WIDE_MAX_BITS,
    RequantPlan,
    lane_fields,
    lane_values,
    mult_field_bits,
    narrow_for,
    pow2_widths,
    requant_timing,
    serial_digits,
    serial_part_stages,
)
from accel.quant.requant_mode import RequantMode
from accel.spec.shapes import ceil_div

__all__ = ["MODES", "Requantizer"]

#: The arithmetic a :class:`Requantizer` can implement.
MODES = tuple(str(mode) for mode in RequantMode)

_INT32 = (-(2**31), 2**31 - 1)
_A_CHUNK, _B_CHUNK, _K_MAX, _WIDE_BITS = A_CHUNK, B_CHUNK, K_MAX, WIDE_MAX_BITS


def _int_array(name: str, value: object, channels: int, lo: int, hi: int) -> np.ndarray:
    """A per-channel integer parameter as an int64 array of shape (channels,)."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        arr = np.asarray(None)
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must be an integer or an array of integers, not {value!r}")
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != channels):
        raise ValueError(
            f"{name} must be a single value or one per channel (shape ({channels},)), "
            f"not shape {arr.shape}"
        )
    arr = np.broadcast_to(arr, (channels,))
    bad = [int(v) for v in arr if not lo <= int(v) <= hi]
    if bad:
        raise ValueError(f"{name} must lie in {lo}..{hi}, not {bad[0]}")
    return np.array([int(v) for v in arr], dtype=object)


def _code(test, bits: int, width: int):
    """``width`` bits: bit ``i < bits`` is ``test(i)`` (a comparison with a register), the rest
    0. Thermometer and one-hot codes of a shift amount, in place of shifting a constant."""
    return Cat(*(test(i) for i in range(bits)), Const(0, width - bits))


def _float_array(name: str, value: object, channels: int) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        arr = np.asarray(None)
    if arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must be a number or an array of numbers, not {value!r}")
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != channels):
        raise ValueError(
            f"{name} must be a single value or one per channel (shape ({channels},)), "
            f"not shape {arr.shape}"
        )
    arr = np.broadcast_to(arr.astype(np.float64), (channels,))
    bad = [float(v) for v in arr if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"{name} must be finite and > 0, not {bad[0]!r}")
    return arr.copy()


class Requantizer(wiring.Component):
    """Requantize accumulators to ``out_bits``-bit activations (TFLite int8 or pow2).

    Parameters
    ----------
    channels : int
        Output channels ``C``, >= 1; a pixel is ``ceil(C / lanes)`` beats.
    lanes : int
        Channels per beat, >= 1.
    acc_bits : int
        Accumulator width: 2..32 for ``"tflite"``, ``"float"`` and ``"wide"`` (TFLite
        accumulates in int32), 2..62 for ``"pow2"``.
    out_bits : int
        Output width, 2..32.
    mode : str
        ``"tflite"``, ``"float"``, ``"wide"`` or ``"pow2"`` (see the module documentation).
    bias : int or array of int
        Per-channel bias added to the accumulator; int32 except for ``"pow2"`` (any 62-bit
        value). Default 0.
    multiplier : int or array of int
        ``"tflite"``: Q31 multipliers in ``0..2**31 - 1``
        (:func:`accel.quant.numerics.quantize_multiplier`); ``"wide"``: multipliers in
        ``0..2**53 - 1`` (:func:`accel.quant.numerics.wide_multiplier_for_scale`).
    shift : int or array of int
        ``"tflite"``: TFLite shifts in ``-31..30`` (positive = left); ``"wide"``: right shifts
        in ``0..255``; ``"pow2"``: right shifts in ``-62..62`` (negative = left).
    scale : float or array of float
        ``"float"`` only: effective scales (finite, > 0), as for
        :func:`accel.quant.numerics.requantize_float`.
    zero_point : int
        Output zero point; must be 0 for ``"pow2"``.
    act_min, act_max : int, optional
        Output clamp within the ``out_bits`` range (fused ReLU/ReLU6); default the whole range.
    single_rounding : bool
        ``"tflite"`` only: TFLite built with ``TFLITE_SINGLE_ROUNDING``.
    beat_cycles : int
        The producer's fewest cycles between two beats (default 1). With room, a narrow lane
        multiplies serially in ``cycles <= beat_cycles`` cycles
        (:func:`accel.plan.requant.serial_digits`) and ``i`` then takes at most one beat per
        ``cycles`` cycles; a producer that keeps its promise is never stalled.

    Members
    -------
    i : In(stream.Signature(pixel_layout(lanes, acc_bits)))
        Accumulators, channel groups in order, ``last`` on a frame's final beat.
    o : Out(stream.Signature(pixel_layout(lanes, out_bits)))
        Requantized values, ``last`` passed through.

    Attributes
    ----------
    latency : int
        Cycles from a beat accepted on ``i`` to its result valid on ``o`` (consumer ready).
    groups : int
        Beats per pixel.
    """

    def __init__(
        self,
        *,
        channels: int,
        lanes: int = 1,
        acc_bits: int = 32,
        out_bits: int = 8,
        mode: str = "tflite",
        bias: object = 0,
        multiplier: object = None,
        shift: object = None,
        scale: object = None,
        zero_point: int = 0,
        act_min: int | None = None,
        act_max: int | None = None,
        single_rounding: bool = False,
        beat_cycles: int = 1,
    ) -> None:
        self.channels = check_int("channels", channels, 1)
        self.lanes = check_int("lanes", lanes, 1)
        if not isinstance(mode, str) or mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}")
        self.mode = RequantMode(mode)
        mode = str(mode)  # for the messages below
        self.acc_bits = check_int("acc_bits", acc_bits, 2, 62 if mode == "pow2" else 32)
        self.out_bits = check_int("out_bits", out_bits, 2, 32)
        C = self.channels
        if not isinstance(single_rounding, bool | np.bool_):
            raise TypeError(f"single_rounding must be True or False, not {single_rounding!r}")
        self.single_rounding = bool(single_rounding)
        self.beat_cycles = check_int("beat_cycles", beat_cycles, 1)
        for name, value, modes in (
            ("multiplier", multiplier, ("tflite", "wide")),
            ("scale", scale, ("float",)),
            ("shift", shift, ("tflite", "wide", "pow2")),
        ):
            if value is None and mode in modes:
                raise ValueError(f"{name} is required with mode {mode!r}")
            if value is not None and mode not in modes:
                raise ValueError(f"{name} is not used with mode {mode!r}")
        if self.single_rounding and mode != "tflite":
            raise ValueError(f"single_rounding is not used with mode {mode!r}")

        if mode == "pow2":
            self.bias = _int_array("bias", bias, C, -(2**61), 2**61 - 1)
            self.shift = _int_array("shift", shift, C, -62, 62)
        else:
            self.bias = _int_array("bias", bias, C, *_INT32)
        if mode == "tflite":
            self.multiplier = _int_array("multiplier", multiplier, C, 0, _INT32[1])
            self.shift = _int_array("shift", shift, C, -31, 30)
        if mode == "wide":
            self.multiplier = _int_array("multiplier", multiplier, C, 0, 2**_WIDE_BITS - 1)
            self.shift = _int_array("shift", shift, C, 0, 255)
        if mode == "float":
            self.scale = _float_array("scale", scale, C)

        lo, hi = -(1 << (self.out_bits - 1)), (1 << (self.out_bits - 1)) - 1
        if mode == "pow2":
            if isinstance(zero_point, bool) or zero_point != 0:
                raise ValueError(f"zero_point must be 0 with mode 'pow2', not {zero_point!r}")
        self.zero_point = check_int("zero_point", zero_point, lo, hi)
        self.act_min = lo if act_min is None else check_int("act_min", act_min, lo, hi)
        self.act_max = hi if act_max is None else check_int("act_max", act_max, lo, hi)
        if self.act_min > self.act_max:
            raise ValueError(
                f"act_min must not exceed act_max, not {self.act_min} > {self.act_max}"
            )
        self.groups = ceil_div(C, self.lanes)
        self.narrow = narrow_for(
            self.mode, acc_bits=self.acc_bits, bias=self.bias, zero_point=self.zero_point,
            act_min=self.act_min, act_max=self.act_max,
            multiplier=getattr(self, "multiplier", None), shift=getattr(self, "shift", None),
            scale=getattr(self, "scale", None), single_rounding=self.single_rounding)
        self.mult_bits = (self.narrow.mult_bits if self.narrow else
                          mult_field_bits(self.mode, getattr(self, "multiplier", None)))
        self.serial = serial_digits(self.narrow, self.beat_cycles)
        self._pipe, self.latency, self._fifo_depth = requant_timing(
            self.mode, mult_bits=self.mult_bits, single_rounding=self.single_rounding,
            narrow=self.narrow, beat_cycles=self.beat_cycles)
        super().__init__({
            "i": In(stream.Signature(pixel_layout(self.lanes, self.acc_bits))),
            "o": Out(stream.Signature(pixel_layout(self.lanes, self.out_bits))),
        })

    @classmethod
    def from_plan(cls, plan: RequantPlan) -> Requantizer:
        """The requantizer of a stage's :class:`~accel.plan.requant.RequantPlan`."""
        return cls(**plan.component_args())

    # --- per-channel parameters ------------------------------------------------------------------

    def _lane_fields(self) -> dict[str, object]:
        """Shapes of the per-lane ROM fields (:func:`accel.plan.requant.lane_fields`)."""
        fields = lane_fields(self.mode, acc_bits=self.acc_bits, out_bits=self.out_bits,
                             bias=self.bias, mult_bits=self.mult_bits, narrow=self.narrow)
        return {name: signed(bits) if is_signed else unsigned(bits)
                for name, (is_signed, bits) in fields.items()}

    def _lane_values(self, ch: int) -> dict[str, int]:
        return lane_values(self.mode, ch, acc_bits=self.acc_bits, out_bits=self.out_bits,
                           bias=self.bias, multiplier=getattr(self, "multiplier", None),
                           shift=getattr(self, "shift", None), scale=getattr(self, "scale", None),
                           narrow=self.narrow)

    def _pow2_widths(self) -> tuple[int, int]:
        return pow2_widths(self.acc_bits, self.bias)

    # --- hardware --------------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        L, G, C = self.lanes, self.groups, self.channels
        out_bits, acc_bits = self.out_bits, self.acc_bits

        lane_layout = data.StructLayout(self._lane_fields())
        zero = {name: 0 for name in lane_layout.members}
        init = [
            [self._lane_values(g * L + k) if g * L + k < C else zero for k in range(L)]
            for g in range(G)
        ]
        m.submodules.params = params = memory.Memory(
            shape=data.ArrayLayout(lane_layout, L), depth=G, init=init
        )
        rom = params.read_port()

        m.submodules.fifo = out_fifo = fifo.SyncFIFOBuffered(
            width=L * out_bits + 1, depth=self._fifo_depth
        )

        # Credits: beats accepted and not yet delivered on o (in the pipeline or the FIFO).
        # ``i.ready`` is a register loaded with what the comparison will be next cycle (from
        # the next credit count and hold), so it has the same value every cycle as the
        # comparison itself, but the upstream handshake starts at a flip-flop instead of at
        # the credit counter's comparator.
        credits = Signal(range(self._fifo_depth + 1))
        ready = Signal(init=1, name="ready")
        take = self.i.valid & ready
        deliver = self.o.valid & self.o.ready
        # The handshakes only select among values computed from registers (the counts one up
        # and one down, and their comparisons with the FIFO depth), so ``i.valid`` reaches
        # ``ready`` and ``credits`` through multiplexers, not through an adder's carry chain
        # and a comparator in series.
        credits_next = Signal.like(credits, name="credits_next")
        up, down = take & ~deliver, deliver & ~take
        m.d.comb += [
            credits_next.eq(Mux(up, credits + 1, Mux(down, credits - 1, credits))),
            self.i.ready.eq(ready),
        ]
        m.d.sync += credits.eq(credits_next)
        depth = self._fifo_depth
        room_next = Mux(up, credits < depth - 1, Mux(down, 1, credits < depth))
        if self.serial is None:
            m.d.sync += ready.eq(room_next)
        else:
            # A serial lane is busy for `cycles` cycles per beat.
            hold = Signal(range(self.serial[1]), name="hold")
            hold_next = Mux(take, self.serial[1] - 1, Mux(hold == 0, 0, hold - 1))
            idle_next = Mux(take, self.serial[1] == 1, hold <= 1)
            m.d.sync += [hold.eq(hold_next), ready.eq(room_next & idle_next)]

        group = Signal(range(G))
        with m.If(take):
            m.d.sync += group.eq(Mux(self.i.payload.last | (group == G - 1), 0, group + 1))
        # A serial lane of three or more cycles a beat reads its multiplier and rounding
        # constants at the load, a cycle after the bias: the ROM's output register holds a
        # beat's word until the next beat (>= cycles later), so they need no pipeline.
        self._rom_holds = self.serial is not None and self.serial[1] >= 3
        m.d.comb += [rom.addr.eq(group), rom.en.eq(take if self._rom_holds else 1)]

        def reg(value, name, shape=None):
            sig = Signal(value.shape() if shape is None else shape, name=name)
            m.d.sync += sig.eq(value)
            return sig

        # Stage 0 -> 1: the beat and its group's parameters.
        acc1 = reg(self.i.payload.data.as_value(), "acc1")
        valid1 = reg(take, "valid1")
        self._valid1 = valid1
        side1 = reg(Cat(self.i.payload.last, group == G - 1), "side1")
        self._side1 = side1
        self._serial_marks = None  # lane 0's (valid, side) at its output, when serial

        results = []
        for lane in range(L):
            acc = acc1[lane * acc_bits : (lane + 1) * acc_bits].as_signed()
            p = rom.data[lane]
            build = {
                "tflite": self._tflite, "float": self._float, "wide": self._float,
                "pow2": self._pow2,
            }[self.mode] if self.narrow is None else (
                self._narrow_lane if self.serial is None else self._serial_lane)
            value, stages = build(m, reg, acc, p, f"l{lane}")
            assert stages == self._pipe - 1, (stages, self._pipe)
            results.append(value)

        if self._serial_marks is not None:
            # A serial lane holds at most a few beats, which its own registers mark: no
            # pipeline of the beat's valid and sideband bits beside it.
            valid, side = self._serial_marks
        else:
            valid, side = valid1, side1
            for n in range(self._pipe - 1):
                valid = reg(valid, f"valid{n + 2}")
                side = reg(side, f"side{n + 2}")

        # Lanes past the channels in the last group carry the zero point.
        valid_lanes = C - (G - 1) * L
        words = []
        for lane, value in enumerate(results):
            if lane >= valid_lanes:
                value = Mux(side[1], self.zero_point, value)
            words.append(value[:out_bits])
        m.d.comb += [
            out_fifo.w_en.eq(valid),
            out_fifo.w_data.eq(Cat(*words, side[0])),
            self.o.valid.eq(out_fifo.r_rdy),
            out_fifo.r_en.eq(self.o.ready),
            self.o.payload.data.eq(out_fifo.r_data[: L * out_bits]),
            self.o.payload.last.eq(out_fifo.r_data[L * out_bits]),
        ]
        return m

    # Each datapath builder returns (result, number of register stages after stage 1); the
    # result is the clamped output value (a register), as a signed Value.

    def _clamp(self, value):
        lo, hi = self.act_min, self.act_max
        return Mux(value < lo, lo, Mux(value > hi, hi, value))

    @staticmethod
    def _sat32(value):
        lo, hi = _INT32
        return Mux(value < lo, lo, Mux(value > hi, hi, value))[:32].as_signed()

    def _multiply(self, reg, a, b, name):
        """Registered partial products of signed ``a`` by unsigned ``b``, summed by a registered
        adder tree; returns (product, stages)."""
        a_pieces = []
        for lo in range(0, len(a), _A_CHUNK):
            hi = min(lo + _A_CHUNK, len(a))
            piece = a[lo:hi]
            a_pieces.append((piece.as_signed() if hi == len(a) else piece, lo))
        b_pieces = [(b[lo : min(lo + _B_CHUNK, len(b))], lo) for lo in range(0, len(b), _B_CHUNK)]
        terms = [
            (reg(pa * pb, f"{name}_pp{sa}_{sb}"), sa + sb)
            for pa, sa in a_pieces
            for pb, sb in b_pieces
        ]
        stages = 1
        while len(terms) > 1:
            paired = []
            for n in range(0, len(terms) - 1, 2):
                (x, sx), (y, sy) = terms[n], terms[n + 1]
                base = min(sx, sy)
                paired.append((reg((x << (sx - base)) + (y << (sy - base)),
                                   f"{name}_sum{stages}_{n}"), base))
            if len(terms) % 2:
                x, sx = terms[-1]
                paired.append((reg(x, f"{name}_sum{stages}_{len(terms) - 1}"), sx))
            terms = paired
            stages += 1
        product, shift = terms[0]
        return product << shift, stages

    def _narrow_lane(self, m, reg, acc, p, name):
        """The narrow form (:class:`~accel.plan.requant.NarrowForm`): the product in logic, as
        rows of ``x'`` gated by the multiplier's bits, summed in pairs, a register per level."""
        nf = self.narrow
        clamped, mult2, r2 = self._clamp_x(reg, acc, p, name)
        xc = reg(clamped[:nf.x_bits].as_signed(), f"{name}_xc", signed(nf.x_bits))
        rc = reg(r2, f"{name}_rc", signed(nf.round_bits))
        mult = reg(mult2, f"{name}_m", unsigned(nf.mult_bits))
        stages = 3
        terms = [(Mux(mult[j], xc, 0), j) for j in range(nf.mult_bits)] + [(rc, 0)]
        level = 0
        while len(terms) > 1 or level == 0:
            paired = []
            for n in range(0, len(terms) - 1, 2):
                (a, sa), (b, sb) = terms[n], terms[n + 1]
                base = min(sa, sb)
                paired.append((reg((a << (sa - base)) + (b << (sb - base)),
                                   f"{name}_t{level}_{n}"), base))
            if len(terms) % 2:
                a, sa = terms[-1]
                paired.append((reg(a, f"{name}_t{level}_{len(terms) - 1}"), sa))
            terms = paired
            level += 1
        assert level == nf.tree_levels, (level, nf.tree_levels)
        stages += level
        total, at = terms[0]
        # floor((x' m + r) / 2**shift): the division is wiring; the zero point is in r.
        value = (total << at) >> nf.shift
        out = reg(self._clamp(value), f"{name}_out", signed(self.out_bits))
        stages += 1
        return out, stages

    def _clamp_x(self, reg, acc, p, name, carry=True):
        """``x = acc + bias`` and ``x' = clamp(x, x_lo, x_hi)`` (a Value after two register
        stages: the comparisons are registered, the clamp is their two multiplexers), and the
        multiplier and the rounding constant of ``x'``'s sign, two stages on: carried down
        the pipeline, or with ``carry=False`` read from the ROM's output ``p`` then (it holds
        the beat's word). Only those two are carried (not the bias, not both constants):
        flip-flops are most of an iCE40 lane's logic cells."""
        nf = self.narrow
        x = reg(acc + p.bias, f"{name}_x")
        low, high = reg(x < nf.x_lo, f"{name}_low"), reg(x > nf.x_hi, f"{name}_high")
        x2 = reg(x, f"{name}_x2")
        # The sign of x' is x's when x_lo < 0 <= x_hi, else the bound's (a constant).
        negative = x < 0 if nf.x_lo < 0 <= nf.x_hi else Const(int(nf.x_hi < 0), 1)
        clamped = Mux(low, nf.x_lo, Mux(high, nf.x_hi, x2))
        if not carry:
            negative2 = reg(negative, f"{name}_neg2")
            return clamped, p.mult, Mux(negative2, p.rneg, p.rpos)
        mult1 = reg(p.mult, f"{name}_m1")
        rpos1, rneg1 = reg(p.rpos, f"{name}_rpos1"), reg(p.rneg, f"{name}_rneg1")
        rc = reg(Mux(negative, rneg1, rpos1), f"{name}_r2", signed(nf.round_bits))
        mult2 = reg(mult1, f"{name}_m2")
        return clamped, mult2, rc

    def _serial_lane(self, m, reg, acc, p, name):
        """The narrow form, multiplied serially: ``digit`` bits of the multiplier per cycle,
        least significant first. With ``m = sum_j m_j 2**(d j)``, each cycle ``T = H + x' m_j``
        (``H`` starts at 0), its low ``d`` bits retire (no later term reaches them) and
        ``H = T >> d``; after ``c`` cycles ``x' m = H 2**(d c) + retired``, so the adder is
        only as wide as ``x'`` plus a digit. The rounding constant ``r = r_top 2**(d c) +
        r_low`` (``0 <= r_low < 2**(d c)``) is added beside it: its low part digit by digit
        to the retired digits (a ``d``-bit adder with a carry), its top part with that carry
        after the last digit. One beat per ``cycles`` cycles (``i.ready`` holds off the rest),
        so the registers loaded for a beat are free again when the next arrives.

        Kept off the adder's carry chain: ``H``'s restart (a synchronous reset of its
        flip-flops after a beat's last digit, which a copy keeps for the rounding add) and the
        rounding constant; a digit of three or more bits has its rows summed in two registered
        steps (:func:`accel.plan.requant.serial_part_stages`)."""
        nf = self.narrow
        digit, cycles = self.serial
        span = digit * cycles  # the retired bits
        # x = acc + bias, and its clamp straight into the load (two comparisons side by side,
        # then one LUT), without a register between: x's copy, the comparisons' and the
        # constants' pipeline registers are flip-flops (most of an iCE40 lane's cells).
        x = reg(acc + p.bias, f"{name}_x")
        clamped = Mux(x < nf.x_lo, nf.x_lo, Mux(x > nf.x_hi, nf.x_hi, x))
        # The sign of x' is x's when x_lo < 0 <= x_hi, else the bound's (a constant).
        negative = x < 0 if nf.x_lo < 0 <= nf.x_hi else Const(int(nf.x_hi < 0), 1)
        if self._rom_holds:  # the ROM's output holds the beat's word until the load
            mult2, r2 = p.mult, Mux(negative, p.rneg, p.rpos)
        else:
            mult2 = reg(p.mult, f"{name}_m1")
            r2 = Mux(negative, reg(p.rneg, f"{name}_rneg1"), reg(p.rpos, f"{name}_rpos1"))
        valid2 = reg(self._valid1, f"{name}_v2")
        rs_bits = max(nf.round_bits, span + 1)
        xs = Signal(signed(nf.x_bits), name=f"{name}_xs")
        rs = Signal(signed(rs_bits), name=f"{name}_rs")  # r, its digits shifted out lsb first
        ms = Signal(span, name=f"{name}_ms")  # the digits left, lsb first
        count = Signal(range(cycles + 1), name=f"{name}_count")
        with m.If(valid2):  # load (the previous beat's last digit goes out in this cycle)
            m.d.sync += [xs.eq(clamped[:nf.x_bits].as_signed()),
                         rs.eq(r2), ms.eq(mult2), count.eq(cycles)]
        with m.Elif(count != 0):
            m.d.sync += [ms.eq(ms >> digit), rs.eq(rs >> digit), count.eq(count - 1)]
        # r_top, kept for the add after the last digit (a load in the same cycle replaces rs).
        r_top = Signal(signed(rs_bits - span), name=f"{name}_rtop")
        # The beat's sideband (frame end, last group), loaded with it and taken on with its
        # last digit (read before the next beat's load replaces it).
        side2 = reg(self._side1, f"{name}_side2")
        side_ld = Signal.like(self._side1, name=f"{name}_side_ld")
        with m.If(valid2):
            m.d.sync += side_ld.eq(side2)
        with m.If(count == 1):
            m.d.sync += r_top.eq(rs >> digit)
        low = ms[:digit]
        rows = [(Mux(low[i], xs, 0), i) for i in range(digit)]
        # The digit's product x' m_j and r_low's digit j, and the flags of the digit, through
        # the part stages (one, or two for a digit of three or more bits: the first two rows'
        # sum and the rest's, then their sum, each a single adder).
        stages = serial_part_stages(digit)
        # busy (a digit goes in), the beat's last digit, the beat's sideband
        flags = Cat(count != 0, count == 1, side_ld)
        r_dig = rs.as_unsigned()[:digit]
        part_bits = nf.x_bits + digit + 1
        if stages == 1:
            total = rows[0][0] if digit == 1 else \
                (rows[0][0] + (rows[1][0] << 1))
            part = reg(total, f"{name}_P", signed(part_bits))
        else:
            head = reg(rows[0][0] + (rows[1][0] << 1), f"{name}_Pa", signed(part_bits))
            rest = sum((r << (s - 2) for r, s in rows[2:]), start=Const(0))
            tail = reg(rest, f"{name}_Pb", signed(part_bits))
            part = reg(head + (tail << 2), f"{name}_P", signed(part_bits))
        for n in range(stages):
            flags = reg(flags, f"{name}_flags{n}")
            r_dig = reg(r_dig, f"{name}_rdig{n}")
        busy, last, side = flags[0], flags[1], flags[2:]
        # -2**x_bits <= H < 2**x_bits after any digit (H starts at 0; |x' m_j| <
        # 2**(x_bits - 1 + digit)), so T = H + x' m_j fits the width below, H one bit more than x'.
        t_bits = nf.x_bits + digit + 1
        t = Signal(signed(t_bits), name=f"{name}_T")
        h = Signal(signed(t_bits - digit), name=f"{name}_H")
        h_fin = Signal(signed(t_bits - digit), name=f"{name}_Hfin")
        m.d.comb += t.eq(h + part)
        # The retired digits plus r_low's, digit by digit: carry is the carry into digit j.
        carry = Signal(name=f"{name}_c")
        low_sum = Signal(span, name=f"{name}_L")
        r_carry = Signal(digit + 1, name=f"{name}_rc")
        m.d.comb += r_carry.eq(r_dig + carry)
        s_dig = Signal(digit + 1, name=f"{name}_s")
        m.d.comb += s_dig.eq(t.as_unsigned()[:digit] + r_carry)
        r_sel = Signal(signed(rs_bits - span + 1), name=f"{name}_rsel")
        with m.If(busy):
            m.d.sync += low_sum.eq(Cat(low_sum[digit:], s_dig[:digit]))
            with m.If(last):
                # H and the carry restart at 0 for the next beat; H and r_top plus the
                # carry out of the retired bits go to the rounding add.
                m.d.sync += [h.eq(0), carry.eq(0), h_fin.eq(t >> digit),
                             r_sel.eq(Mux(s_dig[digit], r_top + 1, r_top))]
            with m.Else():
                m.d.sync += [h.eq(t >> digit), carry.eq(s_dig[digit])]
        rounded = reg(h_fin + r_sel, f"{name}_sum")
        if self._serial_marks is None:  # lane 0: the beat's valid and sideband at the output
            # (the last digit's cycle, then r_sel/H, the rounding add, the output clamp)
            done, side_out = busy & last, side
            for n in range(3):
                done, side_out = reg(done, f"{name}_done{n}"), reg(side_out, f"{name}_side_e{n}")
            self._serial_marks = (done, side_out)
        # floor(((H + r_top + carry) 2**span + low_sum) / 2**shift): wiring (and the low bits
        # above the shift, when the product has more digits than the shift).
        if nf.shift >= span:
            value = rounded >> (nf.shift - span)
        else:
            kept = reg(low_sum[nf.shift:], f"{name}_kept")
            value = Cat(kept, rounded).as_signed()
        out = reg(self._clamp(value), f"{name}_out", signed(self.out_bits))
        return out, 2 + stages + cycles + 2

    def _tflite(self, m, reg, acc, p, name):
        # 1: x = acc + bias (33 bits; int32 within the contract).
        x = reg(acc + p.bias, f"{name}_x")
        params = reg(p.as_value(), f"{name}_p1")
        p1 = data.View(p.shape(), params)
        stages = 1
        if self.single_rounding:
            # 2: saturate to int32 (TFLite's arithmetic is int32).
            xs = reg(self._sat32(x), f"{name}_xs")
        else:
            # 2: x * 2**left, saturated (within the contract it fits int32).
            xs = reg(self._sat32(x << p1.left), f"{name}_xs")
        params = reg(params, f"{name}_p2")
        p2 = data.View(p.shape(), params)
        stages += 1
        product, mul_stages = self._multiply(reg, xs, p2.mult, name)
        stages += mul_stages
        for n in range(mul_stages):
            params = reg(params, f"{name}_p{3 + n}")
        pm = data.View(p.shape(), params)
        if self.single_rounding:
            # (x * M + 2**(total - 1)) >> total, total = 31 - shift in 1..62.
            half = (Const(1, 64) << pm.total) >> 1
            scaled = reg((product + half) >> pm.total, f"{name}_scaled")
        else:
            # SRDHM: (x * M + 2**30) >> 31 (round half up; M >= 0 never saturates), then
            # RoundingDivideByPOT: (q + half - (q < 0)) >> right, half = 2**(right-1) or 0.
            # Two stages: the rounded Q31 product plus its nudge (the half is a one-hot code of
            # `right`), then the shift (with the product's last adder, one stage: 87 MHz).
            q = (product + (1 << 30)) >> 31
            half = _code(lambda i: pm.right == i + 1, 31, 32)
            nudge = half - ((q < 0) & (pm.right != 0))
            nudged = reg(q + nudge, f"{name}_nudged")
            params = reg(params, f"{name}_pn")
            pn = data.View(p.shape(), params)
            stages += 1
            scaled = reg(nudged >> pn.right, f"{name}_scaled")
        stages += 1
        out = reg(self._clamp(scaled + self.zero_point), f"{name}_out", signed(self.out_bits))
        stages += 1
        return out, stages

    def _float(self, m, reg, acc, p, name):
        x = reg(acc + p.bias, f"{name}_x")
        params = reg(p.as_value(), f"{name}_p1")
        xs = reg(self._sat32(x), f"{name}_xs")
        params = reg(params, f"{name}_p2")
        p2 = data.View(p.shape(), params)
        stages = 2
        product, mul_stages = self._multiply(reg, xs, p2.mant, name)
        stages += mul_stages
        for n in range(mul_stages):
            params = reg(params, f"{name}_p{3 + n}")
        width = 32 + 53  # |acc * m| < 2**84
        # Sign and magnitude (IEEE rounding is symmetric).
        neg = reg(product < 0, f"{name}_neg")
        mag = reg(Mux(product < 0, -product, product)[:width], f"{name}_mag", unsigned(width))
        params = reg(params, f"{name}_pa")
        stages += 1
        # Position of the rounding to 53 significant bits: max(bit_length - 53, 0) <= 31.
        pos_comb = Signal(range(width - 52), name=f"{name}_pos_comb")
        for bit in range(53, width):
            with m.If(mag[bit]):
                m.d.comb += pos_comb.eq(bit - 52)
        pos = reg(pos_comb, f"{name}_pos")
        mag2 = reg(mag, f"{name}_mag2")
        neg2 = reg(neg, f"{name}_neg2")
        params = reg(params, f"{name}_pb")
        stages += 1
        # Round to nearest, ties to even, at bit `pos`: the double product. (The "wide" mode
        # multiplies exactly: it keeps the product.)
        if self.mode == "float":
            # In two stages, with no shifter: first the masks (thermometer and one-hot codes
            # of `pos`, a comparator per bit) and the addend that rounds half to even
            # (half - 1, plus 1 when the kept lsb is set); then one add, clearing the low bits.
            # (In one stage, shift-mask-compare-increment-shift ran at 40 MHz on ECP5.)
            top = width - 52  # pos < top: higher bits of the codes are constant zeros
            below = _code(lambda i: pos > i, top - 1, width)  # bits under the rounding point
            lsb = (mag2 & _code(lambda i: pos == i, top, width)).any()
            half = _code(lambda i: pos == i + 1, top - 1, width)
            half_less_one = _code(lambda i: pos > i + 1, top - 2, width)
            addend = reg(Mux(lsb, half, half_less_one), f"{name}_addend", unsigned(width))
            keep = reg(~below, f"{name}_keep", unsigned(width))
            mag2 = reg(mag2, f"{name}_mag3")
            neg2 = reg(neg2, f"{name}_neg2b")
            params = reg(params, f"{name}_pr")
            stages += 1
            rounded = reg((mag2 + addend) & keep, f"{name}_rne", unsigned(width + 1))
        else:
            rounded = reg(mag2, f"{name}_rne", unsigned(width + 1))
        neg3 = reg(neg2, f"{name}_neg3")
        params = reg(params, f"{name}_pc")
        pc = data.View(p.shape(), params)
        stages += 1
        # Round half away from zero at bit k (the magnitude: add half, truncate), in three
        # stages: add the half (a one-hot code of k), shift right by k's multiple of 16, then
        # by the rest (one barrel shifter over 87 bits in one stage ran at 77 MHz on ECP5).
        half = _code(lambda i: pc.k == i + 1, _K_MAX, _K_MAX)
        total = reg(rounded + half, f"{name}_total", unsigned(width + 2))
        nonzero = reg(rounded != 0, f"{name}_nonzero")
        neg4 = reg(neg3, f"{name}_neg4")
        params = reg(params, f"{name}_pd")
        pd = data.View(p.shape(), params)
        stages += 1
        coarse = reg(total >> (pd.k >> 4 << 4), f"{name}_coarse", unsigned(width + 2))
        nonzero = reg(nonzero, f"{name}_nonzero2")
        neg4 = reg(neg4, f"{name}_neg5")
        params = reg(params, f"{name}_pe")
        pe = data.View(p.shape(), params)
        stages += 1
        whole = coarse >> pe.k[:4]
        big = 1 << 33  # beyond any clamp bound: saturates
        magnitude = Mux(pe.huge, Mux(nonzero, big, 0), Mux(whole > big, big, whole))
        mag_out = reg(magnitude, f"{name}_whole", unsigned(34))
        neg4 = reg(neg4, f"{name}_neg6")
        stages += 1
        signed_value = Mux(neg4, -mag_out, mag_out)
        out = reg(self._clamp(signed_value + self.zero_point), f"{name}_out",
                  signed(self.out_bits))
        stages += 1
        return out, stages

    def _pow2(self, m, reg, acc, p, name):
        # 1: x + bias + rounding half (cannot overflow: sized from the parameters).
        x = reg(acc + p.bias, f"{name}_x", signed(self._pow2_widths()[1]))
        params = reg(p.as_value(), f"{name}_p1")
        p1 = data.View(p.shape(), params)
        # 2: arithmetic shift right.
        shifted = reg(x >> p1.right, f"{name}_shifted")
        params = reg(params, f"{name}_p2")
        p2 = data.View(p.shape(), params)
        # 3: shift left (a negative shift; at most out_bits + 1 matters), then clamp.
        out = reg(self._clamp(shifted << p2.left), f"{name}_out", signed(self.out_bits))
        return out, 3
