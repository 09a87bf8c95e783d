"""The weight image's openFPGALoader command (dry run): offset per board, build directories
with and without an image, and the one-line refusals."""

from __future__ import annotations

import json

import pytest

from accel.errors import AccelError
from accel.host.program_weights import plan_program_build, plan_program_weights
from accel.synth.weight_image import flash_offset, write_weight_image

LOADER = "/opt/tools/openFPGALoader"


def _image(path, board, offset=None):
    return write_weight_image(path, b"\x01\x02" * 50, word_width=16,
                              flash_offset=flash_offset(board) if offset is None else offset)


@pytest.mark.parametrize(("board", "name", "offset"), [
    ("icebreaker", "ice40_generic", 0x20000), ("ulx3s-85f", "ulx3s", 0x1E0000)])
def test_weights_command(tmp_path, board, name, offset):
    image = _image(tmp_path / "weights.img", board)
    plan = plan_program_weights(image, board, loader=LOADER, dry_run=True)
    assert plan.command == (LOADER, "-b", name, "-f", "-o", str(offset), "--file-type", "bin",
                            str(image.resolve()))
    assert plan.flash


def test_build_directory_programs_both(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "build_report.json").write_text(json.dumps({"board": "icebreaker"}))
    (out / "top.bin").write_bytes(b"\xff" * 64)
    first, = plan_program_build(out, loader=LOADER, dry_run=True)
    assert first.command == (LOADER, "-b", "ice40_generic", "-f", str((out / "top.bin").resolve()))
    _image(out / "weights.img", "icebreaker")
    bitstream, weights = plan_program_build(out, loader=LOADER, dry_run=True)
    assert bitstream == first
    assert weights.command[-3:] == ("--file-type", "bin", str((out / "weights.img").resolve()))
    assert weights.command[3:6] == ("-f", "-o", "131072")


def test_refusals(tmp_path):
    image = _image(tmp_path / "w.img", "icebreaker", offset=0x1000)
    with pytest.raises(AccelError, match=r"is for flash offset 0x1000, --board icebreaker "
                                         r"keeps weights at 0x20000$"):
        plan_program_weights(image, "icebreaker", loader=LOADER)
    with pytest.raises(AccelError, match=r"^--board tangnano9k: no weight-image flash layout"):
        plan_program_weights(image, "tangnano9k", loader=LOADER)
    with pytest.raises(AccelError, match=r"^--board 'nope' is not known"):
        plan_program_weights(image, "nope", loader=LOADER)
    bad = tmp_path / "bad.img"
    bad.write_bytes(b"XXXX" + image.read_bytes()[4:])
    with pytest.raises(AccelError, match=r"not a weight image"):
        plan_program_weights(bad, "icebreaker", loader=LOADER)


def test_cli_flash_dry_run_prints_both_commands(tmp_path, monkeypatch):
    """`accel program DIR --flash --dry-run`: the bitstream's command, then the weight
    image's at its flash offset."""
    from click.testing import CliRunner

    from accel.cli import main

    monkeypatch.setenv("OPENFPGALOADER", LOADER)
    out = tmp_path / "out"
    out.mkdir()
    (out / "build_report.json").write_text(json.dumps({"board": "icebreaker"}))
    (out / "top.bin").write_bytes(b"\xff" * 64)
    _image(out / "weights.img", "icebreaker")
    result = CliRunner().invoke(main, ["program", str(out), "--flash", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith(str((out / "top.bin").resolve()))
    assert "-o 131072" in lines[1] and lines[1].endswith(str((out / "weights.img").resolve()))
