"""Each golden operator against TFLite's int8 reference kernels, on thousands of random cases.

The fixtures in ``examples/tflite_ops/`` (made by its ``make_op_cases.py``; see its README)
hold, per operator type, thousands of random one-operator int8 models -- random shapes,
kernels, strides, padding, fused activations, weights, biases and quantization parameters --
with the outputs of ``ai_edge_litert``'s interpreter run with ``OpResolverType.BUILTIN_REF``.
Every case is rebuilt here as an :mod:`accel.quant.qnet` layer, with its requantization derived
by :mod:`accel.quant.numerics` from the float32 scales alone, run through the golden operators
and compared bit for bit.

The reference kernels do not all requantize the same way, and the fixtures tell them apart:

- CONV_2D (``reference_integer_ops::ConvPerChannel``): Q31 multiplier and shift from
  ``double(s_in) * double(s_w[c]) / double(s_out)``, double rounding (``"tflite"``).
- FULLY_CONNECTED, per-channel and per-tensor weights alike (``reference_integer_ops::
  FullyConnected[PerChannel]`` with the scales): ``round(double(acc) * effective_scale)``
  (``"float"``). The Q31 multiplier differs from it on some hundreds of the fixtures' outputs.
- MAX_POOL_2D: the exact max, clamped to the fused activation range.
- SOFTMAX: ``reference_ops::Softmax``, gemmlowp fixed point (:mod:`accel.quant.softmax`).

The ``tflite``-marked tests draw fresh random cases with the same generator and run them live
through the interpreter; they are skipped without ``ai_edge_litert``.
"""

import importlib.util
import itertools
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from accel.quant import golden, numerics
from accel.quant.qnet import QConv2D, QDense, QMaxPool2D, QSoftmax, QuantParams, Requant
from accel.quant.softmax import OUTPUT_SCALE, softmax_scaling
from accel.spec.shapes import window_2d

from .paths import EXAMPLES

OPS_DIR = EXAMPLES / "tflite_ops"
OP_TYPES = ("conv2d", "dense_per_channel", "dense_per_tensor", "max_pool2d", "softmax")
#: What the fixtures must hold per operator type, at least.
MIN_CASES = 1000
MIN_ELEMENTS = 100_000
#: The requantization each reference kernel uses, as established by these fixtures.
REFERENCE_MODE = {"conv2d": "tflite", "dense_per_channel": "float",
                  "dense_per_tensor": "float"}

LIVE_CASES = 40
#: Seed of the live cases (different from the fixtures'); ACCEL_TFLITE_SEED draws others.
LIVE_SEED = int(os.environ.get("ACCEL_TFLITE_SEED", "8675309"))


# --- reading the fixtures ----------------------------------------------------------------------


