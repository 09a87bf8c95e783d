"""Whole-network simulation figures: measured interval vs ideal, latency, and wall time.

    .venv/bin/python bench/network_sim.py [--arrays 2x2,4x4,8x8] [--model SPEC] [--images N]

For each array size: generate the accelerator for the seed network (random weights, seed 1),
build it with Verilator through cocotb, simulate N images with random stalls and check every
layer bit for bit; print the measured interval (cycles per inference), the ideal (total MACs /
PEs), their ratio, the latency, and the wall time of convert + build + simulate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from accel.plan.plan import make_plan, parse_array
from accel.quant.load import load_quantized_model
from accel.sim.cocotb_run import run_cocotb
from accel.sim.run import build_harness, report

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", default="2x2,4x4,8x8")
    parser.add_argument("--model", default=str(ROOT / "examples/specs/seed_mnist_cnn.yaml"))
    parser.add_argument("--images", type=int, default=2)
    args = parser.parse_args()
    qnet = load_quantized_model(args.model, seed=1)
    x = np.random.default_rng(0).integers(-128, 128, (args.images, *qnet.input_shape))
    print(f"{qnet.name}, {args.images} images, 20% input gaps / output stalls, Verilator")
    print(f"{'array':>6} {'PEs':>4} {'interval':>9} {'ideal':>9} {'ratio':>6} {'latency':>9} "
          f"{'exact':>6} {'convert s':>9} {'build s':>8} {'sim s':>6} {'total s':>8}")
    for text in args.arrays.split(","):
        plan = make_plan(qnet, *parse_array(text))
        start = time.perf_counter()
        case = build_harness(qnet, plan, x, seed=1)
        with tempfile.TemporaryDirectory() as build:
            r = report(case, run_cocotb(case, build)).to_json()
        total = time.perf_counter() - start
        interval = r["cycles_per_inference"]
        print(f"{text:>6} {plan.pes:>4} {interval:>9,.0f} {r['ideal_cycles']:>9,.0f} "
              f"{interval / r['ideal_cycles']:>6.3f} {r['latency_cycles']:>9,} "
              f"{str(r['bit_exact']):>6} {r['convert_s']:>9.1f} {r['build_s']:>8.1f} "
              f"{r['run_s']:>6.1f} {total:>8.1f}")


if __name__ == "__main__":
    main()
