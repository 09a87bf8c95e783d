"""Sub-plans of a compute stage's blocks, and the functions that size them.

Each sub-plan carries every parameter its component is built from (``Component.from_plan``)
and every fact that costs something: memories (:class:`~accel.plan.memory.MemoryPlan`),
hardware multipliers per family, FIFO depths and latencies. The sizing functions here are the
ones the components call (:mod:`accel.hw.window`, :mod:`accel.hw.mac_array`,
:mod:`accel.hw.maxpool`), so the plan and the hardware cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..quant.numerics import accumulator_range, int_range, signed_bits_for
from ..spec.shapes import AxisWindow, ceil_div, window_2d
from .memory import FAMILIES, MemoryKind, MemoryPlan

__all__ = [
    "DEFAULT_BANK_DEPTH",
    "DEPTHWISE_FIFO_DEPTH",
    "DEPTHWISE_PE_STAGES",
    "MULT18X18D_BITS",
    "MUX_FANIN",
    "AVG_POOL_LATENCY",
    "MEAN_CREDITS",
    "MEAN_LATENCY",
    "MEAN_STAGES",
    "AccumulatorPlan",
    "ArrayPlan",
    "AvgPoolPlan",
    "MeanPlan",
    "DepthwisePlan",
    "PoolPlan",
    "RegroupPlan",
    "ReplayPlan",
    "WindowPlan",
    "array_latency",
    "array_stream_timing",
    "axis_table",
    "bank_stages",
    "constant_product_multipliers",
    "depthwise_frame_cycles",
    "depthwise_lane_count",
    "line_buffer_rows",
    "mux_levels",
    "pool_slots",
    "pool_stage_cycles",
    "psum_bits",
    "regroup_latency",
    "sum_bits",
]

# --- window generator -----------------------------------------------------------------------


def line_buffer_rows(kernel: tuple[int, int], strides: tuple[int, int]) -> int:
    """Input rows the window generator holds: ``kh - 1`` of history plus the ``sh`` that the
    next output row adds (see :mod:`accel.hw.window`)."""
    return kernel[0] + strides[0] - 1


#: Cycles from a window beat's read address to the beat on the window generator's output: the
#: block RAM read, then the output register.
WINDOW_READ_LATENCY = 2
#: The window generator's ``latency``: cycles from the cycle it takes an input beat to the cycle
#: the first window beat that reads it is offered on ``windows``, when the reader is waiting for
#: that pixel and the consumer is ready: the write, the reader's availability register (which
#: sees the writer's state of the cycle before: off the path of its handshakes, for Fmax),
#: then :data:`WINDOW_READ_LATENCY`.
WINDOW_LATENCY = 2 + WINDOW_READ_LATENCY


@dataclass(frozen=True)
class WindowPlan:
    """A :class:`~accel.hw.window.WindowGenerator`: its parameters and line buffer."""

    height: int
    width: int
    channels: int
    kernel: tuple[int, int]
    strides: tuple[int, int]
    padding: str
    lanes: int
    zero_point: int
    bits: int
    buffer_rows: int
    groups: int
    beats_per_window: int
    #: :data:`WINDOW_LATENCY`.
    latency: int
    memory: MemoryPlan

    @classmethod
    def build(cls, *, height, width, channels, kernel, strides, padding, lanes, zero_point,
              bits) -> WindowPlan:
        rows = line_buffer_rows(kernel, strides)
        groups = ceil_div(channels, lanes)
        return cls(height=height, width=width, channels=channels, kernel=tuple(kernel),
                   strides=tuple(strides), padding=padding, lanes=lanes,
                   zero_point=zero_point, bits=bits, buffer_rows=rows, groups=groups,
                   beats_per_window=kernel[0] * kernel[1] * groups,
                   latency=WINDOW_LATENCY,
                   memory=MemoryPlan("line_buffer", MemoryKind.RAM, rows * width * groups,
                                     lanes * bits))

    def component_args(self) -> dict:
        return dict(height=self.height, width=self.width, channels=self.channels,
                    kernel=self.kernel, strides=self.strides, padding=self.padding,
                    lanes=self.lanes, zero_point=self.zero_point, bits=self.bits)


# --- window replay --------------------------------------------------------------------------

#: Entries of a :class:`~accel.hw.batch.BatchReplay`'s output FIFO (absorbs output stalls; a
#: :class:`~accel.hw.replay.WindowReplay` has an output register instead).
REPLAY_FIFO_DEPTH = 3
#: The replay's ``latency``: cycles from the cycle it takes a window's last beat to the cycle
#: the window's first replayed beat is offered on ``o``, when the previous window's replays are
#: done and the consumer is ready (the bank's ``full`` bit, the block RAM read, the output
#: register).
#: Cycles from a replayed beat's block RAM read to the beat offered on ``o`` (the read, then the
#: output register or FIFO); a bank is free for the next window the cycle after its last read.
REPLAY_READ_AHEAD = 2
REPLAY_LATENCY = 1 + REPLAY_READ_AHEAD


@dataclass(frozen=True)
class ReplayPlan:
    """A :class:`~accel.hw.replay.WindowReplay`: two banks of ``Kt`` words; ``fifo`` is the output
    FIFO of the :class:`~accel.hw.batch.BatchReplay` a batched streamed stage has instead."""

    lanes: int
    k_tiles: int
    f_tiles: int
    bits: int
    memory: MemoryPlan
    fifo: MemoryPlan
    #: :data:`REPLAY_LATENCY`.
    latency: int = REPLAY_LATENCY

    @classmethod
    def build(cls, *, lanes, k_tiles, f_tiles, bits) -> ReplayPlan:
        # The (BatchReplay's) FIFO is an amaranth SyncFIFO (asynchronous read): logic, never a
        # block RAM.
        # kt, ft and addr = ft * Kt + kt (each at least one bit), first, last and frame_last
        # (accel.hw.replay.replay_layout).
        tag_bits = (max(k_tiles - 1, 1).bit_length() + max(f_tiles - 1, 1).bit_length()
                    + max(k_tiles * f_tiles - 1, 1).bit_length() + 3)
        return cls(lanes=lanes, k_tiles=k_tiles, f_tiles=f_tiles, bits=bits,
                   memory=MemoryPlan("replay", MemoryKind.RAM, 2 * k_tiles, lanes * bits),
                   fifo=MemoryPlan("replay_fifo", MemoryKind.FIFO, REPLAY_FIFO_DEPTH,
                                   lanes * bits + tag_bits, sync_read=False))

    def component_args(self) -> dict:
        return dict(lanes=self.lanes, k_tiles=self.k_tiles, f_tiles=self.f_tiles,
                    bits=self.bits)


# --- systolic array -------------------------------------------------------------------------

#: Inputs of each registered multiplexer in a banked ROM's tree.
MUX_FANIN = 8
#: Deepest unbanked weight ROM: 8192 words of up to 8 bits fill four 16-kbit block RAMs used
#: 8192 deep (ECP5 DP16KD 8192x2, iCE40 SB_RAM40_4K 2048x2 in fours), so a bank needs no
#: multiplexer inside it.
DEFAULT_BANK_DEPTH = 8192
#: Width of each signed input of the ECP5 MULT18X18D, which a PE instantiates (registered) when
#: its operands fit.
MULT18X18D_BITS = 18


def mux_levels(banks: int) -> int:
    """Levels of the registered ``MUX_FANIN``:1 tree that picks one of ``banks`` banks."""
    levels = 0
    while banks > 1:
        banks, levels = -(-banks // MUX_FANIN), levels + 1
    return levels


def bank_stages(depth: int, bank_depth: int) -> int:
    """Register stages a PE gains when its ``depth``-word ROM is banked (0 if it is not): the
    bank address register, the bank output register and one per multiplexer level."""
    banks = -(-depth // bank_depth)
    return 2 + mux_levels(banks) if banks > 1 else 0


def array_latency(rows: int, cols: int, depth: int, bank_depth: int) -> int:
    """:class:`~accel.hw.mac_array.SystolicArray` latency: skew, 4 stages per PE on the way
    down (ROM, DSP input, multiply, add) and deskew, plus the banked ROM's stages."""
    return rows + cols + 2 + bank_stages(depth, bank_depth)


