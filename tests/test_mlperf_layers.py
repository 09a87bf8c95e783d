"""The MLPerf Tiny layer set in specs, Keras files, the quantized network and post-training
quantization: Keras's numbers (from Keras itself where we have the model, by hand otherwise),
the npz round trip, TFLite's conventions, and every error in one line."""

import json
import re
import sys

import numpy as np
import pytest
import tflite
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.errors import AccelError
from accel.quant import golden
from accel.quant.float_model import float_forward, fold
from accel.quant.qnet import load_quantized, save_quantized
from accel.quant.random_model import random_float_weights, random_quantized
from accel.quant.tflite_model import load_tflite
from accel.spec import (
    Add,
    AveragePooling2D,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAveragePooling2D,
    MaxPooling2D,
    Network,
    ReLU,
    Reshape,
    ZeroPadding2D,
    load_network,
)
from accel.spec.keras_model import network_from_keras_config

from .paths import EXAMPLES
from .tflite_graph import Op, Tensor, write_graph

MLPERF = EXAMPLES / "mlperf_tiny"
SUMMARIES = json.loads((MLPERF / "keras_summaries.json").read_text())


def rows(network):
    return [(i.name, i.type_name, i.output_shape, i.params, i.macs) for i in network.infos]


# --- Keras's numbers ------------------------------------------------------------------------------


def test_kws_keras_file_summary_is_keras_own():
    """`accel summary kws_ds_cnn.keras`: every row (name, class, shape, params, connected-to,
    MACs) and the totals equal what Keras's model.summary() printed when the file was made."""
    want = SUMMARIES["kws_ds_cnn"]
    net = load_network(MLPERF / "kws_ds_cnn.keras")
    got = [{"name": i.name, "type": i.type_name, "output_shape": list(i.output_shape),
            "params": i.params,
            "connected_to": ["input_layer" if s == "input" else s for s in i.inputs],
            "macs": i.macs} for i in net.infos]
    assert got == [row for row in want["layers"] if row["type"] != "InputLayer"]
    non_trainable = sum(i.inferred.non_trainable for i in net.infos)
    assert (net.total_params, net.total_params - non_trainable, non_trainable, net.total_macs) \
        == (want["total_params"], want["trainable_params"], want["non_trainable_params"],
            want["macs"]) == (24_908, 23_756, 1_152, 2_656_768)


def test_cli_summary_of_the_kws_keras_file():
    from click.testing import CliRunner

    from accel.cli import main

    result = CliRunner().invoke(main, ["summary", str(MLPERF / "kws_ds_cnn.keras")])
    assert result.exit_code == 0, result.output
    assert "depthwise_conv2d (DepthwiseConv2D)" in result.output
    assert " Total params: 24,908 " in result.output
    assert " Total MACs per inference: 2,656,768" in result.output


#: Keras classes whose layers survive into the .tflite (BN and activations are folded away).
_COMPUTE = ("Conv2D", "DepthwiseConv2D", "Add", "AveragePooling2D", "Flatten", "Dense")


@pytest.mark.parametrize("name", ["ic_resnet8", "kws_ds_cnn", "vww_mobilenet_v1",
                                  "ad_autoencoder"])
def test_tflite_networks_have_keras_numbers(name):
    """The layers read from each .tflite have Keras's classes, shapes, params and MACs (the
    folded BatchNormalizations aside): MACs in total, rows as a multiset (the converter may
    order independent branches differently)."""
    want = SUMMARIES[name]
    net = load_tflite(MLPERF / f"{name}.tflite").network
    ours = sorted((i.type_name, tuple(i.output_shape), i.params, i.macs) for i in net.infos
                  if i.type_name in _COMPUTE)
    keras = sorted((r["type"], tuple(r["output_shape"]), r["params"], r["macs"])
                   for r in want["layers"] if r["type"] in _COMPUTE)
    assert ours == keras
    assert net.total_macs == want["macs"]


