"""Whole-accelerator post-route Fmax: board x model x array, median over nextpnr seeds.

Each case is a full ``accel build`` (the self-test board top with the PLL at ``--clock``, the
same flow and cache as the CLI; :func:`accel.synth.build.build`), once per nextpnr placement
seed. The table gives the median post-route Fmax over the seeds, each seed's Fmax, the
critical path of the median seed (its two end cells, as nextpnr's ``report.json`` names them,
and its delay), the utilisation (LUT, FF, DSP, BRAM) and the yosys and nextpnr wall seconds
(of the median seed's build; a cached build reports the seconds it took when it was made).

    .venv/bin/python bench/fmax.py                              # the default cases, seeds 1-3
    .venv/bin/python bench/fmax.py --quick                      # seed 1 only
    .venv/bin/python bench/fmax.py --case ulx3s-85f:digits_valid_s2:4x4 --seeds 1,2,3
    .venv/bin/python bench/fmax.py --case icebreaker:digits_small.keras@pow2:2x2 --json

A case is ``BOARD:MODEL[@SCHEME]:ARRAY[:CLOCK]``; MODEL is a file under ``examples/digits``
(``.tflite`` assumed without a suffix) or a path; a ``.keras`` model is quantized with
``digits*_calib_x.npy`` matching its input size; CLOCK defaults to the issue's goal for the
board's family. Builds run one after another (the machine is shared): never in parallel.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from accel.errors import AccelError
from accel.plan.plan import make_plan, parse_array
from accel.quant.load import load_quantized_model
from accel.synth.boards import get_board
from accel.synth.build import build

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
#: The post-route Fmax goals of issue #14, MHz, by FPGA family (the default ``--clock``).
GOALS = {"ecp5": 125.0, "ice40": 50.0, "gowin": 100.0}
#: Calibration images by model input size (for ``.keras`` models).
CALIBRATION = {8: "digits_calib_x.npy", 16: "digits16_calib_x.npy", 28: "digits28_calib_x.npy"}
DEFAULT_CASES = (
    "ulx3s-85f:digits_valid_s2:4x4",
    "ulx3s-85f:digits_valid_s2.keras@pow2:4x4",
    "ulx3s-85f:digits_small:2x4",
    "tangnano9k:digits_small:2x2",
    "icebreaker:digits_small.keras@pow2:2x2",
)


def parse_case(text: str) -> dict:
    """``BOARD:MODEL[@SCHEME]:ARRAY[:CLOCK]`` -> the build's arguments."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise AccelError(f"--case must be BOARD:MODEL[@SCHEME]:ARRAY[:CLOCK], not {text!r}")
    board = get_board(parts[0])
    model, _, scheme = parts[1].partition("@")
    path = Path(model)
    if not path.exists():
        path = DIGITS / (model if Path(model).suffix else f"{model}.tflite")
    if not path.exists():
        raise AccelError(f"--case {text}: no model {model!r} (nor {path})")
    clock = float(parts[3]) if len(parts) == 4 else GOALS[board.family]
    return {"text": text, "board": board, "model": path, "scheme": scheme or "tflite-int8",
            "array": parse_array(parts[2]), "clock": clock}


def quantized(case: dict):
    """The case's quantized network (a ``.keras`` model calibrated on the digits images)."""
    model = case["model"]
    calibration = None
    if model.suffix in (".keras", ".h5"):
        for size, name in CALIBRATION.items():
            if f"{size}" in model.stem or (size == 8 and "small" in model.stem):
                calibration = str(DIGITS / name)
        if "valid_s2" in model.stem:
            calibration = str(DIGITS / CALIBRATION[16])
        if "cnn" in model.stem:
            calibration = str(DIGITS / CALIBRATION[28])
    return load_quantized_model(str(model), seed=None, calibration=calibration,
                                scheme=case["scheme"], weight_bits=8, act_bits=8)