@cache
def load_fixture(op: str) -> dict[str, np.ndarray]:
    with np.load(OPS_DIR / f"{op}.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def flat_names(arrays: dict[str, np.ndarray]) -> list[str]:
    return [key[: -len("_ndim")] for key in arrays if key.endswith("_ndim")]


def unpack(arrays: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
    """One dict per case: per-case scalars, and the flat arrays cut and reshaped.

    The format (documented in ``make_op_cases.py``): ``<name>`` concatenated flat,
    ``<name>_shape`` (cases x 4, left-padded with ones), ``<name>_ndim``.
    """
    flat = flat_names(arrays)
    bounds = {}
    for name in flat:
        sizes = np.prod(arrays[f"{name}_shape"].astype(np.int64), axis=1)
        bounds[name] = np.concatenate([[0], np.cumsum(sizes)])
        assert bounds[name][-1] == arrays[name].size, name
    scalars = [key for key in arrays if key not in flat and not key.startswith("__")
               and not key.endswith(("_shape", "_ndim"))]
    for i in range(len(arrays[f"{flat[0]}_ndim"])):
        case: dict[str, Any] = {key: arrays[key][i].item() for key in scalars}
        for name in flat:
            ndim = int(arrays[f"{name}_ndim"][i])
            shape = tuple(int(s) for s in arrays[f"{name}_shape"][i][4 - ndim:]) if ndim else ()
            case[name] = arrays[name][bounds[name][i]:bounds[name][i + 1]].reshape(shape)
        yield case


# --- building the layers and running the golden operators -------------------------------------


def requant(case: dict, mode: str, *, float32_product: bool = False) -> Requant:
    """The layer's :class:`Requant`, from the case's float32 scales, as an importer would."""
    scale = np.asarray(numerics.effective_scale(
        case["input_scale"], case["weight_scale"], case["output_scale"],
        float32_product=float32_product), dtype=np.float64)
    multiplier, shift = numerics.quantize_multiplier_array(scale)
    act_min, act_max = numerics.fused_activation_range(
        case["activation"], case["output_scale"], case["output_zero_point"])
    return Requant(mode=mode, multiplier=np.asarray(multiplier, np.int64),
                   shift=np.asarray(shift, np.int64), scale=scale,
                   zero_point=case["output_zero_point"], act_min=act_min, act_max=act_max)


def quant_params(case: dict, prefix: str) -> QuantParams:
    return QuantParams(scale=case[f"{prefix}_scale"], zero_point=case[f"{prefix}_zero_point"])


def run_conv2d(case: dict, mode: str = REFERENCE_MODE["conv2d"]) -> np.ndarray:
    weights = case["weights"].transpose(1, 2, 3, 0)  # TFLite OHWI -> Keras HWIO
    layer = QConv2D(
        name="conv", input=quant_params(case, "input"), output=quant_params(case, "output"),
        weights=weights.astype(np.int64), bias=case["bias"].astype(np.int64),
        weight_scale=case["weight_scale"], strides=(case["stride_h"], case["stride_w"]),
        padding=case["padding"], requant=requant(case, mode), activation=case["activation"])
    x = case["x"].astype(np.int64)
    window = window_2d(x.shape[1:3], weights.shape[:2], layer.strides, layer.padding)
    return golden.requantize_acc(golden.conv2d_acc(x, layer, window), layer)


def run_dense(case: dict, mode: str, *, float32_product: bool = False) -> np.ndarray:
    layer = QDense(
        name="dense", input=quant_params(case, "input"), output=quant_params(case, "output"),
        weights=case["weights"].T.astype(np.int64),  # TFLite (units, in) -> (in, units)
        bias=case["bias"].astype(np.int64), weight_scale=case["weight_scale"],
        requant=requant(case, mode, float32_product=float32_product),
        activation=case["activation"])
    return golden.requantize_acc(golden.dense_acc(case["x"].astype(np.int64), layer), layer)


def run_dense_per_channel(case: dict) -> np.ndarray:
    return run_dense(case, REFERENCE_MODE["dense_per_channel"])


def run_dense_per_tensor(case: dict) -> np.ndarray:
    return run_dense(case, REFERENCE_MODE["dense_per_tensor"])


def run_max_pool2d(case: dict) -> np.ndarray:
    params = quant_params(case, "input")  # MAX_POOL_2D keeps the input's quantization
    act_min, act_max = numerics.fused_activation_range(
        case["activation"], params.scale, params.zero_point)
    layer = QMaxPool2D(name="pool", input=params, output=params,
                       pool_size=(case["pool_h"], case["pool_w"]),
                       strides=(case["stride_h"], case["stride_w"]), padding=case["padding"],
                       act_min=act_min, act_max=act_max)
    x = case["x"].astype(np.int64)
    window = window_2d(x.shape[1:3], layer.pool_size, layer.strides, layer.padding)
    return golden.max_pool2d(x, layer, window)


def run_softmax(case: dict) -> np.ndarray:
    layer = QSoftmax(name="softmax", input=quant_params(case, "input"),
                     output=QuantParams(scale=OUTPUT_SCALE, zero_point=-128),
                     beta=case["beta"])
    return golden.OPERATORS[QSoftmax](case["x"].astype(np.int64), layer, None)


RUNNERS: dict[str, Callable[[dict], np.ndarray]] = {
    "conv2d": run_conv2d,
    "dense_per_channel": run_dense_per_channel,
    "dense_per_tensor": run_dense_per_tensor,
    "max_pool2d": run_max_pool2d,
    "softmax": run_softmax,
}


def describe(case: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in case.items() if not isinstance(v, np.ndarray))


def compare(op: str, arrays: dict[str, np.ndarray], label: str) -> tuple[int, int]:
    """Run every case of ``arrays`` through the golden operator; returns (cases, elements)."""
    cases = elements = 0
    for i, case in enumerate(unpack(arrays)):
        want = case["y"].astype(np.int64)
        got = RUNNERS[op](case)
        assert got.shape == want.shape, f"{label}, case {i}: shape {got.shape} != {want.shape}"
        wrong = np.argwhere(got != want)
        assert wrong.size == 0, (
            f"{label}, case {i} ({describe(case)}): {len(wrong)} of {want.size} outputs differ; "
            f"first at {tuple(wrong[0])}: golden {got[tuple(wrong[0])]}, "
            f"TFLite {want[tuple(wrong[0])]}")
        cases += 1
        elements += want.size
    return cases, elements


# --- the committed fixtures -------------------------------------------------------------------


@cache
def compared(op: str) -> tuple[int, int]:
    """(cases, output elements) of ``op``'s fixture, compared bit for bit (raises on the first
    difference). Cached for the session, so the per-operator test and the summary each get the
    numbers whichever runs first, or alone."""
    return compare(op, load_fixture(op), f"fixture {op}.npz")


@pytest.mark.parametrize("op", OP_TYPES)
def test_golden_operator_is_bit_exact_with_the_reference_kernel(op):
    cases, elements = compared(op)
    assert cases >= MIN_CASES, f"{op}: only {cases} cases"
    assert elements >= MIN_ELEMENTS, f"{op}: only {elements} output elements"


@pytest.mark.parametrize(("op", "other_mode"), [
    ("conv2d", "float"),
    ("dense_per_channel", "tflite"),
    ("dense_per_tensor", "tflite"),
    ("dense_per_tensor", "multiplier-float32-product"),
])
def test_the_fixtures_tell_the_requantization_modes_apart(op, other_mode):
    """The other rounding (Q31 multiplier vs. double) really disagrees with the interpreter.

    So the match above decides which mode each reference kernel uses; it is not an accident
    of the data.
    """
    differ = 0
    for case in itertools.islice(unpack(load_fixture(op)), 600):
        if op == "conv2d":
            got = run_conv2d(case, other_mode)
        else:
            got = run_dense(case, "tflite",
                            float32_product=other_mode == "multiplier-float32-product")
        differ += int(np.count_nonzero(got != case["y"]))
    assert differ >= 20, f"{op} with {other_mode}: only {differ} outputs differ"


def effective_scales(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Every channel's ``s_in * s_w / s_out`` over all cases."""
    return np.concatenate([
        np.atleast_1d(numerics.effective_scale(
            case["input_scale"], case["weight_scale"], case["output_scale"]))
        for case in unpack(arrays)])


def covers(values: np.ndarray, *wanted: object) -> None:
    missing = sorted(set(wanted) - set(np.unique(values).tolist()), key=str)
    assert not missing, f"never covered: {missing}"


@pytest.mark.parametrize("op", ["conv2d", "dense_per_channel", "dense_per_tensor"])
def test_fixtures_cover_the_edges_of_conv_and_dense(op):
    arrays = load_fixture(op)
    covers(arrays["activation"], "linear", "relu", "relu6", "relu_n1_to_1")
    covers(arrays["input_zero_point"], -128, 0, 127)
    covers(arrays["output_zero_point"], -128, 0, 127)
    covers(arrays["x"], -128, 127)
    covers(arrays["weights"], -127, 0, 127)
    covers(arrays["y"], -128, 127)
    if op == "conv2d":
        covers(arrays["weights_shape"][:, 1], 1, 2, 3, 4)  # kernel height (OHWI)
        covers(arrays["weights_shape"][:, 2], 1, 2, 3, 4)
        covers(arrays["stride_h"], 1, 2, 3)
        covers(arrays["stride_w"], 1, 2, 3)
        covers(arrays["padding"], "same", "valid")
        covers(arrays["per_channel"], True, False)
    scales = effective_scales(arrays)
    # From factors below 2**-31 (QuantizeMultiplier flushes them to a zero multiplier) to
    # factors above 1 (a left shift before the high multiply).
    assert scales.min() < 2.0**-31 and scales.max() > 8.0, (scales.min(), scales.max())
    assert np.count_nonzero(scales > 1) >= 20


def test_fixtures_cover_the_edges_of_max_pool():
    arrays = load_fixture("max_pool2d")
    covers(arrays["activation"], "linear", "relu", "relu6", "relu_n1_to_1")
    covers(arrays["pool_h"], 1, 2, 3)
    covers(arrays["pool_w"], 1, 2, 3)
    covers(arrays["stride_h"], 1, 2, 3)
    covers(arrays["stride_w"], 1, 2, 3)
    covers(arrays["padding"], "same", "valid")
    covers(arrays["input_zero_point"], -128, 0, 127)
    covers(arrays["x"], -128, 127)


def test_fixtures_cover_the_edges_of_softmax():
    arrays = load_fixture("softmax")
    depths = arrays["x_shape"][:, 3]
    covers(depths, 1, 2, 10, 20, 1000)
    covers(arrays["x_ndim"], 2, 3, 4)
    covers(arrays["x"], -128, 127)
    covers(arrays["y"], -128, 127)
    assert np.count_nonzero(arrays["beta"] != 1) >= 100
    shifts = Counter(softmax_scaling(input_scale=s, beta=b).left_shift
                     for s, b in zip(arrays["input_scale"], arrays["beta"], strict=True))
    # From multipliers barely above 1 (shift 1) to the capped one (shift 31, diff_min 0).
    covers(np.array(list(shifts)), 1, 31)
    assert len(shifts) >= 25, sorted(shifts)


def test_summary_of_elements_compared():
    """Every operator type is compared on enough elements (standalone: it runs the comparisons
    itself unless the per-operator tests already did in this session)."""
    counts = {op: compared(op) for op in OP_TYPES}
    for op, (cases, elements) in counts.items():
        assert cases >= MIN_CASES and elements >= MIN_ELEMENTS, (op, cases, elements)
    print("\ncases / output elements compared with TFLite's reference kernels:")
    for op, (cases, elements) in counts.items():
        print(f"  {op:18} {cases:6} cases {elements:8} elements")


def test_fixtures_record_how_they_were_made():
    for op in OP_TYPES:
        meta = json.loads(str(load_fixture(op)["__meta__"]))
        assert meta["op"] == op
        assert "ai-edge-litert" in meta["versions"]


# --- fresh random cases, live ----------------------------------------------------------------


@cache
def load_generator() -> ModuleType:
    """``make_op_cases.py``, loaded from its file (an example script, not a package)."""
    spec = importlib.util.spec_from_file_location("make_op_cases", OPS_DIR / "make_op_cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.tflite
@pytest.mark.parametrize("op", OP_TYPES)
def test_fresh_random_cases_against_the_live_interpreter(op):
    pytest.importorskip("ai_edge_litert")
    seed = [LIVE_SEED, OP_TYPES.index(op)]
    arrays, _ = load_generator().generate(op, LIVE_CASES, seed)
    cases, _ = compare(op, arrays, f"live, seed {seed} (ACCEL_TFLITE_SEED)")
    assert cases == LIVE_CASES
