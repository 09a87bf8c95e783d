"""Quantization: folding, post-training quantization, random models, save/load."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.errors import AccelError
from accel.quant import golden, numerics
from accel.quant.float_model import float_forward, fold
from accel.quant.keras_weights import read_keras_weights
from accel.quant.load import load_quantized_model
from accel.quant.qnet import QDense, load_quantized, save_quantized
from accel.quant.random_model import random_float_weights, random_quantized
from accel.spec import (
    BatchNormalization,
    Conv2D,
    Dense,
    Flatten,
    MaxPooling2D,
    Network,
    ReLU,
    load_network,
)

from .paths import EXAMPLES, SPECS

DIGITS = EXAMPLES / "digits"
ACCURACY = json.loads((DIGITS / "accuracy.json").read_text())["models"]
DATASETS = {"digits_small": "digits", "digits_valid_s2": "digits16", "dense_pc": "digits",
            "digits_cnn": "digits28"}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_float_model_reproduces_keras_accuracy(name):
    """The folded float forward pass (BN folded, activations fused) classifies the test split
    exactly as Keras did when the fixtures were made."""
    path = DIGITS / f"{name}.keras"
    net = load_network(path)
    folded = fold(net, read_keras_weights(path, net))
    x = np.load(DIGITS / f"{DATASETS[name]}_test_x.npy")
    y = np.load(DIGITS / "digits_test_y.npy")
    probs = list(float_forward(net, folded, x).values())[-1]
    accuracy = (probs.argmax(axis=1) == y).mean()
    assert accuracy == pytest.approx(ACCURACY[name]["float_keras_test_accuracy"], abs=1e-6)


def test_h5_and_keras_weights_agree():
    net = load_network(DIGITS / "digits_valid_s2.h5")
    a = read_keras_weights(DIGITS / "digits_valid_s2.h5", net)
    b = read_keras_weights(DIGITS / "digits_valid_s2.keras", net)
    assert a.keys() == b.keys()
    for layer in a:
        for var in a[layer]:
            assert np.array_equal(a[layer][var], b[layer][var]), (layer, var)


def test_batchnorm_folding_equals_explicit_batchnorm():
    rng = np.random.default_rng(5)
    net = Network("bn", (6, 6, 3), (Conv2D(4, 3, padding="same"), BatchNormalization(),
                                    ReLU(max_value=6), Flatten(), Dense(2)))
    weights = random_float_weights(net, 5)
    x = rng.uniform(-1, 1, (3, 6, 6, 3))
    folded = fold(net, weights)
    assert [f.name for f in folded] == ["conv2d", "flatten", "dense"]
    assert folded[0].activation == "relu6"
    got = float_forward(net, folded, x)["conv2d"]
    # The same computation written out with an explicit batch normalization.
    plain = Network("p", (6, 6, 3), (Conv2D(4, 3, padding="same"),))
    conv = float_forward(plain, fold(plain, {"conv2d": weights["conv2d"]}), x)["conv2d"]
    bn = weights["batch_normalization"]
    expected = np.clip((conv - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-3)
                       * bn["gamma"] + bn["beta"], 0, 6)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_random_models_are_deterministic():
    net = load_network(SPECS / "seed_mnist_cnn.yaml")
    a, b, c = random_quantized(net, 1), random_quantized(net, 1), random_quantized(net, 2)
    for la, lb, lc in zip(a.layers, b.layers, c.layers, strict=True):
        if hasattr(la, "weights"):
            assert np.array_equal(la.weights, lb.weights)
            assert np.array_equal(la.requant.multiplier, lb.requant.multiplier)
            assert not np.array_equal(la.weights, lc.weights)


def test_save_load_round_trip(tmp_path):
    net = load_network(DIGITS / "digits_valid_s2.keras")
    for scheme, bits in (("tflite-int8", 8), ("pow2", 6)):
        qnet = random_quantized(net, 3, scheme=scheme, weight_bits=bits, act_bits=bits)
        save_quantized(qnet, tmp_path / "q.npz")
        back = load_quantized(tmp_path / "q.npz")
        x = np.random.default_rng(0).integers(qnet.input.qmin, qnet.input.qmax + 1,
                                              (4, *qnet.input_shape))
        ours, theirs = golden.run(qnet, x), golden.run(back, x)
        assert list(ours) == list(theirs)
        for name in ours:
            assert np.array_equal(ours[name], theirs[name]), (scheme, name)
    # Not pickled: the file loads with allow_pickle=False and carries a JSON manifest.
    with np.load(tmp_path / "q.npz", allow_pickle=False) as data:
        manifest = json.loads(str(data["__manifest__"]))
    assert manifest["scheme"] == "pow2" and manifest["layers"][0]["kind"] == "conv2d"


def test_tflite_int8_dense_layer_within_half_an_lsb_of_float():
    """Golden vs float, with the bound the format gives: using the *dequantized* weights,
    bias and input, the only error left is the output rounding (half an LSB) plus the Q31
    multiplier's approximation; double rounding can add at most one more half LSB."""
    rng = np.random.default_rng(11)
    net = Network("d", (40,), (Dense(12, activation="linear"),))
    qnet = random_quantized(net, 11)
    (layer,) = qnet.layers
    assert isinstance(layer, QDense)
    x = rng.integers(-128, 128, (500, 40))
    q = golden.run(qnet, x)["dense"].astype(np.int64)
    real_in = qnet.input.scale * (x - qnet.input.zero_point)
    w = layer.weights * layer.weight_scale
    b = layer.bias * qnet.input.scale * layer.weight_scale
    real_out = real_in @ w + b
    exact = real_out / layer.output.scale + layer.output.zero_point
    inside = (exact > -128) & (exact < 127)
    err = np.abs(q - exact)[inside]
    assert err.max() <= 1.0 + 1e-6
    assert np.mean(err <= 0.5 + 1e-6) > 0.99


