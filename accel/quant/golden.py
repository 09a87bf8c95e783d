"""The golden model: a quantized network run in NumPy integers, bit-exact with TFLite's int8
reference kernels (and with the hardware, which is checked against it).

Every operator is vectorized over the batch, the pixels and the channels. Convolutions and
dense layers multiply in float32 BLAS (:class:`_Gemm`): the reduction is split into chunks
whose partial sums are integers provably within 2**24, where float32 is exact, and the chunks
are added in float64 (exact below 2**53). The bounds come from the layer's weights and input
format (per output column, the sums of the extreme terms), never from the data. That is exact
and much faster than NumPy's integer matmul. A convolution whose accumulators provably fit
(:func:`~accel.quant.numerics.float64_requantize_exact`) goes from the GEMM straight into the
exact float64 requantizer, a few images at a time (:func:`conv2d`); any other layer takes the
int64 path. Requantization, rounding and saturation come from :mod:`accel.quant.numerics`
only. The MLPerf Tiny operators (depthwise convolution, average pooling, MEAN, PAD, ADD,
CONCATENATION) call :mod:`accel.quant.tflite_kernels`, where their TFLite numerics are written
once.

The operators return the narrowest integer type of their output format (int8 for 8 bits;
max pooling keeps its input's type): convert to int64 before arithmetic that could wrap.
"""

from __future__ import annotations

import weakref
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

#: Outputs (rows x channels) per GEMM + requantization block of a convolution: the float32
#: GEMM result and the float64 requantization temporaries (~0.5 MB) stay in the L2 cache.
BLOCK_OUTPUTS = 1 << 15

#: float32 holds every integer of magnitude <= 2**24, float64 every one <= 2**53.
_FLOAT_EXACT = {np.dtype(np.float32): 2**24, np.dtype(np.float64): 2**53}


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


def _narrow_dtype(bits: int) -> np.dtype:
    return np.dtype(np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32)


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


