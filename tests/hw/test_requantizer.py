# amaranth: UnusedElaboratable=no
"""Block tests of the requantizer (amaranth.sim), bit-exact against accel.quant.numerics."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator

from accel.hw.requantizer import Requantizer
from accel.quant import numerics
from accel.spec.shapes import ceil_div
from tests.hw.streams import consumer, producer

INT32_MIN, INT32_MAX = numerics.INT32_MIN, numerics.INT32_MAX


def reference(dut: Requantizer, acc: np.ndarray) -> np.ndarray:
    """The numerics module's result for accumulators ``acc`` of shape (..., channels)."""
    x = np.asarray(acc, dtype=np.int64) + dut.bias.astype(np.int64)
    if dut.mode == "tflite":
        return numerics.requantize(
            x, dut.multiplier.astype(np.int64), dut.shift.astype(np.int64), dut.zero_point,
            dut.act_min, dut.act_max, single_rounding=dut.single_rounding,
        )
    if dut.mode == "float":
        return numerics.requantize_float(x, dut.scale, dut.zero_point, dut.act_min, dut.act_max)
    if dut.mode == "wide":  # requantize_wide takes one multiplier: channel by channel
        return np.stack([
            numerics.requantize_wide(x[..., ch], int(dut.multiplier[ch]), int(dut.shift[ch]),
                                     dut.zero_point, dut.act_min, dut.act_max)
            for ch in range(dut.channels)
        ], axis=-1)
    return numerics.pow2_requantize(
        x, dut.shift.astype(np.int64), dut.out_bits, act_min=dut.act_min, act_max=dut.act_max
    )


def _in_contract(dut: Requantizer, ch: int, value: int) -> bool:
    """Whether the numerics define the result (no int32 overflow in TFLite's arithmetic)."""
    x = value + int(dut.bias[ch])
    try:
        if dut.mode == "tflite":
            numerics.requantize(x, int(dut.multiplier[ch]), int(dut.shift[ch]), dut.zero_point,
                                dut.act_min, dut.act_max, single_rounding=dut.single_rounding)
        elif dut.mode == "float":
            numerics.requantize_float(x, float(dut.scale[ch]), dut.zero_point, dut.act_min,
                                      dut.act_max)
        elif dut.mode == "wide":  # the stand-in for the float path: int32 accumulators
            return INT32_MIN <= x <= INT32_MAX
        else:
            numerics.pow2_requantize(x, int(dut.shift[ch]), dut.out_bits)
    except (OverflowError, ValueError):
        return False
    return True


def random_acc(rng, dut: Requantizer, pixels: int) -> np.ndarray:
    """Accumulators spread over all magnitudes (log-uniform), with the extremes, kept inside
    the numerics' domain (halved until they are)."""
    lo, hi = -(1 << (dut.acc_bits - 1)), (1 << (dut.acc_bits - 1)) - 1
    mags = rng.integers(0, dut.acc_bits, (pixels, dut.channels))
    acc = rng.integers(0, 1 << mags, dtype=np.int64) * rng.choice([-1, 1], mags.shape)
    corner = rng.random(acc.shape) < 0.1
    acc[corner] = rng.choice([lo, hi, 0, -1, 1], corner.sum())
    acc = np.clip(acc, lo, hi)
    for index in np.ndindex(acc.shape):
        while not _in_contract(dut, index[1], int(acc[index])):
            acc[index] = int(acc[index] / 2)  # toward zero; 0 is always in the contract
    return acc


def acc_beats(dut: Requantizer, acc: np.ndarray, frame: int, rng) -> list[dict]:
    """Input beats for accumulators (pixels, channels); a frame is ``frame`` pixels. Lanes past
    the channels carry junk."""
    pixels = acc.shape[0]
    lo, hi = -(1 << (dut.acc_bits - 1)), (1 << (dut.acc_bits - 1)) - 1
    padded = rng.integers(lo, hi, (pixels, dut.groups * dut.lanes), endpoint=True)
    padded[:, : dut.channels] = acc
    words = padded.reshape(-1, dut.lanes)
    per_frame = frame * dut.groups
    return [
        {"data": [int(v) for v in word], "last": int((n + 1) % per_frame == 0)}
        for n, word in enumerate(words)
    ]