@settings(max_examples=30, deadline=None)
@given(bits=st.integers(4, 16), wbits=st.integers(4, 16), seed=st.integers(0, 2**16))
def test_pow2_formats_stay_in_range(bits, wbits, seed):
    net = Network("p", (5, 5, 2), (Conv2D(3, 3, activation="relu"), MaxPooling2D(),
                                   Flatten(), Dense(4)))
    qnet = random_quantized(net, seed, scheme="pow2", weight_bits=wbits, act_bits=bits)
    for layer in qnet.layers:
        if hasattr(layer, "weights"):
            top = 2 ** (wbits - 1) - 1
            assert np.abs(layer.weights).max() <= top
            assert layer.input.zero_point == 0 and layer.output.zero_point == 0
            assert np.log2(layer.output.scale) == round(np.log2(layer.output.scale))
    x = np.random.default_rng(seed).integers(-(2 ** (bits - 1)), 2 ** (bits - 1), (3, 5, 5, 2))
    for name, out in golden.run(qnet, x).items():
        assert out.min() >= -(2 ** (bits - 1)) and out.max() <= 2 ** (bits - 1) - 1, name


def test_pow2_requant_is_a_rounding_shift():
    net = Network("p", (8,), (Dense(3),))
    qnet = random_quantized(net, 4, scheme="pow2", weight_bits=8, act_bits=8)
    (layer,) = qnet.layers
    x = np.random.default_rng(4).integers(-128, 128, (50, 8))
    acc = x @ layer.weights + layer.bias
    want = np.clip(numerics.pow2_round_shift(acc, layer.requant.shift), -128, 127)
    assert np.array_equal(golden.run(qnet, x)["dense"], want)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"calibration": "digits_test_x.npy"},
         r"calibration data has shape \(450, 8, 8, 1\); the model needs \(N, 16, 16, 1\)$"),
        ({"calibration": "digits16_test_x.npy", "scheme": "tflite-int8", "weight_bits": 6},
         r"^scheme tflite-int8 is 8-bit only; use --scheme pow2 for other widths$"),
    ],
)
def test_quantize_errors(kwargs, message):
    kwargs = dict(kwargs)
    kwargs["calibration"] = DIGITS / kwargs["calibration"]
    with pytest.raises(AccelError, match=message):
        load_quantized_model(DIGITS / "digits_valid_s2.keras", **kwargs)


def test_weights_that_do_not_match_the_spec(tmp_path):
    """A .keras whose config says 8 filters but whose weights have another shape."""
    import io
    import zipfile

    import h5py

    src = DIGITS / "digits_small.keras"
    out = tmp_path / "bad.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "model.weights.h5":
                buf = io.BytesIO(data)
                with h5py.File(buf, "r+") as f:
                    del f["layers/conv2d/vars/0"]
                    f["layers/conv2d/vars/0"] = np.zeros((5, 5, 1, 8))
                data = buf.getvalue()
            zout.writestr(item, data)
    with pytest.raises(AccelError, match=r"bad\.keras: layer 0 \(conv2d, Conv2D\): kernel has "
                       r"shape \(5, 5, 1, 8\), the spec needs \(3, 3, 1, 8\)$"):
        load_quantized_model(out, calibration=DIGITS / "digits_calib_x.npy")
