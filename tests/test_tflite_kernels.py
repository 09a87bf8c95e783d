"""The MLPerf Tiny operators of :mod:`accel.quant.tflite_kernels` against TFLite, bit for bit.

The fixtures ``examples/tflite_ops/{depthwise_conv2d,average_pool2d,add,mean,pad,
concatenation}.npz`` (made by ``make_op_cases.py``; see its README) hold thousands of random
one-operator int8 models per operator -- random shapes (odd sizes), kernels, strides 1..3,
SAME and VALID, depth multipliers 1..3, fused activations, random scales and zero points --
with the outputs of ``ai_edge_litert``'s interpreter run with ``OpResolverType.BUILTIN_REF``.
Every case is replayed here through the NumPy kernels, with every integer parameter derived
from the case's float32 scales, and compared with ``np.array_equal``.

The ``tflite``-marked tests draw fresh random cases with the same generator and another seed
(``ACCEL_TFLITE_SEED``) and run them live; they are skipped without ``ai_edge_litert``. The
hypothesis tests check the integer arithmetic against exact Python-integer references.
"""

import importlib.util
import itertools
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.quant import numerics
from accel.quant import tflite_kernels as tk
from accel.quant.windows import extract_windows
from accel.spec.shapes import window_2d

from .paths import EXAMPLES

OPS_DIR = EXAMPLES / "tflite_ops"
OP_TYPES = ("depthwise_conv2d", "average_pool2d", "add", "mean", "pad", "concatenation")
#: What the committed fixtures hold per operator (asserted exactly: regenerate, then update).
FIXTURE_CASES = {**dict.fromkeys(OP_TYPES, 2000), "concatenation": 1500}
FIXTURE_ELEMENTS = {
    "depthwise_conv2d": 381_183, "average_pool2d": 154_598, "add": 241_479, "mean": 16_563,
    "pad": 487_497, "concatenation": 245_432,
}
MIN_CASES = 1000

LIVE_CASES = 60
#: Seed of the live cases (different from the fixtures'); ACCEL_TFLITE_SEED draws others.
LIVE_SEED = int(os.environ.get("ACCEL_TFLITE_SEED", "31337"))

COMPARED: Counter = Counter()
CASES_COMPARED: Counter = Counter()


# --- reading the fixtures ----------------------------------------------------------------------


