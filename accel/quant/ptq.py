"""Post-training quantization: a folded float network plus calibration data -> QuantizedNetwork.

Calibration runs the float network (:mod:`accel.quant.float_model`) on the calibration batch
and records each tensor's min/max. Then, per scheme:

``tflite-int8`` (as TFLite's converter does):
  activations int8 per tensor, asymmetric: the range is widened to include 0, ``scale =
  (max - min) / 255``, ``zero_point = round(-128 - min / scale)``; weights int8 per output
  channel, symmetric in [-127, 127] with ``scale = max|w_c| / 127``; bias int32 with scale
  ``s_in * s_w[c]``; requantization by the Q31 multiplier and shift (``tflite`` mode, for
  dense layers too: TFLite's float-rounding FC path only applies to imported .tflite models);
  depthwise convolutions like convolutions (weights per output channel ``c * m + j``); max
  and average pooling, zero padding, flatten and reshape keep their input's parameters (the
  TFLite kernels copy or average codes without rescaling); a global average pool (MEAN), an
  Add (two inputs: TFLite's ADD) and its fused ReLU get their own calibrated output, with the
  kernels' integer parameters (:mod:`accel.quant.tflite_kernels`); a Concatenate's inputs and
  output share one quantization (the union of their ranges, given to every producer, through
  pass-through layers too), since TFLite's int8 CONCATENATION cannot rescale; softmax outputs
  scale 1/256, zero point -128.

``pow2`` (hls4ml-style fixed point, Qm.n):
  every scale is a power of two and zero points are 0. A tensor with absolute maximum ``a`` in
  ``B`` bits gets the most fraction bits ``f`` with ``a * 2**f <= 2**(B-1) - 1``. Weights are
  per tensor with ``weight_bits``; the bias has ``f_in + f_w`` fraction bits; requantization is
  the rounding shift by ``f_in + f_w - f_out`` then saturation (``pow2`` mode). DepthwiseConv2D,
  average pooling and Add have no pow2 numerics yet and are refused.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import AccelError
from ..spec import (
    INPUT,
    Add,
    AveragePooling2D,
    Concatenate,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    GlobalAveragePooling2D,
    MaxPooling2D,
    Network,
    ZeroPadding2D,
)
from . import numerics, tflite_kernels
from .float_model import FoldedLayer, float_forward, folded_network
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

INT32 = (numerics.INT32_MIN, numerics.INT32_MAX)
#: The smallest nonzero activation range that quantizes to a usable scale.
MIN_RANGE = 1e-20


def check_calibration(network: Network, data: np.ndarray) -> np.ndarray:
    """Calibration data as float64 (N, *input_shape); one-line errors for the wrong shape."""
    data = np.asarray(data)
    if data.ndim != len(network.input_shape) + 1 or tuple(data.shape[1:]) != network.input_shape:
        raise AccelError(f"calibration data has shape {data.shape}; the model needs (N, "
                         f"{', '.join(map(str, network.input_shape))})")
    if len(data) == 0:
        raise AccelError("calibration data is empty")
    if not np.issubdtype(data.dtype, np.number) or not np.all(np.isfinite(data)):
        raise AccelError("calibration data must be finite numbers")
    return data.astype(np.float64)


def _tflite_activation(lo: float, hi: float) -> QuantParams:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    scale = float(np.float32(scale))  # TFLite stores scales as float32
    zp = int(np.clip(numerics.round_half_away_from_zero(-128 - lo / scale), -128, 127))
    return QuantParams(scale=scale, zero_point=zp)


def _pow2_frac_bits(abs_max: float, bits: int) -> int:
    if abs_max <= 0:
        return bits - 1
    return math.floor(math.log2((2 ** (bits - 1) - 1) / abs_max))


def _pow2_activation(lo: float, hi: float, bits: int) -> QuantParams:
    f = _pow2_frac_bits(max(abs(lo), abs(hi)), bits)
    return QuantParams(scale=2.0 ** -f, zero_point=0, bits=bits)


def _frac(q: QuantParams) -> int:
    return -round(math.log2(q.scale))


def _quantize_weights_tflite(f: FoldedLayer, s_in: QuantParams, s_out: QuantParams):
    kernel = f.kernel
    flat = kernel.reshape(-1, kernel.shape[-1])
    w_scale = np.abs(flat).max(axis=0) / 127.0
    w_scale = np.where(w_scale > 0, w_scale, 1.0).astype(np.float32).astype(np.float64)
    w = np.clip(numerics.round_half_away_from_zero(kernel / w_scale), -127, 127).astype(np.int64)
    bias_scale = s_in.scale * w_scale
    bias = numerics.round_half_away_from_zero(f.bias / bias_scale)
    if np.any(bias < INT32[0]) or np.any(bias > INT32[1]):
        raise AccelError(f"layer {f.name}: a quantized bias does not fit int32")
    eff = numerics.effective_scale(s_in.scale, w_scale, s_out.scale)
    mult, shift = numerics.quantize_multiplier_array(eff)
    act = numerics.fused_activation_range(f.activation, s_out.scale, s_out.zero_point)
    requant = Requant(mode="tflite", multiplier=mult.astype(np.int64),
                      shift=shift.astype(np.int64), scale=eff, zero_point=s_out.zero_point,
                      act_min=act[0], act_max=act[1])
    return w, bias.astype(np.int64), w_scale, requant


def _quantize_weights_pow2(f: FoldedLayer, s_in: QuantParams, s_out: QuantParams,
                           weight_bits: int):
    top = 2 ** (weight_bits - 1) - 1
    fw = _pow2_frac_bits(float(np.abs(f.kernel).max()), weight_bits)
    w = np.clip(numerics.round_half_away_from_zero(f.kernel * 2.0 ** fw), -top, top)
    f_acc = _frac(s_in) + fw
    bias = numerics.round_half_away_from_zero(f.bias * 2.0 ** f_acc)
    if np.any(bias < INT32[0]) or np.any(bias > INT32[1]):
        raise AccelError(f"layer {f.name}: a quantized bias does not fit int32 (pow2 fraction "
                         f"bits {f_acc}); use fewer bits")
    channels = f.kernel.shape[-1]
    shift = np.full(channels, f_acc - _frac(s_out), np.int64)
    qmin, qmax = -(2 ** (s_out.bits - 1)), 2 ** (s_out.bits - 1) - 1
    if f.activation == "relu":
        act = (0, qmax)
    elif f.activation == "relu6":
        act = (0, min(qmax, round(6 * 2.0 ** _frac(s_out))))
    else:
        act = (qmin, qmax)
    requant = Requant(mode="pow2", multiplier=np.ones(channels, np.int64), shift=shift,
                      scale=np.full(channels, 2.0 ** -shift[0]), zero_point=0,
                      act_min=act[0], act_max=act[1])
    return w.astype(np.int64), bias.astype(np.int64), np.full(1, 2.0 ** -fw), requant


#: Layers whose output is their input's codes (copied, picked or averaged): same quantization.
_PASS_THROUGH = ("MaxPooling2D", "AveragePooling2D", "ZeroPadding2D", "Flatten", "Reshape")
#: Layers without pow2 numerics so far.
_NO_POW2 = (DepthwiseConv2D, AveragePooling2D, GlobalAveragePooling2D, Add)


def _shared_ranges(folded: list[FoldedLayer], outputs: dict[str, np.ndarray],
                   x: np.ndarray) -> dict[str, tuple[float, float]]:
    """Each tensor's calibration range, widened so that every tensor that must share a
    quantization has the same range: a Concatenate's inputs and output, and pass-through
    layers' inputs and outputs wherever a Concatenate's group reaches them (union-find)."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.get(a, a) != a:
            a = parent[a]
        return a

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb

    values = {INPUT: x, **outputs}
    for f in folded:
        if isinstance(f.spec, Concatenate) or f.spec.type_name in _PASS_THROUGH:
            for source in f.spec.inputs:
                union(source, f.name)
    ranges: dict[str, tuple[float, float]] = {}
    for name, v in values.items():
        root = find(name)
        lo, hi = ranges.get(root, (np.inf, -np.inf))
        ranges[root] = (min(lo, float(v.min())), max(hi, float(v.max())))
    return {name: ranges[find(name)] for name in values}


