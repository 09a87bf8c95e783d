"""cocotb testbench for the Verilog of ``accel.hw.mac_array.MacArrayStream``.

The shared stream driver (random valid gaps) and monitor (random ready stalls) of
``sim/streams.py``, bound from the case's ``ports`` (:func:`accel.hw.ports.stream_ports`, the
sidecar's form), a NumPy model and a scoreboard. The case (weights, input beats, seeds, gap
and stall probabilities, the array's latency) comes from the JSON file named by
``$MAC_ARRAY_CASE``, written by ``tests/hw/test_mac_array_cocotb.py``; this module imports
neither Amaranth nor ``accel``. Every wait is bounded.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from sim.streams import StreamDriver, StreamMonitor, StreamPort, start


def load_case() -> dict:
    with open(os.environ["MAC_ARRAY_CASE"]) as f:
        return json.load(f)


def model(case: dict) -> tuple[np.ndarray, list[int]]:
    """The expected output beats: ``y = x @ W[addr]`` (int64) and the tags, in order."""
    weights = np.array(case["weights"], dtype=np.int64)
    xs = np.array(case["x"], dtype=np.int64)
    ys = np.einsum("nr,nrc->nc", xs, weights[np.array(case["addr"])])
    return ys, list(case["tag"])


class Scoreboard:
    """Compares received beats with the model, in order."""

    def __init__(self, port: StreamPort, expected_y: np.ndarray, expected_tags: list[int],
                 what: str):
        self.port, self.expected_y, self.expected_tags = port, expected_y, expected_tags
        self.what = what
        self.errors: list[str] = []

    def check(self, index: int, word: int) -> None:
        fields = self.port.unpack(word)
        y, tag = fields["y"], fields["tag"]
        y = y if isinstance(y, list) else [y]
        if index >= len(self.expected_tags):
            self.errors.append(f"beat {index}: unexpected extra output {fields}")
            return
        want_y, want_tag = [int(v) for v in self.expected_y[index]], self.expected_tags[index]
        if y != want_y or tag != want_tag:
            self.errors.append(f"beat {index}: got y={y} tag={tag}, want y={want_y} "
                               f"tag={want_tag}")

    def finish(self, received: int) -> None:
        assert received == len(self.expected_tags), f"{self.what}: got {received} beats"
        assert not self.errors, f"{self.what}: " + "; ".join(self.errors[:5])


async def _run(dut, *, gap: float, stall: float):
    case = load_case()
    inp, out = StreamPort(dut, case["ports"]["i"]), StreamPort(dut, case["ports"]["o"])
    expected_y, expected_tags = model(case)
    what = f"case {case['name']} (seed {case['seed']})"
    scoreboard = Scoreboard(out, expected_y, expected_tags, what)
    beats = [inp.pack({"x": x, "addr": addr, "tag": tag})
             for x, addr, tag in zip(case["x"], case["addr"], case["tag"], strict=True)]
    cycles = await start(dut, [inp], [out])
    driver = StreamDriver(inp, dut.clk, np.random.default_rng([case["seed"], 1]), gap=gap,
                          cycles=cycles)
    monitor = StreamMonitor(out, dut.clk, np.random.default_rng([case["seed"], 2]),
                            stall=stall, cycles=cycles)
    send = cocotb.start_soon(driver.send(beats))
    budget_ns = 10 * (len(beats) * 16 + 4 * case["latency"] + 200)
    await with_timeout(monitor.receive(len(beats), scoreboard.check), budget_ns, "ns")
    await with_timeout(send, 100, "ns")
    # Nothing more may come out: hold ready high past the pipeline's depth.
    out.ready.value = 1
    for _ in range(case["latency"] + 5):
        await ReadOnly()
        assert not out.valid.value, f"{what}: extra output beat"
        await RisingEdge(dut.clk)
    scoreboard.finish(len(monitor.beats))
    return case, driver, monitor


@cocotb.test()
async def random_stalls(dut):
    """Random valid gaps and ready stalls: every beat comes out once, in order, bit-exact."""
    case = load_case()
    await _run(dut, gap=case["gap"], stall=case["stall"])


@cocotb.test()
async def full_rate(dut):
    """Input always valid, output always ready: one beat per cycle, ``latency`` cycles apart."""
    case, driver, monitor = await _run(dut, gap=0.0, stall=0.0)
    n, latency = len(driver.accepted), case["latency"]
    first = driver.accepted[0]
    assert driver.accepted == list(range(first, first + n)), "input refused"
    assert monitor.when == [c + latency for c in driver.accepted]
