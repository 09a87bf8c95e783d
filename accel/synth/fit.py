"""Will the planned accelerator fit the board? Answered from the plan in milliseconds.

Three resources are estimated per stage and compared with the board (:mod:`.boards`):

**Multipliers.** One per PE (an int8 x int8 product; every ``*`` maps to a hardware
multiplier: ECP5 and Gowin do it automatically, iCE40 with ``synth_ice40 -dsp``), plus the
requantizer's: every output lane splits its ``acc x multiplier`` product into 16 x 17-bit
partial products, one hardware multiplier each -- 4 per lane for the Q31 multiplier (TFLite
conv), 8 for the float / wide requantization (TFLite's FULLY_CONNECTED), none for ``pow2``.
Gowin counts in 9x9 halves of its DSP blocks (:attr:`.Board.dsps`): a PE's 8-bit product is
one ``MULT9X9`` (two, an ``MULT18X18``, for operands wider than 8 bits), and synth_gowin
builds the requantizer from ``MULT18X18`` -- 4 per Q31 lane, 6 per float lane.

**Block RAM.** Every memory is counted in whole blocks, in the block's best width x depth
configuration (iCE40 SB_RAM40_4K: 256x16 .. 2048x2; ECP5 DP16KD and Gowin BSRAM: 512x36 ..
16384x1), as yosys's memory mapping does: the weight ROM of each PE (``Kt * Ft`` words), the
window generator's line buffer (words of ``R`` values) and the max pool's row buffer (words of
``C`` values). Memories of at most ``LUT_MEMORY_BITS`` go to logic instead, costing LUTs.

**Logic.** LUT4s per PE (the accumulate adder, operand and partial-sum registers), per
requantizer lane (adders, shifter, rounding, clamp), per accumulator lane, and a fixed cost
per stage (window generator, replay, FIFOs, counters), measured on ECP5 and iCE40 builds of
the digits models; iCE40 logic cells count one LUT4 each. The estimate is deliberately a
little pessimistic: a model rejected here is not close to fitting.
"""

from __future__ import annotations

import math

from ..errors import AccelError
from ..plan.plan import NetworkPlan, StagePlan
from ..quant.qnet import QuantizedNetwork
from .boards import BOARDS, Board

#: Requantizer multipliers per output lane, by family and requantization mode (yosys 0.70
#: on the Requantizer alone and inside the digits models: 16x17-bit partial products, one
#: MULT18X18D each on ECP5; iCE40's 16x16 SB_MAC16 needs one more for the widest pieces).
REQUANT_MULTIPLIERS = {
    "ice40": {"multiplier": 5, "float": 11, "wide": 11, "pow2": 0},
    "ecp5": {"multiplier": 4, "float": 8, "wide": 8, "pow2": 0},
}
#: Other multipliers per stage: ECP5 also maps one of the stage's address multiplications
#: to a MULT18X18D (measured: digits_small 1x1 pow2 uses 4 for its 2 PEs); iCE40 does not.
STAGE_MULTIPLIERS = {"ice40": 0, "ecp5": 1, "gowin": 1}
#: Gowin, in MULT9X9 units (yosys 0.70 + nextpnr-himbaechel on digits_small 1x1: the Q31 lane
#: takes 4 MULT18X18, the float lane 6, each PE one MULT9X9; only the dense stage's address
#: product became a MULT9X9, the count keeps one per stage to stay on the safe side).
REQUANT_MULTIPLIERS["gowin"] = {"multiplier": 8, "float": 12, "wide": 12, "pow2": 0}

#: Memories this small are built from LUTs by yosys rather than a block RAM.
LUT_MEMORY_BITS = 1024

# (width, depth) configurations of one block RAM
_BRAM_SHAPES = {
    "ice40": ((16, 256), (8, 512), (4, 1024), (2, 2048)),
    "ecp5": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
    "gowin": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
}

