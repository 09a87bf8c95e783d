"""The hardware plan: stage sizing, folding and the cycle model."""

import json
from collections import Counter

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.cli import main
from accel.errors import AccelError
from accel.plan.plan import make_plan, parse_array, stage_cycles
from accel.quant.random_model import random_quantized
from accel.spec import Conv2D, Dense, Flatten, MaxPooling2D, Network, load_network

from .paths import SPECS


def test_seed_network_8x8_is_balanced():
    plan = make_plan(random_quantized(load_network(SPECS / "seed_mnist_cnn.yaml"), 1), 8, 8)
    assert [(s.layer, s.pool, s.rows, s.cols, s.k_tiles, s.f_tiles, s.cycles)
            for s in plan.stages] == [
        ("conv2d", "max_pooling2d", 1, 4, 9, 8, 56_448),
        ("conv2d_1", "max_pooling2d_1", 8, 8, 36, 8, 56_448),
        ("dense", None, 1, 8, 3136, 16, 50_176),
        ("dense_1", None, 1, 1, 128, 10, 1_280),
    ]
    assert plan.pes == 77 and plan.macs == 4_241_152
    assert plan.interval_cycles == 56_448
    assert plan.interval_cycles / plan.ideal_cycles < 1.03


def test_conv_11x11x64_uses_the_whole_array_exactly():
    net = load_network(SPECS / "conv11x11x64.json")
    for rows, cols in ((1, 1), (2, 2), (4, 4), (8, 8)):
        plan = make_plan(random_quantized(net, 0), rows, cols)
        (stage,) = plan.stages
        assert stage.cycles * stage.pes == stage.macs  # 100% utilisation


@settings(max_examples=60, deadline=None)
@given(h=st.integers(3, 12), cin=st.integers(1, 9), filters=st.integers(1, 9),
       k=st.integers(1, 3), s=st.integers(1, 2), units=st.integers(1, 6),
       rows=st.integers(1, 4), cols=st.integers(1, 4), pool=st.booleans())
def test_cycle_model_counts_the_schedule(h, cin, filters, k, s, units, rows, cols, pool):
    """Stage cycles equal a literal count of the schedule: for every output pixel, f-tile,
    tap and channel group, one array cycle; no stage exceeds the allowed array."""
    layers = [Conv2D(filters, k, strides=s, padding="same")]
    if pool:
        layers.append(MaxPooling2D(pool_size=1))
    layers += [Flatten(), Dense(units)]
    net = Network("n", (h, h, cin), tuple(layers))
    plan = make_plan(random_quantized(net, 0), rows, cols)
    for stage in plan.stages:
        g = stage.geometry
        assert stage.rows <= rows and stage.cols <= cols
        count = sum(1 for _pixel in range(g.out_h * g.out_w)
                    for _f in range(0, g.filters, stage.cols)
                    for _tap in range(g.kernel[0] * g.kernel[1])
                    for _group in range(0, g.in_channels, stage.rows))
        assert stage.cycles == count == stage_cycles(g, stage.rows, stage.cols)[0]
        assert stage.cycles * stage.pes >= stage.macs
    # The interval is at least the busiest stage and the streams; more where a stage cannot
    # take a window every Kt * Ft cycles (a 1-beat window waits for its replay bank) or a
    # line buffer refills at the frame boundary (tests/test_timing_exact.py measures it).
    assert plan.interval_cycles >= max(max(st_.cycles for st_ in plan.stages),
                                       plan.input_cycles, plan.output_cycles)
    assert plan.input_cycles == h * h * cin


def test_a_pool_that_follows_no_conv_is_a_stage_of_its_own():
    from accel.plan.plan import PoolStagePlan

    net = Network("n", (8, 8, 1), (MaxPooling2D(), Conv2D(2, 3), Flatten(), Dense(2)))
    plan = make_plan(random_quantized(net, 0), 2, 2)
    first = plan.stages[0]
    assert isinstance(first, PoolStagePlan) and first.kind == "max_pool2d"
    assert (first.pes, first.lanes, first.cycles) == (0, 1, 64)
    assert plan.stages[1].pool is None


