# amaranth: UnusedElaboratable=no
"""Our side of the LiteDRAM core in amaranth.sim: the burst reader on a native port (a model
with random command stalls, latency, data gaps and refresh pauses), bit-exact; and the init
sequencer against a Wishbone slave with random ack latency, which records the CSR writes."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from accel.hw.burst_reader import BurstReader
from accel.hw.litedram_port import LiteDRAMReader, SDRAMInit
from accel.synth.litedram import InitStep

from .streams import stream_get, stream_put


def _run(dut, testbenches, max_cycles=200_000):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in testbenches:
        sim.add_testbench(tb)
    steps = 0
    while sim.advance():
        steps += 1
        if steps > 4 * max_cycles:
            raise TimeoutError("simulation did not finish")


class NativePortModel:
    """A LiteDRAM native port: commands accepted with random stalls and refresh pauses, read
    words returned in order after a random latency, with random gaps; strict about refusals."""

    def __init__(self, words, rng, *, refresh_period=150, refresh_cycles=10):
        self.words, self.rng = words, rng
        self.refresh_period, self.refresh_cycles = refresh_period, refresh_cycles
        self.now, self.pending, self.done = 0, deque(), False

    def _refreshing(self):
        return self.now % self.refresh_period < self.refresh_cycles

    def testbenches(self, port):
        async def clock(ctx):
            while not self.done:
                await ctx.tick()
                self.now += 1

        async def commands(ctx):
            while not self.done:
                ready = not self._refreshing() and self.rng.random() < 0.7
                ctx.set(port.cmd.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(port.cmd.valid, port.cmd.payload)
                if valid and ready:
                    assert not payload.we, "the reader wrote"
                    self.pending.append((self.now + int(self.rng.integers(3, 15)), payload.addr))

        async def rdata(ctx):
            while not self.done:
                offer = (bool(self.pending) and self.pending[0][0] <= self.now
                         and self.rng.random() < 0.8)
                ctx.set(port.rdata.valid, offer)
                if offer:
                    ctx.set(port.rdata.payload, self.words[self.pending[0][1]])
                _, _, ready = await ctx.tick().sample(port.rdata.ready)
                if offer:
                    assert ready, f"cycle {self.now}: a requested word was refused"
                    self.pending.popleft()

        return [clock, commands, rdata]


class _SDRAMStream(wiring.Component):
    def __init__(self):
        self.reader = BurstReader(word_width=16, addr_width=25, count_width=16, max_burst=16,
                                  fifo_depth=64)
        self.port_reader = LiteDRAMReader(max_burst=16)
        super().__init__({"frames": wiring.In(self.reader.frames.signature.flip()),
                          "o": wiring.Out(self.reader.o.signature),
                          "port": wiring.Out(self.port_reader.port.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader, m.submodules.port_reader = self.reader, self.port_reader
        wiring.connect(m, self.reader.mem_cmd, self.port_reader.cmd)
        wiring.connect(m, self.port_reader.rsp, self.reader.mem_rsp)
        wiring.connect(m, wiring.flipped(self.frames), self.reader.frames)
        wiring.connect(m, self.reader.o, wiring.flipped(self.o))
        wiring.connect(m, self.port_reader.port, wiring.flipped(self.port))
        return m


@pytest.mark.parametrize("seed", [1, 2])
def test_weight_frames_from_native_port(seed):
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 1 << 16, 5000).tolist()
    dut = _SDRAMStream()
    port = NativePortModel(words, np.random.default_rng(seed + 50))
    frames = [(int(rng.integers(0, 4000)), int(rng.integers(1, 300))) for _ in range(4)]
    frames.append(frames[0])
    expected = [(words[b + i], int(i == n - 1)) for b, n in frames for i in range(n)]
    got = []

    async def producer(ctx):
        for base, count in frames:
            await stream_put(ctx, dut.frames, {"base": base, "count": count})

    async def consumer(ctx):
        for _ in expected:
            if rng.random() < 0.3:
                await ctx.tick().repeat(int(rng.integers(1, 5)))
            payload = await stream_get(ctx, dut.o)
            got.append((payload.data, payload.last))
        port.done = True

    _run(dut, [producer, consumer, *port.testbenches(dut.port)])
    assert got == expected, f"seed {seed}: words differ"


# The sequence litedram.gen writes into sdram_phy.h for the ULX3S SDR core (2024.12).
ULX3S_INIT = (
    InitStep("address", 0), InitStep("baddress", 0), InitStep("control", 0b1110),
    InitStep("delay", 20000),
    InitStep("address", 0x400), InitStep("baddress", 0), InitStep("command", 0b1011),
    InitStep("address", 0x120), InitStep("baddress", 0), InitStep("command", 0b1111),
    InitStep("delay", 200),
    InitStep("address", 0x400), InitStep("baddress", 0), InitStep("command", 0b1011),
    InitStep("address", 0), InitStep("baddress", 0), InitStep("command", 0b1101),
    InitStep("delay", 4),
    InitStep("address", 0), InitStep("baddress", 0), InitStep("command", 0b1101),
    InitStep("delay", 4),
    InitStep("address", 0x20), InitStep("baddress", 0), InitStep("command", 0b1111),
    InitStep("delay", 200),
)
ULX3S_CSR = {"ddrctrl_init_done": 0x0, "ddrctrl_init_error": 0x4, "sdram_dfii_control": 0x800,
             "sdram_dfii_pi0_command": 0x804, "sdram_dfii_pi0_command_issue": 0x808,
             "sdram_dfii_pi0_address": 0x80c, "sdram_dfii_pi0_baddress": 0x810}


def _expected_writes():
    names = {"address": 0x80c, "baddress": 0x810, "control": 0x800, "command": 0x804}
    out = []
    for step in ULX3S_INIT:
        if step.kind != "delay":
            out.append((names[step.kind], step.value))
            if step.kind == "command":
                out.append((0x808, 1))
    return [*out, (0x800, 1), (0x0, 1)]


@pytest.mark.parametrize("seed", [1, 2])
def test_init_sequence_over_wishbone(seed):
    rng = np.random.default_rng(seed)
    # At 1 MHz, 30 us of power-up wait is less than the BIOS's count of 20000, which wins.
    dut = SDRAMInit(steps=ULX3S_INIT, csr=ULX3S_CSR, clk_freq=1e6, power_up_us=30)
    writes = []   # (byte address, data, cycle of the ack)
    clock = {"now": 0}

    async def counter(ctx):
        while not ctx.get(dut.done):
            await ctx.tick()
            clock["now"] += 1

    async def slave(ctx):
        while not ctx.get(dut.done):
            _, _, cyc, stb, we, adr, dat, sel = await ctx.tick().sample(
                dut.bus.cyc, dut.bus.stb, dut.bus.we, dut.bus.adr, dut.bus.dat_w, dut.bus.sel)
            if not (cyc and stb):
                continue
            assert we and sel == 0b1111, f"seed {seed}: not a full-word write"
            latency = int(rng.integers(0, 4))
            if latency:
                await ctx.tick().repeat(latency)
            assert ctx.get(dut.bus.stb) and ctx.get(dut.bus.adr) == adr, \
                f"seed {seed}: the master dropped the cycle before ack"
            ctx.set(dut.bus.ack, 1)
            await ctx.tick()
            ctx.set(dut.bus.ack, 0)
            writes.append((adr << 2, dat, clock["now"]))
            assert not ctx.get(dut.bus.stb), f"seed {seed}: no idle cycle after ack"

    _run(dut, [counter, slave], max_cycles=100_000)
    assert [(a, d) for a, d, _ in writes] == _expected_writes(), f"seed {seed}"
    # The wait with CKE high lasts at least 20000 cycles (the BIOS count is larger than 30 us).
    cke = next(i for i, (a, d, _) in enumerate(writes) if a == 0x800)
    assert writes[cke + 1][2] - writes[cke][2] >= 20000, writes[cke:cke + 2]


def test_power_up_wait_from_frequency():
    # 200 us at 50 MHz is 10,000 cycles, less than the BIOS count; at 200 MHz it is 40,000.
    dut = SDRAMInit(steps=ULX3S_INIT, csr=ULX3S_CSR, clk_freq=50e6)
    assert [op[1] for op in dut.program if op[0] == "wait"] == [20000, 200, 4, 4, 200]
    fast = SDRAMInit(steps=ULX3S_INIT, csr=ULX3S_CSR, clk_freq=200e6)
    assert fast.program[3] == ("wait", 40000)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"clk_freq": 0}, r"^clk_freq must be a positive frequency in Hz, not 0$"),
    ({"csr": {}}, r"^csr lacks sdram_dfii_pi0_address, "),
    ({"steps": [InitStep("jump", 1)]}, r"^unknown init step kind 'jump'$"),
])
def test_init_bad_parameters(kwargs, message):
    params = {"steps": ULX3S_INIT, "csr": ULX3S_CSR, "clk_freq": 50e6, **kwargs}
    with pytest.raises(ValueError, match=message):
        SDRAMInit(**params)


def test_reader_bad_parameters():
    with pytest.raises(ValueError, match=r"^data_width must be a multiple of 8, not 12$"):
        LiteDRAMReader(data_width=12)