# LUT4s (iCE40: logic cells): per PE, per requantizer lane by mode, per accumulator lane, per
# stage (window generator, replay, FIFOs, regroup, pool), and the top. ECP5: a least-squares fit
# to six digits_small builds (calibrated int8 at 1x1..8x8, the TFLite model and pow2 at 1x1;
# within 4 %). iCE40: the pow2 1x1 build (2,222 LC) and, for the float lane, an older TFLite
# build scaled like ECP5's. Gowin: the TFLite and pow2 1x1 builds.
_LUTS = {
    "ice40": {"pe": 90, "requant": {"multiplier": 700, "float": 2000, "wide": 2000, "pow2": 100},
              "acc_lane": 40, "stage": 800, "top": 100},
    "ecp5": {"pe": 41, "requant": {"multiplier": 620, "float": 1830, "wide": 1830, "pow2": 110},
             "acc_lane": 40, "stage": 300, "top": 100},
}
# Gowin: LUT4 plus ALU (a carry bit takes a LUT4 position), calibrated on digits_small
# (pow2 1x1: 1,784 measured, 2x4: 3,537; TFLite int8 1x1: 5,089); the RAM16SDP4 LUT RAMs of
# the FIFOs and replay buffers are in the per-stage cost.
_LUTS["gowin"] = {**_LUTS["ecp5"], "pe": 60, "stage": 290,
                  "requant": {**_LUTS["ecp5"]["requant"], "float": 3330, "wide": 3330,
                              "pow2": 322}}


def bram_blocks(depth: int, width: int, family: str, *, writable: bool = False) -> int:
    """Block RAMs for one ``depth x width`` memory, 0 when it is left to LUTs. iCE40 has no
    LUT RAM: a memory that is written (a buffer, a FIFO) takes a block however small."""
    if depth * width <= LUT_MEMORY_BITS and not (writable and family == "ice40"):
        return 0
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in _BRAM_SHAPES[family])


def _memories(stage: StagePlan, weight_bits: int,
              act_bits: int) -> list[tuple[int, int, int, bool]]:
    """``(count, depth, width, writable)`` of the stage's memories: the weight ROMs, the line
    buffer, the pool's row buffer and the requantizer's output FIFO (a 16-deep estimate)."""
    R, C = stage.rows, stage.cols
    memories = [(R * C, stage.k_tiles * stage.f_tiles, weight_bits, False)]
    line = stage.memory_bits.get("line_buffer", 0)
    if line:
        memories.append((1, math.ceil(line / (R * act_bits)), R * act_bits, True))
    pool = stage.memory_bits.get("pool", 0)
    if pool:
        memories.append((1, math.ceil(pool / (C * act_bits)), C * act_bits, True))
    memories.append((1, 16, C * act_bits + 1, True))
    return memories


