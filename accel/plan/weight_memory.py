"""The one external weight memory that a plan's streamed stages share, as the board top builds
it: its port geometry, how the streams share it, and what it holds.

Every streamed stage (:class:`~accel.plan.weights.StreamedWeights`) reads the same memory
through its own ``weights<N>`` port. With one streamed stage the port is the memory's; with
more, a :class:`~accel.hw.weight_arbiter.WeightArbiter` takes their burst requests in turn
(round robin) and hands every response word back to the stage that asked. It forwards one
request per two cycles and adds no cycle to a word, so with bursts of ``max_burst`` words
(two cycles or more each) the streams together still get the memory's ``words_per_cycle``:
the bandwidth bound stays :attr:`~accel.plan.plan.NetworkPlan.stream_cycles`, all streamed
words over that rate (the plan's cycle model follows the arbiter itself,
:mod:`.shared_stream_timing`).

The arbiter remembers which stage each forwarded request belongs to until its last word is
back: :attr:`WeightMemoryPlan.queue_depth` requests, enough for those answered during one
read latency plus the one being answered and the one being forwarded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import AccelError
from .weights import ExternalMemory, image_payload

__all__ = ["MODEL_QUEUE", "MODEL_REFRESH_CYCLES", "MODEL_REFRESH_PERIOD", "SPRAM_BLOCK_WORDS",
           "WeightMemoryPlan", "arbiter_queue_depth", "weight_memory_plan"]

#: The simulation harness's memory model (:class:`accel.sim.memory_model.MemoryModel`): the
#: requests it queues, and its refresh pause (``MODEL_REFRESH_CYCLES`` busy cycles at the
#: start of every ``MODEL_REFRESH_PERIOD``, counted from reset). Here, so that the plan's cycle
#: model of it (:mod:`.stream_timing`) and the model read the same numbers.
MODEL_QUEUE = 4
MODEL_REFRESH_PERIOD = 780
MODEL_REFRESH_CYCLES = 10

#: 16-bit words of one iCE40 ``SB_SPRAM256KA``.
SPRAM_BLOCK_WORDS = 16384


@dataclass(frozen=True)
class WeightMemoryPlan:
    """The shared weight memory of a plan (see module doc).

    Members
    -------
    memory : ExternalMemory
    stages : tuple of int
        The streamed stages' indices, in plan order: the accelerator's ``weights<N>`` ports
        and the arbiter's inputs in that order.
    addr_bits, max_burst, word_bits : int
        The ports' geometry (the same for every stage: one memory).
    queue_depth : int
        Requests the arbiter tracks at once (module doc); 0 with a single stream (no arbiter).
    words : int
        Words from address 0 to the last streamed word: the weight image's payload.
    payload_bytes : int
        The weight image's payload in bytes.
    spram_blocks : int
        ``SB_SPRAM256KA`` blocks the memory takes when it is SPRAM (whole 16 K-word banks
        holding ``words``), else 0.
    """

    memory: ExternalMemory
    stages: tuple[int, ...]
    addr_bits: int
    max_burst: int
    word_bits: int
    queue_depth: int
    words: int
    payload_bytes: int
    spram_blocks: int

    @property
    def arbitrated(self) -> bool:
        """Whether more than one stage shares the memory (an arbiter is built)."""
        return len(self.stages) > 1

    def to_json(self) -> dict:
        return {"memory": self.memory.kind, "stages": list(self.stages),
                "addr_bits": self.addr_bits, "max_burst": self.max_burst,
                "word_bits": self.word_bits, "queue_depth": self.queue_depth,
                "words": self.words, "payload_bytes": self.payload_bytes,
                "spram_blocks": self.spram_blocks}


def arbiter_queue_depth(memory: ExternalMemory) -> int:
    """The arbiter's owner queue (:attr:`WeightMemoryPlan.queue_depth`) on ``memory``: the
    requests answered during one read latency, the one being answered and the one being
    forwarded."""
    return 2 + math.ceil(memory.read_latency / memory.max_burst)


def weight_memory_plan(plan) -> WeightMemoryPlan:
    """The weight memory of ``plan`` (a :class:`~accel.plan.plan.NetworkPlan` with streamed
    stages); an :class:`AccelError` if it streams nothing."""
    stages = plan.streamed_stages
    if not stages:
        raise AccelError(f"{plan.name}: no stage streams its weights, so there is no weight "
                         f"memory")
    streams = [s.streamed for s in stages]
    memory = streams[0].memory
    if any(s.memory != memory for s in streams):
        raise AccelError(f"{plan.name}: the streamed stages read different memories")
    words = max(s.end for s in streams)
    queue = arbiter_queue_depth(memory) if len(streams) > 1 else 0
    spram = math.ceil(words / SPRAM_BLOCK_WORDS) if memory.kind == "spram" else 0
    return WeightMemoryPlan(
        memory=memory, stages=tuple(s.index for s in stages), addr_bits=streams[0].addr_bits,
        max_burst=streams[0].max_burst, word_bits=streams[0].word_bits, queue_depth=queue,
        words=words, payload_bytes=len(image_payload(streams)), spram_blocks=spram)
