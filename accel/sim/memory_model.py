"""A burst memory model in hardware, for the simulation harness: it serves a streamed stage's
weight port (:func:`~accel.hw.weight_stream.weight_port_signature`) the way an SDRAM
controller does, without Python in the loop.

- Requests ``(addr, length)`` are queued (up to :data:`QUEUE` of them, so the reader can
  pipeline its bursts as it would with LiteDRAM); each one's data may start a random
  ``min_latency .. min_latency + 15`` cycles after it was taken (an LFSR draws it).
- Every ``refresh_period`` cycles the memory is busy for ``refresh_cycles``: it takes no
  request and sends no word (SDRAM refresh).
- Words come out in request order, with random single-cycle gaps (``gap_percent``) and one
  idle cycle between bursts.
- Deterministic (``jitter=False``, ``gap_percent=0``): every request's data may start exactly
  ``min_latency`` cycles after it was taken and nothing else is random, the mode in which the
  plan's timing of streamed stages is exact (:mod:`accel.plan.stream_timing` follows this
  model cycle by cycle).
- The contents are a ROM of the words from ``base``; a request outside them is answered with
  zeros, and counted in ``errors`` (the reader asked for a word the plan did not lay out).
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from ..hw.weight_stream import weight_port_signature
from ..plan.weight_memory import MODEL_QUEUE, MODEL_REFRESH_CYCLES, MODEL_REFRESH_PERIOD

__all__ = ["QUEUE", "MemoryModel"]

#: Requests the model holds before it stops taking more.
QUEUE = MODEL_QUEUE


def _lfsr_step(state):
    """A 16-bit maximal Galois LFSR (taps 0xB400)."""
    return Mux(state[0], (state >> 1) ^ 0xB400, state >> 1)


class MemoryModel(wiring.Component):
    """The memory behind one weight port (see module doc).

    Parameters
    ----------
    words : numpy.ndarray
        The memory's words from ``base`` on (unsigned, ``word_width`` bits).
    base, addr_width, max_burst, word_width : int
        The port's geometry.
    seed : int
        LFSR seed.
    gap_percent : int
        Probability (0..99) of a gap in the data in any cycle.
    min_latency : int
        The shortest request-to-data latency.
    jitter : bool
        Add a random 0..15 cycles to each request's latency (``False``: exactly
        ``min_latency``).
    refresh_period, refresh_cycles : int
        The refresh pause (``refresh_period`` 0: none).

    Members
    -------
    port : In(weight_port_signature(...))
        The memory side: takes ``mem_cmd``, drives ``mem_rsp``.
    words_sent : Out(32)
        Words delivered so far.
    errors : Out(32)
        Words requested outside the ROM.
    """

    def __init__(self, *, words: np.ndarray, base: int, addr_width: int, max_burst: int,
                 word_width: int, seed: int = 1, gap_percent: int = 2, min_latency: int = 8,
                 jitter: bool = True, refresh_period: int = MODEL_REFRESH_PERIOD,
                 refresh_cycles: int = MODEL_REFRESH_CYCLES):
        self.words = [int(w) for w in words]
        self.base, self.addr_width, self.max_burst = base, addr_width, max_burst
        self.word_width = word_width
        self.seed = (seed & 0xFFFF) or 1
        self.gap, self.min_latency, self.jitter = gap_percent, min_latency, jitter
        self.refresh_period, self.refresh_cycles = refresh_period, refresh_cycles
        super().__init__({
            "port": In(weight_port_signature(addr_width=addr_width, max_burst=max_burst,
                                             word_width=word_width)),
            "words_sent": Out(32),
            "errors": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cmd, rsp = self.port.mem_cmd, self.port.mem_rsp
        now = Signal(48)
        m.d.sync += now.eq(now + 1)
        lfsr = Signal(16, init=self.seed)
        m.d.sync += lfsr.eq(_lfsr_step(lfsr))

        refresh = Signal()
        if self.refresh_period:
            phase = Signal(range(self.refresh_period))
            m.d.sync += phase.eq(Mux(phase == self.refresh_period - 1, 0, phase + 1))
            m.d.comb += refresh.eq(phase < self.refresh_cycles)

        entry = data.StructLayout({"addr": unsigned(self.addr_width),
                                   "length": unsigned(self.max_burst.bit_length()),
                                   "start": unsigned(48)})
        m.submodules.queue = queue = fifo.SyncFIFO(width=entry.size, depth=QUEUE)
        taken = Signal(entry)
        m.d.comb += [
            cmd.ready.eq(queue.w_rdy & ~refresh),
            taken.addr.eq(cmd.payload.addr),
            taken.length.eq(cmd.payload.length),
            taken.start.eq(now + self.min_latency + (lfsr[:4] if self.jitter else 0)),
            queue.w_data.eq(taken),
            queue.w_en.eq(cmd.valid & cmd.ready),
        ]

        head = Signal(entry)
        m.d.comb += head.eq(queue.r_data)
        active = Signal()
        addr = Signal(self.addr_width)
        left = Signal(self.max_burst.bit_length())
        with m.If(~active & queue.r_rdy & (now >= head.start)):
            m.d.comb += queue.r_en.eq(1)
            m.d.sync += [active.eq(1), addr.eq(head.addr), left.eq(head.length)]

        depth = max(len(self.words), 1)
        m.submodules.rom = rom = memory.Memory(shape=unsigned(self.word_width), depth=depth,
                                               init=self.words or [0])
        rd = rom.read_port(domain="comb")
        index = Signal(self.addr_width + 1)
        inside = Signal()
        m.d.comb += [index.eq(addr - self.base),
                     inside.eq((addr >= self.base) & (index < len(self.words))),
                     rd.addr.eq(index)]
        gap = lfsr[4:] < (self.gap * 4096 // 100)
        m.d.comb += [rsp.valid.eq(active & ~refresh & ~gap),
                     rsp.payload.eq(Mux(inside, rd.data, 0))]
        with m.If(rsp.valid & rsp.ready):
            m.d.sync += [addr.eq(addr + 1), left.eq(left - 1),
                         self.words_sent.eq(self.words_sent + 1)]
            with m.If(left == 1):
                m.d.sync += active.eq(0)
            with m.If(~inside):
                m.d.sync += self.errors.eq(self.errors + 1)
        return m
