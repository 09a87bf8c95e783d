# amaranth: UnusedElaboratable=no
"""SDRAMWeights (accel/synth/sdram_weights.py) in amaranth.sim: the flash model on its flash
pins, a Wishbone slave that plays the core's CSRs (``init_done`` once written), and a native
port model that stores writes and answers reads after a latency, with random stalls, refresh
pauses and read-data gaps; a BurstReader reads frames through ``mem_cmd``/``mem_rsp`` with
random output stalls, asking from the first cycle. A good image reads back bit-exact; a
corrupted payload or a refused header raises ``error``; nothing is served before ``ready``."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.hw.burst_reader import BurstReader
from accel.synth.litedram import InitStep
from accel.synth.sdram_weights import STATUS_BITS, SDRAMWeights, flash_pins_signature
from accel.synth.weight_image import pack_weight_image
from tests.hw.spi_flash_model import SPIFlashModel
from tests.hw.streams import run_simulation, stream_get, stream_put

CSR = {"ddrctrl_init_done": 0x0, "ddrctrl_init_error": 0x4, "sdram_dfii_control": 0x800,
       "sdram_dfii_pi0_command": 0x804, "sdram_dfii_pi0_command_issue": 0x808,
       "sdram_dfii_pi0_address": 0x80c, "sdram_dfii_pi0_baddress": 0x810}
# The ULX3S core's sequence (tests/hw/test_litedram_port.py) with its waits cut short.
STEPS = (InitStep("control", 0b1110), InitStep("delay", 40),
         InitStep("address", 0x400), InitStep("command", 0b1011),
         InitStep("address", 0x120), InitStep("command", 0b1111), InitStep("delay", 8),
         InitStep("address", 0), InitStep("command", 0b1101), InitStep("delay", 4))
OFFSET = 0x300
WORDS = 1 << 12


class _Bench(wiring.Component):
    """SDRAMWeights with a BurstReader on its memory side (the consumer a stage has)."""

    def __init__(self):
        self.weights = SDRAMWeights(steps=STEPS, csr=CSR, clk_freq=1e6, power_up_us=0,
                                    flash_offset=OFFSET, max_length=2 * WORDS, addr_width=12,
                                    max_burst=16, flash_burst=32)
        self.reader = BurstReader(word_width=16, addr_width=12, count_width=13, max_burst=16,
                                  fifo_depth=48)
        super().__init__({
            "frames": In(self.reader.frames.signature.flip()),
            "o": Out(self.reader.o.signature),
            "flash": Out(flash_pins_signature()),
            "port": Out(self.weights.port.signature),
            "bus": Out(self.weights.bus.signature),
            "sdram_init_done": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.weights, m.submodules.reader = w, r = self.weights, self.reader
        wiring.connect(m, r.mem_cmd, w.mem_cmd)
        wiring.connect(m, w.mem_rsp, r.mem_rsp)
        wiring.connect(m, wiring.flipped(self.frames), r.frames)
        wiring.connect(m, r.o, wiring.flipped(self.o))
        wiring.connect(m, w.flash, wiring.flipped(self.flash))
        wiring.connect(m, w.port, wiring.flipped(self.port))
        wiring.connect(m, w.bus, wiring.flipped(self.bus))
        m.d.comb += w.sdram_init_done.eq(self.sdram_init_done)
        return m


class _Controller:
    """The LiteDRAM core as its user port and CSR bus see it: CSR writes acked after 0-3
    cycles (``init_done`` rises when ``ddrctrl_init_done`` is written 1); on the native port,
    commands taken with random stalls and refresh pauses (none before ``init_done``), write
    data taken in order for taken write commands, read words returned in order after 3-14
    cycles with random gaps, and a refused read word is an error, as are commands before
    ``init_done``."""

    def __init__(self, dut, rng, *, refresh_period=200, refresh_cycles=12):
        self.dut, self.rng = dut, rng
        self.refresh_period, self.refresh_cycles = refresh_period, refresh_cycles
        self.memory: dict[int, int] = {}
        self.reads: list[tuple[int, int]] = []     # (cycle, address) of each read command
        self.writes_after_read = 0
        self.now, self.done, self.init_done = 0, False, False

    def testbenches(self):
        dut, rng = self.dut, self.rng
        port = dut.port
        pending_reads, write_addrs = deque(), deque()

        async def clock(ctx):
            while not self.done:
                await ctx.tick()
                self.now += 1

        async def csr(ctx):
            while not self.done:
                _, _, cyc, stb, adr, dat = await ctx.tick().sample(
                    dut.bus.cyc, dut.bus.stb, dut.bus.adr, dut.bus.dat_w)
                if not (cyc and stb):
                    continue
                latency = int(rng.integers(0, 4))
                if latency:
                    await ctx.tick().repeat(latency)
                ctx.set(dut.bus.ack, 1)
                await ctx.tick()
                ctx.set(dut.bus.ack, 0)
                if adr << 2 == CSR["ddrctrl_init_done"] and dat & 1:
                    self.init_done = True
                    ctx.set(dut.sdram_init_done, 1)

        async def commands(ctx):
            while not self.done:
                refreshing = self.now % self.refresh_period < self.refresh_cycles
                ready = self.init_done and not refreshing and rng.random() < 0.7
                ctx.set(port.cmd.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(port.cmd.valid, port.cmd.payload)
                if valid and ready:
                    if payload.we:
                        if self.reads:
                            self.writes_after_read += 1
                        write_addrs.append(payload.addr)
                    else:
                        self.reads.append((self.now, payload.addr))
                        pending_reads.append((self.now + int(rng.integers(3, 15)), payload.addr))

        async def wdata(ctx):
            while not self.done:
                ready = bool(write_addrs) and rng.random() < 0.7
                ctx.set(port.wdata.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(port.wdata.valid,
                                                               port.wdata.payload)
                if valid and ready:
                    assert payload.we == 0b11, "not every byte enabled"
                    self.memory[write_addrs.popleft()] = payload.data

        async def rdata(ctx):
            while not self.done:
                offer = (bool(pending_reads) and pending_reads[0][0] <= self.now
                         and rng.random() < 0.8)
                ctx.set(port.rdata.valid, offer)
                if offer:
                    ctx.set(port.rdata.payload, self.memory.get(pending_reads[0][1], 0xDEAD))
                _, _, ready = await ctx.tick().sample(port.rdata.ready)
                if offer:
                    assert ready, f"cycle {self.now}: a requested word was refused"
                    pending_reads.popleft()

        return [clock, csr, commands, wdata, rdata]


def _flash(payload: bytes, rng, *, corrupt: str | None = None) -> bytes:
    image = bytearray(pack_weight_image(payload, word_width=16, flash_offset=OFFSET))
    if corrupt == "payload":
        image[20 + int(rng.integers(0, len(payload)))] ^= 1 << int(rng.integers(0, 8))
    elif corrupt == "header":
        image[6] = 8                                 # word width 8: not the SDRAM's 16
    flash = bytearray(rng.integers(0, 256, OFFSET + len(image) + 64, dtype=np.uint8).tobytes())
    flash[OFFSET:OFFSET + len(image)] = image
    return bytes(flash)


def _run(seed: int, payload: bytes, frames, *, corrupt: str | None = None,
         wait_cycles: int = 0):
    rng = np.random.default_rng(seed)
    dut = _Bench()
    model = SPIFlashModel(_flash(payload, rng, corrupt=corrupt), command=0x0B)
    controller = _Controller(dut, np.random.default_rng(seed + 100))
    weights = dut.weights
    got, log = [], {"early": 0, "ready_cycle": None, "status": None}
    expected_words = sum(n for _, n in frames)

    async def producer(ctx):
        # Frames are offered from the first cycle: the memory must hold them until ready.
        for base, count in frames:
            await stream_put(ctx, dut.frames, {"base": base, "count": count})

    async def consumer(ctx):
        for _ in range(expected_words):
            if rng.random() < 0.3:
                await ctx.tick().repeat(int(rng.integers(1, 5)))
            payload = await stream_get(ctx, dut.o)
            got.append((payload.data, payload.last))
        controller.done = model.done = True

    async def monitor(ctx):
        # Every cycle: a request taken on mem_cmd while not ready is a failure.
        while not controller.done:
            _, _, valid, ready, up, error = await ctx.tick().sample(
                weights.mem_cmd.valid, weights.mem_cmd.ready, weights.ready, weights.error)
            if valid and ready and not up:
                log["early"] += 1
            if up and log["ready_cycle"] is None:
                log["ready_cycle"] = controller.now
            if (error or up) and log["status"] is None:
                log["status"] = ctx.get(weights.status)
            if error and wait_cycles:
                await ctx.tick().repeat(wait_cycles)
                log["status"] = ctx.get(weights.status)
                log["error"] = ctx.get(weights.error)
                controller.done = model.done = True

    benches = [monitor, model.testbench(dut.flash), *controller.testbenches(), producer]
    if not corrupt:
        benches.append(consumer)
    run_simulation(dut, benches, max_cycles=400_000)
    return got, log, controller


def _status(byte: int) -> set:
    return {name for bit, name in STATUS_BITS.items() if byte >> bit & 1}


@pytest.mark.parametrize("seed", [1, 2])
def test_good_image_reads_back_bit_exact(seed):
    rng = np.random.default_rng(seed)
    words = int(rng.integers(96, 160))
    payload = rng.integers(0, 256, 2 * words, dtype=np.uint8).tobytes()
    values = [int.from_bytes(payload[2 * k:2 * k + 2], "little") for k in range(words)]
    frames = [(0, words), (int(rng.integers(0, words // 2)), int(rng.integers(1, words // 2))),
              (words - 1, 1)]
    got, log, controller = _run(seed, payload, frames)
    expected = [(values[b + i], int(i == n - 1)) for b, n in frames for i in range(n)]
    assert got == expected, f"seed {seed}: words differ"
    assert log["early"] == 0, f"seed {seed}: a request was taken before ready"
    assert _status(log["status"]) == {"ready", "sdram_up", "loaded", "header_ok", "crc_ok"}
    # Every read reached the port after ready and after the last write.
    assert controller.reads and controller.reads[0][0] >= log["ready_cycle"], f"seed {seed}"
    assert controller.writes_after_read == 0, f"seed {seed}"
    assert controller.memory == dict(enumerate(values)), f"seed {seed}"
    assert int(controller.reads[0][1]) == 0


@pytest.mark.parametrize(("seed", "corrupt"), [(3, "payload"), (4, "header")])
def test_bad_image_flagged_and_nothing_served(seed, corrupt):
    rng = np.random.default_rng(seed)
    payload = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    _, log, controller = _run(seed, payload, [(0, 100)], corrupt=corrupt,
                              wait_cycles=300)
    assert log["error"] == 1, f"seed {seed}"
    wanted = {"error", "sdram_up", "loaded"} | ({"header_ok"} if corrupt == "payload" else set())
    assert _status(log["status"]) == wanted, f"seed {seed}: {log['status']:#04x}"
    assert log["early"] == 0 and controller.reads == [], f"seed {seed}: a read was served"
    if corrupt == "header":
        assert controller.memory == {}, f"seed {seed}: a refused image was written"


def test_litedram_instance_names_missing_ports():
    from pathlib import Path
    from types import SimpleNamespace

    from accel.hw.litedram_port import native_port_signature, wishbone_signature
    from accel.synth.sdram_weights import litedram_instance

    port = native_port_signature(25, 16).create()
    bus = wishbone_signature().create()
    names = ["clk", "init_done", "wb_ctrl_adr", "wb_ctrl_dat_w", "wb_ctrl_dat_r", "wb_ctrl_sel",
             "wb_ctrl_cyc", "wb_ctrl_stb", "wb_ctrl_we", "wb_ctrl_ack", "wb_ctrl_err",
             "wb_ctrl_cti", "wb_ctrl_bte"]
    names += [f"user_port_weights_{n}" for n in (
        "cmd_valid", "cmd_ready", "cmd_we", "cmd_addr", "wdata_valid", "wdata_ready",
        "wdata_we", "wdata_data", "rdata_valid", "rdata_ready", "rdata_data")]
    core = SimpleNamespace(ports=dict.fromkeys(names), verilog=Path("gateware/litedram_core.v"))
    instance = litedram_instance(core, port_name="weights", port=port, bus=bus,
                                 init_done=Signal())
    assert instance.type == "litedram_core"
    with pytest.raises(ValueError, match=r"^the LiteDRAM core has no port sdram_dq$"):
        litedram_instance(core, port_name="weights", port=port, bus=bus, init_done=Signal(),
                          pins={"io_sdram_dq": Signal(16)})
    with pytest.raises(ValueError, match=r"^the LiteDRAM core has no port "
                                         r"user_port_other_cmd_valid, "):
        litedram_instance(core, port_name="other", port=port, bus=bus, init_done=Signal())


def test_weight_memory_clock():
    from accel.synth.sdram_weights import SDRAM_CLOCK_PHASE_DEG, weight_memory_clock

    pll, config = weight_memory_clock(85)
    assert pll.primitive == "EHXPLLL" and pll.output_mhz == 85
    assert pll.phase_deg == SDRAM_CLOCK_PHASE_DEG == 90
    assert config.sys_clk_freq == 85e6 and config.module == "AS4C32M16"
    # 48 MHz is not reachable from 25 MHz: the core is configured for what the PLL makes.
    pll, config = weight_memory_clock(48)
    assert config.sys_clk_freq == pytest.approx(46.875e6) == pll.output_mhz * 1e6