def test_every_new_layer_by_hand():
    """Keras's rules, computed by hand: depthwise params kh*kw*c*m (+ c*m bias) and MACs
    oh*ow*c*m*kh*kw; pools, padding, reshape, Add and Concatenate have no params or MACs."""
    net = Network("all", (10, 9, 3), (
        ZeroPadding2D(((1, 0), (2, 1))),                               # (11, 12, 3)
        DepthwiseConv2D(3, strides=2, depth_multiplier=2, name="dw"),  # (5, 5, 6)
        DepthwiseConv2D((3, 1), padding="same", use_bias=False),       # (5, 5, 6)
        Add(inputs=["dw", "depthwise_conv2d"], activation="relu"),
        AveragePooling2D(2, strides=1, padding="same"),                # (5, 5, 6)
        MaxPooling2D(2, name="mp"),                                    # (2, 2, 6)
        AveragePooling2D(3, strides=2, padding="valid", inputs=["add"]),  # (2, 2, 6)
        Concatenate(inputs=["mp", "average_pooling2d_1"]),             # (2, 2, 12)
        GlobalAveragePooling2D(keepdims=True),                         # (1, 1, 12)
        Reshape([-1]),                                                 # (12,)
        Dense(4),
    ))
    assert rows(net) == [
        ("zero_padding2d", "ZeroPadding2D", (11, 12, 3), 0, 0),
        ("dw", "DepthwiseConv2D", (5, 5, 6), 3 * 3 * 3 * 2 + 6, 5 * 5 * 6 * 9),
        ("depthwise_conv2d", "DepthwiseConv2D", (5, 5, 6), 3 * 6, 5 * 5 * 6 * 3),
        ("add", "Add", (5, 5, 6), 0, 0),
        ("average_pooling2d", "AveragePooling2D", (5, 5, 6), 0, 0),
        ("mp", "MaxPooling2D", (2, 2, 6), 0, 0),
        ("average_pooling2d_1", "AveragePooling2D", (2, 2, 6), 0, 0),
        ("concatenate", "Concatenate", (2, 2, 12), 0, 0),
        ("global_average_pooling2d", "GlobalAveragePooling2D", (1, 1, 12), 0, 0),
        ("reshape", "Reshape", (12,), 0, 0),
        ("dense", "Dense", (4,), 52, 48),
    ]
    assert net.infos[1].inferred.kernel_shape == (3, 3, 3, 2)
    assert net.find("add").layer.activation_name == "relu"


def test_keras_configs_of_the_new_layers():
    def layer(class_name, **config):
        return {"class_name": class_name, "config": config}

    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 8, 8, 2]}},
        layer("ZeroPadding2D", name="p", padding=[[1, 1], [0, 2]], data_format="channels_last"),
        layer("DepthwiseConv2D", name="d", kernel_size=[3, 3], strides=[1, 1], padding="valid",
              depth_multiplier=3, activation="relu", use_bias=True, dilation_rate=[1, 1]),
        layer("AveragePooling2D", name="a", pool_size=[2, 2], strides=None, padding="valid"),
        layer("GlobalAveragePooling2D", name="g", keepdims=False),
        layer("Reshape", name="r", target_shape=[6]),
    ]}}
    net = network_from_keras_config(config, "m.keras")
    assert rows(net) == [("p", "ZeroPadding2D", (10, 10, 2), 0, 0),
                         ("d", "DepthwiseConv2D", (8, 8, 6), 9 * 6 + 6, 8 * 8 * 6 * 9),
                         ("a", "AveragePooling2D", (4, 4, 6), 0, 0),
                         ("g", "GlobalAveragePooling2D", (6,), 0, 0),
                         ("r", "Reshape", (6,), 0, 0)]
    config["config"]["layers"][2]["config"]["dilation_rate"] = [2, 2]
    with pytest.raises(AccelError, match=r"^m\.keras: layer 1 \(d, DepthwiseConv2D\): "
                       r"dilation_rate \[2, 2\] is not supported \(no dilation\)$"):
        network_from_keras_config(config, "m.keras")


