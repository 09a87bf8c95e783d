"""The golden model reproduces TFLite's reference interpreter on every layer of every
committed .tflite model, bit for bit (tensors recorded by examples/digits/make_fixtures.py)."""

import json
from collections import Counter
from functools import cache

import numpy as np
import pytest

from accel.quant import golden
from accel.quant.tflite_model import load_tflite

from .paths import EXAMPLES

DIGITS = EXAMPLES / "digits"
MODELS = sorted(p.stem for p in DIGITS.glob("*.tflite"))
#: The interpreter's operators on the int8 data path, in order (shape arithmetic skipped).
DATA_OPS = ("CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX")


def interpreter_tensors(name):
    meta = json.loads((DIGITS / f"{name}_expected.json").read_text())
    expected = np.load(DIGITS / f"{name}_expected.npz")
    ops = [op for op in meta["ops"] if op["op"] in DATA_OPS]
    return expected["input"], [(op["op"], expected[op["outputs"][0]["key"]]) for op in ops]


@cache
def compared(name: str) -> Counter:
    """Tensor elements of model ``name`` compared with the interpreter's, per operator type
    (raises on the first difference). Cached for the session: the coverage test below reuses
    the per-model comparisons when they ran, and runs them itself when it runs alone."""
    qnet = load_tflite(DIGITS / f"{name}.tflite")
    x, reference = interpreter_tensors(name)
    ours = golden.run(qnet, x)
    counts: Counter = Counter()
    assert len(ours) == len(reference), (list(ours), [op for op, _ in reference])
    for (layer_name, got), (op, want) in zip(ours.items(), reference, strict=True):
        got = got.reshape(want.shape)
        mismatch = np.flatnonzero(got != want)
        assert mismatch.size == 0, (
            f"{name}/{layer_name} ({op}): {mismatch.size} of {want.size} differ, first at "
            f"flat index {mismatch[0]}: ours {got.flat[mismatch[0]]}, TFLite "
            f"{want.flat[mismatch[0]]}")
        counts[op] += want.size
    return counts


@pytest.mark.parametrize("name", MODELS)
def test_every_layer_matches_the_reference_interpreter(name):
    assert sum(compared(name).values()) > 0


def test_the_comparison_covers_every_operator_type():
    """All operator types are really compared, over all committed models."""
    total = sum((compared(name) for name in MODELS), Counter())
    assert set(total) == set(DATA_OPS), total
    print("tensor elements compared per operator:", dict(total))


def test_tflite_import_takes_parameters_as_given():
    qnet = load_tflite(DIGITS / "dense_pt.tflite")
    dense = qnet.layers[1]
    assert dense.weight_scale.shape == (1,)  # per-tensor weights stay per tensor
    assert dense.requant.mode == "float"  # FULLY_CONNECTED's reference rounds in double
    qnet = load_tflite(DIGITS / "digits_cnn.tflite")
    conv = qnet.layers[0]
    assert conv.weights.shape == (3, 3, 1, 32)  # OHWI -> Keras HWIO
    assert conv.requant.mode == "tflite"
    assert [layer.name for layer in qnet.layers] == [
        "conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "flatten", "dense", "dense_1",
        "softmax"]
    assert qnet.input.scale == pytest.approx(1 / 255) and qnet.input.zero_point == -128


@pytest.mark.tflite
@pytest.mark.parametrize("name", MODELS)
def test_live_reference_interpreter(name):
    """Re-run ai-edge-litert's reference kernels now (skipped when it is not installed)."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    qnet = load_tflite(DIGITS / f"{name}.tflite")
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (4, *qnet.input_shape), dtype=np.int8)
    interp = litert.Interpreter(
        model_path=str(DIGITS / f"{name}.tflite"),
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    ours = golden.run(qnet, x)
    out_index = interp.get_output_details()[0]["index"]
    for i in range(len(x)):
        interp.set_tensor(interp.get_input_details()[0]["index"], x[i:i + 1])
        interp.invoke()
        want = interp.get_tensor(out_index)[0]
        got = list(ours.values())[-1][i]
        assert np.array_equal(got, want), (name, i, got, want)


def test_tflite_convolutions_take_the_fused_float_path():
    """The seed network's convolutions (Q31 multipliers, int8) are proven exact for the fused
    float32 GEMM + float64 requantizer; losing that path (as a renamed requant mode once did)
    makes the golden model ~2x slower without changing a bit."""
    qnet = load_tflite(EXAMPLES / "digits" / "digits_cnn.tflite")
    convs = [layer for layer in qnet.layers if type(layer).__name__ == "QConv2D"]
    assert len(convs) == 2
    assert all(golden._prepared(layer).fused is not None for layer in convs)
