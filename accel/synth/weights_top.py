"""Board tops for plans that stream weights: the accelerator's ``weights<N>`` ports on the
board's weight memory, the accelerator held until the weights are loaded and checked.

::

    board top (SelfTestTop / UartTop) -> StreamedAccelerator.i      .o -> board top
                                          | weights<N> ports
                                          +-> WeightArbiter (2+ streams) -> mem
    weight memory: flash -> loader -> SDRAM (ULX3S) or SPRAM (iCEBreaker); mem_cmd/mem_rsp

:class:`StreamedAccelerator` is the accelerator with every streamed stage's port on one memory
port ``mem`` (through a :class:`~accel.hw.weight_arbiter.WeightArbiter` when several stages
stream, :mod:`accel.plan.weight_memory`) and an input that takes nothing until ``run``: the
board tops take it in place of the :class:`~accel.hw.accelerator.Accelerator` (the same
``i``/``o`` streams, ``plan``, ``input_bits``, ``output_bits``). :class:`WeightsTop` puts a
board top next to a weight memory (``mem_cmd``/``mem_rsp``/``ready``), drives ``run`` from
the memory's ``ready`` (the image's header and CRC-32 good, every word written), and so holds
the accelerator until then; after ``error`` it never runs.

The memories: :class:`~accel.synth.sdram_weights.ULX3SWeightMemory` (LiteDRAM on the ULX3S
SDRAM) and :class:`ICEBreakerWeightMemory` (the iCE40UP5K's SPRAM, loaded from the flash),
whose logic without pins is :class:`SPRAMWeights` (for ``amaranth.sim``).
"""

from __future__ import annotations

from amaranth import Cat, Elaboratable, Module
from amaranth.lib import io, stream, wiring
from amaranth.lib.wiring import In, Out

from ..hw.accelerator import Accelerator
from ..hw.burst_reader import burst_request_layout
from ..hw.flash_image_loader import FlashImageLoader
from ..hw.spi_flash import SPIFlashReader
from ..hw.spram import SPRAM_DEPTH, SPRAMBurstMemory
from ..hw.weight_arbiter import shared_weight_port
from ..hw.weight_stream import weight_port_signature
from ..plan.weight_memory import WeightMemoryPlan, weight_memory_plan
from .sdram_weights import flash_pins_signature

__all__ = ["ICEBreakerWeightMemory", "SPRAMWeights", "StreamedAccelerator", "WeightsTop"]