@pytest.mark.parametrize(("cls", "kwargs", "pattern"), [
    (DepthwiseConv2D, {"kernel_size": 3, "depth_multiplier": 0},
     r"^depth_multiplier must be a positive integer, not 0$"),
    (ZeroPadding2D, {"padding": -1},
     (r"^padding must be an integer >= 0, a pair of them, or \(\(top, bottom\), \(left, "
     r"right\)\), not -1$")),
    (ZeroPadding2D, {"padding": ((1, 2), (3,))},
     r"^padding must be an integer >= 0, a pair of them"),
    (Reshape, {"target_shape": (3, 4)},
     r"^target_shape must be \[n\] or \[-1\] \(only a flatten is supported\), not \(3, 4\)$"),
    (GlobalAveragePooling2D, {"keepdims": 1}, r"^keepdims must be true or false, not 1$"),
    (Add, {"activation": "softmax"},
     r"^activation must be one of linear, relu, relu6 on an Add, not 'softmax'$"),
    (AveragePooling2D, {"pool_size": 0},
     r"^pool_size must be a positive integer or a pair of them, not 0$"),
])
def test_layer_arguments_are_checked(cls, kwargs, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        cls(**kwargs)


@pytest.mark.parametrize(("layers", "pattern"), [
    ((Flatten(), GlobalAveragePooling2D()),
     (r"^layer 1 \(global_average_pooling2d, GlobalAveragePooling2D\): GlobalAveragePooling2D "
     r"needs an image \(h, w, c\) input, got \(32,\)$")),
    ((Reshape([7]),),
     (r"^layer 0 \(reshape, Reshape\): target_shape \[7\] does not flatten \(4, 4, 2\) \(32 "
     r"elements\); only a flatten is supported$")),
    ((DepthwiseConv2D(5),),
     (r"^layer 0 \(depthwise_conv2d, DepthwiseConv2D\): kernel_size \(5, 5\): window 5 is larger "
     r"than the input 4 with padding 'valid'$")),
    ((AveragePooling2D(5),),
     (r"^layer 0 \(average_pooling2d, AveragePooling2D\): pool_size \(5, 5\): window 5 is "
     r"larger than the input 4 with padding 'valid'$")),
])
def test_network_errors_name_the_layer(layers, pattern):
    with pytest.raises(AccelError, match=pattern):
        Network("n", (4, 4, 2), layers)


# --- the quantized layers -------------------------------------------------------------------------


def every_new_layer():
    return Network("allnew", (12, 12, 3), (
        ZeroPadding2D(((1, 0), (2, 1)), name="pad"),
        Conv2D(8, 3, activation="relu", name="c0"),
        DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw"),
        BatchNormalization(name="bn"),
        ReLU(name="r0"),
        Conv2D(16, 1, name="pw"),
        Add(name="add", inputs=["r0", "pw"]),
        ReLU(name="r1"),
        AveragePooling2D(2, padding="same", name="ap"),
        MaxPooling2D(2, strides=1, name="mp"),
        Conv2D(4, 1, name="side", inputs=["ap"]),
        MaxPooling2D(2, strides=1, name="mp2"),
        Concatenate(name="cat", inputs=["mp", "mp2"]),
        GlobalAveragePooling2D(name="gap"),
        Dense(5, activation="softmax", name="out"),
    ))


def test_ptq_of_every_new_layer_follows_tflite_conventions():
    net = every_new_layer()
    qnet = random_quantized(net, seed=3)
    kinds = {layer.name: layer for layer in qnet.layers}
    assert [(layer.name, layer.kind) for layer in qnet.layers] == [
        ("pad", "pad"), ("c0", "conv2d"), ("dw", "depthwise_conv2d"), ("pw", "conv2d"),
        ("add", "add"), ("ap", "avg_pool2d"), ("mp", "max_pool2d"), ("side", "conv2d"),
        ("mp2", "max_pool2d"), ("cat", "concatenate"), ("gap", "mean"), ("out", "dense"),
        ("softmax", "softmax")]
    dw, add = kinds["dw"], kinds["add"]
    # BN and ReLU folded into the depthwise layer, per output channel c * m + j.
    assert dw.weights.shape == (3, 3, 8, 2) and dw.weight_scale.shape == (16,)
    assert dw.activation == "relu" and dw.requant.act_min == dw.output.zero_point
    assert np.abs(dw.weights).reshape(-1, 16).max(axis=0).tolist() == [127] * 16
    # The ReLU after the Add is its fused activation; the two inputs keep their own scales.
    assert add.activation == "relu" and (add.input, add.input2) == (dw.output, kinds["pw"].output)
    # Pass-through layers keep their input's quantization; a concatenation's inputs and output
    # share one (through the pools, back to the producers).
    assert kinds["pad"].output == qnet.input
    assert kinds["ap"].output == kinds["mp"].output == kinds["side"].output == \
        kinds["mp2"].output == kinds["cat"].output == add.output
    # The golden model tracks the float network within a few output steps.
    x = np.random.default_rng(0).uniform(0, 1, (4, 12, 12, 3))
    xq = np.clip(np.round(x / qnet.input.scale) + qnet.input.zero_point, -128, 127)
    ours = golden.run(qnet, xq.astype(np.int8))
    floats = float_forward(net, fold(net, random_float_weights(net, 3)), x)
    for name in ("dw", "add", "ap", "cat", "gap", "out"):
        q = kinds[name].output
        real = (ours[name].astype(np.int64) - q.zero_point) * q.scale
        steps = np.abs(real - floats[name].reshape(real.shape)) / q.scale
        assert steps.max() < 40, (name, steps.max())


def test_npz_round_trip_of_every_new_layer(tmp_path):
    qnet = random_quantized(every_new_layer(), seed=5)
    save_quantized(qnet, tmp_path / "q.npz")
    loaded = load_quantized(tmp_path / "q.npz")
    for a, b in zip(qnet.layers, loaded.layers, strict=True):
        assert type(a) is type(b) and a.inputs == b.inputs
        for field in ("input2", "padding", "keepdims", "multiplier", "shift", "pool_size",
                      "output_multiplier", "act_min"):
            if hasattr(a, field):
                assert getattr(a, field) == getattr(b, field), (a.name, field)
    x = np.random.default_rng(1).integers(-128, 128, (3, 12, 12, 3))
    want, got = golden.run(qnet, x), golden.run(loaded, x)
    assert list(want) == list(got) and all(np.array_equal(want[k], got[k]) for k in want)


def test_imported_tflite_models_round_trip(tmp_path):
    qnet = load_tflite(MLPERF / "ic_resnet8.tflite")
    save_quantized(qnet, tmp_path / "r.npz")
    x = np.load(MLPERF / "ic_resnet8_input.npy")
    want, got = golden.run(qnet, x), golden.run(load_quantized(tmp_path / "r.npz"), x)
    assert all(np.array_equal(want[k], got[k]) for k in want)


def test_ptq_of_the_kws_keras_file_reproduces_the_converter():
    """Quantized from the .keras with the converter's own representative dataset, DS-CNN gets
    TFLite's quantization of every activation (the same zero points; scales equal to float32
    rounding, as the converter calibrates in float32 and accel in float64) and the same int8
    weights and int32 biases in every convolution and depthwise layer (BN folded per
    channel). The last dense layer
    differs: the converter was told to quantize it per tensor, accel quantizes per channel."""
    sys.path.insert(0, str(MLPERF))
    try:
        import inputs
    finally:
        sys.path.remove(str(MLPERF))
    from accel.quant.float_model import fold as fold_keras
    from accel.quant.keras_weights import read_keras_weights
    from accel.quant.ptq import quantize_folded

    net = load_network(MLPERF / "kws_ds_cnn.keras")
    folded = fold_keras(net, read_keras_weights(MLPERF / "kws_ds_cnn.keras", net))
    ours = quantize_folded(net, folded, inputs.calibration("kws_ds_cnn", 64))
    ref = load_tflite(MLPERF / "kws_ds_cnn.tflite")
    assert ours.input == ref.input
    assert [layer.kind for layer in ours.layers] == [layer.kind for layer in ref.layers]
    for a, b in zip(ours.layers, ref.layers, strict=True):
        assert a.output.zero_point == b.output.zero_point, a.name
        assert a.output.scale == pytest.approx(b.output.scale, rel=1e-6), a.name
        if a.kind in ("conv2d", "depthwise_conv2d"):
            assert np.array_equal(a.weights, b.weights), a.name
            assert np.array_equal(a.bias, b.bias), a.name
            assert np.allclose(a.weight_scale, b.weight_scale, rtol=1e-6), a.name


@pytest.mark.parametrize(("layers", "scheme", "pattern"), [
    ((Conv2D(2, 1, name="a"), Conv2D(2, 1, name="b"), Add(inputs=["input", "a", "b"])),
     "tflite-int8", (r"^layer 2 \(add, Add\): an Add of 3 inputs; only two can be quantized "
     r"\(TFLite's ADD\)$")),
    ((DepthwiseConv2D(1),), "pow2",
     (r"^layer 0 \(depthwise_conv2d, DepthwiseConv2D\): scheme pow2 has no DepthwiseConv2D "
     r"numerics yet; use --scheme tflite-int8$")),
    ((ZeroPadding2D(1), BatchNormalization()), "tflite-int8",
     (r"^layer 1 \(batch_normalization, BatchNormalization\): BatchNormalization can only be "
     r"folded into a Conv2D/DepthwiseConv2D/Dense it alone reads, with no activation$")),
    ((GlobalAveragePooling2D(), ReLU()), "tflite-int8",
     (r"^layer 1 \(re_lu, ReLU\): relu must follow a Conv2D, DepthwiseConv2D, Dense, Add, "
     r"MaxPooling2D or AveragePooling2D \(read by nothing else\) to be fused as its output "
     r"clamp$")),
])
def test_quantization_errors_are_one_line(layers, scheme, pattern):
    with pytest.raises(AccelError, match=pattern):
        random_quantized(Network("n", (4, 4, 2), layers), seed=1, scheme=scheme)


def test_an_inexact_concatenation_in_a_quantized_network_is_refused():
    import dataclasses

    qnet = random_quantized(Network("n", (4, 4, 2), (
        Conv2D(2, 1, name="a"), Conv2D(2, 1, name="b", inputs=["input"]),
        Concatenate(inputs=["a", "b"]))), seed=1)
    a = qnet.layers[0]
    other = dataclasses.replace(a, output=dataclasses.replace(a.output, zero_point=3))
    with pytest.raises(AccelError, match=r"^layer 2 \(concatenate, Concatenate\): input 0 \(a\) "
                       r"is quantized \(scale [0-9.e-]+, zero point 3\) unlike the output "
                       r"\(scale [0-9.e-]+, zero point -?\d+\); an int8 concatenation is exact "
                       r"only when they are equal$"):
        dataclasses.replace(qnet, layers=(other, *qnet.layers[1:]))


# --- the TFLite flatten idiom, exactly --------------------------------------------------------


def test_tflite_shape_arithmetic_other_than_the_flatten_idiom_is_refused(tmp_path):
    """RESHAPE to the output of a bare SHAPE (no slice and pack) is not the converter's
    flatten: refused in one line, as is int32 arithmetic the idiom does not have."""
    tensors = [Tensor("x", (1, 2, 2, 2), (0.05,), (0,)), Tensor("s", (4,), int32=True),
               Tensor("y", (1, 8), (0.05,), (0,))]
    path = tmp_path / "g.tflite"
    path.write_bytes(write_graph(tensors, [Op(tflite.BuiltinOperator.SHAPE, [0], [1]),
                                           Op(tflite.BuiltinOperator.RESHAPE, [0, 1], [2])],
                                 [0], [2]))
    with pytest.raises(AccelError, match=rf"^{path}: operator 1 \(RESHAPE\): its shape comes "
                       r"from operators other than the flatten idiom SHAPE -> STRIDED_SLICE -> "
                       r"PACK -> RESHAPE$"):
        load_tflite(path)
    path.write_bytes(write_graph(tensors, [Op(tflite.BuiltinOperator.SHAPE, [0], [1]),
                                           Op(tflite.BuiltinOperator.ABS, [1], [1])], [0], [2]))
    with pytest.raises(AccelError, match=rf"^{path}: operator 1 \(ABS\): only the flatten idiom "
                       r"SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE is supported as shape "
                       r"arithmetic$"):
        load_tflite(path)


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_quantize_and_predict_a_spec_with_every_new_layer(tmp_path):
    from click.testing import CliRunner

    from accel.cli import main

    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\ninput: [9, 9, 2]\nlayers:\n"
        "  - ZeroPadding2D: {padding: 1}\n"
        "  - DepthwiseConv2D: {kernel_size: 3, depth_multiplier: 2, name: d}\n"
        "  - Conv2D: {filters: 4, kernel_size: 1, name: c}\n"
        "  - Add: {inputs: [d, c]}\n"
        "  - ReLU: {}\n"
        "  - AveragePooling2D: {pool_size: 3}\n"
        "  - GlobalAveragePooling2D: {}\n"
        "  - Dense: {units: 3}\n")
    runner = CliRunner()
    result = runner.invoke(main, ["quantize", str(spec), "--seed", "2", "-o",
                                  str(tmp_path / "q.npz")])
    assert result.exit_code == 0, result.output
    x = np.random.default_rng(0).integers(-128, 128, (2, 9, 9, 2)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    result = runner.invoke(main, ["predict", str(tmp_path / "q.npz"), str(tmp_path / "x.npy"),
                                  "-o", str(tmp_path / "out.npz")])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "out.npz") as data:
        got = {key: data[key] for key in data.files}
    want = golden.run(load_quantized(tmp_path / "q.npz"), x)
    assert all(np.array_equal(got[f"layers/{k}"], want[k]) for k in want)  # the archive layout


