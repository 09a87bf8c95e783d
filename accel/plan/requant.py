"""The requantizer's sub-plan, and the functions that size it (used by the plan *and* by
:class:`accel.hw.requantizer.Requantizer`, so the two cannot disagree).

Sizes derived here
------------------
- the per-lane parameter ROM fields (:func:`lane_fields`) and their values
  (:func:`lane_values`): one ROM word per channel group, ``lanes`` lanes of those fields;
- the multiplier operand width (:func:`mult_field_bits`): 31 for the Q31 multiplier, 53 for
  the float significand, and for ``wide`` the widest of the layer's actual multipliers;
- the partial products (:func:`partial_products`): the ``int32 x mult`` product is split into
  16 x 17-bit pieces, one hardware multiplier each (ECP5 MULT18X18D);
- the register stages, latency and output FIFO depth (:func:`pipeline_stages`,
  :func:`requant_timing`);
- the narrow form (:func:`narrow_form`): a proven-exact integer requantization with a
  multiplier sized from the layer's steps, one shift per layer and a clamp of ``x`` that
  bounds the product's width, built in logic (no multiplier counted); and whether a lane
  multiplies it serially (:func:`serial_digits`: the stage's beat spacing leaves room).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..quant.requant_mode import RequantMode
from .memory import FAMILIES, MemoryKind, MemoryPlan

__all__ = [
    "A_CHUNK",
    "B_CHUNK",
    "K_MAX",
    "NARROW_MAX_BITS",
    "WIDE_MAX_BITS",
    "NarrowForm",
    "RequantPlan",
    "lane_fields",
    "lane_values",
    "mult_field_bits",
    "multipliers_per_lane",
    "narrow_for",
    "serial_digits",
    "serial_part_stages",
    "narrow_form",
    "partial_products",
    "pipeline_stages",
    "pow2_widths",
    "requant_timing",
    "significand",
]

A_CHUNK = 16  # split of the signed int32 operand: 16-bit pieces (17-bit signed inputs)
B_CHUNK = 17  # split of the unsigned multiplier: 17-bit pieces (fit an 18-bit signed input)
K_MAX = 86  # the float mode's rounding position beyond which every product rounds to 0
WIDE_MAX_BITS = 53  # widest multiplier of the "wide" mode (the float datapath's significand)
_PRODUCT_A_BITS = 32  # acc + bias, saturated to int32, is the multiplied operand


def significand(value: float) -> tuple[int, int]:
    """``(m, e)`` with ``value == m * 2**e`` exactly and ``m`` an integer below ``2**53``."""
    fraction, exponent = math.frexp(value)  # value = fraction * 2**exponent, 0.5 <= f < 1
    m = int(fraction * 2**53)  # exact: 53 significant bits at most
    return m, exponent - 53


def pow2_widths(acc_bits: int, bias) -> tuple[int, int]:
    """``(Wb, W)``: the width of ``acc + bias`` and of ``acc + bias + half`` (pow2 mode)."""
    bias_bits = max(abs(int(v)) for v in bias).bit_length() + 1
    base = max(acc_bits, bias_bits) + 1
    return base, base + 1


def mult_field_bits(mode: RequantMode, multiplier=None) -> int:
    """Width of the unsigned multiplier operand (0 for ``pow2``): ``wide`` is sized from the
    layer's actual multipliers (at least 1 bit)."""
    if mode is RequantMode.TFLITE:
        return 31
    if mode is RequantMode.FLOAT:
        return 53
    if mode is RequantMode.WIDE:
        return max(1, max(int(v) for v in multiplier).bit_length())
    return 0