def expected_words(dut: Requantizer, y: np.ndarray, frame: int) -> np.ndarray:
    pixels = y.shape[0]
    padded = np.full((pixels, dut.groups * dut.lanes), dut.zero_point, dtype=np.int64)
    padded[:, : dut.channels] = y
    words = padded.reshape(-1, dut.lanes)
    last = ((np.arange(len(words)) + 1) % (frame * dut.groups) == 0).astype(np.int64)
    return np.hstack([words, last[:, None]])


def _watchdog(cycles: int, what: str):
    async def testbench(ctx):
        for _ in range(cycles):
            await ctx.tick()
        raise AssertionError(f"{what}: still running after {cycles} cycles")

    return testbench


def run(dut: Requantizer, acc: np.ndarray, *, seed: int, frame: int | None = None,
        gap=0.3, stall=0.3) -> None:
    rng = np.random.default_rng(seed + 7)
    frame = acc.shape[0] if frame is None else frame
    beats = acc_beats(dut, acc, frame, rng)
    results: list = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    per_beat = 5 + (dut.serial[1] if dut.serial else 0)  # a serial lane: one per `cycles`
    sim.add_testbench(_watchdog(per_beat * len(beats) + 100, f"seed {seed}"), background=True)
    sim.add_testbench(producer(dut.i, beats, rng=rng, gap=gap))
    sim.add_testbench(consumer(
        dut.o, len(beats), results, rng=rng, stall=stall,
        convert=lambda p: [*(int(v) for v in p.data), int(p.last)],
    ))
    sim.run()
    got = np.array(results, dtype=np.int64).reshape(len(beats), dut.lanes + 1)
    want = expected_words(dut, reference(dut, acc), frame)
    if not np.array_equal(got, want):
        n = int(np.argwhere((got != want).any(1))[0][0])
        pix, g = divmod(n, dut.groups)
        raise AssertionError(
            f"seed {seed}, mode {dut.mode}: beat {n} (pixel {pix}, group {g}): got {got[n]}, "
            f"want {want[n]}; acc {acc[pix, g * dut.lanes : (g + 1) * dut.lanes]}"
        )


def _lanes(rng) -> tuple[int, int]:
    return int(rng.integers(1, 11)), int(rng.integers(1, 5))


def _act_range(rng, bits: int, zero_point: int) -> tuple[int, int]:
    lo, hi = numerics.int_range(bits)
    kind = rng.integers(0, 3)
    if kind == 0:
        return lo, hi
    if kind == 1:  # a fused ReLU
        return max(lo, zero_point), hi
    a, b = sorted(int(v) for v in rng.integers(lo, hi, 2, endpoint=True))
    return a, b