@cache
def load_fixture(op: str) -> dict[str, np.ndarray]:
    with np.load(OPS_DIR / f"{op}.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def unpack(arrays: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
    """One dict per case: per-case scalars, and the flat arrays cut and reshaped.

    The format (``make_op_cases.py``): ``<name>`` concatenated flat, ``<name>_shape`` (cases x
    4, left-padded with ones), ``<name>_ndim``.
    """
    flat = [key[: -len("_ndim")] for key in arrays if key.endswith("_ndim")]
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


# --- replaying one case ------------------------------------------------------------------------


def act_range(case: dict, prefix: str = "output") -> tuple[int, int]:
    return numerics.fused_activation_range(
        case["activation"], case[f"{prefix}_scale"], case[f"{prefix}_zero_point"])


def run_depthwise_conv2d(case: dict) -> np.ndarray:
    multiplier, shift = tk.depthwise_multipliers(
        case["input_scale"], case["weight_scale"], case["output_scale"])
    return tk.depthwise_conv2d(
        case["x"], case["weights"], case["bias"], input_zero_point=case["input_zero_point"],
        strides=(case["stride_h"], case["stride_w"]), padding=case["padding"],
        multiplier=multiplier, shift=shift, output_zero_point=case["output_zero_point"],
        act_min=act_range(case)[0], act_max=act_range(case)[1])


def run_average_pool2d(case: dict) -> np.ndarray:
    lo, hi = act_range(case, "input")  # the output keeps the input's quantization
    return tk.average_pool2d(case["x"], pool_size=(case["pool_h"], case["pool_w"]),
                             strides=(case["stride_h"], case["stride_w"]),
                             padding=case["padding"], act_min=lo, act_max=hi)


def run_add(case: dict) -> np.ndarray:
    params = tk.add_params(case["input_scale"], case["input2_scale"], case["output_scale"])
    lo, hi = act_range(case)
    return tk.add(case["x"], case["x2"], input1_zero_point=case["input_zero_point"],
                  input2_zero_point=case["input2_zero_point"],
                  output_zero_point=case["output_zero_point"], params=params,
                  act_min=lo, act_max=hi)


def run_mean(case: dict) -> np.ndarray:
    multiplier, shift = tk.mean_multiplier(case["input_scale"], case["output_scale"])
    return tk.mean_hw(case["x"], input_zero_point=case["input_zero_point"],
                      output_zero_point=case["output_zero_point"], multiplier=multiplier,
                      shift=shift, keep_dims=case["keep_dims"])


def run_pad(case: dict) -> np.ndarray:
    return tk.pad(case["x"], case["paddings"], output_zero_point=case["output_zero_point"])


def run_concatenation(case: dict) -> np.ndarray:
    xs = [case["x"], *(case[f"x{i}"] for i in range(2, case["inputs"] + 1))]
    return tk.concatenation(
        xs, input_scales=[case["input_scale"]] * len(xs),
        input_zero_points=[case["input_zero_point"]] * len(xs),
        output_scale=case["input_scale"], output_zero_point=case["input_zero_point"],
        axis=case["axis"])


RUNNERS: dict[str, Callable[[dict], np.ndarray]] = {
    "depthwise_conv2d": run_depthwise_conv2d,
    "average_pool2d": run_average_pool2d,
    "add": run_add,
    "mean": run_mean,
    "pad": run_pad,
    "concatenation": run_concatenation,
}


def describe(case: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in case.items() if not isinstance(v, np.ndarray))


def compare(op: str, arrays: dict[str, np.ndarray], label: str) -> tuple[int, int]:
    """Every case of ``arrays`` through the kernel, bit for bit; returns (cases, elements)."""
    cases = elements = 0
    for i, case in enumerate(unpack(arrays)):
        want = case["y"].astype(np.int64)
        got = RUNNERS[op](case)
        assert got.shape == want.shape, f"{label}, case {i}: shape {got.shape} != {want.shape}"
        if not np.array_equal(got, want):
            wrong = np.argwhere(got != want)
            first = tuple(wrong[0])
            pytest.fail(
                f"{label}, case {i} ({describe(case)}): {len(wrong)} of {want.size} outputs "
                f"differ; first at {first}: ours {got[first]}, TFLite {want[first]}")
        cases += 1
        elements += want.size
    return cases, elements


def fixture_seed(op: str) -> list[int]:
    return json.loads(str(load_fixture(op)["__meta__"]))["seed"]


# --- the committed fixtures -------------------------------------------------------------------


@pytest.mark.parametrize("op", OP_TYPES)
def test_kernel_is_bit_exact_with_the_reference_kernel(op):
    label = f"fixture {op}.npz (seed {fixture_seed(op)})"
    cases, elements = compare(op, load_fixture(op), label)
    CASES_COMPARED[op] += cases
    COMPARED[op] += elements
    assert cases >= MIN_CASES, f"{label}: only {cases} cases"
    assert cases == FIXTURE_CASES[op], f"{label}: {cases} cases, expected {FIXTURE_CASES[op]}"
    assert elements == FIXTURE_ELEMENTS[op], (
        f"{label}: {elements} elements, expected {FIXTURE_ELEMENTS[op]}")


def test_summary_of_elements_compared():
    """Run after the fixture comparisons (file order): print what was compared."""
    if not COMPARED:
        pytest.skip("run together with the fixture comparisons")
    print("\ncases / output elements compared with TFLite's reference kernels:")
    for op in OP_TYPES:
        print(f"  {op:18} {CASES_COMPARED[op]:6} cases {COMPARED[op]:8} elements")


def test_fixtures_record_how_they_were_made():
    for op in OP_TYPES:
        meta = json.loads(str(load_fixture(op)["__meta__"]))
        assert meta["op"] == op
        assert meta["cases"] == FIXTURE_CASES[op]
        assert "ai-edge-litert" in meta["versions"]


# --- the fixtures decide between the plausible semantics ----------------------------------------


def other_average_pool(case: dict, variant: str) -> np.ndarray:
    x = case["x"].astype(np.int64)
    window = window_2d(x.shape[1:3], (case["pool_h"], case["pool_w"]),
                       (case["stride_h"], case["stride_w"]), case["padding"])
    total = extract_windows(x, window, 0).sum(axis=(3, 4))
    count = extract_windows(np.ones((1, *x.shape[1:3], 1), np.int64), window, 0).sum(axis=(3, 4))
    zp = case["input_zero_point"]
    if variant == "floor":
        q = total // count
    elif variant == "half-even":
        q = np.round(total / count).astype(np.int64)
    elif variant == "round about the zero point":
        q = numerics.divide_round_half_away_from_zero(total - zp * count, count) + zp
    else:  # "full window": padding counted as taps holding the zero point
        full = case["pool_h"] * case["pool_w"]
        q = numerics.divide_round_half_away_from_zero(total + zp * (full - count), full)
    lo, hi = act_range(case, "input")
    return np.clip(q, lo, hi)


def other_add(case: dict, variant: str) -> np.ndarray:
    lo, hi = act_range(case)
    u1 = case["x"].astype(np.int64) - case["input_zero_point"]
    u2 = case["x2"].astype(np.int64) - case["input2_zero_point"]
    if variant == "round(real sum)":
        s1, s2, s_out = (float(np.float32(case[k]))
                         for k in ("input_scale", "input2_scale", "output_scale"))
        q = numerics.round_half_away_from_zero((s1 * u1 + s2 * u2) / s_out).astype(np.int64)
    else:  # "single rounding"
        p = tk.add_params(case["input_scale"], case["input2_scale"], case["output_scale"])

        def scale(v, m, e):
            return numerics.multiply_by_quantized_multiplier(v, m, e, single_rounding=True)

        q = scale(scale(u1 << 20, p.input1_multiplier, p.input1_shift)
                  + scale(u2 << 20, p.input2_multiplier, p.input2_shift),
                  p.output_multiplier, p.output_shift)
    return np.clip(q + case["output_zero_point"], lo, hi)


def other_mean(case: dict, variant: str) -> np.ndarray | None:
    x = case["x"].astype(np.int64)
    count = x.shape[1] * x.shape[2]
    equal = (np.float32(case["input_scale"]) == np.float32(case["output_scale"])
             and case["input_zero_point"] == case["output_zero_point"])
    if variant == "round(mean), equal quantization":
        if not equal:
            return None
        q = numerics.divide_round_half_away_from_zero(x.sum(axis=(1, 2)), count)
    else:  # "integer_ops::Mean": scale the sum first, then divide by the count, rounding
        m, e = tk.mean_multiplier(case["input_scale"], case["output_scale"])
        scaled = numerics.multiply_by_quantized_multiplier(
            x.sum(axis=(1, 2)) - case["input_zero_point"] * count, m, e)
        q = numerics.divide_round_half_away_from_zero(scaled, count) + case["output_zero_point"]
    q = np.clip(q, -128, 127)
    return q[:, None, None, :] if case["keep_dims"] else q


def other_depthwise(case: dict, variant: str) -> np.ndarray:
    acc = tk.depthwise_conv2d_acc(case["x"], case["weights"], case["bias"],
                                  input_zero_point=case["input_zero_point"],
                                  strides=(case["stride_h"], case["stride_w"]),
                                  padding=case["padding"])
    scale = numerics.effective_scale(case["input_scale"], case["weight_scale"],
                                     case["output_scale"])
    lo, hi = act_range(case)
    return numerics.requantize_float(acc, np.broadcast_to(scale, acc.shape[-1:]),
                                     case["output_zero_point"], lo, hi)


OTHERS = {
    "average_pool2d": (other_average_pool, ["floor", "half-even", "round about the zero point",
                                            "full window"]),
    "add": (other_add, ["round(real sum)", "single rounding"]),
    "mean": (other_mean, ["round(mean), equal quantization", "integer_ops::Mean"]),
    "depthwise_conv2d": (other_depthwise, ["float requantization"]),
}


@pytest.mark.parametrize(("op", "variant"), [
    (op, variant) for op, (_, variants) in OTHERS.items() for variant in variants])
def test_the_fixtures_tell_the_plausible_semantics_apart(op, variant):
    """Each other plausible reading of the kernel disagrees with the interpreter somewhere.

    So the bit-exact match above decides the semantics; it is not an accident of the data.
    """
    function, _ = OTHERS[op]
    differ = 0
    for case in unpack(load_fixture(op)):
        got = function(case, variant)
        if got is not None:
            differ += int(np.count_nonzero(got.reshape(case["y"].shape) != case["y"]))
    assert differ >= 100, f"{op} read as {variant!r}: only {differ} outputs differ"


def covers(values: np.ndarray, *wanted: object) -> None:
    missing = sorted(set(wanted) - set(np.unique(values).tolist()), key=str)
    assert not missing, f"never covered: {missing}"


def test_fixtures_cover_the_edges():
    dw = load_fixture("depthwise_conv2d")
    covers(dw["depth_multiplier"], 1, 2, 3)
    covers(dw["weights_shape"][:, 1], 1, 2, 3, 4, 5)
    covers(dw["stride_h"], 1, 2, 3)
    covers(dw["stride_w"], 1, 2, 3)
    covers(dw["padding"], "same", "valid")
    covers(dw["per_channel"], True, False)
    covers(dw["weights"], -127, 0, 127)
    for op in ("depthwise_conv2d", "average_pool2d", "add"):
        arrays = load_fixture(op)
        covers(arrays["activation"], "linear", "relu", "relu6", "relu_n1_to_1")
        covers(arrays["input_zero_point"], -128, 0, 127)
        covers(arrays["x"], -128, 127)
        covers(arrays["y"], -128, 127)
    ap = load_fixture("average_pool2d")
    covers(ap["padding"], "same", "valid")
    covers(ap["stride_h"], 1, 2, 3)
    covers(ap["pool_h"], 1, 2, 3, 4, 25)
    covers(ap["x_shape"][:, 1] % 2, 0, 1)  # odd and even sizes
    mean = load_fixture("mean")
    covers(mean["keep_dims"], True, False)
    covers(mean["axis_order"], "hw", "wh")
    equal = (mean["input_scale"] == mean["output_scale"]) & (
        mean["input_zero_point"] == mean["output_zero_point"])
    assert 300 <= np.count_nonzero(equal) <= 1700, np.count_nonzero(equal)
    pads = load_fixture("pad")
    assert np.count_nonzero(pads["input_zero_point"] != pads["output_zero_point"]) >= 100
    concat = load_fixture("concatenation")
    covers(concat["inputs"], 2, 3, 4)
    covers(concat["axis"], 3, -1)


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
    arrays, refused = load_generator().generate(op, LIVE_CASES, seed)
    assert not refused, f"seed {seed}: the interpreter refused {dict(refused)}"
    cases, _ = compare(op, arrays, f"live, seed {seed} (ACCEL_TFLITE_SEED)")
    assert cases == LIVE_CASES


@pytest.mark.tflite
def test_the_interpreter_refuses_an_inexact_int8_concatenation():
    """What :func:`tflite_kernels.concatenation` refuses, TFLite refuses too (in Prepare)."""
    pytest.importorskip("ai_edge_litert")
    generator = load_generator()
    rng = np.random.default_rng([LIVE_SEED, 99])
    for i in range(10):
        case, model, xs = generator.sample_concatenation(rng, exact=False)
        try:
            generator.run_reference(model, xs)
        except (RuntimeError, ValueError):
            continue
        pytest.fail(f"seed {[LIVE_SEED, 99]}, case {i} ({describe(case)}): the interpreter "
                    f"accepted an int8 concatenation with unequal quantization")


def one_op_model(generator: ModuleType, op: str, options_type: str, write_options: Callable,
                 inputs: list, output: Any) -> bytes:
    return generator.write_model(getattr(generator.tflite.BuiltinOperator, op), 2,
                                 getattr(generator.tflite.BuiltinOptions, options_type),
                                 write_options, inputs, output)


@pytest.mark.tflite
@pytest.mark.parametrize("option", [1, 2, 3])
def test_the_depth_multiplier_option_is_not_what_the_kernel_reads(option):
    """The kernel takes ``filter channels / input channels`` (here 2), whatever the option."""
    pytest.importorskip("ai_edge_litert")
    g = load_generator()
    rng = np.random.default_rng([LIVE_SEED, 7, option])
    x = rng.integers(-128, 128, (1, 4, 5, 2)).astype(np.int8)
    filt = rng.integers(-127, 128, (1, 3, 3, 4)).astype(np.int8)
    bias = rng.integers(-1000, 1000, 4).astype(np.int32)

    def options(builder):
        o = g._schema("DepthwiseConv2DOptions")
        o.Start(builder)
        o.AddPadding(builder, g._PADDING_CODES["same"])
        o.AddStrideW(builder, 1)
        o.AddStrideH(builder, 1)
        o.AddDepthMultiplier(builder, option)
        o.AddDilationWFactor(builder, 1)
        o.AddDilationHFactor(builder, 1)
        return o.End(builder)

    s_w = np.full(4, 0.01, np.float32)
    model = one_op_model(g, "DEPTHWISE_CONV_2D", "DepthwiseConv2DOptions", options, [
        g._Tensor("input", x.shape, np.int8, *g._quant(0.1, 5)),
        g._Tensor("filter", filt.shape, np.int8, *g._quant(s_w, np.zeros(4)), data=filt,
                  quantized_dimension=3),
        g._Tensor("bias", (4,), np.int32, *g._quant(s_w * np.float32(0.1), np.zeros(4)),
                  data=bias)],
        g._Tensor("output", (1, 4, 5, 4), np.int8, *g._quant(0.2, -3)))
    multiplier, shift = tk.depthwise_multipliers(0.1, s_w, 0.2)
    ours = tk.depthwise_conv2d(x, filt, bias, input_zero_point=5, strides=(1, 1), padding="same",
                               multiplier=multiplier, shift=shift, output_zero_point=-3,
                               act_min=-128, act_max=127)
    assert np.array_equal(g.run_reference(model, x), ours), f"seed {[LIVE_SEED, 7, option]}"


@pytest.mark.tflite
def test_an_average_pool_ignores_another_output_quantization_but_its_clamp():
    """Only a debug-build DCHECK asks for equal scales: the raw average is written, clamped to
    the fused ReLU of the *output* tensor (its zero point)."""
    pytest.importorskip("ai_edge_litert")
    g = load_generator()
    rng = np.random.default_rng([LIVE_SEED, 8])
    x = rng.integers(-128, 128, (1, 5, 6, 2)).astype(np.int8)

    def options(builder):
        o = g._schema("Pool2DOptions")
        o.Start(builder)
        o.AddPadding(builder, g._PADDING_CODES["same"])
        o.AddStrideW(builder, 2)
        o.AddStrideH(builder, 1)
        o.AddFilterWidth(builder, 3)
        o.AddFilterHeight(builder, 3)
        o.AddFusedActivationFunction(builder, g.ACTIVATION_CODES["relu"])
        return o.End(builder)

    model = one_op_model(g, "AVERAGE_POOL_2D", "Pool2DOptions", options,
                         [g._Tensor("input", x.shape, np.int8, *g._quant(0.1, -5))],
                         g._Tensor("output", (1, 5, 3, 2), np.int8, *g._quant(0.3, 20)))
    lo, hi = numerics.fused_activation_range("relu", 0.3, 20)
    ours = tk.average_pool2d(x, pool_size=(3, 3), strides=(1, 2), padding="same",
                             act_min=lo, act_max=hi)
    assert np.array_equal(g.run_reference(model, x), ours), f"seed {[LIVE_SEED, 8]}"


@pytest.mark.tflite
def test_an_add_whose_output_multiplier_reaches_one_aborts_the_interpreter():
    """What :func:`tflite_kernels.add_params` refuses with ValueError kills TFLite's process
    (``TFLITE_CHECK_LT(double_multiplier, 1.)`` in QuantizeMultiplierSmallerThanOneExp)."""
    pytest.importorskip("ai_edge_litert")
    script = f"""
import importlib.util, numpy as np
spec = importlib.util.spec_from_file_location("g", {str(OPS_DIR / "make_op_cases.py")!r})
g = importlib.util.module_from_spec(spec); spec.loader.exec_module(g)
def options(b):
    o = g._schema("AddOptions"); o.Start(b); o.AddFusedActivationFunction(b, 0); return o.End(b)
m = g.write_model(g.tflite.BuiltinOperator.ADD, 2, g.tflite.BuiltinOptions.AddOptions, options,
    [g._Tensor("a", (4,), np.int8, *g._quant(1.0, 0)),
     g._Tensor("b", (4,), np.int8, *g._quant(1.0, 0))],
    g._Tensor("y", (4,), np.int8, *g._quant(2.0**-20, 0)))
x = np.arange(4, dtype=np.int8)
g.run_reference(m, [x, x])
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGABRT, (result.returncode, result.stderr[-500:])


# --- the arithmetic, exactly ------------------------------------------------------------------


def rounded(value: Fraction) -> int:
    """``value`` rounded to the nearest integer, ties away from zero."""
    whole = value.numerator // value.denominator
    if value - whole > Fraction(1, 2) or (value - whole == Fraction(1, 2) and value > 0):
        whole += 1
    return whole


def srdhm(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul with Python integers (no saturation case
    arises for the operands here)."""
    product = a * b
    total = product + ((1 << 30) if product >= 0 else 1 - (1 << 30))
    quotient = abs(total) >> 31  # C's division truncates toward zero
    return quotient if total >= 0 else -quotient


def rdbpot(x: int, exponent: int) -> int:
    return rounded(Fraction(x, 1 << exponent))


def add_reference(u1: int, u2: int, p: tk.AddParams) -> int:
    """ADD's raw output (before the zero point and clamp) in Python integers."""
    def scale(v: int, m: int, e: int) -> int:
        return rdbpot(srdhm(v, m), -e)

    return scale(scale(u1 << p.left_shift, p.input1_multiplier, p.input1_shift)
                 + scale(u2 << p.left_shift, p.input2_multiplier, p.input2_shift),
                 p.output_multiplier, p.output_shift)


scales = st.floats(min_value=2.0**-14, max_value=2.0**3, allow_nan=False, width=32)
codes = st.integers(min_value=-128, max_value=127)


@settings(max_examples=300, deadline=None)
@given(s1=scales, ratio=st.floats(min_value=2.0**-12, max_value=2.0**12),
       out=st.floats(min_value=0.6, max_value=2.0**6),
       x1=st.lists(codes, min_size=1, max_size=16), zp1=codes, zp2=codes, zp_out=codes,
       data=st.data())
def test_add_rescale_matches_python_integers(s1, ratio, out, x1, zp1, zp2, zp_out, data):
    s2 = float(np.float32(s1 * ratio))
    s_out = float(np.float32(max(s1, s2) * out))
    x2 = data.draw(st.lists(codes, min_size=len(x1), max_size=len(x1)))
    p = tk.add_params(s1, s2, s_out)
    # The larger input is exactly halved; the output multiplier folds 2**-20 back in.
    assert (p.input1_multiplier, p.input1_shift) == (1 << 30, 0) or \
        (p.input2_multiplier, p.input2_shift) == (1 << 30, 0)
    got = tk.add(np.array(x1), np.array(x2), input1_zero_point=zp1, input2_zero_point=zp2,
                 output_zero_point=zp_out, params=p)
    want = [min(max(add_reference(a - zp1, b - zp2, p) + zp_out, -128), 127)
            for a, b in zip(x1, x2, strict=True)]
    assert got.tolist() == want, (s1, s2, s_out)
    # And within one step of the real sum (the fixed point is that close).
    real = [(Fraction(float(np.float32(s1))) * (a - zp1)
             + Fraction(float(np.float32(s2))) * (b - zp2)) / Fraction(float(np.float32(s_out)))
            for a, b in zip(x1, x2, strict=True)]
    for g, r in zip(got.tolist(), real, strict=True):
        if -128 < g < 127:
            assert abs(g - zp_out - r) <= 1, (g, r)


@settings(max_examples=300, deadline=None)
@given(x=st.integers(min_value=-(2**40), max_value=2**40),
       count=st.integers(min_value=1, max_value=2**12))
def test_average_pool_division_matches_fractions(x, count):
    assert numerics.divide_round_half_away_from_zero(x, count) == rounded(Fraction(x, count))


def test_average_pool_rounds_negative_ties_away_from_zero():
    # Sums -3, -1, 1, 3 over 2 taps: -1.5 -> -2, -0.5 -> -1, 0.5 -> 1, 1.5 -> 2.
    x = np.array([-2, -1, -1, 0, 0, 1, 1, 2]).reshape(1, 1, 8, 1)
    y = tk.average_pool2d(x, pool_size=(1, 2), strides=(1, 2), padding="valid")
    assert y.ravel().tolist() == [-2, -1, 1, 2]


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), zp_in=codes, zp_out=codes,
       s_in=scales, ratio=st.floats(min_value=2.0**-3, max_value=2.0**3),
       data=st.data())
