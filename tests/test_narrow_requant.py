# amaranth: UnusedElaboratable=no
"""The narrow requantizer lane: its integer form equals the numerics module's requantization
on every accumulator (exhaustively), real layers get it, and it takes no hardware multiplier."""

from __future__ import annotations

import numpy as np
import pytest

from accel.hw.requantizer import Requantizer
from accel.plan.plan import make_plan
from accel.plan.requant import narrow_form
from accel.quant import numerics
from accel.quant.load import load_quantized_model
from accel.quant.requant_mode import RequantMode

from .hw.test_requantizer import run
from .paths import EXAMPLES


def _exhaustive(form, reference, bias, acc_bits, act_min, act_max):
    acc = np.arange(-(1 << (acc_bits - 1)), 1 << (acc_bits - 1), dtype=np.int64)
    for ch, b in enumerate(bias):
        x = acc + int(b)
        xc = np.clip(x, form.x_lo, form.x_hi).astype(object)
        r = np.where(xc >= 0, form.round_pos[ch], form.round_neg[ch])
        got = np.clip((xc * form.mult[ch] + r) >> form.shift, act_min, act_max)
        want = reference(x, ch)
        bad = np.flatnonzero(got.astype(np.int64) != want)
        assert bad.size == 0, f"channel {ch}: acc {acc[bad[0]]}: {got[bad[0]]} != {want[bad[0]]}"


@pytest.mark.parametrize("seed", range(12))
def test_tflite_narrow_form_is_exact_everywhere(seed):
    rng = np.random.default_rng(seed)
    channels, acc_bits = 3, int(rng.integers(8, 19))
    mult = rng.integers(1 << 30, 1 << 31, channels)
    shift = rng.integers(-12, 1, channels)
    bias = rng.integers(-3000, 3000, channels)
    zp = int(rng.integers(-128, 128))
    act_min, act_max = (zp, 127) if seed % 2 else (-128, 127)
    single = bool(seed % 3 == 0)
    form = narrow_form(RequantMode.TFLITE, acc_bits=acc_bits, bias=bias, zero_point=zp,
                       act_min=act_min, act_max=act_max, multiplier=mult, shift=shift,
                       single_rounding=single)
    assert form is not None, f"seed {seed}"
    _exhaustive(form, lambda x, ch: numerics.requantize(
        x, int(mult[ch]), int(shift[ch]), zp, act_min, act_max, single_rounding=single),
        bias, acc_bits, act_min, act_max)


@pytest.mark.parametrize("seed", range(8))
def test_float_narrow_form_is_exact_everywhere(seed):
    rng = np.random.default_rng(seed)
    channels, acc_bits = 3, int(rng.integers(8, 19))
    scale = 2.0 ** rng.uniform(-14, 1, channels)
    bias = rng.integers(-3000, 3000, channels)
    zp = int(rng.integers(-128, 128))
    act_min, act_max = (zp, 127) if seed % 2 else (-128, 127)
    form = narrow_form(RequantMode.FLOAT, acc_bits=acc_bits, bias=bias, zero_point=zp,
                       act_min=act_min, act_max=act_max, scale=scale)
    assert form is not None, f"seed {seed}"
    _exhaustive(form, lambda x, ch: numerics.requantize_float(
        x, float(scale[ch]), zp, act_min, act_max), bias, acc_bits, act_min, act_max)


def test_a_constant_channel_and_a_zero_multiplier():
    # Channel 0 outputs one value everywhere (multiplier 0); channel 1 steps.
    form = narrow_form(RequantMode.TFLITE, acc_bits=12, bias=[5, -7], zero_point=3,
                       act_min=-128, act_max=127, multiplier=[0, 1 << 30], shift=[0, -4])
    assert form is not None and form.mult[0] == 0
    _exhaustive(form, lambda x, ch: numerics.requantize(
        x, [0, 1 << 30][ch], [0, -4][ch], 3, -128, 127), [5, -7], 12, -128, 127)


@pytest.mark.parametrize(("model", "array", "ecp5"), [("digits_small.tflite", (2, 4), 6),
                                                     ("digits_valid_s2.tflite", (4, 4), 18)])
def test_int8_layers_requantize_without_multipliers(model, array, ecp5):
    """Every requantizer of the TFLite digits models is narrow: the stage's multipliers are
    its PEs' only (digits_valid_s2 at 4x4: 18 PEs, 18 MULT18X18D built, <= 1.25 per PE)."""
    plan = make_plan(load_quantized_model(EXAMPLES / "digits" / model), *array)
    for stage in plan.stages:
        assert stage.requant.narrow is not None, stage.layer
        assert set(stage.requant.multipliers.values()) == {0}, stage.layer
    assert plan.multipliers["ecp5"] == ecp5
    assert plan.multipliers["ecp5"] <= 1.25 * sum(s.pes for s in plan.stages)


def test_a_real_layers_narrow_lane_in_simulation():
    """The digits_valid_s2 second convolution's requantizer (4 lanes, narrow), bit-exact on
    random accumulators of its width with random stalls."""
    plan = make_plan(load_quantized_model(EXAMPLES / "digits" / "digits_valid_s2.tflite"), 4, 4)
    rq = plan.stages[1].requant
    dut = Requantizer.from_plan(rq)
    assert dut.narrow is rq.narrow and dut.latency == rq.latency
    rng = np.random.default_rng(5)
    lo, hi = -(1 << (rq.acc_bits - 1)), (1 << (rq.acc_bits - 1)) - 1
    # Mostly the accumulators where outputs step, some anywhere.
    acc = rng.integers(lo >> 6, hi >> 6, (40, rq.channels), endpoint=True)
    acc[::5] = rng.integers(lo, hi, (8, rq.channels), endpoint=True)
    acc[0], acc[1] = lo, hi
    run(dut, acc, seed=5, frame=10)