def array_stream_timing(rows: int, cols: int, depth: int, bank_depth: int) -> tuple[int, int]:
    """``(latency, fifo_depth)`` of :class:`~accel.hw.mac_array.MacArrayStream`: 1 through
    the input register, the array, 2 through the FIFO; the FIFO holds ``latency + 1`` beats,
    the fewest that sustain one beat per cycle."""
    latency = 1 + array_latency(rows, cols, depth, bank_depth) + 2
    return latency, latency + 1


def sum_bits(terms: int, input_bits: int, w_range: tuple[int, int]) -> int:
    """Bits for any sum of ``terms`` products ``x * w`` (``x`` any ``input_bits`` value)."""
    return signed_bits_for(
        *accumulator_range(terms=terms, x_range=int_range(input_bits), w_range=w_range))


def psum_bits(rows: int, input_bits: int, weights: np.ndarray) -> tuple[int, ...]:
    """Width of the partial sum leaving each row: ``r + 1`` products of these weights (0
    included: a ROM may be all zeros, and the range must contain every partial sum)."""
    w_range = (min(int(weights.min()), 0), max(int(weights.max()), 0))
    return tuple(sum_bits(r + 1, input_bits, w_range) for r in range(rows))


def _weight_roms(depth: int, bank_depth: int, weight_bits: int,
                 pes: int) -> tuple[MemoryPlan, ...]:
    if depth <= bank_depth:
        return (MemoryPlan("weights", MemoryKind.ROM, depth, weight_bits, pes),)
    full, rest = divmod(depth, bank_depth)
    roms = [MemoryPlan("weights", MemoryKind.ROM, bank_depth, weight_bits, pes * full)]
    if rest:
        roms.append(MemoryPlan("weights", MemoryKind.ROM, rest, weight_bits, pes))
    return tuple(roms)


