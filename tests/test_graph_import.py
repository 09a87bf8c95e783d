"""Graphs through the importers and the quantized network: Keras functional DAGs (.keras and
.h5), TFLite operator graphs, qnet inputs in the .npz, the golden model on a DAG, and the one-line
refusals where integer numerics or hardware do not exist yet."""

import copy
import dataclasses
import json
import zipfile

import h5py
import numpy as np
import pytest
import tflite
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.errors import AccelError
from accel.quant import golden
from accel.quant.qnet import MANIFEST_KEY, QLayer, QuantizedNetwork, load_quantized, save_quantized
from accel.quant.random_model import random_quantized
from accel.quant.tflite_model import load_tflite
from accel.spec import Add, Conv2D, Network, load_network
from accel.spec.keras_model import network_from_keras_config
from accel.spec.spec_file import network_from_document

from .paths import SPECS
from .test_graph import random_dags
from .tflite_graph import Op, Tensor, add_options, concatenation_options, conv_options, write_graph

# --- Keras functional DAGs -----------------------------------------------------------------------


def _keras3_node(*sources):
    tensors = [{"class_name": "__keras_tensor__", "config": {
        "shape": [None, 8, 8, 8], "dtype": "float32", "keras_history": [s, 0, 0]}}
        for s in sources]
    return [{"args": [tensors[0] if len(tensors) == 1 else tensors], "kwargs": {}}]


def _keras2_node(*sources):
    return [[[s, 0, 0, {}] for s in sources]]


def residual_functional(style):
    """A Keras functional residual block, layers listed out of topological order on purpose."""
    node = _keras3_node if style == "keras3" else _keras2_node

    def layer(name, class_name, sources, **config):
        return {"name": name, "class_name": class_name, "config": {"name": name, **config},
                "inbound_nodes": node(*sources) if sources else []}

    return {"class_name": "Functional", "config": {
        "name": "resblock",
        "layers": [
            layer("input_layer", "InputLayer", (), batch_shape=[None, 8, 8, 3]),
            layer("add", "Add", ("stem", "b1")),
            layer("stem", "Conv2D", ("input_layer",), filters=8, kernel_size=[3, 3],
                  padding="same", activation="relu"),
            layer("concatenate", "Concatenate", ("stem", "add"), axis=-1),
            layer("b1", "Conv2D", ("stem",), filters=8, kernel_size=[3, 3], padding="same"),
            layer("flatten", "Flatten", ("concatenate",)),
            layer("dense", "Dense", ("flatten",), units=2, activation="softmax"),
        ],
        "input_layers": [["input_layer", 0, 0]], "output_layers": [["dense", 0, 0]],
    }}


@pytest.mark.parametrize("style", ["keras3", "keras2"])
def test_keras_functional_dag(style):
    net = network_from_keras_config(residual_functional(style), "r.keras")
    assert [(i.name, i.type_name, i.inputs, i.output_shape, i.params) for i in net.infos] == [
        ("stem", "Conv2D", ("input",), (8, 8, 8), 3 * 3 * 3 * 8 + 8),
        ("b1", "Conv2D", ("stem",), (8, 8, 8), 3 * 3 * 8 * 8 + 8),
        ("add", "Add", ("stem", "b1"), (8, 8, 8), 0),
        ("concatenate", "Concatenate", ("stem", "add"), (8, 8, 16), 0),
        ("flatten", "Flatten", ("concatenate",), (1024,), 0),
        ("dense", "Dense", ("flatten",), (2,), 1024 * 2 + 2),
    ]
    # The spec file that says the same thing is the same network.
    spec = network_from_document({"name": "resblock", "input": [8, 8, 3], "layers": [
        {"Conv2D": {"filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu",
                    "name": "stem"}},
        {"Conv2D": {"filters": 8, "kernel_size": 3, "padding": "same", "name": "b1"}},
        {"Add": {"inputs": ["stem", "b1"]}},
        {"Concatenate": {"inputs": ["stem", "add"]}},
        {"Flatten": {}},
        {"Dense": {"units": 2, "activation": "softmax"}},
    ]}, "r.yaml", "r")
    assert spec == net