def lane_fields(mode: RequantMode, *, acc_bits: int, out_bits: int, bias,
                mult_bits: int, narrow: NarrowForm | None = None) -> dict[str, tuple[bool, int]]:
    """The per-lane ROM fields: name -> ``(signed, bits)``."""
    if narrow is not None:
        return {"bias": (True, _signed_bits(min(int(v) for v in bias),
                                            max(int(v) for v in bias))),
                "mult": (False, narrow.mult_bits),
                "rpos": (True, narrow.round_bits), "rneg": (True, narrow.round_bits)}
    if mode is RequantMode.TFLITE:
        return {"bias": (True, 32), "mult": (False, 31), "left": (False, 5),
                "right": (False, 5),  # double rounding: RoundingDivideByPOT exponent
                "total": (False, 6)}  # single rounding: 31 - shift
    if mode in (RequantMode.FLOAT, RequantMode.WIDE):
        return {"bias": (True, 32), "mant": (False, mult_bits),
                "k": (False, 7),  # rounding position -e, clamped to 0..K_MAX
                "huge": (False, 1)}  # e > 0: any nonzero product saturates
    width = pow2_widths(acc_bits, bias)[1]
    return {"bias": (True, width),  # bias plus the rounding half
            "right": (False, width.bit_length()),  # 0..width
            "left": (False, (out_bits + 1).bit_length())}  # 0..out_bits + 1


