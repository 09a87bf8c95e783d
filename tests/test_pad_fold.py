# amaranth: UnusedElaboratable=no
"""ZeroPadding2D / TFLite PAD folded into the window of the convolution that reads it: the
padding arithmetic, the window generator with explicit per-side padding (amaranth.sim, random
stalls, against NumPy), networks with a PAD bit-exact with the golden model in the accelerator
and the plan's latency and interval equal to the simulation's, and one-line refusals of the
PADs that cannot be folded."""

import numpy as np
import pytest
from click.testing import CliRunner

from accel.cli import main
from accel.errors import AccelError
from accel.plan.plan import make_plan, plan_dict
from accel.quant.random_model import random_quantized
from accel.sim.run import build_harness, report, run_amaranth
from accel.spec import (
    Add,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    MaxPooling2D,
    Network,
    ZeroPadding2D,
)
from accel.spec.shapes import ceil_div, fold_padding, window_2d
from tests.hw.test_window import check as check_window


def test_fold_padding_adds_the_windows_own_padding():
    # A PAD then VALID: the PAD's own amounts.
    assert fold_padding((4, 5), ((1, 1), (1, 1)), (3, 3), (1, 1), "valid") == ((1, 1), (1, 1))
    # MobileNet's ZeroPadding2D(((0, 1), (0, 1))) then a 3x3 stride-2 VALID conv.
    assert fold_padding((6, 6), ((0, 1), (0, 1)), (3, 3), (2, 2), "valid") == ((0, 1), (0, 1))
    # A PAD then SAME: SAME's padding is computed on the padded size, then added.
    assert fold_padding((5, 4), ((1, 0), (0, 1)), (3, 3), (1, 1), "same") == ((2, 1), (1, 2))


@pytest.mark.parametrize("seed", range(24))
def test_explicit_padding_windows_are_the_padded_image(seed):
    """The window generator with explicit per-side padding (every window holding an image
    pixel) under random stalls: the windows of the image padded with the zero point."""
    rng = np.random.default_rng(seed + 3000)
    while True:
        h, w = (int(v) for v in rng.integers(1, 8, 2))
        kernel = tuple(int(v) for v in rng.integers(1, 5, 2))
        strides = tuple(int(v) for v in rng.integers(1, 3, 2))
        pads = tuple(tuple(int(v) for v in rng.integers(0, k, 2)) for k in kernel)
        if any(k > n + sum(p) for k, n, p in zip(kernel, (h, w), pads, strict=True)):
            continue
        win = window_2d((h, w), kernel, strides, pads)
        if any(a.start(a.out - 1) >= n for a, n in ((win.rows, h), (win.cols, w))):
            continue
        lanes, channels = int(rng.integers(1, 4)), int(rng.integers(1, 6))
        if win.out_shape[0] * win.out_shape[1] * kernel[0] * kernel[1] * \
                ceil_div(channels, lanes) <= 1500:
            break
    check_window(seed=seed, height=h, width=w, channels=channels, kernel=kernel,
                 strides=strides, padding=pads, lanes=lanes)


NETWORKS = {
    # A PAD then a VALID conv: the same as SAME for a 3x3 kernel, written the TFLite way.
    "pad_then_valid": ((4, 5, 2), (
        ZeroPadding2D(padding=1, name="pad"), Conv2D(3, 3, name="c"),
        Flatten(name="f"), Dense(2, name="d"))),
    # MobileNet's downsampling: ZeroPadding2D(((0, 1), (0, 1))) then a 3x3 stride-2 VALID
    # convolution, after a stem.
    "mobilenet_strided": ((6, 6, 2), (
        Conv2D(3, 3, padding="same", activation="relu", name="stem"),
        ZeroPadding2D(padding=((0, 1), (0, 1)), name="pad"), Conv2D(4, 3, strides=2, name="c"),
        Flatten(name="f"), Dense(2, name="d"))),
    # MobileNetV1's downsampling block as Keras writes it: the PAD, then a 3x3 stride-2 VALID
    # depthwise convolution, then the pointwise one.
    "mobilenet_depthwise_strided": ((7, 6, 2), (
        Conv2D(3, 3, padding="same", activation="relu", name="stem"),
        ZeroPadding2D(padding=((0, 1), (0, 1)), name="pad"),
        DepthwiseConv2D(3, strides=2, activation="relu", name="dw"),
        Conv2D(4, 1, activation="relu", name="pw"), Flatten(name="f"), Dense(2, name="d"))),
    # Asymmetric padding before a depthwise SAME window (both paddings add up).
    "pad_then_depthwise_same": ((5, 4, 3), (
        ZeroPadding2D(padding=((1, 0), (0, 1)), name="pad"),
        DepthwiseConv2D(3, padding="same", name="dw"), Conv2D(2, 1, name="c"),
        Flatten(name="f"), Dense(2, name="d"))),
}