def test_keras_functional_dag_files(tmp_path):
    config = residual_functional("keras3")
    keras_path = tmp_path / "r.keras"
    with zipfile.ZipFile(keras_path, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
    h5_path = tmp_path / "r.h5"
    with h5py.File(h5_path, "w") as f:
        f.attrs["model_config"] = json.dumps(residual_functional("keras2")).encode()
    a, b = load_network(keras_path), load_network(h5_path)
    assert a == b
    assert not a.is_chain and a.total_params == 224 + 584 + 2050


def _edit(config, name, **changes):
    for entry in config["config"]["layers"]:
        if entry["name"] == name:
            entry.update(changes)
    return config


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: _edit(c, "b1", inbound_nodes=_keras3_node("stem") * 2),
         (r"^r\.keras: layer 'b1' \(Conv2D\): called 2 times; only layers called once are "
         r"supported \(no shared layers\)$")),
        (lambda c: _edit(c, "b1", inbound_nodes=_keras3_node("ghost")),
         r"^r\.keras: layer 'b1' \(Conv2D\): inputs: no layer named 'ghost' in the model$"),
        (lambda c: _edit(c, "stem", inbound_nodes=_keras3_node("b1")),
         (r"^r\.keras: layers \['add', 'b1', 'concatenate', 'dense', 'flatten', 'stem'\] form a "
         r"cycle or depend on one$")),
        (lambda c: c["config"].update(output_layers=[["dense", 0, 0], ["add", 0, 0]]),
         (r"^r\.keras: the model has 2 outputs \(\['dense', 'add'\]\); exactly one is "
         r"supported$")),
        (lambda c: _edit(c, "b1", inbound_nodes=_keras3_node("stem", "input_layer")),
         r"^r\.keras: layer 1 \(b1, Conv2D\): inputs: Conv2D takes one input, not 2$"),
        (lambda c: _edit(c, "add", class_name="Subtract"),
         r"^r\.keras: layer 2 \(add, Subtract\): layer type 'Subtract' is not supported"),
    ],
)
def test_keras_graph_errors(edit, message):
    config = copy.deepcopy(residual_functional("keras3"))
    edit(config)
    with pytest.raises(AccelError, match=message):
        network_from_keras_config(config, "r.keras")


# --- TFLite operator graphs ----------------------------------------------------------------------

RNG = np.random.default_rng(20261202)


def _tensors():
    """x (input) -> conv -> a -> conv -> c, plus a spare output tensor s."""
    def weights(cin):
        return RNG.integers(-127, 128, (4, 3, 3, cin))

    return [
        Tensor("x", (1, 6, 6, 2), (0.05,), (-3,)),
        Tensor("w1", (4, 3, 3, 2), (0.02,), (0,), weights(2)),
        Tensor("b1", (4,), (0.001,), (0,), RNG.integers(-500, 500, 4), int32=True),
        Tensor("a", (1, 6, 6, 4), (0.1,), (5,)),
        Tensor("w2", (4, 3, 3, 4), (0.02,), (0,), weights(4)),
        Tensor("b2", (4,), (0.002,), (0,), RNG.integers(-500, 500, 4), int32=True),
        Tensor("c", (1, 6, 6, 4), (0.2,), (-7,)),
        Tensor("s", (1, 6, 6, 4), (0.3,), (1,)),
        Tensor("cat", (1, 6, 6, 8), (0.3,), (1,)),
    ]


CONV = tflite.BuiltinOperator.CONV_2D


def _write(tmp_path, ops, output, name="g.tflite"):
    path = tmp_path / name
    path.write_bytes(write_graph(_tensors(), ops, [0], [output]))
    return path


def test_tflite_graph_names_inputs_by_producer(tmp_path):
    path = _write(tmp_path, [Op(CONV, [0, 1, 2], [3], *conv_options()),
                             Op(CONV, [3, 4, 5], [6], *conv_options())], 6)
    qnet = load_tflite(path)
    assert [(layer.name, layer.inputs) for layer in qnet.layers] == [
        ("conv2d", ("input",)), ("conv2d_1", ("conv2d",))]
    x = RNG.integers(-128, 128, (3, 6, 6, 2))
    out = golden.run(qnet, x)
    # Each layer on its own, fed the previous layer's golden output, gives the same bits.
    first = QuantizedNetwork("first", qnet.scheme, (6, 6, 2), qnet.input, (qnet.layers[0],))
    second = QuantizedNetwork("second", qnet.scheme, (6, 6, 4), qnet.layers[1].input,
                              (dataclasses.replace(qnet.layers[1], inputs=None),))
    assert np.array_equal(golden.run(first, x)["conv2d"], out["conv2d"])
    assert np.array_equal(golden.run(second, out["conv2d"])["conv2d_1"], out["conv2d_1"])