class _Gemm:
    """A layer's weights prepared for exact float BLAS, with the bounds that prove it.

    The operand is ``u = x - zp_in`` with ``x`` in the input format, so ``u`` lies in
    ``[ulo, uhi] = [qmin - zp, qmax - zp]`` and a term ``u * w`` in ``[min(ulo*w, uhi*w),
    max(ulo*w, uhi*w)]``. A BLAS dot product of a chunk of rows only ever holds *partial sums*
    of that chunk's terms (in whatever order and blocking it adds them), and each lies between
    the chunk's sum of negative term minima and its sum of positive term maxima, per output
    column. The rows are cut greedily into chunks where both stay within the float's exact
    integers (2**24 for float32), so every BLAS operation on them is exact; the chunks' results
    are then added in float64, exact below 2**53. The same sums over all rows bound the whole
    dot product (``partial_abs_max``), and with the bias the accumulator
    (``acc_abs_max``): bounds from the weights and the formats, never from the data.

    With ``bias_row`` the bias is one more row of the weights, for an operand column of ones
    (a term in ``[min(b, 0), max(b, 0)]``), so that the GEMM yields the accumulators.
    """

    def __init__(self, weights: np.ndarray, bias: np.ndarray, u_range: tuple[int, int], *,
                 bias_row: bool = False):
        w = np.asarray(weights, np.int64)
        ulo, uhi = u_range
        term_hi = np.maximum(np.maximum(ulo * w, uhi * w), 0)
        term_lo = np.minimum(np.minimum(ulo * w, uhi * w), 0)
        if bias_row:
            b = np.asarray(bias, np.int64)[None]
            w = np.concatenate([w, b])
            term_hi = np.concatenate([term_hi, np.maximum(b, 0)])
            term_lo = np.concatenate([term_lo, np.minimum(b, 0)])
        per_term = int(max(term_hi.max(initial=0), -term_lo.min(initial=0), 1))
        self.dtype = np.dtype(np.float32 if per_term <= 2**24 else np.float64)
        limit = _FLOAT_EXACT[self.dtype]
        if per_term > limit:
            raise AccelError(f"a single product ({per_term}) is not exact in float64")
        self.chunks: list[slice] = []
        start, k = 0, w.shape[0]
        while start < k:
            high = np.cumsum(term_hi[start:], axis=0).max(axis=1)
            low = np.cumsum(term_lo[start:], axis=0).min(axis=1)
            fits = int(np.searchsorted(~((high <= limit) & (low >= -limit)), True))
            self.chunks.append(slice(start, start + max(fits, 1)))
            start += max(fits, 1)
        self.w = w.astype(self.dtype)
        self.bias = np.zeros(w.shape[1], np.int64) if bias_row else np.asarray(bias, np.int64)
        high, low = term_hi.sum(axis=0), term_lo.sum(axis=0)
        self.partial_abs_max = np.maximum(high, -low)
        self.acc_abs_max = np.maximum.reduce(
            [self.partial_abs_max, np.abs(self.bias), np.abs(self.bias + high),
             np.abs(self.bias + low)])

    def __call__(self, u: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``u @ w`` (no bias), exactly: ``self.dtype`` for one chunk, else float64."""
        if len(self.chunks) == 1:
            return np.matmul(u, self.w, out=out)
        acc = np.zeros((u.shape[0], self.w.shape[1]), np.float64)
        for rows in self.chunks:
            acc += u[:, rows] @ self.w[rows]
        return acc


class _Prepared:
    """What a conv/dense layer needs per call, computed once per layer (see :func:`_prepared`):
    the GEMM, its input range and, where provable, the exact float64 requantizer."""

    def __init__(self, layer: QConv2D | QDense):
        q = layer.input
        self.zero_point = q.zero_point
        self.x_range = (q.qmin, q.qmax)
        weights = layer.weights.reshape(-1, layer.weights.shape[-1])
        u_range = (q.qmin - q.zero_point, q.qmax - q.zero_point)
        self.gemm = _Gemm(weights, layer.bias, u_range)
        self.dtype = _narrow_dtype(layer.output.bits)
        r = layer.requant
        # The fused convolution: the bias inside the GEMM, its float32 results (accumulators)
        # straight into the float64 requantizer, where both are provably exact.
        self.fused = self.requantizer = None
        fused = _Gemm(weights, layer.bias, u_range, bias_row=True)
        if len(fused.chunks) == 1 and fused.dtype == self.gemm.dtype and \
                r.mode is RequantMode.TFLITE and \
                numerics.float64_requantize_exact(fused.acc_abs_max, r.multiplier, r.shift,
                                                  r.zero_point):
            self.fused = fused
            self.requantizer = numerics.Float64Requantizer(
                r.multiplier, r.shift, r.zero_point, r.act_min, r.act_max,
                acc_abs_max=fused.acc_abs_max, dtype=self.dtype)
        elif r.mode is RequantMode.TFLITE and \
                numerics.float64_requantize_exact(self.gemm.acc_abs_max, r.multiplier,
                                                  r.shift, r.zero_point):
            # A reduction too long for one exact float32 chunk (e.g. 3x3x64 taps): the chunks
            # are summed in float64 by the GEMM, the bias is the requantizer's offset.
            self.fused = self.gemm
            self.requantizer = numerics.Float64Requantizer(
                r.multiplier, r.shift, r.zero_point, r.act_min, r.act_max,
                acc_abs_max=self.gemm.acc_abs_max, offset=layer.bias, dtype=self.dtype)

    def operand(self, x: np.ndarray) -> np.ndarray | None:
        """``x - zp`` in the GEMM's float type, or None if ``x`` leaves the input format (the
        bounds would not hold; the callers then take the plain integer path)."""
        if x.size and (x.min() < self.x_range[0] or x.max() > self.x_range[1]):
            return None
        return np.subtract(x, self.zero_point, dtype=self.gemm.dtype)


_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _prepared(layer: QConv2D | QDense) -> _Prepared:
    """The layer's :class:`_Prepared`, cached (layers are frozen; their arrays are not
    expected to change)."""
    prepared = _PREPARED.get(layer)
    if prepared is None:
        prepared = _PREPARED[layer] = _Prepared(layer)
    return prepared


def _im2col(u: np.ndarray, window: Window2D) -> np.ndarray:
    """Every window of ``u`` (N, H, W, C), zero-padded, as a matrix (N*out_h*out_w,
    kh*kw*C), rows in NHW order, columns in (kh, kw, C) order (the weights' HWIO order)."""
    n, h, w, c = u.shape
    p = window.padding_amounts
    kh, kw = window.rows.kernel, window.cols.kernel
    oh, ow = window.out_shape
    sh, sw = window.rows.stride, window.cols.stride
    if any(p.values()):
        padded = np.zeros((n, h + p["top"] + p["bottom"], w + p["left"] + p["right"], c),
                          u.dtype)
        padded[:, p["top"]:p["top"] + h, p["left"]:p["left"] + w] = u
    else:
        padded = u
    cols = np.empty((n, oh, ow, kh, kw, c), u.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j] = padded[:, i:i + (oh - 1) * sh + 1:sh,
                                         j:j + (ow - 1) * sw + 1:sw]
    return cols.reshape(n * oh * ow, kh * kw * c)


def conv2d_acc(x: np.ndarray, layer: QConv2D, window: Window2D) -> np.ndarray:
    """Accumulators ``bias + sum (x - zp_in) * w`` of a convolution, int64, NHWC.

    Padding contributes ``x = zp_in``, i.e. zero after the subtraction (TFLite skips those
    taps, which is the same sum).
    """
    kh, kw, cin, filters = layer.weights.shape
    prepared = _prepared(layer)
    u = prepared.operand(x)
    if u is None:  # outside the input format: no float bound holds, integers throughout
        u = np.asarray(x, np.int64) - layer.input.zero_point
        win = extract_windows(u, window, 0).reshape(-1, kh * kw * cin)
        acc = win @ layer.weights.reshape(-1, filters).astype(np.int64)
    else:
        acc = prepared.gemm(_im2col(u, window)).astype(np.int64)
    oh, ow = window.out_shape
    return acc.reshape(len(x), oh, ow, filters) + layer.bias.astype(np.int64)


def conv2d(x: np.ndarray, layer: QConv2D, window: Window2D) -> np.ndarray:
    """A convolution's outputs, ``requantize_acc(conv2d_acc(x, layer, window), layer)``,
    in the narrowest integer type of the output format (int8 for 8 bits).

    Where :class:`_Prepared` proves it, the bias goes into the float32 GEMM (a column of
    ones) and its results, the accumulators, straight into the exact float64 requantizer
    (:class:`~accel.quant.numerics.Float64Requantizer`), a few images at a time so that the
    window matrix, the GEMM result and the requantizer's temporaries stay in cache.
    """
    prepared = _prepared(layer)
    u = prepared.operand(x) if prepared.fused is not None else None
    if u is None:
        return requantize_acc(conv2d_acc(x, layer, window), layer).astype(prepared.dtype)
    n, h, w, c = u.shape
    p = window.padding_amounts
    if any(p.values()):
        padded = np.zeros((n, h + p["top"] + p["bottom"], w + p["left"] + p["right"], c),
                          u.dtype)
        padded[:, p["top"]:p["top"] + h, p["left"]:p["left"] + w] = u
    else:
        padded = u
    kh, kw, cin, filters = layer.weights.shape
    oh, ow = window.out_shape
    sh, sw = window.rows.stride, window.cols.stride
    k = kh * kw * cin
    out = np.empty((n, oh, ow, filters), prepared.dtype)
    step = max(1, BLOCK_OUTPUTS // (oh * ow * filters))
    cols = np.empty((min(step, n) * oh * ow, k + 1), u.dtype)
    cols[:, k] = 1  # the bias row's operand
    for start in range(0, n, step):
        images = slice(start, min(start + step, n))
        rows = (images.stop - images.start) * oh * ow
        # Splitting the axes of a slice is a view: the taps are written into `cols` itself.
        taps = cols[:rows, :k].reshape(images.stop - images.start, oh, ow, kh, kw, cin)
        for i in range(kh):
            for j in range(kw):
                taps[:, :, :, i, j] = padded[images, i:i + (oh - 1) * sh + 1:sh,
                                             j:j + (ow - 1) * sw + 1:sw]
        # (the bias column is read only by a GEMM whose weights end with the bias row)
        acc = prepared.fused(cols[:rows] if prepared.fused is not prepared.gemm
                             else cols[:rows, :k])
        prepared.requantizer(acc, out=out[images].reshape(rows, filters))
    return out


def dense_acc(x: np.ndarray, layer: QDense) -> np.ndarray:
    """Accumulators ``bias + sum (x - zp_in) * w`` of a dense layer, int64, shape (N, units)."""
    prepared = _prepared(layer)
    u = prepared.operand(x)
    if u is None:
        acc = (np.asarray(x, np.int64) - layer.input.zero_point) @ layer.weights.astype(np.int64)
    else:
        acc = prepared.gemm(u).astype(np.int64)
    return acc + layer.bias.astype(np.int64)


def max_pool2d(x: np.ndarray, layer: QMaxPool2D, window: Window2D) -> np.ndarray:
    """Max over each window clipped to the image (padding never wins), then the clamp.

    In the integer type of ``x``: the windows are strided views of ``x`` padded with the type's
    lowest value, which can never exceed a pixel of the (never empty) clipped window.
    """
    x = np.asarray(x)
    lowest = np.iinfo(x.dtype).min
    n, h, w, c = x.shape
    p = window.padding_amounts
    if any(p.values()):
        padded = np.full((n, h + p["top"] + p["bottom"], w + p["left"] + p["right"], c),
                         lowest, x.dtype)
        padded[:, p["top"]:p["top"] + h, p["left"]:p["left"] + w] = x
    else:
        padded = x
    oh, ow = window.out_shape
    sh, sw = window.rows.stride, window.cols.stride
    out = None
    for i in range(window.rows.kernel):
        for j in range(window.cols.kernel):
            view = padded[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw]
            out = view.copy() if out is None else np.maximum(out, view, out=out)
    if layer.act_min > lowest or layer.act_max < np.iinfo(x.dtype).max:
        np.clip(out, layer.act_min, layer.act_max, out=out)
    return out


def _run_conv(x, layer, info):
    return conv2d(x, layer, info.inferred.window)


def _run_dense(x, layer, info):
    return requantize_acc(dense_acc(x, layer), layer).astype(_narrow_dtype(layer.output.bits))


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
#: layer_info) -> integer output (the output format's narrow type; see the module docstring).
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
#: function(xs, layer, layer_info) -> integer output, with ``xs`` a tuple of the inputs' int
#: outputs in the order of ``inputs``, in their narrow types (int8 for 8 bits: widen before
#: arithmetic that could wrap).
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
