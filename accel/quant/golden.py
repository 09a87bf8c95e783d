"""The golden model: a quantized network run in NumPy integers, bit-exact with TFLite's int8
reference kernels (and with the hardware, which is checked against it).

Every operator is vectorized over the batch, the pixels and the channels. Convolutions and
dense layers multiply in ``float64`` BLAS and convert back to integers: each product is an
integer of at most 16 bits and every partial sum stays far below 2**53 (asserted from the
accumulator bound), so the float arithmetic is exact and much faster than NumPy's integer
matmul. Requantization, rounding and saturation come from :mod:`accel.quant.numerics` only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import AccelError
from ..spec.shapes import Window2D
from . import numerics
from .qnet import QConv2D, QDense, QFlatten, QLayer, QMaxPool2D, QSoftmax, QuantizedNetwork
from .windows import extract_windows

#: Images per chunk: bounds the im2col buffer (the seed network's second convolution needs
#: 196 * 288 float64 per image, about 450 kB).
BATCH_CHUNK = 64


def requantize_acc(acc: np.ndarray, layer: QConv2D | QDense) -> np.ndarray:
    """The output stage of a conv/dense layer: its :class:`~accel.quant.qnet.Requant` applied
    to int accumulators (bias included), channels on the last axis."""
    r = layer.requant
    if r.mode == "multiplier":
        return numerics.requantize(acc, r.multiplier, r.shift, r.zero_point, r.act_min,
                                   r.act_max)
    if r.mode == "float":
        return numerics.requantize_float(acc, r.scale, r.zero_point, r.act_min, r.act_max)
    return numerics.pow2_requantize(acc, r.shift, layer.output.bits, act_min=r.act_min,
                                    act_max=r.act_max)


def _exact_matmul(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``u @ w`` for integer arrays, computed exactly through float64 BLAS."""
    k = w.shape[0]
    bound = k * int(np.abs(u).max(initial=0)) * int(np.abs(w).max(initial=0))
    if bound >= 2**53:
        raise AccelError(f"accumulator bound {bound} exceeds exact float64 range")
    return np.rint(u.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)


def conv2d_acc(x: np.ndarray, layer: QConv2D, window: Window2D) -> np.ndarray:
    """Accumulators ``bias + sum (x - zp_in) * w`` of a convolution, int64, NHWC.

    Padding contributes ``x = zp_in``, i.e. zero after the subtraction (TFLite skips those
    taps, which is the same sum).
    """
    kh, kw, cin, filters = layer.weights.shape
    u = x.astype(np.int64) - layer.input.zero_point
    win = extract_windows(u, window, 0)
    n, oh, ow = win.shape[:3]
    acc = _exact_matmul(win.reshape(-1, kh * kw * cin),
                        layer.weights.reshape(kh * kw * cin, filters))
    return acc.reshape(n, oh, ow, filters) + layer.bias.astype(np.int64)


def dense_acc(x: np.ndarray, layer: QDense) -> np.ndarray:
    """Accumulators ``bias + sum (x - zp_in) * w`` of a dense layer, int64, shape (N, units)."""
    u = x.astype(np.int64) - layer.input.zero_point
    return _exact_matmul(u, layer.weights) + layer.bias.astype(np.int64)


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


def _run_softmax(x, layer, info):
    from .softmax import softmax_int8

    return softmax_int8(x, input_scale=layer.input.scale, beta=layer.beta)


#: Operator dispatch: quantized layer type -> function(x, layer, layer_info) -> int64 output.
OPERATORS: dict[type[QLayer], Callable] = {
    QConv2D: _run_conv,
    QDense: _run_dense,
    QMaxPool2D: _run_pool,
    QFlatten: _run_flatten,
    QSoftmax: _run_softmax,
}


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

    ``x`` has shape ``(N, *qnet.input_shape)`` (or one image without the batch axis) and holds
    values of the input format. Outputs are ``int8`` (or the layer's bits, as int16/int32).
    """
    x = check_input(qnet, x)
    outputs: dict[str, list[np.ndarray]] = {layer.name: [] for layer in qnet.layers}
    infos = qnet.network.infos
    for start in range(0, max(len(x), 1), BATCH_CHUNK):
        h = x[start:start + BATCH_CHUNK]
        for layer, info in zip(qnet.layers, infos, strict=True):
            h = OPERATORS[type(layer)](h, layer, info)
            outputs[layer.name].append(h)
    return {name: _narrow(np.concatenate(chunks), qnet_layer.output.bits)
            for (name, chunks), qnet_layer in zip(outputs.items(), qnet.layers, strict=True)}


def _narrow(a: np.ndarray, bits: int) -> np.ndarray:
    dtype = np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32
    return a.astype(dtype)
