"""Where weights live: ROMs in the PEs, or a stream from a board's external memory.

Convolution weights are used once per output pixel, so they stay in per-PE ROMs (block RAM).
A Dense layer uses each weight once per image: its ROM costs block RAM for almost no reuse,
and the seed network's first dense layer alone (3136 x 128 int8) needs 196 of the ULX3S-85F's
208 DP16KD. Such a layer can instead read its weights from the board's SDRAM (or SPRAM, or
flash) as one sequential frame per image (:class:`StreamedWeights`).

The layout
----------
The array consumes a Dense stage's weight tiles in address order: for each f-tile, the
``Kt`` k-tiles of the input vector (:func:`~accel.plan.lower.tile_weights`, the replay's
order), each tile ``R x C`` weights. So the memory holds the tiles in that order, each tile
packed row-major (``r``, then ``c``) into ``words_per_tile`` words of ``word_bits``, with
``weights_per_word = word_bits // weight_bits`` weights per word, the first in the least
significant bits, and the last word of a tile zero-padded. One image reads
``tiles * words_per_tile`` consecutive words from the stage's ``base`` (word address): one
frame, in bursts of ``max_burst`` words.

Bandwidth
---------
The memory sustains ``words_per_cycle`` words per accelerator cycle (measured for the board's
controller at ``max_burst``-word bursts, refresh included). A streamed stage takes at least
``ceil(words_per_image / (batch * words_per_cycle))`` cycles per image, its bandwidth bound;
its cycles are the larger of that and the array's compute cycles. Streamed stages share the
one memory, so the network's interval is at least the sum of their words over
``words_per_cycle`` and the batch (:attr:`~accel.plan.plan.NetworkPlan.stream_cycles`).

Batches
-------
With ``batch = B > 1`` (``--batch``) a streamed stage reads its frame once per ``B`` images
and uses every weight tile for all ``B`` of them (:mod:`accel.hw.batch`): it holds ``B``
input vectors (two banks, so the next batch fills one while the other is computed), ``B``
sets of column sums for the f-tile being computed, and the finished sums of two batches,
which it hands on image by image. ``words_per_image`` is then the words of one frame, read
once per batch (the name is batch 1's). These buffers are :class:`MemoryPlan` s of the
stage (:attr:`StreamedWeights.memories`), so the block-RAM count and the fit check include
them; :func:`check_batch_fits` refuses a batch whose buffers the board cannot hold. The
hardware computes whole batches: the host sends images in multiples of ``B``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import AccelError
from .memory import MemoryKind, MemoryPlan

__all__ = ["BATCH_ACCUMULATOR_LATENCY", "BATCH_FIFO_DEPTH", "ExternalMemory", "StreamedWeights",
           "WeightPlacement",
           "batch_memories", "check_batch", "check_batch_fits", "fifo_depth_for",
           "image_payload", "pack_tiles"]

#: Entries of the output FIFO behind a batched stage's sum buffer (a sync read in flight and
#: the beat being taken, as the window replay's).
#: :class:`~accel.hw.batch.BatchAccumulator`'s cycles from taking a batch's last beat to
#: offering its first sum: the bank's full flag, the read, the FIFO.
BATCH_ACCUMULATOR_LATENCY = 3
BATCH_FIFO_DEPTH = 3


@dataclass(frozen=True)
class ExternalMemory:
    """A memory outside the FPGA fabric's block RAMs that can hold streamed weights.

    Members
    -------
    kind : str
        ``sdram``, ``spram`` or ``flash``.
    size_bytes : int
    word_bits : int
        The memory's word, as the read port delivers it.
    clock_mhz : float
        The memory's own clock (its rating or the controller's), for the record.
    words_per_cycle : float
        Sustained read words per accelerator clock cycle at ``max_burst``-word bursts.
    max_burst : int
        The longest request the read port takes, in words.
    read_latency : int
        Cycles from a request to its first word, allowed for when sizing the prefetch FIFO.
    source : str
        Where ``words_per_cycle`` and ``read_latency`` come from (measured or derived).
    refresh_period, refresh_cycles : int
        The refresh pause of the simulation harness's deterministic memory model of it
        (``refresh_cycles`` busy cycles at the start of every ``refresh_period`` from reset;
        0: none), which the plan's cycle model of a weight stream follows
        (:mod:`accel.plan.stream_timing`).
    """

    kind: str
    size_bytes: int
    word_bits: int
    clock_mhz: float
    words_per_cycle: float
    max_burst: int
    read_latency: int
    source: str
    refresh_period: int = 0
    refresh_cycles: int = 0

    @property
    def words(self) -> int:
        return self.size_bytes * 8 // self.word_bits

    @property
    def addr_bits(self) -> int:
        """Bits of a word address."""
        return max(1, (self.words - 1).bit_length())

    def to_json(self) -> dict:
        return {"kind": self.kind, "size_bytes": self.size_bytes, "word_bits": self.word_bits,
                "clock_mhz": self.clock_mhz, "words_per_cycle": self.words_per_cycle,
                "max_burst": self.max_burst, "read_latency": self.read_latency,
                "source": self.source, "refresh_period": self.refresh_period,
                "refresh_cycles": self.refresh_cycles}


@dataclass(frozen=True)
class WeightPlacement:
    """What the planner may use for weights: the board's block RAMs (``family``,
    ``bram_blocks``) and its external memories (best first).

    ``bram_blocks=None`` means no limit (every weight stays in ROMs unless ``stream`` names
    it). ``stream`` forces these layer names to stream (for tests and experiments); the
    planner adds more, lowest reuse first, while the plan needs more block RAMs than the board
    has. ``board`` names the board in messages. ``batch``: every streamed weight is used for
    this many images (see "Batches").
    """

    family: str
    bram_blocks: int | None
    memories: tuple[ExternalMemory, ...] = ()
    stream: tuple[str, ...] = ()
    board: str = ""
    batch: int = 1


def check_batch(batch: object) -> int:
    """``batch`` as a positive integer, or an :class:`AccelError` naming it."""
    if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
        raise AccelError(f"--batch {batch!r}: must be an integer of at least 1")
    return int(batch)


def batch_memories(*, batch: int, rows: int, cols: int, k_tiles: int, f_tiles: int,
                   in_bits: int, acc_bits: int) -> tuple[MemoryPlan, ...]:
    """The buffers of a stage computing ``batch > 1`` images per weight frame
    (:mod:`accel.hw.batch`): the input vectors (two banks of ``batch * k_tiles`` beats of
    ``rows`` values), the column sums of the f-tile in progress (``batch`` words of ``cols``
    sums, read asynchronously: LUT RAM), the finished sums (two banks of ``batch * f_tiles``
    words) and the FIFO behind them. Empty at batch 1 (the stage's window replay and
    accumulator register are used)."""
    if batch == 1:
        return ()
    sums = cols * acc_bits
    return (MemoryPlan("batch_inputs", MemoryKind.RAM, 2 * batch * k_tiles, rows * in_bits),
            MemoryPlan("batch_sums", MemoryKind.RAM, batch, sums, sync_read=False),
            MemoryPlan("batch_outputs", MemoryKind.RAM, 2 * batch * f_tiles, sums),
            MemoryPlan("batch_fifo", MemoryKind.FIFO, BATCH_FIFO_DEPTH, sums + 1,
                       sync_read=False))


def fifo_depth_for(memory: ExternalMemory) -> int:
    """The prefetch FIFO's words: two bursts plus the words arriving during one latency, the
    depth at which :class:`~accel.hw.burst_reader.BurstReader` hides the memory's latency."""
    return 2 * memory.max_burst + memory.read_latency