def test_a_layer_without_hardware_is_named_in_one_line():
    from accel.spec import ZeroPadding2D

    # A PAD has hardware only folded into a convolution's window (tests/test_pad_fold.py).
    net = Network("n", (8, 8, 1), (ZeroPadding2D(1), MaxPooling2D(), Conv2D(2, 3), Flatten(),
                                   Dense(2)))
    with pytest.raises(AccelError, match=r"^layer 0 \(zero_padding2d\): a PAD has a hardware "
                       r"lowering only when one Conv2D or DepthwiseConv2D reads it \(it is "
                       r"folded into that window\), not layer 1 \(max_pooling2d, max_pool2d\)$"):
        make_plan(random_quantized(net, 0), 2, 2)


@pytest.mark.parametrize("text", ["4", "0x4", "4x", "axb", "4x4x4"])
def test_parse_array_errors(text):
    with pytest.raises(AccelError, match=r"^--array must be ROWSxCOLS"):
        parse_array(text)


def test_plan_cli_json():
    result = CliRunner().invoke(main, ["plan", str(SPECS / "seed_mnist_cnn.yaml"), "--seed",
                                       "1", "--array", "4x4", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["array"] == "4x4" and data["macs"] == 4_241_152
    assert [s["array"] for s in data["stages"]][1] == [4, 4]



#: The plan's name for each memory a stage's blocks instantiate (by hierarchy path).
_MEMORY_NAMES = {"window.lines": "line_buffer", "replay.mem": "replay",
                 "replay.out.storage": "replay_fifo", "array.fifo.storage": "array_fifo",
                 "requant.params": "requant", "requant.fifo.storage": "requant_fifo",
                 "pool.partial": "pool", "pool.fifo.storage": "pool_fifo"}


def _built_memories(component) -> Counter:
    """``(plan name, words, bits)`` of every memory in the elaborated hierarchy."""
    from amaranth import Shape
    from amaranth.hdl import Fragment

    found = Counter()

    def walk(fragment, path):
        for sub, name, _ in fragment.subfragments:
            where = (*path, str(name))
            if type(sub).__name__ == "MemoryInstance":
                dotted = ".".join(where)
                plan_name = "weights" if ".rom" in dotted else _MEMORY_NAMES[dotted]
                found[plan_name, sub._data.depth, Shape.cast(sub._data.shape).width] += 1
            walk(sub, where)

    walk(Fragment.get(component, None), ())
    return found


@pytest.mark.parametrize(("model", "array"), [("digits_small.tflite", (1, 1)),
                                              ("digits_small.tflite", (2, 4)),
                                              ("digits_valid_s2.tflite", (4, 4))])
def test_components_build_exactly_the_memories_the_plan_counts(model, array):
    """Every memory the stage's blocks instantiate (built from the sub-plans alone), with its
    words and bits, is one the plan lists, and the plan lists no other; FIFO depths and
    latencies are the blocks' own."""
    from accel.hw.stage import ComputeStage
    from accel.quant.load import load_quantized_model

    from .paths import EXAMPLES

    qnet = load_quantized_model(EXAMPLES / "digits" / model)
    for stage in make_plan(qnet, *array).stages:
        hw = ComputeStage(plan=stage)
        want = Counter()
        for memory in stage.memories:
            want[memory.name, memory.words, memory.bits] += memory.count
        assert _built_memories(hw) == want, stage.layer
        assert hw.requantizer.latency == stage.requant.latency
        assert hw.requantizer._fifo_depth == stage.requant.fifo_depth
        assert (hw.array.latency, hw.array.fifo_depth) == (stage.array.latency,
                                                           stage.array.fifo_depth)
        assert hw.replay.latency == stage.replay.latency
        assert hw.accumulator.latency == stage.accumulator.latency
        if stage.window is not None:
            assert hw.window.buffer_rows == stage.window.buffer_rows
            assert hw.window.latency == stage.window.latency
        if stage.maxpool is not None:
            assert hw.maxpool.latency == stage.maxpool.latency