@pytest.mark.parametrize("name", ["kws_ds_cnn", "vww_mobilenet_v1"])
def test_the_planner_plans_the_depthwise_chains(name):
    """DS-CNN and MobileNetV1 are chains of Conv2D, DepthwiseConv2D, average pooling and
    Dense: every layer is a stage (or fused, or free like Flatten)."""
    from accel.plan.plan import DepthwiseStagePlan, PoolStagePlan, make_plan

    plan = make_plan(load_tflite(MLPERF / f"{name}.tflite"), 4, 4)
    kinds = {type(s) for s in plan.stages}
    assert DepthwiseStagePlan in kinds and PoolStagePlan in kinds
    assert plan.interval_cycles == max(s.cycles for s in plan.stages)


def test_the_planner_plans_resnet8_with_its_joins():
    """ResNet-8's three residual blocks are forks joined by Add stages (with a skip buffer on
    the short branch of each), and `accel plan --json` reports them."""
    import json

    from click.testing import CliRunner

    from accel.cli import main
    from accel.plan.join import AddStagePlan
    from accel.plan.plan import make_plan

    plan = make_plan(load_tflite(MLPERF / "ic_resnet8.tflite"), 4, 4)
    adds = [s for s in plan.stages if isinstance(s, AddStagePlan)]
    assert [s.layer for s in adds] == ["add", "add_1", "add_2"]
    assert all(sum(1 for d in s.skip_depths if d) == 1 for s in adds)
    assert plan.interval_cycles == max(s.cycles for s in plan.stages)
    result = CliRunner().invoke(main, ["plan", str(MLPERF / "ic_resnet8.tflite"), "--json"])
    assert result.exit_code == 0, result.output
    kinds = [s["kind"] for s in json.loads(result.stdout)["stages"]]
    assert kinds.count("add") == 3