def pack_tiles(tiles: np.ndarray, weight_bits: int, word_bits: int) -> np.ndarray:
    """Tiles ``(depth, R, C)`` of signed weights as memory words (see "The layout"):
    ``(depth * words_per_tile,)`` unsigned integers of ``word_bits``."""
    if weight_bits > word_bits:
        raise AccelError(f"{weight_bits}-bit weights do not fit {word_bits}-bit memory words")
    per_word = word_bits // weight_bits
    depth = tiles.shape[0]
    flat = tiles.reshape(depth, -1).astype(np.int64) & ((1 << weight_bits) - 1)
    words_per_tile = -(-flat.shape[1] // per_word)
    padded = np.zeros((depth, words_per_tile * per_word), np.uint64)
    padded[:, :flat.shape[1]] = flat.astype(np.uint64)
    grouped = padded.reshape(depth, words_per_tile, per_word)
    shifts = (np.arange(per_word, dtype=np.uint64) * np.uint64(weight_bits))
    words = np.bitwise_or.reduce(grouped << shifts, axis=2)
    return words.reshape(-1)


@dataclass(frozen=True, eq=False)
class StreamedWeights:
    """A stage whose weights come from external memory (see module doc).

    Members
    -------
    memory : ExternalMemory
    base : int
        The first word address of the stage's weights.
    tiles : int
        Weight tiles per image (``Kt * Ft``).
    weight_bits, word_bits, weights_per_word, words_per_tile : int
    words_per_image : int
        ``tiles * words_per_tile``: one frame, read once per batch.
    max_burst, fifo_depth : int
        The reader's longest request and its prefetch FIFO (:func:`fifo_depth_for`).
    addr_bits, count_bits : int
        Widths of a word address and of a frame's word count.
    compute_cycles : int
        The array's cycles per image.
    bandwidth_cycles : int
        ``ceil(words_per_image / (batch * memory.words_per_cycle))``: per image.
    words : numpy.ndarray
        The words, in address order from ``base`` (:func:`pack_tiles`).
    fifo : MemoryPlan
        The reader's FIFO (an amaranth ``SyncFIFOBuffered`` of ``fifo_depth`` words with the
        frame's ``last`` bit: ``fifo_depth - 1`` in its memory).
    batch : int
        Images per frame read (see "Batches").
    buffers : tuple of MemoryPlan
        The batch's buffers (:func:`batch_memories`; empty at batch 1).
    """

    memory: ExternalMemory
    base: int
    tiles: int
    weight_bits: int
    word_bits: int
    weights_per_word: int
    words_per_tile: int
    words_per_image: int
    max_burst: int
    fifo_depth: int
    addr_bits: int
    count_bits: int
    compute_cycles: int
    bandwidth_cycles: int
    words: np.ndarray = field(repr=False)
    fifo: MemoryPlan
    batch: int = 1
    buffers: tuple[MemoryPlan, ...] = ()

    @classmethod
    def build(cls, *, memory: ExternalMemory, base: int, tiles: np.ndarray, weight_bits: int,
              compute_cycles: int, batch: int = 1, k_tiles: int | None = None,
              in_bits: int = 8, acc_bits: int = 32) -> StreamedWeights:
        """The plan of a stage's weight stream; ``tiles`` ``(depth, R, C)`` in address order,
        ``k_tiles`` of them per f-tile (default: all), ``in_bits`` and ``acc_bits`` the widths
        of its input values and sums (they size the batch's buffers)."""
        batch = check_batch(batch)
        k_tiles = tiles.shape[0] if k_tiles is None else k_tiles
        words = pack_tiles(tiles, weight_bits, memory.word_bits)
        per_word = memory.word_bits // weight_bits
        per_tile = -(-tiles.shape[1] * tiles.shape[2] // per_word)
        count = len(words)
        depth = fifo_depth_for(memory)
        return cls(memory=memory, base=base, tiles=tiles.shape[0], weight_bits=weight_bits,
                   word_bits=memory.word_bits, weights_per_word=per_word,
                   words_per_tile=per_tile, words_per_image=count,
                   max_burst=memory.max_burst, fifo_depth=depth, addr_bits=memory.addr_bits,
                   count_bits=count.bit_length(), compute_cycles=compute_cycles,
                   bandwidth_cycles=math.ceil(count / (batch * memory.words_per_cycle)),
                   words=words,
                   fifo=MemoryPlan("weight_fifo", MemoryKind.FIFO, depth - 1,
                                   memory.word_bits + 1),
                   batch=batch,
                   buffers=batch_memories(batch=batch, rows=tiles.shape[1],
                                          cols=tiles.shape[2], k_tiles=k_tiles,
                                          f_tiles=tiles.shape[0] // k_tiles, in_bits=in_bits,
                                          acc_bits=acc_bits))

    @property
    def memories(self) -> tuple[MemoryPlan, ...]:
        """The stage's memories for its weight stream: the prefetch FIFO and the batch's
        buffers."""
        return (self.fifo, *self.buffers)

    @property
    def cycles(self) -> int:
        """The stage's cycles per image: compute or bandwidth, whichever is slower."""
        return max(self.compute_cycles, self.bandwidth_cycles)

    @property
    def bound(self) -> str:
        """What bounds the stage: ``bandwidth`` or ``compute``."""
        return "bandwidth" if self.bandwidth_cycles > self.compute_cycles else "compute"

    @property
    def end(self) -> int:
        """The word address after the stage's last word."""
        return self.base + self.words_per_image

    def to_json(self) -> dict:
        return {"memory": self.memory.kind, "base": self.base,
                "words_per_image": self.words_per_image, "word_bits": self.word_bits,
                "weights_per_word": self.weights_per_word,
                "words_per_tile": self.words_per_tile, "tiles": self.tiles,
                "burst": self.max_burst, "fifo_depth": self.fifo_depth,
                "addr_bits": self.addr_bits, "compute_cycles": self.compute_cycles,
                "bandwidth_cycles": self.bandwidth_cycles, "bound": self.bound,
                "words_per_cycle": self.memory.words_per_cycle, "batch": self.batch,
                "buffers": [m.to_json() for m in self.buffers]}


def check_batch_fits(plan, placement: WeightPlacement) -> None:
    """Refuse a batch whose buffers take the board past its block RAMs: an
    :class:`AccelError` naming the stage with the largest buffers, the blocks the plan needs
    and the blocks the board has. Nothing to check at batch 1 or without a block budget."""
    if placement.batch == 1 or placement.bram_blocks is None:
        return
    family = placement.family
    need = plan.bram_blocks(family)
    if need <= placement.bram_blocks:
        return
    stages = plan.streamed_stages
    buffers = sum(m.blocks(family) for s in stages for m in s.streamed.buffers)
    if not stages or need - buffers > placement.bram_blocks:
        return  # it does not fit at batch 1 either: the fit check says what does not
    stage = max(stages, key=lambda s: sum(m.blocks(family) for m in s.streamed.buffers))
    own = sum(m.blocks(family) for m in stage.streamed.buffers)
    where = f"--board {placement.board}" if placement.board else "the board"
    raise AccelError(f"--batch {placement.batch}: stage {stage.index} ({stage.layer}) buffers "
                     f"{placement.batch} images in {own} block RAMs; the plan needs {need}, "
                     f"more than the {placement.bram_blocks} of {where}")


def image_payload(streams: list[StreamedWeights]) -> bytes:
    """The external memory's contents from word address 0 to the last streamed word, each
    word little-endian in ``word_bits // 8`` bytes, unused words zero: the payload of the
    weight image (:mod:`accel.synth.weight_image`) that the board copies into the memory."""
    if not streams:
        raise AccelError("the plan streams no weights, so there is no weight image")
    word_bits = streams[0].word_bits
    end = max(s.end for s in streams)
    memory = np.zeros(end, np.uint64)
    for s in streams:
        memory[s.base:s.end] = s.words
    size = word_bits // 8
    as_bytes = memory.astype(f"<u{size}") if size in (1, 2, 4, 8) else None
    if as_bytes is None:
        raise AccelError(f"{word_bits}-bit memory words are not whole bytes of 1, 2, 4 or 8")
    return as_bytes.tobytes()
