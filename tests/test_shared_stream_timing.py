# amaranth: UnusedElaboratable=no
"""The plan's model of several weight streams sharing one memory through the arbiter
(:mod:`accel.plan.shared_stream_timing`) against the hardware: in amaranth.sim, two or three
WeightStreams (BurstReader and tile assembler) on the WeightArbiter and the deterministic
memory model, their tiles taken from random cycles: every tile's cycle is the model's. Then
networks with two streamed Dense stages in the self-checking harness (amaranth.sim, and
`accel sim` in Verilator): their latency, interval and every stage's end of every image are
the plan's, at batch 1 and 2."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from amaranth import Elaboratable, Module
from amaranth.lib import wiring
from click.testing import CliRunner

from accel.cli import main
from accel.hw.weight_arbiter import WeightArbiter
from accel.hw.weight_stream import WeightStream
from accel.plan import shared_stream_timing
from accel.plan.plan import make_plan
from accel.plan.shared_stream_timing import OfferedTiles, SharedMemory
from accel.plan.stream_timing import WeightPath
from accel.plan.timing import frame_times
from accel.plan.weight_memory import arbiter_queue_depth
from accel.plan.weights import ExternalMemory, StreamedWeights, WeightPlacement, image_payload
from accel.quant.random_model import random_quantized
from accel.sim.memory_model import MemoryModel
from accel.sim.run import build_harness, report, run_amaranth
from accel.spec import Conv2D, Dense, Flatten, MaxPooling2D, Network

from .hw.streams import run_simulation


def _streams(rng, memory, count):
    """``count`` streams one after another in the memory: random tiles of 1 to 3 words."""
    streams, base = [], 0
    for _ in range(count):
        rows, cols = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        tiles = rng.integers(-128, 128, (int(rng.integers(3, 12)), rows, cols))
        ws = StreamedWeights.build(memory=memory, base=base, tiles=tiles, weight_bits=8,
                                   compute_cycles=1)
        streams.append(ws)
        base = ws.end + int(rng.integers(0, 5))
    return streams


class _Bench(Elaboratable):
    def __init__(self, streams, memory):
        ws = streams[0]
        self.streams = [WeightStream(plan=s, lanes=s.words_per_tile * s.weights_per_word)
                        for s in streams]
        self.arbiter = WeightArbiter(ports=len(streams), addr_width=ws.addr_bits,
                                     max_burst=ws.max_burst, word_width=ws.word_bits,
                                     queue_depth=arbiter_queue_depth(memory))
        self.memory = MemoryModel(words=np.frombuffer(image_payload(streams), "<u2"), base=0,
                                  addr_width=ws.addr_bits, max_burst=ws.max_burst,
                                  word_width=ws.word_bits, gap_percent=0, jitter=False,
                                  min_latency=memory.read_latency,
                                  refresh_period=memory.refresh_period,
                                  refresh_cycles=memory.refresh_cycles)

    def elaborate(self, platform):
        m = Module()
        m.submodules.arbiter, m.submodules.memory = self.arbiter, self.memory
        for k, stream in enumerate(self.streams):
            m.submodules[f"stream{k}"] = stream
            wiring.connect(m, stream.mem, self.arbiter.ports[k])
        wiring.connect(m, self.arbiter.mem, self.memory.port)
        return m


def _offers(rng, tiles):
    """When each tile is first wanted: mostly back to back, sometimes after a wait (one
    longer than a refresh period now and then, where the model skips idle cycles)."""
    offers, t = [], 0
    for _ in range(tiles):
        t += int(rng.choice([0, 1, int(rng.integers(2, 40)), int(rng.integers(100, 400))],
                            p=[0.55, 0.2, 0.2, 0.05]))
        offers.append(t)
    return offers


@pytest.mark.parametrize("seed", range(12))
def test_arbiter_model_matches_the_hardware(seed):
    rng = np.random.default_rng(seed)
    latency = int(rng.integers(1, 12))
    period = int(rng.choice([0, int(rng.integers(40, 120))]))
    memory = ExternalMemory(kind="sdram", size_bytes=1 << 14, word_bits=16, clock_mhz=100.0,
                            words_per_cycle=0.9, max_burst=int(rng.choice([2, 4, 8])),
                            read_latency=latency, source="test", refresh_period=period,
                            refresh_cycles=int(rng.integers(1, 9)) if period else 0)
    streams = _streams(rng, memory, 3 if seed % 3 == 2 else 2)
    # Each stream's frame three times over, its tiles wanted from random cycles.
    offers = [_offers(rng, 3 * ws.tiles) for ws in streams]
    bench = _Bench(streams, memory)
    got = [[] for _ in streams]

    def taker(k):
        o = bench.streams[k].o

        async def testbench(ctx):
            t, times, want = 0, got[k], offers[k]
            while len(times) < len(want):
                ready = t >= (max(want[len(times)], times[-1] + 1) if times else want[0])
                ctx.set(o.ready, ready)
                _, _, valid = await ctx.tick().sample(o.valid)
                if ready and valid:
                    times.append(t)
                t += 1
            ctx.set(o.ready, 0)  # done: its reader prefetches on, as the model's does
        return testbench

    run_simulation(bench, [taker(k) for k in range(len(streams))], max_cycles=50_000)
    model = SharedMemory(streams, queue_depth=arbiter_queue_depth(memory))
    consumers = [OfferedTiles(o) for o in offers]
    model.run(consumers)
    for k, c in enumerate(consumers):
        assert c.times == got[k], f"seed {seed}: stream {k}"
    # The streams did get in each other's way: alone on the memory, they would be faster.
    alone = []
    for ws, want in zip(streams, offers, strict=True):
        path, times = WeightPath(ws), []
        for offer in want:
            times.append(path.take(max(offer, times[-1] + 1) if times else offer))
        alone.append(times)
    assert alone != got, f"seed {seed}"


class SteppedMemory(SharedMemory):
    """The model with no skipping: every cycle is a :meth:`SharedMemory.step`."""

    def _steps(self, consumers, due):
        event = False
        while self.t < due and not event:
            t = self.t
            wants = [c.wants(t) for c in consumers]
            for c, got in zip(consumers, self.step(wants), strict=True):
                event = c.update(t, got) or event
        return event


def _state(memory):
    return ({k: v for k, v in vars(memory).items() if k != "ports"},
            [{name: getattr(p, name) for name in p.__slots__} for p in memory.ports])


@pytest.mark.parametrize("seed", range(30))
def test_inlined_steps_match_stepping(seed):
    """The inlined cycle loop, which skips idle cycles, against :meth:`SharedMemory.step`
    a cycle at a time: every tile's cycle and the final state, on random memories, streams
    and waits (long ones, where the skips happen)."""
    rng = np.random.default_rng(100 + seed)
    period = int(rng.choice([0, int(rng.integers(20, 120))]))
    memory = ExternalMemory(kind="sdram", size_bytes=1 << 14, word_bits=16, clock_mhz=100.0,
                            words_per_cycle=0.9, max_burst=int(rng.integers(1, 17)),
                            read_latency=int(rng.integers(1, 13)), source="test",
                            refresh_period=period,
                            refresh_cycles=int(rng.integers(1, 11)) if period else 0)
    streams = _streams(rng, memory, int(rng.integers(2, 5)))
    offers = [_offers(rng, 4 * ws.tiles) for ws in streams]
    for ws, want in zip(streams, offers, strict=True):
        want += [want[-1] + int(rng.integers(2000, 5000))] * ws.tiles  # a long wait
    depth = int(rng.integers(1, 5))
    fast, stepped = (cls(streams, queue_depth=depth) for cls in (SharedMemory, SteppedMemory))
    got, want = ([OfferedTiles(o) for o in offers] for _ in range(2))
    fast.run(got)
    stepped.run(want)
    assert [c.times for c in got] == [c.times for c in want], f"seed {seed}"
    assert _state(fast) == _state(stepped), f"seed {seed}"


MEMORY = ExternalMemory(kind="sdram", size_bytes=1 << 16, word_bits=16, clock_mhz=100.0,
                        words_per_cycle=0.969, max_burst=16, read_latency=8, source="test")
# Refresh pauses (10 busy cycles in 97) that fall inside the weight streams.
REFRESHED = replace(MEMORY, refresh_period=97, refresh_cycles=10, read_latency=11)
# Short bursts: the arbiter's one request per two cycles and its owner queue matter.
SHORT = replace(MEMORY, max_burst=4, read_latency=3, refresh_period=53, refresh_cycles=4)


def _two_streams(seed, batch, memory=REFRESHED, array=(2, 2), units=12, streams=2):
    """The (6,6,1) test network with ``streams`` (2 or 3) Dense layers streamed."""
    dense = (Dense(units, activation="relu"), Dense(3)) if streams == 2 else \
        (Dense(units, activation="relu"), Dense(6, activation="relu"), Dense(3))
    net = Network("n", (6, 6, 1), (Conv2D(4, 3, activation="relu"), MaxPooling2D(),
                                   Flatten(), *dense))
    qnet = random_quantized(net, seed)
    stream = ("dense", "dense_1", "dense_2")[:streams]
    placement = WeightPlacement(family="ecp5", bram_blocks=None, memories=(memory,),
                                stream=stream, batch=batch)
    return qnet, make_plan(qnet, *array, weights=placement)


@pytest.mark.parametrize(("batch", "seed"), [(1, 1), (2, 2), (3, 3)])
def test_resumed_runs_match_fresh_ones(batch, seed, monkeypatch):
    """A joint run on other inputs resumes from the last run's snapshots: the same times as a
    run from reset, on inputs delayed from a random beat on, one after another (and the
    plan's fixed point with and without resuming), snapshots every few cycles."""
    monkeypatch.setattr(shared_stream_timing, "SNAPSHOT_CYCLES", 7)
    _, plan = _two_streams(seed, batch)
    n = 3 * batch
    offered = frame_times(plan, n, record={})
    key = [list(offered[s.inputs[0]]) for s in plan.streamed_stages]
    rng = np.random.default_rng(seed)
    runs = shared_stream_timing._Runs(plan)
    for _ in range(8):
        k = int(rng.integers(0, len(key)))
        start = int(rng.integers(0, len(key[k])))
        end = int(rng.integers(start + 1, len(key[k]) + 1))
        delay = int(rng.choice([1, 2, int(rng.integers(3, 400))]))
        key[k] = key[k][:start] + [t + delay for t in key[k][start:end]] + key[k][end:]
        frozen = tuple(tuple(v) for v in key)
        assert runs.times(frozen) == shared_stream_timing._Runs(plan).times(frozen), \
            f"seed {seed}: {k} {start} {end} {delay}"
    resumed = frame_times(plan, n)
    fresh_times = shared_stream_timing._Runs.times

    def fresh(self, key):
        self.last = None
        return fresh_times(self, key)

    monkeypatch.setattr(shared_stream_timing._Runs, "times", fresh)
    assert resumed == frame_times(plan, n), f"seed {seed}"


@pytest.mark.parametrize(("seed", "array", "memory", "units", "batch", "streams"), [
    (4, (2, 2), REFRESHED, 12, 1, 2), (8, (2, 2), REFRESHED, 12, 2, 2),
    (6, (2, 1), MEMORY, 10, 1, 2), (7, (3, 2), SHORT, 17, 1, 3),
    pytest.param(9, (3, 2), REFRESHED, 20, 3, 2, marks=pytest.mark.slow)])
def test_streams_timing_is_exact_in_the_harness(seed, array, memory, units, batch, streams):
    """Two (or three) Dense layers stream, through the arbiter on one deterministic memory
    model: the plan's latency, interval and every stage's end of every image are the
    simulation's."""
    qnet, plan = _two_streams(seed, batch, memory, array, units, streams)
    assert len(plan.streamed_stages) == streams and plan.latency_exact and plan.batch == batch
    n = 3 * batch  # the plan's interval is the third batch's
    images = np.random.default_rng(seed).integers(-128, 128, (n, 6, 6, 1))
    case = build_harness(qnet, plan, images, seed=seed, gap_percent=0, stall_percent=0,
                         memory_gap_percent=0)
    result = run_amaranth(case)
    r = report(case, result)
    assert r.bit_exact, r.first_mismatch
    assert result.scalars["weight_errors"] == 0
    times = frame_times(plan, n)
    for s, stage in enumerate(plan.stages):
        out = times[stage.output]
        per = len(out) // n
        assert [out[(i + 1) * per - 1] for i in range(n)] == list(result.stage_done[s]), \
            f"seed {seed}: stage {s}"
    assert r.latency_cycles == r.predicted_latency_cycles == plan.latency_cycles
    assert r.cycles_per_inference == r.predicted_cycles_per_inference
    done = r.image_done
    assert -(-(done[-1] - done[2 * batch - 1]) // batch) == plan.interval_cycles, done


_SPEC = ("name: two_streams\ninput: [6, 6, 2]\nlayers:\n"
         "  - Conv2D: {filters: 4, kernel_size: 3, activation: relu}\n"
         "  - Flatten: {}\n  - Dense: {units: 24, activation: relu}\n"
         "  - Dense: {units: 12, activation: relu}\n  - Dense: {units: 5}\n")


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 2])
def test_accel_sim_gaps_0_measures_two_streams(tmp_path, build_dir, batch):
    # `accel sim --gaps 0` with two Dense layers streamed from the ULX3S SDRAM's model (its
    # latency, bursts and refresh) through the arbiter: Verilator measures the plan's
    # latency and interval exactly (the interval: the third batch's per image, rounded up).
    spec = tmp_path / "two_streams.yaml"
    spec.write_text(_SPEC)
    args = [str(spec), "--seed", "2", "--array", "2x2", "--board", "ulx3s-85f", "--stream",
            "dense", "--stream", "dense_1", "--batch", str(batch)]
    result = CliRunner().invoke(main, ["plan", *args, "--json"])
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)
    assert planned["latency_exact"]
    assert [s["layer"] for s in planned["stages"] if s["streamed"]] == ["dense", "dense_1"]
    result = CliRunner().invoke(main, ["sim", *args, "--images", str(3 * batch), "--gaps",
                                       "0", "--build-dir", str(build_dir), "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["bit_exact"] and r["weight_words"] > 0, r["first_mismatch"]
    done = r["image_done"]
    assert r["latency_cycles"] == done[0] == planned["latency_cycles"]
    assert -(-(done[-1] - done[2 * batch - 1]) // batch) == planned["interval_cycles"], done
    assert r["cycles_per_inference"] == r["predicted_cycles_per_inference"]


def _wide(board):
    from accel.synth.boards import get_board

    net = Network("wide", (8, 8, 8), (Flatten(), Dense(40, activation="relu"), Dense(10)))
    return make_plan(random_quantized(net, 1, scheme="pow2"), 1, 1,
                     weights=get_board(board).placement(("dense", "dense_1")))


def _seed():
    from accel.cli import _make_plan
    from accel.quant.load import load_quantized_model

    spec = "examples/specs/seed_mnist_cnn.yaml"
    qnet = load_quantized_model(spec, seed=1, calibration=None, scheme="tflite-int8",
                                weight_bits=8, act_bits=8)
    return _make_plan(qnet, 4, 8, spec, "ulx3s-85f", ("dense", "dense_1"), 1)


@pytest.mark.parametrize(("case", "latency", "interval"), [
    # tests/test_weights_build.py's two-stream plans (iCEBreaker SPRAM, ULX3S SDRAM)
    ("wide icebreaker", 22_002, 20_891), ("wide ulx3s-85f", 22_230, 21_235),
    # bench/streamed_builds.md's two-stream build
    pytest.param("seed", 409_186, 206_639, marks=pytest.mark.slow)])
def test_two_stream_plans_of_the_tests_and_benchmarks_are_exact(case, latency, interval):
    plan = _seed() if case == "seed" else _wide(case.split()[1])
    assert [s.layer for s in plan.streamed_stages] == ["dense", "dense_1"]
    assert plan.latency_exact and plan.streams_settled, case
    assert (plan.latency_cycles, plan.interval_cycles) == (latency, interval), case
