# amaranth: UnusedElaboratable=no
"""``accel build`` of a plan that streams weights, for real (slow, synth): digits_small pow2
on the iCEBreaker with its Dense layer's weights in SPRAM, loaded from the flash at power-up
(accel/synth/weights_top.py). Through yosys, nextpnr-ice40 and icepack into a fresh cache;
checks the SPRAM and flash cells, the weight image and the report's ``weights`` section, and
that the design meets the oscillator's clock. Prints utilization, Fmax and the tool seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from accel.plan.plan import make_plan
from accel.plan.weight_memory import weight_memory_plan
from accel.quant.load import load_quantized_model
from accel.synth.boards import get_board
from accel.synth.build import build
from accel.synth.weight_image import read_weight_image

pytestmark = [pytest.mark.slow, pytest.mark.synth]

DIGITS = Path(__file__).parents[2] / "examples" / "digits"


def test_icebreaker_streams_dense_weights_from_spram(tmp_path):
    qnet = load_quantized_model(DIGITS / "digits_small.keras",
                                calibration=DIGITS / "digits_calib_x.npy", scheme="pow2")
    board = get_board("icebreaker")
    plan = make_plan(qnet, 1, 1, weights=board.placement(("dense",)))
    assert [s.layer for s in plan.streamed_stages] == ["dense"]
    report = build(qnet, plan, board, tmp_path / "out", cache_dir=tmp_path / "cache")
    print(f"utilization {report.utilization}\nfmax {report.fmax_mhz:.1f} MHz "
          f"critical {report.critical_paths}\ntools {report.tool_stage_seconds}")
    assert report.cells.get("SB_SPRAM256KA") == weight_memory_plan(plan).spram_blocks == 1
    assert report.timing_met, report.fmax_mhz
    image = read_weight_image(tmp_path / "out" / "weights.img")
    assert report.weights["flash_offset"] == image.flash_offset == 0x20000
    assert report.weights["payload_bytes"] == len(image.payload) == 720 * 2
    assert (tmp_path / "out" / "top.bin").stat().st_size == 104_090
