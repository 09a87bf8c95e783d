# amaranth: UnusedElaboratable=no
"""Block tests of the ADD merge stage and the skip-path buffer (amaranth.sim), bit-exact
against :func:`accel.quant.tflite_kernels.add`; a fork/join that deadlocks with a skip buffer
one beat smaller than the rule and runs with the rule's depth."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from accel.hw.add_merge import AddMerge, SkipBuffer, skip_buffer_depth
from accel.hw.layouts import pixel_layout
from accel.quant import numerics, tflite_kernels
from accel.spec.shapes import ceil_div
from tests.hw.streams import consumer, producer
from tests.hw.test_maxpool import _watchdog, expected_words
from tests.hw.test_window import pixel_beats


def _params(rng):
    s1, s2, s_out = (float(np.float32(10 ** rng.uniform(-3, -1))) for _ in range(3))
    if rng.random() < 0.3:  # small ratios, where the three roundings matter most
        s2 = float(np.float32(s1 * rng.choice([1 / 3, 3 / 2, 1.0, 2.0])))
    return s1, s2, s_out, tflite_kernels.add_params(s1, s2, s_out)


def make_add(rng, channels, lanes, activation):
    _, _, s_out, p = _params(rng)
    zp_r, zp_s, zp_o = (int(v) for v in rng.integers(-128, 128, 3))
    act_min, act_max = (-128, 127)
    if activation != "none":
        act_min, act_max = numerics.fused_activation_range(activation, s_out, zp_o, 8)
    dut = AddMerge(
        channels=channels, lanes=lanes, residual_zero_point=zp_r, shortcut_zero_point=zp_s,
        output_zero_point=zp_o, residual_multiplier=p.input1_multiplier,
        residual_shift=p.input1_shift, shortcut_multiplier=p.input2_multiplier,
        shortcut_shift=p.input2_shift, output_multiplier=p.output_multiplier,
        output_shift=p.output_shift, act_min=int(act_min), act_max=int(act_max))

    def golden(xr, xs):
        return tflite_kernels.add(xr, xs, input1_zero_point=zp_r, input2_zero_point=zp_s,
                                  output_zero_point=zp_o, params=p, act_min=int(act_min),
                                  act_max=int(act_max))

    return dut, golden, zp_o


def check(*, seed, height, width, channels, lanes, frames=2, activation="none", gap=0.3,
          stall=0.3):
    rng = np.random.default_rng(seed)
    dut, golden, zp_o = make_add(rng, channels, lanes, activation)
    shape = (frames, height, width, channels)
    xr = rng.integers(-128, 128, shape)
    xs = rng.integers(-128, 128, shape)
    ends = rng.random(shape) < 0.2
    xr[ends] = rng.choice([-128, 127], ends.sum())
    xs[rng.random(shape) < 0.2] = -128
    n_out = frames * height * width * ceil_div(channels, lanes)
    results: list = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(_watchdog(10 * n_out + 200, f"seed {seed}"), background=True)
    sim.add_testbench(producer(dut.residual, pixel_beats(xr, lanes, rng), rng=rng, gap=gap))
    sim.add_testbench(producer(dut.shortcut, pixel_beats(xs, lanes, rng), rng=rng, gap=gap))
    sim.add_testbench(consumer(dut.o, n_out, results, rng=rng, stall=stall,
                               convert=lambda p: [*(int(v) for v in p.data), int(p.last)]))
    sim.run()
    got = np.array(results, dtype=np.int64)
    want = expected_words(golden(xr, xs), lanes, zp_o)
    assert np.array_equal(got, want), (
        f"seed {seed}: {shape} lanes={lanes} {activation}: first mismatch at beat "
        f"{np.argwhere((got != want).any(1))[0][0]}")


@pytest.mark.parametrize("seed", range(24))
def test_random(seed):
    rng = np.random.default_rng(seed + 500)
    check(seed=seed, height=int(rng.integers(1, 6)), width=int(rng.integers(1, 6)),
          channels=int(rng.integers(1, 9)), lanes=int(rng.integers(1, 4)),
          activation=str(rng.choice(["none", "relu", "relu6"])))


def test_no_stalls_full_rate():
    check(seed=3, height=3, width=5, channels=4, lanes=2, gap=0.0, stall=0.0, frames=3)


def test_latency():
    rng = np.random.default_rng(0)
    dut, _, _ = make_add(rng, 2, 2, "none")
    seen: list[int] = []

    async def bench(ctx):
        ctx.set(dut.residual.payload, {"data": [1, 2], "last": 1})
        ctx.set(dut.shortcut.payload, {"data": [3, 4], "last": 1})
        ctx.set(dut.residual.valid, 1)
        ctx.set(dut.shortcut.valid, 1)
        await ctx.tick()
        ctx.set(dut.residual.valid, 0)
        ctx.set(dut.shortcut.valid, 0)
        for cycle in range(1, 20):
            if ctx.get(dut.o.valid):
                seen.append(cycle)
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [dut.latency]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(channels=0), r"^channels must be a positive integer, not 0$"),
        (dict(residual_zero_point=128), (r"^residual_zero_point must be an integer in "
                                        r"-128\.\.127, not 128$")),
        (dict(output_shift=1), r"^output_shift must be an integer in -31\.\.0, not 1$"),
        (dict(shortcut_multiplier=2**31), (r"^shortcut_multiplier must be an integer in "
                                          r"0\.\.2147483647, not 2147483648$")),
        (dict(act_min=10, act_max=5), r"^act_min 10 must not exceed act_max 5$"),
    ],
)
def test_bad_parameters(kwargs, message):
    params = dict(channels=2, residual_zero_point=0, shortcut_zero_point=0, output_zero_point=0,
                  residual_multiplier=2**30, residual_shift=0, shortcut_multiplier=2**30,
                  shortcut_shift=0, output_multiplier=2**30, output_shift=-1) | kwargs
    with pytest.raises(ValueError, match=message):
        AddMerge(**params)


def test_bad_skip_parameters():
    with pytest.raises(ValueError, match=r"^depth must be a positive integer, not 0$"):
        SkipBuffer(depth=0)
    with pytest.raises(ValueError, match=r"^lead must be a positive integer, not 0$"):
        skip_buffer_depth(lead=0)
    assert skip_buffer_depth(lead=7, latency_beats=3) == 10


# --- fork/join ------------------------------------------------------------------------------


class _LaggingBranch(wiring.Component):
    """A slow long branch: emits input beat ``k`` (unchanged) only once it holds beats up to
    ``k + lead - 1`` (or the frame's last beat), at most one beat every ``period`` cycles."""

    def __init__(self, *, lead, period, lanes):
        self.lead, self.period = lead, period
        layout = pixel_layout(lanes, 8)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        width = len(self.i.payload.as_value())
        m.submodules.q = q = fifo.SyncFIFO(width=width, depth=self.lead + 1)
        lasts = Signal(range(self.lead + 2))  # frame ends held
        timer = Signal(range(self.period))
        m.d.sync += timer.eq(0 if self.period == 1 else (timer + 1) % self.period)
        out_last = q.r_data[-1]
        m.d.comb += [
            q.w_data.eq(self.i.payload.as_value()), q.w_en.eq(self.i.valid),
            self.i.ready.eq(q.w_rdy),
            self.o.payload.eq(q.r_data),
            self.o.valid.eq(q.r_rdy & ((q.r_level >= self.lead) | (lasts != 0)) & (timer == 0)),
            q.r_en.eq(self.o.ready & self.o.valid),
        ]
        pushed_last = q.w_en & q.w_rdy & self.i.payload.last
        popped_last = q.r_en & out_last
        m.d.sync += lasts.eq(lasts + pushed_last - popped_last)
        return m


class _ForkJoin(wiring.Component):
    def __init__(self, *, depth, lead, lanes, add_kwargs):
        self.parts = dict(depth=depth, lead=lead, lanes=lanes, add_kwargs=add_kwargs)
        layout = pixel_layout(lanes, 8)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        p = self.parts
        m.submodules.long = long = _LaggingBranch(lead=p["lead"], period=3, lanes=p["lanes"])
        m.submodules.skip = skip = SkipBuffer(depth=p["depth"], lanes=p["lanes"])
        m.submodules.add = add = AddMerge(lanes=p["lanes"], **p["add_kwargs"])
        # The fork hands a beat to both sides in the same cycle.
        m.d.comb += [
            long.i.payload.eq(self.i.payload), skip.i.payload.eq(self.i.payload),
            long.i.valid.eq(self.i.valid & skip.i.ready),
            skip.i.valid.eq(self.i.valid & long.i.ready),
            self.i.ready.eq(long.i.ready & skip.i.ready),
        ]
        wiring.connect(m, long.o, add.residual)
        wiring.connect(m, skip.o, add.shortcut)
        wiring.connect(m, add.o, wiring.flipped(self.o))
        return m


def _run_fork_join(depth, lead, seed):
    rng = np.random.default_rng(seed)
    channels, lanes, h, w = 3, 2, 3, 4
    zp = 5
    add_kwargs = dict(channels=channels, residual_zero_point=zp, shortcut_zero_point=zp,
                      output_zero_point=zp, residual_multiplier=2**30, residual_shift=0,
                      shortcut_multiplier=2**30, shortcut_shift=0,
                      output_multiplier=1 << 30, output_shift=-18)  # out = x1 + x2 - zp
    dut = _ForkJoin(depth=depth, lead=lead, lanes=lanes, add_kwargs=add_kwargs)
    x = rng.integers(-60, 60, (2, h, w, channels))
    n_out = 2 * h * w * ceil_div(channels, lanes)
    budget = 40 * n_out  # cycles; a deadlocked pipeline stops making progress long before
    beats = pixel_beats(x, lanes, rng)
    results: list = []
    finished = []

    # Bounded producer and consumer (the shared helpers wait forever, which is the point of a
    # deadlock): both give up at the cycle budget.
    async def source(ctx):
        cycle = 0
        for beat in beats:
            if rng.random() < 0.3:
                await ctx.tick().repeat(int(rng.integers(1, 4)))
                cycle += 3
            ctx.set(dut.i.payload, beat)
            ctx.set(dut.i.valid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                cycle += 1
                if ready:
                    break
                if cycle > budget:
                    return
            ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        cycle = 0
        while len(results) < n_out and cycle <= budget:
            ready = int(rng.random() >= 0.3)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycle += 1
            if ready and valid:
                results.append([*(int(v) for v in payload.data), int(payload.last)])
        if len(results) == n_out:
            finished.append(True)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    want = expected_words(np.clip(2 * (x - zp) + zp, -128, 127), lanes, zp)
    return finished, np.array(results, dtype=np.int64).reshape(-1, lanes + 1), want


@pytest.mark.parametrize("lead", [1, 5, 9])
def test_fork_join_depth_rule(lead):
    depth = skip_buffer_depth(lead=lead)
    finished, got, want = _run_fork_join(depth, lead, seed=lead)
    assert finished and np.array_equal(got, want), f"lead {lead}: depth {depth} must work"
    if depth > 1:
        finished, got, _ = _run_fork_join(depth - 1, lead, seed=lead)
        assert not finished and len(got) == 0, f"lead {lead}: depth {depth - 1} must deadlock"


def test_one_pair_per_cycle():
    # With both inputs always valid and the consumer always ready, a pair is taken every cycle.
    rng = np.random.default_rng(9)
    dut, _, _ = make_add(rng, 3, 2, "none")
    n = 20
    taken: list[int] = []

    async def source(ctx):
        ctx.set(dut.residual.valid, 1)
        ctx.set(dut.shortcut.valid, 1)
        ctx.set(dut.o.ready, 1)
        for cycle in range(n + 10):
            ctx.set(dut.residual.payload, {"data": [cycle % 100, 1], "last": 0})
            ctx.set(dut.shortcut.payload, {"data": [2, cycle % 50], "last": 0})
            _, _, ready = await ctx.tick().sample(dut.residual.ready)
            if ready:
                taken.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.run()
    assert taken == list(range(n + 10))


@pytest.mark.parametrize("depth", [2, 3, 7])
def test_skip_buffer_latency_and_rate(depth):
    """A beat taken in cycle ``t`` is offered from ``t + latency`` (the plan's SKIP_LATENCY);
    from depth 3 (SKIP_FULL_RATE_DEPTH) a beat is taken every cycle, at depth 2 every other."""
    from accel.plan.join import SKIP_FULL_RATE_DEPTH, SKIP_LATENCY

    dut = SkipBuffer(depth=depth, lanes=1)
    assert dut.latency == SKIP_LATENCY
    taken, offered = [], []

    async def source(ctx):
        ctx.set(dut.i.valid, 1)
        for cycle in range(12):
            ctx.set(dut.i.payload, {"data": [cycle], "last": 0})
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            if ready:
                taken.append(cycle)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(20):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            if valid:
                offered.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    step = 1 if depth >= SKIP_FULL_RATE_DEPTH else 2
    assert taken == list(range(0, 12, step))
    assert offered == [t + SKIP_LATENCY for t in taken]
