"""Quantized networks (``.npz`` written by ``accel quantize``): structure, then meaning.

:func:`read_qnet_file` checks the archive before it builds anything:

- the manifest member first (its size, then JSON with duplicate keys refused), its format tag
  and version, and the type of every field it uses;
- the members: exactly the arrays the manifest's layers need (``<layer>/weights``, ``bias``,
  ``weight_scale`` and ``requant_{multiplier,shift,scale}`` for Conv2D/Dense), nothing else,
  each header's dtype and shape checked against the layer before its data is read.

:func:`validate_qnet` checks what the numbers mean, on the built network: integer weights in
their declared bit range, int32 biases, positive finite scales, requant arrays consistent with
their scales (the Q31 multiplier and shift TFLite derives, or the pow2 shift), requant mode
consistent with the scheme, clamps and zero points within the output type, and every layer's
input quantization equal to the previous layer's output. A file that passes computes what the
file says, bit for bit; one that does not is refused with one line naming the file, the layer
and the field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import AccelError
from ..quant.qnet import FORMAT_VERSION, MANIFEST_KEY, SCHEMES
from .documents import parse_json
from .files import short
from .npz import open_npz, read_member

FORMAT = "accel-quantized-network"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_LAYERS = 1000
#: Layer names become archive members (``layers/<name>``) and file names: keep them plain.
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
#: Array members of a layer: its own arrays, then its requantizer's (see ``save_quantized``).
LAYER_ARRAYS = ("weights", "bias", "weight_scale")
REQUANT_ARRAYS = ("requant_multiplier", "requant_shift", "requant_scale")
#: The rank of ``weights`` per kind, where accel knows it.
WEIGHT_RANK = {"conv2d": 4, "dense": 2}


def _kinds() -> dict:
    """Layer kinds and their classes, from the quantized network's own registry (so a new
    layer kind is readable as soon as it is registered there)."""
    from ..quant.qnet import QLAYER_TYPES

    return QLAYER_TYPES


def layer_arrays(kind: str) -> tuple[str, ...]:
    """The array members a layer of ``kind`` has in the archive, by its dataclass fields."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(_kinds()[kind])}
    own = tuple(key for key in LAYER_ARRAYS if key in fields)
    return own + (REQUANT_ARRAYS if "requant" in fields else ())
REQUANT_MODES_BY_SCHEME = {"tflite-int8": ("tflite", "float"), "pow2": ("pow2",)}
ACTIVATIONS = ("linear", "relu", "relu6", "relu_n1_to_1")
#: Kinds that read one tensor in its own quantization (a join such as an add rescales).
SINGLE_INPUT_KINDS = ("conv2d", "dense", "max_pool2d", "flatten", "softmax",
                      "depthwise_conv2d", "avg_pool2d", "mean", "pad")


