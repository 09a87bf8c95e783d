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
  :func:`requant_timing`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..quant.requant_mode import RequantMode
from .memory import FAMILIES, MemoryKind, MemoryPlan

__all__ = [
    "A_CHUNK",
    "B_CHUNK",
    "K_MAX",
    "WIDE_MAX_BITS",
    "RequantPlan",
    "lane_fields",
    "lane_values",
    "mult_field_bits",
    "multipliers_per_lane",
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
                mult_bits: int) -> dict[str, tuple[bool, int]]:
    """The per-lane ROM fields: name -> ``(signed, bits)``."""
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


def lane_values(mode: RequantMode, ch: int, *, acc_bits: int, out_bits: int, bias,
                multiplier=None, shift=None, scale=None) -> dict[str, int]:
    """Channel ``ch``'s ROM field values."""
    b = int(bias[ch])
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


def pipeline_stages(mode: RequantMode, *, mult_bits: int, single_rounding: bool) -> int:
    """Register stages from the input to the output FIFO (checked against the datapath)."""
    products = len(partial_products(mult_bits)) if mult_bits else 0
    multiply = 1 + math.ceil(math.log2(products)) if products else 0
    # acc/ROM, then bias, input saturation/shift, the multiply, rounding(s), clamp.
    wide = 1 + 2 + multiply + 7
    tflite = 1 + 2 + multiply + 2 + (0 if single_rounding else 1)
    return {RequantMode.TFLITE: tflite, RequantMode.FLOAT: wide + 1, RequantMode.WIDE: wide,
            RequantMode.POW2: 4}[mode]


def requant_timing(mode: RequantMode, *, mult_bits: int,
                   single_rounding: bool) -> tuple[int, int, int]:
    """``(pipeline stages, latency, FIFO depth)``. A SyncFIFOBuffered delivers a word written
    in cycle t in cycle t + 2 at the earliest, so ``latency = stages + 2``; the FIFO holds
    every beat in flight plus two, so that one beat per cycle goes through."""
    stages = pipeline_stages(mode, mult_bits=mult_bits, single_rounding=single_rounding)
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
        Hardware multipliers per family, all lanes.
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

    @classmethod
    def build(cls, *, mode: RequantMode, channels: int, lanes: int, acc_bits: int,
              out_bits: int, bias, multiplier=None, shift=None, scale=None,
              zero_point: int = 0, act_min: int, act_max: int,
              single_rounding: bool = False) -> RequantPlan:
        mode = RequantMode.parse(mode)
        mult_bits = mult_field_bits(mode, multiplier)
        fields = lane_fields(mode, acc_bits=acc_bits, out_bits=out_bits, bias=bias,
                             mult_bits=mult_bits)
        stages, latency, depth = requant_timing(mode, mult_bits=mult_bits,
                                                single_rounding=single_rounding)
        groups = -(-channels // lanes)
        lane_bits = sum(bits for _, bits in fields.values())
        return cls(
            mode=mode, channels=channels, lanes=lanes, acc_bits=acc_bits, out_bits=out_bits,
            bias=bias, multiplier=multiplier, shift=shift, scale=scale,
            zero_point=zero_point, act_min=act_min, act_max=act_max,
            single_rounding=single_rounding, mult_bits=mult_bits, fields=fields,
            stages=stages, latency=latency, fifo_depth=depth,
            params=MemoryPlan("requant", MemoryKind.ROM, groups, lanes * lane_bits),
            # SyncFIFOBuffered(depth) stores depth - 1 words in its memory.
            fifo=MemoryPlan("requant_fifo", MemoryKind.FIFO, depth - 1, lanes * out_bits + 1),
            multipliers={f: lanes * multipliers_per_lane(mult_bits, f) if mult_bits else 0
                         for f in FAMILIES},
        )

    def component_args(self) -> dict:
        """Keyword arguments of :class:`~accel.hw.requantizer.Requantizer`."""
        args = dict(channels=self.channels, lanes=self.lanes, acc_bits=self.acc_bits,
                    out_bits=self.out_bits, mode=self.mode, bias=self.bias,
                    zero_point=self.zero_point, act_min=self.act_min, act_max=self.act_max,
                    single_rounding=self.single_rounding)
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
                "lane_bits": sum(b for _, b in self.fields.values()),
                "stages": self.stages, "latency": self.latency, "fifo_depth": self.fifo_depth,
                "multipliers": dict(self.multipliers)}
