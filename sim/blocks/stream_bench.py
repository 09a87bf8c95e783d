"""cocotb test of one stream block: the shared driver and monitor (``sim/streams.py``) and a
scoreboard on packed payloads.

The block has one input stream and one output stream, a clock ``clk`` and a reset ``rst``.
What to send and what to expect comes from the JSON file named by ``ACCEL_BLOCK_CASE``
(written by :func:`sim.blocks.harness.run_block`); the ports are bound from the case's
``ports``, the block's :func:`accel.hw.ports.stream_ports` (the sidecar's form)::

    {"seed": 1, "clock_ns": 10, "timeout_cycles": 5000, "ports": {"i": {...}, "o": {...}},
     "source": {"port": "i", "beats": [packed payload ints], "gap": 0.3},
     "sink": {"port": "o", "beats": [expected packed ints], "stall": 0.3}}

The cycle numbers of the first and last output beats go to ``ACCEL_BLOCK_RESULT`` (JSON) for
throughput figures.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import with_timeout

from sim.streams import StreamDriver, StreamMonitor, StreamPort, start


@cocotb.test()
async def stream_block(dut):
    with open(os.environ["ACCEL_BLOCK_CASE"]) as f:
        case = json.load(f)
    source, sink = case["source"], case["sink"]
    inp = StreamPort(dut, case["ports"][source["port"]])
    out = StreamPort(dut, case["ports"][sink["port"]])
    cycles = await start(dut, [inp], [out], clock_ns=case["clock_ns"])
    driver = StreamDriver(inp, dut.clk, np.random.default_rng([case["seed"], 1]),
                          gap=source["gap"], cycles=cycles)
    monitor = StreamMonitor(out, dut.clk, np.random.default_rng([case["seed"], 2]),
                            stall=sink["stall"], cycles=cycles)
    cocotb.start_soon(driver.send(source["beats"]))
    await with_timeout(monitor.receive(len(sink["beats"])),
                       case["timeout_cycles"] * case["clock_ns"], "ns")

    # Scoreboard: the expected beats, in order, bit for bit.
    got = monitor.beats
    mismatches = [
        (n, g, e) for n, (g, e) in enumerate(zip(got, sink["beats"], strict=True)) if g != e
    ]
    if "ACCEL_BLOCK_RESULT" in os.environ:
        with open(os.environ["ACCEL_BLOCK_RESULT"], "w") as f:
            json.dump({"beats": len(got), "first": monitor.when[0], "last": monitor.when[-1],
                       "mismatches": len(mismatches)}, f)
    assert not mismatches, (
        f"seed {case['seed']}: {len(mismatches)} of {len(got)} beats differ; first at beat "
        f"{mismatches[0][0]}: got {mismatches[0][1]:#x}, want {mismatches[0][2]:#x}"
    )