def _run(qnet, plan, *, images, seed, gaps):
    x = np.random.default_rng(seed).integers(qnet.input.qmin, qnet.input.qmax + 1,
                                             (images, *qnet.input_shape))
    case = build_harness(qnet, plan, x, seed=seed + 1, gap_percent=gaps, stall_percent=gaps)
    return report(case, run_amaranth(case, max_cycles=300_000))


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_pad_network_bit_exact_under_stalls(name):
    shape, layers = NETWORKS[name]
    qnet = random_quantized(Network(name, shape, layers), 0)
    plan = make_plan(qnet, 2, 2)
    r = _run(qnet, plan, images=2, seed=3, gaps=25)
    assert r.bit_exact and r.mismatches == 0, (name, r.first_mismatch)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_pad_interval_is_the_plan(name):
    shape, layers = NETWORKS[name]
    qnet = random_quantized(Network(name, shape, layers), 1)
    plan = make_plan(qnet, 2, 2)
    assert plan.latency_exact, name
    r = _run(qnet, plan, images=3, seed=0, gaps=0)
    assert r.bit_exact, r.first_mismatch
    assert r.cycles_per_inference == plan.interval_cycles, name
    assert r.latency_cycles == plan.latency_cycles, name


def test_the_plan_folds_the_pad_into_the_window():
    shape, layers = NETWORKS["mobilenet_strided"]
    qnet = random_quantized(Network("m", shape, layers), 0)
    plan = make_plan(qnet, 2, 2)
    assert [s.layer for s in plan.stages] == ["stem", "c", "d"]  # no stage for the PAD
    conv = plan.stages[1]
    g = conv.geometry
    assert (g.in_h, g.in_w, g.out_h, g.out_w) == (6, 6, 3, 3)
    assert g.padding == conv.window.padding == ((0, 1), (0, 1))
    # It reads the stem's stream; the window pads with its input zero point, the PAD's.
    assert conv.inputs[0].startswith("stem")
    assert conv.window.zero_point == qnet.layers[2].input.zero_point \
        == qnet.layers[1].output.zero_point
    entry = plan_dict(plan)["stages"][1]
    assert entry["padding"] == ((0, 1), (0, 1)) and entry["input"] == [6, 6, 3]


def _plan_error(layers, shape=(4, 4, 2)):
    qnet = random_quantized(Network("x", shape, tuple(layers)), 0)
    with pytest.raises(AccelError) as info:
        make_plan(qnet, 2, 2)
    return str(info.value)


def test_a_pad_read_by_a_pool_is_refused_in_one_line():
    message = _plan_error([
        Conv2D(2, 1, name="a"), ZeroPadding2D(padding=1, name="pad"),
        MaxPooling2D(2, name="mp"), Flatten(name="f"), Dense(2, name="d")])
    assert message == ("layer 1 (pad): a PAD has a hardware lowering only when one Conv2D or "
                       "DepthwiseConv2D reads it (it is folded into that window), not layer 2 "
                       "(mp, max_pool2d)")


def test_a_pad_read_twice_is_refused_in_one_line():
    message = _plan_error([
        ZeroPadding2D(padding=1, name="pad"), Conv2D(2, 3, name="a"),
        Conv2D(2, 3, name="b", inputs=("pad",)), Add(name="s", inputs=("a", "b")),
        Flatten(name="f"), Dense(2, name="d")])
    assert message == ("layer 0 (pad): a PAD has a hardware lowering only when one Conv2D or "
                       "DepthwiseConv2D reads it (it is folded into that window), not 2 layers")


def test_windows_outside_the_image_are_refused_in_one_line():
    message = _plan_error([
        ZeroPadding2D(padding=1, name="pad"), Conv2D(2, 1, name="c"), Flatten(name="f"),
        Dense(2, name="d")])
    assert message == ("layer 1 (c): the padding ((1, 1), (1, 1)) of pad puts whole windows "
                       "outside the image; that has no hardware lowering")


def test_cli_plan_refuses_a_pad_before_a_dense_with_exit_2(tmp_path):
    spec = tmp_path / "pad.yaml"
    spec.write_text("name: pad\ninput: [4, 4, 2]\nlayers:\n"
                    "  - Conv2D: {filters: 2, kernel_size: 1, name: a}\n"
                    "  - ZeroPadding2D: {padding: 1, name: pad}\n"
                    "  - Flatten: {name: f}\n  - Dense: {units: 2, name: d}\n")
    result = CliRunner().invoke(main, ["plan", str(spec), "--seed", "1"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("accel: error: ")
    assert result.stderr.endswith(": layer 1 (pad): a PAD has a hardware lowering only when "
                                  "one Conv2D or DepthwiseConv2D reads it (it is folded into "
                                  "that window), not layer 2 (f, flatten)\n")
    assert len(result.stderr.splitlines()) == 1