def test_explain_the_new_layers():
    from accel.spec.explain import explain_layer

    net = load_network(MLPERF / "kws_ds_cnn.keras")
    text = "\n".join(explain_layer(net, net.find("depthwise_conv2d")))
    assert "kernel (3, 3, 64, 1) = (kernel_h, kernel_w, in_channels 64, depth_multiplier 1)" \
        in text
    assert "params 3*3*64*1 + 64 = 640" in text and "MACs   25*5*64 outputs * 9 = 72,000" in text
    text = "\n".join(explain_layer(net, net.find("average_pooling2d")))
    assert "window 24x5, stride 24x5, padding 'valid'" in text
    assert "the windows do not reach the last 1 row(s)" in text
    hand = Network("n", (4, 4, 2), (ZeroPadding2D(((1, 0), (2, 1))), GlobalAveragePooling2D(),
                                    Reshape([2])))
    lines = [line for info in hand.infos for line in explain_layer(hand, info)]
    assert ("  padding top 1, bottom 0, left 2, right 1: output (4 + 1 + 0, 4 + 2 + 1, 2) = "
            "(5, 7, 2)") in lines
    assert any("over all 5*7 = 35 positions" in line for line in lines)


@st.composite
def mlperf_style_networks(draw):
    """Random chains of MLPerf Tiny blocks on a small image: pools and padding anywhere
    (first, after a pool, after an Add), depthwise-separable and residual blocks."""
    h, w = draw(st.integers(6, 10)), draw(st.integers(6, 10))
    channels = draw(st.integers(1, 3))
    layers, last, shape = [], "input", (h, w, channels)
    for k in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["pool", "pad", "separable", "residual"]))
        name = f"b{k}"
        if kind == "pool" and min(shape[:2]) >= 2:
            cls = draw(st.sampled_from([MaxPooling2D, AveragePooling2D]))
            layers.append(cls(2, strides=draw(st.sampled_from([1, 2])),
                              padding=draw(st.sampled_from(["valid", "same"])), name=name))
        elif kind == "pad":
            layers.append(ZeroPadding2D(draw(st.integers(0, 2)), name=name))
        elif kind == "separable":
            m = draw(st.integers(1, 2))
            layers += [DepthwiseConv2D(3, padding="same", depth_multiplier=m,
                                       strides=draw(st.sampled_from([1, 2])), name=f"{name}d"),
                       BatchNormalization(name=f"{name}n"), ReLU(name=f"{name}r"),
                       Conv2D(draw(st.integers(1, 4)), 1, activation="relu", name=name)]
        else:
            layers += [Conv2D(shape[-1], 3, padding="same", activation="relu", name=f"{name}c",
                              inputs=[last]),
                       Add(inputs=[last, f"{name}c"], name=f"{name}a"), ReLU(name=name)]
        last = layers[-1].name
        shape = Network("probe", (h, w, channels), tuple(layers)).output_shape
    if draw(st.booleans()):
        layers.append(GlobalAveragePooling2D(name="gap"))
    else:
        layers.append(Flatten(name="flat"))
    layers.append(Dense(3, name="logits"))
    return Network("random", (h, w, channels), tuple(layers))


