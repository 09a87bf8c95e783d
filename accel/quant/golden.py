"""The golden model: a quantized network run in NumPy integers, bit-exact with TFLite's int8
reference kernels (and with the hardware, which is checked against it).

Every operator is vectorized over the batch, the pixels and the channels. Convolutions and
dense layers multiply in float32 BLAS (:func:`exact_int_matmul`): the reduction is split into
chunks whose partial sums are integers provably below 2**24, where float32 is exact, and the
chunks are added in int64. The bound comes from the formats (terms * max|x - zp| * max|w|),
never from the data. That is exact and much faster than NumPy's integer matmul.
Requantization, rounding and saturation come from :mod:`accel.quant.numerics` only. The
MLPerf Tiny operators (depthwise convolution, average pooling, MEAN, PAD, ADD, CONCATENATION)
call :mod:`accel.quant.tflite_kernels`, where their TFLite numerics are written once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import AccelError
from ..spec import INPUT
from ..spec.shapes import Window2D
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
)
from .requant_mode import RequantMode
from .windows import extract_windows

#: Images per chunk: keeps the im2col buffer (the seed network's second convolution needs
#: 196 * 288 float32 per image) and the int64 requantization arrays in cache.
BATCH_CHUNK = 32


def requantize_acc(acc: np.ndarray, layer: QConv2D | QDense) -> np.ndarray:
    """The output stage of a conv/dense layer: its :class:`~accel.quant.qnet.Requant` applied
    to int accumulators (bias included), channels on the last axis."""
    r = layer.requant
    if r.mode is RequantMode.TFLITE:
        return numerics.requantize(acc, r.multiplier, r.shift, r.zero_point, r.act_min,
                                   r.act_max)
    if r.mode is RequantMode.FLOAT:
        return numerics.requantize_float(acc, r.scale, r.zero_point, r.act_min, r.act_max)
    return numerics.pow2_requantize(acc, r.shift, layer.output.bits, act_min=r.act_min,
                                    act_max=r.act_max)


def _input_abs_max(layer: QConv2D | QDense) -> int:
    """The largest ``|x - zp_in|`` the input format allows (bounds the accumulator)."""
    q = layer.input
    return max(q.zero_point - q.qmin, q.qmax - q.zero_point)


def exact_int_matmul(u: np.ndarray, w: np.ndarray, u_abs_max: int) -> np.ndarray:
    """``u @ w`` for integer matrices, exactly, through float32 BLAS.

    The reduction axis is cut into chunks short enough that every partial sum of a chunk is an
    integer below 2**24 in magnitude (``chunk * u_abs_max * max|w|``, a bound from the formats,
    not from the data); each chunk's product is then exact in float32 and the chunks are added
    in int64. (float64 would be exact in one go, but this BLAS runs it ~70x slower.)
    """
    k = w.shape[0]
    per_term = max(u_abs_max * int(np.abs(w).max(initial=0)), 1)
    # Very wide pow2 formats (16-bit x 16-bit) need float64, exact below 2**53.
    dtype, limit = (np.float32, 2**24) if per_term < 2**24 else (np.float64, 2**53)
    if per_term >= limit:
        raise AccelError(f"a single product ({per_term}) is not exact in float64")
    chunk = max(1, min(k, (limit - 1) // per_term))
    acc = np.zeros((u.shape[0], w.shape[1]), np.int64)
    u = u.astype(dtype, copy=False)
    w = w.astype(dtype)
    if chunk >= k:
        return (u @ w).astype(np.int64)
    for start in range(0, k, chunk):
        acc += (u[:, start:start + chunk] @ w[start:start + chunk]).astype(np.int64)
    return acc


def conv2d_acc(x: np.ndarray, layer: QConv2D, window: Window2D) -> np.ndarray:
    """Accumulators ``bias + sum (x - zp_in) * w`` of a convolution, int64, NHWC.

    Padding contributes ``x = zp_in``, i.e. zero after the subtraction (TFLite skips those
    taps, which is the same sum).
    """
    kh, kw, cin, filters = layer.weights.shape
    # Convert before windowing: the window copy is then a plain float32 copy (numpy's
    # integer-to-float cast of the strided im2col view is ~10x slower).
    # int64 first: an int8 input minus its zero point would wrap in int8.
    u = (x.astype(np.int64) - layer.input.zero_point).astype(
        np.float32 if layer.input.bits <= 12 else np.float64)
    win = extract_windows(u, window, 0)
    n, oh, ow = win.shape[:3]
    acc = exact_int_matmul(win.reshape(-1, kh * kw * cin),
                           layer.weights.reshape(kh * kw * cin, filters), _input_abs_max(layer))
    return acc.reshape(n, oh, ow, filters) + layer.bias.astype(np.int64)


def dense_acc(x: np.ndarray, layer: QDense) -> np.ndarray:
    """Accumulators ``bias + sum (x - zp_in) * w`` of a dense layer, int64, shape (N, units)."""
    u = x.astype(np.int64) - layer.input.zero_point
    return exact_int_matmul(u, layer.weights, _input_abs_max(layer)) + layer.bias.astype(
        np.int64)


def max_pool2d(x: np.ndarray, layer: QMaxPool2D, window: Window2D) -> np.ndarray:
    """Max over each window clipped to the image (padding never wins), then the clamp."""
    lowest = np.iinfo(np.int64).min
    win = extract_windows(x.astype(np.int64), window, lowest)
    return np.clip(win.max(axis=(3, 4)), layer.act_min, layer.act_max)


def _run_conv(x, layer, info):
    return requantize_acc(conv2d_acc(x, layer, info.inferred.window), layer)


def _run_dense(x, layer, info):
    return requantize_acc(dense_acc(x, layer), layer)


def _run_pool(x, layer, info):
    return max_pool2d(x, layer, info.inferred.window)


def _run_flatten(x, layer, info):
    return x.reshape(x.shape[0], -1)


def _run_depthwise(x, layer, info):
    kh, kw, cin, m = layer.weights.shape
    acc = tflite_kernels.depthwise_conv2d_acc(
        x, layer.weights.reshape(kh, kw, cin * m), layer.bias,
        input_zero_point=layer.input.zero_point, strides=layer.strides, padding=layer.padding)
    return requantize_acc(acc, layer)


def _run_avg_pool(x, layer, info):
    return tflite_kernels.average_pool2d(x, pool_size=layer.pool_size, strides=layer.strides,
                                         padding=layer.padding, act_min=layer.act_min,
                                         act_max=layer.act_max)


def _run_mean(x, layer, info):
    return tflite_kernels.mean_hw(x, input_zero_point=layer.input.zero_point,
                                  output_zero_point=layer.output.zero_point,
                                  multiplier=layer.multiplier, shift=layer.shift,
                                  keep_dims=layer.keepdims)


def _run_pad(x, layer, info):
    (top, bottom), (left, right) = layer.padding
    return tflite_kernels.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]],
                              output_zero_point=layer.output.zero_point)


def add_params(layer: QAdd) -> tflite_kernels.AddParams:
    """The integer parameters a :class:`~accel.quant.qnet.QAdd` stores, as the kernel's."""
    return tflite_kernels.AddParams(
        layer.left_shift, layer.input1_multiplier, layer.input1_shift, layer.input2_multiplier,
        layer.input2_shift, layer.output_multiplier, layer.output_shift)


