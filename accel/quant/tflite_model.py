"""Fully-int8 ``.tflite`` models, read with the ``tflite`` flatbuffer package (no TensorFlow).

The model's scales, zero points, weights and biases are taken exactly as stored; the
requantization parameters are derived from them the way the TFLite kernels' ``Prepare`` does
(:mod:`accel.quant.numerics` and :mod:`accel.quant.tflite_kernels` document each rule).
Supported operators on the int8 data path: CONV_2D, DEPTHWISE_CONV_2D (per-channel weights on
dimension 3, any depth multiplier), MAX_POOL_2D, AVERAGE_POOL_2D, MEAN (over H and W), PAD
(H and W only, with the output zero point), ADD (two inputs of equal shape, each with its own
scale, fused activation), CONCATENATION (on channels, only when every input is quantized like
the output, as TFLite requires), FULLY_CONNECTED, RESHAPE (flatten), SOFTMAX, plus QUANTIZE at
the input and DEQUANTIZE at the output. The converter's flatten of a dynamic batch, SHAPE ->
STRIDED_SLICE (element 0) -> PACK (with the feature count or -1) -> RESHAPE of the same tensor,
is recognised exactly; any other int32 shape arithmetic is refused. Anything else fails with one
line naming the operator index and type.

The operators are read as a graph: each layer reads the tensor its operator reads, by the
name of the layer that produced it (``input`` for the model input), so any DAG of supported
operators is taken as it is (in the file's order, which TFLite keeps topological).

The FULLY_CONNECTED reference kernel requantizes in double since TF 2.20 (``requant`` mode
``float``); CONV_2D uses the Q31 multiplier (mode ``tflite``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import AccelError
from ..spec import INPUT
from . import numerics, tflite_kernels
from .qnet import (
    QAdd,
    QAvgPool2D,
    QConcatenate,
    QConv2D,
    QDense,
    QDepthwiseConv2D,
    QFlatten,
    QLayer,
    QMaxPool2D,
    QMean,
    QPad,
    QSoftmax,
    QuantizedNetwork,
    QuantParams,
    Requant,
)

#: ``tflite.ActivationFunctionType`` values -> the activation names numerics knows.
_FUSED = {0: "linear", 1: "relu", 2: "relu_n1_to_1", 3: "relu6"}
#: Operators whose data inputs are all their tensor inputs (the others read one data tensor).
_JOIN_OPS = ("ADD", "CONCATENATION")
#: The operators of the converter's flatten idiom (on int32 shape tensors).
_SHAPE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")
_SUPPORTED = ("CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D, MEAN, PAD, ADD, "
              "CONCATENATION, FULLY_CONNECTED, RESHAPE, SOFTMAX")
_INT8 = 9  # tflite.TensorType.INT8
_INT32 = 2  # tflite.TensorType.INT32
_INT64 = 4  # tflite.TensorType.INT64
_FLOAT32 = 0


class _Graph:
    """Read access to subgraph 0 of a model, with one-line errors."""

    def __init__(self, path: Path):
        import tflite  # the flatbuffer bindings: only needed for .tflite files

        from ..io.flatbuffer import read_tflite

        self.tflite = tflite
        self.path = path
        # Every table, vector and index used below is bounds-checked here first.
        self.buf, self.facts = read_tflite(path)
        try:
            self.model = tflite.Model.GetRootAsModel(self.buf, 0)
            if self.model.SubgraphsLength() != 1:
                raise AccelError(
                    f"{path}: {self.model.SubgraphsLength()} subgraphs; only one is supported"
                )
            self.graph = self.model.Subgraphs(0)
        except AccelError:
            raise
        except Exception as e:  # noqa: BLE001 - a corrupt flatbuffer can fail in many ways
            raise AccelError(f"{path}: corrupt TFLite flatbuffer: {e}") from None

    def op_name(self, index: int) -> str:
        # GetBuiltinCode, as resolved by the verifier: max(builtin_code,
        # deprecated_builtin_code), the byte-wide field signed (schema v3a).
        return self.tflite.opcode2name(self.facts.op_codes[index])

    def tensor(self, index: int):
        return self.graph.Tensors(int(index))

    def name(self, index: int) -> str:
        return self.tensor(index).Name().decode("utf-8", errors="replace")

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(s) for s in self.tensor(index).ShapeAsNumpy())

    def quant(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        q = self.tensor(index).Quantization()
        if q is None or q.ScaleLength() == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64), 0
        return (q.ScaleAsNumpy().astype(np.float32), q.ZeroPointAsNumpy().astype(np.int64),
                q.QuantizedDimension())

    def data(self, index: int, dtype) -> np.ndarray:
        t = self.tensor(index)
        raw = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(raw, int) or raw is None or len(raw) == 0:
            raise AccelError(f"{self.path}: tensor {self.name(index)!r} has no constant data")
        return np.frombuffer(raw.tobytes(), dtype=dtype).reshape(self.shape(index))

    def is_constant(self, index: int) -> bool:
        raw = self.model.Buffers(self.tensor(index).Buffer()).DataAsNumpy()
        return not isinstance(raw, int) and raw is not None and len(raw) > 0

    def options(self, op_index: int, cls):
        op = self.graph.Operators(op_index)
        table = op.BuiltinOptions()
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts


def _activation_params(g: _Graph, index: int, where: str) -> QuantParams:
    t = g.tensor(index)
    if t.Type() != _INT8:
        raise AccelError(f"{where}: tensor {g.name(index)!r} is not int8 (type {t.Type()}); "
                         f"only fully-int8 models are supported")
    scales, zps, _ = g.quant(index)
    if len(scales) != 1:
        raise AccelError(f"{where}: activation tensor {g.name(index)!r} has {len(scales)} "
                         f"scales; one per tensor is expected")
    if not (np.isfinite(scales[0]) and scales[0] > 0):
        raise AccelError(f"{where}: tensor {g.name(index)!r} has scale {scales[0]!r}; "
                         f"scales must be positive")
    return QuantParams(scale=float(scales[0]), zero_point=int(zps[0]))


def _weights(g: _Graph, index: int, where: str, channels: int,
             channel_axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    t = g.tensor(index)
    if t.Type() != _INT8:
        raise AccelError(f"{where}: weights {g.name(index)!r} are not int8 (type {t.Type()})")
    scales, zps, axis = g.quant(index)
    if np.any(zps != 0):
        raise AccelError(f"{where}: weights {g.name(index)!r} have a non-zero zero point; "
                         f"int8 weights must be symmetric")
    if len(scales) not in (1, channels) or (len(scales) > 1 and axis != channel_axis):
        raise AccelError(f"{where}: weights {g.name(index)!r} have {len(scales)} scales on axis "
                         f"{axis}; expected 1 or {channels} on axis {channel_axis}")
    if np.any(~np.isfinite(scales)) or np.any(scales <= 0):
        raise AccelError(f"{where}: weights {g.name(index)!r} have a non-positive scale")
    return g.data(index, np.int8).astype(np.int64), scales


def _bias(g: _Graph, inputs, where: str, channels: int) -> np.ndarray:
    if len(inputs) < 3 or inputs[2] < 0:
        return np.zeros(channels, np.int64)
    t = g.tensor(inputs[2])
    if t.Type() != _INT32:
        raise AccelError(f"{where}: bias {g.name(inputs[2])!r} is not int32 (type {t.Type()})")
    return g.data(inputs[2], np.int32).astype(np.int64)


def _requant(mode: str, s_in: QuantParams, w_scales: np.ndarray, s_out: QuantParams,
             activation: str, channels: int, *, float32_product: bool = False) -> Requant:
    scale = numerics.effective_scale(s_in.scale, w_scales, s_out.scale,
                                     float32_product=float32_product)
    scale = np.broadcast_to(scale, (channels,)).astype(np.float64)
    mult, shift = numerics.quantize_multiplier_array(scale)
    act_min, act_max = numerics.fused_activation_range(activation, s_out.scale,
                                                       s_out.zero_point)
    return Requant(mode=mode, multiplier=mult.astype(np.int64), shift=shift.astype(np.int64),
                   scale=scale, zero_point=s_out.zero_point, act_min=act_min, act_max=act_max)


def _padding(g: _Graph, opts) -> str:
    return "same" if opts.Padding() == g.tflite.Padding.SAME else "valid"


def _fused(opts, where: str) -> str:
    code = opts.FusedActivationFunction()
    if code not in _FUSED:
        raise AccelError(f"{where}: fused activation {code} is not supported")
    return _FUSED[code]


def _constant_ints(g: _Graph, index: int, where: str, what: str) -> np.ndarray:
    """The values of a constant int32 (or int64) tensor, e.g. an axis list or paddings."""
    t = g.tensor(index)
    if t.Type() not in (_INT32, _INT64):
        raise AccelError(f"{where}: {what} {g.name(index)!r} is not an int32 constant")
    return g.data(index, np.int32 if t.Type() == _INT32 else np.int64).astype(np.int64)


class _FlattenIdiom:
    """The converter's flatten of a dynamic batch, recognised step by step and nothing looser:
    ``s = SHAPE(x)``; ``b = STRIDED_SLICE(s, [0], [1], [1])`` with only ``shrink_axis_mask``
    1; ``t = PACK([b, n], axis 0)`` with a constant ``n``; ``RESHAPE(x, t)`` of the same
    ``x`` with ``n`` its feature count or -1."""

    def __init__(self, g: _Graph):
        self.g = g
        self.shape_of: dict[int, int] = {}  # SHAPE output -> data tensor
        self.batch_of: dict[int, int] = {}  # STRIDED_SLICE output -> data tensor
        self.flat_of: dict[int, tuple[int, int]] = {}  # PACK output -> (data tensor, n)

    def step(self, kind: str, op_index: int, inputs: list[int], outputs: list[int],
             producer: dict, where: str) -> None:
        g, tfl = self.g, self.g.tflite
        refuse = AccelError(f"{where}: only the flatten idiom SHAPE -> STRIDED_SLICE -> PACK -> "
                            f"RESHAPE is supported as shape arithmetic")
        if len(outputs) != 1 or g.tensor(outputs[0]).Type() != _INT32:
            raise refuse
        if kind == "SHAPE":
            if len(inputs) != 1 or inputs[0] not in producer:
                raise refuse
            self.shape_of[outputs[0]] = inputs[0]
        elif kind == "STRIDED_SLICE":
            if len(inputs) != 4 or inputs[0] not in self.shape_of:
                raise refuse
            opts = g.options(op_index, tfl.StridedSliceOptions)
            masks = (opts.BeginMask(), opts.EndMask(), opts.EllipsisMask(), opts.NewAxisMask(),
                     opts.ShrinkAxisMask())
            values = [_constant_ints(g, v, where, "slice bound").tolist() for v in inputs[1:]]
            if masks != (0, 0, 0, 0, 1) or values != [[0], [1], [1]]:
                raise refuse
            self.batch_of[outputs[0]] = self.shape_of[inputs[0]]
        else:  # PACK
            opts = g.options(op_index, tfl.PackOptions)
            if (len(inputs) != 2 or opts.Axis() != 0 or opts.ValuesCount() != 2
                    or inputs[0] not in self.batch_of):
                raise refuse
            n = _constant_ints(g, inputs[1], where, "packed size").reshape(-1)
            if n.size != 1:
                raise refuse
            self.flat_of[outputs[0]] = (self.batch_of[inputs[0]], int(n[0]))

    def check_reshape(self, inputs: list[int], in_shape: tuple, where: str) -> None:
        """A RESHAPE whose shape is computed must be the idiom's, of the same tensor."""
        if len(inputs) < 2 or inputs[1] < 0 or self.g.is_constant(inputs[1]):
            return  # a constant (or no) shape: the static shapes are checked by the caller
        if inputs[1] not in self.flat_of:
            raise AccelError(f"{where}: its shape comes from operators other than the flatten "
                             f"idiom SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE")
        source, n = self.flat_of[inputs[1]]
        features = int(np.prod(in_shape[1:]))
        if source != inputs[0] or n not in (-1, features):
            raise AccelError(f"{where}: the packed shape [batch, {n}] of tensor {source} does "
                             f"not flatten its input (tensor {inputs[0]}, {features} features)")