def random_tflite(seed: int, *, single_rounding: bool = False) -> Requantizer:
    rng = np.random.default_rng(seed)
    channels, lanes = _lanes(rng)
    acc_bits = int(rng.choice([16, 24, 32, int(rng.integers(2, 33))]))
    out_bits = int(rng.choice([8, 8, int(rng.integers(2, 17))]))
    mult = rng.integers(1 << 30, 1 << 31, channels)
    special = rng.random(channels) < 0.2
    mult[special] = rng.choice([0, 1 << 30, (1 << 31) - 1, 1], special.sum())
    # Mostly the shifts of real layers (a right shift of a few to 20 bits), sometimes any.
    shift = np.where(rng.random(channels) < 0.6, rng.integers(-20, 2, channels),
                     rng.integers(-31, 31, channels))
    bias_mag = rng.integers(0, 32, channels)
    bias = rng.integers(0, 1 << bias_mag) * rng.choice([-1, 1], channels)
    bias[rng.random(channels) < 0.1] = INT32_MAX
    lo, hi = numerics.int_range(out_bits)
    zp = int(rng.integers(lo, hi, endpoint=True))
    for ch in range(channels):  # a zero accumulator must be in the contract
        while True:
            try:
                numerics.requantize(int(bias[ch]), int(mult[ch]), int(shift[ch]), zp, lo, hi,
                                    single_rounding=single_rounding)
                break
            except OverflowError:
                bias[ch] //= 2
    act_min, act_max = _act_range(rng, out_bits, zp)
    return Requantizer(channels=channels, lanes=lanes, acc_bits=acc_bits, out_bits=out_bits,
                       mode="tflite", bias=bias, multiplier=mult, shift=shift, zero_point=zp,
                       act_min=act_min, act_max=act_max, single_rounding=single_rounding)


def random_float(seed: int) -> Requantizer:
    rng = np.random.default_rng(seed)
    channels, lanes = _lanes(rng)
    scale = 2.0 ** rng.uniform(-36, 3, channels)
    special = rng.random(channels) < 0.2
    scale[special] = rng.choice([1.0, 0.5, 0.25, 2.0**-31, 1 / 3, 0.1], special.sum())
    bias = rng.integers(-(1 << 20), 1 << 20, channels)
    zp = int(rng.integers(-128, 128))
    act_min, act_max = _act_range(rng, 8, zp)
    return Requantizer(channels=channels, lanes=lanes, acc_bits=32, mode="float", bias=bias,
                       scale=scale, zero_point=zp, act_min=act_min, act_max=act_max)


def random_wide(seed: int) -> Requantizer:
    rng = np.random.default_rng(seed)
    channels, lanes = _lanes(rng)
    bits = rng.integers(1, 54, channels)
    mult = rng.integers(0, 1 << bits, dtype=np.int64)
    mult[rng.random(channels) < 0.2] = (1 << 53) - 1
    # M / 2**n around 2**-40 .. 2**3, sometimes anything.
    shift = np.clip(bits + rng.integers(-3, 40, channels), 0, 255)
    shift[rng.random(channels) < 0.1] = rng.choice([0, 1, 200, 255])
    bias = rng.integers(-(1 << 20), 1 << 20, channels)
    zp = int(rng.integers(-128, 128))
    act_min, act_max = _act_range(rng, 8, zp)
    return Requantizer(channels=channels, lanes=lanes, acc_bits=32, mode="wide", bias=bias,
                       multiplier=mult, shift=shift, zero_point=zp, act_min=act_min,
                       act_max=act_max)


def random_pow2(seed: int) -> Requantizer:
    rng = np.random.default_rng(seed)
    channels, lanes = _lanes(rng)
    out_bits = int(rng.integers(4, 17))
    acc_bits = int(rng.integers(out_bits, min(2 * out_bits + 12, 62) + 1))
    shift = np.where(rng.random(channels) < 0.7, rng.integers(-2, acc_bits, channels),
                     rng.integers(-62, 63, channels))
    bias = rng.integers(-(1 << (acc_bits - 2)), 1 << (acc_bits - 2), channels)
    for ch in range(channels):  # a zero accumulator must be in the contract
        while True:
            try:
                numerics.pow2_round_shift(int(bias[ch]), int(shift[ch]))
                break
            except OverflowError:
                bias[ch] = int(bias[ch] / 2)
    act_min, act_max = _act_range(rng, out_bits, 0)
    return Requantizer(channels=channels, lanes=lanes, acc_bits=acc_bits, out_bits=out_bits,
                       mode="pow2", bias=bias, shift=shift, act_min=act_min, act_max=act_max)


@pytest.mark.parametrize("seed", range(60))
def test_tflite(seed):
    dut = random_tflite(seed)
    rng = np.random.default_rng(seed + 100)
    run(dut, random_acc(rng, dut, 40), seed=seed, frame=20)


