"""The ULX3S's external weight memory: at power-up the weight image
(:mod:`accel.synth.weight_image`) is copied from the configuration flash into the SDRAM and
checked, then the SDRAM serves reads on exactly the memory side of a
:class:`~accel.hw.burst_reader.BurstReader` (the weight port of a streamed-weight stage).

::

    flash -> SPIFlashReader -> FlashImageLoader -> LiteDRAMWriter --+ (until ready)
                                                                    +-> native port -> core
    mem_cmd -> LiteDRAMReader ------------------------------------+ (from ready)
    mem_rsp <-- rdata
    SDRAMInit -> the core's CSR port (init sequence, then init_done)

:class:`SDRAMWeights` is the logic, with the core's native port, its CSR bus and the flash pins
as ports (so ``amaranth.sim`` runs it against models); :class:`ULX3SWeightMemory` adds the
generated LiteDRAM core (:mod:`accel.synth.litedram`) as an ``Instance`` on the board's SDRAM
pins, the flash pins (the flash clock through ``USRMCLK``) and the SDRAM clock pin, an
``ODDRX1F`` copy of a phase-shifted PLL output (:func:`accel.synth.pll.ecp5_phase_output`,
domain ``sdram_clock_domain``, which the board top's :class:`~accel.synth.pll.PllClock`
drives).

Order of events: SDRAMInit brings the SDRAM up while the loader already reads the image
header from flash; payload words are written only once the SDRAM is up (the loader waits on
its write stream, which pauses the flash clock). ``ready`` rises when the header and CRC-32
are good and every write has been handed to the controller; ``error`` when either is bad.
The writer owns the native port until then, the reader from then on: no read is taken before
``ready`` (``mem_cmd.ready`` is low), and none ever after ``error``.

In a board top (the ULX3S's ``sync`` and ``sdram`` domains from one PLL)::

    pll, config = weight_memory_clock(clock_mhz)
    memory = ULX3SWeightMemory(core=generate_core(config), config=config, max_length=...)
    # a stage's BurstReader: wiring.connect(m, reader.mem_cmd, memory.mem_cmd) and
    # wiring.connect(m, memory.mem_rsp, reader.mem_rsp); UartTop(..., status=memory.status)
    top = PllClock(pll=pll, top=board_top, phase_domain="sdram")
"""

from __future__ import annotations

from amaranth import Cat, ClockSignal, Const, Instance, Module, ResetSignal, Signal
from amaranth.lib import io, stream, wiring
from amaranth.lib.wiring import In, Out

from ..hw.burst_reader import burst_request_layout
from ..hw.crc32 import CRC32
from ..hw.flash_image_loader import FlashImageLoader
from ..hw.litedram_port import LiteDRAMReader, SDRAMInit, native_port_signature, wishbone_signature
from ..hw.litedram_writer import LiteDRAMWriter
from ..hw.spi_flash import SPIFlashReader
from .boards import get_board
from .litedram import SDRAMCoreConfig
from .pll import Pll, ecp5_phase_output, ecp5_pll
from .weight_image import flash_offset as board_flash_offset

__all__ = ["SDRAM_CLOCK_PHASE_DEG", "STATUS_BITS", "SDRAMWeights", "ULX3SWeightMemory",
           "flash_pins_signature", "litedram_instance", "weight_memory_clock"]

WORD_WIDTH = 16          # the ULX3S SDRAM's data bus; the image's word width must match

#: How far the SDRAM clock pin lags the system clock, in degrees: litex-boards' ULX3S target
#: uses 90 with the full-rate GENSDRPHY (commands and data leave on the system clock's rising
#: edge through the I/O registers; the SDRAM samples them a quarter period later).
SDRAM_CLOCK_PHASE_DEG = 90

#: Bits of the ``status`` byte (bit number -> meaning), as the UART status answer sends it.
STATUS_BITS = {0: "ready", 1: "error", 2: "sdram_up", 3: "loaded", 4: "header_ok", 5: "crc_ok"}


