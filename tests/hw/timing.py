"""Cycle-exact timing of one block in ``amaranth.sim``: a producer that offers a beat every
cycle and a consumer that is always ready, both recording the cycle of every transfer."""

from __future__ import annotations

from .streams import run_simulation


def transfer_cycles(dut, i, o, payloads, n_out: int, *, max_cycles: int = 100_000):
    """``(taken, given, outputs)``: the cycle each input payload was taken, the cycle each of
    the first ``n_out`` output beats was taken (cycle 0: the first input offered), and those
    beats' payloads.

    One testbench drives both sides, so that within a cycle both ``valid`` and ``ready`` are
    set before either transfer is observed (a combinational block is measured as 0)."""
    taken, given, outputs = [], [], []

    async def testbench(ctx):
        ctx.set(o.ready, 1)
        for cycle in range(max_cycles):
            if len(taken) < len(payloads):
                ctx.set(i.valid, 1)
                ctx.set(i.payload, payloads[len(taken)])
            else:
                ctx.set(i.valid, 0)
            took = len(taken) < len(payloads) and ctx.get(i.ready)
            if ctx.get(o.valid):
                given.append(cycle)
                outputs.append(ctx.get(o.payload))
            if took:
                taken.append(cycle)
            if len(given) >= n_out and len(taken) == len(payloads):
                return
            await ctx.tick()
        raise TimeoutError(f"no {n_out} output beats within {max_cycles} cycles")

    run_simulation(dut, [testbench], max_cycles=max_cycles + 10)
    return taken, given, outputs