@pytest.mark.parametrize("seed", range(20))
def test_tflite_single_rounding(seed):
    dut = random_tflite(seed + 50, single_rounding=True)
    rng = np.random.default_rng(seed + 100)
    run(dut, random_acc(rng, dut, 40), seed=seed, frame=20)


@pytest.mark.parametrize("seed", range(30))
def test_float(seed):
    dut = random_float(seed)
    rng = np.random.default_rng(seed + 100)
    run(dut, random_acc(rng, dut, 30), seed=seed, frame=15)


@pytest.mark.parametrize("seed", range(20))
def test_wide(seed):
    dut = random_wide(seed)
    rng = np.random.default_rng(seed + 100)
    run(dut, random_acc(rng, dut, 30), seed=seed, frame=15)


def test_wide_matches_float_layer():
    # The "wide" stand-in found by the numerics module for a float FULLY_CONNECTED layer gives
    # the same outputs as the "float" datapath on the layer's accumulators.
    rng = np.random.default_rng(9)
    scales = 2.0 ** rng.uniform(-14, -6, 4)
    acc_range = (-(1 << 18), 1 << 18)
    pairs = [numerics.wide_multiplier_for_scale(float(s), -5, -128, 127, acc_range)
             for s in scales]
    wide = Requantizer(channels=4, lanes=2, acc_bits=20, mode="wide", zero_point=-5,
                       multiplier=[m for m, _ in pairs], shift=[n for _, n in pairs])
    acc = rng.integers(acc_range[0], acc_range[1], (20, 4))
    float_dut = Requantizer(channels=4, lanes=2, acc_bits=20, mode="float", zero_point=-5,
                            scale=scales)
    assert np.array_equal(reference(wide, acc), reference(float_dut, acc))
    run(wide, acc, seed=9)


@pytest.mark.parametrize("seed", range(40))
def test_pow2(seed):
    dut = random_pow2(seed)
    rng = np.random.default_rng(seed + 100)
    run(dut, random_acc(rng, dut, 40), seed=seed, frame=20)


def test_tflite_exhaustive_shifts():
    # Every shift TFLite allows, one per channel, on accumulators up to the int32 limits the
    # left shift leaves, and the two rounding ties of each stage.
    shifts = np.arange(-31, 31)
    rng = np.random.default_rng(1)
    mult = rng.integers(1 << 30, 1 << 31, len(shifts))
    mult[:4] = [(1 << 31) - 1, 1 << 30, 0, 1]
    dut = Requantizer(channels=len(shifts), lanes=4, acc_bits=32, out_bits=16, mode="tflite",
                      multiplier=mult, shift=shifts, zero_point=-3)
    acc = random_acc(rng, dut, 12)
    limit = np.right_shift(np.int64(INT32_MAX), np.maximum(shifts, 0))
    acc[0] = limit
    acc[1] = -limit - 1
    acc[2] = 1 << np.maximum(-shifts - 1, 0)  # ties after the SRDHM for M = 2**30
    acc[3] = -acc[2]
    run(dut, acc, seed=1, gap=0.1, stall=0.1)


def test_float_double_rounding_ties():
    # Products that the double multiplication rounds onto a .5 tie although the exact product
    # is not one: the hardware must round the product to 53 bits first (to nearest even), then
    # half away from zero, exactly like the C++ (rounding once would differ here).
    rng = np.random.default_rng(5)
    accs, scales = [], []
    while len(scales) < 12:
        acc = int(rng.integers(1 << 20, 1 << 31)) * int(rng.choice([-1, 1]))
        scale = float((int(rng.integers(-100, 100)) + 0.5) / acc)
        if scale <= 0:
            continue
        for candidate in (scale, float(np.nextafter(scale, 0)), float(np.nextafter(scale, 1))):
            double = float(np.float64(acc) * candidate)
            exact = Fraction(acc) * Fraction(candidate)
            if double % 1 == 0.5 and exact != Fraction(double):
                accs.append(acc)
                scales.append(candidate)
    dut = Requantizer(channels=12, lanes=3, acc_bits=32, mode="float", scale=scales[:12])
    acc = np.tile(np.array(accs[:12]), (3, 1))
    acc[1] = -acc[1]
    acc[2] = acc[2] // 3
    run(dut, acc, seed=5)


