"""Build the self-checking harness for a model and read its results, on any simulator.

:func:`build_harness` computes the golden model's per-stage outputs and wraps the accelerator
in a :class:`~accel.sim.harness.SimHarness`. :func:`readout` lists the reads that collect the
results after ``done``; the amaranth.sim backend here and the cocotb testbench
(:mod:`accel.sim.cocotb_tb`) perform exactly those reads, and :func:`decode` turns the raw
values into a :class:`SimResult` with per-layer cycles and the first mismatch located.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..hw.accelerator import Accelerator
from ..plan.plan import NetworkPlan
from ..quant import golden
from ..quant.qnet import QuantizedNetwork
from .harness import (
    SCALAR_NAMES,
    SEL_FEED_FIRST,
    SEL_FEED_LAST,
    SEL_MISMATCH,
    SEL_OUTPUT,
    SEL_SCALARS,
    SEL_STAGE_DONE,
    SimHarness,
)


@dataclass
class HarnessCase:
    """A harness and what is needed to interpret its results."""

    harness: SimHarness
    plan: NetworkPlan
    qnet: QuantizedNetwork
    images: np.ndarray
    golden: dict[str, np.ndarray]
    stage_names: list[str]


@dataclass
class SimResult:
    """What a simulation measured.

    Members
    -------
    outputs : numpy.ndarray
        The logits the hardware returned, (N, units), int.
    bit_exact : bool
        Every beat of every stage matched the golden model.
    mismatches : list of dict
        Per stage: ``layer``, ``count``, and for the first bad beat ``beat``, ``got``, ``want``.
    stage_done : numpy.ndarray
        (stages, N): cycle at which each stage finished each image.
    feed_span : numpy.ndarray
        (stages, N): cycles from the first to the last array beat of each image, per stage
        (the stage's own time per image, stalls included).
    scalars : dict
        ``cycles``, ``first_input``, ``outputs``, ``input_gaps``, ``output_stalls``.
    """

    outputs: np.ndarray
    bit_exact: bool
    mismatches: list[dict]
    stage_done: np.ndarray
    feed_span: np.ndarray
    scalars: dict
    extra: dict = field(default_factory=dict)

    def first_mismatch(self) -> dict | None:
        for m in self.mismatches:
            if m["count"]:
                return m
        return None


def build_harness(qnet: QuantizedNetwork, plan: NetworkPlan, images: np.ndarray, *,
                  seed: int = 1, gap_percent: int = 20, stall_percent: int = 20) -> HarnessCase:
    """The accelerator for ``plan`` inside a harness loaded with ``images`` (int, N first)."""
    images = golden.check_input(qnet, images)
    outputs = golden.run(qnet, images)
    accelerator = Accelerator(plan)
    names = [s.pool or s.layer for s in plan.stages]
    expected = [outputs[name] for name in names]
    fills = [stage.plan.out_zero_point for stage in accelerator.stages]
    harness = SimHarness(accelerator=accelerator, images=images, expected=expected,
                         fills=fills, gap_percent=gap_percent, stall_percent=stall_percent,
                         seed=seed)
    return HarnessCase(harness, plan, qnet, images, outputs, names)


def readout(case: HarnessCase) -> list[tuple[str, int, int, int]]:
    """The reads that collect every result: ``(key, rd_sel, rd_stage, rd_addr)``."""
    h = case.harness
    reads = [(f"out{i}", SEL_OUTPUT, 0, i) for i in range(h.n_outputs)]
    for s in range(len(case.plan.stages)):
        reads += [(f"done{s}_{n}", SEL_STAGE_DONE, s, n) for n in range(h.n_images)]
        reads += [(f"mis{s}_{k}", SEL_MISMATCH, s, k) for k in range(4)]
        reads += [(f"feed_first{s}_{n}", SEL_FEED_FIRST, s, n) for n in range(h.n_images)]
        reads += [(f"feed_last{s}_{n}", SEL_FEED_LAST, s, n) for n in range(h.n_images)]
    reads += [(name, SEL_SCALARS, 0, k) for k, name in enumerate(SCALAR_NAMES)]
    return reads


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _unpack(value: int, lanes: int, bits: int) -> list[int]:
    return [_signed(value >> (bits * k), bits) for k in range(lanes)]


def decode(case: HarnessCase, raw: dict[str, int]) -> SimResult:
    """Turn the values read per :func:`readout` into a :class:`SimResult`."""
    h, acc = case.harness, case.harness.accelerator
    n = h.n_images
    out_bits = acc.output_bits
    outputs = np.array([_signed(raw[f"out{i}"], out_bits) for i in range(h.n_outputs)])
    outputs = outputs.reshape(n, -1)
    mismatches = []
    for s, stage in enumerate(acc.stages):
        lanes, bits = stage.out_lanes, stage.plan.out_bits
        count = raw[f"mis{s}_0"]
        entry = {"layer": case.stage_names[s], "count": int(count)}
        if count:
            beat = raw[f"mis{s}_1"]
            channels = case.plan.stages[s].geometry.filters
            groups = -(-channels // lanes)
            pixel, group = divmod(beat, groups)
            out_h, out_w = case.golden[case.stage_names[s]].shape[1:3] \
                if case.golden[case.stage_names[s]].ndim == 4 else (1, 1)
            image, pixel = divmod(pixel, out_h * out_w)
            entry.update(beat=int(beat), image=int(image), row=int(pixel // out_w),
                         col=int(pixel % out_w), channel=int(group * lanes),
                         got=_unpack(raw[f"mis{s}_2"], lanes, bits),
                         want=_unpack(raw[f"mis{s}_3"], lanes, bits))
        mismatches.append(entry)
    def table(key: str) -> np.ndarray:
        return np.array([[raw[f"{key}{s}_{i}"] for i in range(n)]
                         for s in range(len(acc.stages))])

    stage_done = table("done")
    feed_span = table("feed_last") - table("feed_first") + 1
    scalars = {name: int(raw[name]) for name in SCALAR_NAMES}
    golden_logits = case.golden[case.plan.output_layer].reshape(n, -1)
    bit_exact = all(m["count"] == 0 for m in mismatches) and np.array_equal(
        outputs, golden_logits)
    return SimResult(outputs=outputs, bit_exact=bit_exact, mismatches=mismatches,
                     stage_done=stage_done, feed_span=feed_span, scalars=scalars)


def run_amaranth(case: HarnessCase, *, max_cycles: int = 2_000_000) -> SimResult:
    """Simulate ``case`` in amaranth.sim (Python; fine for small networks)."""
    from amaranth.sim import Simulator

    h = case.harness
    raw: dict[str, int] = {}

    async def bench(ctx):
        for _ in range(max_cycles):
            if ctx.get(h.done):
                break
            await ctx.tick()
        else:
            raise TimeoutError(f"the accelerator did not finish within {max_cycles} cycles")
        for key, sel, stage, addr in readout(case):
            ctx.set(h.rd_sel, sel)
            ctx.set(h.rd_stage, stage)
            ctx.set(h.rd_addr, addr)
            await ctx.delay(1e-9)
            raw[key] = ctx.get(h.rd_data)

    sim = Simulator(h)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return decode(case, raw)


def report(case: HarnessCase, result: SimResult) -> dict:
    """The measured figures as one JSON-ready object (``accel sim --json``)."""
    plan = case.plan
    n = case.harness.n_images
    finished = result.stage_done[-1]
    interval = float(np.diff(finished).mean()) if n > 1 else None
    layers = []
    for s, stage in enumerate(plan.stages):
        measured = int(np.median(result.feed_span[s]))
        layers.append({
            "layer": stage.layer, "pool": stage.pool, "array": [stage.rows, stage.cols],
            "predicted_cycles": stage.cycles, "measured_cycles": measured,
            "measured_vs_predicted": measured / stage.cycles,
            "interval_at_stage": float(np.diff(result.stage_done[s]).mean()) if n > 1
            else None,
            "mismatches": result.mismatches[s]["count"],
        })
    first = result.first_mismatch()
    return {
        "model": case.qnet.name,
        "array": f"{plan.max_rows}x{plan.max_cols}",
        "bit_exact": bool(result.bit_exact),
        "images": n,
        "mismatches": int(sum(m["count"] for m in result.mismatches)),
        "first_mismatch": first,
        "cycles_per_inference": interval,
        "predicted_interval_cycles": plan.interval_cycles,
        # The input port carries one value per cycle; random input gaps stretch that.
        "input_limited_cycles": (plan.input_cycles * n + result.scalars["input_gaps"]) / n,
        "latency_cycles": int(finished[0] - result.scalars["first_input"]),
        "predicted_latency_cycles": plan.latency_cycles,
        "ideal_cycles": plan.ideal_cycles,
        "utilization": plan.ideal_cycles / interval if interval else None,
        "pes": plan.pes,
        "total_cycles": result.scalars["cycles"],
        "input_gaps": result.scalars["input_gaps"],
        "output_stalls": result.scalars["output_stalls"],
        "layers": layers,
        "predictions": result.outputs.argmax(axis=1).tolist(),
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in result.extra.items()},
    }
