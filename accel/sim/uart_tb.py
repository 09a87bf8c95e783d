"""The cocotb testbench of the UART board top (:class:`~accel.synth.uart_top.UartTop`), driven
through its serial pins only (loaded by the cocotb runner, see :mod:`accel.sim.uart_run`).

- driver (:class:`UartSource`): bit-bangs 8N1 bytes onto ``rx`` like a host's UART, one
  ``Timer`` per bit, with seeded random idle gaps between bytes, a per-frame baud error
  (``skew``), junk bytes before a frame's sync byte, and glitches and breaks on the idle line;
- monitor (:class:`UartSink`): decodes ``tx`` (falling edge of the start bit, then a ``Timer``
  to the middle of every bit) into a queue of bytes, and flags a missing stop bit;
- model: the expected answers, computed by the golden model on the host side and handed over
  in ``$ACCEL_UART_CASE`` (JSON), with the requests;
- scoreboard (:func:`expect_answer`): each answer byte for byte (header, every logit, argmax).

The tests run in one simulation, each starting with a reset: ``lockstep`` (a host that waits
for every answer, as ``accel run`` does), ``pipelined`` (requests back to back, never waiting),
``reset`` (reset in the middle of a request and of an answer, then a correct answer; the LEDs
cleared), ``resync`` (a request cut short, recovered by the host's filler preamble) and, when
the case names a host command, ``host_process``: the real ``accel run`` in a subprocess, its
``socket://`` port bridged to the pins. Every wait has a timeout. Figures (sim time, bytes) go
to ``$ACCEL_UART_RESULT``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, SimTimeoutError, Timer, with_timeout
from cocotb.utils import get_sim_time

SYNC_IN = 0xA5


def _case() -> dict:
    with open(os.environ["ACCEL_UART_CASE"]) as f:
        return json.load(f)


def _record(name: str, figures: dict) -> None:
    path = os.environ["ACCEL_UART_RESULT"]
    data = json.load(open(path)) if os.path.exists(path) else {}
    data[name] = figures
    with open(path, "w") as f:
        json.dump(data, f)


class UartSource:
    """Host -> board: 8N1 on ``pin``, ``bit_ps`` picoseconds per bit (times ``1 + skew``)."""

    def __init__(self, pin, clk, bit_ps: int, clock_ps: int, rng: np.random.Generator):
        self.pin, self.clk, self.bit_ps, self.clock_ps, self.rng = pin, clk, bit_ps, clock_ps, rng
        self.sent = 0
        self.events = {"gaps": 0, "glitches": 0, "breaks": 0}

    async def send(self, data, *, skew: float = 0.0, max_gap_cycles: int = 0) -> None:
        # Start half a cycle away from the sampling (rising) edge; a skewed bit period then
        # drifts across the clock like a real host's.
        await self.clk.falling_edge
        bit = Timer(round(self.bit_ps * (1 + skew)), unit="ps")
        for byte in data:
            for level in (0, *((byte >> k) & 1 for k in range(8)), 1):
                self.pin.value = level
                await bit
            self.sent += 1
            if max_gap_cycles and self.rng.random() < 0.5:
                self.events["gaps"] += 1
                await Timer(int(self.rng.integers(1, max_gap_cycles + 1)) * self.clock_ps,
                            unit="ps")

    async def low(self, cycles: int) -> None:
        """Hold the line low for ``cycles`` clock cycles, then idle for one bit: shorter than
        half a bit, a glitch the receiver must ignore; longer than a byte, a break (a "byte"
        without stop bit) after which it must wait for the idle line."""
        self.events["breaks" if cycles * self.clock_ps > self.bit_ps else "glitches"] += 1
        self.pin.value = 0
        await Timer(cycles * self.clock_ps, unit="ps")
        self.pin.value = 1
        await Timer(self.bit_ps, unit="ps")


class UartSink:
    """Board -> host: decodes ``pin`` into :attr:`queue` of ``(byte, stop_bit_ok)``."""

    def __init__(self, pin, bit_ps: int):
        self.pin, self.bit_ps = pin, bit_ps
        self.queue: Queue[tuple[int, bool]] = Queue()
        self.received = 0
        self.task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        half, bit = Timer(self.bit_ps // 2, unit="ps"), Timer(self.bit_ps, unit="ps")
        while True:
            await self.pin.falling_edge
            await half
            if int(self.pin.value):
                continue  # not a start bit
            byte = 0
            for k in range(8):
                await bit
                byte |= int(self.pin.value) << k
            await bit
            self.received += 1
            self.queue.put_nowait((byte, bool(int(self.pin.value))))

    def stop(self) -> None:
        self.task.cancel()


async def expect_answer(sink: UartSink, want: list[int], timeout_ns: int, what: str) -> None:
    """Scoreboard: the next ``len(want)`` bytes from ``sink`` must be ``want``."""
    got = []
    for position, expected in enumerate(want):
        try:
            byte, stop_ok = await with_timeout(sink.queue.get(), timeout_ns, "ns")
        except SimTimeoutError:
            raise AssertionError(f"{what}: timed out after byte {position} of {len(want)} "
                                 f"(got {got})") from None
        assert stop_ok, f"{what}: byte {position} (0x{byte:02x}) has no stop bit"
        got.append(byte)
        part = ("header" if position == 0 else "argmax" if position == len(want) - 1
                else f"logit {position - 1}")
        assert byte == expected, (f"{what}: {part} is 0x{byte:02x}, golden model says "
                                  f"0x{expected:02x}; answer so far {got}, want {want}")


async def expect_quiet(sink: UartSink, ns: int, what: str) -> None:
    await Timer(ns, unit="ns")
    assert sink.queue.empty(), f"{what}: {sink.queue.qsize()} unexpected bytes"


class Bench:
    def __init__(self, dut):
        self.dut, self.case = dut, _case()
        c = self.case
        self.clock_ps = c["clock_ns"] * 1000
        self.bit_ps = c["divisor"] * self.clock_ps
        self.rng = np.random.default_rng(c["seed"])
        self.source = UartSource(dut.rx, dut.clk, self.bit_ps, self.clock_ps, self.rng)
        self.answer_ns = c["answer_timeout_cycles"] * c["clock_ns"]
        self.answers = 0
        self.junk_bytes = 0
        self.sink: UartSink | None = None

    async def start(self) -> None:
        dut = self.dut
        # Drive every input before the first clock edge.
        dut.rst.value = 1
        dut.rx.value = 1
        Clock(dut.clk, self.case["clock_ns"], unit="ns").start(start_high=False)  # per test
        await self.reset()
        cocotb.start_soon(self._count_answers())

    async def reset(self, cycles: int = 3) -> None:
        if self.sink is not None:
            self.sink.stop()  # a byte cut by the reset is not an answer
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        assert int(self.dut.tx.value) == 1, "tx is not idle (high) in reset"
        assert int(self.dut.answers.value) == 0 and int(self.dut.error.value) == 0, \
            "reset does not clear the LEDs"
        self.dut.rst.value = 0
        self.sink = UartSink(self.dut.tx, self.bit_ps)
        self.answers = 0

    async def _count_answers(self) -> None:
        while True:
            await self.dut.answers.value_change
            self.answers += 1

    def junk(self) -> list[int]:
        if self.rng.random() >= self.case["junk_probability"]:
            return []
        choices = [b for b in range(256) if b != SYNC_IN]
        junk = [int(self.rng.choice(choices)) for _ in range(int(self.rng.integers(1, 4)))]
        self.junk_bytes += len(junk)
        return junk

    def figures(self, frames: int, start_ns: float) -> dict:
        return {"frames": frames, "bytes_sent": self.source.sent,
                "bytes_received": self.sink.received if self.sink else 0,
                "junk_bytes": self.junk_bytes, **self.source.events,
                "sim_ns": get_sim_time("ns") - start_ns}


@cocotb.test()
async def lockstep(dut):
    """Each request waits for the previous answer; random gaps, skew, junk, glitches and
    breaks; the answer LED toggles once per answer, the error LED stays dark."""
    bench = Bench(dut)
    await bench.start()
    c, rng, start = bench.case, bench.rng, get_sim_time("ns")
    for n, frame in enumerate(c["frames"]):
        what = f"lockstep frame {n} ({frame['label']}, seed {c['seed']})"
        if n % 3 == 1:  # a glitch before every third frame, a break before another third
            await bench.source.low(int(rng.integers(1, c["divisor"] // 2)))
        elif n % 3 == 2:
            await bench.source.low(int(rng.integers(10, 30)) * c["divisor"])
        skew = float(rng.uniform(-c["skew"], c["skew"]))
        await bench.source.send(bench.junk() + frame["request"], skew=skew,
                                max_gap_cycles=c["max_gap_cycles"])
        await expect_answer(bench.sink, frame["response"], bench.answer_ns, what)
        assert bench.answers == n + 1, f"{what}: the answer LED toggled {bench.answers} times"
        await Timer(int(rng.integers(0, 20 * c["divisor"])) * bench.clock_ps + 1, unit="ps")
    await expect_quiet(bench.sink, 2 * bench.answer_ns, "lockstep")
    assert int(dut.error.value) == 0, "lockstep: the error LED is lit (a byte was dropped)"
    _record("lockstep", bench.figures(len(c["frames"]), start))


@cocotb.test()
async def pipelined(dut):
    """Requests back to back without waiting; answers in order; nothing dropped."""
    bench = Bench(dut)
    await bench.start()
    c, start = bench.case, get_sim_time("ns")
    frames = c["frames"][:c["pipelined_frames"]]

    async def host() -> None:
        for frame in frames:
            await bench.source.send(frame["request"])

    sender = cocotb.start_soon(host())
    for n, frame in enumerate(frames):
        await expect_answer(bench.sink, frame["response"], bench.answer_ns,
                            f"pipelined frame {n} ({frame['label']}, seed {c['seed']})")
    await sender
    await expect_quiet(bench.sink, 2 * bench.answer_ns, "pipelined")
    assert bench.answers == len(frames), f"pipelined: {bench.answers} answer LED toggles"
    assert int(dut.error.value) == 0, "pipelined: the error LED is lit (a byte was dropped)"
    _record("pipelined", bench.figures(len(frames), start))


@cocotb.test()
async def reset(dut):
    """Reset halfway through a request, and again during an answer: no stale answer, the
    LEDs cleared, and the next request answered correctly."""
    bench = Bench(dut)
    await bench.start()
    c, start = bench.case, get_sim_time("ns")
    first, second = c["frames"][0], c["frames"][1]
    await bench.source.send(first["request"][:len(first["request"]) // 2])
    await bench.reset()
    await expect_quiet(bench.sink, bench.answer_ns, "reset during a request")
    await bench.source.send(second["request"])
    await expect_answer(bench.sink, second["response"], bench.answer_ns,
                        f"after a reset during a request ({second['label']})")
    await bench.source.send(first["request"])
    await with_timeout(bench.dut.tx.falling_edge, bench.answer_ns, "ns")
    await Timer(bench.bit_ps * 13 // 2, unit="ps")  # in the middle of the header byte
    await bench.reset()
    await expect_quiet(bench.sink, bench.answer_ns, "reset during an answer")
    await bench.source.send(second["request"])
    await expect_answer(bench.sink, second["response"], bench.answer_ns,
                        f"after a reset during an answer ({second['label']})")
    assert bench.answers == 1 and int(dut.error.value) == 0
    _record("reset", bench.figures(4, start))


@cocotb.test()
async def resync(dut):
    """A request cut short (an interrupted host) leaves the board inside an image; the filler
    preamble of ``accel run`` (one image of non-sync bytes, then discard what comes back)
    realigns it without a reset."""
    bench = Bench(dut)
    await bench.start()
    c, start = bench.case, get_sim_time("ns")
    frame, other = c["frames"][2], c["frames"][3]
    await bench.source.send(other["request"][:len(other["request"]) * 2 // 3])
    await bench.source.send(c["filler"])
    await Timer(bench.answer_ns, unit="ns")
    while not bench.sink.queue.empty():  # the answer to the cut image: discarded
        bench.sink.queue.get_nowait()
    await bench.source.send(frame["request"])
    await expect_answer(bench.sink, frame["response"], bench.answer_ns,
                        f"after a filler preamble ({frame['label']})")
    await bench.source.send(c["filler"])  # on a board in step, the filler is ignored
    await expect_quiet(bench.sink, bench.answer_ns, "filler on an idle board")
    _record("resync", bench.figures(2, start))


@cocotb.test()
async def host_process(dut):
    """``accel run --port socket://...`` in a subprocess, bridged to the pins: what the host
    writes is bit-banged onto ``rx``, what ``tx`` says is sent back. The host checks every
    answer against the golden model itself (``--check``); its JSON report is kept."""
    bench = Bench(dut)
    c = bench.case
    if "host" not in c:
        _record("host_process", {"skipped": True})
        return
    await bench.start()
    start, wall = get_sim_time("ns"), time.monotonic()
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        command = [arg.replace("{port}", f"socket://127.0.0.1:{port}")
                   for arg in c["host"]["command"]]
        with open(c["host"]["output"], "w") as out:
            host = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, text=True)
        server.settimeout(c["host"]["timeout_s"])
        try:
            conn, _ = server.accept()  # the simulation stands still meanwhile
        except TimeoutError:
            host.kill()
            raise AssertionError(f"accel run never connected: {host.communicate()[1]}") from None
    conn.setblocking(False)

    async def answers() -> None:
        while True:
            byte, stop_ok = await bench.sink.queue.get()
            assert stop_ok, f"host_process: byte 0x{byte:02x} has no stop bit"
            conn.sendall(bytes([byte]))

    forward = cocotb.start_soon(answers())
    with conn:
        while host.poll() is None:
            assert time.monotonic() - wall < c["host"]["timeout_s"], "accel run did not finish"
            try:
                data = conn.recv(4096)
            except BlockingIOError:
                data = b""
            if data:
                await bench.source.send(data)
            else:  # idle: let the board run (answers are forwarded meanwhile)
                await Timer(10 * bench.bit_ps, unit="ps")
    forward.cancel()
    stderr = host.communicate()[1]
    assert host.returncode == 0, f"accel run exited {host.returncode}: {stderr.strip()}"
    _record("host_process", {**bench.figures(0, start), "wall_s": time.monotonic() - wall})