def check_name(name: Any, where: str) -> str:
    """A layer name usable as an archive member and in messages, or one line."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise AccelError(f"{where}: layer name {short(name)} is not a plain name (letters, "
                         f"digits, '_', '.', '-'; at most 128; not starting with '.' or '-')")
    return name


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise AccelError(f"{where} must be an integer in [{lo}, {hi}], not {short(value)}")
    return value


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise AccelError(f"{where} must be a finite positive number, not {short(value)}")
    return float(value)


def _quant(d: Any, where: str) -> None:
    if not isinstance(d, dict):
        raise AccelError(f"{where} must be a mapping, not {short(d)}")
    for key in d:
        if key not in ("scale", "zero_point", "bits"):
            raise AccelError(f"{where}: unknown field {short(key)}")
    _float(d.get("scale"), f"{where}.scale")
    bits = _int(d.get("bits", 8), f"{where}.bits", 2, 32)
    _int(d.get("zero_point"), f"{where}.zero_point", -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _pair(value: Any, where: str) -> None:
    if not isinstance(value, list) or len(value) != 2:
        raise AccelError(f"{where} must be a list of two integers, not {short(value)}")
    for v in value:
        _int(v, where, 1, 1 << 16)


def check_manifest(m: Any, context: str) -> dict:
    """Types and ranges of every manifest field accel reads; the manifest."""
    if not isinstance(m, dict):
        raise AccelError(f"{context}: the manifest must be a mapping, not {short(m)}")
    if m.get("format") != FORMAT:
        raise AccelError(f"{context}: not an accel quantized network (format "
                         f"{short(m.get('format'))})")
    if m.get("version") != FORMAT_VERSION:
        raise AccelError(f"{context}: format version {short(m.get('version'))}; this accel "
                         f"reads version {FORMAT_VERSION}")
    if m.get("scheme") not in SCHEMES:
        raise AccelError(f"{context}: scheme {short(m.get('scheme'))} is not one of "
                         f"{', '.join(SCHEMES)}")
    if not isinstance(m.get("name"), str) or not m["name"]:
        raise AccelError(f"{context}: name must be a non-empty string, not {short(m.get('name'))}")
    if not isinstance(m.get("source", ""), str):
        raise AccelError(f"{context}: source must be a string, not {short(m.get('source'))}")
    shape = m.get("input_shape")
    if not isinstance(shape, list) or len(shape) not in (1, 3):
        raise AccelError(f"{context}: input_shape must be a list of 1 or 3 integers, not "
                         f"{short(shape)}")
    for s in shape:
        _int(s, f"{context}: input_shape", 1, 1 << 20)
    _quant(m.get("input"), f"{context}: input")
    layers = m.get("layers")
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise AccelError(f"{context}: layers must be a list of 1 to {MAX_LAYERS} layers, not "
                         f"{short(layers)}")
    names: set[str] = set()
    for i, entry in enumerate(layers):
        where = f"{context}: layer {i}"
        if not isinstance(entry, dict):
            raise AccelError(f"{where} must be a mapping, not {short(entry)}")
        name = check_name(entry.get("name"), where)
        if name in names:
            raise AccelError(f"{where}: layer name {short(name)} appears twice")
        names.add(name)
        kind = entry.get("kind")
        if not isinstance(kind, str) or kind not in _kinds():
            raise AccelError(f"{where} ({name}): kind {short(kind)} is not one of "
                             f"{', '.join(_kinds())}")
        where = f"{where} ({name}, {kind})"
        _quant(entry.get("input"), f"{where}: input")
        _quant(entry.get("output"), f"{where}: output")
        for key in ("strides", "pool_size"):
            if key in entry:
                _pair(entry[key], f"{where}: {key}")
        if kind == "pad":
            pads = entry.get("padding")
            if not (isinstance(pads, list) and len(pads) == 2 and all(
                    isinstance(p, list) and len(p) == 2 for p in pads)):
                raise AccelError(f"{where}: padding {short(pads)} is not [[top, bottom], "
                                 f"[left, right]]")
            for p in pads:
                for v in p:
                    _int(v, f"{where}: padding", 0, 1 << 16)
        elif "padding" in entry and entry["padding"] not in ("valid", "same"):
            raise AccelError(f"{where}: padding {short(entry['padding'])} is not valid/same")
        if "activation" in entry and entry["activation"] not in ACTIVATIONS:
            raise AccelError(f"{where}: activation {short(entry['activation'])} is not one of "
                             f"{', '.join(ACTIVATIONS)}")
        if "weight_bits" in entry:
            _int(entry["weight_bits"], f"{where}: weight_bits", 2, 16)
        for key in ("act_min", "act_max"):
            if key in entry:
                _int(entry[key], f"{where}: {key}", -(1 << 31), (1 << 31) - 1)
        if "beta" in entry:
            _float(entry["beta"], f"{where}: beta")
        if REQUANT_ARRAYS[0] in layer_arrays(kind):
            r = entry.get("requant")
            if not isinstance(r, dict):
                raise AccelError(f"{where}: requant must be a mapping, not {short(r)}")
            for key in ("zero_point", "act_min", "act_max"):
                _int(r.get(key), f"{where}: requant.{key}", -(1 << 31), (1 << 31) - 1)
            if not isinstance(r.get("mode"), str):
                raise AccelError(f"{where}: requant.mode must be a string, not "
                                 f"{short(r.get('mode'))}")
        elif "requant" in entry:
            raise AccelError(f"{where}: a {kind} layer has no requant")
    return m


def _member_check(layer: dict, key: str, where: str):
    """The header check of one layer array (kind and rank before the data is read)."""
    def check(shape: tuple[int, ...], dtype: np.dtype) -> None:
        want_int = key in ("weights", "bias", "requant_multiplier", "requant_shift")
        if want_int and dtype.kind not in "iu":
            raise AccelError(f"{where}: {key} has dtype {dtype}; integers are required")
        if not want_int and dtype.kind != "f":
            raise AccelError(f"{where}: {key} has dtype {dtype}; floats are required")
        rank = WEIGHT_RANK.get(layer["kind"]) if key == "weights" else 1
        if rank is not None and len(shape) != rank:
            raise AccelError(f"{where}: {key} has shape {short(shape)}; rank {rank} is "
                             f"required")
    return check


def read_qnet_file(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """``(manifest, arrays)`` of a quantized-network ``.npz``, structure checked (see module
    doc); ``arrays`` is keyed ``"<layer>/<field>"`` as :func:`accel.quant.qnet.save_quantized`
    writes it."""
    path = Path(path)
    context = str(path)
    zf, members = open_npz(path, "quantized network")
    with zf:
        if MANIFEST_KEY not in members:
            raise AccelError(f"{path}: not an accel quantized network (no {MANIFEST_KEY})")
        raw = read_member(zf, members[MANIFEST_KEY], context, max_bytes=MAX_MANIFEST_BYTES,
                          kinds="U")
        manifest = check_manifest(parse_json(_text(raw, context), f"{path}: manifest"),
                                  context)
        expected: dict[str, tuple[dict, str]] = {}
        for layer in manifest["layers"]:
            for key in layer_arrays(layer["kind"]):
                expected[f"{layer['name']}/{key}"] = (layer, key)
        for name in members:
            if name != MANIFEST_KEY and name not in expected:
                raise AccelError(f"{path}: unexpected member {short(name)} (not an array of "
                                 f"a layer in the manifest)")
        arrays: dict[str, np.ndarray] = {}
        for name, (layer, key) in expected.items():
            where = f"{path}: layer {short(layer['name'])}"
            if name not in members:
                raise AccelError(f"{where}: array {short(key)} is missing from the archive")
            arrays[name] = read_member(zf, members[name], context,
                                       check=_member_check(layer, key, where))
    return manifest, arrays


def _text(raw: np.ndarray, context: str) -> str:
    if raw.shape != () or raw.dtype.kind != "U":
        raise AccelError(f"{context}: {MANIFEST_KEY} must be one string, not an array of "
                         f"{raw.dtype} {raw.shape}")
    return str(raw[()])


def _same(a, b) -> bool:
    return (a.scale, a.zero_point, a.bits) == (b.scale, b.zero_point, b.bits)


def _weights_range(scheme: str, bits: int) -> tuple[int, int]:
    # accel's quantizers write symmetric weights ([-127, 127] for int8), but the arithmetic
    # (and TFLite's kernels) are exact on the whole signed range, which other converters use.
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def validate_qnet(qnet, context: str) -> None:
    """Check the meaning of every number of ``qnet`` (see module doc); one line or nothing."""
    from ..quant import numerics
    from ..quant.qnet import (
        QAdd,
        QAvgPool2D,
        QConcatenate,
        QConv2D,
        QDense,
        QDepthwiseConv2D,
        QMaxPool2D,
        QMean,
        QPad,
        QSoftmax,
    )

    if qnet.scheme == "pow2" and qnet.input.zero_point != 0:
        raise AccelError(f"{context}: input zero_point {qnet.input.zero_point}; pow2 has 0")
    from ..spec import INPUT

    previous = qnet.input
    outputs = {INPUT: qnet.input}
    infos = {info.name: info for info in qnet.network.infos}
    for i, layer in enumerate(qnet.layers):
        where = f"{context}: layer {i} ({layer.name}, {layer.kind})"
        # A layer reads the previous one in a chain, or the layers it names (a graph); the
        # single-input kinds below must take their producer's quantization as it is.
        sources = [outputs[n] for n in (getattr(layer, "inputs", None) or ()) if n in outputs]
        if layer.kind in SINGLE_INPUT_KINDS:
            for source in sources or [previous]:
                if not _same(layer.input, source):
                    raise AccelError(f"{where}: input quantization {layer.input.to_json()} "
                                     f"differs from its producer's output {source.to_json()}")
        previous = outputs[layer.name] = layer.output
        if qnet.scheme == "pow2" and layer.output.zero_point != 0:
            raise AccelError(f"{where}: output zero_point {layer.output.zero_point}; pow2 has 0")
        if qnet.scheme == "tflite-int8" and layer.output.bits != 8:
            raise AccelError(f"{where}: output bits {layer.output.bits}; tflite-int8 is 8")
        lo, hi = layer.output.qmin, layer.output.qmax
        if isinstance(layer, (QConv2D, QDense)):
            _validate_compute(layer, qnet.scheme, infos[layer.name], where, numerics)
        elif isinstance(layer, QMaxPool2D):
            if not _same(layer.input, layer.output):
                raise AccelError(f"{where}: max pooling must keep its input quantization")
            if not lo <= layer.act_min <= layer.act_max <= hi:
                raise AccelError(f"{where}: clamp [{layer.act_min}, {layer.act_max}] is not "
                                 f"within the output type [{lo}, {hi}]")
        elif isinstance(layer, QDepthwiseConv2D):
            # Output channel c * m + j is a convolution of input channel c alone: check it as
            # a convolution of one input channel with cin * m filters.
            kh, kw, cin, m = layer.weights.shape
            one = SimpleNamespace(**{k: getattr(layer, k) for k in (
                "bias", "requant", "input", "output", "weight_scale", "weight_bits")},
                weights=layer.weights.reshape(kh, kw, 1, cin * m))
            info = infos[layer.name]
            if info.input_shape[-1] != cin:
                raise AccelError(f"{where}: weights of shape {layer.weights.shape} do not take "
                                 f"the layer's {info.input_shape[-1]} input channels")
            _validate_compute(one, qnet.scheme, SimpleNamespace(input_shape=(1, 1, 1)), where,
                              numerics)
        elif isinstance(layer, (QAvgPool2D, QAdd)):
            if not lo <= layer.act_min <= layer.act_max <= hi:
                raise AccelError(f"{where}: clamp [{layer.act_min}, {layer.act_max}] is not "
                                 f"within the output type [{lo}, {hi}]")
            if isinstance(layer, QAdd):
                _check_add(layer, sources, where)
        elif isinstance(layer, QMean):
            _int(layer.multiplier, f"{where}: multiplier", 0, (1 << 31) - 1)
            _int(layer.shift, f"{where}: shift", -31, 31)
        elif isinstance(layer, QPad):
            if layer.output.zero_point != layer.input.zero_point and not lo <= \
                    layer.output.zero_point <= hi:
                raise AccelError(f"{where}: pad value {layer.output.zero_point} is not within "
                                 f"the output type [{lo}, {hi}]")
        elif isinstance(layer, QConcatenate):
            for source in sources:
                if not _same(source, layer.output):
                    raise AccelError(f"{where}: an input's quantization {source.to_json()} "
                                     f"differs from the output's {layer.output.to_json()}: "
                                     f"int8 concatenation is an exact copy only")
        elif isinstance(layer, QSoftmax):
            if (layer.output.scale, layer.output.zero_point, layer.output.bits) != \
                    (1 / 256, -128, 8):
                raise AccelError(f"{where}: int8 softmax output must have scale 1/256 and "
                                 f"zero point -128")
            check_softmax_beta(layer.beta, layer.input.scale, where)
        elif not _same(layer.input, layer.output):
            raise AccelError(f"{where}: flatten must keep its input quantization")


def _check_add(layer, sources: list, where: str) -> None:
    """TFLite ADD's integer parameters in the ranges its kernel derives them in, and each
    input in its producer's quantization."""
    if layer.left_shift != 20:
        raise AccelError(f"{where}: left_shift {short(layer.left_shift)}; TFLite's int8 ADD "
                         f"uses 20")
    for name in ("input1", "input2", "output"):
        _int(getattr(layer, f"{name}_multiplier"), f"{where}: {name}_multiplier", 0,
             (1 << 31) - 1)
        _int(getattr(layer, f"{name}_shift"), f"{where}: {name}_shift", -31, 31)
    for params, source in zip((layer.input, layer.input2), sources, strict=False):
        if not _same(params, source):
            raise AccelError(f"{where}: input quantization {params.to_json()} differs from "
                             f"its producer's output {source.to_json()}")