def stage_estimate(stage: StagePlan, layer, family: str) -> dict:
    """One stage's multipliers, block RAMs, memory bits and LUTs on ``family``."""
    mode = layer.requant.mode
    act_bits = layer.input.bits
    blocks, lut_memory_bits, bits = 0, 0, 0
    for count, depth, width, writable in _memories(stage, layer.weight_bits, act_bits):
        n = bram_blocks(depth, width, family, writable=writable)
        blocks += count * n
        bits += count * depth * width
        if n == 0:
            lut_memory_bits += count * depth * width
    costs = _LUTS[family]
    luts = (stage.pes * costs["pe"] + stage.cols * (costs["requant"][mode] + costs["acc_lane"])
            + costs["stage"] + lut_memory_bits // 8)
    # Gowin's unit is a 9x9 multiplier; wider operands take an 18x18 (two of them).
    per_pe = 2 if family == "gowin" and max(layer.weight_bits, act_bits) > 8 else 1
    return {
        "stage": stage.index, "layer": stage.layer, "array": f"{stage.rows}x{stage.cols}",
        "pes": stage.pes, "requant_mode": mode,
        "multipliers": (stage.pes * per_pe + stage.cols * REQUANT_MULTIPLIERS[family][mode]
                        + STAGE_MULTIPLIERS[family]),
        "bram_blocks": blocks, "memory_bits": bits, "luts": luts,
    }


_WHAT = {"multipliers": "dsp", "bram_blocks": "bram", "luts": "luts"}


def estimate(plan: NetworkPlan, qnet: QuantizedNetwork, board: Board) -> dict:
    """Per-stage and total needs against ``board``'s capacities (no exception)."""
    layers = {layer.name: layer for layer in qnet.layers}
    stages = [stage_estimate(s, layers[s.layer], board.family) for s in plan.stages]
    luts = sum(s["luts"] for s in stages) + _LUTS[board.family]["top"]
    needs = {
        "multipliers": (sum(s["multipliers"] for s in stages), board.dsps),
        "bram_blocks": (sum(s["bram_blocks"] for s in stages), board.bram_blocks),
        "luts": (luts, board.luts),
    }
    return {
        "board": board.name,
        "resources": {k: {"needed": n, "available": a, "fraction": n / a}
                      for k, (n, a) in needs.items()},
        "memory_bits": sum(s["memory_bits"] for s in stages),
        "stages": stages,
        "fits": all(n <= a for n, a in needs.values()),
    }


def _describe(resource: str, board: Board) -> str:
    return {"multipliers": f"hardware multipliers ({board.dsp_kind})",
            "bram_blocks": f"block RAMs ({board.bram_kind}, {board.bram_bits // 1024} kbit each)",
            "luts": "LUT4s" if board.family != "ice40" else "logic cells"}[resource]


def _advice(resource: str, plan: NetworkPlan, qnet: QuantizedNetwork, board: Board,
            needed: int) -> str:
    bigger = list(BOARDS.values())
    key = {"multipliers": "dsps", "bram_blocks": "bram_blocks", "luts": "luts"}[resource]
    if resource == "bram_blocks":
        # Capacity in bits decides between boards; blocks differ in size.
        need_bits = needed * board.bram_bits
        roomy = [b.name for b in bigger if b.bram_total_bits >= need_bits and b is not board]
        tries = []
        if qnet.scheme != "pow2" or max(layer_bits(qnet)) > 4:
            tries.append("--scheme pow2 --weight-bits 4 (half the weight bits of int8)")
        tries.append("a bigger board" + (f" ({', '.join(roomy)})" if roomy else
                                         f": none is big enough, the largest holds "
                                         f"{max(b.bram_total_bits for b in bigger):,} bits; "
                                         f"use a smaller model"))
        return "try " + ", or ".join(tries)
    roomy = [b.name for b in bigger if getattr(b, key) >= needed and b is not board]
    tries = []
    if plan.max_rows * plan.max_cols > 1:
        tries.append("a smaller --array (e.g. 1x1)")
    if resource == "multipliers" and qnet.scheme != "pow2":
        tries.append("--scheme pow2 (a shift-only requantizer, no multipliers)")
    tries.append("a bigger board" + (f" ({', '.join(roomy)})" if roomy else ""))
    return "try " + ", or ".join(tries)


def layer_bits(qnet: QuantizedNetwork) -> list[int]:
    return [layer.weight_bits for layer in qnet.layers if hasattr(layer, "weight_bits")] or [8]


def check_fit(plan: NetworkPlan, qnet: QuantizedNetwork, board: Board) -> dict:
    """The estimate (see :func:`estimate`), or an :class:`AccelError` naming the resource that
    is most over-subscribed, needed vs available, the stage that needs most and what to try."""
    result = estimate(plan, qnet, board)
    if result["fits"]:
        return result
    resource, need = max(result["resources"].items(), key=lambda kv: kv[1]["fraction"])
    worst = max(result["stages"], key=lambda s: s[resource])
    detail = f"{worst[resource]:,}"
    if resource == "bram_blocks":
        detail += f" ({worst['memory_bits']:,} bits)"
    raise AccelError(
        f"{qnet.name} does not fit {board.name} ({board.device}): needs "
        f"{need['needed']:,} {_describe(resource, board)}, {need['available']:,} available; "
        f"stage {worst['stage']} ({worst['layer']}, {worst['array']} array) needs {detail}; "
        f"{_advice(resource, plan, qnet, board, need['needed'])}")