def test_pow2_bits():
    # Output widths 4..16 with shifts around the width, incl. left shifts and saturation.
    for out_bits in (4, 9, 16):
        shifts = np.array([-3, -1, 0, 1, 2, out_bits, 2 * out_bits, 40])
        dut = Requantizer(channels=len(shifts), lanes=3, acc_bits=2 * out_bits + 8,
                          out_bits=out_bits, mode="pow2", shift=shifts,
                          bias=np.arange(len(shifts)) - 4)
        rng = np.random.default_rng(out_bits)
        run(dut, random_acc(rng, dut, 10), seed=out_bits)


def _cycles(dut: Requantizer, beats: list[dict]) -> tuple[list[int], list[int]]:
    """Cycle numbers at which beats were taken and results delivered, both sides at speed."""
    taken: list[int] = []
    delivered: list[int] = []

    async def source(ctx):
        cycle = 0
        ctx.set(dut.i.valid, 1)
        for beat in beats:
            ctx.set(dut.i.payload, beat)
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                cycle += 1
                if ready:
                    taken.append(cycle)
                    break
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        cycle = 0
        ctx.set(dut.o.ready, 1)
        while len(delivered) < len(beats):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            cycle += 1
            if valid:
                delivered.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return taken, delivered


@pytest.mark.parametrize("mode", ["tflite", "float", "wide", "pow2"])
def test_latency_and_throughput(mode):
    kwargs = {
        "tflite": dict(multiplier=1 << 30, shift=-3),
        "float": dict(scale=0.01),
        "wide": dict(multiplier=(1 << 40) + 12345, shift=47),
        "pow2": dict(shift=4),
    }[mode]
    dut = Requantizer(channels=6, lanes=2, acc_bits=20, mode=mode, **kwargs)
    rng = np.random.default_rng(0)
    acc = random_acc(rng, dut, 30)
    taken, delivered = _cycles(dut, acc_beats(dut, acc, 30, rng))
    assert delivered[0] - taken[0] == dut.latency
    assert taken[-1] - taken[0] + 1 == len(taken)  # one beat per cycle in
    assert delivered[-1] - delivered[0] + 1 == len(delivered)  # and out


