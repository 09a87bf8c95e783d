"""Memories of the hardware plan: kind, words, bits, and the block RAMs they take per family.

Every memory a component instantiates (a weight ROM, a line buffer, a FIFO, a parameter ROM)
is described once, by the component's sub-plan, as a :class:`MemoryPlan`. The fit estimate,
the sidecar and ``accel plan --json`` read these; nothing re-derives a memory's size.

Block RAMs are counted as yosys's memory mapping places them (yosys 0.70 memory_libmap,
measured on ECP5, iCE40 and Gowin): in whole blocks, in the block's best width x depth
configuration (iCE40 SB_RAM40_4K: 256x16 .. 2048x2; ECP5 DP16KD and Gowin BSRAM: 512x36 ..
16384x1). A ROM, and on iCE40 (whose 256x16 mode has a write mask per bit) a RAM too, is
also reshaped: ``ceil(words / d)`` words side by side in one row of a ``d``-deep block, the
high address bits picking one after the read, so a 4608x6 ROM takes 2 DP16KD (1024 rows of
five 6-bit words), not 3. A memory with more read ports than the block has is replicated
per read port (a max pool's read-modify-write port and output port: two copies). Memories
of at most :data:`LUT_MEMORY_BITS` go to logic instead (LUT RAM, or flip-flops) when that is
cheaper by yosys's own cost model (:func:`mapping`).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

__all__ = ["FAMILIES", "LUT_MEMORY_BITS", "MemoryKind", "MemoryPlan", "bram_blocks", "mapping"]

#: The FPGA families whose block RAMs and multipliers the plan counts.
FAMILIES = ("ice40", "ecp5", "gowin")

#: Memories of at most this many bits are counted as logic by :func:`bram_blocks` (the simple
#: rule; :class:`MemoryPlan` uses yosys's cost model instead).
LUT_MEMORY_BITS = 1024

# (width, depth) configurations of one block RAM with a read and a write port (iCE40
# SB_RAM40_4K; ECP5 PDPW16KD/DP16KD, Gowin SDP/DP: up to 36 bits).
_BRAM_SHAPES = {
    "ice40": ((16, 256), (8, 512), (4, 1024), (2, 2048)),
    "ecp5": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
    "gowin": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
}
# The configurations in which a written memory can be reshaped (a write enable per bit).
_MASKED_SHAPES = {"ice40": ((16, 256),), "ecp5": (), "gowin": ()}

# yosys 0.70 memory_libmap's costs (techlibs/*/brams*.txt, lutrams*.txt): a block RAM
# (SB_RAM40_4K 64, DP16KD/PDPW16KD 128, Gowin BSRAM 128); a 16 x 4 LUT RAM (TRELLIS_DPR16X4,
# Gowin RAM16SDP4: 4; iCE40 has none); logic costs 1 per bit of RAM and 1/16 per bit of ROM.
_BLOCK_COST = {"ice40": 64, "ecp5": 128, "gowin": 128}
_LUTRAM_COST = {"ice40": None, "ecp5": 4, "gowin": 4}
_LUTRAM_WIDTHSCALE = {"gowin"}
_LOGIC_COST = {"ram": 1.0, "rom": 1 / 16}
#: memory_libmap charges emulated port features twice their score: a read port not shared
#: with the write port (1) and its soft initial value (2), as amaranth's ports have.
_EMULATION = 2 * (1 + 2)
#: ... and an amaranth ``SyncFIFOBuffered``'s storage twice 7: measured on iCE40 (no LUT RAM,
#: so logic against one block decides), SyncFIFOBuffered(width=2 or 4) takes a block from 80
#: stored bits (64 + 14 < 80) and stays in logic at 76-78, a 7 x 20 one stays in logic (142 >
#: 140).
_EMULATION_FIFO = 2 * 7
_FACTOR_MUX = 0.5


def bram_blocks(depth: int, width: int, family: str, *, writable: bool = False) -> int:
    """Block RAMs for one ``depth x width`` memory, 0 when it is left to LUTs (the simple
    rule: at most ``LUT_MEMORY_BITS`` bits, except that iCE40 has no LUT RAM, so a memory
    that is written takes a block however small)."""
    if depth * width <= LUT_MEMORY_BITS and not (writable and family == "ice40"):
        return 0
    return _geometry_blocks(depth, width, family, rom=not writable)


def _geometry_blocks(depth: int, width: int, family: str, *, rom: bool) -> int:
    """Blocks of one ``depth x width`` memory with one read port: the least over the
    configurations ``(w, d)``, as is (``ceil(width / w) * ceil(depth / d)``) or, for a ROM or
    in a configuration with a write mask per bit, reshaped (``ceil(ceil(depth / d) * width /
    w)``: the words that share a row of a ``d``-deep block)."""
    plain = min(math.ceil(width / w) * math.ceil(depth / d) for w, d in _BRAM_SHAPES[family])
    packing = _BRAM_SHAPES[family] if rom else _MASKED_SHAPES[family]
    packed = [math.ceil(math.ceil(depth / d) * width / w) for w, d in packing]
    return min([plain, *packed])


def mapping(words: int, bits: int, family: str, *, rom: bool, read_ports: int = 1,
            sync_read: bool = True, fifo: bool = False) -> tuple[str, int]:
    """Where yosys puts a ``words x bits`` memory on ``family``: ``("block", blocks)``,
    ``("lutram", 0)`` or ``("logic", 0)``, by the least of memory_libmap's costs.

    A block RAM in its read + write mode, or a LUT RAM, has one read port besides the write
    port, so a memory with more read ports is replicated (one copy per read port: measured
    so on all three families, also for a read port at the write address). A ROM is never put
    in LUT RAM (``prune_rom``); a memory read asynchronously cannot use a block RAM. ``fifo``:
    the storage of a ``SyncFIFOBuffered``, whose read port yosys emulates at a higher cost.
    """
    options = [("logic", words * bits * _LOGIC_COST["rom" if rom else "ram"], 0)]
    if sync_read:
        blocks = _geometry_blocks(words, bits, family, rom=rom) * (1 if rom else read_ports)
        emulation = _EMULATION_FIFO if fifo else _EMULATION
        options.append(("block", _BLOCK_COST[family] * blocks + emulation, blocks))
    lutram = _LUTRAM_COST[family]
    if lutram is not None and not rom:
        depth = math.ceil(words / 16)
        # Gowin's LUT RAM is declared ``widthscale``: a partly used 4-bit unit costs its used
        # bits only (a 141 x 9 FIFO: 81, not 108; measured with memory_libmap -debug).
        units = bits / 4 if family in _LUTRAM_WIDTHSCALE else math.ceil(bits / 4)
        cost = (lutram * depth * units + _FACTOR_MUX * (depth - 1) * bits)
        options.append(("lutram", cost * read_ports, 0))
    kind, _, blocks = min(options, key=lambda option: option[1])
    return kind, blocks


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
    read_ports : int
        Read ports besides the write port (a block RAM gives one: more replicate it).
    sync_read : bool
        False when the component reads it asynchronously (an amaranth ``SyncFIFO``): never a
        block RAM.
    constant_bits : int
        Bits of a ROM's word that are equal in every word: yosys replaces those columns by
        constants before it maps the memory (measured: a 128 x 110 ROM with 74 constant
        columns takes one DP16KD, with 73 two), so only the others are counted.
    """

    name: str
    kind: MemoryKind
    words: int
    bits: int
    count: int = 1
    read_ports: int = 1
    sync_read: bool = True
    constant_bits: int = 0

    @property
    def total_bits(self) -> int:
        return self.count * self.words * self.bits

    def mapping(self, family: str) -> str:
        """``block``, ``lutram`` or ``logic``: where yosys puts it (:func:`mapping`)."""
        return self._mapped(family)[0]

    @property
    def mapped_bits(self) -> int:
        """The width yosys maps: a ROM's columns that vary from word to word."""
        return self.bits - self.constant_bits if self.kind is MemoryKind.ROM else self.bits

    def _mapped(self, family: str) -> tuple[str, int]:
        if self.mapped_bits <= 0:  # every column constant: wiring, no memory
            return "logic", 0
        return mapping(self.words, self.mapped_bits, family, rom=self.kind is MemoryKind.ROM,
                       read_ports=self.read_ports, sync_read=self.sync_read,
                       fifo=self.kind is MemoryKind.FIFO)

    def blocks(self, family: str) -> int:
        """Block RAMs all ``count`` memories take on ``family`` (0: LUT RAM or logic)."""
        return self.count * self._mapped(family)[1]

    def lut_bits(self, family: str) -> int:
        """Bits held in logic rather than block RAM on ``family``."""
        return 0 if self.blocks(family) else self.total_bits

    def to_json(self) -> dict:
        return {"name": self.name, "kind": str(self.kind), "words": self.words,
                "bits": self.bits, "count": self.count, "total_bits": self.total_bits,
                "read_ports": self.read_ports,
                "blocks": {family: self.blocks(family) for family in FAMILIES},
                "mapping": {family: self.mapping(family) for family in FAMILIES}}
