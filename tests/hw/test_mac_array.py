# amaranth: UnusedElaboratable=no
"""Block tests of the systolic MAC array (amaranth.sim), bit-exact against NumPy.

(The first line silences Amaranth's "created but never used" warning for the components that
the validation tests construct and discard.)
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Elaboratable, Fragment
from amaranth.sim import Simulator

from accel.hw.mac_array import (
    MacArrayStream,
    ProcessingElement,
    SystolicArray,
    default_acc_bits,
    splits_logic_rom,
)
from accel.quant.numerics import accumulator_range, int_range, signed_bits_for
from tests.hw.streams import consumer, producer


def _model(xs: np.ndarray, addrs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """y[n] = x[n] @ W[addr[n]], in int64."""
    return np.einsum("nr,nrc->nc", xs.astype(np.int64), weights.astype(np.int64)[addrs])


def _beats(xs, addrs, tags) -> list[dict]:
    return [
        {"x": [int(v) for v in x], "addr": int(a), "tag": int(t)}
        for x, a, t in zip(xs, addrs, tags, strict=True)
    ]


def _watchdog(cycles: int, what: str):
    """A background testbench that fails the simulation if it runs past ``cycles``."""

    async def testbench(ctx):
        for _ in range(cycles):  # not tick().repeat(): abandoning that at the end warns
            await ctx.tick()
        raise AssertionError(f"{what}: still running after {cycles} cycles")

    return testbench


def _run_stream(dut: MacArrayStream, xs, addrs, tags, *, rng, gap, stall, what):
    """Send the beats through ``dut`` with random valid gaps and ready stalls; return the
    outputs as an (N, cols) array and the tags."""
    results: list = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(_watchdog(8 * len(xs) + 100, what), background=True)
    sim.add_testbench(producer(dut.i, _beats(xs, addrs, tags), rng=rng, gap=gap))
    sim.add_testbench(consumer(
        dut.o, len(xs), results, rng=rng, stall=stall,
        convert=lambda p: ([p.y[c] for c in range(dut.cols)], p.tag),
    ))

    async def nothing_more(ctx):
        # After the last expected beat, nothing else may come out (no duplicates).
        while len(results) < len(xs):
            await ctx.tick()
        ctx.set(dut.o.ready, 1)
        for _ in range(dut.fifo_depth + 2):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            assert not valid, f"{what}: an extra output beat"

    sim.add_testbench(nothing_more)
    sim.run()
    ys = np.array([y for y, _ in results], dtype=np.int64).reshape(len(results), dut.cols)
    return ys, [t for _, t in results]


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    rows, cols = (int(v) for v in rng.integers(1, 6, 2))
    depth = int(rng.integers(1, 7))
    tag_bits = int(rng.integers(1, 5))
    n = int(rng.integers(30, 80))
    weights = rng.integers(-128, 128, (depth, rows, cols))
    xs = rng.integers(-256, 256, (n, rows))
    # Extreme operands often, to reach the ends of the accumulator range.
    corner = rng.random((n, rows)) < 0.3
    xs[corner] = rng.choice([-256, 255], corner.sum())
    wcorner = rng.random(weights.shape) < 0.3
    weights[wcorner] = rng.choice([-128, 127], wcorner.sum())
    addrs = rng.integers(0, depth, n)
    tags = rng.integers(0, 1 << tag_bits, n)
    return rng, rows, cols, tag_bits, weights, xs, addrs, tags


@pytest.mark.parametrize("seed", range(24))
def test_stream_random(seed):
    rng, rows, cols, tag_bits, weights, xs, addrs, tags = _random_case(seed)
    # Every third case banks its weight ROMs (banks of 1, 2 or 4 words).
    bank_depth = 1 << (seed // 3 % 3) if seed % 3 == 2 else 8192
    dut = MacArrayStream(rows=rows, cols=cols, weights=weights, tag_bits=tag_bits,
                         bank_depth=bank_depth)
    what = f"seed={seed} rows={rows} cols={cols} depth={len(weights)} bank_depth={bank_depth}"
    ys, got_tags = _run_stream(dut, xs, addrs, tags, rng=rng, gap=0.3, stall=0.3, what=what)
    assert np.array_equal(ys, _model(xs, addrs, weights)), what
    assert got_tags == [int(t) for t in tags], what


@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (1, 5), (5, 1), (4, 4)])
def test_extreme_values_with_minimal_acc_bits(rows, cols):
    # Every partial sum at either end of the range that these weights allow, with acc_bits the
    # least that holds it: an adder one bit too narrow anywhere would wrap.
    seed = 100 + 10 * rows + cols
    rng = np.random.default_rng(seed)
    weights = np.stack([
        np.full((rows, cols), -128), np.full((rows, cols), 127),
        rng.choice([-128, 127], (rows, cols)),
    ])
    acc_bits = signed_bits_for(*accumulator_range(
        terms=rows, x_range=int_range(9), w_range=(-128, 127)))
    assert acc_bits == default_acc_bits(rows=rows)
    xs = np.array([[-256] * rows, [255] * rows, [-256] * rows, [255] * rows]
                  + [list(rng.choice([-256, 255], rows)) for _ in range(8)])
    addrs = np.array([0, 0, 1, 1] + list(rng.integers(0, 3, 8)))
    tags = np.arange(len(xs)) % 2
    dut = MacArrayStream(rows=rows, cols=cols, weights=weights, acc_bits=acc_bits)
    ys, _ = _run_stream(dut, xs, addrs, tags, rng=rng, gap=0.2, stall=0.2, what=f"seed={seed}")
    expected = _model(xs, addrs, weights)
    assert expected.max() == rows * 256 * 128 and expected.min() == -rows * 255 * 128
    assert np.array_equal(ys, expected), f"seed={seed}"


def test_symmetric_weights_need_one_bit_less():
    # acc_bits is checked against the actual weights: int8 symmetric weights ([-127, 127]) on
    # 1 row fit 16 bits, where the full int8 range needs 17.
    weights = np.array([[[127, -127]]])
    dut = MacArrayStream(rows=1, cols=2, weights=weights, acc_bits=16)
    xs, addrs, tags = np.array([[-256], [255]]), np.array([0, 0]), np.array([0, 1])
    ys, _ = _run_stream(dut, xs, addrs, tags, rng=np.random.default_rng(7), gap=0, stall=0,
                        what="symmetric")
    assert np.array_equal(ys, [[-32512, 32512], [32385, -32385]])


@pytest.mark.parametrize(("rows", "cols", "seed", "depth", "bank_depth"),
                         [(1, 1, 11, 3, 8192), (3, 4, 12, 3, 8192), (5, 2, 13, 3, 8192),
                          (1, 1, 14, 9, 4), (3, 2, 15, 11, 2), (2, 3, 16, 5, 1),
                          (2, 2, 17, 70, 1)])
def test_array_fixed_latency(rows, cols, seed, depth, bank_depth):
    # The bare array: a beat with valid in cycle t comes out in exactly cycle t + latency;
    # a weight ROM deeper than bank_depth is banked: address and output registers, and a
    # level of 8:1 multiplexers per factor of 8 banks.
    rng = np.random.default_rng(seed)
    weights = rng.integers(-128, 128, (depth, rows, cols))
    dut = SystolicArray(rows=rows, cols=cols, weights=weights, tag_bits=3,
                        bank_depth=bank_depth)
    banks = -(-depth // bank_depth)
    extra = 0 if banks == 1 else 3 if banks <= 8 else 4 if banks <= 64 else 5
    assert dut.latency == rows + cols + 2 + extra
    cycles = 40
    valid = rng.random(cycles) < 0.6
    xs = rng.integers(-256, 256, (cycles, rows))
    addrs = rng.integers(0, depth, cycles)
    tags = rng.integers(0, 8, cycles)
    seen = []

    async def drive(ctx):
        for t in range(cycles):
            ctx.set(dut.i.valid, int(valid[t]))
            ctx.set(dut.i.payload, {"x": [int(v) for v in xs[t]], "addr": int(addrs[t]),
                                    "tag": int(tags[t])})
            await ctx.tick()
        ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        for t in range(cycles + dut.latency + 2):
            _, _, o_valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if o_valid:
                seen.append((t, [payload.y[c] for c in range(cols)], payload.tag))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_testbench(monitor)
    sim.run()
    expected_y = _model(xs, addrs, weights)
    expected = [(t + dut.latency, list(expected_y[t]), int(tags[t]))
                for t in range(cycles) if valid[t]]
    assert seen == expected, f"seed={seed}"


@pytest.mark.parametrize(("rows", "cols", "bank_depth"),
                         [(1, 1, 8192), (2, 3, 8192), (5, 5, 8192), (2, 3, 2)])
def test_stream_sustains_one_beat_per_cycle(rows, cols, bank_depth):
    # Input always valid, output always ready: input never refused, and N beats take exactly
    # N + latency cycles from the first input transfer to the last output transfer.
    seed = 200 + rows * 10 + cols
    rng = np.random.default_rng(seed)
    weights = rng.integers(-128, 128, (4, rows, cols))
    dut = MacArrayStream(rows=rows, cols=cols, weights=weights, bank_depth=bank_depth)
    n = 60
    xs = rng.integers(-256, 256, (n, rows))
    addrs = rng.integers(0, 4, n)
    in_cycles, out_cycles, ys = [], [], []

    async def produce(ctx):
        ctx.set(dut.i.valid, 1)
        t = 0
        for k in range(n):
            ctx.set(dut.i.payload, {"x": [int(v) for v in xs[k]], "addr": int(addrs[k]),
                                    "tag": k & 1})
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                t += 1
                if ready:
                    in_cycles.append(t - 1)
                    break
        ctx.set(dut.i.valid, 0)

    async def consume(ctx):
        ctx.set(dut.o.ready, 1)
        t = 0
        while len(out_cycles) < n:
            _, _, o_valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if o_valid:
                out_cycles.append(t)
                ys.append([payload.y[c] for c in range(cols)])
            t += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(produce)
    sim.add_testbench(consume)
    sim.add_testbench(_watchdog(4 * n + 100, f"seed={seed}"), background=True)
    sim.run()
    assert in_cycles == list(range(n)), f"seed={seed}: input refused"
    assert out_cycles == [dut.latency + k for k in range(n)], f"seed={seed}"
    assert out_cycles[-1] - in_cycles[0] + 1 == n + dut.latency
    assert np.array_equal(np.array(ys), _model(xs, addrs, weights)), f"seed={seed}"


def test_stream_long_stall_fills_credits():
    # The consumer stalls long enough for the credits to run out; the FIFO must never be
    # written while full, and nothing may be lost or duplicated.
    seed = 300
    rng = np.random.default_rng(seed)
    rows, cols, depth = 3, 2, 5
    weights = rng.integers(-128, 128, (depth, rows, cols))
    dut = MacArrayStream(rows=rows, cols=cols, weights=weights, tag_bits=6)
    n = 50
    xs = rng.integers(-256, 256, (n, rows))
    addrs = rng.integers(0, depth, n)
    tags = np.arange(n)
    results, accepted, overflow = [], [], []

    async def consume(ctx):
        await ctx.tick().repeat(3 * dut.fifo_depth)
        for phase in range(n):
            ctx.set(dut.o.ready, 1)
            (payload,) = await ctx.tick().sample(dut.o.payload).until(dut.o.valid)
            results.append(([payload.y[c] for c in range(cols)], payload.tag))
            ctx.set(dut.o.ready, 0)
            if phase % 10 == 9:
                await ctx.tick().repeat(2 * dut.fifo_depth)

    async def watch(ctx):
        fifo = dut._fifo  # internal: the invariant under test
        while len(results) < n:
            _, _, w_en, w_rdy, take = await ctx.tick().sample(
                fifo.w_en, fifo.w_rdy, dut.i.valid & dut.i.ready)
            overflow.append(bool(w_en and not w_rdy))
            accepted.append(bool(take))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer(dut.i, _beats(xs, addrs, tags), rng=rng, gap=0.1))
    sim.add_testbench(consume)
    sim.add_testbench(watch, background=True)
    sim.add_testbench(_watchdog(20 * n, f"seed={seed}"), background=True)
    sim.run()
    assert not any(overflow), f"seed={seed}"
    # The producer is blocked once fifo_depth beats are outstanding.
    assert sum(accepted[: 3 * dut.fifo_depth]) == dut.fifo_depth, f"seed={seed}"
    ys = np.array([y for y, _ in results])
    assert np.array_equal(ys, _model(xs, addrs, weights)), f"seed={seed}"
    assert [t for _, t in results] == list(range(n)), f"seed={seed}"


class _OnPlatform(Elaboratable):
    """Elaborates ``dut`` for a platform of ``family`` (in simulation, which has none)."""

    def __init__(self, dut, family):
        self.dut, self.family = dut, family

    def elaborate(self, platform):
        return Fragment.get(self.dut, _Platform(self.family))


_W72 = [(37 * a) % 255 - 127 for a in range(72)]  # 72 distinct-ish words, like digits_small's


@pytest.mark.parametrize(("weights", "bank_depth", "latency", "family"), [
    ([3, -7, 5], 8192, 4, None), ([3, -7, 5], 2, 7, None), ([3, -7, 5], 1, 7, None),
    ([3, -7, 5, 1, -2, 4, 6, -8, 9, 10], 1, 8, None),
    # iCE40 logic ROMs deeper than 16 words: read in 16-word slices, the same latency
    (_W72, 8192, 4, "iCE40"), (_W72[:17], 8192, 4, "iCE40"), (_W72[:16], 8192, 4, "iCE40"),
    (_W72, 8, 8, "iCE40")])
def test_processing_element_timing(weights, bank_depth, latency, family):
    # x/addr in cycle t: x_out in t + 1, psum_out = psum_in(t + L - 1) + x * w[addr] in t + L,
    # L = 4, plus 2 and a level per factor of 8 banks with the ROM banked.
    pe = ProcessingElement(weights=weights, input_bits=9, weight_bits=8, addr_bits=7,
                           psum_in_bits=12, psum_bits=17, bank_depth=bank_depth)
    assert pe.latency == latency
    xs = [10, -256, 255, 7, -1, 3, 100, -50, 0, 0, 0, 0, 0, -3, 9, 11, 0, 0, 0, 0, 0]
    addrs = [0, 1, 2, 1, 2, 2, 9, 8, 0, 0, 0, 0, 0, 71, 16, 15, 17, 33, 64, 70, 5]
    addrs = [a % len(weights) for a in addrs]
    psums = [0, 0, 0, 5, -100, 2047, -2048, 9, 0, 0, 1, 0, 0, 7, -9, 0, 0, 3, 0, 0, 0]
    got = []

    async def bench(ctx):
        for t in range(len(xs)):
            ctx.set(pe.x_in, xs[t])
            ctx.set(pe.addr_in, addrs[t])
            ctx.set(pe.psum_in, psums[t])
            _, _, x_out, psum_out = await ctx.tick().sample(pe.x_out, pe.psum_out)
            got.append((x_out, psum_out))

    sim = Simulator(_OnPlatform(pe, family) if family else pe)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert [x for x, _ in got[1:]] == xs[:-1]
    assert [s for _, s in got[latency:]] == [psums[t + latency - 1] + xs[t] * weights[addrs[t]]
                                             for t in range(len(xs) - latency)]


W22 = np.zeros((1, 2, 2), dtype=np.int64)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"rows": 0}, ValueError, r"^rows must be a positive integer, not 0$"),
    ({"rows": "2"}, TypeError, r"^rows must be a positive integer, not '2'$"),
    ({"rows": True}, TypeError, r"^rows must be a positive integer, not True$"),
    ({"cols": -1}, ValueError, r"^cols must be a positive integer, not -1$"),
    ({"input_bits": 0}, ValueError, r"^input_bits must be an integer in 1\.\.32, not 0$"),
    ({"weight_bits": 33}, ValueError, r"^weight_bits must be an integer in 1\.\.32, not 33$"),
    ({"tag_bits": 0}, ValueError, r"^tag_bits must be a positive integer, not 0$"),
    ({"weights": [[[1, 2], [3, 4]]]}, TypeError,
     r"^weights must be a numpy array of integers, not list$"),
    ({"weights": np.zeros((1, 2, 2))}, TypeError,
     r"^weights must be a numpy array of integers, not an array of float64$"),
    ({"weights": np.zeros((2, 2), dtype=int)}, ValueError,
     r"^weights must have shape \(depth, rows, cols\) = \(depth >= 1, 2, 2\), not \(2, 2\)$"),
    ({"weights": np.zeros((0, 2, 2), dtype=int)}, ValueError,
     r"^weights must have shape \(depth, rows, cols\) = \(depth >= 1, 2, 2\), not \(0, 2, 2\)$"),
    ({"weights": np.zeros((1, 2, 3), dtype=int)}, ValueError,
     r"^weights must have shape .* not \(1, 2, 3\)$"),
    ({"weights": np.array([[[0, 0], [0, 128]]])}, ValueError,
     r"^weights must fit in weight_bits=8 signed bits \(\[-128, 127\]\), not 128 at \(0, 1, 1\)$"),
    ({"acc_bits": 17, "weights": np.full((1, 2, 2), -128)}, ValueError,
     (r"^acc_bits must be at least 18 to hold a sum of 2 products of 9-bit inputs and these "
      r"weights, not 17$")),
    ({"acc_bits": 18.0, "weights": np.full((1, 2, 2), -128)}, TypeError,
     r"^acc_bits must be an integer >= 18, not 18\.0$"),
    ({"bank_depth": 6}, ValueError, r"^bank_depth must be a power of two, not 6$"),
    ({"bank_depth": 0}, ValueError, r"^bank_depth must be a positive integer, not 0$"),
])
@pytest.mark.parametrize("cls", [SystolicArray, MacArrayStream])
def test_parameter_validation(cls, kwargs, error, message):
    params = {"rows": 2, "cols": 2, "weights": W22, **kwargs}
    with pytest.raises(error, match=message):
        cls(**params)


def test_default_acc_bits():
    # 9-bit x 8-bit: |product| <= 256 * 128 = 2**15, so one row needs 17 bits.
    assert default_acc_bits(rows=1) == 17
    assert default_acc_bits(rows=2) == 18
    assert default_acc_bits(rows=3) == 18  # 3 * 2**15 < 2**17
    assert default_acc_bits(rows=4) == 19
    assert default_acc_bits(rows=8, input_bits=8, weight_bits=8) == 19
    assert SystolicArray(rows=4, cols=1, weights=np.zeros((1, 4, 1), int)).acc_bits == 19


class _Platform:
    """Just the ``family`` attribute of an Amaranth platform, which is all a PE looks at."""

    def __init__(self, family):
        self.family = family


@pytest.mark.parametrize(("family", "input_bits", "weight_bits", "primitive"), [
    ("ecp5", 9, 8, True),      # int8 operands: the registered MULT18X18D
    ("ecp5", 18, 18, True),    # the widest that fits its signed inputs
    ("ecp5", 19, 8, False),    # too wide: '*' for yosys to split
    ("ice40", 9, 8, False),    # other families: '*' (yosys packs SB_MAC16 itself)
    (None, 9, 8, False),       # simulation
])
def test_pe_multiplier_form(family, input_bits, weight_bits, primitive):
    from amaranth.back import verilog

    pe = ProcessingElement(weights=[1, -2, 3], input_bits=input_bits, weight_bits=weight_bits,
                           addr_bits=2, psum_in_bits=1, psum_bits=input_bits + weight_bits)
    platform = _Platform(family) if family else None
    text = verilog.convert(pe, name="pe", emit_src=False, platform=platform)
    assert ("MULT18X18D" in text) == primitive, (family, input_bits, weight_bits)
    if primitive:
        for reg in ("INPUTA", "INPUTB", "OUTPUT"):
            assert f'.REG_{reg}_CLK("CLK0")' in text, reg
        assert "REG_PIPELINE_CLK" not in text  # two register stages, as the fabric form


@pytest.mark.parametrize(("depth", "family", "split"), [
    (72, "ice40", True),     # digits_small's conv layer: in logic, so read in slices
    (17, "ice40", True),
    (16, "ice40", False),    # one LUT4 per bit already
    (720, "ice40", False),   # a block RAM (its dense layer)
    (72, "ecp5", False),     # LUT4s with wide multiplexers: one ROM
    (72, None, False),
])
def test_logic_rom_split(depth, family, split):
    from amaranth.back import verilog

    assert splits_logic_rom(depth, 8, family) == split
    weights = [(37 * a) % 255 - 127 for a in range(depth)]
    pe = ProcessingElement(weights=weights, input_bits=9, weight_bits=8,
                           addr_bits=max(1, (depth - 1).bit_length()), psum_in_bits=1,
                           psum_bits=17)
    platform = _Platform("iCE40" if family == "ice40" else family) if family else None
    text = verilog.convert(pe, name="pe", emit_src=False, platform=platform)
    assert ("rom_slice" in text) == split, (depth, family)
