"""The whole accelerator in the self-checking harness (amaranth.sim): every layer of every
image bit-exact with the golden model under random input gaps and output stalls, and the
cycle model within 2% of the measured interval."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accel.errors import AccelError
from accel.plan.plan import make_plan
from accel.quant.random_model import random_quantized
from accel.sim.run import build_harness, report, run_amaranth
from accel.spec import (
    AveragePooling2D,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAveragePooling2D,
    MaxPooling2D,
    Network,
)


def simulate(net, array, *, seed=0, images=2, scheme="tflite-int8", bits=8):
    qnet = random_quantized(net, seed, scheme=scheme, weight_bits=bits, act_bits=bits)
    plan = make_plan(qnet, *array)
    rng = np.random.default_rng(seed)
    x = rng.integers(qnet.input.qmin, qnet.input.qmax + 1, (images, *qnet.input_shape))
    case = build_harness(qnet, plan, x, seed=seed + 1, gap_percent=25, stall_percent=25)
    return report(case, run_amaranth(case, max_cycles=400_000))


def assert_exact_and_timed(r):
    assert r.bit_exact, r.first_mismatch
    assert r.mismatches == 0
    measured = r.cycles_per_inference
    # The cycle model, with the input stream slowed by the random gaps this run inserted.
    predicted = max(r.predicted_interval_cycles, r.input_limited_cycles)
    # A steady-state figure: with two images of a few dozen cycles, the second arrives while
    # the first is still in flight, so only images of 500 cycles or more are timed (within 2%;
    # the model leaves out a few cycles of refill at frame boundaries).
    if predicted >= 500:
        assert abs(measured / predicted - 1) <= 0.02, r


NETWORKS = {
    "valid_stride2_odd": ((9, 7, 3), (Conv2D(4, 3, strides=2, activation="relu"), Flatten(),
                                      Dense(3))),
    "pool_drops_border": ((7, 7, 2), (Conv2D(3, 2, activation="relu6"), MaxPooling2D(),
                                      Flatten(), Dense(4))),
    "same_pool_overlap": ((5, 6, 1), (Conv2D(5, 3, padding="same"),
                                      MaxPooling2D(pool_size=3, strides=2, padding="same"),
                                      Flatten(), Dense(2))),
    "two_convs_channels_odd": ((6, 6, 3), (Conv2D(5, 3, padding="same", activation="relu"),
                                           MaxPooling2D(), Conv2D(7, 2, activation="relu"),
                                           Flatten(), Dense(3))),
    "dense_only": ((4, 4, 1), (Flatten(), Dense(9, activation="relu"), Dense(4))),
    "depthwise_separable": ((6, 5, 3), (Conv2D(4, 3, padding="same", activation="relu"),
                                        DepthwiseConv2D(3, padding="same", activation="relu"),
                                        Conv2D(5, 1, activation="relu"), Flatten(), Dense(3))),
    "depthwise_first_valid_stride2": ((7, 8, 5), (DepthwiseConv2D((3, 2), strides=2),
                                                  Conv2D(3, 1), Flatten(), Dense(2))),
    # Stand-alone pooling stages: average (SAME, edge windows), global mean, a max pool first.
    "avg_pool_same_after_conv": ((6, 5, 3), (Conv2D(4, 3, padding="same", activation="relu"),
                                             AveragePooling2D(3, strides=2, padding="same"),
                                             Flatten(), Dense(3))),
    "global_mean_after_depthwise": ((5, 4, 3), (DepthwiseConv2D(3, padding="same"),
                                                Conv2D(5, 1), GlobalAveragePooling2D(),
                                                Dense(3))),
    "max_pool_first": ((6, 6, 2), (MaxPooling2D(2), Conv2D(3, 2), Flatten(), Dense(2))),
}

#: Depthwise networks with a depth multiplier (the array needs at least ``m`` PEs).
DEPTHWISE_MULTIPLIER = {
    "m2_same": ((5, 6, 3), (DepthwiseConv2D(3, padding="same", depth_multiplier=2,
                                            activation="relu6"), Flatten(), Dense(3))),
    "m3_after_conv": ((6, 6, 2), (Conv2D(3, 2, activation="relu"),
                                  DepthwiseConv2D(2, strides=2, depth_multiplier=3),
                                  Conv2D(4, 1), Flatten(), Dense(2))),
}


@pytest.mark.parametrize("array", [(1, 1), (2, 3), (3, 2)], ids=lambda a: f"{a[0]}x{a[1]}")
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_bit_exact(name, array):
    shape, layers = NETWORKS[name]
    r = simulate(Network(name, shape, layers), array)
    assert_exact_and_timed(r)


@pytest.mark.parametrize("array", [(2, 2), (3, 4)], ids=lambda a: f"{a[0]}x{a[1]}")
@pytest.mark.parametrize("name", sorted(DEPTHWISE_MULTIPLIER))
def test_depthwise_multiplier_bit_exact(name, array):
    shape, layers = DEPTHWISE_MULTIPLIER[name]
    r = simulate(Network(name, shape, layers), array, seed=3)
    assert_exact_and_timed(r)


def test_depthwise_stage_is_planned_from_the_block_sizing():
    """The depthwise stage's plan: ``L = floor(R * C / m)`` lanes, ``L * m`` PEs, cycles
    from :func:`accel.hw.depthwise.depthwise_cycles`, the block built from the plan agrees,
    and the regroups carry ``L`` lanes in and ``L * m`` out."""
    from amaranth import Fragment

    from accel.hw.depthwise import DepthwiseStage, depthwise_cycles
    from accel.plan.plan import DepthwiseStagePlan, plan_dict

    shape, layers = DEPTHWISE_MULTIPLIER["m3_after_conv"]
    qnet = random_quantized(Network("m", shape, layers), 0)
    plan = make_plan(qnet, 2, 4)
    dw = plan.stages[1]
    assert isinstance(dw, DepthwiseStagePlan)
    g = dw.geometry
    assert dw.depthwise.lanes == dw.rows * dw.cols // 3 and dw.pes == dw.depthwise.lanes * 3
    assert dw.cycles == depthwise_cycles(height=g.in_h, width=g.in_w, channels=g.in_channels,
                                         kernel=g.kernel, strides=g.strides,
                                         padding=g.padding, depth_multiplier=3,
                                         rows=dw.rows, cols=dw.cols)
    block = DepthwiseStage.from_plan(dw)
    Fragment.get(block, None)  # elaborated: the plan is enough to build it
    assert (block.cycles, block.latency, block.pes, block.acc_bits) == \
        (dw.cycles, dw.depthwise.latency, dw.pes, dw.depthwise.acc_bits)
    assert dw.multipliers["ecp5"] == dw.pes + dw.requant.multipliers["ecp5"]
    consumer = {r.output: r for r in plan.regroups}
    assert consumer[dw.inputs[0]].lanes_out == dw.in_lanes
    assert plan.stages[2].inputs[0] != dw.output  # regrouped from L * m lanes
    stage_json = plan_dict(plan)["stages"][1]
    assert stage_json["kind"] == "depthwise_conv2d" and stage_json["pes"] == dw.pes


def test_depthwise_multiplier_above_the_array_is_one_line():
    shape, layers = DEPTHWISE_MULTIPLIER["m3_after_conv"]
    qnet = random_quantized(Network("m", shape, layers), 0)
    with pytest.raises(AccelError, match=r"^layer 1 \(depthwise_conv2d\): a depthwise layer "
                       r"with depth_multiplier 3 needs an array of at least that many PEs, "
                       r"not 1x2$"):
        make_plan(qnet, 1, 2)


def test_pow2_scheme_bit_exact():
    shape, layers = NETWORKS["two_convs_channels_odd"]
    r = simulate(Network("p", shape, layers), (2, 2), scheme="pow2", bits=6)
    assert_exact_and_timed(r)


def test_back_to_back_images_measure_the_interval():
    shape, layers = NETWORKS["pool_drops_border"]
    r = simulate(Network("b", shape, layers), (2, 2), images=4)
    assert_exact_and_timed(r)
    bottleneck = max(r.layers, key=lambda layer: layer.predicted_cycles)
    assert bottleneck.measured_cycles == pytest.approx(bottleneck.predicted_cycles,
                                                          rel=0.02)


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(3, 7), w=st.integers(3, 7), cin=st.integers(1, 3),
       filters=st.integers(1, 4), k=st.integers(1, 3), s=st.integers(1, 2),
       padding=st.sampled_from(["valid", "same"]), pool=st.booleans(),
       units=st.integers(1, 4), rows=st.integers(1, 3), cols=st.integers(1, 3),
       seed=st.integers(0, 1000))
def test_random_small_networks(h, w, cin, filters, k, s, padding, pool, units, rows, cols,
                               seed):
    layers = [Conv2D(filters, k, strides=s, padding=padding, activation="relu")]
    if pool:
        layers.append(MaxPooling2D(pool_size=2, strides=1))
    layers += [Flatten(), Dense(units)]
    try:
        net = Network("r", (h, w, cin), tuple(layers))
    except AccelError:
        return  # a kernel or pool larger than its input: not a network
    assert_exact_and_timed(simulate(net, (rows, cols), seed=seed))


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(3, 7), w=st.integers(3, 7), cin=st.integers(1, 3),
       filters=st.integers(1, 4), k=st.integers(1, 3), s=st.integers(1, 2),
       padding=st.sampled_from(["valid", "same"]),
       pool=st.sampled_from([None, (2, 2, "valid"), (2, 1, "valid"), (3, 2, "same")]),
       second=st.integers(0, 4), units=st.integers(1, 4), rows=st.integers(1, 3),
       cols=st.integers(1, 3), seed=st.integers(0, 1000))
def test_latency_is_the_plan_on_random_small_networks(h, w, cin, filters, k, s, padding, pool,
                                                      second, units, rows, cols, seed):
    """With no gaps or stalls, one image: measured latency == plan latency, cycle for cycle,
    on conv (+ overlapping or dropping pool) (+ a second conv) + dense chains."""
    layers = [Conv2D(filters, k, strides=s, padding=padding, activation="relu")]
    if pool is not None:
        layers.append(MaxPooling2D(pool_size=pool[0], strides=pool[1], padding=pool[2]))
    if second:
        layers.append(Conv2D(second, 2, padding="same"))
    layers += [Flatten(), Dense(units)]
    try:
        qnet = random_quantized(Network("r", (h, w, cin), tuple(layers)), seed)
        plan = make_plan(qnet, rows, cols)
    except AccelError:
        return  # a kernel or pool larger than its input: not a network
    x = np.random.default_rng(seed).integers(qnet.input.qmin, qnet.input.qmax + 1,
                                             (1, *qnet.input_shape))
    case = build_harness(qnet, plan, x, seed=1, gap_percent=0, stall_percent=0)
    r = report(case, run_amaranth(case, max_cycles=400_000))
    assert r.bit_exact, r.first_mismatch
    assert r.latency_cycles == plan.latency_cycles, f"seed={seed}"


def test_a_corrupted_golden_value_is_located(monkeypatch):
    """The harness really checks: change one expected value of the second stage and the
    mismatch is reported there, not earlier."""
    from accel.sim import harness as harness_module

    original = harness_module.stage_words

    def corrupt(values, lanes, fill):
        words = original(values, lanes, fill)
        if values.ndim == 4 and values.shape[-1] == 7:  # the second convolution's output
            words = words.copy()
            words[5, 0] = words[5, 0] + 1 if words[5, 0] < 127 else 0
        return words

    monkeypatch.setattr(harness_module, "stage_words", corrupt)
    shape, layers = NETWORKS["two_convs_channels_odd"]
    r = simulate(Network("c", shape, layers), (2, 2))
    assert not r.bit_exact
    first = r.first_mismatch
    assert first.layer == "conv2d_1" and first.beat == 5 and first.count == 1
    assert [layer.mismatches for layer in r.layers] == [0, 1, 0]


def test_the_report_is_typed_and_its_json_is_plain_data():
    """The report is a frozen dataclass; ``to_json`` is what ``accel sim --json`` prints."""
    import dataclasses
    import json

    shape, layers = NETWORKS["pool_drops_border"]
    r = simulate(Network("t", shape, layers), (2, 2), images=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.bit_exact = False
    data = json.loads(json.dumps(r.to_json()))
    assert data["bit_exact"] is True and data["first_mismatch"] is None and "accuracy" not in data
    assert data["utilization"] == pytest.approx(r.ideal_cycles / r.cycles_per_inference)
    assert [layer["measured_cycles"] for layer in data["layers"]] == \
        [layer.measured_cycles for layer in r.layers]
    labels = list(r.predictions[:2]) + [r.predictions[2] + 1]
    assert r.with_accuracy(labels).to_json()["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(AccelError, match=r"^labels: need one label per image \(3\), not an "
                       r"array of shape \(2,\)$"):
        r.with_accuracy(labels[:2])


def test_tflite_float_dense_runs_wide_and_bit_exact():
    """digits_small.tflite's FULLY_CONNECTED requantizes in double (``float``); the planner
    proves an integer multiplier exact for it and builds the narrower ``wide`` requantizer,
    which the whole accelerator must run bit-exactly (the golden model is the float rule)."""
    from accel.plan.plan import RequantMode
    from accel.quant.load import load_quantized_model

    from .paths import EXAMPLES

    qnet = load_quantized_model(EXAMPLES / "digits" / "digits_small.tflite")
    plan = make_plan(qnet, 1, 2)
    dense = plan.stages[-1]
    assert qnet.layers[-2].requant.mode == "float"
    assert dense.requant.mode is RequantMode.WIDE and dense.requant.mult_bits < 53
    assert make_plan(qnet, 1, 2, allow_wide=False).stages[-1].requant.mode is RequantMode.FLOAT
    rng = np.random.default_rng(5)
    x = rng.integers(qnet.input.qmin, qnet.input.qmax + 1, (2, *qnet.input_shape))
    case = build_harness(qnet, plan, x, seed=6, gap_percent=25, stall_percent=25)
    assert_exact_and_timed(report(case, run_amaranth(case, max_cycles=400_000)))


@pytest.mark.parametrize("array", [(1, 1), (2, 2)])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_interval_is_the_plan_cycle_for_cycle(name, array):
    """With no input gaps and no output stalls, four images back to back: the measured
    steady-state interval and the first image's latency are exactly the plan's (the
    interval includes any window generator's refill at the frame boundary)."""
    shape, layers = NETWORKS[name]
    qnet = random_quantized(Network(name, shape, layers), 0)
    plan = make_plan(qnet, *array)
    x = np.random.default_rng(0).integers(qnet.input.qmin, qnet.input.qmax + 1,
                                          (4, *qnet.input_shape))
    case = build_harness(qnet, plan, x, seed=1, gap_percent=0, stall_percent=0)
    r = report(case, run_amaranth(case, max_cycles=400_000))
    assert r.bit_exact, r.first_mismatch
    assert r.cycles_per_inference == plan.interval_cycles, (name, array)
    # The first image's latency (first input value to the last stage's last output beat),
    # for every stage kind: conv, dense, depthwise, average, global mean and max pool.
    assert plan.latency_exact
    assert r.latency_cycles == plan.latency_cycles, (name, array)


def test_latency_is_the_plan_cycle_for_cycle_on_digits_small():
    """A real TFLite model (conv, max pool, dense on a 2x4 array): the measured latency of
    one image with no gaps or stalls is the plan's, cycle for cycle."""
    from accel.quant.load import load_quantized_model

    from .paths import EXAMPLES

    qnet = load_quantized_model(EXAMPLES / "digits" / "digits_small.tflite")
    plan = make_plan(qnet, 2, 4)
    x = np.random.default_rng(0).integers(qnet.input.qmin, qnet.input.qmax + 1,
                                          (1, *qnet.input_shape))
    case = build_harness(qnet, plan, x, seed=1, gap_percent=0, stall_percent=0)
    r = report(case, run_amaranth(case, max_cycles=100_000))
    assert r.bit_exact, r.first_mismatch
    assert (r.latency_cycles, plan.latency_cycles) == (1136, 1136)
