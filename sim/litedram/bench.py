"""cocotb test of :class:`sim.litedram.top.LiteDRAMSimTop`: start the clock, hold reset, wait
(bounded) for ``done``, and write the top's counters to the JSON file ``ACCEL_LITEDRAM_RESULT``.
The budget in cycles comes from ``ACCEL_LITEDRAM_TIMEOUT``; the counters' names from
``ACCEL_LITEDRAM_COUNTERS`` (comma-separated; default :data:`COUNTERS`, LiteDRAMSimTop's)."""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

COUNTERS = ("errors", "checked", "init_cycles", "fill_cycles", "read_cycles", "init_error")


@cocotb.test()
async def run(dut):
    dut.rst.value = 1
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start(start_high=False))
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    timeout = int(os.environ["ACCEL_LITEDRAM_TIMEOUT"])

    async def finished():
        while not int(dut.done.value):
            await RisingEdge(dut.clk)

    await with_timeout(finished(), timeout * 10, "ns")
    counters = os.environ.get("ACCEL_LITEDRAM_COUNTERS", ",".join(COUNTERS)).split(",")
    result = {name: int(getattr(dut, name).value) for name in counters}
    with open(os.environ["ACCEL_LITEDRAM_RESULT"], "w") as f:
        json.dump(result, f)
