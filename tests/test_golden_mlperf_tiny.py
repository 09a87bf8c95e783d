"""The golden model reproduces TFLite's reference interpreter on every layer of the four MLPerf
Tiny reference models (examples/mlperf_tiny: ResNet-8, DS-CNN, MobileNetV1 0.25, the dense
autoencoder), bit for bit, through `accel predict` as a user runs it; and on fresh random
inputs against the live interpreter (`tflite` marker)."""

import functools
import json
import tempfile
from collections import Counter
from pathlib import Path

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


def interpreter_tensors(name):
    meta = json.loads((MLPERF / f"{name}_expected.json").read_text())
    expected = np.load(MLPERF / f"{name}_expected.npz")
    ops = [op for op in meta["ops"] if op["op"] in DATA_OPS]
    return [(op["op_index"], op["op"], expected[op["outputs"][0]["key"]]) for op in ops]


def _compare(name, ours, reference) -> Counter:
    """Elements compared per operator type; fails at the first differing layer."""
    assert len(ours) == len(reference), (list(ours), [op for _, op, _ in reference])
    compared: Counter = Counter()
    for (layer_name, got), (index, op, want) in zip(ours.items(), reference, strict=True):
        got = got.reshape(want.shape)
        mismatch = np.flatnonzero(got != want)
        assert mismatch.size == 0, (
            f"{name}/{layer_name} (operator {index}, {op}): {mismatch.size} of {want.size} "
            f"differ, first at flat index {mismatch[0]}: ours {got.flat[mismatch[0]]}, TFLite "
            f"{want.flat[mismatch[0]]}")
        compared[op] += want.size
    return compared


@functools.cache
def predicted_and_compared(name) -> Counter:
    """`accel predict X.tflite X_input.npy -o out.npz` as a user runs it, every layer of the
    archive compared with the interpreter's tensor (cached: each test may need any model)."""
    from click.testing import CliRunner

    from accel.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.npz"
        result = CliRunner().invoke(main, ["predict", str(MLPERF / f"{name}.tflite"),
                                           str(MLPERF / f"{name}_input.npy"), "-o", str(out)])
        assert result.exit_code == 0, result.output
        with np.load(out) as data:
            ours = {key: data[key] for key in data.files if key.startswith("layers/")}
            final = data["output"]
    reference = interpreter_tensors(name)
    compared = _compare(name, ours, reference)
    assert np.array_equal(final.reshape(reference[-1][2].shape), reference[-1][2])
    return compared


@pytest.mark.parametrize("name", MODELS)
def test_accel_predict_matches_the_reference_interpreter_on_every_layer(name):
    """Every layer's int8 output equals the interpreter's tensor, for every stored sample."""
    compared = predicted_and_compared(name)
    print(f"{name}: {sum(compared.values())} elements bit-exact")


def test_the_comparison_covers_every_operator_type():
    """All operator types on the data path are really compared (any test order)."""
    compared = sum((predicted_and_compared(name) for name in MODELS), Counter())
    assert set(compared) == set(DATA_OPS), compared
    print("tensor elements compared per operator:", dict(compared))


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
    assert dw.requant.mode == "tflite" and len(set(dw.requant.multiplier.tolist())) > 1
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
