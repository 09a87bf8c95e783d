"""The cocotb testbench for :class:`~accel.sim.harness.SimHarness` (loaded by the cocotb
runner; not imported by accel itself).

The harness streams the images, stalls the outputs and checks every stage in hardware, so this
test only starts the clock, waits for ``done`` (Verilator runs freely meanwhile: no Python per
cycle) and then performs the reads listed in ``$ACCEL_SIM_SPEC``, writing their values as JSON
to ``$ACCEL_SIM_RESULT``. Every wait has a timeout.
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer, with_timeout


@cocotb.test()
async def run_harness(dut):
    spec = json.loads(open(os.environ["ACCEL_SIM_SPEC"]).read())
    # Drive every input before the first clock edge (Icarus would latch X otherwise).
    dut.rst.value = 1
    dut.rd_sel.value = 0
    dut.rd_stage.value = 0
    dut.rd_addr.value = 0
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start(start_high=False))
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    if not int(dut.done.value):
        await with_timeout(RisingEdge(dut.done), spec["max_cycles"] * 10, "ns")
    raw = {}
    for key, sel, stage, addr in spec["reads"]:
        dut.rd_sel.value = sel
        dut.rd_stage.value = stage
        dut.rd_addr.value = addr
        await Timer(1, unit="ns")
        raw[key] = int(dut.rd_data.value)
    with open(os.environ["ACCEL_SIM_RESULT"], "w") as f:
        json.dump(raw, f)
