"""Reading Keras model configs (Keras 3 .keras and legacy .h5) without TensorFlow."""

import json
import zipfile

import h5py
import pytest

from accel.errors import AccelError
from accel.spec import load_network
from accel.spec.keras_model import network_from_keras_config

from .paths import EXAMPLES


def k3_layer(class_name, **config):
    return {"module": "keras.layers", "class_name": class_name, "config": config,
            "registered_name": None}


def keras3_sequential():
    """The shape of a Keras 3 Sequential config (as in a .keras file's config.json)."""
    return {
        "module": "keras", "class_name": "Sequential", "registered_name": None,
        "config": {
            "name": "sequential", "trainable": True,
            "layers": [
                k3_layer("InputLayer", batch_shape=[None, 28, 28, 1], dtype="float32",
                         sparse=False, name="input_layer"),
                k3_layer("Conv2D", name="conv2d", filters=32, kernel_size=[3, 3],
                         strides=[1, 1], padding="same", data_format="channels_last",
                         dilation_rate=[1, 1], groups=1, activation="relu", use_bias=True,
                         kernel_initializer={"class_name": "GlorotUniform"}),
                k3_layer("MaxPooling2D", name="max_pooling2d", pool_size=[2, 2],
                         strides=[2, 2], padding="valid", data_format="channels_last"),
                k3_layer("Flatten", name="flatten", data_format="channels_last"),
                k3_layer("Dropout", name="dropout", rate=0.25, seed=None),
                k3_layer("Dense", name="dense", units=10, activation="softmax",
                         use_bias=True),
            ],
            "build_input_shape": [None, 28, 28, 1],
        },
    }


def test_keras3_sequential():
    net = network_from_keras_config(keras3_sequential(), "m.keras")
    assert net.name == "sequential"
    assert net.input_shape == (28, 28, 1)
    assert [(i.name, i.output_shape, i.params) for i in net.infos] == [
        ("conv2d", (28, 28, 32), 320), ("max_pooling2d", (14, 14, 32), 0),
        ("flatten", (6272,), 0), ("dropout", (6272,), 0), ("dense", (10,), 62_730),
    ]


def test_keras2_sequential_without_input_layer():
    """tf.keras 2.x: no InputLayer, batch_input_shape on the first layer."""
    model = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "Conv2D", "config": {
            "name": "c", "batch_input_shape": [None, 8, 8, 3], "filters": 4,
            "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid",
            "activation": "linear", "use_bias": False}},
        {"class_name": "BatchNormalization", "config": {"name": "bn", "axis": [3],
                                                          "epsilon": 0.001}},
        {"class_name": "ReLU", "config": {"name": "r", "max_value": 6.0,
                                           "negative_slope": 0.0, "threshold": 0.0}},
        {"class_name": "Flatten", "config": {"name": "f"}},
        {"class_name": "Dense", "config": {"name": "d", "units": 2, "activation": "linear"}},
    ]}}
    net = network_from_keras_config(model, "m.h5")
    assert net.input_shape == (8, 8, 3)
    assert [i.params for i in net.infos] == [108, 16, 0, 0, 6 * 6 * 4 * 2 + 2]
    assert net.layers[2].activation_name == "relu6"


def functional(inbound_style):
    def node(src):
        if inbound_style == "keras3":
            return [{"args": [{"class_name": "__keras_tensor__", "config": {
                "shape": [None, 4], "dtype": "float32", "keras_history": [src, 0, 0]}}],
                "kwargs": {}}]
        return [[[src, 0, 0, {}]]]

    return {"class_name": "Functional", "config": {
        "name": "func",
        "layers": [
            {"name": "in", "class_name": "InputLayer",
             "config": {"batch_shape": [None, 6], "name": "in"}, "inbound_nodes": []},
            # Listed out of order on purpose: the chain is followed through inbound_nodes.
            {"name": "d2", "class_name": "Dense",
             "config": {"name": "d2", "units": 3, "activation": "softmax"},
             "inbound_nodes": node("d1")},
            {"name": "d1", "class_name": "Dense",
             "config": {"name": "d1", "units": 4, "activation": "relu"},
             "inbound_nodes": node("in")},
        ],
        "input_layers": [["in", 0, 0]], "output_layers": [["d2", 0, 0]],
    }}


