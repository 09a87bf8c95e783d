"""The cocotb stream driver and monitor, bound to a design through its port description.

A port is described as in the sidecar (``accel generate``'s ``accel_top.json``, ``ports``) and
as :func:`accel.hw.ports.stream_ports` writes it for any component: the Verilog names of
``valid``, ``ready`` and ``payload``, and the payload's ``elements`` (offset, width, count,
signedness of each field). :class:`StreamPort` packs and unpacks payloads from that alone, so a
bench never spells a bit position.

:class:`StreamDriver` offers beats, idling 1-3 cycles before a beat with probability ``gap``;
:class:`StreamMonitor` takes beats, dropping ``ready`` for 1-3 cycles with probability
``stall``. Both sample at ``ReadOnly`` before a clock edge, so a transfer is exactly a cycle
with ``valid`` and ``ready`` high, and both bound every wait (``max_wait`` cycles). Randomness
comes from the ``numpy.random.Generator`` the bench seeds. This module imports neither
Amaranth nor accel: it runs inside the simulator's Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["CycleCounter", "StreamDriver", "StreamMonitor", "StreamPort", "start"]

#: Cycles any single handshake may wait (random stalls are a few cycles each).
MAX_WAIT = 1000


class StreamPort:
    """The three signals of one stream port of ``dut`` and its payload's fields.

    Parameters
    ----------
    dut
        The cocotb handle of the top module.
    port : mapping
        The port's description (sidecar ``ports`` entry): ``valid``, ``ready``, ``payload``
        and ``elements`` (``{field: {"offset", "width", "count", "signed"}}``); a description
        with only ``fields`` (``{field: [lo, hi]}``) is read as unsigned scalar fields.
    """

    def __init__(self, dut, port: Mapping) -> None:
        self.valid = getattr(dut, port["valid"])
        self.ready = getattr(dut, port["ready"])
        self.payload = getattr(dut, port["payload"])
        elements = port.get("elements")
        if elements is None:
            elements = {name: {"offset": lo, "width": hi - lo + 1, "count": 1, "signed": False}
                        for name, (lo, hi) in port["fields"].items()}
        self.elements = {name: dict(e) for name, e in elements.items()}

    def pack(self, values: Mapping[str, int | Sequence[int]]) -> int:
        """The payload word of ``values`` (a scalar per scalar field, a sequence per array
        field); fields left out are 0."""
        word = 0
        for name, value in values.items():
            e = self.elements[name]
            items = list(value) if isinstance(value, Sequence) else [value]
            if len(items) != e["count"]:
                raise ValueError(f"field {name} holds {e['count']} values, not {len(items)}")
            mask = (1 << e["width"]) - 1
            for k, item in enumerate(items):
                word |= (int(item) & mask) << (e["offset"] + k * e["width"])
        return word

    def unpack(self, word: int) -> dict[str, int | list[int]]:
        """The fields of payload ``word``: an int per scalar field, a list per array field."""
        values: dict[str, int | list[int]] = {}
        for name, e in self.elements.items():
            items = []
            for k in range(e["count"]):
                item = (word >> (e["offset"] + k * e["width"])) & ((1 << e["width"]) - 1)
                if e["signed"] and item >> (e["width"] - 1):
                    item -= 1 << e["width"]
                items.append(item)
            values[name] = items if e["count"] > 1 else items[0]
        return values


class CycleCounter:
    """Counts rising edges of ``clk`` from :meth:`start`; ``now`` is the current cycle."""

    def __init__(self, clk) -> None:
        self.clk = clk
        self.now = 0

    def start(self) -> CycleCounter:
        async def count():
            while True:
                await RisingEdge(self.clk)
                self.now += 1

        cocotb.start_soon(count())
        return self


async def start(dut, inputs: Sequence[StreamPort], outputs: Sequence[StreamPort], *,
                clock_ns: int = 10, clock: str = "clk", reset: str = "rst") -> CycleCounter:
    """Drive every input (reset high, no valid, no ready) before the clock starts (a 4-state
    simulator would latch X otherwise), start the clock, release reset after two cycles;
    returns a running :class:`CycleCounter`."""
    clk = getattr(dut, clock)
    getattr(dut, reset).value = 1
    for port in inputs:
        port.valid.value = 0
        port.payload.value = 0
    for port in outputs:
        port.ready.value = 0
    cocotb.start_soon(Clock(clk, clock_ns, unit="ns").start(start_high=False))
    for _ in range(2):
        await RisingEdge(clk)
    getattr(dut, reset).value = 0
    await RisingEdge(clk)
    return CycleCounter(clk).start()


class StreamDriver:
    """Offers beats on an input port (see module doc); ``accepted`` holds the cycle of each
    transfer."""

    def __init__(self, port: StreamPort, clk, rng, *, gap: float = 0.0,
                 cycles: CycleCounter | None = None, max_wait: int = MAX_WAIT) -> None:
        self.port, self.clk, self.rng, self.gap = port, clk, rng, gap
        self.cycles, self.max_wait = cycles, max_wait
        self.accepted: list[int] = []

    async def send(self, beats: Sequence[int]) -> None:
        """Transfer every packed payload of ``beats``, in order."""
        port = self.port
        for n, beat in enumerate(beats):
            if self.gap and self.rng.random() < self.gap:
                port.valid.value = 0
                for _ in range(int(self.rng.integers(1, 4))):
                    await RisingEdge(self.clk)
            port.payload.value = int(beat)
            port.valid.value = 1
            for _ in range(self.max_wait):
                await ReadOnly()
                taken = bool(port.ready.value)
                if taken:
                    self.accepted.append(self.cycles.now if self.cycles else 0)
                await RisingEdge(self.clk)
                if taken:
                    break
            else:
                raise AssertionError(f"beat {n} of {len(beats)} not accepted within "
                                     f"{self.max_wait} cycles")
        port.valid.value = 0


class StreamMonitor:
    """Takes beats from an output port (see module doc); ``beats`` are the packed payloads,
    ``when`` the cycle of each."""

    def __init__(self, port: StreamPort, clk, rng, *, stall: float = 0.0,
                 cycles: CycleCounter | None = None, max_wait: int = MAX_WAIT) -> None:
        self.port, self.clk, self.rng, self.stall = port, clk, rng, stall
        self.cycles, self.max_wait = cycles, max_wait
        self.beats: list[int] = []
        self.when: list[int] = []

    async def receive(self, count: int,
                      on_beat: Callable[[int, int], None] | None = None) -> list[int]:
        """Take ``count`` beats; ``on_beat(index, word)`` sees each as it arrives."""
        port = self.port
        hold = idle = 0
        while len(self.beats) < count:
            if hold == 0 and self.stall and self.rng.random() < self.stall:
                hold = int(self.rng.integers(1, 4))
            port.ready.value = int(hold == 0)
            await ReadOnly()
            if hold == 0 and port.valid.value:
                word = port.payload.value.to_unsigned()
                self.beats.append(word)
                self.when.append(self.cycles.now if self.cycles else 0)
                if on_beat is not None:
                    on_beat(len(self.beats) - 1, word)
                idle = 0
            else:
                idle += 1
                if idle > self.max_wait:
                    raise AssertionError(f"no output for {self.max_wait} cycles after "
                                         f"{len(self.beats)} of {count} beats")
            await RisingEdge(self.clk)
            hold = max(hold - 1, 0)
        port.ready.value = 0
        return self.beats
