# amaranth: UnusedElaboratable=no
"""``accel build`` of a plan that streams weights, without the tools: the fit check counts the
weight memory (the LiteDRAM core's logic, the SPRAM blocks), the board top elaborates with the
memory on the accelerator's port (iCEBreaker SPRAM; ULX3S SDRAM with the LiteDRAM core), the
weight image and the report's ``weights`` section, and ``accel program --flash`` writes it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from accel.cli import main
from accel.plan.plan import make_plan
from accel.plan.weight_memory import weight_memory_plan
from accel.quant.random_model import random_quantized
from accel.spec import Dense, Flatten, Network
from accel.synth import fit
from accel.synth.boards import get_board
from accel.synth.build import image_identity, prepare, weight_clock, weights_section, write_weights
from accel.synth.weight_image import flash_offset, read_weight_image

from .synth.litedram_marks import needs_litedram


def _net(units=40):
    # 8x8x8 -> 512 x units weights (more than the iCE40UP5K's block RAMs hold at 40).
    return Network("wide", (8, 8, 8), (Flatten(), Dense(units, activation="relu"), Dense(10)))


def _plan(board_name, stream=("dense",), units=40, scheme="pow2"):
    qnet = random_quantized(_net(units), 1, scheme=scheme)
    board = get_board(board_name)
    return qnet, make_plan(qnet, 1, 1, weights=board.placement(stream)), board


def test_fit_counts_the_weight_memory():
    qnet, plan, board = _plan("icebreaker")
    rom_plan = make_plan(qnet, 1, 1)      # no placement: every weight in ROMs
    streamed = fit.estimate(plan, board)
    # At 1x1 a tile is one weight, one 16-bit word: 20,480 words, two 16 K-word blocks.
    assert streamed.resources["spram_blocks"].needed == 2
    assert streamed.resources["spram_blocks"].available == 4
    assert "spram_blocks" not in fit.estimate(rom_plan, board).resources
    memory = weight_memory_plan(plan)
    assert memory.words == 512 * 40 and not memory.arbitrated and memory.queue_depth == 0
    # Two streamed stages: the arbiter's ports are counted too.
    _, both, _ = _plan("icebreaker", stream=("dense", "dense_1"))
    mp = weight_memory_plan(both)
    assert mp.arbitrated and mp.stages == (0, 1) and mp.queue_depth == 3
    ulx_q, ulx, ulx_board = _plan("ulx3s-85f")
    assert ulx.streamed_stages[0].streamed.memory.kind == "sdram"
    rom = sum(s.luts for s in fit.estimate(ulx, ulx_board).stages) + 100
    assert fit.estimate(ulx, ulx_board).resources["luts"].needed == rom + 2900


def test_spram_blocks_beyond_the_board_are_one_line(monkeypatch):
    _, plan, board = _plan("icebreaker")
    monkeypatch.setattr(fit, "_SPRAM_BLOCK_BITS", 1 << 20)   # one block on the board
    with pytest.raises(Exception, match=r"^wide does not fit icebreaker \(iCE40UP5K-SG48\): "
                                        r"the streamed weights of dense need 2 SPRAM blocks"):
        fit.check_fit(plan, board)


def test_icebreaker_top_elaborates_with_spram_and_flash(tmp_path):
    qnet, plan, board = _plan("icebreaker")
    clock, pll = weight_clock(board, plan, None)
    assert clock == 12.0 and pll is None
    build_plan, _ = prepare(qnet, plan, board, clock_mhz=clock, top="uart")
    rtlil = build_plan.files["top.il"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    assert rtlil.count("SB_SPRAM256KA") >= 1 and "weight_arbiter" not in rtlil
    pcf = build_plan.files["top.pcf"]
    pcf = pcf if isinstance(pcf, str) else pcf.decode()
    for pin in ("16", "15", "14", "17"):       # the flash's CS#, SCK, COPI, CIPO
        assert f" {pin}" in pcf, pcf


def test_weight_image_and_report_section(tmp_path):
    _, plan, board = _plan("icebreaker", stream=("dense", "dense_1"))
    image = write_weights(plan, board, tmp_path)
    assert image.name == "weights.img"
    decoded = read_weight_image(image)
    assert decoded.flash_offset == flash_offset("icebreaker") == 0x20000
    section = weights_section(plan, board, image)
    assert section["flash_offset"] == 0x20000 and section["layers"] == ["dense", "dense_1"]
    assert section["payload_bytes"] == len(decoded.payload) == weight_memory_plan(plan).words * 2
    assert section["crc32"] == decoded.crc and section["memory"] == "spram"
    # The board top is built to take exactly this image (length and CRC in its header check).
    assert image_identity(plan) == (len(decoded.payload), decoded.crc)


def test_program_flash_writes_the_image_at_its_offset(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENFPGALOADER", "/opt/ofl")
    _, plan, board = _plan("icebreaker")
    (tmp_path / "top.bin").write_bytes(b"\xff" * 64)
    image = write_weights(plan, board, tmp_path)
    (tmp_path / "build_report.json").write_text(json.dumps(
        {"board": "icebreaker", "weights": weights_section(plan, board, image)}))
    result = CliRunner().invoke(main, ["program", str(tmp_path), "--flash", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"/opt/ofl -b ice40_generic -f {(tmp_path / 'top.bin').resolve()}",
        f"/opt/ofl -b ice40_generic -f -o {0x20000} --file-type bin {image.resolve()}"]


@needs_litedram
def test_ulx3s_top_elaborates_with_the_sdram(tmp_path):
    qnet, plan, board = _plan("ulx3s-85f", stream=("dense", "dense_1"))
    clock, pll = weight_clock(board, plan, 50)
    assert clock == 50.0 and pll.phase_deg == 90
    build_plan, _ = prepare(qnet, plan, board, clock_mhz=clock, pll=pll)
    rtlil = build_plan.files["top.il"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    for cell in ("litedram_core", "EHXPLLL", "ODDRX1F", "USRMCLK"):
        assert cell in rtlil, cell
    assert "arbiter" in rtlil
    assert "litedram_core.v" in build_plan.files


def test_program_sram_writes_the_image_first(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENFPGALOADER", "/opt/ofl")
    _, plan, board = _plan("ulx3s-85f")
    (tmp_path / "top.bit").write_bytes(b"\xff" * 64)
    report = tmp_path / "build_report.json"
    report.write_text(json.dumps({"board": "ulx3s-85f", "weights": {"memory": "sdram",
                                                                    "flash_offset": 0x1E0000}}))
    # The report says the build streams, but its image is gone: one line, exit 2.
    result = CliRunner().invoke(main, ["program", str(tmp_path), "--dry-run"])
    assert result.exit_code == 2
    assert result.output == (f"accel: error: {tmp_path}: the build streams its weights from "
                             f"sdram, but its weight image weights.img is missing (rebuild "
                             f"it)\n")
    image = write_weights(plan, board, tmp_path)
    result = CliRunner().invoke(main, ["program", str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"/opt/ofl -b ulx3s -f -o {0x1E0000} --file-type bin {image.resolve()}",
        f"/opt/ofl -b ulx3s -m {(tmp_path / 'top.bit').resolve()}"]