def test_tflite_add_of_two_branches_runs_the_int8_kernel(tmp_path):
    """ADD reads two producers (a fork: conv2d feeds conv2d_1 and the add), each input with its
    own scale; the golden model's add is tflite_kernels.add on the golden inputs."""
    from accel.quant import tflite_kernels

    path = _write(tmp_path, [Op(CONV, [0, 1, 2], [3], *conv_options()),
                             Op(CONV, [3, 4, 5], [6], *conv_options()),
                             Op(tflite.BuiltinOperator.ADD, [3, 6], [7], *add_options())], 7)
    qnet = load_tflite(path)
    add = qnet.layers[2]
    assert (add.name, add.inputs) == ("add", ("conv2d", "conv2d_1"))
    assert (add.input.scale, add.input2.scale, add.output.scale) == pytest.approx((0.1, 0.2, 0.3))
    x = RNG.integers(-128, 128, (3, 6, 6, 2))
    out = golden.run(qnet, x)
    want = tflite_kernels.add(
        out["conv2d"], out["conv2d_1"], input1_zero_point=5, input2_zero_point=-7,
        output_zero_point=1, params=tflite_kernels.add_params(0.1, 0.2, 0.3))
    assert np.array_equal(out["add"], want)


def test_tflite_concatenation_of_unlike_scales_is_refused(tmp_path):
    path = _write(tmp_path, [Op(CONV, [0, 1, 2], [3], *conv_options()),
                             Op(CONV, [3, 4, 5], [6], *conv_options()),
                             Op(tflite.BuiltinOperator.CONCATENATION, [3, 6], [8],
                                *concatenation_options())], 8)
    with pytest.raises(AccelError, match=rf"^{path}: operator 2 \(CONCATENATION\): input 0 "
                       r"\('a'\) is quantized \(scale 0\.1, zero point 5\) unlike the output "
                       r"\(scale 0\.3, zero point 1\); TFLite's int8 CONCATENATION cannot "
                       r"rescale$"):
        load_tflite(path)


def test_tflite_operator_reading_an_unproduced_tensor(tmp_path):
    path = _write(tmp_path, [Op(CONV, [3, 4, 5], [6], *conv_options())], 6)
    with pytest.raises(AccelError, match=rf"^{path}: operator 0 \(CONV_2D\): reads tensor 3 "
                       r"\('a'\), which is neither the model input nor the output of an "
                       r"earlier operator$"):
        load_tflite(path)


def test_tflite_fork_with_an_unread_branch(tmp_path):
    path = _write(tmp_path, [Op(CONV, [0, 1, 2], [3], *conv_options()),
                             Op(CONV, [0, 1, 2], [7], *conv_options())], 7)
    with pytest.raises(AccelError, match=rf"^{path}: layer 0 \(conv2d, Conv2D\): output: no "
                       r"later layer reads it; only the last layer's output is the model "
                       r"output$"):
        load_tflite(path)


# --- the quantized network and the golden model on a graph ----------------------------------------


def test_quantizing_a_residual_spec_joins_with_tflite_numerics():
    """tiny_residual: the Add (with its ReLU fused) is TFLite's int8 ADD of its two inputs;
    the Concatenate's inputs (stem, and the Add through its ReLU) share its quantization."""
    from accel.quant import tflite_kernels

    net = load_network(SPECS / "tiny_residual.yaml")
    qnet = random_quantized(net, seed=1)
    layers = {layer.name: layer for layer in qnet.layers}
    add, cat = layers["add"], layers["concatenate"]
    assert add.inputs == ("stem", "conv2d_1") and add.activation == "relu"
    assert cat.inputs == ("stem", "add")
    assert layers["stem"].output == add.output == cat.output
    x = np.random.default_rng(4).integers(-128, 128, (3, 16, 16, 3))
    out = golden.run(qnet, x)
    want = tflite_kernels.add(
        out["stem"], out["conv2d_1"], input1_zero_point=add.input.zero_point,
        input2_zero_point=add.input2.zero_point, output_zero_point=add.output.zero_point,
        params=golden.add_params(add), act_min=add.act_min, act_max=add.act_max)
    assert np.array_equal(out["add"], want)
    assert np.array_equal(out["concatenate"], np.concatenate([out["stem"], out["add"]], -1))


