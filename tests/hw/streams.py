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


def run_simulation(dut, testbenches, *, max_cycles: int = 1_000_000, vcd: str | None = None):
    """Run ``testbenches`` on ``dut`` until all of them finish; fail (instead of hanging) if
    that takes more than ``max_cycles`` clock cycles of simulated time."""
    from amaranth.sim import Simulator

    period = 1e-8
    sim = Simulator(dut)
    sim.add_clock(period)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    deadline = max_cycles * period

    def advance_all():
        while sim.advance():
            # ``Simulator`` has no public clock reading here, so count steps as a proxy bound.
            advance_all.steps += 1
            if advance_all.steps > 4 * max_cycles:
                raise TimeoutError(f"simulation did not finish within {max_cycles} cycles "
                                   f"({deadline:.0e} s simulated)")

    advance_all.steps = 0
    if vcd:
        with sim.write_vcd(vcd):
            advance_all()
    else:
        advance_all()