@pytest.mark.parametrize("style", ["keras3", "keras2"])
def test_functional_chain(style):
    net = network_from_keras_config(functional(style), "f.keras")
    assert [layer.name for layer in net.layers] == ["d1", "d2"]
    assert net.total_params == 6 * 4 + 4 + 4 * 3 + 3


def test_functional_dangling_branch_rejected():
    """A fork whose second branch reaches no output: the dangling layer is named."""
    model = functional("keras3")
    model["config"]["layers"].append({
        "name": "d3", "class_name": "Dense", "config": {"name": "d3", "units": 2},
        "inbound_nodes": [{"args": [{"config": {"keras_history": ["d1", 0, 0]}}]}]})
    with pytest.raises(AccelError, match=r"^f\.keras: layer 'd3' \(Dense\): output: no other "
                       r"layer reads it, and it is not the model output 'd2'$"):
        network_from_keras_config(model, "f.keras")


@pytest.mark.parametrize(
    ("class_name", "config", "message"),
    [
        ("Conv2D", {"filters": 2, "kernel_size": 3, "dilation_rate": [2, 2]},
         r"dilation_rate \[2, 2\] is not supported \(no dilation\)$"),
        ("Conv2D", {"filters": 2, "kernel_size": 3, "data_format": "channels_first"},
         r"data_format 'channels_first' is not supported \(only channels_last\)$"),
        ("Conv2D", {"kernel_size": 3}, r"missing required field 'filters'$"),
        ("LSTM", {"units": 3}, r"layer type 'LSTM' is not supported"),
        ("Dense", {"units": 3, "activation": "sigmoid"}, r"activation must be one of"),
    ],
)
def test_unsupported_keras_layers(class_name, config, message):
    model = keras3_sequential()
    config = {"name": "x", **config}
    model["config"]["layers"][1] = k3_layer(class_name, **config)
    with pytest.raises(AccelError, match=r"^m\.keras: layer 0 \(x, " + class_name + r"\): "
                       + message):
        network_from_keras_config(model, "m.keras")


def test_keras_and_h5_files_round_trip(tmp_path):
    config = keras3_sequential()
    keras_path = tmp_path / "m.keras"
    with zipfile.ZipFile(keras_path, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", "{}")
    h5_path = tmp_path / "m.h5"
    with h5py.File(h5_path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
    a, b = load_network(keras_path), load_network(h5_path)
    assert a == b
    assert a.total_params == 320 + 62_730


KERAS_SUMMARIES = json.loads((EXAMPLES / "keras_summaries.json").read_text())
EXAMPLE_FILES = sorted(
    [*(EXAMPLES / "specs").glob("*.yaml"), *(EXAMPLES / "specs").glob("*.json"),
     *(EXAMPLES / "digits").glob("*.keras"), *(EXAMPLES / "digits").glob("*.h5")]
)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_examples_match_keras_summary(path):
    """Every example spec and every model file saved by real Keras gives the names, output
    shapes and parameter counts that Keras's own summary gave (examples/keras_reference.py)."""
    want = KERAS_SUMMARIES[path.stem]
    net = load_network(path)
    got = [{"name": i.name, "type": i.type_name, "output_shape": list(i.output_shape),
            "params": i.params} for i in net.infos]
    assert got == want


def test_every_example_is_checked():
    """Every example has an entry; entries Keras did not produce are listed as hand-computed
    (the branchy examples, until keras_reference.py is rerun with TensorFlow)."""
    assert {p.stem for p in EXAMPLE_FILES} == {k for k in KERAS_SUMMARIES if k[0] != "_"}
    assert set(KERAS_SUMMARIES.get("_hand_computed", {})) <= {p.stem for p in EXAMPLE_FILES}