def _run_add(xs, layer, info):
    a, b = xs
    return tflite_kernels.add(a, b, input1_zero_point=layer.input.zero_point,
                              input2_zero_point=layer.input2.zero_point,
                              output_zero_point=layer.output.zero_point,
                              params=add_params(layer), act_min=layer.act_min,
                              act_max=layer.act_max)


def _run_concatenate(xs, layer, info):
    # QuantizedNetwork checked that every input is quantized like the output: a copy.
    return np.concatenate(xs, axis=-1)


def _run_softmax(x, layer, info):
    from .softmax import softmax_int8

    return softmax_int8(x, input_scale=layer.input.scale, beta=layer.beta)


#: Operator dispatch for single-input layers: quantized layer type -> function(x, layer,
#: layer_info) -> int64 output.
OPERATORS: dict[type[QLayer], Callable] = {
    QConv2D: _run_conv,
    QDense: _run_dense,
    QMaxPool2D: _run_pool,
    QFlatten: _run_flatten,
    QSoftmax: _run_softmax,
    QDepthwiseConv2D: _run_depthwise,
    QAvgPool2D: _run_avg_pool,
    QMean: _run_mean,
    QPad: _run_pad,
}

#: Operator dispatch for merge layers (several inputs): quantized layer type ->
#: function(xs, layer, layer_info) -> int64 output, with ``xs`` a tuple of the inputs' int
#: outputs in the order of ``inputs``.
JOIN_OPERATORS: dict[type[QLayer], Callable] = {
    QAdd: _run_add,
    QConcatenate: _run_concatenate,
}