def check_softmax_beta(beta: float, input_scale: float, where: str) -> None:
    """A softmax ``beta`` TFLite's int8 kernel accepts, or one line."""
    from ..quant.softmax import softmax_scaling

    if not (math.isfinite(beta) and beta > 0):
        raise AccelError(f"{where}: softmax beta {short(beta)} must be finite and positive")
    try:
        softmax_scaling(input_scale=input_scale, beta=beta)
    except (ValueError, OverflowError) as e:
        raise AccelError(f"{where}: softmax beta {short(beta)}: {short(str(e))[1:-1]}"
                         ) from None


def _validate_compute(layer, scheme: str, info, where: str, numerics) -> None:
    w, b, r = layer.weights, layer.bias, layer.requant
    channels = w.shape[-1]
    cin = info.input_shape[-1] if w.ndim == 4 else int(np.prod(info.input_shape))
    if w.shape[-2] != cin:
        raise AccelError(f"{where}: weights of shape {w.shape} do not take the layer's "
                         f"{cin} input {'channels' if w.ndim == 4 else 'features'}")
    if scheme == "tflite-int8" and layer.weight_bits != 8:
        raise AccelError(f"{where}: weight_bits {layer.weight_bits}; tflite-int8 is 8")
    wlo, whi = _weights_range(scheme, layer.weight_bits)
    if w.size and (w.min() < wlo or w.max() > whi):
        bad = w[(w < wlo) | (w > whi)].flat[0]
        raise AccelError(f"{where}: weight {int(bad)} is outside the {layer.weight_bits}-bit "
                         f"range [{wlo}, {whi}]")
    lo32, hi32 = numerics.int_range(32)
    if b.shape != (channels,) or (b.size and (b.min() < lo32 or b.max() > hi32)):
        raise AccelError(f"{where}: bias must be {channels} int32 values, not shape {b.shape} "
                         f"in [{b.min() if b.size else 0}, {b.max() if b.size else 0}]")
    s = layer.weight_scale
    if s.shape not in ((1,), (channels,)) or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise AccelError(f"{where}: weight_scale must be 1 or {channels} finite positive "
                         f"values, not shape {s.shape}")
    for key in ("multiplier", "shift", "scale"):
        if getattr(r, key).shape != (channels,):
            raise AccelError(f"{where}: requant {key} has shape {getattr(r, key).shape}; "
                             f"({channels},) is required")
    if r.mode not in REQUANT_MODES_BY_SCHEME[scheme]:
        raise AccelError(f"{where}: requant mode {short(str(r.mode))} contradicts scheme {scheme} "
                         f"({', '.join(REQUANT_MODES_BY_SCHEME[scheme])})")
    if not np.all(np.isfinite(r.scale)) or np.any(r.scale <= 0):
        raise AccelError(f"{where}: requant scale must be finite and positive")
    if r.mode in ("tflite", "float"):
        mult, shift = numerics.quantize_multiplier_array(r.scale)
        if not (np.array_equal(mult, r.multiplier) and np.array_equal(shift, r.shift)):
            raise AccelError(f"{where}: requant multiplier/shift are not the Q31 encoding of "
                             f"requant scale (TFLite's QuantizeMultiplier)")
        want = numerics.effective_scale(layer.input.scale, s, layer.output.scale)
        if not np.allclose(np.broadcast_to(want, (channels,)), r.scale, rtol=1e-5, atol=0):
            raise AccelError(f"{where}: requant scale is not input scale * weight scale / "
                             f"output scale")
    else:
        if np.any(r.multiplier != 1) or np.any(r.shift < 0) or np.any(r.shift > 62):
            raise AccelError(f"{where}: pow2 requant needs multipliers of 1 and shifts in "
                             f"[0, 62]")
        if not np.array_equal(r.scale, 2.0 ** -r.shift.astype(np.float64)):
            raise AccelError(f"{where}: pow2 requant scale is not 2**-shift")
    if r.mode in ("tflite", "float"):
        # TFLite accumulates in int32 (and so does the requantizer's input): the worst case of
        # |bias + sum (x - zp) * w| over every input must fit, per output channel.
        x_abs = max(layer.input.zero_point - layer.input.qmin,
                    layer.input.qmax - layer.input.zero_point)
        worst = np.abs(b).astype(object) + x_abs * np.abs(
            w.reshape(-1, channels)).sum(axis=0).astype(object)
        if channels and max(worst) > hi32:
            raise AccelError(f"{where}: the accumulator can reach {max(worst):,}, beyond int32 "
                             f"(bias or weights too large for the layer)")
    lo, hi = layer.output.qmin, layer.output.qmax
    if r.zero_point != layer.output.zero_point:
        raise AccelError(f"{where}: requant zero_point {r.zero_point} differs from the output "
                         f"zero_point {layer.output.zero_point}")
    if not lo <= r.act_min <= r.act_max <= hi:
        raise AccelError(f"{where}: clamp [{r.act_min}, {r.act_max}] is not within the output "
                         f"type [{lo}, {hi}]")
