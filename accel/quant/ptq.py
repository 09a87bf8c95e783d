"""Post-training quantization: a folded float network plus calibration data -> QuantizedNetwork.

Calibration runs the float network (:mod:`accel.quant.float_model`) on the calibration batch
and records each tensor's min/max. Then, per scheme:

``tflite-int8`` (as TFLite's converter does):
  activations int8 per tensor, asymmetric: the range is widened to include 0, ``scale =
  (max - min) / 255``, ``zero_point = round(-128 - min / scale)``; weights int8 per output
  channel, symmetric in [-127, 127] with ``scale = max|w_c| / 127``; bias int32 with scale
  ``s_in * s_w[c]``; requantization by the Q31 multiplier and shift (``multiplier`` mode, for
  dense layers too: TFLite's float-rounding FC path only applies to imported .tflite models);
  max pooling and flatten keep their input's parameters; softmax outputs scale 1/256, zero
  point -128.

``pow2`` (hls4ml-style fixed point, Qm.n):
  every scale is a power of two and zero points are 0. A tensor with absolute maximum ``a`` in
  ``B`` bits gets the most fraction bits ``f`` with ``a * 2**f <= 2**(B-1) - 1``. Weights are
  per tensor with ``weight_bits``; the bias has ``f_in + f_w`` fraction bits; requantization is
  the rounding shift by ``f_in + f_w - f_out`` then saturation (``pow2`` mode).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import AccelError
from ..spec import INPUT, Conv2D, Dense, MaxPooling2D, Network
from . import numerics
from .float_model import FoldedLayer, float_forward
from .qnet import (
    QConv2D,
    QDense,
    QFlatten,
    QLayer,
    QMaxPool2D,
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
    requant = Requant(mode="multiplier", multiplier=mult.astype(np.int64),
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
    outputs = float_forward(network, folded, x)

    def activation_params(values: np.ndarray, where: str) -> QuantParams:
        lo, hi = float(values.min()), float(values.max())
        if 0 < max(abs(lo), abs(hi)) < MIN_RANGE:
            # the scale would underflow float32 (tflite-int8) or need absurd shifts (pow2)
            raise AccelError(f"calibration data: {where} spans [{lo:.3g}, {hi:.3g}], too small "
                             f"to quantize (below {MIN_RANGE:g}); calibrate on real data")
        if scheme == "tflite-int8":
            return _tflite_activation(lo, hi)
        return _pow2_activation(lo, hi, act_bits)

    input_params = activation_params(x, "the input")
    # Each layer's input quantization is its producer's output quantization.
    params: dict[str, QuantParams] = {INPUT: input_params}
    layers: list[QLayer] = []
    for f in folded:
        inputs = f.spec.inputs
        s_in = params[inputs[0]]
        if isinstance(f.spec, (Conv2D, Dense)):
            s_out = activation_params(outputs[f.name], f"layer {f.name}'s output")
            if scheme == "tflite-int8":
                w, bias, w_scale, requant = _quantize_weights_tflite(f, s_in, s_out)
            else:
                w, bias, w_scale, requant = _quantize_weights_pow2(f, s_in, s_out, weight_bits)
            common = dict(name=f.name, inputs=inputs, input=s_in, output=s_out, weights=w,
                          bias=bias, weight_scale=w_scale, weight_bits=weight_bits, requant=requant,
                          activation=f.activation)
            if isinstance(f.spec, Conv2D):
                layers.append(QConv2D(**common, strides=f.spec.strides, padding=f.spec.padding))
            else:
                layers.append(QDense(**common))
        elif isinstance(f.spec, MaxPooling2D):
            s_out = s_in
            qmin, qmax = s_in.qmin, s_in.qmax
            if f.activation != "linear":
                qmin, qmax = numerics.fused_activation_range(f.activation, s_in.scale,
                                                             s_in.zero_point, bits=s_in.bits)
            layers.append(QMaxPool2D(name=f.name, inputs=inputs, input=s_in, output=s_out,
                                     pool_size=f.spec.pool_size, strides=f.spec.strides,
                                     padding=f.spec.padding, act_min=qmin, act_max=qmax))
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
