"""Will the planned accelerator fit the board? Answered from the plan in milliseconds.

The estimate reads the plan and recomputes nothing: every stage's multipliers per family and
its memories (:attr:`~accel.plan.plan.StagePlan.memories`, with their block RAMs per family)
are facts of the hardware IR, sized by the functions the components use. Only the LUT count
is a model here. Three resources are compared with the board (:mod:`.boards`):

**Multipliers** (:attr:`~accel.plan.plan.StagePlan.multipliers`). One per PE (every ``*``
maps to a hardware multiplier: ECP5 and Gowin do it automatically, iCE40 with
``synth_ice40 -dsp``; Gowin counts 9x9 halves, :attr:`.Board.dsps`, two for operands past
9 x 9 bits); the requantizer's ``int32 x multiplier`` product in 16 x 17-bit pieces
(:func:`accel.plan.requant.multipliers_per_lane`: 4 per Q31 lane, 8 per float lane, fewer for
a wide lane sized from the layer's multipliers, none for ``pow2``) -- but only where the lane
keeps the DSP datapath: a narrow lane (:class:`accel.plan.requant.NarrowForm`, what every
int8 layer of the example models gets) multiplies in logic and takes none (the weight
address is a counter of the replay, no product); and a channel regroup's two shift amounts,
a value count times a value width that is not a power of two
(:attr:`accel.plan.blocks.RegroupPlan.multipliers`).

**Block RAM** (:attr:`~accel.plan.plan.StagePlan.memories`). Every memory the blocks build
-- the weight ROM of each PE (as its banks), the line buffer, the replay buffer, the FIFOs,
the requantizer's parameter ROM, the max pool's row buffer -- is placed where yosys's
memory_libmap puts it by its own costs (:func:`accel.plan.memory.mapping`): whole block RAMs
in the best configuration (a ROM reshaped to fewer blocks where its words pack side by side,
a memory with two read ports replicated), LUT RAM, or logic; checked against yosys on the
three families (``tests/synth/test_memory_mapping.py``).

**Streamed weights.** A Dense stage that streams its weights from the board's external
memory (:mod:`accel.plan.weights`) has no weight ROMs; its prefetch FIFO is one of its
memories, and its bandwidth bound is in the plan's cycles, not here.

**Logic.** LUT4s per PE (the accumulate adder, operand and partial-sum registers), per
requantizer lane (adders, shifter, rounding, clamp), per accumulator lane, and a fixed cost
per stage (window generator, replay, FIFOs, counters), measured on ECP5 and iCE40 builds of
the digits models; iCE40 logic cells count one LUT4 each. The estimate is deliberately a
little pessimistic: a model rejected here is not close to fitting.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AccelError
from ..plan.memory import LUT_MEMORY_BITS, bram_blocks
from ..plan.plan import NetworkPlan, StagePlan
from ..plan.requant import serial_digits
from ..quant.requant_mode import RequantMode
from .boards import BOARDS, Board

__all__ = ["LUT_MEMORY_BITS", "FitEstimate", "Need", "StageEstimate", "bram_blocks",
           "check_fit", "estimate", "stage_estimate"]

# LUT4s (iCE40: logic cells): per PE, per requantizer lane by mode, per accumulator lane, per
# stage (window generator, replay, FIFOs, regroup, pool), and the top. ECP5: a least-squares fit
# to six digits_small builds (calibrated int8 at 1x1..8x8, the TFLite model and pow2 at 1x1;
# within 4 %). iCE40: the pow2 1x1 build (2,222 LC) and, for the float lane, an older TFLite
# build scaled like ECP5's. Gowin: the TFLite and pow2 1x1 builds. The wide lane (no rounding
# to 53 bits, a narrower product): digits_small.tflite 1x1 on ECP5 went from 3,571 LUT4 with
# the float lane to 3,250 with a 26-bit wide lane; iCE40 and Gowin are scaled alike.
_LUTS = {
    "ice40": {"pe": 90, "requant": {"tflite": 700, "float": 2000, "wide": 1650, "pow2": 100},
              "acc_lane": 40, "stage": 800, "top": 100},
    "ecp5": {"pe": 41, "requant": {"tflite": 620, "float": 1830, "wide": 1510, "pow2": 110},
             "acc_lane": 40, "stage": 300, "top": 100},
}
# Gowin: LUT4 plus ALU (a carry bit takes a LUT4 position), calibrated on digits_small
# (pow2 1x1: 1,784 measured, 2x4: 3,537; TFLite int8 1x1: 5,089); the RAM16SDP4 LUT RAMs of
# the FIFOs and replay buffers are in the per-stage cost, raised by 125 per stage when the
# max pool became a four-stage read-modify-write with an output FIFO and registered
# handshakes (pow2 1x1: 1,991 measured, two stages). Refitted when the window, replay and
# requantizer lanes moved their handshakes and comparisons into registers: pow2 1x1 (2 PEs,
# 2 stages) 2,257 and 2x4 (6 PEs) 4,539 measured give 160 per PE and 450 per stage.
_LUTS["gowin"] = {**_LUTS["ecp5"], "pe": 160, "stage": 450,
                  "requant": {**_LUTS["ecp5"]["requant"], "float": 3330, "wide": 2750,
                              "pow2": 322}}

#: LUT4s of a narrow requantizer lane besides its product (bias add, clamp of x, output clamp,
#: pipeline registers' muxes).
_NARROW_LANE_BASE = 150
_SERIAL_LANE_BASE = 250

#: LUT4s of a streamed stage's weight reader (BurstReader and tile assembler): 394 on ECP5
#: (synth_ecp5 of the seed network's first dense layer's reader, 16-bit words, 144-word FIFO);
#: the other families are given the same figure, unmeasured.
_WEIGHT_STREAM_LUTS = 400

#: LUT4s (iCE40: logic cells) of the board's weight memory, for a plan that streams: the
#: ULX3S SDRAM's (the LiteDRAM SDR core with its init sequencer, flash loader, writer and
#: reader: 2,884 TRELLIS_COMB measured for ULX3SWeightMemory with a checking consumer,
#: bench/sdram_weights.md) and the iCEBreaker SPRAM's (flash reader, image loader with its
#: CRC-32, SPRAM burst port: digits_small pow2 1x1 with its Dense layer in SPRAM measured
#: 3,542 logic cells against 2,701 estimated without it), plus per port of the arbiter when
#: several stages share the memory (unmeasured). The flash figure is a guess: no top builds it.
_WEIGHT_MEMORY_LUTS = {"sdram": 2900, "spram": 850, "flash": 400}
_ARBITER_PORT_LUTS = 40

_SPRAM_BLOCK_BITS = 256 * 1024

#: Share of an iCE40's logic cells nextpnr still places: on the UP5K (5,280 LC) designs of
#: 4,893 (93 %) and 5,233 LC found no legal placement, one of 4,710 (89 %) placed. An estimate
#: above it is refused, so that ``--fit-only`` does not pass what nextpnr cannot place.
_ICE40_PLACEABLE = 0.90

#: Memories the per-stage LUT cost already includes (small FIFOs and buffers in logic).
_IN_STAGE_COST = ("replay", "replay_fifo", "array_fifo", "requant_fifo")


@dataclass(frozen=True)
class StageEstimate:
    """One stage's needs on one family."""

    stage: int
    layer: str
    rows: int
    cols: int
    requant_mode: RequantMode | None  # None: a pooling stage
    multipliers: int
    bram_blocks: int
    memory_bits: int
    luts: int

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    def to_json(self) -> dict:
        return {"stage": self.stage, "layer": self.layer, "array": f"{self.rows}x{self.cols}",
                "pes": self.pes,
                "requant_mode": None if self.requant_mode is None else str(self.requant_mode),
                "multipliers": self.multipliers, "bram_blocks": self.bram_blocks,
                "memory_bits": self.memory_bits, "luts": self.luts}


