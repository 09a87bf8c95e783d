"""Simulation time of the MLPerf Tiny models: generate, convert, Verilator build and run of
two images in the self-checking harness (what ``accel sim`` does), per model.

    PYTHONPATH=. .venv/bin/python bench/sim_time.py                      # every model, 2x2
    PYTHONPATH=. .venv/bin/python bench/sim_time.py kws_ds_cnn --array 8x8 --images 2

Columns: ``generate`` is loading the model, planning, the golden model of the images and the
harness (Python); ``convert`` Amaranth's Verilog back end (and the ROM hex files); ``build``
Verilator and the C++ compiler through cocotb's runner; ``run`` the simulation of the images
(random input gaps and output stalls, 20 %) and the readout. ``bit_exact`` is the harness's
verdict. A fresh build directory per run (no make-incremental reuse). The goal of issue 12 is
a total of at most 180 s for one of the models on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np

from accel.plan.plan import make_plan, parse_array
from accel.quant.load import load_quantized_model
from accel.sim.cocotb_run import rom_words, run_cocotb
from accel.sim.run import build_harness, report

MODELS = ("ad_autoencoder", "kws_ds_cnn", "ic_resnet8", "vww_mobilenet_v1")


def measure(name: str, rows: int, cols: int, images: int) -> dict:
    start = time.perf_counter()
    qnet = load_quantized_model(f"examples/mlperf_tiny/{name}.tflite", seed=None,
                                calibration=None, scheme="tflite-int8", weight_bits=8,
                                act_bits=8)
    x = np.load(f"examples/mlperf_tiny/{name}_input.npy")
    x = np.resize(x, (images, *x.shape[1:]))  # the stored samples, repeated if needed
    plan = make_plan(qnet, rows, cols)
    case = build_harness(qnet, plan, x, seed=1, gap_percent=20, stall_percent=20)
    generate_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix=f"sim_{name}_") as tmp:
        result = run_cocotb(case, tmp)
    r = report(case, result)
    run = result.run
    return {"model": name, "array": f"{rows}x{cols}", "images": images,
            "rom_words": rom_words(case), "rom_files": run.rom_files,
            "generate_s": round(generate_s, 1), "convert_s": round(run.convert_s, 1),
            "build_s": round(run.build_s, 1), "run_s": round(run.run_s, 1),
            "total_s": round(generate_s + run.convert_s + run.build_s + run.run_s, 1),
            "bit_exact": r.bit_exact, "cycles_per_inference": r.cycles_per_inference,
            "predicted_interval_cycles": r.predicted_interval_cycles,
            "latency_cycles": r.latency_cycles,
            "predicted_latency_cycles": r.predicted_latency_cycles}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help=f"Some of {', '.join(MODELS)} (default: all).")
    ap.add_argument("--array", default="2x2")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    bad = [m for m in args.models if m not in MODELS]
    if bad:
        ap.error(f"unknown model {bad[0]!r}")
    rows, cols = parse_array(args.array)
    results = []
    for name in args.models or MODELS:
        results.append(measure(name, rows, cols, args.images))
        if not args.json:
            r = results[-1]
            print(f"{r['model']:<18} {r['array']:>5} {r['images']} images: generate "
                  f"{r['generate_s']:>6.1f} s, convert {r['convert_s']:>6.1f} s, build "
                  f"{r['build_s']:>6.1f} s, run {r['run_s']:>6.1f} s, total {r['total_s']:>6.1f}"
                  f" s; {r['rom_words']:,} ROM words{' (hex files)' if r['rom_files'] else ''}"
                  f"; bit-exact {r['bit_exact']}; interval {r['cycles_per_inference']} "
                  f"(plan {r['predicted_interval_cycles']}), latency {r['latency_cycles']} "
                  f"(plan {r['predicted_latency_cycles']})", flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
