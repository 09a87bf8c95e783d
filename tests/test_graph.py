"""Networks as graphs at the spec level: inputs, Add/Concatenate, one shape inference over a
DAG, the errors, and summary/explain of branchy networks with Keras's numbers (by hand)."""

import json

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.cli import main
from accel.errors import AccelError
from accel.spec import Add, Concatenate, Conv2D, Dense, Flatten, Network, load_network
from accel.spec.spec_file import network_from_document
from accel.spec.summary import summary_dict

from .paths import SPECS

ISSUE_EXAMPLE = """\
input: [8, 8, 3]
layers:
  - Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu, name: stem}
  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: b1}
  - Add: {inputs: [stem, b1]}
  - Concatenate: {inputs: [stem, add]}       # axis -1, as Keras
"""


def from_yaml(text, context="f.yaml"):
    return network_from_document(yaml.safe_load(text), context, "f")


def test_issue_example_graph():
    net = from_yaml(ISSUE_EXAMPLE)
    assert [(i.name, i.type_name, i.inputs, i.input_shapes, i.output_shape, i.params, i.macs)
            for i in net.infos] == [
        ("stem", "Conv2D", ("input",), ((8, 8, 3),), (8, 8, 8), 3 * 3 * 3 * 8 + 8,
         8 * 8 * 8 * 27),
        ("b1", "Conv2D", ("stem",), ((8, 8, 8),), (8, 8, 8), 3 * 3 * 8 * 8 + 8, 8 * 8 * 8 * 72),
        ("add", "Add", ("stem", "b1"), ((8, 8, 8),) * 2, (8, 8, 8), 0, 0),
        ("concatenate", "Concatenate", ("stem", "add"), ((8, 8, 8),) * 2, (8, 8, 16), 0, 0),
    ]
    assert not net.is_chain
    assert [i.name for i in net.consumers("stem")] == ["b1", "add", "concatenate"]
    assert net.output_shape == (8, 8, 16)
    with pytest.raises(AccelError, match=r"^layer 2 \(add, Add\): has 2 inputs; input_shape is "
                       r"only defined for single-input layers$"):
        net.infos[2].input_shape  # noqa: B018


def test_chain_files_get_default_inputs():
    net = load_network(SPECS / "seed_mnist_cnn.yaml")
    assert net.is_chain
    assert [i.inputs for i in net.infos] == [
        ("input",), ("conv2d",), ("max_pooling2d",), ("conv2d_1",), ("max_pooling2d_1",),
        ("flatten",), ("dense",)]
    assert net.infos[2].input_shape == (14, 14, 32)
    # Naming the default explicitly is the same network.
    explicit = Network(net.name, net.input_shape,
                       tuple(layer.__class__(**{**_args(layer), "inputs": [src]})
                             for layer, src in zip(net.layers, [i.inputs[0] for i in net.infos],
                                                   strict=True)))
    assert explicit == net


def _args(layer):
    import dataclasses

    return {f.name: getattr(layer, f.name) for f in dataclasses.fields(layer) if f.init}


def test_fork_without_join_can_still_be_consumed_twice():
    """A layer may read the same tensor twice (x + x), as in Keras."""
    net = Network("n", (4, 4, 2), (Conv2D(3, 1, name="c"), Add(inputs=("c", "c"))))
    assert net.infos[1].input_shapes == ((4, 4, 3), (4, 4, 3))