def load_tflite(path: str | Path) -> QuantizedNetwork:
    """A :class:`QuantizedNetwork` from a fully-int8 ``.tflite`` file."""
    path = Path(path)
    g = _Graph(path)
    tfl = g.tflite
    graph_inputs = list(g.graph.InputsAsNumpy())
    if len(graph_inputs) != 1:
        raise AccelError(f"{path}: the model has {len(graph_inputs)} inputs; one is supported")
    # Tensor index -> the name of the layer whose output it is ("input" for the model input).
    # The walk follows the operators in file order, which TFLite keeps topological.
    producer: dict[int, str] = {int(graph_inputs[0]): INPUT}
    input_params = None
    layers: list[QLayer] = []
    counters: dict[str, int] = {}

    def next_name(base: str) -> str:
        n = counters.get(base, 0)
        counters[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    flatten = _FlattenIdiom(g)
    for i in range(g.graph.OperatorsLength()):
        op = g.graph.Operators(i)
        kind = g.op_name(i)
        inputs = [int(v) for v in op.InputsAsNumpy()]
        outputs = [int(v) for v in op.OutputsAsNumpy()]
        where = f"{path}: operator {i} ({kind})"
        if kind in _SHAPE_OPS:
            flatten.step(kind, i, inputs, outputs, producer, where)
            continue  # shape arithmetic for a Flatten's RESHAPE
        if outputs and g.tensor(outputs[0]).Type() == _INT32:
            raise AccelError(f"{where}: only the flatten idiom SHAPE -> STRIDED_SLICE -> PACK -> "
                             f"RESHAPE is supported as shape arithmetic")
        data_inputs = inputs if kind in _JOIN_OPS else inputs[:1]
        for index in data_inputs or [-1]:
            if index not in producer:
                read = f"tensor {index} ({g.name(index)!r})" if index >= 0 else "no tensor"
                raise AccelError(f"{where}: reads {read}, which is neither the model input nor "
                                 f"the output of an earlier operator")
        current = inputs[0]
        source = producer[current]
        if kind == "QUANTIZE" and not layers and input_params is None:
            if g.tensor(current).Type() != _FLOAT32:
                raise AccelError(f"{where}: only a float->int8 QUANTIZE at the input is "
                                 f"supported")
            input_params = _activation_params(g, outputs[0], where)
            producer[outputs[0]] = source
            continue
        if kind == "DEQUANTIZE":
            if i != g.graph.OperatorsLength() - 1:
                raise AccelError(f"{where}: DEQUANTIZE is only supported as the last operator")
            break
        if input_params is None:
            input_params = _activation_params(g, current, f"{path}: model input")
        s_in = _activation_params(g, current, where)
        s_out = _activation_params(g, outputs[0], where)
        in_shape = g.shape(current)
        out_shape = g.shape(outputs[0])
        if kind == "CONV_2D":
            opts = g.options(i, tfl.Conv2DOptions)
            if opts.DilationHFactor() != 1 or opts.DilationWFactor() != 1:
                raise AccelError(f"{where}: dilation is not supported")
            activation = _fused(opts, where)
            filters = g.shape(inputs[1])[0]
            w, w_scales = _weights(g, inputs[1], where, filters)
            layers.append(QConv2D(
                inputs=(source,), name=next_name("conv2d"), input=s_in, output=s_out,
                weights=np.ascontiguousarray(w.transpose(1, 2, 3, 0)),  # OHWI -> HWIO (Keras)
                bias=_bias(g, inputs, where, filters), weight_scale=w_scales.astype(np.float64),
                strides=(opts.StrideH(), opts.StrideW()), padding=_padding(g, opts),
                requant=_requant("tflite", s_in, w_scales, s_out, activation, filters),
                activation=activation,
            ))
        elif kind == "DEPTHWISE_CONV_2D":
            opts = g.options(i, tfl.DepthwiseConv2DOptions)
            if opts.DilationHFactor() != 1 or opts.DilationWFactor() != 1:
                raise AccelError(f"{where}: dilation is not supported")
            activation = _fused(opts, where)
            _, kh, kw, channels = g.shape(inputs[1])
            cin = in_shape[3]
            if channels % cin:
                raise AccelError(f"{where}: the filter's {channels} channels are not a multiple "
                                 f"of the input's {cin}")
            # The kernel takes the depth multiplier from the shapes and ignores the option.
            w, w_scales = _weights(g, inputs[1], where, channels, channel_axis=3)
            layers.append(QDepthwiseConv2D(
                inputs=(source,), name=next_name("depthwise_conv2d"), input=s_in, output=s_out,
                weights=np.ascontiguousarray(w[0].reshape(kh, kw, cin, channels // cin)),
                bias=_bias(g, inputs, where, channels),
                weight_scale=w_scales.astype(np.float64),
                strides=(opts.StrideH(), opts.StrideW()), padding=_padding(g, opts),
                requant=_requant("multiplier", s_in, w_scales, s_out, activation, channels),
                activation=activation,
            ))
        elif kind == "AVERAGE_POOL_2D":
            opts = g.options(i, tfl.Pool2DOptions)
            # The kernel writes the average of the codes under the output tensor's
            # quantization (no requantization) and clamps to the output's fused activation.
            act_min, act_max = numerics.fused_activation_range(
                _fused(opts, where), s_out.scale, s_out.zero_point)
            layers.append(QAvgPool2D(
                inputs=(source,), name=next_name("average_pooling2d"), input=s_in, output=s_out,
                pool_size=(opts.FilterHeight(), opts.FilterWidth()),
                strides=(opts.StrideH(), opts.StrideW()), padding=_padding(g, opts),
                act_min=act_min, act_max=act_max,
            ))
        elif kind == "MEAN":
            axes = sorted(int(a) % 4 for a in _constant_ints(g, inputs[1], where, "axis"))
            if len(in_shape) != 4 or axes != [1, 2]:
                raise AccelError(f"{where}: only a mean over height and width (axes 1 and 2) of "
                                 f"an image is supported, not axes {axes} of {in_shape}")
            keep_dims = bool(g.options(i, tfl.ReducerOptions).KeepDims())
            multiplier, shift = tflite_kernels.mean_multiplier(s_in.scale, s_out.scale)
            layers.append(QMean(
                inputs=(source,), name=next_name("global_average_pooling2d"), input=s_in,
                output=s_out, multiplier=int(multiplier), shift=int(shift), keepdims=keep_dims,
            ))
        elif kind == "PAD":
            paddings = _constant_ints(g, inputs[1], where, "paddings")
            if paddings.shape != (4, 2) or paddings[0].any() or paddings[3].any() or (
                    paddings < 0).any():
                raise AccelError(f"{where}: only padding of height and width by amounts >= 0 is "
                                 f"supported, not {paddings.tolist()}")
            layers.append(QPad(
                inputs=(source,), name=next_name("zero_padding2d"), input=s_in, output=s_out,
                padding=tuple(tuple(int(v) for v in row) for row in paddings[1:3]),
            ))
        elif kind == "ADD":
            if len(inputs) != 2:
                raise AccelError(f"{where}: {len(inputs)} inputs; ADD takes two")
            if g.shape(inputs[0]) != g.shape(inputs[1]):
                raise AccelError(f"{where}: inputs of shapes {g.shape(inputs[0])} and "
                                 f"{g.shape(inputs[1])}; only equal shapes are supported (no "
                                 f"broadcasting)")
            activation = _fused(g.options(i, tfl.AddOptions), where)
            s_in2 = _activation_params(g, inputs[1], where)
            try:
                p = tflite_kernels.add_params(s_in.scale, s_in2.scale, s_out.scale)
            except ValueError as e:
                raise AccelError(f"{where}: scales {s_in.scale:.6g}, {s_in2.scale:.6g} -> "
                                 f"{s_out.scale:.6g} cannot be added in int8 ({e})") from None
            act_min, act_max = numerics.fused_activation_range(activation, s_out.scale,
                                                               s_out.zero_point)
            layers.append(QAdd(
                inputs=(source, producer[inputs[1]]), name=next_name("add"), input=s_in,
                input2=s_in2, output=s_out, left_shift=p.left_shift,
                input1_multiplier=p.input1_multiplier, input1_shift=p.input1_shift,
                input2_multiplier=p.input2_multiplier, input2_shift=p.input2_shift,
                output_multiplier=p.output_multiplier, output_shift=p.output_shift,
                act_min=act_min, act_max=act_max, activation=activation,
            ))
        elif kind == "CONCATENATION":
            opts = g.options(i, tfl.ConcatenationOptions)
            rank = len(out_shape)
            if opts.Axis() % rank != rank - 1:
                raise AccelError(f"{where}: axis {opts.Axis()}; only the channel (last) axis "
                                 f"is supported")
            if _fused(opts, where) != "linear":
                raise AccelError(f"{where}: a fused activation on CONCATENATION is not "
                                 f"supported")
            for k, index in enumerate(inputs):
                q = _activation_params(g, index, where)
                if (np.float32(q.scale), q.zero_point) != (np.float32(s_out.scale),
                                                           s_out.zero_point):
                    raise AccelError(
                        f"{where}: input {k} ({g.name(index)!r}) is quantized (scale "
                        f"{q.scale:.6g}, zero point {q.zero_point}) unlike the output (scale "
                        f"{s_out.scale:.6g}, zero point {s_out.zero_point}); TFLite's int8 "
                        f"CONCATENATION cannot rescale")
            layers.append(QConcatenate(
                inputs=tuple(producer[index] for index in inputs), name=next_name("concatenate"),
                input=s_in, output=s_out))
        elif kind == "MAX_POOL_2D":
            opts = g.options(i, tfl.Pool2DOptions)
            if (s_in.scale, s_in.zero_point) != (s_out.scale, s_out.zero_point):
                raise AccelError(f"{where}: input and output quantization differ")
            act_min, act_max = numerics.fused_activation_range(
                _fused(opts, where), s_out.scale, s_out.zero_point)
            layers.append(QMaxPool2D(
                inputs=(source,), name=next_name("max_pooling2d"), input=s_in, output=s_out,
                pool_size=(opts.FilterHeight(), opts.FilterWidth()),
                strides=(opts.StrideH(), opts.StrideW()), padding=_padding(g, opts),
                act_min=act_min, act_max=act_max,
            ))
        elif kind == "RESHAPE":
            flatten.check_reshape(inputs, in_shape, where)
            if len(out_shape) != 2 or int(np.prod(in_shape[1:])) != out_shape[1]:
                raise AccelError(f"{where}: only a flatten to (batch, features) is supported, "
                                 f"not {in_shape} -> {out_shape}")
            if (s_in.scale, s_in.zero_point) != (s_out.scale, s_out.zero_point):
                raise AccelError(f"{where}: input and output quantization differ")
            if len(in_shape) == 4:
                layers.append(QFlatten(inputs=(source,), name=next_name("flatten"), input=s_in,
                                       output=s_out))
            else:
                # A reshape of a vector to a vector: no layer, its output is its input's.
                producer[outputs[0]] = source
                continue
        elif kind == "FULLY_CONNECTED":
            opts = g.options(i, tfl.FullyConnectedOptions)
            if opts.WeightsFormat() != 0:
                raise AccelError(f"{where}: shuffled weights are not supported")
            if len(in_shape) != 2:
                raise AccelError(f"{where}: input of shape {in_shape}; a flattened "
                                 f"(batch, features) input is required")
            activation = _fused(opts, where)
            units = g.shape(inputs[1])[0]
            w, w_scales = _weights(g, inputs[1], where, units)
            layers.append(QDense(
                inputs=(source,), name=next_name("dense"), input=s_in, output=s_out,
                weights=np.ascontiguousarray(w.T),  # (units, in) -> (in, units) as Keras
                bias=_bias(g, inputs, where, units), weight_scale=w_scales.astype(np.float64),
                requant=_requant("float", s_in, w_scales, s_out, activation, units),
                activation=activation,
            ))
        elif kind == "SOFTMAX":
            opts = g.options(i, tfl.SoftmaxOptions)
            if (s_out.scale, s_out.zero_point) != (1 / 256, -128):
                raise AccelError(f"{where}: int8 softmax output must have scale 1/256 and "
                                 f"zero point -128, not {s_out.scale} and {s_out.zero_point}")
            layers.append(QSoftmax(inputs=(source,), name=next_name("softmax"), input=s_in,
                                   output=s_out,
                                   beta=float(opts.Beta())))
        else:
            raise AccelError(f"{where}: operator {kind} is not supported ({_SUPPORTED})")
        producer[outputs[0]] = layers[-1].name
    if not layers:
        raise AccelError(f"{path}: no supported operators found")
    in_shape = g.shape(int(graph_inputs[0]))[1:]
    try:
        return QuantizedNetwork(name=path.stem, scheme="tflite-int8",
                                input_shape=tuple(in_shape), input=input_params,
                                layers=tuple(layers), source=str(path))
    except AccelError as e:  # the graph's checks (e.g. an output nothing reads) name the layer
        raise AccelError(f"{path}: {e}") from None


__all__ = ["load_tflite"]