@dataclasses.dataclass(frozen=True, eq=False)
class _QTestSum(QLayer):
    """A stand-in join for the graph walk only (the real Add numerics come with issue 12)."""

    kind = "test_sum"

    def spec(self):
        return Add(name=self.name, inputs=self.inputs)


def _fork_and_join():
    """stem -> b1, and add(stem, b1): stem is a fork with two consumers."""
    chain = random_quantized(Network("c", (6, 6, 2), (
        Conv2D(4, 3, padding="same", name="stem"), Conv2D(4, 3, padding="same", name="b1"))),
        seed=7)
    stem, b1 = chain.layers
    join = _QTestSum(name="add", inputs=("stem", "b1"), input=b1.output, output=b1.output)
    return chain, QuantizedNetwork("g", chain.scheme, chain.input_shape, chain.input,
                                   (stem, b1, join))


def test_golden_runs_the_dag(monkeypatch):
    chain, graph = _fork_and_join()
    assert [layer.inputs for layer in graph.layers] == [("input",), ("stem",), ("stem", "b1")]
    x = np.random.default_rng(3).integers(-128, 128, (5, 6, 6, 2))
    with pytest.raises(AccelError, match=r"^layer 2 \(add, Add\): no integer implementation "
                       r"yet$"):
        golden.run(graph, x)
    seen = []

    def fake_sum(xs, layer, info):
        seen.append(tuple(a.shape for a in xs))
        # operators hand on the narrow output type (int8): widen before adding
        return np.clip(xs[0].astype(np.int64) + xs[1], -128, 127)

    monkeypatch.setitem(golden.JOIN_OPERATORS, _QTestSum, fake_sum)
    want = golden.run(chain, x)
    got = golden.run(graph, x)
    assert list(got) == ["stem", "b1", "add"]
    assert np.array_equal(got["stem"], want["stem"]) and np.array_equal(got["b1"], want["b1"])
    expected = np.clip(want["stem"].astype(int) + want["b1"], -128, 127)
    assert np.array_equal(got["add"], expected)
    assert seen == [((5, 6, 6, 4), (5, 6, 6, 4))]


def test_require_chain():
    chain, graph = _fork_and_join()
    chain.require_chain("plan")
    with pytest.raises(AccelError, match=r"^plan: layer 2 \(add, Add\) reads stem, b1, not just "
                       r"the layer before it; only a chain of layers is supported here so far$"):
        graph.require_chain("plan")


