"""cocotb test of one stream block: a driver, a monitor and a scoreboard on packed payloads.

The block has one input stream and one output stream, named as in Amaranth's Verilog
(``<port>__valid``, ``<port>__ready``, ``<port>__payload``), a clock ``clk`` and a reset
``rst``. What to send and what to expect comes from the JSON file named by ``ACCEL_BLOCK_CASE``
(written by :func:`sim.blocks.harness.run_block`)::

    {"seed": 1, "clock_ns": 10, "timeout_cycles": 5000,
     "source": {"port": "i", "beats": [packed payload ints], "gap": 0.3},
     "sink": {"port": "o", "beats": [expected packed ints], "stall": 0.3}}

The driver idles a random number of cycles before a beat with probability ``gap``; the monitor
drops ``ready`` for a random number of cycles with probability ``stall``. Both sample at
``ReadOnly`` before a clock edge, so a transfer is exactly a cycle with ``valid`` and ``ready``
high. Every loop is bounded by ``timeout_cycles``. The monitor's cycle numbers of the first and
last output beats go to ``ACCEL_BLOCK_RESULT`` (JSON) for throughput figures.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout


class Timeout(AssertionError):
    pass


class Cycles:
    """A cycle budget shared by the driver and the monitor."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.now = 0

    def tick(self, what: str) -> None:
        self.now += 1
        if self.now > self.limit:
            raise Timeout(f"{what}: no progress after {self.limit} cycles")


async def drive(dut, clk, port: str, beats: list[int], gap: float, rng, cycles: Cycles):
    valid = getattr(dut, f"{port}__valid")
    ready = getattr(dut, f"{port}__ready")
    payload = getattr(dut, f"{port}__payload")
    for beat in beats:
        if gap and rng.random() < gap:
            valid.value = 0
            for _ in range(rng.randint(1, 3)):
                await RisingEdge(clk)
        payload.value = beat
        valid.value = 1
        while True:
            await ReadOnly()
            taken = bool(ready.value)
            await RisingEdge(clk)
            if taken:
                break
    valid.value = 0


async def monitor(dut, clk, port: str, count: int, stall: float, rng, cycles: Cycles,
                  got: list[int], when: list[int]):
    valid = getattr(dut, f"{port}__valid")
    ready = getattr(dut, f"{port}__ready")
    payload = getattr(dut, f"{port}__payload")
    hold = 0
    while len(got) < count:
        if hold == 0 and stall and rng.random() < stall:
            hold = rng.randint(1, 3)
        ready.value = int(hold == 0)
        await ReadOnly()
        if hold == 0 and valid.value:
            got.append(payload.value.to_unsigned())
            when.append(cycles.now)
        await RisingEdge(clk)
        cycles.tick(f"monitor ({len(got)}/{count} beats)")
        hold = max(hold - 1, 0)
    ready.value = 0


@cocotb.test()
async def stream_block(dut):
    with open(os.environ["ACCEL_BLOCK_CASE"]) as f:
        case = json.load(f)
    rng = random.Random(case["seed"])
    source, sink = case["source"], case["sink"]
    clk = dut.clk
    # Drive every input before the clock starts (4-state simulators would latch X otherwise).
    dut.rst.value = 1
    getattr(dut, f"{source['port']}__valid").value = 0
    getattr(dut, f"{source['port']}__payload").value = 0
    getattr(dut, f"{sink['port']}__ready").value = 0
    cocotb.start_soon(Clock(clk, case["clock_ns"], unit="ns").start(start_high=False))
    for _ in range(2):
        await RisingEdge(clk)
    dut.rst.value = 0

    cycles = Cycles(case["timeout_cycles"])
    got: list[int] = []
    when: list[int] = []
    cocotb.start_soon(drive(dut, clk, source["port"], source["beats"], source["gap"], rng,
                            cycles))
    watch = cocotb.start_soon(monitor(dut, clk, sink["port"], len(sink["beats"]),
                                      sink["stall"], rng, cycles, got, when))
    await with_timeout(watch, case["timeout_cycles"] * case["clock_ns"] + 1000, "ns")

    # Scoreboard: the expected beats, in order, bit for bit.
    mismatches = [
        (n, g, e) for n, (g, e) in enumerate(zip(got, sink["beats"], strict=True)) if g != e
    ]
    if "ACCEL_BLOCK_RESULT" in os.environ:
        with open(os.environ["ACCEL_BLOCK_RESULT"], "w") as f:
            json.dump({"beats": len(got), "first": when[0], "last": when[-1],
                       "mismatches": len(mismatches)}, f)
    assert not mismatches, (
        f"seed {case['seed']}: {len(mismatches)} of {len(got)} beats differ; first at beat "
        f"{mismatches[0][0]}: got {mismatches[0][1]:#x}, want {mismatches[0][2]:#x}"
    )
