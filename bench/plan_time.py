"""Planner seconds on streamed networks: ``make_plan`` (with the board's weight placement) and
the timing model's latency and interval (:attr:`~accel.plan.plan.NetworkPlan.latency_cycles`,
:attr:`~accel.plan.plan.NetworkPlan.interval_cycles`), which for a streamed Dense stage runs
the weight path's cycle model (:mod:`accel.plan.stream_timing`).

    PYTHONPATH=. .venv/bin/python bench/plan_time.py               # the seed network, 1x1
    PYTHONPATH=. .venv/bin/python bench/plan_time.py --array 4x8 --stream dense --batch 4

Prints one JSON object per run: the plan's numbers (so a speed-up can be checked to leave them
unchanged) and the wall and CPU seconds of each step.
"""

from __future__ import annotations

import argparse
import json
import time

from accel.cli import _make_plan
from accel.plan.plan import parse_array
from accel.quant.load import load_quantized_model


def measure(model: str, seed: int | None, rows: int, cols: int, board: str,
            stream: tuple[str, ...], batch: int) -> dict:
    qnet = load_quantized_model(model, seed=seed, calibration=None, scheme="tflite-int8",
                                weight_bits=8, act_bits=8)
    wall, cpu = time.perf_counter(), time.process_time()
    plan = _make_plan(qnet, rows, cols, model, board, stream, batch)
    plan_wall, plan_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    latency, interval = plan.latency_cycles, plan.interval_cycles
    timing_wall, timing_cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"model": model, "array": f"{rows}x{cols}", "board": board, "stream": list(stream),
            "batch": batch, "streamed": [s.layer for s in plan.streamed_stages],
            "latency_cycles": latency, "interval_cycles": interval,
            "make_plan_s": round(plan_wall, 2), "make_plan_cpu_s": round(plan_cpu, 2),
            "timing_s": round(timing_wall, 2), "timing_cpu_s": round(timing_cpu, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="examples/specs/seed_mnist_cnn.yaml")
    ap.add_argument("--seed", type=int, default=1, help="Random weights (spec models).")
    ap.add_argument("--array", default="1x1")
    ap.add_argument("--board", default="ulx3s-85f")
    ap.add_argument("--stream", action="append", default=[])
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args(argv)
    rows, cols = parse_array(args.array)
    seed = None if args.model.endswith(".tflite") else args.seed
    print(json.dumps(measure(args.model, seed, rows, cols, args.board, tuple(args.stream),
                             args.batch)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
