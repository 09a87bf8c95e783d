"""A self-checking top for :class:`accel.synth.sdram_weights.SDRAMWeights` on the ``--sim``
LiteDRAM core (its SDRAM model and DFI timing checker in place of the PHY): a flash ROM model
holding a weight image sits on the flash pins; SDRAMWeights brings the core up, copies the
image into the SDRAM through the writer and checks its CRC; then a BurstReader reads it back
through ``mem_cmd``/``mem_rsp``, once without output stalls (for the read rate) and once in
part with LFSR stalls, compared word by word with the payload and by CRC-32 with the CRC of
what was written.

Used by ``tests/synth/test_sdram_weights_sim.py`` (Verilator through cocotb,
``sim/litedram/bench.py``).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.burst_reader import BurstReader
from accel.hw.crc32 import CRC32
from accel.synth.sdram_weights import SDRAMWeights, flash_pins_signature, litedram_instance

__all__ = ["SPIFlashROM", "WeightsSimTop"]


class SPIFlashROM(wiring.Component):
    """A synthesizable model of a NOR flash that answers Fast Read (``0x0B``: command, 24-bit
    address, 8 dummy clocks, then data MSB first on IO1) from ``image`` (wrapping), for
    Verilator. It watches SCK in the system clock domain (the reader makes SCK from it), so
    it presents each data bit combinationally from the count of SCK rising edges, as a flash
    does after the falling edge. ``errors`` counts transactions with another command.

    Members: ``pins`` (In(flash_pins_signature())), ``errors`` (Out(8)).
    """

    def __init__(self, image: bytes):
        self.image = bytes(image)
        super().__init__({"pins": In(flash_pins_signature()), "errors": Out(8)})

    def elaborate(self, platform):
        m = Module()
        depth = len(self.image)
        m.submodules.rom = rom = memory.Memory(shape=8, depth=depth, init=list(self.image))
        rd = rom.read_port(domain="comb")
        pins = self.pins
        prev = Signal()
        m.d.sync += prev.eq(pins.sck)
        rises = Signal(32)
        word = Signal(32)                  # command and address as they come in
        rising = pins.sck & ~prev
        with m.If(~pins.cs):
            m.d.sync += rises.eq(0)
        with m.Elif(rising):
            m.d.sync += rises.eq(rises + 1)
            with m.If(rises < 32):
                m.d.sync += word.eq(Cat(pins.dq_o[0], word[:31]))
            with m.If((rises == 32) & (word[24:] != 0x0B)):
                m.d.sync += self.errors.eq(self.errors + 1)
        index = Signal(32)
        m.d.comb += index.eq(rises - 40)
        byte_addr = (word[:24] + (index >> 3))
        m.d.comb += rd.addr.eq(Mux(byte_addr >= depth, byte_addr - depth, byte_addr))
        bit = Signal()
        m.d.comb += bit.eq(rd.data.bit_select(~index[:3], 1))   # MSB first: bit 7 - index
        m.d.comb += pins.dq_i.eq(Cat(0, bit, 0, 0))
        return m


class WeightsSimTop(wiring.Component):
    """Members: ``done``; ``ready``/``error`` (SDRAMWeights'); ``errors`` (read words that
    differ, or a misplaced ``last``), ``checked`` (words compared), ``crc_match`` (the CRC-32
    of the first frame read equals that of the words written), ``flash_errors``;
    ``load_cycles`` (reset to ``ready``), ``read_cycles`` (the unstalled full read, request to
    last word)."""

    def __init__(self, core, *, flash: bytes, flash_offset: int, payload: bytes,
                 port_name: str = "weights", max_burst: int = 64, fifo_depth: int = 256,
                 partial: tuple = (0, 1)):
        self.core, self.flash, self.flash_offset = core, flash, flash_offset
        self.words = [int.from_bytes(payload[k:k + 2], "little")
                      for k in range(0, len(payload), 2)]
        self.port_name, self.max_burst, self.fifo_depth = port_name, max_burst, fifo_depth
        self.partial = partial
        super().__init__({
            "done": Out(1), "ready": Out(1), "error": Out(1), "errors": Out(16),
            "checked": Out(32), "crc_match": Out(1), "flash_errors": Out(8),
            "load_cycles": Out(32), "read_cycles": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        core = self.core
        addr_width = core.ports[f"user_port_{self.port_name}_cmd_addr"][1]
        m.submodules.weights = weights = SDRAMWeights(
            steps=core.init_sequence, csr=core.csr, clk_freq=1e8, power_up_us=0,
            flash_offset=self.flash_offset, max_length=2 * len(self.words),
            addr_width=addr_width, max_burst=self.max_burst)
        m.submodules.core = litedram_instance(core, port_name=self.port_name,
                                              port=weights.port, bus=weights.bus,
                                              init_done=weights.sdram_init_done)
        m.submodules.flash = flash = SPIFlashROM(self.flash)
        wiring.connect(m, weights.flash, flash.pins)
        m.d.comb += [self.flash_errors.eq(flash.errors), self.ready.eq(weights.ready),
                     self.error.eq(weights.error)]

        m.submodules.reader = reader = BurstReader(
            word_width=16, addr_width=addr_width, count_width=24, max_burst=self.max_burst,
            fifo_depth=self.fifo_depth)
        wiring.connect(m, reader.mem_cmd, weights.mem_cmd)
        wiring.connect(m, weights.mem_rsp, reader.mem_rsp)

        m.submodules.expected = expected = memory.Memory(shape=16, depth=len(self.words),
                                                         init=self.words)
        want = expected.read_port(domain="comb")
        m.submodules.crc = crc = CRC32(data_width=16)

        lfsr = Signal(16, init=0xACE1)
        m.d.sync += lfsr.eq(Mux(lfsr[0], (lfsr >> 1) ^ 0xB400, lfsr >> 1))
        stalls = Signal()
        m.d.comb += reader.o.ready.eq(~stalls | (lfsr[0:2] != 0))

        expect_addr = Signal(addr_width)
        expect_left = Signal(24)
        first = Signal(init=1)
        timer = Signal(32)
        m.d.sync += timer.eq(timer + 1)
        m.d.comb += want.addr.eq(expect_addr)
        take = reader.o.valid & reader.o.ready
        m.d.comb += [crc.i.valid.eq(take & first), crc.i.payload.eq(reader.o.payload.data)]
        with m.If(take):
            word = reader.o.payload
            bad = (word.data != want.data) | (word.last != (expect_left == 1))
            m.d.sync += [self.checked.eq(self.checked + 1), expect_addr.eq(expect_addr + 1),
                         expect_left.eq(expect_left - 1)]
            with m.If(bad):
                m.d.sync += self.errors.eq(self.errors + 1)

        words = len(self.words)
        frames = [(0, words), self.partial]
        with m.FSM():
            with m.State("LOAD"):
                with m.If(weights.ready | weights.error):
                    m.d.sync += self.load_cycles.eq(timer)
                with m.If(weights.ready):
                    m.next = "FRAME0"
                with m.Elif(weights.error):
                    m.next = "DONE"
            for index, (base, count) in enumerate(frames):
                with m.State(f"FRAME{index}"):
                    m.d.comb += [reader.frames.valid.eq(1),
                                 reader.frames.payload.base.eq(base),
                                 reader.frames.payload.count.eq(count)]
                    with m.If(reader.frames.ready):
                        m.d.sync += [expect_addr.eq(base), expect_left.eq(count),
                                     stalls.eq(index > 0), timer.eq(0)]
                        m.next = f"WAIT{index}"
                with m.State(f"WAIT{index}"):
                    with m.If(take & reader.o.payload.last):
                        if index == 0:
                            m.d.sync += [self.read_cycles.eq(timer + 1), first.eq(0)]
                        m.next = f"FRAME{index + 1}" if index + 1 < len(frames) else "CRC"
            with m.State("CRC"):
                m.d.sync += self.crc_match.eq(crc.crc == weights.crc)
                m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
        return m
