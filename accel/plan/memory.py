"""Memories of the hardware plan: kind, words, bits, and the block RAMs they take per family.

Every memory a component instantiates (a weight ROM, a line buffer, a FIFO, a parameter ROM)
is described once, by the component's sub-plan, as a :class:`MemoryPlan`. The fit estimate,
the sidecar and ``accel plan --json`` read these; nothing re-derives a memory's size.

Block RAMs are counted as yosys's memory mapping places them: in whole blocks, in the block's
best width x depth configuration (iCE40 SB_RAM40_4K: 256x16 .. 2048x2; ECP5 DP16KD and Gowin
BSRAM: 512x36 .. 16384x1). Memories of at most :data:`LUT_MEMORY_BITS` go to logic instead
(LUT RAM, or flip-flops), except that iCE40 has no LUT RAM: a memory that is written takes a
block however small.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

__all__ = ["FAMILIES", "LUT_MEMORY_BITS", "MemoryKind", "MemoryPlan", "bram_blocks"]

#: The FPGA families whose block RAMs and multipliers the plan counts.
FAMILIES = ("ice40", "ecp5", "gowin")

#: Memories this small are built from LUTs by yosys rather than a block RAM.
LUT_MEMORY_BITS = 1024

# (width, depth) configurations of one block RAM
_BRAM_SHAPES = {
    "ice40": ((16, 256), (8, 512), (4, 1024), (2, 2048)),
    "ecp5": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
    "gowin": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
}


def bram_blocks(depth: int, width: int, family: str, *, writable: bool = False) -> int:
    """Block RAMs for one ``depth x width`` memory, 0 when it is left to LUTs. iCE40 has no
    LUT RAM: a memory that is written (a buffer, a FIFO) takes a block however small."""
    if depth * width <= LUT_MEMORY_BITS and not (writable and family == "ice40"):
        return 0
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in _BRAM_SHAPES[family])


class MemoryKind(enum.StrEnum):
    """What a memory is: read-only (initialised from the model), or written at run time."""

    ROM = "rom"
    RAM = "ram"
    FIFO = "fifo"


@dataclass(frozen=True)
class MemoryPlan:
    """``count`` identical memories of ``words`` x ``bits`` (e.g. one weight ROM per PE).

    Members
    -------
    name : str
        What it holds (``weights``, ``line_buffer``, ``replay``, ``requant_params``, ...).
    kind : MemoryKind
    words, bits : int
        Depth and width of one memory, as the component instantiates it.
    count : int
        How many of them the stage has.
    lut_only : bool
        The component reads it asynchronously (an amaranth ``SyncFIFO``): never a block RAM.
    """

    name: str
    kind: MemoryKind
    words: int
    bits: int
    count: int = 1
    lut_only: bool = False

    @property
    def total_bits(self) -> int:
        return self.count * self.words * self.bits

    def blocks(self, family: str) -> int:
        """Block RAMs all ``count`` memories take on ``family`` (0: built from logic)."""
        if self.lut_only:
            return 0
        return self.count * bram_blocks(self.words, self.bits, family,
                                        writable=self.kind is not MemoryKind.ROM)

    def lut_bits(self, family: str) -> int:
        """Bits held in logic rather than block RAM on ``family``."""
        return 0 if self.blocks(family) else self.total_bits

    def to_json(self) -> dict:
        return {"name": self.name, "kind": str(self.kind), "words": self.words,
                "bits": self.bits, "count": self.count, "total_bits": self.total_bits,
                "blocks": {family: self.blocks(family) for family in FAMILIES}}