def quantize_folded(network: Network, folded: list[FoldedLayer], calibration: np.ndarray, *,
                    scheme: str = "tflite-int8", weight_bits: int = 8, act_bits: int = 8,
                    source: str = "") -> QuantizedNetwork:
    """Quantize a folded float network with ``calibration`` inputs (see module doc)."""
    if scheme == "tflite-int8" and (weight_bits, act_bits) != (8, 8):
        raise AccelError("scheme tflite-int8 is 8-bit only; use --scheme pow2 for other widths")
    for name, bits in (("weight_bits", weight_bits), ("act_bits", act_bits)):
        if not 4 <= bits <= 16:
            raise AccelError(f"{name} must be in 4..16, not {bits}")
    x = check_calibration(network, calibration)
    infos = {info.name: info for info in folded_network(network, folded).infos}
    if scheme == "pow2":
        for f in folded:
            if isinstance(f.spec, _NO_POW2):
                raise AccelError(f"{infos[f.name].where()}: scheme pow2 has no "
                                 f"{f.spec.type_name} numerics yet; use --scheme tflite-int8")
    outputs = float_forward(network, folded, x)
    ranges = _shared_ranges(folded, outputs, x)

    def activation_params(name: str) -> QuantParams:
        lo, hi = ranges[name]
        if 0 < max(abs(lo), abs(hi)) < MIN_RANGE:
            # the scale would underflow float32 (tflite-int8) or need absurd shifts (pow2)
            where = "the input" if name == INPUT else f"layer {name}'s output"
            raise AccelError(f"calibration data: {where} spans [{lo:.3g}, {hi:.3g}], too small "
                             f"to quantize (below {MIN_RANGE:g}); calibrate on real data")
        if scheme == "tflite-int8":
            return _tflite_activation(lo, hi)
        return _pow2_activation(lo, hi, act_bits)

    input_params = activation_params(INPUT)
    # Each layer's input quantization is its producer's output quantization.
    params: dict[str, QuantParams] = {INPUT: input_params}
    layers: list[QLayer] = []
    for f in folded:
        inputs = f.spec.inputs
        where = infos[f.name].where()
        s_in = params[inputs[0]]
        if isinstance(f.spec, (Conv2D, DepthwiseConv2D, Dense)):
            s_out = activation_params(f.name)
            q = f
            if isinstance(f.spec, DepthwiseConv2D):
                # Per output channel c * m + j, like a convolution on one input channel.
                kh, kw, cin, m = f.kernel.shape
                q = dataclasses.replace(f, kernel=f.kernel.reshape(kh, kw, 1, cin * m))
            if scheme == "tflite-int8":
                w, bias, w_scale, requant = _quantize_weights_tflite(q, s_in, s_out)
            else:
                w, bias, w_scale, requant = _quantize_weights_pow2(q, s_in, s_out, weight_bits)
            common = dict(name=f.name, inputs=inputs, input=s_in, output=s_out,
                          weights=w.reshape(f.kernel.shape), bias=bias, weight_scale=w_scale,
                          weight_bits=weight_bits, requant=requant, activation=f.activation)
            if isinstance(f.spec, Conv2D):
                layers.append(QConv2D(**common, strides=f.spec.strides, padding=f.spec.padding))
            elif isinstance(f.spec, DepthwiseConv2D):
                layers.append(QDepthwiseConv2D(**common, strides=f.spec.strides,
                                               padding=f.spec.padding))
            else:
                layers.append(QDense(**common))
        elif isinstance(f.spec, (MaxPooling2D, AveragePooling2D)):
            s_out = s_in
            qmin, qmax = s_in.qmin, s_in.qmax
            if f.activation != "linear":
                qmin, qmax = numerics.fused_activation_range(f.activation, s_in.scale,
                                                             s_in.zero_point, bits=s_in.bits)
            cls = QMaxPool2D if isinstance(f.spec, MaxPooling2D) else QAvgPool2D
            layers.append(cls(name=f.name, inputs=inputs, input=s_in, output=s_out,
                              pool_size=f.spec.pool_size, strides=f.spec.strides,
                              padding=f.spec.padding, act_min=qmin, act_max=qmax))
        elif isinstance(f.spec, GlobalAveragePooling2D):
            s_out = activation_params(f.name)
            multiplier, shift = tflite_kernels.mean_multiplier(s_in.scale, s_out.scale)
            layers.append(QMean(name=f.name, inputs=inputs, input=s_in, output=s_out,
                                multiplier=int(multiplier), shift=int(shift),
                                keepdims=f.spec.keepdims))
        elif isinstance(f.spec, ZeroPadding2D):
            s_out = s_in
            layers.append(QPad(name=f.name, inputs=inputs, input=s_in, output=s_out,
                               padding=f.spec.padding))
        elif isinstance(f.spec, Add):
            if len(inputs) != 2:
                raise AccelError(f"{where}: an Add of {len(inputs)} inputs; only two can be "
                                 f"quantized (TFLite's ADD)")
            s_out = activation_params(f.name)
            s_in2 = params[inputs[1]]
            try:
                p = tflite_kernels.add_params(s_in.scale, s_in2.scale, s_out.scale)
            except ValueError as e:
                raise AccelError(f"{where}: scales {s_in.scale:.6g}, {s_in2.scale:.6g} -> "
                                 f"{s_out.scale:.6g} cannot be added in int8 ({e})") from None
            act = numerics.fused_activation_range(f.activation, s_out.scale, s_out.zero_point)
            layers.append(QAdd(
                name=f.name, inputs=inputs, input=s_in, input2=s_in2, output=s_out,
                left_shift=p.left_shift, input1_multiplier=p.input1_multiplier,
                input1_shift=p.input1_shift, input2_multiplier=p.input2_multiplier,
                input2_shift=p.input2_shift, output_multiplier=p.output_multiplier,
                output_shift=p.output_shift, act_min=act[0], act_max=act[1],
                activation=f.activation))
        elif isinstance(f.spec, Concatenate):
            s_out = activation_params(f.name)  # the inputs' shared quantization
            layers.append(QConcatenate(name=f.name, inputs=inputs, input=s_in, output=s_out))
        elif f.activation == "softmax":
            if scheme != "tflite-int8":
                # pow2 has no integer softmax of its own: the logits are the output.
                continue
            s_out = QuantParams(scale=1 / 256, zero_point=-128)
            layers.append(QSoftmax(name=f.name, inputs=inputs, input=s_in, output=s_out))
        else:
            s_out = s_in
            layers.append(QFlatten(name=f.name, inputs=inputs, input=s_in, output=s_out))
        params[f.name] = s_out
    return QuantizedNetwork(name=network.name, scheme=scheme, input_shape=network.input_shape,
                            input=input_params, layers=tuple(layers), source=source)
