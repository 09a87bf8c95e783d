# amaranth: UnusedElaboratable=no
"""The 8N1 UART blocks (``accel.synth.uart``) in ``amaranth.sim``: exact bit timing of the
transmitter, and a receiver that survives baud error, idle gaps, glitches, breaks and a full
output (overrun)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from accel.hw.layouts import pixel_layout
from accel.synth.uart import UartRx, UartTx

from .hw.streams import stream_put


def frame_bits(byte: int) -> list[int]:
    return [0, *((byte >> k) & 1 for k in range(8)), 1]


def bit_lengths(divisor: int, skew: float, bits: int = 10) -> list[int]:
    """Cycles of each bit of a host whose bit period is ``divisor * (1 + skew)`` cycles."""
    edges = [round(k * divisor * (1 + skew)) for k in range(bits + 1)]
    return [b - a for a, b in zip(edges, edges[1:], strict=False)]


def run(dut, *testbenches, background=()):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in background:
        sim.add_testbench(tb, background=True)
    for tb in testbenches:
        sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("divisor", [-1, 3, 4.0, True])
def test_divisor_is_validated(divisor):
    with pytest.raises(ValueError, match=rf"^divisor must be an integer of at least 4, not "
                                         rf"{divisor!r}$"):
        UartRx(divisor=divisor)
    with pytest.raises(ValueError, match=r"^divisor must be an integer of at least 4"):
        UartTx(divisor=divisor)


@pytest.mark.parametrize("divisor", [4, 5, 7])
def test_tx_bit_timing_back_to_back(divisor):
    """Every bit lasts exactly ``divisor`` cycles, bytes follow with no idle bit."""
    seed = divisor
    data = [int(b) for b in np.random.default_rng(seed).integers(0, 256, 6)]
    dut = UartTx(divisor=divisor)
    line: list[int] = []

    async def send(ctx):
        for byte in data:
            await stream_put(ctx, dut.i, byte)

    async def watch(ctx):
        for _ in range(10 * divisor * len(data) + 20):
            await ctx.tick()
            line.append(ctx.get(dut.tx))

    run(dut, watch, send)
    start = line.index(0)
    want = [bit for byte in data for bit in frame_bits(byte) for _ in range(divisor)]
    assert line[start:start + len(want)] == want, f"seed {seed}"
    assert set(line[:start] + line[start + len(want):]) == {1}, f"seed {seed}"


@pytest.mark.parametrize("divisor", [4, 5, 7, 16])
def test_rx_survives_skew_gaps_glitches_and_breaks(divisor):
    seed = 100 + divisor
    rng = np.random.default_rng(seed)
    data = [int(b) for b in rng.integers(0, 256, 40)]
    dut = UartRx(divisor=divisor)
    got: list[int] = []
    done = False

    async def host(ctx):
        nonlocal done
        await ctx.tick().repeat(3)
        for byte in data:
            event = rng.random()
            if event < 0.15:  # a low glitch shorter than half a bit
                ctx.set(dut.rx, 0)
                await ctx.tick().repeat(int(rng.integers(1, max(2, divisor // 2 - 1))))
                ctx.set(dut.rx, 1)
                await ctx.tick().repeat(divisor)
            elif event < 0.25:  # a break: a "byte" without stop bit, then idle
                ctx.set(dut.rx, 0)
                await ctx.tick().repeat(int(rng.integers(10, 30)) * divisor)
                ctx.set(dut.rx, 1)
                await ctx.tick().repeat(divisor)
            skew = float(rng.uniform(-0.025, 0.025))
            for bit, cycles in zip(frame_bits(byte), bit_lengths(divisor, skew), strict=True):
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(cycles)
            if rng.random() < 0.5:
                await ctx.tick().repeat(int(rng.integers(1, 3 * divisor)))
        await ctx.tick().repeat(2 * divisor)
        done = True

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        while not done:
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))

    run(dut, host, sink)
    assert got == data, f"seed {seed}"


def test_rx_overrun_drops_and_flags():
    divisor = 4
    dut = UartRx(divisor=divisor)
    state = {}

    async def host(ctx):
        await ctx.tick().repeat(3)
        for byte in (0x12, 0x34):
            for bit in frame_bits(byte):
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(divisor)
        await ctx.tick().repeat(2 * divisor)
        state["overrun"], state["valid"] = ctx.get(dut.overrun), ctx.get(dut.o.valid)
        state["payload"] = ctx.get(dut.o.payload)

    run(dut, host)  # o.ready is never raised
    assert state == {"overrun": 1, "valid": 1, "payload": 0x12}


def test_uart_top_rejects_what_the_link_cannot_carry():
    from types import SimpleNamespace

    from accel.quant.load import load_quantized_model
    from accel.synth.uart_top import UartTop

    from .paths import EXAMPLES

    def accelerator(qnet):
        # what UartTop reads of an Accelerator before elaboration (a real one would leave
        # never-elaborated blocks behind for Amaranth to warn about)
        from accel.plan.plan import make_plan

        bits = qnet.logits_layer.output.bits
        return SimpleNamespace(plan=make_plan(qnet, 1, 1), input_bits=qnet.input.bits,
                               output_bits=bits)

    digits = EXAMPLES / "digits"
    qnet = load_quantized_model(digits / "digits_small.tflite")
    with pytest.raises(ValueError, match=r"^image_values must be the model's input size 64, "
                                         r"not 65$"):
        UartTop(accelerator=accelerator(qnet), image_values=65, logits=10, divisor=4)
    with pytest.raises(ValueError, match=r"^logits must be the number of values dense outputs, "
                                         r"10, not 9$"):
        UartTop(accelerator=accelerator(qnet), image_values=64, logits=9, divisor=4)
    wide = load_quantized_model(digits / "digits_small.keras", scheme="pow2", act_bits=12,
                                calibration=digits / "digits_calib_x.npy")
    with pytest.raises(ValueError, match=r"^accelerator must take and give values of at most 8 "
                                         r"bits \(one byte each on the link\), not int12 in and "
                                         r"int12 out$"):
        UartTop(accelerator=accelerator(wide), image_values=64, logits=10, divisor=4)


class _SumAccelerator(wiring.Component):
    """A stand-in accelerator for the protocol test: per image of 4 int8 values, two int8
    logits (the wrapped sum and the XOR of the values)."""

    plan = SimpleNamespace(input_shape=(4,), output_shape=(2,), output_layer="stub")
    input_bits = output_bits = 8

    def __init__(self):
        super().__init__({"i": In(stream.Signature(pixel_layout(1, 8))),
                          "o": Out(stream.Signature(pixel_layout(1, 8)))})

    def elaborate(self, platform):
        m = Module()
        total, xor, count, out = Signal(8), Signal(8), Signal(2), Signal(2)
        busy = Signal()
        m.d.comb += self.i.ready.eq(~busy)
        with m.If(self.i.valid & self.i.ready):
            value = self.i.payload.data[0].as_unsigned()
            m.d.sync += [total.eq(total + value), xor.eq(xor ^ value), count.eq(count + 1)]
            with m.If(self.i.payload.last):
                m.d.sync += busy.eq(1)
        m.d.comb += [self.o.valid.eq(busy), self.o.payload.data[0].eq(Mux(out == 0, total, xor)),
                     self.o.payload.last.eq(out == 1)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out.eq(out + 1)
            with m.If(out == 1):
                m.d.sync += [busy.eq(0), out.eq(0), total.eq(0), xor.eq(0), count.eq(0)]
        return m


def test_uart_top_answers_status_requests_between_answers():
    """0xA7 -> 0x5C + the status byte, at the sync byte's place; a request sent right after
    an image is answered after that image's answer, not inside it."""
    from accel.host.link import SYNC_STATUS, SYNC_STATUS_OUT
    from accel.synth.uart_top import UartTop

    divisor = 4
    status = Signal(8, init=0x35)
    dut = UartTop(accelerator=_SumAccelerator(), image_values=4, logits=2, divisor=divisor,
                  status=status)
    image = [0x11, 0xF0, 0xA7, 0x5C]                 # sync-like bytes inside an image
    heard: list[int] = []

    async def send(ctx, data):
        for byte in data:
            for bit in frame_bits(byte):
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(divisor)

    async def host(ctx):
        await send(ctx, [SYNC_STATUS, 0xA5, *image, SYNC_STATUS])
        while len(heard) < 8:
            await ctx.tick()
        ctx.set(status, 0x0A)                        # answered with its value at the time
        await send(ctx, [0x00, SYNC_STATUS])

    async def listen(ctx):
        while len(heard) < 10:
            await ctx.tick().until(dut.tx == 0)
            await ctx.tick().repeat(divisor // 2)
            byte = 0
            for k in range(8):
                await ctx.tick().repeat(divisor)
                byte |= ctx.get(dut.tx) << k
            await ctx.tick().repeat(divisor)
            assert ctx.get(dut.tx) == 1, "no stop bit"
            heard.append(byte)

    run(dut, host, listen)
    total = sum(image) & 0xFF
    xor = image[0] ^ image[1] ^ image[2] ^ image[3]
    logits = np.array([total, xor], dtype=np.uint8).view(np.int8)
    assert heard == [SYNC_STATUS_OUT, 0x35,
                     0x5A, total, xor, int(logits.argmax()), SYNC_STATUS_OUT, 0x35,
                     SYNC_STATUS_OUT, 0x0A], [hex(b) for b in heard]


def test_uart_top_status_must_be_a_byte():
    from accel.synth.uart_top import UartTop

    with pytest.raises(ValueError, match=r"^status must be an 8-bit value, not "):
        UartTop(accelerator=_SumAccelerator(), image_values=4, logits=2, divisor=4,
                status=Signal(4))
