"""What every stage plan derives the same way, written once.

A stage plan (:class:`~accel.plan.plan.StagePlan`, ``DepthwiseStagePlan``, ``PoolStagePlan``,
:class:`~accel.plan.join.AddStagePlan`) lists its ``memories``; the bit counts per memory name
and the block RAMs per FPGA family follow from that list alone. Stages that only pass lanes
through (pooling, Add) also share their lane and PE facts.
"""

from __future__ import annotations

__all__ = ["LaneStage", "StageMemories"]


class StageMemories:
    """``memory_bits`` and ``bram_blocks`` from the stage's ``memories``."""

    @property
    def memory_bits(self) -> dict:
        """Bits per memory name (``weights``, ``line_buffer``, ``requant``, ``pool``, ...)."""
        bits = {"weights": 0, "line_buffer": 0, "requant": 0, "pool": 0}
        for memory in self.memories:
            bits[memory.name] = bits.get(memory.name, 0) + memory.total_bits
        return bits

    def bram_blocks(self, family: str) -> int:
        return sum(memory.blocks(family) for memory in self.memories)


class LaneStage(StageMemories):
    """A stage without PEs or weights whose ``lanes`` carry values in and out unchanged in
    number (pooling, Add)."""

    pes = 0
    ideal_cycles = 0.0
    utilization = 0.0
    weight_count = 0

    @property
    def in_lanes(self) -> int:
        return self.lanes

    @property
    def out_lanes(self) -> int:
        return self.lanes

    @property
    def weight_bits(self) -> int:
        return self.in_bits
