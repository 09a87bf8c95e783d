"""Joins in the hardware plan: the residual ``Add`` stage and the depth of its skip buffers.

A tensor read by two nodes is a *fork* (:class:`~accel.hw.fork.Fork` hands each beat to both
consumers and retires it once both have taken it); the two branches meet again at an
:class:`AddStagePlan` (:class:`~accel.hw.add_stage.AddStage`: a
:class:`~accel.hw.add_merge.SkipBuffer` on each input that needs one, then the
:class:`~accel.hw.add_merge.AddMerge`). The planner supports series-parallel graphs of depth
one: every join's two branches are chains from one fork tensor, with no other fork or join
inside them (ResNet-8's residual blocks, with or without a projection on the skip path).

Why the skip depth suffices (:func:`skip_depths`)
------------------------------------------------
Count every stream in beats of one frame and extend it periodically (frame ``f``'s beat ``k``
is beat ``f * N + k``). For each beat ``k`` of a join input ``X`` (reached from the fork tensor
``F`` through a chain of nodes) two numbers are derived from the geometry alone:

- ``need_X[k]``: an upper bound on the beats of ``F`` the branch must accept before it can offer
  beat ``k`` of ``X`` -- every node is assumed to need the *whole last input row* of the
  windows of the outputs up to ``k`` (the whole input for a Dense layer or a global mean, the
  whole pixel for a regroup), which is at least what the window generator, the pools and the
  regroups wait for;
- ``dep_X[k]``: a lower bound on the beats of ``F`` the branch has accepted once it has offered
  beat ``k`` (the bottom-right input pixel of its window -- its last beat for a convolution,
  which reduces over all channels, its first otherwise -- for every output up to ``k``; for a
  regroup the beat holding the output's last channel): no node can offer an output before
  the input it is computed from.

Suppose the pipeline stops for good with the join waiting for beat ``k`` of input ``a`` while
input ``b``'s beat ``k`` waits at the join. The fork is stuck (otherwise ``a`` would get its
input), so one consumer refuses beats for good; a branch refuses only when its output is full,
so it is ``b``: its buffer of ``D_b`` beats holds beats ``k .. k + D_b - 1`` and the branch
offers ``k + D_b``, having accepted at least ``dep_b[k + D_b]`` beats of ``F``; and ``a`` has
had every beat the fork delivered without offering beat ``k``, fewer than ``need_a[k]``. The
fork delivers beats to both sides alike (it is one beat ahead at most), so
``dep_b[k + D_b] < need_a[k]``. Choosing ``D_b`` as the least depth with
``need_a[k] <= dep_b[k + D_b]`` for every ``k`` (and the same for ``a``) rules that out for
every image sequence, because both bounds are properties of the geometry, not of the data
(:func:`~accel.hw.add_merge.skip_buffer_depth`'s rule with the lead made explicit). On top of
the depth for freedom from deadlock, a buffered input gets the other branch's pipeline latency
in beats, so the fork does not stall while the first result travels (and at least 3 beats, the
least depth at which a skip buffer takes a beat every cycle). Last, :func:`deepen_skip_buffers`
makes each buffer as deep as the timing model finds it filling with images back to back, so
that in steady state no fork waits on a full buffer (the long branch never starves) and the
plan's latency and interval stay exact (:func:`accel.plan.timing.join_timing_fault` checks
that and the model's other assumptions).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..quant.numerics import signed_bits_for
from ..spec.shapes import ceil_div, window_2d
from .blocks import RegroupPlan, constant_product_multipliers
from .memory import FAMILIES, MemoryKind, MemoryPlan
from .stage_base import LaneStage

__all__ = ["ADD_LATENCY", "AddDatapath", "AddStagePlan", "ConstantProduct", "add_datapath",
           "add_lane_count", "branch_bounds", "deepen_skip_buffers", "skip_depths"]

#: :attr:`accel.hw.add_merge.AddMerge.latency`: the register stages of :class:`AddDatapath`
#: (the inputs as they come; their offsets; the input products' pieces; their sums; the high
#: multiply's rounding; the rounding shift; the sum of the two inputs; the output product's
#: pieces; its partial sums; their sum; the high multiply's rounding; the rounding shift;
#: zero point and clamp).
ADD_LATENCY = 13
#: :attr:`accel.hw.add_merge.SkipBuffer.latency`: a SyncFIFOBuffered's memory write, its
#: synchronous read, and its output register (measured: a beat taken in cycle ``t`` is
#: offered from ``t + 2``).
SKIP_LATENCY = 2
#: The least SkipBuffer depth that takes a beat every cycle: with depth 2 the FIFO's one-word
#: memory is full every other cycle (measured: one beat per two cycles).
SKIP_FULL_RATE_DEPTH = 3
#: Pieces of a product: ``CHUNK``-bit unsigned pieces of the constant (and of the wide
#: operand), each an 18-bit signed multiplier input (ECP5 MULT18X18D).
CHUNK = 17
#: TFLite int8 ADD's left shift of both inputs.
LEFT_SHIFT = 20
_INT8 = (-128, 127)


def _floor_shift(x: int, shift: int) -> int:
    return x >> shift if shift >= 0 else x << -shift


def srdhm_shifted(p: int, k: int) -> int:
    """``SaturatingRoundingDoublingHighMul`` of a product ``p * 2**k`` (``k >= 0``; the
    saturating case cannot occur, a multiplier is non-negative): ``p << (k - 31)`` when
    ``k >= 31`` (exact), else ``(p + 2**(j - 1)) >> j`` with ``j = 31 - k``, which is gemmlowp's
    nudge (``2**30`` or ``1 - 2**30``) and truncation toward zero written as one addition of
    a constant and a floor shift (ties up for ``p >= 0``, toward zero for ``p < 0``)."""
    j = 31 - k
    if j <= 0:
        return p << -j
    return (p + (1 << (j - 1))) >> j


def rdbpot(x: int, exponent: int) -> int:
    """``RoundingDivideByPOT(x, exponent)``, ``exponent >= 0``: ``(x + 2**(e - 1) - (x < 0))
    >> e`` (ties away from zero), one addition of a constant chosen by the sign."""
    if exponent == 0:
        return x
    return (x + (1 << (exponent - 1)) - (x < 0)) >> exponent


def piece_multipliers(a_bits: int, odd: int) -> dict:
    """Hardware multipliers per family of one piece: an ``a_bits``-bit signed value times an
    odd constant of at most :data:`CHUNK` bits (``odd + 1`` bits signed, as amaranth makes
    it). ECP5: one MULT18X18D when both operands have 2 bits or more (the pieces fit 18 x 18).
    Gowin, in MULT9X9 units: a MULT9X9 when both operands fit 9 bits signed, else a MULT18X18
    (2); none below 4 bits. iCE40 (SB_MAC16, 16 x 16): one, or two when both operands are
    wider than 16 bits; none below :func:`constant_product_multipliers`' minimum sizes.
    Measured exact on the builds of ``tests/synth/test_add_stage_synth.py``."""
    base = constant_product_multipliers(a_bits, odd)
    b_bits = odd.bit_length() + 1
    gowin = base["gowin"] * (1 if a_bits <= 9 and b_bits <= 9 else 2)
    ice40 = base["ice40"] * (2 if a_bits > 16 and b_bits > 16 else 1)
    return {**base, "gowin": gowin, "ice40": ice40}


@dataclass(frozen=True)
class ConstantProduct:
    """``a * constant`` for a signed ``a`` in ``[lo, hi]``, as the hardware builds it: the
    constant's factors of two are a shift (``shift``), its odd part is cut into
    :data:`CHUNK`-bit pieces, each again without its factors of two; ``pieces`` are
    ``(offset, odd)``: the product is ``sum((a * odd) << offset) << shift``. A piece with
    ``odd == 1`` is a shift, not a multiplier."""

    a_lo: int
    a_hi: int
    shift: int
    pieces: tuple[tuple[int, int], ...]

    @classmethod
    def build(cls, lo: int, hi: int, constant: int) -> ConstantProduct:
        shift = 0
        while constant and constant % 2 == 0:
            constant //= 2
            shift += 1
        pieces = []
        offset = 0
        while constant >> offset:
            chunk = (constant >> offset) & ((1 << CHUNK) - 1)
            tz = 0
            while chunk and chunk % 2 == 0:
                chunk //= 2
                tz += 1
            if chunk:
                pieces.append((offset + tz, chunk))
            offset += CHUNK
        return cls(a_lo=lo, a_hi=hi, shift=shift, pieces=tuple(pieces))

    @property
    def a_bits(self) -> int:
        return signed_bits_for(self.a_lo, self.a_hi)

    def piece_range(self, odd: int) -> tuple[int, int]:
        return self.a_lo * odd, self.a_hi * odd

    def value(self, a: int) -> int:
        """The product without its ``shift`` (``sum((a * odd) << offset)``)."""
        return sum((a * odd) << offset for offset, odd in self.pieces)

    def multipliers(self, family: str) -> int:
        """Hardware multipliers of the pieces (:func:`piece_multipliers`)."""
        return sum(piece_multipliers(self.a_bits, odd)[family] for _, odd in self.pieces)


@dataclass(frozen=True)
class AddDatapath:
    """The integer datapath of one :class:`~accel.hw.add_merge.AddMerge` lane (TFLite int8
    ``ADD``), every width from the exact range of its values over all int8 inputs (each step
    is non-decreasing in its input, so the ranges are those of the extreme inputs).

    Per input ``i`` (``inputs[i]``: ``(zero_point, product, shift)``)::

        x                                                     (register)
        d  = x - zero_point                                   (register)
        q  = pieces of d * odd(M_i)                           (register per piece)
        p  = sum of the pieces                                (register)
        h  = srdhm_shifted(p, 20 + product.shift)             (register)
        s  = rdbpot(h, -shift_i)                              (register)

    then ``t = s_0 + s_1`` (register), and ``t * M_o`` with ``t`` cut into :data:`CHUNK`-bit
    pieces (``out_split``: the low pieces unsigned, the top one signed) times each constant
    piece (register per piece), the sums per constant piece (register), their sum (register),
    ``srdhm_shifted`` (register), ``rdbpot`` (register), ``+ zp_o`` and the clamp (the output
    register): :data:`ADD_LATENCY` stages.
    """

    inputs: tuple[tuple[int, ConstantProduct, int], tuple[int, ConstantProduct, int]]
    output_product: ConstantProduct
    output_shift: int
    output_zero_point: int
    act_min: int
    act_max: int
    sum_lo: int
    sum_hi: int

    @property
    def sum_bits(self) -> int:
        return signed_bits_for(self.sum_lo, self.sum_hi)

    @property
    def out_split(self) -> tuple[tuple[int, int, bool], ...]:
        """The pieces of the sum ``t``: ``(offset, bits, signed)``, low to high."""
        bits = self.sum_bits
        parts, offset = [], 0
        while bits - offset > CHUNK + 1:
            parts.append((offset, CHUNK, False))
            offset += CHUNK
        parts.append((offset, bits - offset, True))
        return tuple(parts)

    def split_range(self, offset: int, bits: int, signed: bool) -> tuple[int, int]:
        """The range of one piece of ``t`` (:attr:`out_split`)."""
        if signed:
            return self.sum_lo >> offset, self.sum_hi >> offset
        return 0, (1 << bits) - 1

    def scaled(self, i: int, x: int) -> int:
        zp, product, shift = self.inputs[i]
        return rdbpot(srdhm_shifted(product.value(x - zp), LEFT_SHIFT + product.shift), -shift)

    def output(self, total: int) -> int:
        product = self.output_product
        raw = rdbpot(srdhm_shifted(product.value(total), product.shift), -self.output_shift)
        return min(max(raw + self.output_zero_point, self.act_min), self.act_max)

    def add(self, x0: int, x1: int) -> int:
        """The lane's result for int8 inputs ``x0``, ``x1`` (the hardware's steps in Python)."""
        return self.output(self.scaled(0, x0) + self.scaled(1, x1))

    @property
    def latency(self) -> int:
        return ADD_LATENCY

    def multipliers(self, family: str) -> int:
        """Hardware multipliers of one lane on ``family``: every piece of the two input
        products, and every (sum piece, constant piece) pair of the output product."""
        n = sum(product.multipliers(family) for _, product, _ in self.inputs)
        for offset, bits, signed in self.out_split:
            lo, hi = self.split_range(offset, bits, signed)
            n += sum(piece_multipliers(signed_bits_for(lo, hi), odd)[family]
                     for _, odd in self.output_product.pieces)
        return n


def add_datapath(*, zero_points: tuple[int, int], multipliers_q31, output_zero_point: int,
                 act_min: int = _INT8[0], act_max: int = _INT8[1]) -> AddDatapath:
    """The :class:`AddDatapath` of an ``ADD`` with input zero points ``zero_points`` and
    ``multipliers_q31`` ``((M_1, shift_1), (M_2, shift_2), (M_o, shift_o))``."""
    inputs = []
    for zp, (mult, shift) in zip(zero_points, multipliers_q31[:2], strict=True):
        inputs.append((zp, ConstantProduct.build(_INT8[0] - zp, _INT8[1] - zp, mult), shift))
    path = AddDatapath(inputs=tuple(inputs), output_product=None,
                       output_shift=multipliers_q31[2][1], output_zero_point=output_zero_point,
                       act_min=act_min, act_max=act_max, sum_lo=0, sum_hi=0)
    lo = sum(path.scaled(i, _INT8[0]) for i in (0, 1))
    hi = sum(path.scaled(i, _INT8[1]) for i in (0, 1))
    return dataclasses.replace(path, sum_lo=lo, sum_hi=hi,
                               output_product=ConstantProduct.build(lo, hi,
                                                                    multipliers_q31[2][0]))


def add_lane_count(pixels: int, channels: int, target: int) -> int:
    """The fewest lanes (1..channels) that take an ``Add`` of ``pixels`` pixels within
    ``target`` cycles per frame at one beat per cycle (all channels if none does)."""
    for lanes in range(1, channels + 1):
        if pixels * ceil_div(channels, lanes) <= target:
            return lanes
    return channels


@dataclass(frozen=True, eq=False)
class AddStagePlan(LaneStage):
    """A residual ``Add`` (TFLite int8 ADD of two aligned streams): the
    :class:`~accel.hw.add_stage.AddStage`.

    Members
    -------
    index, layer, pool, kind, geometry, cycles, inputs, output : as
        :class:`~accel.plan.plan.StagePlan` (``kind`` is ``add``, ``pool`` None,
        ``geometry`` the 1x1 "window" on the output shape; ``inputs`` are the two tensors,
        ``lanes`` values per beat each, in the layer's input order).
    rows, cols, macs : int
        0: no array.
    lanes : int
        Channels per beat on both inputs and the output.
    in_bits, out_bits, in_zero_point, out_zero_point, out_scale : as ``StagePlan``
        (``in_*`` are the first input's).
    zero_points : tuple of int
        The two inputs' zero points.
    multipliers_q31 : tuple of (int, int)
        ``(multiplier, shift)`` of input 1, input 2 and the output (``add.cc``'s).
    act_min, act_max : int
        The fused activation's clamp.
    skip_depths : tuple of int
        Beats of :class:`~accel.hw.add_merge.SkipBuffer` on each input (0: none), from
        :func:`skip_depths` (see the module documentation for why they suffice).
    leads : tuple of int
        The least depth per input for freedom from deadlock (``skip_depths`` without the
        latency margin), for the record.
    """

    index: int
    layer: str
    pool: None
    kind: str
    geometry: object
    rows: int
    cols: int
    cycles: int
    macs: int
    inputs: tuple[str, str]
    output: str
    in_bits: int
    out_bits: int
    in_zero_point: int
    out_zero_point: int
    out_scale: float
    lanes: int
    zero_points: tuple[int, int]
    multipliers_q31: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    act_min: int
    act_max: int
    skip_depths: tuple[int, int]
    leads: tuple[int, int]
    window: None = None
    requant: None = None

    @property
    def channels(self) -> int:
        return self.geometry.filters

    @property
    def memories(self) -> tuple[MemoryPlan, ...]:
        """The skip buffers (a SyncFIFOBuffered's depth counts its output register)."""
        return tuple(MemoryPlan("skip_fifo", MemoryKind.FIFO, depth - 1, self.lanes * 8 + 1)
                     for depth in self.skip_depths if depth > 1)

    @property
    def datapath(self) -> AddDatapath:
        """One lane's datapath (:func:`add_datapath`)."""
        return add_datapath(zero_points=self.zero_points, multipliers_q31=self.multipliers_q31,
                            output_zero_point=self.out_zero_point, act_min=self.act_min,
                            act_max=self.act_max)

    @property
    def multipliers(self) -> dict:
        return {f: self.lanes * self.datapath.multipliers(f) for f in FAMILIES}

    @property
    def latencies(self) -> dict:
        return {"add": self.datapath.latency}

    def component_args(self) -> dict:
        """The :class:`~accel.hw.add_merge.AddMerge` parameters (input 1 is ``residual``)."""
        (m1, e1), (m2, e2), (mo, eo) = self.multipliers_q31
        return dict(channels=self.channels, lanes=self.lanes,
                    residual_zero_point=self.zero_points[0],
                    shortcut_zero_point=self.zero_points[1],
                    output_zero_point=self.out_zero_point, residual_multiplier=m1,
                    residual_shift=e1, shortcut_multiplier=m2, shortcut_shift=e2,
                    output_multiplier=mo, output_shift=eo, act_min=self.act_min,
                    act_max=self.act_max)

    def to_json(self) -> dict:
        return {"lanes": self.lanes, "zero_points": list(self.zero_points),
                "multipliers": [list(p) for p in self.multipliers_q31],
                "act": [self.act_min, self.act_max], "skip_depths": list(self.skip_depths),
                "leads": list(self.leads), "latency": ADD_LATENCY}


# --- the bounds -------------------------------------------------------------------------------


def _running_max(values: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(values)


def _window_bounds(stage, need_in: np.ndarray, dep_in: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(need, dep)`` per output beat of a windowed stage (conv with its fused pool,
    depthwise, pooling), from the same per input beat."""
    g = stage.geometry
    in_groups = ceil_div(g.in_channels, stage.in_lanes)
    win = window_2d((g.in_h, g.in_w), g.kernel, g.strides, g.padding)
    oh, ow = win.out_shape
    # Per output pixel of the window: the last input row (need) and the bottom-right pixel
    # (dep), clipped to the image.
    last_row = np.array([min(g.in_h - 1, win.rows.start(r) + g.kernel[0] - 1)
                         for r in range(oh)])
    last_col = np.array([min(g.in_w - 1, win.cols.start(c) + g.kernel[1] - 1)
                         for c in range(ow)])
    rows_need = (last_row + 1) * g.in_w * in_groups - 1  # index of the row's last beat
    # A convolution reduces over every channel: it waits for the pixel's last beat; a
    # depthwise or pooling stage's first output group for the pixel's first at least.
    reduce = in_groups - 1 if getattr(stage, "k_tiles", None) is not None else 0
    pixel_dep = ((last_row[:, None] * g.in_w + last_col[None, :]) * in_groups
                 + reduce).reshape(-1)
    need_px = np.repeat(need_in[rows_need], ow)
    dep_px = dep_in[pixel_dep]
    pool = getattr(stage, "maxpool", None)
    if pool is not None:  # the fused pool's windows over the conv's output pixels
        pw = window_2d((pool.height, pool.width), pool.pool, pool.strides, pool.padding)
        ph, pww = pw.out_shape
        prow = np.array([min(pool.height - 1, pw.rows.start(r) + pool.pool[0] - 1)
                         for r in range(ph)])
        pcol = np.array([min(pool.width - 1, pw.cols.start(c) + pool.pool[1] - 1)
                         for c in range(pww)])
        need_px = np.repeat(need_px[(prow + 1) * pool.width - 1], pww)
        dep_px = dep_px[(prow[:, None] * pool.width + pcol[None, :]).reshape(-1)]
    out_groups = ceil_div(g.filters, stage.out_lanes)
    return np.repeat(need_px, out_groups), np.repeat(dep_px, out_groups)


def _node_bounds(node, need_in: np.ndarray, dep_in: np.ndarray) -> tuple[np.ndarray, ...]:
    if isinstance(node, RegroupPlan):
        g_in, g_out = ceil_div(node.channels, node.lanes_in), ceil_div(node.channels,
                                                                      node.lanes_out)
        pixels = len(need_in) // g_in
        pixel = np.repeat(np.arange(pixels), g_out)
        group = np.tile(np.arange(g_out), pixels)
        need = need_in[(pixel + 1) * g_in - 1]
        # An output beat is complete once the input beat with its last channel is in.
        last = np.minimum((group + 1) * node.lanes_out, node.channels) - 1
        dep = dep_in[pixel * g_in + last // node.lanes_in]
        return need, dep
    if node.window is None and node.kind != "avg_pool2d" and node.kind != "max_pool2d":
        # Dense, global mean: every output needs the whole input.
        beats = node.geometry.out_h * node.geometry.out_w * ceil_div(node.geometry.filters,
                                                                     node.out_lanes)
        return np.full(beats, need_in[-1]), np.full(beats, dep_in[-1])
    return _window_bounds(node, need_in, dep_in)


def branch_bounds(chain, fork_beats: int) -> tuple[np.ndarray, np.ndarray]:
    """``(need, dep)`` per beat of the last tensor of ``chain`` (the nodes from the fork tensor
    of ``fork_beats`` beats per frame to a join input, in order), counted in fork beats (see
    the module documentation); running maxima, so both are non-decreasing."""
    need = dep = np.arange(1, fork_beats + 1)
    for node in chain:
        need, dep = _node_bounds(node, need, dep)
        need, dep = _running_max(need), _running_max(dep)
    return need, dep


def _least_depth(need_other: np.ndarray, dep: np.ndarray, fork_beats: int) -> int:
    """The least ``D >= 0`` with ``need_other[k] <= dep[k + D]`` for every ``k`` (indices past
    the frame wrap into the next frame, ``fork_beats`` further on)."""
    n = len(dep)
    k = np.arange(n)

    def ok(depth: int) -> bool:
        frames, index = np.divmod(k + depth, n)
        return bool(np.all(need_other <= frames * fork_beats + dep[index]))

    lo, hi = 0, n  # at D = n every input beat of the frame is accepted: dep >= frame
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _chain_latency(chain) -> int:
    return sum(node.latency if isinstance(node, RegroupPlan) else sum(node.latencies.values())
               for node in chain)


def skip_depths(chains, fork_beats: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(depths, leads)`` of the two join inputs reached from a fork tensor of ``fork_beats``
    beats per frame through ``chains`` (two node lists, maybe empty). ``leads`` are the least
    depths that rule out deadlock (module documentation); ``depths`` add, to an input that
    needs a buffer, the other branch's pipeline latency in beats (one beat per cycle at most),
    so that the fork keeps moving while the other branch's first result travels, and at least
    :data:`SKIP_FULL_RATE_DEPTH` (a shallower buffer would halve the rate)."""
    bounds = [branch_bounds(chain, fork_beats) for chain in chains]
    if len(bounds[0][0]) != len(bounds[1][0]):
        raise ValueError(f"the join's inputs have {len(bounds[0][0])} and {len(bounds[1][0])} "
                         f"beats per frame")
    leads = tuple(_least_depth(bounds[1 - i][0], bounds[i][1], fork_beats) for i in (0, 1))
    depths = tuple(max(lead + _chain_latency(chains[1 - i]), SKIP_FULL_RATE_DEPTH) if lead
                   else 0 for i, lead in enumerate(leads))
    return depths, leads


def deepen_skip_buffers(plan):
    """``plan`` with every skip buffer at least as deep as the timing model says it fills
    (images back to back, no gaps or stalls; :func:`accel.plan.timing.frame_times`), plus a
    beat to spare, so that in that steady state no fork ever waits for a full skip buffer:
    the long branch never starves and the plan's timing stays exact
    (:func:`accel.plan.timing.join_timing_fault`). The depths for freedom from deadlock
    (:func:`skip_depths`) are the least; this only adds to them. The deeper buffers do not
    change the modelled times (the model assumes buffers that never fill), so one pass
    suffices."""
    from .timing import _PERIOD_FRAMES, frame_times

    record: dict = {}
    frame_times(plan, _PERIOD_FRAMES, record=record)
    stages = []
    for stage in plan.stages:
        if isinstance(stage, AddStagePlan):
            takes = np.asarray(record["takes"][stage.output])
            depths = []
            for depth, tensor in zip(stage.skip_depths, stage.inputs, strict=True):
                if depth:
                    entered = np.asarray(record["accepted"][(tensor, id(stage))])
                    # Beats ahead of beat k still in the buffer when k enters (the merge
                    # takes them in order, so they are the last ones before k).
                    waiting = np.arange(len(takes)) - np.searchsorted(takes, entered,
                                                                      side="left")
                    depth = max(depth, int(waiting.max()) + 1)
                depths.append(depth)
            stage = dataclasses.replace(stage, skip_depths=tuple(depths))
        stages.append(stage)
    return dataclasses.replace(plan, stages=tuple(stages))