def run_case(case: dict, seeds: list[int], out: Path) -> dict:
    """Build ``case`` once per seed; the row of the table."""
    qnet = quantized(case)
    rows, cols = case["array"]
    plan = make_plan(qnet, rows, cols, weights=case["board"].placement(()))
    builds = []
    for seed in seeds:
        report = build(qnet, plan, case["board"], out / f"seed{seed}", clock_mhz=case["clock"],
                       seed=seed).to_json()
        builds.append(report)
    fmaxes = [r["fmax_mhz"] for r in builds]
    median = statistics.median(fmaxes)
    # The seed whose Fmax is nearest the median (the median itself for an odd count).
    middle = min(builds, key=lambda r: abs(r["fmax_mhz"] - median))
    util = middle["utilization"]
    path = middle["critical_paths"][0] if middle["critical_paths"] else {}
    stages = middle.get("tool_stage_seconds") or {}
    return {
        "case": case["text"], "board": case["board"].name, "model": qnet.name,
        "scheme": qnet.scheme, "array": f"{rows}x{cols}", "pes": plan.pes,
        "clock_mhz": middle["clock_mhz"], "fmax_median_mhz": round(median, 2),
        "fmax_by_seed": {s: round(f, 2) for s, f in zip(seeds, fmaxes, strict=True)},
        "timing_met": median >= middle["clock_mhz"],
        "critical_path": path,
        "luts": util["luts"]["used"], "ffs": util["ffs"]["used"],
        "dsps": util["dsps"]["used"], "brams": util["brams"]["used"],
        "yosys_s": stages.get("yosys"), "nextpnr_s": stages.get("nextpnr"),
        "tool_s": middle["tool_seconds"], "cached": all(r["cached"] for r in builds),
    }


def short(cell: str) -> str:
    """A cell name without ``top.accel.`` and the mapping suffixes nextpnr appends."""
    cell = cell.removeprefix("top.").removeprefix("accel.")
    for cut in ("_TRELLIS", "_SB_", "_DFF", "_LUT4", "_CCU2C", "_MULT", "_DP16KD", "$"):
        if cut in cell:
            cell = cell[:cell.index(cut)]
    return cell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append",
                        help="BOARD:MODEL[@SCHEME]:ARRAY[:CLOCK] (repeatable)")
    parser.add_argument("--seeds", default="1,2,3", help="nextpnr seeds, comma-separated")
    parser.add_argument("--quick", action="store_true", help="seed 1 only")
    parser.add_argument("--out", default="build/fmax", help="build output directory")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args(argv)
    try:
        seeds = [1] if args.quick else [int(s) for s in args.seeds.split(",")]
        cases = [parse_case(text) for text in (args.case or DEFAULT_CASES)]
    except (AccelError, ValueError) as e:
        print(f"fmax: error: {e}", file=sys.stderr)
        return 2
    header = (f"{'board':11} {'model':24} {'array':5} {'clock':>5} {'Fmax':>6} {'seeds':18} "
              f"{'LUT':>6} {'FF':>6} {'DSP':>4} {'BRAM':>4} {'yosys':>6} {'pnr':>6}  "
              f"critical path (ns)")
    if not args.json:
        print(header)
    for case in cases:
        out = Path(args.out) / case["text"].replace(":", "_").replace("@", "_")
        try:
            row = run_case(case, seeds, out)
        except AccelError as e:
            print(f"{case['text']}: {e}", file=sys.stderr if args.json else sys.stdout)
            continue
        if args.json:
            print(json.dumps(row), flush=True)
            continue
        path = row["critical_path"]
        where = (f"{short(path['from'])} -> {short(path['to'])} ({path['delay_ns']})"
                 if path else "-")
        model = f"{row['model']}" + ("" if row["scheme"] == "tflite-int8" else " pow2")
        by_seed = "/".join(f"{f:.1f}" for f in row["fmax_by_seed"].values())
        met = "" if row["timing_met"] else "!"
        print(f"{row['board']:11} {model:24} {row['array']:5} {row['clock_mhz']:5g} "
              f"{row['fmax_median_mhz']:5.1f}{met:1} {by_seed:18} {row['luts']:6} "
              f"{row['ffs']:6} {row['dsps']:4} {row['brams']:4} {row['yosys_s'] or 0:6.1f} "
              f"{row['nextpnr_s'] or 0:6.1f}  {where}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
