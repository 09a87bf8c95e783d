# amaranth: UnusedElaboratable=no
"""LiteDRAMWriter against a behavioural native port (random command and data stalls), alone and
behind FlashImageLoader (flash model -> loader -> writer -> "SDRAM")."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from accel.hw.flash_image_loader import FlashImageLoader
from accel.hw.litedram_writer import LiteDRAMWriter
from accel.hw.spi_flash import SPIFlashReader
from accel.synth.weight_image import pack_weight_image

from .spi_flash_model import SPIFlashModel
from .streams import producer, run_simulation


def native_port_model(port, memory: dict, count: int, rng, *, stall=0.4):
    """Plays the controller: takes write commands with random stalls, and their data words (in
    order) only for commands it has taken, as LiteDRAM does, also with random stalls; stores
    them in ``memory`` until ``count`` words are written."""

    async def testbench(ctx):
        commands = []
        written = 0
        while written < count:
            ctx.set(port.cmd.ready, int(rng.random() >= stall))
            ctx.set(port.wdata.ready, int(bool(commands) and rng.random() >= stall))
            # A bare tick gives the clock and reset values first, then the samples taken
            # just before the edge (the handshake as the controller sees it).
            _, _, cmd_valid, cmd_ready, cmd_payload, w_valid, w_ready, w_payload = \
                await ctx.tick().sample(port.cmd.valid, port.cmd.ready, port.cmd.payload,
                                        port.wdata.valid, port.wdata.ready,
                                        port.wdata.payload)
            if w_valid and w_ready:
                assert w_payload.we == 0b11, "not every byte enabled"
                memory[commands.pop(0)] = w_payload.data
                written += 1
            if cmd_valid and cmd_ready:
                assert cmd_payload.we == 1, "a read command from the writer"
                commands.append(cmd_payload.addr)
        ctx.set(port.cmd.ready, 0)
        ctx.set(port.wdata.ready, 0)

    return [testbench]


def test_writes_under_stalls():
    seed = 21
    rng = np.random.default_rng(seed)
    writes = [(int(a), int(d)) for a, d in zip(rng.permutation(1000)[:60],
                                                rng.integers(0, 1 << 16, 60), strict=True)]
    dut = LiteDRAMWriter(addr_width=10, data_width=16)
    memory = {}
    run_simulation(dut, [producer(dut.writes, [{"addr": a, "data": d} for a, d in writes],
                                  rng=rng, gap=0.3),
                         *native_port_model(dut.port, memory, len(writes), rng)],
                   max_cycles=20_000)
    assert memory == dict(writes), f"seed {seed}"


class _SDRAMBoard(wiring.Component):
    def __init__(self, offset):
        self.flash = SPIFlashReader(command=0x0B, max_burst=16, usrmclk=False)
        self.loader = FlashImageLoader(flash_offset=offset, word_width=16, dst_addr_width=25,
                                       max_length=4096, max_burst=16)
        self.writer = LiteDRAMWriter(addr_width=25, data_width=16)
        super().__init__({"port": Out(self.writer.port.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.flash, m.submodules.loader = self.flash, self.loader
        m.submodules.writer = self.writer
        wiring.connect(m, self.loader.mem_cmd, self.flash.cmd)
        wiring.connect(m, self.flash.rsp, self.loader.mem_rsp)
        wiring.connect(m, self.loader.writes, self.writer.writes)
        wiring.connect(m, self.writer.port, wiring.flipped(self.port))
        return m


def test_flash_to_sdram():
    seed = 22
    rng = np.random.default_rng(seed)
    offset = 0x800
    payload = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    flash = bytearray(rng.integers(0, 256, offset + 512, dtype=np.uint8).tobytes())
    image = pack_weight_image(payload, word_width=16, flash_offset=offset)
    flash[offset:offset + len(image)] = image
    dut = _SDRAMBoard(offset)
    model = SPIFlashModel(bytes(flash), command=0x0B)
    memory = {}
    status = {}

    async def watch(ctx):
        await ctx.tick().until(dut.loader.done)
        status.update(header_ok=ctx.get(dut.loader.header_ok), crc_ok=ctx.get(dut.loader.crc_ok))
        model.done = True

    run_simulation(dut, [watch, model.testbench(dut.flash),
                         *native_port_model(dut.port, memory, len(payload) // 2, rng)],
                   max_cycles=100_000)
    expected = {k // 2: int.from_bytes(payload[k:k + 2], "little")
                for k in range(0, len(payload), 2)}
    assert status == {"header_ok": 1, "crc_ok": 1}, f"seed {seed}"
    assert memory == expected, f"seed {seed}"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"data_width": 12}, r"^data_width must be a multiple of 8, not 12$"),
    ({"data_depth": 0}, r"^data_depth must be a positive integer, not 0$"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LiteDRAMWriter(**kwargs)
