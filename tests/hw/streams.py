"""Stream helpers for ``amaranth.sim`` testbenches: a producer that inserts random valid gaps and
a consumer that inserts random ready stalls, both seeded.

Used by every block test so backpressure is exercised the same way everywhere. Payloads are
whatever ``ctx.set`` accepts for the stream's payload shape (an int, a list for an
``ArrayLayout``, a dict for a ``StructLayout``); ``stream_get`` returns what ``ctx.get`` returns
(a ``data.Const`` view for layouts: compare with ``as_python``).
"""

from __future__ import annotations

import numpy as np


async def stream_put(ctx, stream, payload) -> None:
    """Offer one payload and wait until the sink takes it."""
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Accept one payload."""
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def producer(stream, payloads, *, rng: np.random.Generator | None = None, gap: float = 0.0):
    """A testbench that sends ``payloads`` in order, idling a random number of cycles (with
    probability ``gap``, up to 3) before each one."""

    async def testbench(ctx):
        for payload in payloads:
            if rng is not None and gap and rng.random() < gap:
                await ctx.tick().repeat(int(rng.integers(1, 4)))
            await stream_put(ctx, stream, payload)

    return testbench


def consumer(stream, count: int, results: list, *, rng: np.random.Generator | None = None,
             stall: float = 0.0, convert=None):
    """A testbench that receives ``count`` payloads into ``results``, refusing (ready low) for
    a random number of cycles with probability ``stall`` before each one. ``convert`` maps each
    payload (e.g. ``lambda p: p.as_python()`` or ``lambda p: list(p.data)``)."""

    async def testbench(ctx):
        for _ in range(count):
            if rng is not None and stall and rng.random() < stall:
                await ctx.tick().repeat(int(rng.integers(1, 4)))
            payload = await stream_get(ctx, stream)
            results.append(convert(payload) if convert else payload)

    return testbench
