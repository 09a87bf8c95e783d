"""Layer specs, networks and shape inference: Keras's numbers for the example networks."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.errors import AccelError
from accel.spec import (
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
    Network,
    ReLU,
    load_network,
)
from accel.spec.layers import keras_base_name

from .paths import SPECS


def rows(network):
    return [(i.name, i.type_name, i.output_shape, i.params, i.macs) for i in network.infos]


def test_seed_network_matches_keras():
    net = load_network(SPECS / "seed_mnist_cnn.yaml")
    assert rows(net) == [
        ("conv2d", "Conv2D", (28, 28, 32), 320, 28 * 28 * 32 * 9),
        ("max_pooling2d", "MaxPooling2D", (14, 14, 32), 0, 0),
        ("conv2d_1", "Conv2D", (14, 14, 64), 18_496, 14 * 14 * 64 * 288),
        ("max_pooling2d_1", "MaxPooling2D", (7, 7, 64), 0, 0),
        ("flatten", "Flatten", (3136,), 0, 0),
        ("dense", "Dense", (128,), 401_536, 3136 * 128),
        ("dense_1", "Dense", (10,), 1_290, 1280),
    ]
    assert net.infos[2].inferred.kernel_shape == (3, 3, 32, 64)
    assert net.infos[5].inferred.kernel_shape == (7 * 7 * 64, 128)
    assert net.total_params == 421_642
    assert net.total_macs == 4_241_152
    assert net.ends_with_softmax


def test_seed_5x5_variant_keeps_7x7x64_rows():
    net = load_network(SPECS / "seed_mnist_cnn_5x5.yaml")
    shapes = [i.output_shape for i in net.infos]
    assert shapes[:5] == [(28, 28, 32), (14, 14, 32), (14, 14, 64), (7, 7, 64), (3136,)]
    assert net.infos[0].params == 5 * 5 * 1 * 32 + 32 == 832
    assert net.infos[2].params == 5 * 5 * 32 * 64 + 64 == 51_264
    assert net.infos[5].inferred.kernel_shape == (7 * 7 * 64, 1024)
    assert net.infos[5].params == 3136 * 1024 + 1024 == 3_212_288
    assert net.total_params == 832 + 51_264 + 3_212_288 + 10_250 == 3_274_634


def test_conv_11x11x64():
    net = load_network(SPECS / "conv11x11x64.json")
    (info,) = net.infos
    assert info.input_shape == (11, 11, 64)
    assert info.inferred.kernel_shape == (3, 3, 64, 64)
    assert info.output_shape == (11, 11, 64)
    assert info.params == 36_928
    assert info.macs == 11 * 11 * 64 * 3 * 3 * 64


def test_keras_default_names_skip_taken_names():
    net = Network("n", (8, 8, 1), (
        Conv2D(4, 3, name="conv2d_1"), Conv2D(4, 3), Conv2D(4, 3), ReLU(), MaxPooling2D(),
        BatchNormalization(), Dropout(0.5), Flatten(), Dense(3),
    ))
    assert [layer.name for layer in net.layers] == [
        "conv2d_1", "conv2d", "conv2d_2", "re_lu", "max_pooling2d", "batch_normalization",
        "dropout", "flatten", "dense",
    ]
    assert keras_base_name("BatchNormalization") == "batch_normalization"


def test_batch_normalization_params_as_keras():
    net = Network("n", (4, 4, 3), (Conv2D(8, 3, padding="same"), BatchNormalization()))
    assert net.infos[1].params == 32
    assert net.infos[1].inferred.non_trainable == 16
    net = Network("n", (4, 4, 3), (BatchNormalization(center=False),))
    assert net.infos[0].params == 9


def test_pool_defaults_and_odd_sizes():
    net = Network("n", (7, 7, 2), (MaxPooling2D(), MaxPooling2D(padding="same")))
    assert net.infos[0].output_shape == (3, 3, 2)
    assert net.infos[1].output_shape == (2, 2, 2)
    assert net.layers[0].strides == (2, 2)


def test_find_layer():
    net = load_network(SPECS / "seed_mnist_cnn.yaml")
    assert net.find("2").name == "conv2d_1"
    assert net.find(2).name == "conv2d_1"
    assert net.find("dense").index == 5
    with pytest.raises(AccelError, match=r"^layer index 7 is out of range: seed_mnist_cnn has "
                       r"layers 0\.\.6$"):
        net.find("7")
    with pytest.raises(AccelError, match=r"^no layer named 'conv3' in seed_mnist_cnn"):
        net.find("conv3")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Conv2D(0, 3), r"^filters must be a positive integer, not 0$"),
        (lambda: Conv2D(8, (3, 3, 3)),
         r"^kernel_size must be a positive integer or a pair of them, not \(3, 3, 3\)$"),
        (lambda: Conv2D(8, 3, padding="full"),
         r"^padding must be one of valid, same, not 'full'$"),
        (lambda: Conv2D(8, 3, activation="tanh"),
         r"^activation must be one of linear, relu, relu6, softmax, not 'tanh'$"),
        (lambda: Dense(4, use_bias="yes"), r"^use_bias must be true or false, not 'yes'$"),
        (lambda: MaxPooling2D(strides=0),
         r"^strides must be a positive integer or a pair of them, not 0$"),
        (lambda: Dropout(1.0), r"^rate must be a number in \[0, 1\), not 1\.0$"),
        (lambda: ReLU(negative_slope=0.1), r"^negative_slope must be 0"),
    ],
)
def test_layer_validation(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(1, 40), w=st.integers(1, 40), c=st.integers(1, 8),
    filters=st.integers(1, 16), k=st.integers(1, 5), s=st.integers(1, 3),
    padding=st.sampled_from(["valid", "same"]),
)
def test_conv_params_and_macs_by_counting(h, w, c, filters, k, s, padding):
    """Params and MACs equal a literal count of weights and of multiply-adds per output."""
    try:
        net = Network("n", (h, w, c), (Conv2D(filters, k, strides=s, padding=padding),))
    except AccelError as e:
        assert padding == "valid" and k > min(h, w), e
        return
    (info,) = net.infos
    oh, ow, f = info.output_shape
    window = info.inferred.window
    # Count real (non-padding) multiply-adds too: never more than the MACs reported.
    real = 0
    for i in range(oh):
        r0 = window.rows.start(i)
        rows_in = sum(1 for r in range(r0, r0 + k) if 0 <= r < h)
        for j in range(ow):
            c0 = window.cols.start(j)
            cols_in = sum(1 for q in range(c0, c0 + k) if 0 <= q < w)
            assert rows_in * cols_in > 0
            real += rows_in * cols_in * c * f
    assert info.macs == oh * ow * f * k * k * c >= real
    assert info.params == k * k * c * f + f