@dataclass(frozen=True)
class Need:
    """A resource: needed against available."""

    needed: int
    available: int

    @property
    def fraction(self) -> float:
        return self.needed / self.available

    def to_json(self) -> dict:
        return {"needed": self.needed, "available": self.available, "fraction": self.fraction}


@dataclass(frozen=True)
class FitEstimate:
    """The fit estimate of a plan on a board (:func:`estimate`).

    Members
    -------
    board : str
    family : str
    resources : dict
        ``multipliers``, ``bram_blocks``, ``luts`` -> :class:`Need`.
    memory_bits : int
        Bits in every memory of the plan.
    stages : tuple of StageEstimate
    """

    board: str
    family: str
    resources: dict
    memory_bits: int
    stages: tuple[StageEstimate, ...]

    @property
    def fits(self) -> bool:
        return all(n.needed <= n.available for n in self.resources.values())

    def to_json(self) -> dict:
        return {"board": self.board,
                "resources": {k: n.to_json() for k, n in self.resources.items()},
                "memory_bits": self.memory_bits,
                "stages": [s.to_json() for s in self.stages],
                "fits": self.fits}


def _requant_lane_luts(requant, family: str) -> int:
    """LUT4s of one requantizer lane: the mode's measured cost, or for a narrow lane its
    adder bits (parallel: ``mult_bits + 1`` rows of about ``x_bits + 3`` bits summed in a
    tree; serial: a digit's rows, the accumulator and the rounding add), 1.5 LUT4 each (the
    rows' AND gates do not all pack into the carry cells), plus the bias add and the clamps.
    Fitted on ECP5 builds of digits_valid_s2's second convolution's requantizer (4 lanes,
    x 18 bits, multiplier 23 bits): 3,616 LUT4 parallel, 1,690 serial (2 bits a cycle)."""
    nf = getattr(requant, "narrow", None)
    if nf is None:
        return _LUTS[family]["requant"][requant.mode]
    serial = serial_digits(nf, requant.beat_cycles)
    if serial is None:
        return _NARROW_LANE_BASE + 3 * (nf.mult_bits + 1) * (nf.x_bits + 3) // 2
    digit, cycles = serial
    bits = digit * (nf.x_bits + 2) + nf.x_bits + digit * cycles + nf.round_bits
    return _SERIAL_LANE_BASE + 3 * bits // 2


