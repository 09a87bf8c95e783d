"""The golden model reproduces TFLite's reference interpreter on every layer of the four MLPerf
Tiny reference models (examples/mlperf_tiny: ResNet-8, DS-CNN, MobileNetV1 0.25, the dense
autoencoder), bit for bit, through `accel predict` as a user runs it; and on fresh random
inputs against the live interpreter (`tflite` marker)."""

import json
from collections import Counter

import numpy as np
import pytest

from accel.quant import golden
from accel.quant.tflite_model import load_tflite

from .paths import EXAMPLES

MLPERF = EXAMPLES / "mlperf_tiny"
MODELS = ("ic_resnet8", "kws_ds_cnn", "vww_mobilenet_v1", "ad_autoencoder")
#: The interpreter's operators on the int8 data path (the flatten idiom's shape ops skipped).
DATA_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "RESHAPE",
            "FULLY_CONNECTED", "SOFTMAX")
COMPARED: Counter = Counter()


def interpreter_tensors(name):
    meta = json.loads((MLPERF / f"{name}_expected.json").read_text())
    expected = np.load(MLPERF / f"{name}_expected.npz")
    ops = [op for op in meta["ops"] if op["op"] in DATA_OPS]
    return [(op["op_index"], op["op"], expected[op["outputs"][0]["key"]]) for op in ops]


def _compare(name, ours, reference):
    assert len(ours) == len(reference), (list(ours), [op for _, op, _ in reference])
    elements = 0
    for (layer_name, got), (index, op, want) in zip(ours.items(), reference, strict=True):
        got = got.reshape(want.shape)
        mismatch = np.flatnonzero(got != want)
        assert mismatch.size == 0, (
            f"{name}/{layer_name} (operator {index}, {op}): {mismatch.size} of {want.size} "
            f"differ, first at flat index {mismatch[0]}: ours {got.flat[mismatch[0]]}, TFLite "
            f"{want.flat[mismatch[0]]}")
        COMPARED[op] += want.size
        elements += want.size
    return elements


@pytest.mark.parametrize("name", MODELS)
def test_accel_predict_matches_the_reference_interpreter_on_every_layer(name, tmp_path):
    """`accel predict X.tflite X_input.npy -o out.npz`: every layer's int8 output equals the
    interpreter's tensor, for every stored sample."""
    from click.testing import CliRunner

    from accel.cli import main

    out = tmp_path / "out.npz"
    result = CliRunner().invoke(main, ["predict", str(MLPERF / f"{name}.tflite"),
                                       str(MLPERF / f"{name}_input.npy"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        ours = {key: data[key] for key in data.files if key != "output"}
        final = data["output"]
    reference = interpreter_tensors(name)
    elements = _compare(name, ours, reference)
    assert np.array_equal(final.reshape(reference[-1][2].shape), reference[-1][2])
    print(f"{name}: {len(reference)} layers, {elements} elements bit-exact")


def test_the_comparison_covers_every_operator_type():
    """Run after the per-model tests (file order): all operator types were really compared."""
    if not COMPARED:
        pytest.skip("run together with the per-model comparisons")
    assert set(COMPARED) == set(DATA_OPS), COMPARED
    print("tensor elements compared per operator:", dict(COMPARED))


def test_imported_layers_carry_tflite_parameters():
    resnet = load_tflite(MLPERF / "ic_resnet8.tflite")
    add = next(layer for layer in resnet.layers if layer.kind == "add")
    assert add.inputs == ("conv2d", "conv2d_2") and add.activation == "relu"
    assert add.left_shift == 20 and add.act_min == -128
    # The larger input scale gets exactly one half: (2**30, shift 0).
    larger = (add.input1_multiplier, add.input1_shift) if add.input.scale > add.input2.scale \
        else (add.input2_multiplier, add.input2_shift)
    assert larger == (2**30, 0)
    kws = load_tflite(MLPERF / "kws_ds_cnn.tflite")
    dw = next(layer for layer in kws.layers if layer.kind == "depthwise_conv2d")
    assert dw.weights.shape == (3, 3, 64, 1) and dw.weight_scale.shape == (64,)
    assert dw.requant.mode == "multiplier" and len(set(dw.requant.multiplier.tolist())) > 1
    pool = next(layer for layer in kws.layers if layer.kind == "avg_pool2d")
    assert pool.pool_size == (24, 5) and pool.strides == (24, 5) and pool.padding == "valid"
    assert [info.type_name for info in kws.network.infos][-4:] == [
        "AveragePooling2D", "Flatten", "Dense", "Activation"]


@pytest.mark.tflite
@pytest.mark.parametrize("name", MODELS)
def test_live_reference_interpreter_on_random_inputs(name):
    """Re-run ai-edge-litert's reference kernels now on fresh random int8 inputs: every
    layer's tensor equals the golden model's (skipped when it is not installed)."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    qnet = load_tflite(MLPERF / f"{name}.tflite")
    rng = np.random.default_rng(12)
    x = rng.integers(-128, 128, (2, *qnet.input_shape), dtype=np.int8)
    interp = litert.Interpreter(
        model_path=str(MLPERF / f"{name}.tflite"),
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    ours = golden.run(qnet, x)
    meta = json.loads((MLPERF / f"{name}_expected.json").read_text())
    ops = [op for op in meta["ops"] if op["op"] in DATA_OPS]
    assert len(ops) == len(ours)
    for i in range(len(x)):
        interp.set_tensor(interp.get_input_details()[0]["index"], x[i:i + 1])
        interp.invoke()
        for (layer_name, got), op in zip(ours.items(), ops, strict=True):
            want = interp.get_tensor(op["outputs"][0]["index"])
            assert np.array_equal(got[i].reshape(want.shape[1:]), want[0]), (
                name, i, layer_name, op["op"], "seed 12")
