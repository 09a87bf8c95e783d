"""cocotb testbench for the Verilog of ``accel.hw.mac_array.MacArrayStream``.

Driver (input stream, random valid gaps), monitor (output stream, random ready stalls), NumPy
model and scoreboard. The case (array shape, weights, input beats, field offsets of the
payloads, seeds, gap and stall probabilities) comes from the JSON file named by
``$MAC_ARRAY_CASE``, written by ``tests/hw/test_mac_array_cocotb.py``; this module does not
import Amaranth or ``accel``. Every wait is bounded.

Ports (Amaranth's names): ``clk``, ``rst``, ``i__valid``, ``i__ready``, ``i__payload``,
``o__valid``, ``o__ready``, ``o__payload``.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

# Any single handshake may wait this many cycles at most (stalls are a few cycles each).
MAX_WAIT = 1000


def load_case() -> dict:
    with open(os.environ["MAC_ARRAY_CASE"]) as f:
        return json.load(f)


class Field:
    """One field of a flattened payload: ``count`` elements of ``width`` bits at ``offset``."""

    def __init__(self, spec: dict):
        self.offset, self.width, self.count = spec["offset"], spec["width"], spec["count"]
        self.signed = spec["signed"]

    def pack(self, values) -> int:
        values = [values] if self.count == 1 and np.ndim(values) == 0 else list(values)
        assert len(values) == self.count
        mask = (1 << self.width) - 1
        word = 0
        for k, v in enumerate(values):
            word |= (int(v) & mask) << (self.offset + k * self.width)
        return word

    def unpack(self, word: int):
        values = []
        for k in range(self.count):
            v = (word >> (self.offset + k * self.width)) & ((1 << self.width) - 1)
            if self.signed and v >> (self.width - 1):
                v -= 1 << self.width
            values.append(v)
        return values if self.count > 1 or self.signed else values[0]


def model(case: dict) -> tuple[np.ndarray, list[int]]:
    """The expected output beats: ``y = x @ W[addr]`` (int64) and the tags, in order."""
    weights = np.array(case["weights"], dtype=np.int64)
    xs = np.array(case["x"], dtype=np.int64)
    ys = np.einsum("nr,nrc->nc", xs, weights[np.array(case["addr"])])
    return ys, list(case["tag"])


class Driver:
    """Offers beats on the input stream, idling a random number of cycles before some."""

    def __init__(self, dut, fields: dict, rng: np.random.Generator, gap: float):
        self.dut, self.fields, self.rng, self.gap = dut, fields, rng, gap
        self.accept_cycles: list[int] = []

    def pack(self, x, addr, tag) -> int:
        return (self.fields["x"].pack(x) | self.fields["addr"].pack(addr)
                | self.fields["tag"].pack(tag))

    async def send(self, beats, cycle) -> None:
        dut = self.dut
        for x, addr, tag in beats:
            while self.gap and self.rng.random() < self.gap:
                dut.i__valid.value = 0
                await RisingEdge(dut.clk)
            dut.i__valid.value = 1
            dut.i__payload.value = self.pack(x, addr, tag)
            for _ in range(MAX_WAIT):
                await ReadOnly()
                ready = bool(dut.i__ready.value)
                if ready:
                    self.accept_cycles.append(cycle())
                await RisingEdge(dut.clk)
                if ready:
                    break
            else:
                raise AssertionError(f"input not accepted within {MAX_WAIT} cycles")
        dut.i__valid.value = 0


class Monitor:
    """Takes beats from the output stream, refusing (ready low) on random cycles."""

    def __init__(self, dut, fields: dict, rng: np.random.Generator, stall: float):
        self.dut, self.fields, self.rng, self.stall = dut, fields, rng, stall
        self.beats: list[tuple[list[int], int]] = []
        self.cycles: list[int] = []

    async def receive(self, count: int, cycle, on_beat) -> None:
        dut = self.dut
        idle = 0
        while len(self.beats) < count:
            ready = not (self.stall and self.rng.random() < self.stall)
            dut.o__ready.value = int(ready)
            await ReadOnly()
            if ready and dut.o__valid.value:
                word = dut.o__payload.value.to_unsigned()
                beat = (self.fields["y"].unpack(word), self.fields["tag"].unpack(word))
                self.beats.append(beat)
                self.cycles.append(cycle())
                on_beat(len(self.beats) - 1, beat)
                idle = 0
            else:
                idle += 1
                if idle > MAX_WAIT:
                    raise AssertionError(
                        f"no output for {MAX_WAIT} cycles after {len(self.beats)} of {count}"
                    )
            await RisingEdge(dut.clk)
        dut.o__ready.value = 0


class Scoreboard:
    """Compares received beats with the model, in order."""

    def __init__(self, expected_y: np.ndarray, expected_tags: list[int], what: str):
        self.expected_y, self.expected_tags, self.what = expected_y, expected_tags, what
        self.errors: list[str] = []

    def check(self, index: int, beat) -> None:
        y, tag = beat
        if index >= len(self.expected_tags):
            self.errors.append(f"beat {index}: unexpected extra output {beat}")
            return
        want_y, want_tag = [int(v) for v in self.expected_y[index]], self.expected_tags[index]
        if not np.array_equal(np.array(y, dtype=np.int64), np.array(want_y)) or tag != want_tag:
            self.errors.append(f"beat {index}: got y={y} tag={tag}, want y={want_y} "
                               f"tag={want_tag}")

    def finish(self, received: int) -> None:
        assert received == len(self.expected_tags), f"{self.what}: got {received} beats"
        assert not self.errors, f"{self.what}: " + "; ".join(self.errors[:5])


async def start(dut) -> list[int]:
    """Drive every input, start the clock, pulse reset; return a cycle counter cell."""
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.i__payload.value = 0
    dut.o__ready.value = 0
    Clock(dut.clk, 10, unit="ns").start(start_high=False)
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    counter = [0]

    async def count():
        while True:
            await RisingEdge(dut.clk)
            counter[0] += 1

    cocotb.start_soon(count())
    return counter


def _setup(dut, *, gap: float, stall: float):
    case = load_case()
    fields_in = {name: Field(spec) for name, spec in case["fields"]["i"].items()}
    fields_out = {name: Field(spec) for name, spec in case["fields"]["o"].items()}
    expected_y, expected_tags = model(case)
    what = f"case {case['name']} (seeds {case['seed']})"
    driver = Driver(dut, fields_in, np.random.default_rng([case["seed"], 1]), gap)
    monitor = Monitor(dut, fields_out, np.random.default_rng([case["seed"], 2]), stall)
    scoreboard = Scoreboard(expected_y, expected_tags, what)
    beats = list(zip(case["x"], case["addr"], case["tag"], strict=True))
    return case, driver, monitor, scoreboard, beats, what


async def _run(dut, *, gap: float, stall: float):
    case, driver, monitor, scoreboard, beats, what = _setup(dut, gap=gap, stall=stall)
    counter = await start(dut)

    def cycle() -> int:
        return counter[0]

    send = cocotb.start_soon(driver.send(beats, cycle))
    budget_ns = 10 * (len(beats) * 16 + 4 * case["latency"] + 200)
    await with_timeout(monitor.receive(len(beats), cycle, scoreboard.check), budget_ns, "ns")
    await with_timeout(send, 100, "ns")
    # Nothing more may come out: hold ready high past the pipeline's depth.
    dut.o__ready.value = 1
    for _ in range(case["latency"] + 5):
        await ReadOnly()
        assert not dut.o__valid.value, f"{what}: extra output beat"
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
    n, latency = len(driver.accept_cycles), case["latency"]
    first = driver.accept_cycles[0]
    assert driver.accept_cycles == list(range(first, first + n)), "input refused"
    assert monitor.cycles == [c + latency for c in driver.accept_cycles]
