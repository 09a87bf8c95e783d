"""``done`` in the simulation harness means every result is final: after it rises, nothing the
readout collects (per-stage finish and feed timestamps, mismatch counts, logits, scalars
other than the free-running cycle counter) changes, however long the simulation goes on.
Checked on a residual network (a fork and an Add, whose skip path finishes before the last
stage) and a depthwise one under random gaps and stalls."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from accel.plan.plan import make_plan
from accel.quant.random_model import random_quantized
from accel.sim.run import build_harness, readout
from accel.spec import AveragePooling2D, Conv2D, Dense, DepthwiseConv2D, Flatten, Network

from .test_graph_accelerator import NETWORKS as RESIDUAL_NETWORKS

NETWORKS = {
    "projection_shortcut": RESIDUAL_NETWORKS["projection_shortcut"],
    "depthwise_separable": ((8, 7, 3), (
        DepthwiseConv2D(3, strides=2, padding="same"), Conv2D(3, 1, activation="relu"),
        AveragePooling2D(2), Flatten(), Dense(3))),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_the_readout_is_final_when_done_rises(name):
    shape, layers = NETWORKS[name]
    qnet = random_quantized(Network(name, shape, layers), 3)
    x = np.random.default_rng(3).integers(qnet.input.qmin, qnet.input.qmax + 1,
                                          (3, *qnet.input_shape))
    case = build_harness(qnet, make_plan(qnet, 2, 2), x, seed=5, gap_percent=30,
                         stall_percent=30)
    h = case.harness
    snapshots = []

    async def bench(ctx):
        for _ in range(200_000):
            if ctx.get(h.done):
                break
            await ctx.tick()
        else:
            raise TimeoutError(f"{name}: no done within 200,000 cycles")
        for wait in (0, 2000):
            if wait:
                await ctx.tick().repeat(wait)
            raw = {}
            for key, sel, stage, addr in readout(case):
                ctx.set(h.rd_sel, sel)
                ctx.set(h.rd_stage, stage)
                ctx.set(h.rd_addr, addr)
                await ctx.delay(1e-9)
                raw[key] = ctx.get(h.rd_data)
            snapshots.append(raw)

    sim = Simulator(h)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    at_done, later = snapshots
    changed = {k: (at_done[k], later[k]) for k in at_done
               if k != "cycles" and at_done[k] != later[k]}
    assert not changed, (name, changed)
    assert later["cycles"] > at_done["cycles"] + 1999  # the check did run on