def test_npz_records_inputs_and_old_files_load_as_chains(tmp_path):
    qnet = random_quantized(load_network(SPECS / "seed_mnist_cnn.yaml"), seed=2)
    path = tmp_path / "q.npz"
    save_quantized(qnet, path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    manifest = json.loads(str(arrays[MANIFEST_KEY]))
    assert [entry["inputs"] for entry in manifest["layers"]] == [
        [info.inputs[0]] for info in qnet.network.infos]
    loaded = load_quantized(path)
    assert [layer.inputs for layer in loaded.layers] == [layer.inputs for layer in qnet.layers]
    # A file from before networks were graphs: no inputs anywhere.
    for entry in manifest["layers"]:
        del entry["inputs"]
    arrays[MANIFEST_KEY] = np.array(json.dumps(manifest))
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    assert [layer.inputs for layer in load_quantized(old).layers] == [
        layer.inputs for layer in qnet.layers]
    x = np.random.default_rng(0).integers(-128, 128, (2, 28, 28, 1))
    a, b = golden.run(qnet, x), golden.run(load_quantized(old), x)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_folding_keeps_the_graph_names():
    """A chain written with explicit inputs (as the Keras importer writes functional models)
    folds BatchNormalization, ReLU and Dropout away and rewires the readers to the layer they
    were folded into: the same integers as the implicit chain."""
    from accel.spec import BatchNormalization, Dense, Dropout, Flatten, ReLU

    def net(explicit):
        def ins(name):
            return {"inputs": (name,)} if explicit else {}

        return Network("n", (6, 6, 2), (
            Conv2D(4, 3, name="c", **ins("input")), BatchNormalization(name="bn", **ins("c")),
            ReLU(name="r", **ins("bn")), Dropout(0.5, name="d", **ins("r")),
            Flatten(name="f", **ins("d")), Dense(3, name="o", **ins("f"))))

    a, b = random_quantized(net(False), seed=5), random_quantized(net(True), seed=5)
    assert [(layer.name, layer.inputs) for layer in b.layers] == [
        ("c", ("input",)), ("f", ("c",)), ("o", ("f",))]
    assert b.layers[0].activation == "relu"
    x = np.random.default_rng(1).integers(-128, 128, (4, 6, 6, 2))
    ra, rb = golden.run(a, x), golden.run(b, x)
    assert list(ra) == list(rb) and all(np.array_equal(ra[k], rb[k]) for k in ra)


def _keras_config(doc, order):
    """A Keras 3 functional config of a spec document, its layers listed in ``order``."""
    def node(sources):
        return _keras3_node(*("input_layer" if s == "input" else s for s in sources))

    layers = []
    for entry in doc["layers"]:
        ((class_name, args),) = entry.items()
        config = {k: v for k, v in args.items() if k != "inputs"}
        layers.append({"name": args["name"], "class_name": class_name, "config": config,
                       "inbound_nodes": node(args["inputs"])})
    layers = [layers[i] for i in order]
    return {"class_name": "Functional", "config": {"name": "random", "layers": [
        {"name": "input_layer", "class_name": "InputLayer",
         "config": {"name": "input_layer", "batch_shape": [None, *doc["input"]]},
         "inbound_nodes": []}, *layers],
        "output_layers": [[doc["layers"][-1][next(iter(doc["layers"][-1]))]["name"], 0, 0]]}}


@settings(max_examples=100, deadline=None)
@given(random_dags(), st.randoms(use_true_random=False))
def test_random_keras_dags_import_as_the_spec(case, rnd):
    """Any DAG, its Keras config listed in any order: the importer finds a topological order
    and the same layers, inputs and shapes as the spec file; in file order, the same network."""
    doc, _ = case
    spec = network_from_document(doc, "random", "random")
    n = len(doc["layers"])
    assert network_from_keras_config(_keras_config(doc, range(n)), "random") == spec
    order = list(range(n))
    rnd.shuffle(order)
    net = network_from_keras_config(_keras_config(doc, order), "random")
    position = {info.name: info.index for info in net.infos}
    assert all(position.get(s, -1) < info.index for info in net.infos for s in info.inputs)
    assert net.infos[-1].name == spec.infos[-1].name

    def by_name(network):
        return {i.name: (i.type_name, i.inputs, i.output_shape, i.params, i.macs)
                for i in network.infos}

    assert by_name(net) == by_name(spec)


def test_cli_refuses_quantizing_an_add_of_three_in_one_line(tmp_path):
    from click.testing import CliRunner

    from accel.cli import main

    spec = tmp_path / "add3.yaml"
    spec.write_text("name: add3\ninput: [4, 4, 2]\nlayers:\n"
                    "  - Conv2D: {filters: 2, kernel_size: 1, name: a}\n"
                    "  - Conv2D: {filters: 2, kernel_size: 1, name: b, inputs: [a]}\n"
                    "  - Add: {inputs: [input, a, b]}\n")
    result = CliRunner().invoke(main, ["quantize", str(spec), "--seed", "1", "-o",
                                       str(tmp_path / "q.npz")])
    assert result.exit_code == 2
    assert result.stderr == ("accel: error: layer 2 (add, Add): an Add of 3 inputs; only two "
                             "can be quantized (TFLite's ADD)\n")
    assert not (tmp_path / "q.npz").exists()