@settings(max_examples=25, deadline=None)
@given(mlperf_style_networks(), st.integers(0, 2**16))
def test_random_mlperf_style_networks_quantize_run_and_round_trip(net, seed):
    """Any such network quantizes with TFLite's conventions, the quantized network's spec has
    the same shapes, and the golden model gives the same integers after the npz round trip."""
    import tempfile
    from pathlib import Path

    qnet = random_quantized(net, seed=seed)
    assert qnet.network.output_shape == net.output_shape
    x = np.random.default_rng(seed).integers(-128, 128, (2, *net.input_shape))
    want = golden.run(qnet, x)
    with tempfile.TemporaryDirectory() as tmp:
        save_quantized(qnet, Path(tmp) / "q.npz")
        got = golden.run(load_quantized(Path(tmp) / "q.npz"), x)
    assert all(np.array_equal(want[k], got[k]) for k in want), f"seed {seed}"


# --- TFLite joins the importer refuses ------------------------------------------------------------


def _conv_pair(tmp_path, join, shapes=((1, 4, 4, 2), (1, 4, 4, 2)), out_q=((0.3,), (1,)),
               out_shape=(1, 4, 4, 2)):
    """input -> conv (tensor 3), input -> conv (tensor 4), then ``join`` of 3 and 4 -> 5."""
    from .tflite_graph import conv_options

    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (2, 1, 1, 2))
    tensors = [Tensor("x", (1, 4, 4, 2), (0.05,), (0,)),
               Tensor("w", (2, 1, 1, 2), (0.02,), (0,), w),
               Tensor("b", (2,), (0.001,), (0,), np.zeros(2, np.int64), int32=True),
               Tensor("a", shapes[0], (0.1,), (5,)), Tensor("c", shapes[1], (0.2,), (-7,)),
               Tensor("y", out_shape, *out_q)]
    stride = 1 if shapes[1] == shapes[0] else 2
    ops = [Op(tflite.BuiltinOperator.CONV_2D, [0, 1, 2], [3], *conv_options()),
           Op(tflite.BuiltinOperator.CONV_2D, [0, 1, 2], [4], *conv_options(stride)), join]
    path = tmp_path / "j.tflite"
    path.write_bytes(write_graph(tensors, ops, [0], [5]))
    return path