def test_backpressure_holds_everything():
    # A consumer that stalls for long stretches: nothing is lost or duplicated.
    dut = random_tflite(3)
    rng = np.random.default_rng(3)
    run(dut, random_acc(rng, dut, 30), seed=3, gap=0.0, stall=0.8)


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        (dict(mode="int8"), ValueError,
         r"^mode must be one of 'tflite', 'float', 'wide', 'pow2', not 'int8'$"),
        (dict(mode="wide", multiplier=2**53), ValueError,
         r"^multiplier must lie in 0\.\.9007199254740991, not 9007199254740992$"),
        (dict(mode="wide", shift=-1), ValueError, r"^shift must lie in 0\.\.255, not -1$"),
        (dict(channels=0), ValueError, r"^channels must be a positive integer, not 0$"),
        (dict(acc_bits=33), ValueError, r"^acc_bits must be an integer in 2\.\.32, not 33$"),
        (dict(out_bits=1), ValueError, r"^out_bits must be an integer in 2\.\.32, not 1$"),
        (dict(multiplier=None), ValueError, r"^multiplier is required with mode 'tflite'$"),
        (dict(scale=0.5), ValueError, r"^scale is not used with mode 'tflite'$"),
        (dict(multiplier=[1, 2]), ValueError,
         (r"^multiplier must be a single value or one per channel \(shape \(3,\)\), "
         r"not shape \(2,\)$")),
        (dict(multiplier=2**31), ValueError, (r"^multiplier must lie in 0\.\.2147483647, "
                                             r"not 2147483648$")),
        (dict(shift=[0, 31, 0]), ValueError, r"^shift must lie in -31\.\.30, not 31$"),
        (dict(shift=1.5), TypeError,
         r"^shift must be an integer or an array of integers, not 1\.5$"),
        (dict(bias=2**31), ValueError, (r"^bias must lie in -2147483648\.\.2147483647, "
                                       r"not 2147483648$")),
        (dict(zero_point=200), ValueError, (r"^zero_point must be an integer in -128\.\.127, "
                                           r"not 200$")),
        (dict(act_min=5, act_max=4), ValueError, r"^act_min must not exceed act_max, not 5 > 4$"),
        (dict(single_rounding=1), TypeError, r"^single_rounding must be True or False, not 1$"),
        (dict(mode="pow2", multiplier=None, shift=0, zero_point=3), ValueError,
         r"^zero_point must be 0 with mode 'pow2', not 3$"),
        (dict(mode="float", multiplier=None, shift=None, scale=[1.0, 0.0, 1.0]), ValueError,
         r"^scale must be finite and > 0, not 0\.0$"),
        (dict(mode="pow2", multiplier=None, shift=63), ValueError,
         r"^shift must lie in -62\.\.62, not 63$"),
    ],
)
def test_bad_parameters(kwargs, exc, message):
    params = dict(channels=3, multiplier=1 << 30, shift=0) | kwargs
    with pytest.raises(exc, match=message):
        Requantizer(**params)


def test_groups_and_ports():
    dut = Requantizer(channels=10, lanes=4, acc_bits=24, out_bits=6, multiplier=1 << 30,
                      shift=-2)
    assert dut.groups == ceil_div(10, 4) == 3
    assert dut.i.payload.shape().size == 4 * 24 + 1
    assert dut.o.payload.shape().size == 4 * 6 + 1


def _double_rounding_cases(count: int) -> list[tuple[int, float]]:
    """(acc, scale) whose exact product is half a double ulp below n + 1/2: the double
    product rounds (half to even) up onto n + 1/2 and the result is n + 1, where exact
    arithmetic, or a datapath that truncated or rounded that tie down, gives n."""
    cases = []
    s = 46  # products in [64, 128): a double's ulp there is 2**-46
    for n in range(127, 63, -1):
        odd = (2 * n + 1) * 2**s - 1  # the exact product in units of 2**-(s + 1)
        for a in range(3, 64, 2):
            m = odd // a
            if odd % a == 0 and 2**52 <= m < 2**53:
                # acc * m * 2**-52 == odd * 2**-(s + 1)  ->  acc = a * 2**(51 - s)
                cases.append((a * 2 ** (51 - s), m / 2**52))
                break
        if len(cases) == count:
            return cases
    raise AssertionError("not enough cases")


def test_float_rounds_the_double_product_half_to_even():
    # The double product's rounding is visible in the result only for products just below a
    # half-integer; these cases are built to be exactly half an ulp below one.
    cases = _double_rounding_cases(6)
    scale = np.array([sc for _, sc in cases])
    for acc, sc in cases:
        exact = Fraction(acc) * Fraction(sc)
        assert round(exact) + 1 == numerics.requantize_float(acc, sc, 0, -128, 127)
    dut = Requantizer(channels=len(cases), lanes=4, acc_bits=32, mode="float",
                      bias=np.zeros(len(cases), int), scale=scale, zero_point=0, act_min=-128,
                      act_max=127)
    special = np.array([acc for acc, _ in cases])
    acc = np.vstack([special, -special, np.arange(-60, 60)[:, None] + special // 2])
    run(dut, acc, seed=3, frame=11)
