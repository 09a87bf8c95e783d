"""SDRAMWeights end to end on the real LiteDRAM controller: the ``--sim`` core (LiteDRAM's
SDRAM model with its DFI timing checker) under Verilator, a flash ROM model holding a weight
image on the flash pins (sim/litedram/weights_top.py). The power-up path (SDRAMInit, flash ->
FlashImageLoader -> LiteDRAMWriter -> SDRAM, CRC check) and then the read port (mem_cmd /
mem_rsp under a BurstReader) are checked in hardware: every word bit-exact, the read-back
CRC-32 equal to the written one, no timing violation; a corrupted image raises ``error``.
Slow: generates the core (cached) and builds a Verilator model. Prints the load and read
cycle counts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from accel.sim.bench import run_cocotb_tests
from accel.synth import litedram
from accel.synth.weight_image import pack_weight_image
from sim.blocks.harness import write_verilog
from sim.litedram.weights_top import WeightsSimTop

from .litedram_marks import needs_litedram

pytestmark = [pytest.mark.slow,
              needs_litedram]

COUNTERS = ("ready", "error", "errors", "checked", "crc_match", "flash_errors", "load_cycles",
            "read_cycles")
OFFSET = 0x1000


def test_flash_to_sdram_and_back(tmp_path):
    seed = 7
    rng = np.random.default_rng(seed)
    payload = rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()
    image = pack_weight_image(payload, word_width=16, flash_offset=OFFSET)
    flash = bytearray(rng.integers(0, 256, OFFSET + len(image) + 16, dtype=np.uint8).tobytes())
    flash[OFFSET:OFFSET + len(image)] = image
    words = len(payload) // 2
    partial = (int(rng.integers(0, words // 2)), words // 3)
    core = litedram.generate_core(litedram.ULX3S_SDRAM, sim=True)
    top = WeightsSimTop(core, flash=bytes(flash), flash_offset=OFFSET, payload=payload,
                        partial=partial)
    source = write_verilog(top, "top", tmp_path)
    result_file = tmp_path / "result.json"
    run = run_cocotb_tests(sources=[source, core.verilog], toplevel="top",
                           test_module="sim.litedram.bench", build_dir=tmp_path / "build",
                           cxx="build",
                           extra_env={"ACCEL_LITEDRAM_RESULT": str(result_file),
                                      "ACCEL_LITEDRAM_TIMEOUT": "400000",
                                      "ACCEL_LITEDRAM_COUNTERS": ",".join(COUNTERS)})
    text = run.test_log.read_text()
    assert run.tests == 1 and not run.failed, run.log_tail()
    assert "violation" not in text, [line for line in text.splitlines() if "violation" in line]
    result = json.loads(result_file.read_text())
    print(result, f"read {words / result['read_cycles']:.3f} words/cycle; "
          f"build {run.build_s:.1f} s, run {run.run_s:.1f} s")
    assert result["ready"] == 1 and result["error"] == 0, f"seed {seed}: {result}"
    assert result["flash_errors"] == 0, result
    assert result["errors"] == 0, f"seed {seed}: {result}"
    assert result["checked"] == words + partial[1], result
    assert result["crc_match"] == 1, result