def test_tflite_join_refusals_are_one_line(tmp_path):
    from .tflite_graph import add_options, concatenation_options

    path = _conv_pair(tmp_path, Op(tflite.BuiltinOperator.CONCATENATION, [3, 4], [5],
                                   *concatenation_options(axis=1)), out_shape=(1, 8, 4, 2))
    with pytest.raises(AccelError, match=rf"^{path}: operator 2 \(CONCATENATION\): axis 1; "
                       r"only the channel \(last\) axis is supported$"):
        load_tflite(path)
    path = _conv_pair(tmp_path, Op(tflite.BuiltinOperator.ADD, [3, 4], [5], *add_options()),
                      shapes=((1, 4, 4, 2), (1, 2, 2, 2)))
    with pytest.raises(AccelError, match=rf"^{path}: operator 2 \(ADD\): inputs of shapes "
                       r"\(1, 4, 4, 2\) and \(1, 2, 2, 2\); only equal shapes are supported \(no "
                       r"broadcasting\)$"):
        load_tflite(path)
    # An output factor 2 * max(s1, s2) / (2**20 * s_out) >= 1: TFLite aborts, accel refuses.
    path = _conv_pair(tmp_path, Op(tflite.BuiltinOperator.ADD, [3, 4], [5], *add_options()),
                      out_q=((1e-7,), (0,)))
    with pytest.raises(AccelError, match=rf"^{path}: operator 2 \(ADD\): scales 0\.1, 0\.2 -> "
                       r"1e-07 cannot be added in int8 \(.+\)$"):
        load_tflite(path)