def stage_estimate(stage: StagePlan, family: str) -> StageEstimate:
    """One stage's multipliers, block RAMs, memory bits (all read from the plan) and LUTs."""
    lut_memory_bits = sum(m.lut_bits(family) for m in stage.memories
                          if m.name not in _IN_STAGE_COST)
    # A pooling stage has no requantizer: its lanes cost about an accumulator lane each.
    mode = stage.requant.mode if stage.requant is not None else None
    costs = _LUTS[family]
    lane = _requant_lane_luts(stage.requant, family) if mode else 0
    luts = (stage.pes * costs["pe"]
            + stage.out_lanes * (lane + costs["acc_lane"])
            + costs["stage"] + lut_memory_bits // 8
            + (_WEIGHT_STREAM_LUTS if getattr(stage, "streamed", None) is not None else 0))
    return StageEstimate(
        stage=stage.index, layer=stage.layer, rows=stage.rows, cols=stage.cols,
        requant_mode=mode, multipliers=stage.multipliers[family],
        bram_blocks=stage.bram_blocks(family),
        memory_bits=sum(m.total_bits for m in stage.memories), luts=luts)


def estimate(plan: NetworkPlan, board: Board) -> FitEstimate:
    """Per-stage and total needs against ``board``'s capacities (no exception). A plan that
    streams weights also needs the weight memory's logic (:data:`_WEIGHT_MEMORY_LUTS`) and,
    in SPRAM, its ``SB_SPRAM256KA`` blocks (``spram_blocks``)."""
    stages = tuple(stage_estimate(s, board.family) for s in plan.stages)
    luts = sum(s.luts for s in stages) + _LUTS[board.family]["top"]
    resources = {"multipliers": Need(plan.multipliers[board.family], board.dsps),
                 "bram_blocks": Need(sum(s.bram_blocks for s in stages), board.bram_blocks)}
    if plan.streamed_stages:
        from ..plan.weight_memory import weight_memory_plan

        memory = weight_memory_plan(plan)
        luts += _WEIGHT_MEMORY_LUTS[memory.memory.kind]
        if memory.arbitrated:
            luts += _ARBITER_PORT_LUTS * len(memory.stages)
        if memory.memory.kind == "spram":
            resources["spram_blocks"] = Need(memory.spram_blocks,
                                             board.spram_bits // _SPRAM_BLOCK_BITS)
    resources["luts"] = Need(luts, _placeable_luts(board))
    return FitEstimate(board=board.name, family=board.family, resources=resources,
                       memory_bits=sum(s.memory_bits for s in stages), stages=stages)


def _placeable_luts(board: Board) -> int:
    """The LUT4s (iCE40: logic cells) a design may need on ``board`` and still place."""
    return int(board.luts * _ICE40_PLACEABLE) if board.family == "ice40" else board.luts


def _describe(resource: str, board: Board) -> str:
    return {"spram_blocks": "SPRAM blocks (SB_SPRAM256KA, 256 kbit each)",
            "multipliers": f"hardware multipliers ({board.dsp_kind})",
            "bram_blocks": f"block RAMs ({board.bram_kind}, {board.bram_bits // 1024} kbit each)",
            "luts": "LUT4s" if board.family != "ice40" else
            f"logic cells (of {board.luts:,}, nextpnr places {_ICE40_PLACEABLE:.0%})"}[resource]


def _advice(resource: str, plan: NetworkPlan, board: Board, needed: int) -> str:
    if resource == "spram_blocks":
        return "try --scheme pow2 --weight-bits 4 (half the streamed words), or a board with SDRAM"
    bigger = list(BOARDS.values())
    key = {"multipliers": "dsps", "bram_blocks": "bram_blocks", "luts": "luts"}[resource]
    if resource == "bram_blocks":
        # Capacity in bits decides between boards; blocks differ in size.
        need_bits = needed * board.bram_bits
        roomy = [b.name for b in bigger if b.bram_total_bits >= need_bits and b is not board]
        tries = []
        if not board.memories:
            tries.append(f"a board with SDRAM, SPRAM or flash to stream Dense weights from "
                         f"({board.name} has none described)")
        if plan.scheme != "pow2" or max(layer_bits(plan)) > 4:
            tries.append("--scheme pow2 --weight-bits 4 (half the weight bits of int8)")
        tries.append("a bigger board" + (f" ({', '.join(roomy)})" if roomy else
                                         f": none is big enough, the largest holds "
                                         f"{max(b.bram_total_bits for b in bigger):,} bits; "
                                         f"use a smaller model"))
        return "try " + ", or ".join(tries)
    roomy = [b.name for b in bigger if b is not board and
             (_placeable_luts(b) if key == "luts" else getattr(b, key)) >= needed]
    tries = []
    if plan.max_rows * plan.max_cols > 1:
        tries.append("a smaller --array (e.g. 1x1)")
    if resource == "multipliers" and plan.scheme != "pow2":
        tries.append("--scheme pow2 (a shift-only requantizer, no multipliers)")
    tries.append("a bigger board" + (f" ({', '.join(roomy)})" if roomy else ""))
    return "try " + ", or ".join(tries)


def layer_bits(plan: NetworkPlan) -> list[int]:
    """The weight widths of the plan's stages."""
    return [s.weight_bits for s in plan.stages] or [8]


def check_fit(plan: NetworkPlan, board: Board) -> FitEstimate:
    """The estimate (see :func:`estimate`), or an :class:`AccelError` naming the resource that
    is most over-subscribed, needed vs available, the stage that needs most and what to try."""
    result = estimate(plan, board)
    if result.fits:
        return result
    resource, need = max(result.resources.items(), key=lambda kv: kv[1].fraction)
    if resource == "spram_blocks":
        names = ", ".join(s.layer for s in plan.streamed_stages)
        raise AccelError(
            f"{plan.name} does not fit {board.name} ({board.device}): the streamed weights "
            f"of {names} need {need.needed:,} {_describe(resource, board)}, "
            f"{need.available:,} available; {_advice(resource, plan, board, need.needed)}")
    worst = max(result.stages, key=lambda s: getattr(s, resource))
    detail = f"{getattr(worst, resource):,}"
    if resource == "bram_blocks":
        detail += f" ({worst.memory_bits:,} bits)"
    raise AccelError(
        f"{plan.name} does not fit {board.name} ({board.device}): needs "
        f"{need.needed:,} {_describe(resource, board)}, {need.available:,} available; "
        f"stage {worst.stage} ({worst.layer}, {worst.rows}x{worst.cols} array) needs {detail}; "
        f"{_advice(resource, plan, board, need.needed)}")
