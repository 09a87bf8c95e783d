"""The plan's timing is the hardware's, cycle for cycle, on every stage kind: with no input
gaps or output stalls, the measured latency of the first image (first input value to the
last output beat) and the steady-state interval of images back to back equal
``NetworkPlan.latency_cycles`` and ``interval_cycles`` (amaranth.sim, the whole accelerator).

The cases cover residual joins (ResNet-8's identity and projection blocks: forks, skip
buffers and the Add's pipeline), depthwise stages (SAME and VALID, strides below, at and
above the kernel, a depth multiplier), stand-alone average, global mean and max pools
(overlapping, SAME edge windows, dropped borders), and frame-boundary refill: VALID windows
with a stride below the kernel whose line buffer cannot take the next frame's first rows
while the last windows are read, so the stage's period is longer than its cycles
(``accel.plan.timing.stage_period``) and that stage sets the interval."""

import numpy as np
import pytest

from accel.plan.plan import make_plan
from accel.plan.timing import stage_period
from accel.quant.random_model import random_quantized
from accel.sim.run import build_harness, report, run_amaranth
from accel.spec import (
    Add,
    AveragePooling2D,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAveragePooling2D,
    MaxPooling2D,
    Network,
)

#: name: (input shape, layers, array, refill): ``refill`` whether the interval is longer than
#: the slowest stage's cycles and the input stream (a window generator's frame-boundary refill).
CASES = {
    "conv_valid_refill": ((5, 4, 3), (Conv2D(2, (3, 2)), Flatten(), Dense(2)), (2, 2), True),
    "depthwise_valid_refill": ((7, 7, 2), (DepthwiseConv2D((3, 2), strides=(1, 2)),
                                           Flatten(), Dense(2)), (1, 1), True),
    "depthwise_m3_valid_refill": ((6, 5, 4), (DepthwiseConv2D((2, 3), strides=(1, 2),
                                                              depth_multiplier=3),
                                              Flatten(), Dense(2)), (2, 3), True),
    "depthwise_same_s2_avg_pool": ((8, 7, 3), (DepthwiseConv2D(3, strides=2, padding="same"),
                                               AveragePooling2D(2), Flatten(), Dense(3)),
                                   (2, 2), False),
    "depthwise_valid_s3_over_kernel": ((8, 8, 2), (DepthwiseConv2D(2, strides=3),
                                                   Conv2D(3, 1), Flatten(), Dense(2)),
                                       (1, 2), False),
    "depthwise_then_max_pool_same_overlap": ((7, 6, 2), (
        DepthwiseConv2D(3, padding="same", activation="relu"),
        MaxPooling2D(3, strides=2, padding="same"), Flatten(), Dense(2)), (1, 2), False),
    "max_pool_first_overlap_valid": ((7, 6, 2), (MaxPooling2D(3, strides=2), Conv2D(3, 2),
                                                 Flatten(), Dense(2)), (1, 1), False),
    "avg_pool_first_stride1": ((6, 6, 3), (AveragePooling2D(2, strides=1), Conv2D(2, 3),
                                           Flatten(), Dense(2)), (1, 3), False),
    "global_mean_after_valid_conv": ((6, 5, 2), (Conv2D(4, 3, activation="relu"),
                                                 GlobalAveragePooling2D(), Dense(3)),
                                     (2, 2), False),
    # ResNet-8's two kinds of residual block: an identity shortcut, then a stride-2 block with
    # a 1x1 projection on the skip path (read from the first Add's output), and a global mean.
    "resnet8_like": ((4, 4, 2), (
        Conv2D(3, 3, padding="same", activation="relu", name="stem"),
        Conv2D(3, 3, padding="same", activation="relu", name="a1"),
        Conv2D(3, 3, padding="same", name="a2"),
        Add(activation="relu", name="add1", inputs=("stem", "a2")),
        Conv2D(4, 3, strides=2, padding="same", activation="relu", name="b1"),
        Conv2D(4, 3, padding="same", name="b2"),
        Conv2D(4, 1, strides=2, padding="same", name="bp", inputs=("add1",)),
        Add(activation="relu", name="add2", inputs=("bp", "b2")),
        GlobalAveragePooling2D(name="gap"), Dense(3, name="d")), (2, 2), False),
    "ds_cnn_like": ((9, 6, 1), (Conv2D(4, (4, 3), strides=2, padding="same",
                                       activation="relu"),
                                DepthwiseConv2D(3, padding="same", activation="relu"),
                                Conv2D(4, 1, activation="relu"),
                                AveragePooling2D((2, 1)), GlobalAveragePooling2D(), Dense(3)),
                    (2, 2), False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_latency_and_interval_are_the_plan(name):
    shape, layers, array, refill = CASES[name]
    qnet = random_quantized(Network(name, shape, layers), 7)
    plan = make_plan(qnet, *array)
    assert plan.latency_exact
    busiest = max(max(s.cycles for s in plan.stages), plan.input_cycles, plan.output_cycles)
    assert (plan.interval_cycles > busiest) == refill, (name, plan.interval_cycles, busiest)
    assert plan.interval_cycles >= max(stage_period(s) for s in plan.stages)
    x = np.random.default_rng(7).integers(qnet.input.qmin, qnet.input.qmax + 1,
                                          (3, *qnet.input_shape))
    case = build_harness(qnet, plan, x, seed=1, gap_percent=0, stall_percent=0)
    r = report(case, run_amaranth(case, max_cycles=100_000))
    assert r.bit_exact, r.first_mismatch
    assert r.latency_cycles == plan.latency_cycles, name
    assert r.cycles_per_inference == plan.interval_cycles, name


class _ICE40:
    """The ``family`` of Amaranth's iCE40 platforms, which is all the blocks look at."""

    family = "iCE40"


def test_ice40_sliced_logic_rom_keeps_the_plans_timing():
    # digits_small's conv layer on a 1x1 array: a 72-word weight ROM in logic, read on iCE40
    # as 16-word slices (accel.hw.mac_array, "Logic ROMs on iCE40"); bit-exact, with the
    # latency and interval of the plan.
    from accel.hw.mac_array import splits_logic_rom
    from accel.quant.load import load_quantized_model
    from tests.paths import EXAMPLES

    qnet = load_quantized_model(EXAMPLES / "digits" / "digits_small.tflite")
    plan = make_plan(qnet, 1, 1)
    assert splits_logic_rom(plan.stages[0].array.depth, plan.stages[0].weight_bits, "ice40")
    x = np.random.default_rng(3).integers(qnet.input.qmin, qnet.input.qmax + 1,
                                          (2, *qnet.input_shape))
    case = build_harness(qnet, plan, x, seed=1, gap_percent=0, stall_percent=0)
    r = report(case, run_amaranth(case, max_cycles=20_000, platform=_ICE40()))
    assert r.bit_exact, r.first_mismatch
    assert r.latency_cycles == plan.latency_cycles
    assert r.cycles_per_inference == plan.interval_cycles