@dataclass(frozen=True, eq=False)
class ArrayPlan:
    """A :class:`~accel.hw.mac_array.MacArrayStream` with its weights.

    Members
    -------
    rows, cols, k_tiles, f_tiles : int
    depth : int
        Weight sets per PE, ``Kt * Ft`` (the ROM depth).
    input_bits, weight_bits, acc_bits, tag_bits : int
    psum_bits : tuple of int
        Partial-sum width leaving each row (:func:`psum_bits`).
    bank_depth, banks : int
    weights : numpy.ndarray, shape (depth, rows, cols)
        The tiled weights (:func:`accel.plan.lower.tile_weights`).
    latency, fifo_depth : int
        :func:`array_stream_timing`.
    weight_roms : tuple of MemoryPlan
        Every PE's ROM, as its banks: the full ``bank_depth``-word banks, then the last (none
        when ``streamed``).
    fifo : MemoryPlan
    multipliers : dict
        Per family: one per PE (Gowin counts 9x9 halves: two for operands past 9 x 9 bits).
    streamed : bool
        The weights come with each input beat (a weight stream, :mod:`accel.plan.weights`)
        instead of from ROMs; ``weights`` is then what the stream carries.
    """

    rows: int
    cols: int
    k_tiles: int
    f_tiles: int
    depth: int
    input_bits: int
    weight_bits: int
    acc_bits: int
    tag_bits: int
    psum_bits: tuple[int, ...]
    bank_depth: int
    banks: int
    weights: np.ndarray = field(repr=False)
    latency: int
    fifo_depth: int
    weight_roms: tuple[MemoryPlan, ...]
    fifo: MemoryPlan
    multipliers: dict
    streamed: bool = False

    @classmethod
    def build(cls, *, rows, cols, k_tiles, f_tiles, input_bits, weight_bits, weights,
              act_bits, tag_bits=3, bank_depth=DEFAULT_BANK_DEPTH,
              streamed=False) -> ArrayPlan:
        depth = k_tiles * f_tiles
        psums = psum_bits(rows, input_bits, weights)
        acc_bits = sum_bits(rows, input_bits, int_range(weight_bits))  # any weights
        # A streamed array has no ROM to bank: its PEs' timing is that of a one-bank ROM.
        latency, fifo_depth = array_stream_timing(rows, cols, 1 if streamed else depth,
                                                  bank_depth)
        banks = -(-depth // bank_depth)
        pes = rows * cols
        # Gowin's unit is a 9x9 multiplier; wider operands take an 18x18 (two of them).
        gowin = 2 if max(weight_bits, act_bits) > 8 else 1
        return cls(
            rows=rows, cols=cols, k_tiles=k_tiles, f_tiles=f_tiles, depth=depth,
            input_bits=input_bits, weight_bits=weight_bits, acc_bits=acc_bits,
            tag_bits=tag_bits, psum_bits=psums, bank_depth=bank_depth, banks=banks,
            weights=weights, latency=latency, fifo_depth=fifo_depth,
            weight_roms=() if streamed else _weight_roms(depth, bank_depth, weight_bits, pes),
            fifo=MemoryPlan("array_fifo", MemoryKind.FIFO, fifo_depth - 1,
                            cols * acc_bits + tag_bits),
            multipliers={f: pes * (gowin if f == "gowin" else 1) for f in FAMILIES},
            streamed=streamed,
        )

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    def component_args(self) -> dict:
        return dict(rows=self.rows, cols=self.cols, weights=self.weights,
                    input_bits=self.input_bits, weight_bits=self.weight_bits,
                    acc_bits=self.acc_bits, tag_bits=self.tag_bits,
                    bank_depth=self.bank_depth, streamed=self.streamed)


# --- column accumulator ---------------------------------------------------------------------


@dataclass(frozen=True)
class AccumulatorPlan:
    """A :class:`~accel.hw.accumulate.ColumnAccumulator`: ``cols`` sums of ``acc_bits``."""

    cols: int
    acc_bits: int
    #: A window's sum is registered on its last beat and offered the next cycle.
    latency: int = 1

    def component_args(self) -> dict:
        return dict(cols=self.cols, acc_bits=self.acc_bits)


# --- max pool -------------------------------------------------------------------------------

#: Cycles from the max pool taking an input beat to the write of its update's new maximum: the
#: slot and column registered, the block RAM read, its data registered, the comparisons
#: registered, the new maximum registered (the read-modify-write of
#: :class:`~accel.hw.maxpool.MaxPool`, which forwards the four writes that its reads cannot see
#: yet; the comparisons get their own stage so that no comparator sits in the loop of
#: back-to-back updates of one word).
POOL_RMW_STAGES = 5
#: Cycles from the max pool issuing a pooled beat's read to the beat offered on ``o``: the block
#: RAM read, an output register, and the output FIFO's two.
POOL_EMIT_LATENCY = 4
#: Beats the max pool's output FIFO holds: the beats one row read can have in flight when the
#: consumer is ready every cycle (``POOL_EMIT_LATENCY``) plus one, so the pool emits one beat
#: per cycle; it issues a read only while it holds a credit for the beat.
POOL_FIFO_DEPTH = POOL_EMIT_LATENCY + 1
#: The max pool's ``latency``: cycles from the cycle it takes the input beat that ends the last
#: input row of a pooled output row to the cycle that row's first beat is offered on ``o`` (the
#: read-modify-write of the maxima, the row counted complete, then the emit read, its output
#: register and the output FIFO); the row's other beats follow one per cycle while the
#: consumer is ready.
POOL_LATENCY = POOL_RMW_STAGES + 1 + POOL_EMIT_LATENCY


def axis_table(axis: AxisWindow) -> list[tuple[int, int, int, int, int]]:
    """Per input index along one axis: ``(lo, n, first_from, opens, completes)``.

    The windows containing index ``x`` (clipped to the input) are ``lo .. lo + n - 1``; those
    with ``k >= first_from`` start at ``x``; ``opens``/``completes`` count the windows whose
    first/last in-input index is ``x``.
    """
    starts = [max(axis.start(o), 0) for o in range(axis.out)]
    ends = [min(axis.start(o) + axis.kernel - 1, axis.size - 1) for o in range(axis.out)]
    table = []
    for x in range(axis.size):
        inside = [o for o in range(axis.out) if starts[o] <= x <= ends[o]]
        first = [k for k, o in enumerate(inside) if starts[o] == x]
        # Window starts and ends never decrease, so both lists are contiguous (``first`` a
        # suffix of ``inside``).
        assert inside == list(range(inside[0], inside[0] + len(inside))) if inside else True
        assert first == list(range(len(inside) - len(first), len(inside)))
        table.append((
            inside[0] if inside else 0,
            len(inside),
            len(inside) - len(first),
            starts.count(x),
            ends.count(x),
        ))
    return table


def pool_slots(rows: AxisWindow) -> int:
    """Pooled rows of partial maxima the max pool holds: one more than the most output rows
    an input row can touch."""
    return max(n for _, n, _, _, _ in axis_table(rows)) + 1


@dataclass(frozen=True)
class PoolPlan:
    """A :class:`~accel.hw.maxpool.MaxPool` fused after a stage's requantizer."""

    height: int
    width: int
    channels: int
    pool: tuple[int, int]
    strides: tuple[int, int]
    padding: str
    lanes: int
    bits: int
    zero_point: int
    slots: int
    out_shape: tuple[int, int]
    memory: MemoryPlan
    #: The output FIFO (:data:`POOL_FIFO_DEPTH`).
    fifo: MemoryPlan
    #: :data:`POOL_LATENCY`.
    latency: int = POOL_LATENCY

    @classmethod
    def build(cls, *, height, width, channels, pool, strides, padding, lanes, bits,
              zero_point) -> PoolPlan:
        window = window_2d((height, width), tuple(pool), tuple(strides), padding)
        slots = pool_slots(window.rows)
        groups = ceil_div(channels, lanes)
        out_w = window.out_shape[1]
        return cls(height=height, width=width, channels=channels, pool=tuple(pool),
                   strides=tuple(strides), padding=padding, lanes=lanes, bits=bits,
                   zero_point=zero_point, slots=slots, out_shape=tuple(window.out_shape),
                   # Two read ports: the output, and the read-modify-write of the maxima.
                   memory=MemoryPlan("pool", MemoryKind.RAM, slots * out_w * groups,
                                     lanes * bits, read_ports=2),
                   # SyncFIFOBuffered(depth) stores depth - 1 words in its memory.
                   fifo=MemoryPlan("pool_fifo", MemoryKind.FIFO, POOL_FIFO_DEPTH - 1,
                                   lanes * bits + 1))

    @property
    def memories(self) -> tuple[MemoryPlan, ...]:
        return (self.memory, self.fifo)

    def component_args(self) -> dict:
        return dict(height=self.height, width=self.width, channels=self.channels,
                    pool=self.pool, strides=self.strides, padding=self.padding,
                    lanes=self.lanes, bits=self.bits, zero_point=self.zero_point)


# --- depthwise PEs -------------------------------------------------------------------------

#: Register stages of :class:`~accel.hw.depthwise.DepthwiseStage` from a beat accepted by the
#: PEs to its sum's FIFO write.
DEPTHWISE_PE_STAGES = 4
#: Output beats the FIFO between the depthwise PEs and the requantizer holds.
DEPTHWISE_FIFO_DEPTH = 8


def depthwise_lane_count(rows: int, cols: int, depth_multiplier: int) -> int:
    """Input channels per beat of a depthwise stage on ``rows x cols`` multipliers:
    ``floor(rows * cols / depth_multiplier)`` (0 when the budget is below ``m``)."""
    return rows * cols // depth_multiplier


def depthwise_frame_cycles(out_shape: tuple[int, int], kernel: tuple[int, int], channels: int,
                           lanes: int) -> int:
    """Cycles per frame of a depthwise stage without stalls:
    ``out_h * out_w * kh * kw * ceil(channels / lanes)``."""
    return out_shape[0] * out_shape[1] * kernel[0] * kernel[1] * ceil_div(channels, lanes)


@dataclass(frozen=True, eq=False)
class DepthwisePlan:
    """The PEs of a :class:`~accel.hw.depthwise.DepthwiseStage` (its window generator and
    requantizer are the stage's :class:`WindowPlan` and ``RequantPlan``).

    Members
    -------
    rows, cols : int
        The multiplier budget ``R x C``.
    depth_multiplier, lanes, pes, groups : int
        ``m``, ``L = floor(R * C / m)``, ``P = L * m`` and ``G = ceil(cin / L)``.
    taps : int
        ``kh * kw``.
    weights : numpy.ndarray, shape (kh, kw, cin * m)
        int8 filter, output channel ``c * m + j`` last.
    acc_bits : int
        Width of the window sums (exact for these weights, bias excluded).
    input_zero_point : int
    cycles : int
        :func:`depthwise_frame_cycles`.
    latency : int
        PE stages, the FIFO write and read, and the requantizer's latency.
    weight_rom, sums, fifo : MemoryPlan
    multipliers : dict
        One per PE on every family.
    """

    rows: int
    cols: int
    depth_multiplier: int
    lanes: int
    pes: int
    groups: int
    taps: int
    weights: np.ndarray = field(repr=False)
    acc_bits: int
    input_zero_point: int
    cycles: int
    latency: int
    weight_rom: MemoryPlan
    sums: MemoryPlan
    fifo: MemoryPlan
    multipliers: dict

    @classmethod
    def build(cls, *, rows, cols, depth_multiplier, channels, kernel, out_shape, weights,
              input_zero_point, input_range, requant_latency) -> DepthwisePlan:
        lanes = depthwise_lane_count(rows, cols, depth_multiplier)
        pes = lanes * depth_multiplier
        groups = ceil_div(channels, lanes)
        taps = kernel[0] * kernel[1]
        weights = np.asarray(weights, np.int64).reshape(kernel[0], kernel[1], -1)
        lo, hi = accumulator_range(
            terms=taps, x_range=(input_range[0] - input_zero_point,
                                 input_range[1] - input_zero_point),
            w_range=(min(int(weights.min()), 0), max(int(weights.max()), 0)))
        acc_bits = max(signed_bits_for(lo, hi), 2)
        return cls(
            rows=rows, cols=cols, depth_multiplier=depth_multiplier, lanes=lanes, pes=pes,
            groups=groups, taps=taps, weights=weights, acc_bits=acc_bits,
            input_zero_point=input_zero_point,
            cycles=depthwise_frame_cycles(out_shape, kernel, channels, lanes),
            # SyncFIFOBuffered's output is valid 2 cycles after its write.
            latency=DEPTHWISE_PE_STAGES + 2 + requant_latency,
            weight_rom=MemoryPlan("weights", MemoryKind.ROM, taps * groups, pes * 8),
            sums=MemoryPlan("depthwise_sums", MemoryKind.RAM, groups, pes * acc_bits),
            fifo=MemoryPlan("depthwise_fifo", MemoryKind.FIFO, DEPTHWISE_FIFO_DEPTH - 1,
                            pes * acc_bits + 1),
            multipliers={f: pes for f in FAMILIES},
        )

    @property
    def memories(self) -> tuple[MemoryPlan, ...]:
        return (self.weight_rom, self.sums, self.fifo)


# --- stand-alone pooling -------------------------------------------------------------------


def pool_stage_cycles(height: int, width: int, channels: int, lanes: int, pool, strides,
                      padding: str) -> int:
    """Cycles per frame of a stand-alone :class:`~accel.hw.maxpool.MaxPool` or
    :class:`~accel.hw.avgpool.AvgPool` without stalls: each input beat takes one cycle per
    window containing it, at least one."""
    window = window_2d((height, width), tuple(pool), tuple(strides), padding)
    rows = [n for _, n, _, _, _ in axis_table(window.rows)]
    cols = [n for _, n, _, _, _ in axis_table(window.cols)]
    per_pixel = sum(max(1, a * b) for a in rows for b in cols)
    return ceil_div(channels, lanes) * per_pixel


#: The average pool's ``latency``: a read-modify-write of one register stage (the sums), the row
#: counted complete, the emit read and its output register (4, the max pool's before it was
#: pipelined further), plus one register (the magnitude and reciprocal lookup before the
#: multiply, sign and clamp).
AVG_POOL_LATENCY = 5
#: Register stages of :class:`~accel.hw.avgpool.GlobalMean` from a beat taken to its result's
#: FIFO write (sum, multiply, round and clamp).
MEAN_STAGES = 3
#: Results :class:`~accel.hw.avgpool.GlobalMean` keeps in flight (its pipeline and output
#: FIFO, the FIFO's depth): a frame's final-pixel beat waits while that many are undelivered.
MEAN_CREDITS = MEAN_STAGES + 2
#: :class:`~accel.hw.avgpool.GlobalMean`'s ``latency``: the stages, then a SyncFIFOBuffered's
#: two cycles from write to output.
MEAN_LATENCY = MEAN_STAGES + 2


def avg_pool_acc_bits(bits: int, pool: tuple[int, int]) -> int:
    """Width of an :class:`~accel.hw.avgpool.AvgPool` partial sum of ``pool`` codes."""
    return bits + (pool[0] * pool[1]).bit_length()


@dataclass(frozen=True)
class AvgPoolPlan:
    """A stand-alone :class:`~accel.hw.avgpool.AvgPool` (TFLite ``AVERAGE_POOL_2D``)."""

    height: int
    width: int
    channels: int
    pool: tuple[int, int]
    strides: tuple[int, int]
    padding: str
    lanes: int
    bits: int
    act_min: int
    act_max: int
    zero_point: int
    acc_bits: int
    out_shape: tuple[int, int]
    latency: int
    memory: MemoryPlan
    multipliers: dict

    @classmethod
    def build(cls, *, height, width, channels, pool, strides, padding, lanes, bits, act_min,
              act_max, zero_point) -> AvgPoolPlan:
        window = window_2d((height, width), tuple(pool), tuple(strides), padding)
        slots = pool_slots(window.rows)
        acc_bits = avg_pool_acc_bits(bits, tuple(pool))
        groups = ceil_div(channels, lanes)
        return cls(height=height, width=width, channels=channels, pool=tuple(pool),
                   strides=tuple(strides), padding=padding, lanes=lanes, bits=bits,
                   act_min=act_min, act_max=act_max, zero_point=zero_point, acc_bits=acc_bits,
                   out_shape=tuple(window.out_shape), latency=AVG_POOL_LATENCY,
                   memory=MemoryPlan("pool", MemoryKind.RAM,
                                     slots * window.out_shape[1] * groups, lanes * acc_bits,
                                     read_ports=2),
                   # One reciprocal multiply per lane.
                   multipliers={f: lanes for f in FAMILIES})

    @property
    def memories(self) -> tuple[MemoryPlan, ...]:
        return (self.memory,)

    def component_args(self) -> dict:
        return dict(height=self.height, width=self.width, channels=self.channels,
                    pool=self.pool, strides=self.strides, padding=self.padding,
                    lanes=self.lanes, bits=self.bits, act_min=self.act_min,
                    act_max=self.act_max, zero_point=self.zero_point)


@dataclass(frozen=True)
class MeanPlan:
    """A :class:`~accel.hw.avgpool.GlobalMean` (TFLite ``MEAN`` over H and W)."""

    height: int
    width: int
    channels: int
    lanes: int
    input_zero_point: int
    output_zero_point: int
    multiplier: int
    shift: int
    keep_dims: bool
    sum_bits: int
    latency: int
    memory: MemoryPlan
    fifo: MemoryPlan
    multipliers: dict
    #: :data:`MEAN_CREDITS`.
    credits: int = MEAN_CREDITS

    @classmethod
    def build(cls, *, height, width, channels, lanes, input_zero_point, output_zero_point,
              multiplier, shift, keep_dims) -> MeanPlan:
        sum_bits = 9 + (height * width).bit_length()  # |sum(x - zp)| <= 255 * n
        groups = ceil_div(channels, lanes)
        return cls(height=height, width=width, channels=channels, lanes=lanes,
                   input_zero_point=input_zero_point, output_zero_point=output_zero_point,
                   multiplier=multiplier, shift=shift, keep_dims=keep_dims, sum_bits=sum_bits,
                   latency=MEAN_LATENCY,
                   memory=MemoryPlan("pool", MemoryKind.RAM, groups, lanes * sum_bits),
                   # SyncFIFOBuffered(5) stores 4 words in its memory.
                   fifo=MemoryPlan("pool_fifo", MemoryKind.FIFO, 4, lanes * 8 + 1),
                   multipliers={f: lanes for f in FAMILIES})

    @property
    def memories(self) -> tuple[MemoryPlan, ...]:
        return (self.memory, self.fifo)

    def component_args(self) -> dict:
        return dict(height=self.height, width=self.width, channels=self.channels,
                    lanes=self.lanes, input_zero_point=self.input_zero_point,
                    output_zero_point=self.output_zero_point, multiplier=self.multiplier,
                    shift=self.shift, keep_dims=self.keep_dims)


# --- channel regroup ------------------------------------------------------------------------


def constant_product_multipliers(a_bits: int, constant: int) -> dict:
    """Hardware multipliers per family that yosys gives one product of an ``a_bits``-bit
    signal and ``constant`` (whose factors of two are a free shift): ECP5 when both operands
    have 2 bits or more (synth_ecp5's DSP_A/B_MINWIDTH), iCE40 only for products of 11 bits or
    more (DSP_Y_MINWIDTH), Gowin at 4 bits each (fitted: digits_small's 4-bit x 9 is a
    MULT9X9, 3-bit x 9 is not)."""
    odd = constant
    while odd and odd % 2 == 0:
        odd //= 2
    if odd <= 1:  # a shift (or nothing)
        return {f: 0 for f in FAMILIES}
    b_bits = odd.bit_length()
    return {"ecp5": int(a_bits >= 2 and b_bits >= 2),
            "ice40": int(a_bits >= 2 and b_bits >= 2 and a_bits + b_bits >= 11),
            "gowin": int(a_bits >= 4 and b_bits >= 4)}


def regroup_latency(lanes_in: int, lanes_out: int) -> int:
    """A :class:`~accel.hw.regroup.ChannelRegroup`'s ``latency``: cycles from the cycle it takes
    the input beat that completes an output beat to the cycle that output beat is offered, 0
    when ``lanes_in == lanes_out`` (a wire), else 1 (the shift buffer's register)."""
    return 0 if lanes_in == lanes_out else 1


@dataclass(frozen=True)
class RegroupPlan:
    """A :class:`~accel.hw.regroup.ChannelRegroup` on the edge from tensor ``input`` to
    tensor ``output`` (the same values, ``lanes_out`` per beat instead of ``lanes_in``)."""

    input: str
    output: str
    channels: int
    lanes_in: int
    lanes_out: int
    bits: int
    zero_point: int

    @property
    def latency(self) -> int:
        """:func:`regroup_latency`."""
        return regroup_latency(self.lanes_in, self.lanes_out)

    @property
    def multipliers(self) -> dict:
        """Per family: the shift buffer's two shift amounts, a value count (up to
        ``lanes_in + lanes_out - 1``) times ``bits``, are products yosys may map to hardware
        multipliers (:func:`constant_product_multipliers`; none when ``bits`` is a power of
        two, or for a wire). Measured: the seed network pow2 6-bit 2x2 on ECP5, 4 of its 14
        MULT18X18D in its two regroups."""
        if self.lanes_in == self.lanes_out:
            return {f: 0 for f in FAMILIES}
        count_bits = (self.lanes_in + self.lanes_out - 1).bit_length()
        return {f: 2 * n for f, n in constant_product_multipliers(count_bits, self.bits).items()}

    def component_args(self) -> dict:
        return dict(channels=self.channels, lanes_in=self.lanes_in, lanes_out=self.lanes_out,
                    bits=self.bits, zero_point=self.zero_point)

    def to_json(self) -> dict:
        return {"input": self.input, "output": self.output, "channels": self.channels,
                "lanes": [self.lanes_in, self.lanes_out], "bits": self.bits,
                "latency": self.latency}