@pytest.mark.parametrize("seed", range(10))
def test_serial_lane_is_bit_exact_under_stalls(seed):
    """A serial narrow lane (a few multiplier bits per cycle) with a producer that sends faster
    than it promised and a stalling consumer: backpressure holds, every bit matches."""
    from .hw.test_requantizer import random_acc

    rng = np.random.default_rng(seed)
    channels, lanes = int(rng.integers(1, 9)), int(rng.integers(1, 4))
    acc_bits = int(rng.integers(16, 25))
    mult = rng.integers(1 << 30, 1 << 31, channels)
    shift = rng.integers(-10, -4, channels)
    bias = rng.integers(-5000, 5000, channels)
    zp = int(rng.integers(-128, 128))
    act_min, act_max = (zp, 127) if seed % 2 else (-128, 127)
    # Beat spacings from 6 up: serial lanes of four down to one multiplier bits a cycle.
    dut = Requantizer(channels=channels, lanes=lanes, acc_bits=acc_bits, mode="tflite",
                      bias=bias, multiplier=mult, shift=shift, zero_point=zp, act_min=act_min,
                      act_max=act_max, beat_cycles=int(rng.integers(6, 30)))
    assert dut.narrow is not None and dut.serial is not None, f"seed {seed}"
    run(dut, random_acc(rng, dut, 24), seed=seed, frame=8, gap=0.2, stall=0.3)


@pytest.mark.parametrize(("beat_cycles", "digit"), [(5, 4), (7, 3), (9, 2), (18, 1)])
def test_serial_lane_keeps_pace_and_latency(beat_cycles, digit):
    """Beats every ``beat_cycles`` cycles go through unstalled, each after ``latency``, for
    each digit width (three and four bits sum their rows in two stages, which the plan's
    latency counts)."""
    from amaranth.sim import Simulator

    dut = Requantizer(channels=6, lanes=2, acc_bits=20, mode="tflite", multiplier=1518500250,
                      shift=-9, zero_point=4, beat_cycles=beat_cycles)
    assert dut.serial[0] == digit
    cycles = dut.serial[1]
    assert cycles <= beat_cycles and digit * cycles >= dut.narrow.mult_bits > 4
    rng = np.random.default_rng(2)
    acc = rng.integers(-(1 << 19), 1 << 19, (12, 6))
    beats = [{"data": [int(v) for v in acc[n // 3, 2 * (n % 3):2 * (n % 3) + 2]],
              "last": int(n % 3 == 2)} for n in range(36)]
    sent, got = [], []

    async def source(ctx):
        for n, beat in enumerate(beats):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, beat)
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            assert ready, f"beat {n} stalled"
            sent.append(n)
            ctx.set(dut.i.valid, 0)
            await ctx.tick().repeat(dut.beat_cycles - 1)

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        while len(got) < len(beats):
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycle += 1
            if valid:
                got.append((cycle, [int(v) for v in payload.data]))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert [c for c, _ in got] == [dut.latency + 1 + beat_cycles * n for n in range(36)]
    want = numerics.requantize(acc, 1518500250, -9, 4, -128, 127).reshape(-1, 2)
    assert np.array_equal(np.array([v for _, v in got]), want)


@pytest.mark.parametrize("shift", [2, 4, 8])
def test_serial_lane_with_more_digits_than_the_shift(shift):
    """Scales above 1 (a positive TFLite shift): the serial lane's product has more digits than
    the narrow shift, so retired digits reach the output (shift 2, 4, 8), and at 4 and 8 the
    rounding constant is narrower than the digits, so it all enters with the first digit."""
    from .hw.test_requantizer import random_acc

    dut = Requantizer(channels=3, lanes=2, acc_bits=18, mode="tflite", bias=[5, -30, 40],
                      multiplier=[1 << 30, 1518500250, 2000000000], shift=shift, zero_point=-3,
                      beat_cycles=12)
    digit, cycles = dut.serial
    assert dut.narrow.shift < digit * cycles, shift
    assert (digit * cycles >= dut.narrow.round_bits) == (shift >= 4), shift
    rng = np.random.default_rng(shift)
    run(dut, random_acc(rng, dut, 30), seed=shift, frame=6, gap=0.2, stall=0.3)


@pytest.mark.parametrize("beat_cycles", [2, 3])
def test_serial_lane_of_two_cycles(beat_cycles):
    """A serial lane of two cycles a beat (a 2-bit multiplier): the ROM's word changes before
    the lane loads it, so its constants go through a register; bit-exact under stalls."""
    from .hw.test_requantizer import random_acc

    dut = Requantizer(channels=3, lanes=2, acc_bits=12, mode="tflite", bias=[5, -30, 40],
                      multiplier=3 << 29, shift=-3, zero_point=4, beat_cycles=beat_cycles)
    assert dut.serial == (1, 2)
    rng = np.random.default_rng(beat_cycles)
    run(dut, random_acc(rng, dut, 30), seed=beat_cycles, frame=6, gap=0.2, stall=0.3)