@pytest.mark.parametrize("name", ["ic_resnet8", "vww_mobilenet_v1", "kws_ds_cnn"])
def test_mlperf_specs_and_files_match_keras_summaries(name):
    """The two architectures whose .keras files are not committed, written as accel specs in
    Keras's order (examples/mlperf_tiny/*.yaml), and the committed kws_ds_cnn.keras: names,
    classes, shapes, params, connected-to and MACs of every layer equal Keras's summary."""
    path = MLPERF / (f"{name}.keras" if name == "kws_ds_cnn" else f"{name}.yaml")
    want = SUMMARIES[name]
    net = load_network(path)
    got = [{"name": i.name, "type": i.type_name, "output_shape": list(i.output_shape),
            "params": i.params,
            "connected_to": ["input_layer" if s == "input" else s for s in i.inputs],
            "macs": i.macs} for i in net.infos]
    assert got == [row for row in want["layers"] if row["type"] != "InputLayer"]
    non_trainable = sum(i.inferred.non_trainable for i in net.infos)
    assert (net.total_params, non_trainable, net.total_macs) == (
        want["total_params"], want["non_trainable_params"], want["macs"])


@pytest.mark.parametrize("name", ["ic_resnet8", "vww_mobilenet_v1"])
def test_mlperf_specs_quantize_to_the_tflite_layer_structure(name):
    """With random weights, the specs fold and quantize to the .tflite's layers: the same
    kinds, inputs (the residual forks and joins) and shapes."""
    ours = random_quantized(load_network(MLPERF / f"{name}.yaml"), seed=1)
    ref = load_tflite(MLPERF / f"{name}.tflite")

    def structure(qnet):
        infos = {i.name: i for i in qnet.network.infos}
        return sorted((layer.kind, infos[layer.name].output_shape,
                       tuple(infos[s].output_shape if s != "input" else qnet.input_shape
                             for s in layer.inputs)) for layer in qnet.layers)

    assert structure(ours) == structure(ref)
    x = np.random.default_rng(2).integers(-128, 128, (1, *ours.input_shape))
    assert list(golden.run(ours, x).values())[-1].shape == (1, ref.network.output_shape[-1])


@pytest.mark.parametrize(("layer", "pattern"), [
    ("ZeroPadding2D: {padding: -1}",
     (r"layer 0 \(\?, ZeroPadding2D\): padding must be an integer >= 0, a pair of them, or "
     r"\(\(top, bottom\), \(left, right\)\), not -1")),
    ("DepthwiseConv2D: {kernel_size: 3, filters: 4}",
     (r"layer 0 \(\?, DepthwiseConv2D\): unknown field 'filters' \(fields: kernel_size, "
     r"strides, padding, depth_multiplier, activation, use_bias, name, inputs\)")),
    ("Reshape: {target_shape: [4, 8]}",
     (r"layer 0 \(\?, Reshape\): target_shape must be \[n\] or \[-1\] \(only a flatten is "
     r"supported\), not \[4, 8\]")),
    ("AveragePooling2D: {pool_size: 2, padding: full}",
     r"layer 0 \(\?, AveragePooling2D\): padding must be one of valid, same, not 'full'"),
])
def test_cli_spec_file_errors_of_the_new_layers(tmp_path, layer, pattern):
    from click.testing import CliRunner

    from accel.cli import main

    spec = tmp_path / "e.yaml"
    spec.write_text(f"name: e\ninput: [4, 4, 2]\nlayers:\n  - {layer}\n")
    result = CliRunner().invoke(main, ["summary", str(spec)])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert re.fullmatch(rf"accel: error: {re.escape(str(spec))}: {pattern}\n", result.stderr)


def test_a_relu_behind_a_dropout_is_not_fused_into_a_shared_producer():
    """conv -> (dropout -> relu) and conv -> add: fusing the ReLU into the conv would clamp the
    add's input too, so it is refused in one line instead."""
    from accel.spec import Dropout

    net = Network("n", (4, 4, 2), (
        Conv2D(2, 1, name="c"), Dropout(0.5, name="d"), ReLU(name="r"),
        Add(inputs=["c", "r"])))
    with pytest.raises(AccelError, match=r"^layer 2 \(r, ReLU\): relu must follow a Conv2D"):
        random_quantized(net, seed=1)
