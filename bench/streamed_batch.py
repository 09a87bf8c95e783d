"""Streamed weights at batch B: inferences/s of the seed network on the ULX3S-85F, measured in
Verilator against the plan's bandwidth model, and the memory model's burst efficiency.

    PYTHONPATH=$PWD .venv/bin/python bench/streamed_batch.py [--batches 1,4,16] [--array 4x8]

For each batch B: plan the seed network (int8, random weights, seed 1) for the ULX3S-85F at
``--batch B`` (its first Dense layer streams from the SDRAM), print the plan's figures (the
bandwidth bound: streamed words per image over 0.969 words per cycle and B; the interval and
what bounds it; block RAMs), then build the accelerator in the self-checking harness with
Verilator and simulate whole batches (3 images at B = 1, else 2 B) with no input gaps or
output stalls, the weights served by the memory model (random latency, refresh pauses);
every layer of every image is checked bit for bit. Inferences/s are at 100 MHz, the SDRAM
and the accelerator on one clock (the plan's words per cycle are per accelerator cycle).

The burst efficiency is measured on the memory model alone (amaranth.sim): 64-word requests
back to back, data always taken, words delivered over cycles.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

from accel.plan.plan import make_plan, parse_array
from accel.plan.weights import check_batch_fits
from accel.quant.load import load_quantized_model
from accel.sim.cocotb_run import run_cocotb
from accel.sim.memory_model import MemoryModel
from accel.sim.run import build_harness, report
from accel.synth.boards import get_board

ROOT = Path(__file__).resolve().parent.parent
CLOCK_MHZ = 100.0


def burst_efficiency(*, cycles: int = 20_000, burst: int = 64, gap_percent: int = 0) -> float:
    """Words per cycle the memory model delivers with requests of ``burst`` words always
    offered and its data always taken (latency, refresh pauses, the idle cycle between
    bursts), over ``cycles`` cycles after the first word."""
    words = np.arange(4096, dtype=np.uint64)
    dut = MemoryModel(words=words, base=0, addr_width=12, max_burst=burst, word_width=16,
                      seed=1, gap_percent=gap_percent)
    counts = {}

    async def bench(ctx):
        ctx.set(dut.port.mem_cmd.payload.length, burst)
        ctx.set(dut.port.mem_cmd.valid, 1)
        ctx.set(dut.port.mem_rsp.ready, 1)
        addr = 0
        while not ctx.get(dut.words_sent):
            await ctx.tick()
        start = ctx.get(dut.words_sent)
        for _ in range(cycles):
            if ctx.get(dut.port.mem_cmd.ready):
                addr = (addr + burst) % 4096
                await ctx.tick()
                ctx.set(dut.port.mem_cmd.payload.addr, addr)
            else:
                await ctx.tick()
        counts["words"] = ctx.get(dut.words_sent) - start

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return counts["words"] / cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--array", default="4x8")
    parser.add_argument("--model", default=str(ROOT / "examples/specs/seed_mnist_cnn.yaml"))
    parser.add_argument("--build-dir", default=None,
                        help="Keep the Verilator builds here (default: a temporary dir).")
    args = parser.parse_args()

    start = time.perf_counter()
    for gap in (0, 2):
        eff = burst_efficiency(gap_percent=gap)
        print(f"memory model burst efficiency, 64-word bursts, {gap}% data gaps: "
              f"{eff:.4f} words/cycle (amaranth.sim, 20,000 cycles)")
    print(f"  ({time.perf_counter() - start:.1f} s)")

    qnet = load_quantized_model(args.model, seed=1)
    board = get_board("ulx3s-85f")
    rows, cols = parse_array(args.array)
    print(f"{qnet.name} on {board.name}, arrays up to {args.array}, Verilator, no input gaps "
          f"or output stalls; inferences/s at {CLOCK_MHZ:g} MHz")
    print(f"{'batch':>5} {'images':>6} {'bandwidth':>9} {'plan':>8} {'bound':<26} "
          f"{'measured':>9} {'meas/plan':>9} {'inf/s plan':>10} {'inf/s meas':>10} "
          f"{'BRAM':>4} {'exact':>5} {'words':>9} {'build s':>7} {'sim s':>6}")
    for text in args.batches.split(","):
        batch = int(text)
        placement = replace(board.placement(), batch=batch)
        plan = make_plan(qnet, rows, cols, weights=placement)
        check_batch_fits(plan, placement)
        n = 3 if batch == 1 else 2 * batch
        x = np.random.default_rng(0).integers(-128, 128, (n, *qnet.input_shape))
        case = build_harness(qnet, plan, x, seed=1, gap_percent=0, stall_percent=0)
        with tempfile.TemporaryDirectory() as tmp:
            build = Path(args.build_dir) / f"batch{batch}" if args.build_dir else Path(tmp)
            r = report(case, run_cocotb(case, build)).to_json()
        measured = r["cycles_per_inference"]
        print(f"{batch:>5} {n:>6} {plan.stream_cycles:>9,} {plan.interval_cycles:>8,} "
              f"{plan.interval_bound:<26} {measured:>9,.0f} "
              f"{measured / plan.interval_cycles:>9.4f} "
              f"{CLOCK_MHZ * 1e6 / plan.interval_cycles:>10,.0f} "
              f"{CLOCK_MHZ * 1e6 / measured:>10,.0f} {plan.bram_blocks(board.family):>4} "
              f"{str(r['bit_exact']):>5} {r['weight_words']:>9,} {r['build_s']:>7.1f} "
              f"{r['run_s']:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