BAD_GRAPHS = [
    (("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: stem}\n"
     "  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: b1}\n"
     "  - Add: {inputs: [stem, nope]}\n"),
     (r"^f\.yaml: layer 2 \(add, Add\): inputs: no layer named 'nope' before it \(known: "
     r"input, stem, b1\)$")),
    (("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: stem}\n"
     "  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: b1, inputs: [late]}\n"
     "  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: late, inputs: [stem]}\n"
     "  - Add: {inputs: [b1, late]}\n"),
     (r"^f\.yaml: layer 1 \(b1, Conv2D\): inputs: 'late' is layer 2, which comes later; a layer "
     r"can only read layers before it \(a forward reference is a cycle\)$")),
    ("  - Conv2D: {filters: 8, kernel_size: 3, name: c, inputs: [c]}\n",
     (r"^f\.yaml: layer 0 \(c, Conv2D\): inputs: 'c' is itself; a layer can only read layers "
     r"before it \(a forward reference is a cycle\)$")),
    (("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: a}\n"
     "  - Conv2D: {filters: 4, kernel_size: 3, padding: same, name: b}\n"
     "  - Add: {inputs: [a, b]}\n"),
     (r"^f\.yaml: layer 2 \(add, Add\): inputs: shapes \(8, 8, 8\), \(8, 8, 4\) cannot be added "
     r"\(Add needs equal shapes\)$")),
    (("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: a}\n"
     "  - Conv2D: {filters: 4, kernel_size: 3, padding: valid, name: b}\n"
     "  - Concatenate: {inputs: [a, b]}\n"),
     (r"^f\.yaml: layer 2 \(concatenate, Concatenate\): inputs: shapes \(8, 8, 8\), \(6, 6, 4\) "
     r"cannot be concatenated on the channel axis \(all other sizes must be equal\)$")),
    (("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: a}\n"
     "  - Flatten: {name: f}\n"
     "  - Concatenate: {inputs: [a, f]}\n"),
     (r"^f\.yaml: layer 2 \(concatenate, Concatenate\): inputs: shapes \(8, 8, 8\), \(512,\) "
     r"cannot be concatenated")),
    (("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: a}\n"
     "  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: b1}\n"
     "  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: b2, inputs: [a]}\n"),
     (r"^f\.yaml: layer 1 \(b1, Conv2D\): output: no later layer reads it; only the last "
     r"layer's output is the model output$")),
    (("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: a}\n"
     "  - Conv2D: {filters: 8, kernel_size: 3, padding: same, inputs: [input, a]}\n"),
     r"^f\.yaml: layer 1 \(conv2d, Conv2D\): inputs: Conv2D takes one input, not 2$"),
    (("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: a}\n"
     "  - Add: {inputs: [a]}\n"),
     r"^f\.yaml: layer 1 \(add, Add\): inputs: Add needs at least two inputs, not 1$"),
    (("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: a}\n"
     "  - Add: {inputs: a}\n"),
     (r"^f\.yaml: layer 1 \(\?, Add\): inputs must be a non-empty list of layer names, not "
     r"'a'$")),
    (("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: a}\n"
     "  - Add: {inputs: []}\n"),
     (r"^f\.yaml: layer 1 \(\?, Add\): inputs must be a non-empty list of layer names, not "
     r"\[\]$")),
    ("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: input}\n",
     r"^f\.yaml: layer 0 \(input, Conv2D\): name 'input' is reserved for the model input$"),
    (("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: a}\n"
     "  - Concatenate: {inputs: [a, a], axis: 1}\n"),
     (r"^f\.yaml: layer 1 \(concatenate, Concatenate\): axis must be the channel axis \(-1 or "
     r"3\), not 1$")),
    (("  - Conv2D: {filters: 8, kernel_size: 3, padding: same, name: a}\n"
     "  - Concatenate: {inputs: [a, a], axis: x}\n"),
     r"^f\.yaml: layer 1 \(\?, Concatenate\): axis must be an integer, not 'x'$"),
]


@pytest.mark.parametrize(("layers", "message"), BAD_GRAPHS)
def test_graph_errors_name_the_layer_and_the_field(layers, message):
    with pytest.raises(AccelError, match=message):
        from_yaml("input: [8, 8, 3]\nlayers:\n" + layers)