class StreamedAccelerator(wiring.Component):
    """An accelerator whose streamed stages read one weight memory (see module doc).

    Parameters
    ----------
    accelerator : Accelerator
        Built from a plan with at least one streamed stage.

    Members
    -------
    i, o
        The accelerator's streams. ``i`` takes nothing while ``run`` is low.
    mem : Out(weight_port_signature(...))
        The weight memory's port (the plan's :class:`~accel.plan.weight_memory.WeightMemoryPlan`
        geometry): every streamed stage's requests, in turn, and their words.
    run : In(1)
        The weights are in the memory: images may enter and requests go out (neither does
        before).
    """

    def __init__(self, *, accelerator: Accelerator):
        if not isinstance(accelerator, Accelerator):
            raise TypeError(f"accelerator must be an Accelerator, not {accelerator!r}")
        self.accelerator = accelerator
        self.plan = accelerator.plan
        self.memory_plan: WeightMemoryPlan = weight_memory_plan(self.plan)
        self.input_bits, self.output_bits = accelerator.input_bits, accelerator.output_bits
        mp = self.memory_plan
        members = accelerator.signature.members
        super().__init__({
            "i": In(members["i"].signature), "o": Out(members["o"].signature),
            "mem": Out(weight_port_signature(addr_width=mp.addr_bits, max_burst=mp.max_burst,
                                             word_width=mp.word_bits)),
            "run": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = acc = self.accelerator
        mp = self.memory_plan
        m.d.comb += [acc.i.valid.eq(self.i.valid & self.run),
                     self.i.ready.eq(acc.i.ready & self.run),
                     acc.i.payload.eq(self.i.payload)]
        wiring.connect(m, acc.o, wiring.flipped(self.o))
        port = shared_weight_port(m, acc, mp)
        # No request leaves before ``run`` either: the memory may not hold the weights yet.
        m.d.comb += [self.mem.mem_cmd.valid.eq(port.mem_cmd.valid & self.run),
                     self.mem.mem_cmd.payload.eq(port.mem_cmd.payload),
                     port.mem_cmd.ready.eq(self.mem.mem_cmd.ready & self.run)]
        wiring.connect(m, wiring.flipped(self.mem.mem_rsp), port.mem_rsp)
        return m


class WeightsTop(Elaboratable):
    """A board top (``top``, built around ``streamed``) and the weight ``memory``, wired.

    Parameters
    ----------
    top : Elaboratable
        The board top (:class:`~accel.synth.top.SelfTestTop` or
        :class:`~accel.synth.uart_top.UartTop`) whose accelerator is ``streamed``.
    streamed : StreamedAccelerator
    memory : wiring.Component
        ``mem_cmd`` in and ``mem_rsp`` out (a BurstReader's memory side, with ``streamed``'s
        geometry), ``ready`` out: :class:`~accel.synth.sdram_weights.ULX3SWeightMemory` or
        :class:`ICEBreakerWeightMemory`.
    """

    def __init__(self, *, top: Elaboratable, streamed: StreamedAccelerator, memory):
        if not isinstance(streamed, StreamedAccelerator):
            raise TypeError(f"streamed must be a StreamedAccelerator, not {streamed!r}")
        self.top, self.streamed, self.memory = top, streamed, memory

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = self.top
        m.submodules.memory = memory = self.memory
        mem = self.streamed.mem
        # The memory's address may be narrower than the port's (SPRAM holds only the image):
        # the plan's addresses all lie below the image's end.
        m.d.comb += [memory.mem_cmd.valid.eq(mem.mem_cmd.valid),
                     memory.mem_cmd.payload.addr.eq(mem.mem_cmd.payload.addr),
                     memory.mem_cmd.payload.length.eq(mem.mem_cmd.payload.length),
                     mem.mem_cmd.ready.eq(memory.mem_cmd.ready)]
        wiring.connect(m, memory.mem_rsp, mem.mem_rsp)
        m.d.comb += self.streamed.run.eq(memory.ready)
        return m


class SPRAMWeights(wiring.Component):
    """Flash -> SPRAM weight load at power-up, then burst reads: the iCEBreaker's weight
    memory without its pins.

    The loader (:class:`~accel.hw.flash_image_loader.FlashImageLoader`) reads the image at
    ``flash_offset`` through :class:`~accel.hw.spi_flash.SPIFlashReader` (Fast Read ``0x0B``,
    one data lane: no quad-enable bit needed), checks its header, writes its words into the
    SPRAM and checks its CRC-32. ``ready`` rises when all is good, ``error`` when the header or
    CRC is bad; requests are taken only while ``ready``.

    Parameters
    ----------
    plan : WeightMemoryPlan
        An SPRAM memory plan (``spram_blocks`` banks of 16 K 16-bit words).
    flash_offset : int
        The image's byte address in flash.
    flash_divisor : int
        The flash clock divisor (SCK = clock / (2 * divisor)).
    primitive : bool or None
        As for :class:`~accel.hw.spram.SPRAM` (None: ``SB_SPRAM256KA`` on iCE40 UltraPlus).
    expect : tuple of (int, int) or None
        ``(payload length, CRC-32)`` of the image built with the design: any other image is
        refused (:class:`~accel.hw.image_receiver.ImageReceiver`); ``None`` takes any.

    Members
    -------
    mem_cmd : In(stream.Signature(burst_request_layout(addr_width, max_burst)))
    mem_rsp : Out(stream.Signature(16))
    ready, error : Out(1)
    status : Out(8)
        Bits as :data:`~accel.synth.sdram_weights.STATUS_BITS` (``sdram_up`` means the memory
        is up: always, for SPRAM).
    flash : Out(flash_pins_signature())
    """

    def __init__(self, *, plan: WeightMemoryPlan, flash_offset: int, flash_divisor: int = 1,
                 primitive: bool | None = None, expect: tuple[int, int] | None = None):
        if not isinstance(plan, WeightMemoryPlan) or plan.memory.kind != "spram":
            raise ValueError(f"plan must be an SPRAM WeightMemoryPlan, not {plan!r}")
        self.plan = plan
        depth = plan.spram_blocks * SPRAM_DEPTH
        self._spram = SPRAMBurstMemory(width=plan.word_bits, depth=depth,
                                       max_burst=plan.max_burst, primitive=primitive)
        self.addr_width = self._spram.addr_width
        self._flash = SPIFlashReader(command=0x0B, divisor=flash_divisor, max_burst=64)
        self._loader = FlashImageLoader(flash_offset=flash_offset, word_width=plan.word_bits,
                                        dst_addr_width=self.addr_width,
                                        max_length=depth * plan.word_bits // 8, max_burst=64,
                                        expect=expect)
        super().__init__({
            "mem_cmd": In(stream.Signature(burst_request_layout(self.addr_width,
                                                                plan.max_burst))),
            "mem_rsp": Out(stream.Signature(plan.word_bits)),
            "ready": Out(1), "error": Out(1), "status": Out(8),
            "flash": Out(flash_pins_signature()),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.flash = flash = self._flash
        m.submodules.loader = loader = self._loader
        m.submodules.spram = spram = self._spram
        m.d.comb += [self.flash.sck.eq(flash.sck), self.flash.cs.eq(flash.cs),
                     self.flash.dq_o.eq(flash.dq_o), self.flash.dq_oe.eq(flash.dq_oe),
                     flash.dq_i.eq(self.flash.dq_i)]
        wiring.connect(m, loader.mem_cmd, flash.cmd)
        wiring.connect(m, flash.rsp, loader.mem_rsp)
        wiring.connect(m, loader.writes, spram.writes)
        ok = loader.header_ok & loader.crc_ok
        m.d.sync += [self.ready.eq(loader.done & ok), self.error.eq(loader.done & ~ok)]
        m.d.comb += self.status.eq(Cat(self.ready, self.error, 1, loader.done,
                                       loader.done & loader.header_ok,
                                       loader.done & loader.crc_ok))
        m.d.comb += [spram.cmd.valid.eq(self.mem_cmd.valid & self.ready),
                     spram.cmd.payload.eq(self.mem_cmd.payload),
                     self.mem_cmd.ready.eq(spram.cmd.ready & self.ready)]
        wiring.connect(m, spram.rsp, wiring.flipped(self.mem_rsp))
        return m


class ICEBreakerWeightMemory(wiring.Component):
    """:class:`SPRAMWeights` on the iCEBreaker's flash pins (``spi_flash_1x``).

    Parameters
    ----------
    plan, flash_offset, expect
        As :class:`SPRAMWeights`.
    leds : tuple of int
        Board LEDs showing ``ready`` and then ``error`` (as many as given; the iCEBreaker has
        two, which the UART top uses itself: then none).

    Members
    -------
    mem_cmd, mem_rsp, ready, error, status
        As :class:`SPRAMWeights`.
    """

    def __init__(self, *, plan: WeightMemoryPlan, flash_offset: int, leds: tuple = (),
                 expect: tuple[int, int] | None = None):
        if not isinstance(leds, tuple) or len(leds) > 2 or \
                not all(isinstance(k, int) for k in leds):
            raise ValueError(f"leds must be a tuple of at most two LED indices, not {leds!r}")
        self.leds = leds
        self.weights = SPRAMWeights(plan=plan, flash_offset=flash_offset, expect=expect)
        w = self.weights
        super().__init__({
            "mem_cmd": In(stream.Signature(burst_request_layout(w.addr_width, plan.max_burst))),
            "mem_rsp": Out(stream.Signature(plan.word_bits)),
            "ready": Out(1), "error": Out(1), "status": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.weights = weights = self.weights
        wiring.connect(m, wiring.flipped(self.mem_cmd), weights.mem_cmd)
        wiring.connect(m, weights.mem_rsp, wiring.flipped(self.mem_rsp))
        m.d.comb += [self.ready.eq(weights.ready), self.error.eq(weights.error),
                     self.status.eq(weights.status)]
        pins = platform.request("spi_flash_1x", 0, dir="-")
        flash = weights.flash
        # The resource inverts CS#, WP# and HOLD#: WP# and HOLD# stay high (not asserted).
        for name, value in (("cs", flash.cs), ("clk", flash.sck), ("copi", flash.dq_o[0]),
                            ("wp", ~flash.dq_o[2]), ("hold", ~flash.dq_o[3])):
            m.submodules[f"flash_{name}"] = buffer = io.Buffer("o", getattr(pins, name))
            m.d.comb += buffer.o.eq(value)
        m.submodules.flash_cipo = cipo = io.Buffer("i", pins.cipo)
        m.d.comb += flash.dq_i.eq(cipo.i << 1)
        for index, value in zip(self.leds, (weights.ready, weights.error), strict=False):
            m.submodules[f"led{index}"] = led = io.Buffer(
                "o", platform.request("led", index, dir="-"))
            m.d.comb += led.o.eq(value)
        return m
