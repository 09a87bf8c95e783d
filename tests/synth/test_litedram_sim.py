"""The real LiteDRAM controller in simulation: the ``--sim`` core (LiteDRAM's SDRAM model with
its DFI timing checker) under Verilator, brought up by our SDRAMInit, filled through the native
port and read back through LiteDRAMReader + BurstReader, checked in hardware, bit-exact, with no
timing violation in the log. Slow: generates the core (cached) and builds a Verilator model.
Prints the measured burst efficiency (words per cycle of an unstalled frame, refresh included).
"""

from __future__ import annotations

import json

import pytest

from accel.sim.bench import run_cocotb_tests
from accel.synth import litedram
from sim.blocks.harness import write_verilog
from sim.litedram.top import LiteDRAMSimTop

from .litedram_marks import needs_litedram

pytestmark = [pytest.mark.slow,
              needs_litedram]


def test_weights_through_litedram_sim(tmp_path):
    core = litedram.generate_core(litedram.ULX3S_SDRAM, sim=True)
    fill, frames = 6000, [(0, 4096), (1000, 2500)]
    top = LiteDRAMSimTop(core, fill_words=fill, frames=frames)
    source = write_verilog(top, "top", tmp_path)
    result_file = tmp_path / "result.json"
    run = run_cocotb_tests(sources=[source, core.verilog], toplevel="top",
                           test_module="sim.litedram.bench", build_dir=tmp_path / "build",
                           extra_env={"ACCEL_LITEDRAM_RESULT": str(result_file),
                                      "ACCEL_LITEDRAM_TIMEOUT": "400000"})
    text = run.test_log.read_text()
    assert run.tests == 1 and not run.failed, run.log_tail()
    assert "violation" not in text, [line for line in text.splitlines() if "violation" in line]
    result = json.loads(result_file.read_text())
    print(result, f"burst efficiency {frames[0][1] / result['read_cycles']:.3f} words/cycle")
    assert result["init_error"] == 0
    assert result["errors"] == 0, result
    assert result["checked"] == sum(n for _, n in frames), result