def test_mean_matches_python_integers(h, w, zp_in, zp_out, s_in, ratio, data):
    s_out = float(np.float32(s_in * ratio))
    x = np.array(data.draw(st.lists(codes, min_size=h * w, max_size=h * w))).reshape(1, h, w, 1)
    m, e = tk.mean_multiplier(s_in, s_out)
    n = h * w
    k = min(n.bit_length() - 1, 32, 31 + e)
    folded, shift = (m << k) // n, e - k
    total = int(x.sum()) - zp_in * n
    left, right = max(shift, 0), max(-shift, 0)
    want = min(max(rdbpot(srdhm(total << left, folded), right) + zp_out, -128), 127)
    got = tk.mean_hw(x, input_zero_point=zp_in, output_zero_point=zp_out, multiplier=m,
                     shift=e, keep_dims=False)
    assert got.tolist() == [[want]], (h, w, s_in, s_out)


@settings(max_examples=100, deadline=None)
@given(cin=st.integers(1, 4), m=st.integers(1, 3), k=st.integers(1, 3), size=st.integers(1, 6),
       stride=st.integers(1, 2), padding=st.sampled_from(["same", "valid"]), zp=codes,
       data=st.data())
def test_depthwise_accumulator_matches_a_direct_loop(cin, m, k, size, stride, padding, zp, data):
    if padding == "valid" and size < k:
        size = k
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-128, 128, size=(1, size, size, cin))
    w = rng.integers(-127, 128, size=(1, k, k, cin * m))
    acc = tk.depthwise_conv2d_acc(x, w, None, input_zero_point=zp, strides=(stride, stride),
                                  padding=padding)
    window = window_2d((size, size), (k, k), (stride, stride), padding)
    top, left = window.padding_amounts["top"], window.padding_amounts["left"]
    for oy, ox, c in itertools.product(range(acc.shape[1]), range(acc.shape[2]),
                                       range(cin * m)):
        want = 0
        for fy, fx in itertools.product(range(k), range(k)):
            iy, ix = oy * stride - top + fy, ox * stride - left + fx
            if 0 <= iy < size and 0 <= ix < size:
                want += int(w[0, fy, fx, c]) * (int(x[0, iy, ix, c // m]) - zp)
        assert acc[0, oy, ox, c] == want, (oy, ox, c)


# --- arguments ----------------------------------------------------------------------------------


def test_inexact_concatenation_is_refused():
    with pytest.raises(ValueError, match=r"^input 1 is quantized \(scale 0\.5, zero point 3\)"):
        tk.concatenation([np.zeros((1, 1, 1, 1), int), np.zeros((1, 1, 1, 2), int)],
                         input_scales=[0.25, 0.5], input_zero_points=[3, 3],
                         output_scale=0.25, output_zero_point=3)


def test_add_params_refuse_an_output_multiplier_of_one():
    with pytest.raises(ValueError, match=r"^real_multiplier must be a number in \(0, 1\)"):
        tk.add_params(1.0, 1.0, 2.0**-20)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: tk.pad(np.zeros((1, 2), int), [[0, 1]], output_zero_point=0),
     r"^paddings must be 2 pairs of integers >= 0"),
    (lambda: tk.average_pool2d(np.zeros((1, 2, 2, 1), int), pool_size=(0, 1), strides=(1, 1),
                               padding="same"), r"^pool_size must be a pair of positive"),
    (lambda: tk.depthwise_conv2d_acc(np.zeros((1, 2, 2, 2), int), np.zeros((1, 1, 1, 3), int),
                                     None, input_zero_point=0, strides=(1, 1), padding="same"),
     r"^weights' 3 channels must be a multiple of the input's 2"),
    (lambda: tk.mean_hw(np.full((1, 1, 1, 1), 200), input_zero_point=0, output_zero_point=0,
                        multiplier=1 << 30, shift=0, keep_dims=True),
     r"^x must hold int8 codes"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(("real", "want"), [
    (0.5, (1 << 30, 0)),
    (0.25, (1 << 30, -1)),
    (1 / 3, (1431655765, -1)),
    (2.0**-33, (0, 0)),  # below 2**-32: flushed, as QuantizeMultiplier does
])
def test_quantize_multiplier_smaller_than_one_exp(real, want):
    assert numerics.quantize_multiplier_smaller_than_one_exp(real) == want


@pytest.mark.parametrize(("real", "message"), [
    (1.0, r"^real_multiplier must be a number in \(0, 1\), not 1\.0$"),
    (0.0, r"^real_multiplier must be a number in \(0, 1\), not 0\.0$"),
    (1 - 2.0**-40, r"^real_multiplier 0\.99999999999909.* rounds up to 1 \(shift 1\)"),
])
def test_quantize_multiplier_smaller_than_one_exp_refuses_what_tflite_aborts_on(real, message):
    with pytest.raises(ValueError, match=message):
        numerics.quantize_multiplier_smaller_than_one_exp(real)


@pytest.mark.parametrize("seed", range(3))
def test_add_table_lookup_equals_the_direct_arithmetic(seed):
    """Large ADDs are looked up in a 256 x 256 table of the kernel's own arithmetic: equal to
    the direct computation (small slices, below the table's size), clamps and all, including
    broadcasting."""
    rng = np.random.default_rng(seed)
    s1, s2 = (float(2.0 ** rng.uniform(-8, -2)) for _ in range(2))
    params = tk.add_params(s1, s2, float(max(s1, s2) * rng.uniform(0.6, 3)))
    zps = [int(z) for z in rng.integers(-128, 128, 3)]
    kw = dict(input1_zero_point=zps[0], input2_zero_point=zps[1], output_zero_point=zps[2],
              params=params, act_min=int(rng.integers(-128, 0)), act_max=127)
    a = rng.integers(-128, 128, (400, 400))
    b = rng.integers(-128, 128, (400, 400))
    big = tk.add(a, b, **kw)
    small = np.concatenate([tk.add(a[i:i + 1], b[i:i + 1], **kw) for i in range(len(a))])
    assert big.dtype == small.dtype and np.array_equal(big, small), seed
    row = b[:1]
    assert np.array_equal(tk.add(a, row, **kw),
                          np.concatenate([tk.add(a[i:i + 1], row, **kw) for i in range(len(a))]))
