"""cocotb test of the generated accelerator (``accel generate``'s ``accel_top.v``), bound only
through its sidecar (``accel_top.json``): clock, reset and stream ports by the names it gives,
payloads packed and unpacked from its ``ports`` fields.

The case (JSON named by ``$ACCEL_TOP_CASE``, written by ``tests/test_top_cocotb.py``) holds the
sidecar's path, the images as flat int8 values in the sidecar's input order, the expected
logits (the golden model's), a seed and the gap and stall probabilities. The shared driver
(``sim/streams.py``) streams every image back to back with random valid gaps, ``last`` on each
image's final value; the monitor takes the logits with random ready stalls; the scoreboard
compares every logit and every ``last`` bit for bit. The cycles between consecutive images'
final logits go to ``$ACCEL_TOP_RESULT``.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import with_timeout

from sim.streams import StreamDriver, StreamMonitor, StreamPort, start


@cocotb.test()
async def images_through_the_sidecar_ports(dut):
    with open(os.environ["ACCEL_TOP_CASE"]) as f:
        case = json.load(f)
    with open(case["sidecar"]) as f:
        side = json.load(f)
    inp, out = StreamPort(dut, side["ports"]["i"]), StreamPort(dut, side["ports"]["o"])
    clock = side["clock"]
    assert clock["reset_active"] == "high", clock
    images, want = case["images"], case["logits"]
    beats = [inp.pack({"data": [value], "last": int(k == len(image) - 1)})
             for image in images for k, value in enumerate(image)]
    cycles = await start(dut, [inp], [out], clock=clock["port"], reset=clock["reset"])
    clk = getattr(dut, clock["port"])
    driver = StreamDriver(inp, clk, np.random.default_rng([case["seed"], 1]), gap=case["gap"],
                          cycles=cycles)
    monitor = StreamMonitor(out, clk, np.random.default_rng([case["seed"], 2]),
                            stall=case["stall"], cycles=cycles)
    count = sum(len(logits) for logits in want)
    cocotb.start_soon(driver.send(beats))
    await with_timeout(monitor.receive(count), case["timeout_cycles"] * 10, "ns")

    got = [out.unpack(word) for word in monitor.beats]
    expected = [{"data": value, "last": int(k == len(logits) - 1)}
                for logits in want for k, value in enumerate(logits)]
    for n, (g, e) in enumerate(zip(got, expected, strict=True)):
        g = {"data": g["data"][0] if isinstance(g["data"], list) else g["data"],
             "last": g["last"]}
        assert g == e, (f"seed {case['seed']}: logit beat {n} (image {n // len(want[0])}): "
                        f"got {g}, want {e}")
    ends = [when for when, e in zip(monitor.when, expected, strict=True) if e["last"]]
    with open(os.environ["ACCEL_TOP_RESULT"], "w") as f:
        json.dump({"beats": len(got), "image_done": ends}, f)
