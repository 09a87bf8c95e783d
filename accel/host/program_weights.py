"""``accel program`` for the weight image: the openFPGALoader command that writes
``weights.img`` (:mod:`accel.synth.weight_image`) at its flash offset, after (or without) the
bitstream. Board names, the loader binary and the ``ProgramPlan`` come from
:mod:`accel.host.program`.

openFPGALoader writes a raw file at a flash byte address with ``-f -o OFFSET``; ``--file-type
bin`` makes it take the image as raw bytes whatever its suffix.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import AccelError
from ..synth.weight_image import FLASH_LAYOUTS, flash_offset, read_weight_image
from .program import LOADER_BOARDS, ProgramPlan, _resolve, find_loader, plan_program

__all__ = ["WEIGHT_IMAGE_NAME", "plan_program_build", "plan_program_weights"]

#: The weight image's file name in an ``accel build`` directory, beside ``top.<suffix>``.
WEIGHT_IMAGE_NAME = "weights.img"


def plan_program_weights(image: str | Path, board: str, *, loader: str | None = None,
                         dry_run: bool = False) -> ProgramPlan:
    """The openFPGALoader command writing the weight image ``image`` into ``board``'s flash:
    ``-b NAME -f -o OFFSET --file-type bin IMAGE``. The image is read and checked first; one
    line if it is corrupt, meant for another offset, or too large for the flash, or if the
    board has no known flash layout."""
    image = Path(image)
    if board not in LOADER_BOARDS:
        raise AccelError(f"--board {board!r} is not known; choose one of "
                         f"{', '.join(sorted(LOADER_BOARDS))}")
    offset = flash_offset(board)
    decoded = read_weight_image(image)
    if decoded.flash_offset != offset:
        raise AccelError(f"{image}: the image is for flash offset {decoded.flash_offset:#x}, "
                         f"--board {board} keeps weights at {offset:#x}")
    size = image.stat().st_size
    capacity = FLASH_LAYOUTS[board].capacity
    if size > capacity:
        raise AccelError(f"{image}: {size} bytes do not fit the {capacity} bytes of flash "
                         f"after offset {offset:#x} on --board {board}")
    name = LOADER_BOARDS[board][0]
    command = (loader or find_loader(required=not dry_run), "-b", name, "-f", "-o",
               str(offset), "--file-type", "bin", str(image.resolve()))
    return ProgramPlan(board=board, bitstream=image, flash=True, command=command)


def plan_program_build(path: str | Path, board: str | None = None, *, flash: bool = True,
                       loader: str | None = None,
                       dry_run: bool = False) -> tuple[ProgramPlan, ...]:
    """``accel program`` of a bitstream or build directory, with its weight image when a
    ``weights.img`` lies beside the bitstream (a build whose plan streams weights writes one,
    and its ``build_report.json`` has a ``weights`` section).

    ``flash``: the bitstream into the flash, then the image at its offset. Otherwise the image
    into the flash first (the board top reads the weights from there at power-up, also when
    its bitstream is loaded into SRAM), then the bitstream into SRAM. A build directory whose
    report has a ``weights`` section but no image beside it, or one for another offset, is a
    one-line error."""
    path = Path(path)
    board, bitstream = _resolve(path, board)
    image = bitstream.parent / WEIGHT_IMAGE_NAME
    expected = _report_weights(path) if path.is_dir() else None
    if expected is not None and not image.is_file():
        raise AccelError(f"{path}: the build streams its weights from {expected.get('memory')}, "
                         f"but its weight image {image.name} is missing (rebuild it)")
    program = plan_program(bitstream, board, flash=flash, loader=loader, dry_run=dry_run)
    if not image.is_file():
        return (program,)
    weights = plan_program_weights(image, board, loader=program.command[0], dry_run=dry_run)
    if expected is not None and expected.get("flash_offset") != flash_offset(board):
        raise AccelError(f"{path}: the build report puts the weights at flash offset "
                         f"{expected.get('flash_offset')!r}, --board {board} keeps them at "
                         f"{flash_offset(board):#x}")
    return (program, weights) if flash else (weights, program)


def _report_weights(path: Path) -> dict | None:
    """The ``weights`` section of the build report in ``path`` (None without one)."""
    try:
        report = json.loads((path / "build_report.json").read_text())
    except (OSError, ValueError):
        return None
    weights = report.get("weights") if isinstance(report, dict) else None
    return weights if isinstance(weights, dict) else None