def test_graph_error_through_the_cli_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("input: [8, 8, 3]\nlayers:\n" + BAD_GRAPHS[0][0])
    result = CliRunner().invoke(main, ["summary", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"accel: error: {path}: layer 2 (add, Add): inputs: no layer named")


# --- random DAGs ---------------------------------------------------------------------------------

@st.composite
def random_dags(draw):
    """A random DAG on an (h, w, c) input, with the expected Keras numbers computed alongside:
    convolutions (stride 1, 'same', so every tensor keeps h x w and joins are always possible
    on it) and pools with stride 1, reading any earlier tensor (forks), Add of equal-shaped
    tensors and Concatenate of any, then a final Concatenate of every tensor nothing reads."""
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    tensors = {"input": (h, w, draw(st.integers(1, 4)))}
    read: set[str] = set()
    entries, expected = [], []
    for index in range(draw(st.integers(1, 8))):
        name = f"t{index}"
        kind = draw(st.sampled_from(["conv", "pool", "add", "concat"]))
        names = list(tensors)
        first = draw(st.sampled_from(names))
        shape = tensors[first]
        if kind == "conv":
            k, f = draw(st.integers(1, 3)), draw(st.integers(1, 5))
            entries.append({"Conv2D": {"filters": f, "kernel_size": k, "padding": "same",
                                       "name": name, "inputs": [first]}})
            out, params, macs = (h, w, f), k * k * shape[2] * f + f, h * w * f * k * k * shape[2]
            ins = [first]
        elif kind == "pool":
            entries.append({"MaxPooling2D": {"pool_size": draw(st.integers(1, 3)), "strides": 1,
                                             "padding": "same", "name": name,
                                             "inputs": [first]}})
            out, params, macs, ins = shape, 0, 0, [first]
        elif kind == "add":
            same = [n for n in names if tensors[n] == shape]
            ins = [first, *draw(st.lists(st.sampled_from(same), min_size=1, max_size=2))]
            entries.append({"Add": {"name": name, "inputs": ins}})
            out, params, macs = shape, 0, 0
        else:
            ins = [first, *draw(st.lists(st.sampled_from(names), min_size=1, max_size=2))]
            entries.append({"Concatenate": {"name": name, "inputs": ins}})
            out, params, macs = (h, w, sum(tensors[n][2] for n in ins)), 0, 0
        read.update(ins)
        tensors[name] = out
        expected.append((name, tuple(ins), out, params, macs))
    leaves = [n for n in tensors if n not in read and n != "input"]
    if len(leaves) > 1:
        entries.append({"Concatenate": {"name": "out", "inputs": leaves}})
        expected.append(("out", tuple(leaves), (h, w, sum(tensors[n][2] for n in leaves)), 0,
                         0))
    return {"input": list(tensors["input"]), "layers": entries}, expected


@settings(max_examples=150, deadline=None)
@given(random_dags())
def test_random_dag_shapes_params_and_macs(case):
    doc, expected = case
    net = network_from_document(doc, "random", "random")
    got = [(i.name, i.inputs, i.output_shape, i.params, i.macs) for i in net.infos]
    assert got == expected
    assert net.total_params == sum(e[3] for e in expected)
    assert net.total_macs == sum(e[4] for e in expected)
    summary = summary_dict(net)
    assert [(r["name"], tuple(r["inputs"])) for r in summary["layers"]] == [
        (e[0], e[1]) for e in expected]
    # The same graph written as YAML (as a user would) reads back to the same network.
    assert network_from_document(yaml.safe_load(yaml.safe_dump(doc)), "random", "random") == net


# --- summary and explain of the branchy example ---------------------------------------------

RESIDUAL = SPECS / "tiny_residual.yaml"


def test_tiny_residual_summary_is_keras_numbers_by_hand():
    """Keras's numbers, computed here from its rules: conv params k*k*cin*f + f, Add and
    Concatenate 0 params, Concatenate sums channels, Dense n*u + u."""
    result = CliRunner().invoke(main, ["summary", str(RESIDUAL), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = [(r["index"], r["name"], r["type"], r["inputs"], r["output_shape"], r["params"],
             r["macs"]) for r in data["layers"]]
    conv1, conv8 = 3 * 3 * 3 * 8 + 8, 3 * 3 * 8 * 8 + 8
    assert rows == [
        (0, "stem", "Conv2D", ["input"], [16, 16, 8], conv1, 16 * 16 * 8 * 27),
        (1, "conv2d", "Conv2D", ["stem"], [16, 16, 8], conv8, 16 * 16 * 8 * 72),
        (2, "conv2d_1", "Conv2D", ["conv2d"], [16, 16, 8], conv8, 16 * 16 * 8 * 72),
        (3, "add", "Add", ["stem", "conv2d_1"], [16, 16, 8], 0, 0),
        (4, "re_lu", "ReLU", ["add"], [16, 16, 8], 0, 0),
        (5, "concatenate", "Concatenate", ["stem", "re_lu"], [16, 16, 16], 0, 0),
        (6, "max_pooling2d", "MaxPooling2D", ["concatenate"], [8, 8, 16], 0, 0),
        (7, "flatten", "Flatten", ["max_pooling2d"], [1024], 0, 0),
        (8, "dense", "Dense", ["flatten"], [10], 1024 * 10 + 10, 1024 * 10),
    ]
    assert data["total_params"] == 224 + 584 + 584 + 10_250 == 11_642
    assert data["non_trainable_params"] == 0
    assert data["softmax_on_output"]


def test_tiny_residual_table_has_keras_functional_layout():
    result = CliRunner().invoke(main, ["summary", str(RESIDUAL)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "Layer (type)" in line)
    assert "Connected to" in header
    assert any("input (InputLayer)" in line and "(None, 16, 16, 3)" in line for line in lines)
    add = next(i for i, line in enumerate(lines) if "add (Add)" in line)
    # Keras joins the connections with ", "; a narrow console wraps the cell onto a second line.
    cell = " ".join(line.split("│")[-2].strip() for line in lines[add:add + 2])
    assert cell.startswith("stem[0][0], conv2d_1[0][0]")
    stem = next(line for line in lines if "stem (Conv2D)" in line)
    assert "input[0][0]" in stem
    concat = next(line for line in lines if "concatenate (Concatenate)" in line)
    assert "(None, 16, 16, 16)" in concat
    assert "Total params: 11,642" in result.stdout


def test_chain_summary_keeps_the_sequential_layout():
    result = CliRunner().invoke(main, ["summary", str(SPECS / "seed_mnist_cnn.yaml")])
    assert "Connected to" not in result.stdout
    assert "InputLayer" not in result.stdout


def test_explain_merge_layers():
    run = CliRunner().invoke
    add = run(main, ["explain", str(RESIDUAL), "add"]).stdout
    assert "y[i] = stem[i] + conv2d_1[i]" in add
    assert "no parameters, no MACs" in add
    concat = run(main, ["explain", str(RESIDUAL), "5"]).stdout
    assert "8 + 8 = 16 channels" in concat
    assert "stem -> channels 0..7; re_lu -> channels 8..15" in concat
    dense = run(main, ["explain", str(RESIDUAL), "dense"]).stdout
    assert "1,024 = 8*8*16" in dense
    # The trace follows each layer's first input back: concatenate -> stem -> input.
    assert "spatial size 16x16 -> 16x16 -> 8x8 (input, stem, max_pooling2d)" in dense


def test_merge_layer_python_api():
    net = Network("n", (6,), (Dense(4, name="a"), Dense(4, name="b", inputs=["input"]),
                              Add(inputs=["a", "b"]), Concatenate(inputs=["add", "a"]),
                              Dense(2)))
    assert [i.output_shape for i in net.infos] == [(4,), (4,), (4,), (8,), (2,)]
    assert net.layers[1].inputs == ("input",)
    assert isinstance(net.layers[3], Concatenate) and net.infos[4].params == 8 * 2 + 2
    assert Flatten().inputs is None
