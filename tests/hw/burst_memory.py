"""A behavioural burst memory for ``amaranth.sim`` testbenches: it accepts ``(addr, length)``
requests on one stream and returns the words in request order on another, after a random
latency, with random ready stalls, random valid gaps and refresh-like pauses (every
``refresh_period`` cycles, ``refresh_cycles`` cycles with neither requests nor data), the way an
SDRAM controller behaves. Seeded; stop it by setting ``done`` (the consumer does)."""

from __future__ import annotations

from collections import deque

import numpy as np


class BurstMemoryModel:
    def __init__(self, words, rng: np.random.Generator, *, latency=(1, 12), cmd_stall=0.3,
                 rsp_gap=0.2, refresh_period=200, refresh_cycles=8, strict=False):
        self.words = list(words)
        self.rng = rng
        self.latency = latency
        self.cmd_stall, self.rsp_gap = cmd_stall, rsp_gap
        self.refresh_period, self.refresh_cycles = refresh_period, refresh_cycles
        # strict: the reader promised room for every word it asked for, so a refused word is a
        # failure (a memory such as a flash read cannot pause in the middle of a burst).
        self.strict = strict
        self.now = 0
        self.pending: deque = deque()   # (cycle the data may start, first word, length)
        self.requests: list[tuple[int, int]] = []
        self.done = False

    def _refreshing(self) -> bool:
        return bool(self.refresh_period) and self.now % self.refresh_period < self.refresh_cycles

    def clock(self):
        async def testbench(ctx):
            while not self.done:
                await ctx.tick()
                self.now += 1
        return testbench

    def commands(self, cmd):
        async def testbench(ctx):
            while not self.done:
                ready = not self._refreshing() and self.rng.random() >= self.cmd_stall
                ctx.set(cmd.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(cmd.valid, cmd.payload)
                if valid and ready:
                    addr, length = payload.addr, payload.length
                    assert 1 <= length, f"zero-length request at {addr:#x}"
                    self.requests.append((addr, length))
                    start = self.now + int(self.rng.integers(*self.latency, endpoint=True))
                    self.pending.append((start, addr, length))
        return testbench

    def responses(self, rsp):
        async def testbench(ctx):
            word = None  # (address) of the word being offered
            while not self.done:
                if word is None and self.pending and self.pending[0][0] <= self.now:
                    start, addr, length = self.pending[0]
                    word = addr
                offer = (word is not None and not self._refreshing()
                         and self.rng.random() >= self.rsp_gap)
                ctx.set(rsp.valid, offer)
                if offer:
                    ctx.set(rsp.payload, self.words[word])
                _, _, ready = await ctx.tick().sample(rsp.ready)
                assert not (self.strict and offer and not ready), \
                    f"cycle {self.now}: word {word:#x} refused although it was requested"
                if offer and ready:
                    start, addr, length = self.pending[0]
                    if word + 1 == addr + length:
                        self.pending.popleft()
                        word = None
                    else:
                        word += 1
            ctx.set(rsp.valid, 0)
        return testbench
