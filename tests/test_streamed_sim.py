"""Streamed weights end to end: the accelerator with a Dense stage reading its weights from a
memory model (random latency, gaps, refresh pauses) inside the self-checking harness, in
amaranth.sim and through `accel sim --board` in Verilator, bit-exact with the golden model."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from accel.cli import main
from accel.plan.plan import make_plan
from accel.plan.timing import frame_times
from accel.plan.weights import ExternalMemory, WeightPlacement
from accel.quant.random_model import random_quantized
from accel.sim.run import build_harness, report, run_amaranth
from accel.spec import Conv2D, Dense, Flatten, MaxPooling2D, Network

MEMORY = ExternalMemory(kind="sdram", size_bytes=1 << 16, word_bits=16, clock_mhz=100.0,
                        words_per_cycle=0.969, max_burst=16, read_latency=8, source="test")


def _case(seed: int, plan_edit=None, batch: int = 1, images: int = 3):
    net = Network("n", (6, 6, 1), (Conv2D(4, 3, activation="relu"), MaxPooling2D(),
                                   Flatten(), Dense(12, activation="relu"), Dense(3)))
    qnet = random_quantized(net, seed)
    placement = WeightPlacement(family="ecp5", bram_blocks=None, memories=(MEMORY,),
                                stream=("dense",), batch=batch)
    plan = make_plan(qnet, 2, 2, weights=placement)
    if plan_edit is not None:
        plan = plan_edit(plan)
    images = np.random.default_rng(seed).integers(-128, 128, (images, 6, 6, 1))
    return plan, build_harness(qnet, plan, images, seed=seed, gap_percent=20,
                               stall_percent=20, memory_gap_percent=10)


@pytest.mark.parametrize("seed", [3])
def test_streamed_stage_in_the_harness_is_bit_exact(seed):
    plan, case = _case(seed)
    (stage,) = plan.streamed_stages
    result = run_amaranth(case)
    r = report(case, result)
    assert r.bit_exact and r.mismatches == 0, f"seed {seed}: {r.first_mismatch}"
    # Every image read its frame (the reader may have prefetched part of a fourth).
    assert r.weight_words >= 3 * stage.streamed.words_per_image
    assert result.scalars["weight_errors"] == 0


@pytest.mark.parametrize(("batch", "seed"), [(2, 4), (3, 5)])
def test_batched_streamed_stage_in_the_harness_is_bit_exact(batch, seed):
    plan, case = _case(seed, batch=batch, images=2 * batch)
    (stage,) = plan.streamed_stages
    assert stage.streamed.batch == plan.batch == batch
    result = run_amaranth(case)
    r = report(case, result)
    assert r.bit_exact and r.mismatches == 0, f"seed {seed}: {r.first_mismatch}"
    # One frame per batch of images, not one per image.
    words = stage.streamed.words_per_image
    assert 2 * words <= r.weight_words < 4 * words
    assert result.scalars["weight_errors"] == 0
    assert r.cycles_per_inference is not None and r.cycles_per_inference > 0


# A memory with refresh pauses (10 busy cycles in 97) that fall inside the weight stream.
REFRESHED = replace(MEMORY, refresh_period=97, refresh_cycles=10, read_latency=11)


@pytest.mark.parametrize(("seed", "array", "memory", "units", "weight_bits", "batch"), [
    (4, (2, 2), REFRESHED, 12, 8, 1), (8, (2, 2), REFRESHED, 12, 8, 2),
    # about 10-20 s each
    pytest.param(5, (3, 2), REFRESHED, 20, 8, 1, marks=pytest.mark.slow),
    pytest.param(7, (2, 4), REFRESHED, 9, 4, 1, marks=pytest.mark.slow),
    pytest.param(9, (3, 2), MEMORY, 10, 8, 3, marks=pytest.mark.slow),
    pytest.param(10, (2, 3), REFRESHED, 8, 4, 4, marks=pytest.mark.slow)])
def test_streamed_timing_is_exact_with_the_deterministic_memory(seed, array, memory, units,
                                                                 weight_bits, batch):
    """Without gaps and stalls (the memory model deterministic), the plan's timing of a
    streamed Dense stage is the simulation's, cycle for cycle, at batch 1 to 4: every stage's
    end of every image, the latency and the per-image interval of the run; the memory's
    latency, burst and refresh come from the plan's ExternalMemory."""
    net = Network("n", (6, 6, 1), (Conv2D(4, 3, activation="relu"), MaxPooling2D(),
                                   Flatten(), Dense(units, activation="relu"), Dense(3)))
    qnet = random_quantized(net, seed, scheme="pow2" if weight_bits == 4 else "tflite-int8",
                            **({"weight_bits": 4} if weight_bits == 4 else {}))
    placement = WeightPlacement(family="ecp5", bram_blocks=None, memories=(memory,),
                                stream=("dense",), batch=batch)
    plan = make_plan(qnet, *array, weights=placement)
    assert plan.latency_exact and len(plan.streamed_stages) == 1 and plan.batch == batch
    n = 4 if batch == 1 else 2 * batch
    images = np.random.default_rng(seed).integers(-128, 128, (n, 6, 6, 1))
    case = build_harness(qnet, plan, images, seed=seed, gap_percent=0, stall_percent=0,
                         memory_gap_percent=0)
    result = run_amaranth(case)
    r = report(case, result)
    assert r.bit_exact, r.first_mismatch
    assert result.scalars["first_input"] == 0  # the memory starts with the input (MEMORY_START)
    times = frame_times(plan, n)
    for s, stage in enumerate(plan.stages):
        out = times[stage.output]
        per = len(out) // n
        assert [out[(i + 1) * per - 1] for i in range(n)] == list(result.stage_done[s]), s
    assert r.latency_cycles == r.predicted_latency_cycles == plan.latency_cycles
    assert r.cycles_per_inference == r.predicted_cycles_per_inference
    # the plan's interval is the third batch's per image (frame_times over three batches)
    three = frame_times(plan, 3 * batch)[plan.output_stage.output]
    assert plan.interval_cycles == -(-(three[-1] - three[len(three) * 2 // 3 - 1]) // batch)


def test_a_wrong_weight_in_memory_is_caught():
    def corrupt(plan):
        (stage,) = plan.streamed_stages
        words = stage.streamed.words.copy()
        words[len(words) // 2] ^= 0x0101
        bad = replace(stage, streamed=replace(stage.streamed, words=words))
        return replace(plan, stages=tuple(bad if s is stage else s for s in plan.stages))

    _, case = _case(3, corrupt)
    r = report(case, run_amaranth(case))
    assert not r.bit_exact and r.layers[1].mismatches > 0


@pytest.mark.slow
def test_accel_sim_board_streams_from_spram(tmp_path, build_dir):
    # 512 x 40 int8 weights (164 kbit) do not fit the iCE40UP5K's 30 block RAMs (120 kbit),
    # so the plan streams the first Dense layer from the SPRAM; Verilator runs it bit-exact.
    spec = tmp_path / "wide_dense.yaml"
    spec.write_text("name: wide_dense\ninput: [8, 8, 8]\nlayers:\n  - Flatten: {}\n"
                    "  - Dense: {units: 40, activation: relu}\n  - Dense: {units: 10}\n")
    result = CliRunner().invoke(main, ["plan", str(spec), "--seed", "1", "--array", "1x2",
                                       "--board", "icebreaker", "--json"])
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)
    streamed = [s["streamed"] for s in planned["stages"]]
    assert streamed[0]["memory"] == "spram" and streamed[1] is None
    result = CliRunner().invoke(main, ["sim", str(spec), "--seed", "1", "--array", "1x2",
                                       "--board", "icebreaker", "--images", "3",
                                       "--build-dir", str(build_dir), "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["bit_exact"] and r["mismatches"] == 0, r["first_mismatch"]
    assert r["weight_words"] >= 3 * streamed[0]["words_per_image"]
    # Bound by the weight stream: 10,240 words per image. The plan's interval (exact against
    # the deterministic memory model) is within 1 % of the stream's bound; this run's random
    # latency and 2 % gaps make it a little slower.
    assert abs(r["predicted_interval_cycles"] / r["stream_cycles"] - 1) <= 0.01, r
    assert 0.99 <= r["cycles_per_inference"] / r["predicted_interval_cycles"] <= 1.10, r


def test_accel_sim_refuses_a_partial_batch():
    result = CliRunner().invoke(main, ["sim", "examples/specs/seed_mnist_cnn.yaml", "--seed",
                                       "1", "--board", "ulx3s-85f", "--batch", "4",
                                       "--images", "6"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "accel: error: --batch 4: 6 images are not a whole number of batches (give --images "
        "a multiple of 4)")


@pytest.mark.parametrize(("args", "message"), [
    (["--batch", "0"], "Invalid value for '--batch': 0 is not in the range x>=1."),
    (["--batch", "2.5"], "Invalid value for '--batch': '2.5' is not a valid integer range."),
    (["--batch", "2"], ("accel: error: --batch 2: needs --board (it batches streamed "
                       "weights)")),
    (["--board", "ulx3s-85f", "--batch", "64"],
     ("accel: error: examples/specs/seed_mnist_cnn.yaml: --batch 64: stage 2 (dense) buffers "
     "64 images in 222 block RAMs; the plan needs 275, more than the 208 of --board "
     "ulx3s-85f")),
])
def test_bad_batches_are_one_line(args, message):
    result = CliRunner().invoke(main, ["plan", "examples/specs/seed_mnist_cnn.yaml", "--seed",
                                       "1", "--array", "4x8", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output.strip().splitlines()[-1], result.output


@pytest.mark.slow
def test_accel_sim_batch_4_in_verilator(tmp_path, build_dir):
    # A streamed Dense stage at batch 4 in Verilator: 8 images (two batches), the memory
    # model's random latency, gaps and refresh, random input gaps and output stalls.
    spec = tmp_path / "batched.yaml"
    spec.write_text("name: batched\ninput: [6, 6, 2]\nlayers:\n"
                    "  - Conv2D: {filters: 4, kernel_size: 3, activation: relu}\n"
                    "  - Flatten: {}\n  - Dense: {units: 16, activation: relu}\n"
                    "  - Dense: {units: 5}\n")
    args = [str(spec), "--seed", "2", "--array", "2x2", "--board", "ulx3s-85f", "--stream",
            "dense", "--batch", "4"]
    result = CliRunner().invoke(main, ["plan", *args, "--json"])
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)
    assert planned["batch"] == 4 and planned["stages"][1]["streamed"]["batch"] == 4
    result = CliRunner().invoke(main, ["sim", *args, "--images", "8", "--build-dir",
                                       str(build_dir), "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["bit_exact"] and r["mismatches"] == 0 and r["images"] == 8, r["first_mismatch"]
    words = planned["stages"][1]["streamed"]["words_per_image"]
    assert 2 * words <= r["weight_words"] < 4 * words


@pytest.mark.slow
def test_accel_sim_gaps_0_measures_the_plan(tmp_path, build_dir):
    # `accel sim --gaps 0` runs the deterministic memory model (the ULX3S SDRAM's latency,
    # bursts and refresh): Verilator measures the plan's latency and interval exactly.
    spec = tmp_path / "streamed.yaml"
    spec.write_text("name: streamed\ninput: [6, 6, 2]\nlayers:\n"
                    "  - Conv2D: {filters: 4, kernel_size: 3, activation: relu}\n"
                    "  - Flatten: {}\n  - Dense: {units: 24, activation: relu}\n"
                    "  - Dense: {units: 5}\n")
    args = [str(spec), "--seed", "2", "--array", "2x2", "--board", "ulx3s-85f", "--stream",
            "dense"]
    result = CliRunner().invoke(main, ["plan", *args, "--json"])
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)
    assert planned["latency_exact"]
    result = CliRunner().invoke(main, ["sim", *args, "--images", "4", "--gaps", "0",
                                       "--build-dir", str(build_dir), "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["bit_exact"], r["first_mismatch"]
    assert r["latency_cycles"] == r["predicted_latency_cycles"] == planned["latency_cycles"]
    assert r["cycles_per_inference"] == r["predicted_cycles_per_inference"]
    assert r["predicted_interval_cycles"] == planned["interval_cycles"]
