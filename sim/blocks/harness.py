"""Build and run the cocotb bench of a stream block (``sim/blocks/stream_bench.py``).

Used by ``tests/hw/test_blocks_cocotb.py``. The block is converted with
``amaranth.back.verilog.convert`` (no source locations) and built and run through
:func:`accel.sim.bench.run_cocotb_tests` (the one runner and Verilator recipe) in its own build
directory; the bench binds the block's ports from :func:`accel.hw.ports.stream_ports`. Set
``ACCEL_WAVES=1`` to dump waveforms (FST) into the build directory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from amaranth.back import verilog

from accel.hw.ports import stream_ports
from accel.sim.bench import run_cocotb_tests

__all__ = ["run_block", "write_verilog"]

BENCH = "sim.blocks.stream_bench"


def write_verilog(component, name: str, directory: Path) -> Path:
    """Convert ``component`` to ``directory/name.v`` (top module ``name``)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.v"
    path.write_text(verilog.convert(component, name=name, emit_src=False))
    return path


def run_block(
    component,
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
    """Build ``source`` (the Verilog of ``component``) and run the bench: send ``inputs``
    (port, packed payloads), expect ``outputs``. Returns the bench's result (beats and the
    cycles of the first and last output beat); raises ``AssertionError`` with the bench's log
    tail if the test fails."""
    in_port, in_beats = inputs
    out_port, out_beats = outputs
    if timeout_cycles is None:
        timeout_cycles = 6 * (len(in_beats) + len(out_beats)) + 200
    case = {
        "seed": seed,
        "clock_ns": 10,
        "timeout_cycles": timeout_cycles,
        "ports": stream_ports(component),
        "source": {"port": in_port, "beats": [int(b) for b in in_beats], "gap": gap},
        "sink": {"port": out_port, "beats": [int(b) for b in out_beats], "stall": stall},
    }
    build_dir.mkdir(parents=True, exist_ok=True)
    case_file = build_dir / "case.json"
    case_file.write_text(json.dumps(case))
    result_file = build_dir / "result.json"
    run = run_cocotb_tests(
        sources=[source], toplevel=name, test_module=BENCH, build_dir=build_dir, cxx="build",
        seed=seed,
        extra_env={"ACCEL_BLOCK_CASE": str(case_file), "ACCEL_BLOCK_RESULT": str(result_file)})
    if run.tests != 1 or run.failed:
        raise AssertionError(f"cocotb bench of {name} failed ({run.failed}/{run.tests}):\n"
                             f"{run.log_tail()}")
    return json.loads(result_file.read_text())