def weight_memory_clock(clock_mhz: float, *, board: str = "ulx3s-85f",
                        module: str = "AS4C32M16") -> tuple[Pll, SDRAMCoreConfig]:
    """The board top's clocking for the weight memory at ``clock_mhz``: the EHXPLLL setting
    (the system clock on CLKOP, the SDRAM clock on CLKOS at :data:`SDRAM_CLOCK_PHASE_DEG`, for
    :class:`~accel.synth.pll.PllClock` with a ``phase_domain``) and the LiteDRAM core config
    at the clock the PLL really makes (the controller's timings are counted in its cycles)."""
    oscillator = get_board(board).clock_mhz
    pll = ecp5_phase_output(ecp5_pll(oscillator, clock_mhz), SDRAM_CLOCK_PHASE_DEG)
    config = SDRAMCoreConfig(module=module, sys_clk_freq=pll.output_mhz * 1e6)
    return pll, config


def flash_pins_signature() -> wiring.Signature:
    """The flash pins of :class:`~accel.hw.spi_flash.SPIFlashReader`, from the reader's side."""
    return wiring.Signature({"sck": Out(1), "cs": Out(1), "dq_o": Out(4), "dq_oe": Out(4),
                             "dq_i": In(4)})


class SDRAMWeights(wiring.Component):
    """Flash -> SDRAM weight load at power-up, then burst reads (see module doc).

    Parameters
    ----------
    steps, csr
        The core's init sequence and CSR map (``GeneratedCore.init_sequence`` / ``.csr``).
    clk_freq : float
        The system clock in Hz (the core's ``sys_clk_freq``).
    flash_offset : int
        The image's byte address in flash (:func:`accel.synth.weight_image.flash_offset`).
    max_length : int
        The largest payload in bytes that is accepted.
    addr_width : int
        Word address bits of the native port (25: 32 MB of 16-bit words).
    max_burst : int
        The longest read request on ``mem_cmd``, in words.
    flash_burst : int
        The longest flash read, in bytes.
    flash_command, flash_divisor
        The flash read command and clock divisor (:class:`~accel.hw.spi_flash.SPIFlashReader`;
        the ULX3S wires one data lane: ``0x0B`` or ``0x03``).
    power_up_us : float
        The SDRAM power-up wait (:class:`~accel.hw.litedram_port.SDRAMInit`).
    expect : tuple of (int, int) or None
        ``(payload length, CRC-32)`` of the image built with the design: any other image is
        refused (:class:`~accel.hw.image_receiver.ImageReceiver`); ``None`` takes any.

    Members
    -------
    mem_cmd : In(stream.Signature(burst_request_layout(addr_width, max_burst)))
    mem_rsp : Out(stream.Signature(16))
        A BurstReader's memory side: ``length`` words from word ``addr``, in order. Requests
        are taken only while ``ready``; the consumer must take every word it asked for (a
        BurstReader does), or the controller stalls.
    ready : Out(1)
        The image is in SDRAM, header and CRC-32 good.
    error : Out(1)
        The image was refused (bad header) or its CRC-32 did not match: nothing is served.
    status : Out(8)
        The state as a byte, bits as :data:`STATUS_BITS`.
    length : Out(32)
        The payload length in bytes (from the header; valid from ``ready``).
    crc : Out(32)
        CRC-32 of the words written to SDRAM (the header's, once ``ready``): a consumer that
        reads the image back can check it against this.
    flash : Out(flash_pins_signature())
    port : Out(native_port_signature(addr_width, 16))
        The LiteDRAM core's native user port.
    bus : Out(wishbone_signature())
        The core's CSR port.
    sdram_init_done : In(1)
        The core's ``init_done`` output.
    """

    def __init__(self, *, steps, csr: dict, clk_freq: float, flash_offset: int,
                 max_length: int, addr_width: int = 25, max_burst: int = 64,
                 flash_burst: int = 64, flash_command: int = 0x0B, flash_divisor: int = 1,
                 power_up_us: float = 200.0, expect: tuple[int, int] | None = None):
        self._init = SDRAMInit(steps=steps, csr=csr, clk_freq=clk_freq,
                               power_up_us=power_up_us)
        self._flash = SPIFlashReader(command=flash_command, divisor=flash_divisor,
                                     max_burst=flash_burst)
        self._loader = FlashImageLoader(flash_offset=flash_offset, word_width=WORD_WIDTH,
                                        dst_addr_width=addr_width, max_length=max_length,
                                        max_burst=flash_burst, expect=expect)
        self._writer = LiteDRAMWriter(addr_width=addr_width, data_width=WORD_WIDTH)
        self._reader = LiteDRAMReader(addr_width=addr_width, data_width=WORD_WIDTH,
                                      max_burst=max_burst)
        self.addr_width, self.max_burst, self.max_length = addr_width, max_burst, max_length
        self.flash_offset = flash_offset
        super().__init__({
            "mem_cmd": In(stream.Signature(burst_request_layout(addr_width, max_burst))),
            "mem_rsp": Out(stream.Signature(WORD_WIDTH)),
            "ready": Out(1), "error": Out(1), "status": Out(8), "length": Out(32),
            "crc": Out(32),
            "flash": Out(flash_pins_signature()),
            "port": Out(native_port_signature(addr_width, WORD_WIDTH)),
            "bus": Out(wishbone_signature()),
            "sdram_init_done": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.init = init = self._init
        m.submodules.flash = flash = self._flash
        m.submodules.loader = loader = self._loader
        m.submodules.writer = writer = self._writer
        m.submodules.reader = reader = self._reader
        m.submodules.crc = crc = CRC32(data_width=WORD_WIDTH)

        wiring.connect(m, init.bus, wiring.flipped(self.bus))
        m.d.comb += [self.flash.sck.eq(flash.sck), self.flash.cs.eq(flash.cs),
                     self.flash.dq_o.eq(flash.dq_o), self.flash.dq_oe.eq(flash.dq_oe),
                     flash.dq_i.eq(self.flash.dq_i)]
        wiring.connect(m, loader.mem_cmd, flash.cmd)
        wiring.connect(m, flash.rsp, loader.mem_rsp)

        # Payload words reach the writer only once the SDRAM is up.
        sdram_up = Signal()
        m.d.comb += sdram_up.eq(init.done & self.sdram_init_done)
        m.d.comb += [
            writer.writes.valid.eq(loader.writes.valid & sdram_up),
            writer.writes.payload.eq(loader.writes.payload),
            loader.writes.ready.eq(writer.writes.ready & sdram_up),
            crc.i.valid.eq(writer.writes.valid & writer.writes.ready),
            crc.i.payload.eq(loader.writes.payload.data),
            self.crc.eq(crc.crc),
            self.length.eq(loader.length),
        ]

        good = loader.done & loader.header_ok & loader.crc_ok
        # ``idle`` once every taken write is with the controller; registered, so the port
        # changes hands a cycle after the last write command went.
        m.d.sync += [self.ready.eq(good & writer.idle & sdram_up),
                     self.error.eq(loader.done & ~(loader.header_ok & loader.crc_ok))]
        m.d.comb += self.status.eq(Cat(self.ready, self.error, sdram_up, loader.done,
                                       loader.done & loader.header_ok,
                                       loader.done & loader.crc_ok))

        # Reads: taken only while ready.
        m.d.comb += [reader.cmd.valid.eq(self.mem_cmd.valid & self.ready),
                     reader.cmd.payload.eq(self.mem_cmd.payload),
                     self.mem_cmd.ready.eq(reader.cmd.ready & self.ready)]
        wiring.connect(m, reader.rsp, wiring.flipped(self.mem_rsp))

        # The native port: the writer's until ready, the reader's from then on. Neither has a
        # command or data word waiting at the switch (the writer is idle, the reader has not
        # been given a request), so no handshake is cut.
        port = self.port
        with m.If(self.ready):
            m.d.comb += [port.cmd.valid.eq(reader.port.cmd.valid),
                         port.cmd.payload.eq(reader.port.cmd.payload),
                         reader.port.cmd.ready.eq(port.cmd.ready),
                         port.wdata.valid.eq(reader.port.wdata.valid),
                         port.wdata.payload.eq(reader.port.wdata.payload),
                         reader.port.wdata.ready.eq(port.wdata.ready)]
        with m.Else():
            m.d.comb += [port.cmd.valid.eq(writer.port.cmd.valid),
                         port.cmd.payload.eq(writer.port.cmd.payload),
                         writer.port.cmd.ready.eq(port.cmd.ready),
                         port.wdata.valid.eq(writer.port.wdata.valid),
                         port.wdata.payload.eq(writer.port.wdata.payload),
                         writer.port.wdata.ready.eq(port.wdata.ready)]
        # Read data only ever answers the reader's commands.
        m.d.comb += [reader.port.rdata.valid.eq(port.rdata.valid),
                     reader.port.rdata.payload.eq(port.rdata.payload),
                     port.rdata.ready.eq(reader.port.rdata.ready)]
        return m


def litedram_instance(core, *, port_name: str, port, bus, init_done, init_error=None,
                      pins: dict | None = None) -> Instance:
    """The generated core (``core``, a :class:`~accel.synth.litedram.GeneratedCore`) as an
    ``Instance`` on the ``sync`` clock and reset: ``port`` (a native port, user side) on its
    user port ``port_name``, ``bus`` on its CSR port, and ``pins`` (Verilog port name ->
    value: the SDRAM pins of the board core, nothing for the ``--sim`` core)."""
    p = f"user_port_{port_name}"
    ports = {
        "i_clk": ClockSignal(), "o_init_done": init_done,
        f"i_{p}_cmd_valid": port.cmd.valid, f"o_{p}_cmd_ready": port.cmd.ready,
        f"i_{p}_cmd_we": port.cmd.payload.we, f"i_{p}_cmd_addr": port.cmd.payload.addr,
        f"i_{p}_wdata_valid": port.wdata.valid, f"o_{p}_wdata_ready": port.wdata.ready,
        f"i_{p}_wdata_we": port.wdata.payload.we, f"i_{p}_wdata_data": port.wdata.payload.data,
        f"o_{p}_rdata_valid": port.rdata.valid, f"i_{p}_rdata_ready": port.rdata.ready,
        f"o_{p}_rdata_data": port.rdata.payload,
        "i_wb_ctrl_adr": bus.adr, "i_wb_ctrl_dat_w": bus.dat_w, "o_wb_ctrl_dat_r": bus.dat_r,
        "i_wb_ctrl_sel": bus.sel, "i_wb_ctrl_cyc": bus.cyc, "i_wb_ctrl_stb": bus.stb,
        "i_wb_ctrl_we": bus.we, "o_wb_ctrl_ack": bus.ack, "o_wb_ctrl_err": bus.err,
        "i_wb_ctrl_cti": bus.cti, "i_wb_ctrl_bte": bus.bte,
    }
    if init_error is not None:
        ports["o_init_error"] = init_error
    if "rst" in core.ports:
        ports["i_rst"] = ResetSignal()
    if "sim_trace" in core.ports:
        ports["i_sim_trace"] = Const(0)
    ports.update(pins or {})
    missing = [name.split("_", 1)[1] for name in ports
               if name.split("_", 1)[1] not in core.ports]
    if missing:
        raise ValueError(f"the LiteDRAM core has no port {', '.join(missing)}")
    return Instance(core.verilog.stem, **ports)


class ULX3SWeightMemory(wiring.Component):
    """:class:`SDRAMWeights` on the ULX3S-85F: the LiteDRAM core on the SDRAM pins, the
    configuration flash, and the SDRAM clock pin (see module doc).

    Parameters
    ----------
    core : GeneratedCore
        The board core (``generate_core(config)``, not ``sim``).
    config : SDRAMCoreConfig
        Its config; ``sys_clk_freq`` must be the ``sync`` clock the PLL makes.
    max_length : int
        The largest payload in bytes.
    max_burst : int
        The longest read request, in words.
    sdram_clock_domain : str
        The clock domain of the SDRAM clock pin: the ``sync`` clock shifted by the phase the
        board's timing needs (:class:`~accel.synth.pll.PllClock` ``phase_domain``).
    board : str
        The accel board name, for the image's flash offset.
    leds : tuple of two int, or None
        The board LEDs that show ``ready`` and ``error`` (the UART top uses LEDs 0 and 1);
        None leaves the LEDs to the top.
    expect : tuple of (int, int) or None
        ``(payload length, CRC-32)`` of the image built with the design: any other image is
        refused (:class:`~accel.hw.image_receiver.ImageReceiver`); ``None`` takes any.

    Members
    -------
    mem_cmd, mem_rsp, ready, error, status, length, crc
        As :class:`SDRAMWeights`.
    """

    def __init__(self, *, core, config, max_length: int, max_burst: int = 64,
                 sdram_clock_domain: str = "sdram", board: str = "ulx3s-85f",
                 leds: tuple | None = (2, 3), expect: tuple[int, int] | None = None):
        if leds is not None and (len(leds) != 2 or not all(isinstance(k, int) for k in leds)):
            raise ValueError(f"leds must be two LED indices or None, not {leds!r}")
        self.leds = leds
        self.core, self.config, self.sdram_clock_domain = core, config, sdram_clock_domain
        addr_width = core.ports[f"user_port_{config.port_name}_cmd_addr"][1]
        data_width = core.ports[f"user_port_{config.port_name}_wdata_data"][1]
        if data_width != WORD_WIDTH:
            raise ValueError(f"config.port_data_width must be {WORD_WIDTH}, not {data_width}")
        self.weights = SDRAMWeights(steps=core.init_sequence, csr=core.csr,
                                    clk_freq=config.sys_clk_freq,
                                    flash_offset=board_flash_offset(board),
                                    max_length=max_length, addr_width=addr_width,
                                    max_burst=max_burst, expect=expect)
        super().__init__({
            "mem_cmd": In(stream.Signature(burst_request_layout(addr_width, max_burst))),
            "mem_rsp": Out(stream.Signature(WORD_WIDTH)),
            "ready": Out(1), "error": Out(1), "status": Out(8), "length": Out(32),
            "crc": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.weights = weights = self.weights
        wiring.connect(m, wiring.flipped(self.mem_cmd), weights.mem_cmd)
        wiring.connect(m, weights.mem_rsp, wiring.flipped(self.mem_rsp))
        m.d.comb += [self.ready.eq(weights.ready), self.error.eq(weights.error),
                     self.status.eq(weights.status), self.length.eq(weights.length),
                     self.crc.eq(weights.crc)]

        sdram = platform.request("sdram", 0, dir="-")
        pins = {"o_sdram_a": sdram.a.io, "o_sdram_ba": sdram.ba.io,
                "o_sdram_cas_n": sdram.cas.io, "o_sdram_ras_n": sdram.ras.io,
                "o_sdram_we_n": sdram.we.io, "o_sdram_cs_n": sdram.cs.io,
                "o_sdram_cke": sdram.clk_en.io, "o_sdram_dm": sdram.dqm.io,
                "io_sdram_dq": sdram.dq.io}
        m.submodules.core = litedram_instance(self.core, port_name=self.config.port_name,
                                              port=weights.port, bus=weights.bus,
                                              init_done=weights.sdram_init_done, pins=pins)
        platform.add_file(self.core.verilog.name, self.core.verilog.read_text())
        # The pin copies the phase-shifted clock through an output DDR register, as the data
        # pins leave through theirs, so both see the same I/O delay.
        m.submodules.sdram_clk = Instance(
            "ODDRX1F", i_SCLK=ClockSignal(self.sdram_clock_domain), i_RST=Const(0),
            i_D0=Const(1), i_D1=Const(0), o_Q=sdram.clk.io)

        # The flash: its clock goes through USRMCLK (SPIFlashReader does that on ECP5); the
        # resource inverts CS#, WP# and HOLD#.
        pins = platform.request("spi_flash", 0, dir="-")
        flash = weights.flash
        for name, value in (("cs", flash.cs), ("copi", flash.dq_o[0]),
                            ("wp", ~flash.dq_o[2]), ("hold", ~flash.dq_o[3])):
            m.submodules[f"flash_{name}"] = buffer = io.Buffer("o", getattr(pins, name))
            m.d.comb += buffer.o.eq(value)
        m.submodules.flash_cipo = cipo = io.Buffer("i", pins.cipo)
        m.d.comb += flash.dq_i.eq(cipo.i << 1)

        if self.leds is not None:
            for index, value in zip(self.leds, (weights.ready, weights.error), strict=True):
                m.submodules[f"led{index}"] = led = io.Buffer(
                    "o", platform.request("led", index, dir="-"))
                m.d.comb += led.o.eq(value)
        return m
