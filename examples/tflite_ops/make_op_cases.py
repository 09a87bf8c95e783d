"""Random single-operator int8 TFLite models, run by TFLite's reference kernels, as fixtures.

For each operator type the golden model implements (CONV_2D, FULLY_CONNECTED with per-channel
and with per-tensor weights, MAX_POOL_2D, SOFTMAX) and the MLPerf Tiny operators of
``accel/quant/tflite_kernels.py`` (DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, ADD, MEAN, PAD,
CONCATENATION) this script draws thousands of random cases
-- shapes, kernels, strides, padding, fused activation, int8 weights, int32 biases, and the
quantization parameters (scales over many octaves, so that the effective scale of a conv/dense
output ranges from below 2**-31 to above 2**4, and zero points over all of int8) -- writes each
case as a one-operator ``.tflite`` flatbuffer, runs it on random int8 inputs (including -128
and 127) with ``ai_edge_litert``'s interpreter using ``OpResolverType.BUILTIN_REF`` (the
reference kernels, no delegates), and saves per operator type an ``.npz`` with everything
needed to recompute the outputs without TFLite, plus the interpreter's outputs.

The models are written directly with the flatbuffer builders of the ``tflite`` package (the
TFLite schema), not converted from Keras, so that every quantization parameter is drawn at
random rather than calibrated. No TensorFlow is needed: ``numpy``, ``flatbuffers``, ``tflite``
and ``ai-edge-litert`` are. ``tests/test_tflite_ops.py`` and ``tests/test_tflite_kernels.py``
load this file to draw fresh cases when ``ai_edge_litert`` is installed.

Usage (from the repository root)::

    /opt/tfenv/bin/python examples/tflite_ops/make_op_cases.py

Fixture layout (one ``<op>.npz`` per operator type, ``np.savez_compressed``, no pickles):
per-case scalars are arrays of length ``cases``; variable-size arrays (inputs, weights,
biases, weight scales, outputs) are concatenated flat under their name, with ``<name>_shape``
(``cases x 4``, left-padded with ones) and ``<name>_ndim`` giving each case's shape. The
``__meta__`` entry is a JSON string with the seed and the versions used.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import tflite

HERE = Path(__file__).resolve().parent

#: Operator types, the number of random cases drawn for the committed fixtures, and the seed.
CASES = {
    "conv2d": 2000,
    "dense_per_channel": 2000,
    "dense_per_tensor": 2000,
    "max_pool2d": 2000,
    "softmax": 3000,
    "depthwise_conv2d": 2000,
    "average_pool2d": 2000,
    "add": 2000,
    "mean": 2000,
    "pad": 2000,
    "concatenation": 1500,
}
SEED = 20250611

#: TFLite's ActivationFunctionType codes and the names accel uses.
ACTIVATION_CODES = {"linear": 0, "relu": 1, "relu_n1_to_1": 2, "relu6": 3}
_PADDING_CODES = {"same": tflite.Padding.SAME, "valid": tflite.Padding.VALID}

#: Flat (variable-size) arrays per operator type and their dtypes.
FLAT = {
    "conv2d": {"x": np.int8, "weights": np.int8, "weight_scale": np.float32,
               "bias": np.int32, "y": np.int8},
    "dense_per_channel": {"x": np.int8, "weights": np.int8, "weight_scale": np.float32,
                          "bias": np.int32, "y": np.int8},
    "dense_per_tensor": {"x": np.int8, "weights": np.int8, "weight_scale": np.float32,
                         "bias": np.int32, "y": np.int8},
    "max_pool2d": {"x": np.int8, "y": np.int8},
    "softmax": {"x": np.int8, "y": np.int8},
    "depthwise_conv2d": {"x": np.int8, "weights": np.int8, "weight_scale": np.float32,
                         "bias": np.int32, "y": np.int8},
    "average_pool2d": {"x": np.int8, "y": np.int8},
    "add": {"x": np.int8, "x2": np.int8, "y": np.int8},
    "mean": {"x": np.int8, "y": np.int8},
    "pad": {"x": np.int8, "paddings": np.int32, "y": np.int8},
    "concatenation": {"x": np.int8, "x2": np.int8, "x3": np.int8, "x4": np.int8, "y": np.int8},
}


def _schema(name: str) -> Any:
    # The tflite package re-exports each table's class under the module's name; the builder
    # functions live in the module itself.
    return importlib.import_module(f"tflite.{name}")


# --- writing a one-operator model ---------------------------------------------------------------


class _Tensor:
    def __init__(self, name: str, shape: tuple[int, ...], dtype: type, scale: np.ndarray,
                 zero_point: np.ndarray, data: np.ndarray | None = None,
                 quantized_dimension: int = 0):
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        self.type = tflite.TensorType.INT8 if dtype is np.int8 else tflite.TensorType.INT32
        self.scale = np.asarray(scale, dtype=np.float32).reshape(-1)
        self.zero_point = np.asarray(zero_point, dtype=np.int64).reshape(-1)
        self.data = None if data is None else np.ascontiguousarray(data, dtype=dtype)
        self.quantized_dimension = quantized_dimension


def _bytes_vector(builder: flatbuffers.Builder, data: bytes) -> int:
    # Buffer contents are a ubyte vector; align the start to 16 bytes as TFLite's own writer
    # does, so the int32 bias is read from an aligned address.
    builder.StartVector(1, len(data), 16)
    builder.head -= len(data)
    builder.Bytes[builder.head:builder.head + len(data)] = data
    return builder.EndVector()


def _offsets_vector(builder: flatbuffers.Builder, start: Callable, offsets: list[int]) -> int:
    start(builder, len(offsets))
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def write_model(op_code: int, version: int, options_type: int, write_options: Callable,
                inputs: list[_Tensor], output: _Tensor) -> bytes:
    """A ``.tflite`` flatbuffer with one subgraph holding one operator ``inputs -> output``.

    The inputs without ``data`` are the graph inputs, in order (``inputs[0]`` for the
    one-input operators); the others are constants (their ``data``).
    """
    m, sg, t, b, op, oc, qp = (_schema(n) for n in (
        "Model", "SubGraph", "Tensor", "Buffer", "Operator", "OperatorCode",
        "QuantizationParameters"))
    builder = flatbuffers.Builder(1024)
    tensors = [*inputs, output]

    # Buffer 0 is the empty sentinel; each constant tensor gets its own buffer.
    buffer_offsets = []
    b.Start(builder)
    buffer_offsets.append(b.End(builder))
    buffer_index = []
    for tensor in tensors:
        if tensor.data is None:
            buffer_index.append(0)
            continue
        data = _bytes_vector(builder, tensor.data.tobytes())
        b.Start(builder)
        b.AddData(builder, data)
        buffer_offsets.append(b.End(builder))
        buffer_index.append(len(buffer_offsets) - 1)

    tensor_offsets = []
    for tensor, buffer in zip(tensors, buffer_index, strict=True):
        name = builder.CreateString(tensor.name)
        shape = builder.CreateNumpyVector(np.array(tensor.shape, dtype=np.int32))
        scale = builder.CreateNumpyVector(tensor.scale)
        zero_point = builder.CreateNumpyVector(tensor.zero_point)
        qp.Start(builder)
        qp.AddScale(builder, scale)
        qp.AddZeroPoint(builder, zero_point)
        qp.AddQuantizedDimension(builder, tensor.quantized_dimension)
        quantization = qp.End(builder)
        t.Start(builder)
        t.AddShape(builder, shape)
        t.AddType(builder, tensor.type)
        t.AddBuffer(builder, buffer)
        t.AddName(builder, name)
        t.AddQuantization(builder, quantization)
        tensor_offsets.append(t.End(builder))

    options = write_options(builder)
    op_inputs = builder.CreateNumpyVector(np.arange(len(inputs), dtype=np.int32))
    op_outputs = builder.CreateNumpyVector(np.array([len(inputs)], dtype=np.int32))
    op.Start(builder)
    op.AddOpcodeIndex(builder, 0)
    op.AddInputs(builder, op_inputs)
    op.AddOutputs(builder, op_outputs)
    op.AddBuiltinOptionsType(builder, options_type)
    op.AddBuiltinOptions(builder, options)
    operator = op.End(builder)

    graph_inputs = builder.CreateNumpyVector(
        np.array([i for i, t in enumerate(inputs) if t.data is None], dtype=np.int32))
    graph_outputs = builder.CreateNumpyVector(np.array([len(inputs)], dtype=np.int32))
    tensors_vec = _offsets_vector(builder, sg.StartTensorsVector, tensor_offsets)
    operators_vec = _offsets_vector(builder, sg.StartOperatorsVector, [operator])
    graph_name = builder.CreateString("main")
    sg.Start(builder)
    sg.AddTensors(builder, tensors_vec)
    sg.AddInputs(builder, graph_inputs)
    sg.AddOutputs(builder, graph_outputs)
    sg.AddOperators(builder, operators_vec)
    sg.AddName(builder, graph_name)
    subgraph = sg.End(builder)

    oc.Start(builder)
    oc.AddDeprecatedBuiltinCode(builder, min(op_code, 127))
    oc.AddBuiltinCode(builder, op_code)
    oc.AddVersion(builder, version)
    opcode = oc.End(builder)

    opcodes_vec = _offsets_vector(builder, m.StartOperatorCodesVector, [opcode])
    subgraphs_vec = _offsets_vector(builder, m.StartSubgraphsVector, [subgraph])
    buffers_vec = _offsets_vector(builder, m.StartBuffersVector, buffer_offsets)
    description = builder.CreateString("accel examples/tflite_ops/make_op_cases.py")
    m.Start(builder)
    m.AddVersion(builder, 3)
    m.AddOperatorCodes(builder, opcodes_vec)
    m.AddSubgraphs(builder, subgraphs_vec)
    m.AddDescription(builder, description)
    m.AddBuffers(builder, buffers_vec)
    builder.Finish(m.End(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def run_reference(model: bytes, x: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Run a model with TFLite's reference kernels and return its output.

    ``x`` is the input, or a list of the graph inputs in order.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=model,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    interpreter.allocate_tensors()
    inputs = x if isinstance(x, list) else [x]
    details = sorted(interpreter.get_input_details(), key=lambda d: d["index"])
    for detail, value in zip(details, inputs, strict=True):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


# --- random parameters ---------------------------------------------------------------------------


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _f32(value: float | np.ndarray) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)


def _zero_point(rng: np.random.Generator) -> int:
    roll = rng.random()
    if roll < 0.08:
        return -128
    if roll < 0.14:
        return 127
    if roll < 0.2:
        return 0
    return int(rng.integers(-128, 128))


def _activations(rng: np.random.Generator, shape: tuple[int, ...], zp: int) -> np.ndarray:
    """int8 inputs: the whole range, a narrow band (many ties), or mostly extremes."""
    kind = rng.choice(["full", "narrow", "extremes"], p=[0.5, 0.3, 0.2])
    if kind == "full":
        x = rng.integers(-128, 128, size=shape)
    elif kind == "narrow":
        centre = int(rng.integers(-128, 128)) if rng.random() < 0.5 else zp
        radius = int(rng.integers(0, 40))
        x = rng.integers(centre - radius, centre + radius + 1, size=shape)
    else:
        x = rng.choice([-128, 127, zp, int(rng.integers(-128, 128))], size=shape)
    # Sprinkle the two extremes everywhere.
    x = np.where(rng.random(shape) < 0.04, -128, x)
    x = np.where(rng.random(shape) < 0.04, 127, x)
    return np.clip(x, -128, 127).astype(np.int8)


def _weights(rng: np.random.Generator, channels: int, per_channel: int) -> np.ndarray:
    """Symmetric int8 weights, shape (channels, per_channel), each row with its own range."""
    w_max = rng.choice([0, 1, 2, 3, 7, 15, 31, 63, 100, 127, 127, 127], size=channels,
                       p=[0.02, *[0.98 / 11] * 11])
    w = rng.integers(-w_max[:, None], w_max[:, None] + 1, size=(channels, per_channel))
    # Put each row's extreme (+-w_max) somewhere, so -127 and 127 occur.
    where = rng.integers(0, per_channel, size=channels)
    w[np.arange(channels), where] = w_max * rng.choice([-1, 1], size=channels)
    return w.astype(np.int8)


def _bias_and_output_scale(rng: np.random.Generator, u: np.ndarray, w: np.ndarray,
                           s_in: np.float32, s_w: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """An int32 bias and an output scale for accumulators of ``u = x - zp`` times ``w``.

    ``w`` has shape (channels, terms). The output scale makes the outputs spread over a random
    number of steps (from a fraction of one to thousands), so the effective scales
    ``s_in * s_w / s_out`` range from tiny to above 1; it is capped so that no accumulator can
    scale beyond int32 (TFLite's arithmetic is undefined there).
    """
    channels, terms = w.shape
    w_rms = np.sqrt(np.mean(w.astype(np.float64) ** 2, axis=1))
    u_rms = float(np.sqrt(np.mean(u.astype(np.float64) ** 2))) if u.size else 0.0
    spread = np.sqrt(terms) * u_rms * w_rms  # typical |acc| without bias, per channel
    kind = rng.random()
    if kind < 0.1:
        bias = np.zeros(channels)
    elif kind < 0.15:
        bias = rng.choice([-1, 1], size=channels) * 2.0 ** rng.uniform(16, 26, size=channels)
    else:
        bias = rng.normal(0, 1, size=channels) * (np.median(spread) + 1) * rng.uniform(0, 3)
    bias = np.round(bias).astype(np.int32)

    typical = float(np.median(spread + np.abs(bias))) + 1.0
    steps = _log_uniform(rng, 2.0**-14, 2.0**-9) if rng.random() < 0.03 else \
        _log_uniform(rng, 0.25, 4096)
    s_out = _f32(s_in * np.float32(np.median(s_w)) * typical / steps)
    # Cap: |acc| * effective scale < 2**29 for every possible input.
    bound = np.abs(bias.astype(np.float64)) + 255.0 * np.abs(w.astype(np.float64)).sum(axis=1)
    worst = float(np.max(bound * (np.float64(s_in) * s_w.astype(np.float64))))
    if worst / float(s_out) >= 2.0**29:
        s_out = _f32(worst / 2.0**29 * 1.01)
    return bias, s_out


def _activation_name(rng: np.random.Generator) -> str:
    return str(rng.choice(["linear", "relu", "relu6", "relu_n1_to_1"], p=[0.4, 0.3, 0.2, 0.1]))


def _input_scale(rng: np.random.Generator) -> np.float32:
    return _f32(_log_uniform(rng, 2.0**-14, 2.0**3))


def _weight_scales(rng: np.random.Generator, channels: int) -> np.ndarray:
    centre = _log_uniform(rng, 2.0**-14, 2.0**0)
    return _f32(centre * 2.0 ** rng.uniform(-3, 3, size=channels))


def _quant(scale: np.ndarray | float, zero_point: np.ndarray | int) -> tuple:
    return np.atleast_1d(_f32(scale)), np.atleast_1d(np.asarray(zero_point, dtype=np.int64))


def _out_size(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


# --- one random case per operator type --------------------------------------------------------
#
# Each sampler returns (case, model bytes, input): ``case`` holds the per-case scalars and the
# constant arrays, in the fixture's names; the interpreter's output is added as ``y``.


def sample_conv2d(rng: np.random.Generator) -> tuple[dict, bytes, np.ndarray]:
    kh, kw = (int(k) for k in rng.integers(1, 5, size=2))
    sh, sw = (int(s) for s in rng.integers(1, 4, size=2))
    padding = str(rng.choice(["same", "valid"]))
    cin, cout = (int(c) for c in rng.integers(1, 9, size=2))
    n = int(rng.integers(1, 4))
    h = int(rng.integers(kh if padding == "valid" else 1, kh + 7))
    w_ = int(rng.integers(kw if padding == "valid" else 1, kw + 7))
    per_channel = bool(rng.random() < 0.85)
    activation = _activation_name(rng)
    s_in, zp_in = _input_scale(rng), _zero_point(rng)
    zp_out = _zero_point(rng)
    s_w = _weight_scales(rng, cout if per_channel else 1)
    weights = _weights(rng, cout, kh * kw * cin)  # OHWI, flattened per output channel
    x = _activations(rng, (n, h, w_, cin), zp_in)
    u = x.astype(np.int64) - zp_in
    bias, s_out = _bias_and_output_scale(rng, u, weights, s_in,
                                         np.broadcast_to(s_w, (cout,)))
    bias_scale = _f32(np.float64(s_in) * np.broadcast_to(s_w, (cout,)).astype(np.float64))
    oh, ow = _out_size(h, kh, sh, padding), _out_size(w_, kw, sw, padding)

    def options(builder: flatbuffers.Builder) -> int:
        o = _schema("Conv2DOptions")
        o.Start(builder)
        o.AddPadding(builder, _PADDING_CODES[padding])
        o.AddStrideW(builder, sw)
        o.AddStrideH(builder, sh)
        o.AddFusedActivationFunction(builder, ACTIVATION_CODES[activation])
        o.AddDilationWFactor(builder, 1)
        o.AddDilationHFactor(builder, 1)
        return o.End(builder)

    model = write_model(
        tflite.BuiltinOperator.CONV_2D, 3, tflite.BuiltinOptions.Conv2DOptions, options,
        [_Tensor("input", (n, h, w_, cin), np.int8, *_quant(s_in, zp_in)),
         _Tensor("filter", (cout, kh, kw, cin), np.int8, *_quant(s_w, np.zeros(s_w.size)),
                 data=weights.reshape(cout, kh, kw, cin)),
         _Tensor("bias", (cout,), np.int32, *_quant(bias_scale, np.zeros(cout)), data=bias)],
        _Tensor("output", (n, oh, ow, cout), np.int8, *_quant(s_out, zp_out)),
    )
    case = {
        "stride_h": sh, "stride_w": sw, "padding": padding, "activation": activation,
        "per_channel": per_channel, "input_scale": s_in, "input_zero_point": zp_in,
        "output_scale": s_out, "output_zero_point": zp_out,
        "weights": weights.reshape(cout, kh, kw, cin), "weight_scale": s_w, "bias": bias,
    }
    return case, model, x


def _sample_dense(rng: np.random.Generator, per_channel: bool) -> tuple[dict, bytes, np.ndarray]:
    terms = int(rng.integers(1, 33))
    units = int(rng.integers(1, 13))
    n = int(rng.integers(1, 17))
    activation = _activation_name(rng)
    s_in, zp_in = _input_scale(rng), _zero_point(rng)
    zp_out = _zero_point(rng)
    s_w = _weight_scales(rng, units if per_channel else 1)
    weights = _weights(rng, units, terms)  # TFLite layout (units, terms)
    x = _activations(rng, (n, terms), zp_in)
    u = x.astype(np.int64) - zp_in
    bias, s_out = _bias_and_output_scale(rng, u, weights, s_in,
                                         np.broadcast_to(s_w, (units,)))
    bias_scale = _f32(np.float64(s_in) * s_w.astype(np.float64))

    def options(builder: flatbuffers.Builder) -> int:
        o = _schema("FullyConnectedOptions")
        o.Start(builder)
        o.AddFusedActivationFunction(builder, ACTIVATION_CODES[activation])
        o.AddKeepNumDims(builder, False)
        return o.End(builder)

    model = write_model(
        tflite.BuiltinOperator.FULLY_CONNECTED, 4,
        tflite.BuiltinOptions.FullyConnectedOptions, options,
        [_Tensor("input", (n, terms), np.int8, *_quant(s_in, zp_in)),
         _Tensor("filter", (units, terms), np.int8, *_quant(s_w, np.zeros(s_w.size)),
                 data=weights),
         _Tensor("bias", (units,), np.int32, *_quant(bias_scale, np.zeros(bias_scale.size)),
                 data=bias)],
        _Tensor("output", (n, units), np.int8, *_quant(s_out, zp_out)),
    )
    case = {
        "activation": activation, "per_channel": per_channel, "input_scale": s_in,
        "input_zero_point": zp_in, "output_scale": s_out, "output_zero_point": zp_out,
        "weights": weights, "weight_scale": s_w, "bias": bias,
    }
    return case, model, x


def sample_dense_per_channel(rng: np.random.Generator) -> tuple[dict, bytes, np.ndarray]:
    return _sample_dense(rng, per_channel=True)


def sample_dense_per_tensor(rng: np.random.Generator) -> tuple[dict, bytes, np.ndarray]:
    return _sample_dense(rng, per_channel=False)


def sample_max_pool2d(rng: np.random.Generator) -> tuple[dict, bytes, np.ndarray]:
    ph, pw = (int(k) for k in rng.integers(1, 4, size=2))
    sh, sw = (int(s) for s in rng.integers(1, 4, size=2))
    padding = str(rng.choice(["same", "valid"]))
    c = int(rng.integers(1, 7))
    n = int(rng.integers(1, 4))
    h = int(rng.integers(ph if padding == "valid" else 1, ph + 7))
    w_ = int(rng.integers(pw if padding == "valid" else 1, pw + 7))
    activation = _activation_name(rng)
    scale, zp = _input_scale(rng), _zero_point(rng)
    x = _activations(rng, (n, h, w_, c), zp)
    oh, ow = _out_size(h, ph, sh, padding), _out_size(w_, pw, sw, padding)

    def options(builder: flatbuffers.Builder) -> int:
        o = _schema("Pool2DOptions")
        o.Start(builder)
        o.AddPadding(builder, _PADDING_CODES[padding])
        o.AddStrideW(builder, sw)
        o.AddStrideH(builder, sh)
        o.AddFilterWidth(builder, pw)
        o.AddFilterHeight(builder, ph)
        o.AddFusedActivationFunction(builder, ACTIVATION_CODES[activation])
        return o.End(builder)

    model = write_model(
        tflite.BuiltinOperator.MAX_POOL_2D, 2, tflite.BuiltinOptions.Pool2DOptions, options,
        [_Tensor("input", (n, h, w_, c), np.int8, *_quant(scale, zp))],
        _Tensor("output", (n, oh, ow, c), np.int8, *_quant(scale, zp)),
    )
    case = {
        "pool_h": ph, "pool_w": pw, "stride_h": sh, "stride_w": sw, "padding": padding,
        "activation": activation, "input_scale": scale, "input_zero_point": zp,
    }
    return case, model, x


def sample_softmax(rng: np.random.Generator) -> tuple[dict, bytes, np.ndarray]:
    roll = rng.random()
    if roll < 0.03:
        depth = int(rng.choice([100, 256, 1000, 1001]))
    elif roll < 0.25:
        depth = 10
    else:
        depth = int(rng.integers(1, 21))
    rows = 1 if depth > 20 else int(rng.integers(1, 9))
    rank = int(rng.choice([2, 3, 4], p=[0.7, 0.15, 0.15]))
    if rank == 2:
        shape: tuple[int, ...] = (rows, depth)
    elif rank == 3:
        shape = (1, rows, depth)
    else:
        split = int(rng.integers(1, 3)) if rows % 2 == 0 else 1
        shape = (1, split, rows // split, depth)
    roll = rng.random()
    if roll < 0.03:
        scale = _f32(2.0**-26 * _log_uniform(rng, 1.0001, 2.0))  # multiplier barely above 1
    elif roll < 0.08:
        scale = _f32(_log_uniform(rng, 2.0**4, 2.0**8))  # capped multiplier, diff_min 0
    elif roll < 0.2:
        scale = _f32(_log_uniform(rng, 2.0**-25, 2.0**-10))  # every left shift
    else:
        scale = _f32(_log_uniform(rng, 2.0**-10, 2.0**3))
    beta = np.float32(1.0) if rng.random() < 0.8 else _f32(_log_uniform(rng, 0.25, 4.0))
    if float(beta) * float(scale) * 2.0**26 <= 1.0:
        beta = np.float32(1.0)
    zp = _zero_point(rng)
    kind = rng.random()
    if kind < 0.05:
        x = np.full(shape, int(rng.integers(-128, 128)), dtype=np.int8)  # all equal
    elif kind < 0.1:
        x = np.full(shape, -128, dtype=np.int8)  # one-hot extremes
        x[..., int(rng.integers(0, depth))] = 127
    else:
        x = _activations(rng, shape, zp)
    # TFLite's reference softmax aborts the process (TFLITE_CHECK) when a row's sum of
    # exponentials reaches 512: keep long flat rows well below that.
    diff = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    if np.exp(np.float64(beta) * np.float64(scale) * diff).sum(axis=-1).max() > 400:
        return sample_softmax(rng)

    def options(builder: flatbuffers.Builder) -> int:
        o = _schema("SoftmaxOptions")
        o.Start(builder)
        o.AddBeta(builder, float(beta))
        return o.End(builder)

    model = write_model(
        tflite.BuiltinOperator.SOFTMAX, 2, tflite.BuiltinOptions.SoftmaxOptions, options,
        [_Tensor("input", shape, np.int8, *_quant(scale, zp))],
        _Tensor("output", shape, np.int8, *_quant(1.0 / 256, -128)),
    )
    case = {"input_scale": scale, "input_zero_point": zp, "beta": beta}
    return case, model, x


# --- the MLPerf Tiny operators (tests/test_tflite_kernels.py, accel/quant/tflite_kernels.py) ---


def _stride(rng: np.random.Generator) -> int:
    return int(rng.choice([1, 2, 3], p=[0.45, 0.45, 0.1]))


def _no_quant() -> tuple[np.ndarray, np.ndarray]:
    # Integer side inputs (axes, paddings) carry no quantization parameters.
    return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)


def sample_depthwise_conv2d(rng: np.random.Generator) -> tuple[dict, bytes, np.ndarray]:
    kh, kw = (int(k) for k in rng.integers(1, 6, size=2))
    sh, sw = _stride(rng), _stride(rng)
    padding = str(rng.choice(["same", "valid"]))
    cin = int(rng.integers(1, 9))
    depth_multiplier = int(rng.integers(1, 4))
    cout = cin * depth_multiplier
    n = int(rng.integers(1, 3))
    h = int(rng.integers(kh if padding == "valid" else 1, kh + 8))
    w_ = int(rng.integers(kw if padding == "valid" else 1, kw + 8))
    per_channel = bool(rng.random() < 0.85)
    activation = _activation_name(rng)
    s_in, zp_in = _input_scale(rng), _zero_point(rng)
    zp_out = _zero_point(rng)
    s_w = _weight_scales(rng, cout if per_channel else 1)
    weights = _weights(rng, cout, kh * kw)  # per output channel, its kh * kw taps
    x = _activations(rng, (n, h, w_, cin), zp_in)
    u = x.astype(np.int64) - zp_in
    bias, s_out = _bias_and_output_scale(rng, u, weights, s_in, np.broadcast_to(s_w, (cout,)))
    bias_scale = _f32(np.float64(s_in) * np.broadcast_to(s_w, (cout,)).astype(np.float64))
    filt = weights.reshape(cout, kh, kw).transpose(1, 2, 0)[None]  # (1, kh, kw, cout)
    oh, ow = _out_size(h, kh, sh, padding), _out_size(w_, kw, sw, padding)

    def options(builder: flatbuffers.Builder) -> int:
        o = _schema("DepthwiseConv2DOptions")
        o.Start(builder)
        o.AddPadding(builder, _PADDING_CODES[padding])
        o.AddStrideW(builder, sw)
        o.AddStrideH(builder, sh)
        o.AddDepthMultiplier(builder, depth_multiplier)
        o.AddFusedActivationFunction(builder, ACTIVATION_CODES[activation])
        o.AddDilationWFactor(builder, 1)
        o.AddDilationHFactor(builder, 1)
        return o.End(builder)

    model = write_model(
        tflite.BuiltinOperator.DEPTHWISE_CONV_2D, 3,
        tflite.BuiltinOptions.DepthwiseConv2DOptions, options,
        [_Tensor("input", (n, h, w_, cin), np.int8, *_quant(s_in, zp_in)),
         _Tensor("filter", (1, kh, kw, cout), np.int8, *_quant(s_w, np.zeros(s_w.size)),
                 data=filt, quantized_dimension=3),
         _Tensor("bias", (cout,), np.int32, *_quant(bias_scale, np.zeros(cout)), data=bias)],
        _Tensor("output", (n, oh, ow, cout), np.int8, *_quant(s_out, zp_out)),
    )
    case = {
        "stride_h": sh, "stride_w": sw, "padding": padding, "activation": activation,
        "depth_multiplier": depth_multiplier, "per_channel": per_channel,
        "input_scale": s_in, "input_zero_point": zp_in,
        "output_scale": s_out, "output_zero_point": zp_out,
        "weights": filt, "weight_scale": s_w, "bias": bias,
    }
    return case, model, x


def sample_average_pool2d(rng: np.random.Generator) -> tuple[dict, bytes, np.ndarray]:
    c = int(rng.integers(1, 7))
    n = int(rng.integers(1, 4))
    if rng.random() < 0.12:  # a global pool (DS-CNN's 25x5, ResNet's 8x8, ...)
        h, w_ = int(rng.integers(1, 26)), int(rng.integers(1, 13))
        ph, pw, sh, sw, padding = h, w_, 1, 1, "valid"
    else:
        ph, pw = (int(k) for k in rng.integers(1, 5, size=2))
        sh, sw = _stride(rng), _stride(rng)
        padding = str(rng.choice(["same", "valid"]))
        h = int(rng.integers(ph if padding == "valid" else 1, ph + 8))
        w_ = int(rng.integers(pw if padding == "valid" else 1, pw + 8))
    activation = _activation_name(rng)
    scale, zp = _input_scale(rng), _zero_point(rng)
    x = _activations(rng, (n, h, w_, c), zp)
    oh, ow = _out_size(h, ph, sh, padding), _out_size(w_, pw, sw, padding)

    def options(builder: flatbuffers.Builder) -> int:
        o = _schema("Pool2DOptions")
        o.Start(builder)
        o.AddPadding(builder, _PADDING_CODES[padding])
        o.AddStrideW(builder, sw)
        o.AddStrideH(builder, sh)
        o.AddFilterWidth(builder, pw)
        o.AddFilterHeight(builder, ph)
        o.AddFusedActivationFunction(builder, ACTIVATION_CODES[activation])
        return o.End(builder)

    model = write_model(
        tflite.BuiltinOperator.AVERAGE_POOL_2D, 2, tflite.BuiltinOptions.Pool2DOptions, options,
        [_Tensor("input", (n, h, w_, c), np.int8, *_quant(scale, zp))],
        _Tensor("output", (n, oh, ow, c), np.int8, *_quant(scale, zp)),
    )
    case = {
        "pool_h": ph, "pool_w": pw, "stride_h": sh, "stride_w": sw, "padding": padding,
        "activation": activation, "input_scale": scale, "input_zero_point": zp,
    }
    return case, model, x


def sample_add(rng: np.random.Generator) -> tuple[dict, bytes, list[np.ndarray]]:
    if rng.random() < 0.8:
        shape: tuple[int, ...] = (int(rng.integers(1, 3)), *(int(v) for v in
                                  rng.integers(1, 9, size=3)))
    else:
        shape = (int(rng.integers(1, 5)), int(rng.integers(1, 40)))
    s1 = _input_scale(rng)
    roll = rng.random()
    if roll < 0.3:
        # Scales in small ratios (as a residual join often has): many exact halves in the
        # real sum, where the fixed-point multipliers (a third is not a binary fraction)
        # decide the rounding, unlike round(real).
        s2 = _f32(s1 * float(rng.choice([1, 2, 0.5, 3, 1 / 3, 1.5, 0.75, 4, 0.25])))
        s_out = _f32(s1 * float(rng.choice([1, 2, 3, 4, 1.5, 6, 0.5, 2 / 3])))
    else:
        if roll < 0.4:
            s2 = s1
        elif roll < 0.88:
            s2 = _f32(s1 * 2.0 ** rng.uniform(-4, 4))
        else:
            s2 = _f32(s1 * 2.0 ** rng.uniform(-16, 16))  # one input almost vanishes
        s_out = s1 if rng.random() < 0.1 else \
            _f32(max(float(s1), float(s2)) * 2.0 ** rng.uniform(-1.5, 4))
    zp1, zp2, zp_out = _zero_point(rng), _zero_point(rng), _zero_point(rng)
    activation = _activation_name(rng)
    x1 = _activations(rng, shape, zp1)
    x2 = _activations(rng, shape, zp2)

    def options(builder: flatbuffers.Builder) -> int:
        o = _schema("AddOptions")
        o.Start(builder)
        o.AddFusedActivationFunction(builder, ACTIVATION_CODES[activation])
        return o.End(builder)

    model = write_model(
        tflite.BuiltinOperator.ADD, 2, tflite.BuiltinOptions.AddOptions, options,
        [_Tensor("input1", shape, np.int8, *_quant(s1, zp1)),
         _Tensor("input2", shape, np.int8, *_quant(s2, zp2))],
        _Tensor("output", shape, np.int8, *_quant(s_out, zp_out)),
    )
    case = {
        "activation": activation, "input_scale": s1, "input_zero_point": zp1,
        "input2_scale": s2, "input2_zero_point": zp2,
        "output_scale": s_out, "output_zero_point": zp_out, "x2": x2,
    }
    return case, model, [x1, x2]


def sample_mean(rng: np.random.Generator) -> tuple[dict, bytes, np.ndarray]:
    n, c = int(rng.integers(1, 4)), int(rng.integers(1, 9))
    if rng.random() < 0.1:
        h, w_ = (int(v) for v in [(25, 5), (5, 25), (7, 7), (8, 8), (6, 6), (3, 3), (12, 12),
                                  (32, 32), (24, 3), (1, 1)][int(rng.integers(0, 10))])
        n, c = 1, min(c, 3)
    else:
        h, w_ = (int(v) for v in rng.integers(1, 9, size=2))
    keep_dims = bool(rng.random() < 0.5)
    axes = [1, 2] if rng.random() < 0.85 else [2, 1]
    s_in, zp_in = _input_scale(rng), _zero_point(rng)
    if rng.random() < 0.35:
        s_out, zp_out = s_in, zp_in  # what the converter emits for a global average pool
    else:
        s_out, zp_out = _f32(s_in * 2.0 ** rng.uniform(-3, 3)), _zero_point(rng)
    x = _activations(rng, (n, h, w_, c), zp_in)
    out_shape = (n, 1, 1, c) if keep_dims else (n, c)

    def options(builder: flatbuffers.Builder) -> int:
        o = _schema("ReducerOptions")
        o.Start(builder)
        o.AddKeepDims(builder, keep_dims)
        return o.End(builder)

    model = write_model(
        tflite.BuiltinOperator.MEAN, 2, tflite.BuiltinOptions.ReducerOptions, options,
        [_Tensor("input", (n, h, w_, c), np.int8, *_quant(s_in, zp_in)),
         _Tensor("axis", (2,), np.int32, *_no_quant(), data=np.array(axes, dtype=np.int32))],
        _Tensor("output", out_shape, np.int8, *_quant(s_out, zp_out)),
    )
    case = {
        "keep_dims": keep_dims, "axis_order": "hw" if axes == [1, 2] else "wh",
        "input_scale": s_in, "input_zero_point": zp_in,
        "output_scale": s_out, "output_zero_point": zp_out,
    }
    return case, model, x


def sample_pad(rng: np.random.Generator) -> tuple[dict, bytes, np.ndarray]:
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 8)), int(rng.integers(1, 8)),
             int(rng.integers(1, 5)))
    paddings = np.zeros((4, 2), dtype=np.int32)
    paddings[1:3] = rng.integers(0, 4, size=(2, 2))
    if rng.random() < 0.2:  # not image-style: batch and channel paddings too
        paddings[0] = rng.integers(0, 2, size=2)
        paddings[3] = rng.integers(0, 3, size=2)
    s_in, zp_in = _input_scale(rng), _zero_point(rng)
    if rng.random() < 0.85:
        s_out, zp_out = s_in, zp_in
    else:  # shows what the kernel does with another output quantization: nothing
        s_out, zp_out = _f32(s_in * 2.0 ** rng.uniform(-2, 2)), _zero_point(rng)
    x = _activations(rng, shape, zp_in)
    out_shape = tuple(int(d + p.sum()) for d, p in zip(shape, paddings, strict=True))

    def options(builder: flatbuffers.Builder) -> int:
        o = _schema("PadOptions")
        o.Start(builder)
        return o.End(builder)

    model = write_model(
        tflite.BuiltinOperator.PAD, 2, tflite.BuiltinOptions.PadOptions, options,
        [_Tensor("input", shape, np.int8, *_quant(s_in, zp_in)),
         _Tensor("paddings", (4, 2), np.int32, *_no_quant(), data=paddings)],
        _Tensor("output", out_shape, np.int8, *_quant(s_out, zp_out)),
    )
    case = {
        "input_scale": s_in, "input_zero_point": zp_in,
        "output_scale": s_out, "output_zero_point": zp_out, "paddings": paddings,
    }
    return case, model, x


#: Most inputs a CONCATENATION case has (absent ones are stored with zero channels).
MAX_CONCAT_INPUTS = 4


def sample_concatenation(rng: np.random.Generator, *, exact: bool = True
                         ) -> tuple[dict, bytes, list[np.ndarray]]:
    """Concatenation on the channel axis; ``exact=False`` gives one input another quantization
    (TFLite refuses such int8 models in Prepare)."""
    count = int(rng.choice([2, 3, 4], p=[0.6, 0.25, 0.15]))
    n, h, w_ = int(rng.integers(1, 3)), int(rng.integers(1, 7)), int(rng.integers(1, 7))
    channels = [int(v) for v in rng.integers(1, 7, size=count)]
    axis = int(rng.choice([3, -1]))
    scale, zp = _input_scale(rng), _zero_point(rng)
    quants = [(scale, zp)] * count
    if not exact:
        odd = int(rng.integers(0, count))
        quants[odd] = (_f32(scale * 2.0 ** rng.uniform(-2, 2)), zp) if rng.random() < 0.5 \
            else (scale, (zp + int(rng.integers(1, 256)) + 128) % 256 - 128)
    xs = [_activations(rng, (n, h, w_, ch), zp) for ch in channels]

    def options(builder: flatbuffers.Builder) -> int:
        o = _schema("ConcatenationOptions")
        o.Start(builder)
        o.AddAxis(builder, axis)
        o.AddFusedActivationFunction(builder, ACTIVATION_CODES["linear"])
        return o.End(builder)

    model = write_model(
        tflite.BuiltinOperator.CONCATENATION, 2, tflite.BuiltinOptions.ConcatenationOptions,
        options,
        [_Tensor(f"input{i}", (n, h, w_, ch), np.int8, *_quant(s, z))
         for i, (ch, (s, z)) in enumerate(zip(channels, quants, strict=True))],
        _Tensor("output", (n, h, w_, sum(channels)), np.int8, *_quant(scale, zp)),
    )
    case: dict[str, Any] = {"axis": axis, "inputs": count, "input_scale": scale,
                            "input_zero_point": zp}
    for i in range(1, MAX_CONCAT_INPUTS):
        case[f"x{i + 1}"] = xs[i] if i < count else np.zeros((n, h, w_, 0), dtype=np.int8)
    return case, model, xs


SAMPLERS: dict[str, Callable[[np.random.Generator], tuple[dict, bytes, Any]]] = {
    "conv2d": sample_conv2d,
    "dense_per_channel": sample_dense_per_channel,
    "dense_per_tensor": sample_dense_per_tensor,
    "max_pool2d": sample_max_pool2d,
    "softmax": sample_softmax,
    "depthwise_conv2d": sample_depthwise_conv2d,
    "average_pool2d": sample_average_pool2d,
    "add": sample_add,
    "mean": sample_mean,
    "pad": sample_pad,
    "concatenation": sample_concatenation,
}


# --- packing -----------------------------------------------------------------------------------


def pack(op: str, cases: list[dict]) -> dict[str, np.ndarray]:
    """Per-case dicts (scalars, and arrays named in :data:`FLAT`) -> fixture arrays."""
    out: dict[str, np.ndarray] = {}
    for name, dtype in FLAT[op].items():
        arrays = [np.asarray(case[name]) for case in cases]
        out[name] = np.concatenate([a.reshape(-1) for a in arrays]).astype(dtype)
        shapes = np.ones((len(arrays), 4), dtype=np.int32)
        for i, a in enumerate(arrays):
            if a.ndim:
                shapes[i, 4 - a.ndim:] = a.shape
        out[f"{name}_shape"] = shapes
        out[f"{name}_ndim"] = np.array([a.ndim for a in arrays], dtype=np.int32)
    for name in cases[0]:
        if name in FLAT[op]:
            continue
        values = np.array([case[name] for case in cases])
        kind = values.dtype.kind
        # Scales are float32 as stored in the model; integers fit int32; str and bool stay.
        dtype = {"f": np.float32, "i": np.int32, "u": np.int32}.get(kind, values.dtype)
        out[name] = values.astype(dtype)
    return out


def generate(op: str, count: int, seed: int | list[int]) -> tuple[dict[str, np.ndarray], Counter]:
    """Draw ``count`` random cases of ``op``, run each with the reference kernels, and pack.

    Returns the fixture arrays and a count of cases the interpreter refused, by message.
    """
    rng = np.random.default_rng(seed)
    sampler = SAMPLERS[op]
    cases: list[dict] = []
    refused: Counter = Counter()
    while len(cases) < count:
        case, model, x = sampler(rng)
        try:
            y = run_reference(model, x)
        except (RuntimeError, ValueError) as e:
            refused[str(e).splitlines()[0][:120]] += 1
            continue
        # Multi-input samplers keep the other inputs in ``case`` (``x2``, ...).
        case["x"] = x[0] if isinstance(x, list) else x
        case["y"] = y
        cases.append(case)
    return pack(op, cases), refused


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import ai_edge_litert

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "ai-edge-litert": version("ai-edge-litert"),
        "ai_edge_litert module": getattr(ai_edge_litert, "__version__", "?"),
        "tflite (schema)": version("tflite"),
        "flatbuffers": version("flatbuffers"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    parser.add_argument("--ops", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the number of cases (for quick trials)")
    args = parser.parse_args(argv)
    meta = {"seed": SEED, "versions": versions()}
    for op in args.ops:
        count = max(1, round(CASES[op] * args.scale))
        arrays, refused = generate(op, count, [SEED, list(CASES).index(op)])
        arrays["__meta__"] = np.array(json.dumps({**meta, "op": op, "cases": count,
                                                  "refused": dict(refused)}))
        path = args.out / f"{op}.npz"
        np.savez_compressed(path, **arrays)
        print(f"{op}: {count} cases, {arrays['y'].size} output elements, "
              f"{path.stat().st_size / 1024:.0f} kB, refused {sum(refused.values())}"
              + "".join(f"\n    {n} x {msg}" for msg, n in refused.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