def _operator(layer: QLayer, info) -> Callable:
    table = OPERATORS if len(info.inputs) == 1 else JOIN_OPERATORS
    if type(layer) not in table:
        raise AccelError(f"{info.where()}: no integer implementation yet")
    return table[type(layer)]


def check_input(qnet: QuantizedNetwork, x: np.ndarray) -> np.ndarray:
    """Validate an integer input batch (N, *input_shape); one-line errors."""
    x = np.asarray(x)
    if x.ndim == len(qnet.input_shape):
        x = x[None]
    if tuple(x.shape[1:]) != tuple(qnet.input_shape):
        raise AccelError(
            f"input shape {tuple(x.shape[1:])} does not match the model input "
            f"{tuple(qnet.input_shape)} (batch first: (N, {', '.join(map(str, qnet.input_shape))}))"
        )
    if not np.issubdtype(x.dtype, np.integer):
        raise AccelError(f"input dtype {x.dtype} is not an integer type; quantize it first")
    lo, hi = qnet.input.qmin, qnet.input.qmax
    if x.size and (x.min() < lo or x.max() > hi):
        raise AccelError(
            f"input values span [{x.min()}, {x.max()}], outside int{qnet.input.bits} [{lo}, {hi}]"
        )
    return x.astype(np.int64)


def run(qnet: QuantizedNetwork, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's int output for an int input batch, keyed by layer name in network order.

    The layers are evaluated in file order (a topological order of the DAG), each on the
    outputs of the layers it names as ``inputs`` (a fork feeds every consumer the same
    tensor). ``x`` has shape ``(N, *qnet.input_shape)`` (or one image without the batch axis)
    and holds values of the input format. Outputs are ``int8`` (or the layer's bits, as
    int16/int32). A layer type with no integer implementation raises a one-line
    ``AccelError`` before anything is computed.
    """
    x = check_input(qnet, x)
    infos = qnet.network.infos
    operators = [_operator(layer, info) for layer, info in zip(qnet.layers, infos, strict=True)]
    outputs: dict[str, list[np.ndarray]] = {layer.name: [] for layer in qnet.layers}
    # One BLAS thread: these GEMMs are small, and on a loaded 2-core machine (simulators and
    # synthesis running beside us) OpenBLAS's threads spin and run up to 100x slower.
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, max(len(x), 1), BATCH_CHUNK):
            tensors = {INPUT: x[start:start + BATCH_CHUNK]}
            for layer, info, operator in zip(qnet.layers, infos, operators, strict=True):
                args = tuple(tensors[name] for name in info.inputs)
                h = operator(args[0] if len(args) == 1 else args, layer, info)
                tensors[layer.name] = h
                outputs[layer.name].append(h)
    return {name: _narrow(np.concatenate(chunks), qnet_layer.output.bits)
            for (name, chunks), qnet_layer in zip(outputs.items(), qnet.layers, strict=True)}


def _narrow(a: np.ndarray, bits: int) -> np.ndarray:
    dtype = np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32
    return a.astype(dtype)