def _constant_columns(mode: RequantMode, fields: dict, *, channels: int, lanes: int,
                      acc_bits: int, out_bits: int, bias, multiplier, shift, scale,
                      narrow) -> int:
    """Bit columns of the parameter ROM that hold the same value in every word (per-tensor
    multipliers and shifts, unused lanes' zeros): yosys maps only the others. The words are
    packed as the requantizer packs them: each lane's fields in order from bit 0, lane ``k``
    of a word at ``k`` lane widths (``data.ArrayLayout`` of a ``data.StructLayout``), the
    channels past the last lane zero."""
    lane_bits = sum(bits for _, bits in fields.values())
    words = []
    for g in range(-(-channels // lanes)):
        word = 0
        for k in range(lanes):
            ch = g * lanes + k
            if ch >= channels:
                continue
            values = lane_values(mode, ch, acc_bits=acc_bits, out_bits=out_bits, bias=bias,
                                 multiplier=multiplier, shift=shift, scale=scale,
                                 narrow=narrow)
            offset = k * lane_bits
            for name, (_, bits) in fields.items():
                word |= (int(values[name]) & ((1 << bits) - 1)) << offset
                offset += bits
        words.append(word)
    width = lanes * lane_bits
    same = ~0
    for word in words[1:]:
        same &= ~(word ^ words[0])
    return bin(same & ((1 << width) - 1)).count("1")


def lane_values(mode: RequantMode, ch: int, *, acc_bits: int, out_bits: int, bias,
                multiplier=None, shift=None, scale=None,
                narrow: NarrowForm | None = None) -> dict[str, int]:
    """Channel ``ch``'s ROM field values."""
    b = int(bias[ch])
    if narrow is not None:
        return {"bias": b, "mult": narrow.mult[ch], "rpos": narrow.round_pos[ch],
                "rneg": narrow.round_neg[ch]}
    if mode is RequantMode.TFLITE:
        s = int(shift[ch])
        return {"bias": b, "mult": int(multiplier[ch]), "left": max(s, 0),
                "right": max(-s, 0), "total": 31 - s}
    if mode is RequantMode.FLOAT:
        m, e = significand(float(scale[ch]))
        return {"bias": b, "mant": m, "k": min(max(-e, 0), K_MAX), "huge": int(e > 0)}
    if mode is RequantMode.WIDE:
        return {"bias": b, "mant": int(multiplier[ch]), "k": min(int(shift[ch]), K_MAX),
                "huge": 0}
    # Shifting ``x + 2**(s - 1)`` right by ``s >= Wb`` gives 0 for every ``|x| < 2**(Wb-1)``,
    # and so does ``s = Wb``: clamping the shift changes nothing.
    right = min(max(int(shift[ch]), 0), pow2_widths(acc_bits, bias)[0])
    return {"bias": b + (1 << (right - 1) if right > 0 else 0), "right": right,
            # Any nonzero value shifted left by more than out_bits saturates anyway.
            "left": min(max(-int(shift[ch]), 0), out_bits + 1)}


def partial_products(mult_bits: int) -> list[tuple[int, int]]:
    """``(a_bits, b_bits)`` of each piece of the ``int32 x mult_bits`` product."""
    a = [min(A_CHUNK, _PRODUCT_A_BITS - lo) for lo in range(0, _PRODUCT_A_BITS, A_CHUNK)]
    b = [min(B_CHUNK, mult_bits - lo) for lo in range(0, mult_bits, B_CHUNK)]
    return [(pa, pb) for pa in a for pb in b]


def multipliers_per_lane(mult_bits: int, family: str) -> int:
    """Hardware multipliers one lane's product takes on ``family``.

    ECP5: one MULT18X18D per piece. Gowin (in MULT9X9 units, two per MULT18X18): one
    MULT18X18 per piece, pieces of at most 2 bits go to logic. iCE40 (SB_MAC16, 16 x 16): one
    per piece, and one more per two full 17-bit pieces. (Fitted on yosys 0.70 builds of the
    Q31 and float lanes: ECP5 4 and 8, Gowin 8 and 12, iCE40 5 and 11.)
    """
    pieces = partial_products(mult_bits)
    if family == "ecp5":
        return len(pieces)
    if family == "gowin":
        return 2 * sum(1 for _, b in pieces if b > 2)
    full = sum(1 for _, b in pieces if b == B_CHUNK)
    return len(pieces) + math.ceil(full / 2)


#: Most multiplier bits a serial narrow lane takes per cycle.
SERIAL_MAX_DIGIT = 4


def serial_digits(narrow: NarrowForm | None, beat_cycles: int) -> tuple[int, int] | None:
    """``(digit, cycles)`` of a serial narrow lane, or None (the lane is a parallel tree).

    A stage's requantizer sees a beat at most every ``beat_cycles`` cycles (a compute stage's
    accumulators: one beat per ``Kt`` k-tiles). When that leaves room, the product takes
    ``cycles <= beat_cycles`` cycles, ``digit`` multiplier bits each (at most
    :data:`SERIAL_MAX_DIGIT`): a few rows of adders instead of ``mult_bits`` rows."""
    if narrow is None or beat_cycles < 2:
        return None
    digit = -(-narrow.mult_bits // beat_cycles)
    cycles = -(-narrow.mult_bits // digit)
    if digit > SERIAL_MAX_DIGIT or cycles < 2:
        return None
    return digit, cycles


def serial_part_stages(digit: int) -> int:
    """Register stages from a serial lane's digit to its product ``x' m_j`` (the part the
    accumulating adder takes): one for one or two rows (at most one adder), two for three or
    four (the rows summed in pairs, then the pairs: two adders in series were the lane's
    slowest path on iCE40)."""
    return 1 if digit <= 2 else 2


def pipeline_stages(mode: RequantMode, *, mult_bits: int, single_rounding: bool,
                    narrow: NarrowForm | None = None, beat_cycles: int = 1) -> int:
    """Register stages from the input to the output FIFO (checked against the datapath)."""
    serial = serial_digits(narrow, beat_cycles)
    if serial is not None:
        # acc/ROM, bias, load (clamp of x), the digit's product, a digit per cycle, the
        # rounding constant's top add, the output clamp.
        return 3 + serial_part_stages(serial[0]) + serial[1] + 2
    if narrow is not None:
        # acc/ROM, bias, the clamp's comparisons, clamp of x, the product's adder levels,
        # the output clamp.
        return 4 + narrow.tree_levels + 1
    products = len(partial_products(mult_bits)) if mult_bits else 0
    multiply = 1 + math.ceil(math.log2(products)) if products else 0
    # acc/ROM, then bias, input saturation/shift, the multiply, rounding(s), clamp.
    wide = 1 + 2 + multiply + 7
    tflite = 1 + 2 + multiply + 2 + (0 if single_rounding else 1)
    return {RequantMode.TFLITE: tflite, RequantMode.FLOAT: wide + 1, RequantMode.WIDE: wide,
            RequantMode.POW2: 4}[mode]


def requant_timing(mode: RequantMode, *, mult_bits: int, single_rounding: bool,
                   narrow: NarrowForm | None = None,
                   beat_cycles: int = 1) -> tuple[int, int, int]:
    """``(pipeline stages, latency, FIFO depth)``. A SyncFIFOBuffered delivers a word written
    in cycle t in cycle t + 2 at the earliest, so ``latency = stages + 2``; the FIFO holds
    every beat in flight plus two, so that one beat per cycle goes through. A serial lane
    takes a beat per ``cycles`` at most, so at most ``ceil(latency / cycles)`` are in flight:
    its FIFO holds that many plus two (a few words in flip-flops, not a block RAM and the
    pointers of a FIFO as deep as the pipeline)."""
    stages = pipeline_stages(mode, mult_bits=mult_bits, single_rounding=single_rounding,
                             narrow=narrow, beat_cycles=beat_cycles)
    serial = serial_digits(narrow, beat_cycles)
    if serial is not None:
        return stages, stages + 2, -(-(stages + 2) // serial[1]) + 2
    return stages, stages + 2, stages + 4


@dataclass(frozen=True, eq=False)
class RequantPlan:
    """Everything a :class:`~accel.hw.requantizer.Requantizer` needs, and what it costs.

    Members
    -------
    mode : RequantMode
    channels, lanes, acc_bits, out_bits : int
    bias, multiplier, shift, scale : numpy.ndarray or None
        Per-channel constants (from the quantized layer; ``multiplier``/``shift`` of ``wide``
        are the planner's proven-exact integers).
    zero_point, act_min, act_max : int
    single_rounding : bool
    mult_bits : int
        Width of the multiplier operand (:func:`mult_field_bits`).
    fields : dict
        ROM lane fields, name -> ``(signed, bits)``.
    stages, latency, fifo_depth : int
        From :func:`requant_timing`.
    params, fifo : MemoryPlan
        The parameter ROM (one word per channel group) and the output FIFO's storage.
    multipliers : dict
        Hardware multipliers per family, all lanes (none for a narrow lane).
    narrow : NarrowForm or None
        The proven-exact narrow form the lanes compute in logic (:func:`narrow_form`), or
        None: the DSP datapath of ``mode``.
    beat_cycles : int
        The fewest cycles between two beats the stage delivers; a narrow lane with that much
        room multiplies serially (:func:`serial_digits`).
    """

    mode: RequantMode
    channels: int
    lanes: int
    acc_bits: int
    out_bits: int
    bias: np.ndarray = field(repr=False)
    multiplier: np.ndarray | None = field(repr=False)
    shift: np.ndarray | None = field(repr=False)
    scale: np.ndarray | None = field(repr=False)
    zero_point: int
    act_min: int
    act_max: int
    single_rounding: bool
    mult_bits: int
    fields: dict
    stages: int
    latency: int
    fifo_depth: int
    params: MemoryPlan
    fifo: MemoryPlan
    multipliers: dict
    narrow: NarrowForm | None = field(default=None, repr=False)
    beat_cycles: int = 1

    @classmethod
    def build(cls, *, mode: RequantMode, channels: int, lanes: int, acc_bits: int,
              out_bits: int, bias, multiplier=None, shift=None, scale=None,
              zero_point: int = 0, act_min: int, act_max: int,
              single_rounding: bool = False, beat_cycles: int = 1) -> RequantPlan:
        mode = RequantMode.parse(mode)
        narrow = narrow_for(mode, acc_bits=acc_bits, bias=bias, zero_point=zero_point,
                            act_min=act_min, act_max=act_max, multiplier=multiplier,
                            shift=shift, scale=scale, single_rounding=single_rounding)
        mult_bits = narrow.mult_bits if narrow else mult_field_bits(mode, multiplier)
        fields = lane_fields(mode, acc_bits=acc_bits, out_bits=out_bits, bias=bias,
                             mult_bits=mult_bits, narrow=narrow)
        stages, latency, depth = requant_timing(mode, mult_bits=mult_bits,
                                                single_rounding=single_rounding, narrow=narrow,
                                                beat_cycles=beat_cycles)
        groups = -(-channels // lanes)
        lane_bits = sum(bits for _, bits in fields.values())
        return cls(
            mode=mode, channels=channels, lanes=lanes, acc_bits=acc_bits, out_bits=out_bits,
            bias=bias, multiplier=multiplier, shift=shift, scale=scale,
            zero_point=zero_point, act_min=act_min, act_max=act_max,
            single_rounding=single_rounding, mult_bits=mult_bits, fields=fields,
            stages=stages, latency=latency, fifo_depth=depth,
            params=MemoryPlan("requant", MemoryKind.ROM, groups, lanes * lane_bits,
                              constant_bits=_constant_columns(
                                  mode, fields, channels=channels, lanes=lanes,
                                  acc_bits=acc_bits, out_bits=out_bits, bias=bias,
                                  multiplier=multiplier, shift=shift, scale=scale,
                                  narrow=narrow)),
            # SyncFIFOBuffered(depth) stores depth - 1 words in its memory.
            fifo=MemoryPlan("requant_fifo", MemoryKind.FIFO, depth - 1, lanes * out_bits + 1),
            multipliers={f: lanes * multipliers_per_lane(mult_bits, f)
                         if mult_bits and narrow is None else 0 for f in FAMILIES},
            narrow=narrow, beat_cycles=beat_cycles,
        )

    def component_args(self) -> dict:
        """Keyword arguments of :class:`~accel.hw.requantizer.Requantizer`."""
        args = dict(channels=self.channels, lanes=self.lanes, acc_bits=self.acc_bits,
                    out_bits=self.out_bits, mode=self.mode, bias=self.bias,
                    zero_point=self.zero_point, act_min=self.act_min, act_max=self.act_max,
                    single_rounding=self.single_rounding, beat_cycles=self.beat_cycles)
        if self.mode in (RequantMode.TFLITE, RequantMode.WIDE):
            args.update(multiplier=self.multiplier, shift=self.shift)
        elif self.mode is RequantMode.FLOAT:
            args.update(scale=self.scale)
        else:
            args.update(shift=self.shift)
        return args

    def to_json(self) -> dict:
        return {"mode": str(self.mode), "lanes": self.lanes, "acc_bits": self.acc_bits,
                "out_bits": self.out_bits, "mult_bits": self.mult_bits,
                "datapath": ("dsp" if not self.narrow else
                             "serial" if serial_digits(self.narrow, self.beat_cycles)
                             else "narrow"),
                "x_bits": self.narrow.x_bits if self.narrow else None,
                "lane_bits": sum(b for _, b in self.fields.values()),
                "stages": self.stages, "latency": self.latency, "fifo_depth": self.fifo_depth,
                "multipliers": dict(self.multipliers)}


# --- the narrow lane: a multiplier sized from the layer's values, built in logic -------------

#: Widest multiplier a narrow lane may take; beyond it the lane keeps the DSP datapath.
NARROW_MAX_BITS = 40
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class NarrowForm:
    """The integer form a narrow requantizer lane computes, proven equal to the layer's
    reference requantization (:func:`narrow_form`) for every accumulator the lane can see.

    For channel ``c`` and ``x = acc + bias[c]``::

        x' = clamp(x, x_lo, x_hi)
        y  = clamp(floor((x' * mult[c] + round[c]) / 2**shift), act_min, act_max)

    with ``round[c] = round_pos[c]`` for ``x' >= 0`` and ``round_neg[c]`` for ``x' < 0`` (the
    output zero point is folded into both). ``shift`` is common to every channel, so the
    division is wiring; ``x_lo..x_hi`` is the layer's range of ``x`` outside which no channel's
    output changes, so the product is only ``x_bits`` by ``mult_bits`` wide.
    """

    shift: int
    x_lo: int
    x_hi: int
    mult: tuple
    round_pos: tuple
    round_neg: tuple

    @property
    def x_bits(self) -> int:
        return _signed_bits(self.x_lo, self.x_hi)

    @property
    def mult_bits(self) -> int:
        return max(1, max(m.bit_length() for m in self.mult))

    @property
    def round_bits(self) -> int:
        values = (*self.round_pos, *self.round_neg)
        return _signed_bits(min(values), max(values))

    @property
    def tree_levels(self) -> int:
        """Registered adder levels of the product: ``mult_bits`` rows plus the rounding row,
        summed in pairs."""
        return max(1, math.ceil(math.log2(self.mult_bits + 1)))

    def evaluate(self, ch: int, x, act_min: int, act_max: int) -> list[int]:
        """The lane's output for the values ``x`` (exact, Python integers)."""
        out = []
        for v in (int(a) for a in np.ravel(x)):
            xc = min(max(v, self.x_lo), self.x_hi)
            r = self.round_pos[ch] if xc >= 0 else self.round_neg[ch]
            out.append(min(max((xc * self.mult[ch] + r) >> self.shift, act_min), act_max))
        return out


def _signed_bits(lo: int, hi: int) -> int:
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def _reference(mode: RequantMode, ch: int, *, zero_point, act_min, act_max, multiplier, shift,
               scale, single_rounding):
    """Channel ``ch``'s requantization of ``x = acc + bias`` (the numerics module's), and its
    exact scale as a Fraction."""
    from ..quant import numerics

    if mode is RequantMode.TFLITE:
        m, s = int(multiplier[ch]), int(shift[ch])
        return (lambda x: numerics.requantize(x, m, s, zero_point, act_min, act_max,
                                              single_rounding=single_rounding),
                Fraction(m << max(s, 0), 1 << (31 + max(-s, 0))))
    if mode is RequantMode.FLOAT:
        f = float(scale[ch])
        return (lambda x: numerics.requantize_float(x, f, zero_point, act_min, act_max),
                Fraction(f))
    m, n = int(multiplier[ch]), int(shift[ch])
    return (lambda x: numerics.requantize_wide(x, m, n, zero_point, act_min, act_max),
            Fraction(m, 1 << n))


def _reference_all(mode: RequantMode, *, zero_point, act_min, act_max, multiplier, shift,
                   scale, single_rounding):
    """Every channel's reference at once, ``x`` of shape ``(n, channels)`` (the numerics
    functions broadcast per-channel parameters over the last axis), or None where the
    reference takes one channel at a time (``wide``)."""
    from ..quant import numerics

    if mode is RequantMode.TFLITE:
        m, s = np.asarray(multiplier, np.int64), np.asarray(shift, np.int64)
        return lambda x: numerics.requantize(x, m, s, zero_point, act_min, act_max,
                                             single_rounding=single_rounding)
    if mode is RequantMode.FLOAT:
        f = np.asarray(scale, np.float64)
        return lambda x: numerics.requantize_float(x, f, zero_point, act_min, act_max)
    return None


def _defined_range(f, lo: int, hi: int, anchor: int) -> tuple[int, int]:
    """The interval around ``anchor`` on which ``f`` is defined (TFLite's int32 arithmetic
    does not overflow; it overflows only for large ``|x|``)."""
    def ok(v: int) -> bool:
        try:
            f(np.array([v], np.int64))
        except OverflowError:
            return False
        return True

    if not ok(anchor):
        raise OverflowError(anchor)
    # Overflow grows with |x| only, so defined ends mean a defined interval: the usual case,
    # and it spares two binary searches of scalar calls per channel.
    if ok(lo) and ok(hi):
        return lo, hi
    a, b = lo, anchor  # smallest defined x in [lo, anchor]
    while a < b:
        mid = (a + b) // 2
        a, b = (a, mid) if ok(mid) else (mid + 1, b)
    first = a
    a, b = anchor, hi  # largest defined x in [anchor, hi]
    while a < b:
        mid = (a + b + 1) // 2
        a, b = (mid, b) if ok(mid) else (a, mid - 1)
    return first, a


def _thresholds(f, lo: int, hi: int) -> tuple[int, list[tuple[int, int]]]:
    """``(f(lo), [(T, v), ...])``: the least ``T`` in ``(lo, hi]`` with ``f(T) >= v`` for every
    level ``v`` in ``(f(lo), f(hi)]`` (``f`` is non-decreasing)."""
    y_lo, y_hi = (int(v) for v in f(np.array([lo, hi], np.int64)))
    levels = np.arange(y_lo + 1, y_hi + 1, dtype=np.int64)
    a = np.full(levels.shape, lo, np.int64)
    b = np.full(levels.shape, hi, np.int64)
    while levels.size and (a < b).any():
        mid = (a + b) // 2
        ok = np.asarray(f(mid), np.int64) >= levels
        b = np.where(ok, mid, b)
        a = np.where(ok, a, mid + 1)
    return y_lo, [(int(t), int(v)) for t, v in zip(a, levels, strict=True)]


def _thresholds_all(every, lo: list[int], hi: list[int]) -> list[tuple[int, list]]:
    """:func:`_thresholds` of every channel in one binary search (``every`` from
    :func:`_reference_all`; each channel's ``lo..hi`` defined). Levels a channel lacks are
    pinned at its ``hi`` and dropped."""
    lo_a, hi_a = np.array(lo, np.int64), np.array(hi, np.int64)
    ends = np.asarray(every(np.stack([lo_a, hi_a])), np.int64)
    y_lo, y_hi = ends[0], ends[1]
    count = int((y_hi - y_lo).max(initial=0))
    levels = y_lo[None, :] + 1 + np.arange(count, dtype=np.int64)[:, None]
    wanted = levels <= y_hi[None, :]
    a = np.where(wanted, lo_a[None, :], hi_a[None, :])
    b = np.broadcast_to(hi_a[None, :], levels.shape).copy()
    while count and (a < b).any():
        mid = (a + b) // 2
        ok = np.asarray(every(mid), np.int64) >= levels
        b = np.where(ok, mid, b)
        a = np.where(ok, a, mid + 1)
    return [(int(y_lo[c]), [(int(t), int(v)) for t, v, w
                            in zip(a[:, c], levels[:, c], wanted[:, c], strict=True) if w])
            for c in range(len(lo))]


def _rounding(points, thresholds, m: int, n: int, act_min: int, act_max: int):
    """The interval of rounding constants ``r`` for which ``floor((x m + r) / 2**n)``, clamped,
    takes the value ``v`` at each ``(x, v)`` of ``points`` and steps to ``v`` exactly at each
    ``(T, v)`` of ``thresholds``; (lower, upper), empty when lower > upper."""
    lower, upper = -(1 << 80), 1 << 80
    for x, v in points:
        if v > act_min:
            lower = max(lower, (v << n) - x * m)
        if v < act_max:
            upper = min(upper, ((v + 1) << n) - 1 - x * m)
    for t, v in thresholds:
        lower = max(lower, (v << n) - t * m)
        upper = min(upper, (v << n) - 1 - (t - 1) * m)
    return lower, upper


def narrow_form(mode: RequantMode, *, acc_bits: int, bias, zero_point: int, act_min: int,
                act_max: int, multiplier=None, shift=None, scale=None,
                single_rounding: bool = False) -> NarrowForm | None:
    """The narrowest :class:`NarrowForm` equal to the reference requantization (``tflite``,
    ``float`` or ``wide``, as :mod:`accel.quant.numerics` computes it) for every accumulator
    of ``acc_bits`` bits and every channel, or None (``pow2``; or a multiplier wider than
    :data:`NARROW_MAX_BITS`).

    Why it is exact: each reference is a non-decreasing step function of ``x = acc + bias``
    (rounding, the shifts and the clamp are monotone). Its steps are found exactly by binary
    search, and ``x`` is clamped to the layer's range of steps, which changes no output.
    Every candidate is non-decreasing on each sign of ``x'``; on each such side it equals the
    reference if it does at the side's two ends and steps to level ``v`` exactly at the
    reference's step to ``v`` (a differing point would lie between a step of one and not the
    other). Those conditions bound the rounding constant from both sides; the shift grows
    from 0 until, with ``mult = round(scale * 2**shift)`` (or a neighbour), every channel's
    bounds meet. Where TFLite's arithmetic overflows (undefined), the clamp saturates.
    """
    if mode is RequantMode.POW2:
        return None
    channels = len(bias)
    acc_lo, acc_hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    chans = []
    try:
        for ch in range(channels):
            f, exact = _reference(mode, ch, zero_point=zero_point, act_min=act_min,
                                  act_max=act_max, multiplier=multiplier, shift=shift,
                                  scale=scale, single_rounding=single_rounding)
            b = int(bias[ch])
            lo, hi = max(acc_lo + b, _INT32_MIN), min(acc_hi + b, _INT32_MAX)
            lo, hi = _defined_range(f, lo, hi, min(max(b, lo), hi))
            chans.append((f, exact, lo, hi))
        every = _reference_all(mode, zero_point=zero_point, act_min=act_min, act_max=act_max,
                               multiplier=multiplier, shift=shift, scale=scale,
                               single_rounding=single_rounding)
        if every is not None:
            found = _thresholds_all(every, [c[2] for c in chans], [c[3] for c in chans])
        else:
            found = [_thresholds(f, lo, hi) for f, _, lo, hi in chans]
        chans = [(*c, y_lo, steps) for c, (y_lo, steps) in zip(chans, found, strict=True)]
    except OverflowError:
        return None
    stepping = [c for c in chans if c[5]]
    if stepping:
        x_lo = min(c[5][0][0] - 1 for c in stepping)
        x_hi = max(c[5][-1][0] for c in stepping)
    else:
        x_lo = x_hi = 0
    sides = []
    for f, exact, lo, hi, _, steps in chans:
        a, b = min(max(lo, x_lo), x_hi), max(min(hi, x_hi), x_lo)
        a, b = min(a, b), max(a, b)
        ends = sorted({a, b} | {e for e in (-1, 0) if a <= e <= b})
        at = dict(zip(ends, (int(v) for v in f(np.clip(np.array(ends, np.int64), lo, hi))),
                      strict=True))
        neg = ([(e, at[e]) for e in (a, min(b, -1)) if a < 0],
               [(t, v) for t, v in steps if a < t <= min(b, -1)])
        pos = ([(e, at[e]) for e in (max(a, 0), b) if b >= 0],
               [(t, v) for t, v in steps if max(a, 0) < t <= b])
        sides.append((exact, neg, pos))
    top = max((c[1] for c in chans), default=Fraction(0))
    for n in range(0, 200):
        if top * (1 << n) >= 1 << NARROW_MAX_BITS:
            return None
        found = []
        for exact, neg, pos in sides:
            m0 = round(exact * (1 << n))
            for m in (m0, m0 - 1, m0 + 1, m0 - 2, m0 + 2):
                if m < 0 or m >= 1 << NARROW_MAX_BITS:
                    continue
                rounds = []
                for points, steps in (neg, pos):
                    pts = [(x, v - zero_point) for x, v in points]
                    sts = [(t, v - zero_point) for t, v in steps]
                    lower, upper = _rounding(pts, sts, m, n, act_min - zero_point,
                                             act_max - zero_point)
                    if lower > upper:
                        break
                    half = 1 << n >> 1
                    rounds.append(min(max(half, lower), upper) + (zero_point << n))
                else:
                    found.append((m, rounds[0], rounds[1]))
                    break
            else:
                break
        else:
            form = NarrowForm(shift=n, x_lo=x_lo, x_hi=x_hi, mult=tuple(m for m, _, _ in found),
                              round_neg=tuple(r for _, r, _ in found),
                              round_pos=tuple(r for _, _, r in found))
            _check(form, chans, act_min, act_max)
            return form
    return None


def _check(form: NarrowForm, chans, act_min: int, act_max: int) -> None:
    """Evaluate the form against the reference at every point where either steps."""
    for ch, (f, _, lo, hi, _, steps) in enumerate(chans):
        pts = {lo, hi, -1, 0, form.x_lo, form.x_hi}
        for t, _ in steps:
            pts.update((t - 1, t))
        m = form.mult[ch]
        for r in (form.round_pos[ch], form.round_neg[ch]):
            if m:
                for k in range(act_min, act_max + 1):
                    t = -((r - (k << form.shift)) // m)  # ceil((k 2**n - r) / m)
                    pts.update((t - 1, t))
        xs = np.array(sorted(p for p in pts if lo <= p <= hi), np.int64)
        want = [int(v) for v in f(xs)]
        got = form.evaluate(ch, xs, act_min, act_max)
        if want != got:
            raise AssertionError(f"narrow form of channel {ch} differs from the reference")


_NARROW_CACHE: dict = {}


def narrow_for(mode: RequantMode, *, acc_bits: int, bias, zero_point: int, act_min: int,
               act_max: int, multiplier=None, shift=None, scale=None,
               single_rounding: bool = False) -> NarrowForm | None:
    """:func:`narrow_form`, remembered (the plan and the component ask for the same one)."""
    def key(values):
        return None if values is None else tuple(float(v) if isinstance(v, float | np.floating)
                                                 else int(v) for v in np.ravel(values))
    k = (str(mode), acc_bits, zero_point, act_min, act_max, bool(single_rounding), key(bias),
         key(multiplier), key(shift), key(scale))
    if k not in _NARROW_CACHE:
        _NARROW_CACHE[k] = narrow_form(
            mode, acc_bits=acc_bits, bias=bias, zero_point=zero_point, act_min=act_min,
            act_max=act_max, multiplier=multiplier, shift=shift, scale=scale,
            single_rounding=single_rounding)
    return _NARROW_CACHE[k]
