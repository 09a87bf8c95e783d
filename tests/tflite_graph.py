"""Writing small multi-operator int8 ``.tflite`` graphs with the ``tflite`` flatbuffer builders.

The single-operator writer of ``examples/tflite_ops/make_op_cases.py`` shows the schema; this
one takes any list of tensors and operators, so that tests can build forks, joins and
operators that read the wrong tensor. No TensorFlow is needed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import flatbuffers
import numpy as np
import tflite


def _schema(name: str):
    return importlib.import_module(f"tflite.{name}")


@dataclass
class Tensor:
    """One tensor: int8 activations or weights, or int32 biases (``data`` for constants)."""

    name: str
    shape: tuple[int, ...]
    scale: tuple[float, ...] = (0.05,)
    zero_point: tuple[int, ...] = (0,)
    data: np.ndarray | None = None
    int32: bool = False


@dataclass
class Op:
    """One operator: its builtin code, tensor indices, and how to write its options."""

    code: int
    inputs: list[int]
    outputs: list[int]
    options_type: int = 0
    write_options: Callable | None = None


def _bytes_vector(builder, data: bytes) -> int:
    builder.StartVector(1, len(data), 16)  # 16-byte aligned, as TFLite's writer does
    builder.head -= len(data)
    builder.Bytes[builder.head:builder.head + len(data)] = data
    return builder.EndVector()


def _offsets(builder, start: Callable, offsets: list[int]) -> int:
    start(builder, len(offsets))
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def write_graph(tensors: list[Tensor], ops: list[Op], graph_inputs: list[int],
                graph_outputs: list[int]) -> bytes:
    """A one-subgraph ``.tflite`` flatbuffer with these tensors and operators."""
    m, sg, t, b, op, oc, qp = (_schema(n) for n in (
        "Model", "SubGraph", "Tensor", "Buffer", "Operator", "OperatorCode",
        "QuantizationParameters"))
    builder = flatbuffers.Builder(1024)
    b.Start(builder)
    buffers = [b.End(builder)]
    buffer_index = []
    for tensor in tensors:
        if tensor.data is None:
            buffer_index.append(0)
            continue
        dtype = np.int32 if tensor.int32 else np.int8
        data = _bytes_vector(builder, np.ascontiguousarray(tensor.data, dtype=dtype).tobytes())
        b.Start(builder)
        b.AddData(builder, data)
        buffers.append(b.End(builder))
        buffer_index.append(len(buffers) - 1)
    tensor_offsets = []
    for tensor, buffer in zip(tensors, buffer_index, strict=True):
        name = builder.CreateString(tensor.name)
        shape = builder.CreateNumpyVector(np.array(tensor.shape, dtype=np.int32))
        scale = builder.CreateNumpyVector(np.array(tensor.scale, dtype=np.float32))
        zero_point = builder.CreateNumpyVector(np.array(tensor.zero_point, dtype=np.int64))
        qp.Start(builder)
        qp.AddScale(builder, scale)
        qp.AddZeroPoint(builder, zero_point)
        quantization = qp.End(builder)
        t.Start(builder)
        t.AddShape(builder, shape)
        t.AddType(builder, tflite.TensorType.INT32 if tensor.int32 else tflite.TensorType.INT8)
        t.AddBuffer(builder, buffer)
        t.AddName(builder, name)
        t.AddQuantization(builder, quantization)
        tensor_offsets.append(t.End(builder))
    codes = sorted({o.code for o in ops})
    op_offsets = []
    for o in ops:
        options = o.write_options(builder) if o.write_options else None
        op_inputs = builder.CreateNumpyVector(np.array(o.inputs, dtype=np.int32))
        op_outputs = builder.CreateNumpyVector(np.array(o.outputs, dtype=np.int32))
        op.Start(builder)
        op.AddOpcodeIndex(builder, codes.index(o.code))
        op.AddInputs(builder, op_inputs)
        op.AddOutputs(builder, op_outputs)
        if options is not None:
            op.AddBuiltinOptionsType(builder, o.options_type)
            op.AddBuiltinOptions(builder, options)
        op_offsets.append(op.End(builder))
    inputs_vec = builder.CreateNumpyVector(np.array(graph_inputs, dtype=np.int32))
    outputs_vec = builder.CreateNumpyVector(np.array(graph_outputs, dtype=np.int32))
    tensors_vec = _offsets(builder, sg.StartTensorsVector, tensor_offsets)
    operators_vec = _offsets(builder, sg.StartOperatorsVector, op_offsets)
    sg.Start(builder)
    sg.AddTensors(builder, tensors_vec)
    sg.AddInputs(builder, inputs_vec)
    sg.AddOutputs(builder, outputs_vec)
    sg.AddOperators(builder, operators_vec)
    subgraph = sg.End(builder)
    code_offsets = []
    for code in codes:
        oc.Start(builder)
        oc.AddDeprecatedBuiltinCode(builder, min(code, 127))
        oc.AddBuiltinCode(builder, code)
        oc.AddVersion(builder, 1)
        code_offsets.append(oc.End(builder))
    codes_vec = _offsets(builder, m.StartOperatorCodesVector, code_offsets)
    subgraphs_vec = _offsets(builder, m.StartSubgraphsVector, [subgraph])
    buffers_vec = _offsets(builder, m.StartBuffersVector, buffers)
    m.Start(builder)
    m.AddVersion(builder, 3)
    m.AddOperatorCodes(builder, codes_vec)
    m.AddSubgraphs(builder, subgraphs_vec)
    m.AddBuffers(builder, buffers_vec)
    builder.Finish(m.End(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def conv_options(stride: int = 1, same: bool = True) -> tuple[int, Callable]:
    def write(builder):
        o = _schema("Conv2DOptions")
        o.Start(builder)
        o.AddPadding(builder, tflite.Padding.SAME if same else tflite.Padding.VALID)
        o.AddStrideW(builder, stride)
        o.AddStrideH(builder, stride)
        o.AddDilationWFactor(builder, 1)
        o.AddDilationHFactor(builder, 1)
        o.AddFusedActivationFunction(builder, 0)
        return o.End(builder)

    return tflite.BuiltinOptions.Conv2DOptions, write


def add_options() -> tuple[int, Callable]:
    def write(builder):
        o = _schema("AddOptions")
        o.Start(builder)
        o.AddFusedActivationFunction(builder, 0)
        return o.End(builder)

    return tflite.BuiltinOptions.AddOptions, write


def concatenation_options(axis: int = 3) -> tuple[int, Callable]:
    def write(builder):
        o = _schema("ConcatenationOptions")
        o.Start(builder)
        o.AddAxis(builder, axis)
        o.AddFusedActivationFunction(builder, 0)
        return o.End(builder)

    return tflite.BuiltinOptions.ConcatenationOptions, write
