# amaranth: UnusedElaboratable=no
"""The MAC array's Verilog under cocotb + Verilator, and a Verilator lint of it.

The cocotb side lives in ``sim/mac_array/tb_mac_array.py``; the case goes to it as a JSON file
named by ``$MAC_ARRAY_CASE``, with the array's ports as :func:`accel.hw.ports.stream_ports`
describes them. Built and run by the one runner (:mod:`accel.sim.bench`); set
``ACCEL_WAVES=1`` for an FST in the case's build directory under pytest's tmp_path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog

from accel.hw.mac_array import MacArrayStream
from accel.hw.ports import stream_ports
from accel.sim.bench import LINT_ALLOWED, lint, lint_violations, run_cocotb_tests

TOP = "mac_array"


def _write_verilog(dut: MacArrayStream, directory: Path) -> Path:
    path = directory / f"{TOP}.v"  # named after its module
    path.write_text(verilog.convert(dut, name=TOP, emit_src=False))
    return path


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
        "ports": stream_ports(dut),
    }
    return dut, case


def run_tb(*, sources: list[Path], toplevel: str, case: dict, work: Path) -> None:
    """Build ``sources`` with Verilator in ``work/build`` and run both cocotb tests of
    ``sim/mac_array/tb_mac_array.py`` on them; fail unless both pass."""
    case_file = work / "case.json"
    case_file.write_text(json.dumps(case))
    run = run_cocotb_tests(sources=sources, toplevel=toplevel,
                           test_module="sim.mac_array.tb_mac_array", build_dir=work / "build",
                           cxx="build", seed=case["seed"],
                           extra_env={"MAC_ARRAY_CASE": str(case_file)})
    assert (run.tests, run.failed) == (2, 0), \
        f"case {case['name']} seed={case['seed']}:\n{run.log_tail()}"


# Each case pays a Verilator build (about 15 s on 2 cores), so the edge case is marked slow.
CASES = [
    # name, rows, cols, depth, tag_bits, beats, seed
    pytest.param("3x4", 3, 4, 5, 3, 300, 1, id="3x4"),
    pytest.param("1x2", 1, 2, 1, 1, 150, 2, id="1x2", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "rows", "cols", "depth", "tag_bits", "n", "seed"), CASES)
def test_cocotb_verilator(build_dir, name, rows, cols, depth, tag_bits, n, seed):
    dut, case = make_case(name=name, rows=rows, cols=cols, depth=depth, tag_bits=tag_bits, n=n,
                          seed=seed)
    source = _write_verilog(dut, build_dir)
    run_tb(sources=[source], toplevel=TOP, case=case, work=build_dir)


# The MAC array is held to more than the shared allow-list (accel.sim.bench.LINT_ALLOWED):
# no WIDTHTRUNC (a value cut short), no incomplete case, no zero-width wire, and its only
# WIDTHEXPAND is the signed ADD of a PE (product plus the partial sum from above, each
# narrower than the sum; both operands $signed, so Verilog sign-extends them, as intended).
FORBIDDEN = tuple(code for code in LINT_ALLOWED
                  if code not in ("WIDTHEXPAND", "UNUSEDSIGNAL", "PROCASSINIT", "DECLFILENAME"))
PE_ADD = re.compile(r"Operator ADD expects \d+ bits on the ([LR]HS), but \1's SIGNED "
                    r"generates \d+ bits\.")


@pytest.mark.parametrize(("rows", "cols"), [(3, 4), (1, 1)])
def test_verilator_lint(tmp_path, rows, cols):
    rng = np.random.default_rng(rows * 10 + cols)
    dut = MacArrayStream(rows=rows, cols=cols, weights=rng.integers(-128, 128, (3, rows, cols)))
    source = _write_verilog(dut, tmp_path)
    warnings = lint(source, TOP)
    assert warnings  # the parse works (Amaranth's output is never -Wall clean)
    assert not lint_violations(source, TOP, forbid=FORBIDDEN)
    expand = [message for code, message in warnings if code == "WIDTHEXPAND"]
    assert all(PE_ADD.match(message) for message in expand), expand
