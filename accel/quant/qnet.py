"""The quantized network: the second typed stage (spec -> **quantized network** -> plan -> HW).

A :class:`QuantizedNetwork` holds, per compute layer, the integer weights, int32 biases, scales
and zero points, requantization parameters and the activation clamp: everything the golden
model (:mod:`accel.quant.golden`) and the hardware generator need, and nothing float that they
would have to re-derive. Layers are plain frozen dataclasses; the spec-level geometry (kernel,
strides, padding) stays in the :class:`~accel.spec.Network` built from them, so shape math is
never repeated here.

Layer kinds (the operators of the golden model):

- :class:`QConv2D`, :class:`QDense`: ``acc = bias + sum (x - zp_in) * w``, then the layer's
  :class:`Requant` to the output format.
- :class:`QMaxPool2D`: exact max over the window (padding ignored), clamped to ``act`` range.
- :class:`QFlatten`: NHWC reordering.
- :class:`QDepthwiseConv2D`: TFLite's DEPTHWISE_CONV_2D (per-channel multipliers), weights in
  Keras's layout ``(kh, kw, cin, depth_multiplier)``, then the layer's :class:`Requant`.
- :class:`QAvgPool2D`: TFLite's AVERAGE_POOL_2D (the rounded mean of the in-image codes).
- :class:`QMean`: TFLite's MEAN over H and W (global average pooling), with its multiplier.
- :class:`QPad`: TFLite's PAD: codes copied, the border filled with the output zero point.
- :class:`QAdd`: TFLite's int8 ADD of two inputs with their own scales (``input`` and
  ``input2``), its integer parameters stored, the fused activation as a clamp.
- :class:`QConcatenate`: TFLite's int8 CONCATENATION on channels: a copy, only when every
  input is quantized exactly like the output.
- :class:`QSoftmax`: TFLite's int8 softmax (output scale 1/256, zero point -128). Not in
  hardware: the accelerator returns the logits that feed it.

Layers are in file order and name the tensors they read (``inputs``), as in the spec network.

Saved as one ``.npz`` (``np.savez``, loaded with ``allow_pickle=False``): arrays under
``"<layer>/<field>"`` and a JSON manifest string under ``"__manifest__"``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import AccelError
from ..spec import (
    INPUT,
    Activation,
    Add,
    AveragePooling2D,
    Concatenate,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAveragePooling2D,
    Layer,
    MaxPooling2D,
    Network,
    ZeroPadding2D,
)
from . import numerics
from .requant_mode import RequantMode

SCHEMES = ("tflite-int8", "pow2")
MANIFEST_KEY = "__manifest__"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class QuantParams:
    """``real = scale * (q - zero_point)`` for a per-tensor quantized activation of ``bits``
    signed bits. For the pow2 scheme ``scale`` is ``2**-frac_bits`` and ``zero_point`` 0."""

    scale: float
    zero_point: int
    bits: int = 8

    def __post_init__(self):
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise AccelError(f"scale must be a finite positive number, not {self.scale!r}")
        lo, hi = numerics.int_range(self.bits)
        if not lo <= self.zero_point <= hi:
            raise AccelError(f"zero_point {self.zero_point} is outside int{self.bits}")

    @property
    def qmin(self) -> int:
        return numerics.int_range(self.bits)[0]

    @property
    def qmax(self) -> int:
        return numerics.int_range(self.bits)[1]

    def to_json(self) -> dict:
        return {"scale": float(self.scale), "zero_point": int(self.zero_point),
                "bits": int(self.bits)}

    @classmethod
    def from_json(cls, d: dict) -> QuantParams:
        return cls(scale=float(d["scale"]), zero_point=int(d["zero_point"]),
                   bits=int(d.get("bits", 8)))


#: Requantization rules a quantizer produces (:class:`RequantMode`; ``wide`` is the planner's
#: integer stand-in for ``float``). ``tflite``: TFLite's fixed-point Q31 multiplier and shift
#: (conv and pre-2.20 dense; ``multiplier`` is accepted as its old name); ``float``: TFLite's
#: FULLY_CONNECTED reference since 2.20, round(acc * scale) in double; ``pow2``: rounding right
#: shift by ``shift`` (no multiplier).
REQUANT_MODES = (RequantMode.TFLITE, RequantMode.FLOAT, RequantMode.POW2)


@dataclass(frozen=True, eq=False)
class Requant:
    """How an int accumulator becomes an output value, per output channel.

    Members
    -------
    mode : RequantMode
        One of :data:`REQUANT_MODES` (a string is converted).
    multiplier, shift : numpy.ndarray of int64, shape (channels,)
        ``tflite`` mode: Q31 multiplier and TFLite shift (positive = left). ``pow2`` mode:
        ``shift`` is the right shift and ``multiplier`` is unused (ones).
    scale : numpy.ndarray of float64, shape (channels,)
        The real effective scale ``s_in * s_w / s_out`` (``float`` mode uses it directly).
    zero_point : int
        Output zero point.
    act_min, act_max : int
        Output clamp (the fused activation).
    """

    mode: str
    multiplier: np.ndarray
    shift: np.ndarray
    scale: np.ndarray
    zero_point: int
    act_min: int
    act_max: int

    def __post_init__(self):
        try:
            mode = RequantMode.parse(self.mode)
        except ValueError:
            mode = None
        if mode not in REQUANT_MODES:
            raise AccelError(f"requant mode must be one of {', '.join(REQUANT_MODES)}, "
                             f"not {self.mode!r}")
        object.__setattr__(self, "mode", mode)
        if self.act_min > self.act_max:
            raise AccelError(f"act_min {self.act_min} is above act_max {self.act_max}")


@dataclass(frozen=True, eq=False)
class QLayer:
    """Base of quantized layers: a name, the input and output quantization, and the names of
    the tensors the layer reads (``inputs``: layer names or ``"input"``, the model input;
    ``None`` means the previous layer, and the :class:`QuantizedNetwork` fills it in)."""

    kind: ClassVar[str] = ""
    name: str
    input: QuantParams
    output: QuantParams
    inputs: tuple[str, ...] | None = None

    def spec(self) -> Layer:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class QConv2D(QLayer):
    """Convolution with integer ``weights`` of shape ``(kh, kw, cin, filters)`` (Keras HWIO)
    and int ``bias`` of shape ``(filters,)``; ``weight_scale`` per output channel (length 1 for
    per-tensor)."""

    kind: ClassVar[str] = "conv2d"
    weights: np.ndarray = field(default=None)
    bias: np.ndarray = field(default=None)
    weight_scale: np.ndarray = field(default=None)
    weight_bits: int = 8
    strides: tuple[int, int] = (1, 1)
    padding: str = "valid"
    requant: Requant = field(default=None)
    activation: str = "linear"

    def spec(self) -> Layer:
        kh, kw, _, filters = self.weights.shape
        return Conv2D(filters=filters, kernel_size=(kh, kw), strides=self.strides,
                      padding=self.padding, activation=_spec_activation(self.activation),
                      name=self.name, inputs=self.inputs)


@dataclass(frozen=True, eq=False)
class QDense(QLayer):
    """Fully connected layer with integer ``weights`` of shape ``(in, units)``."""

    kind: ClassVar[str] = "dense"
    weights: np.ndarray = field(default=None)
    bias: np.ndarray = field(default=None)
    weight_scale: np.ndarray = field(default=None)
    weight_bits: int = 8
    requant: Requant = field(default=None)
    activation: str = "linear"

    def spec(self) -> Layer:
        return Dense(units=self.weights.shape[1], activation=_spec_activation(self.activation),
                     name=self.name, inputs=self.inputs)


@dataclass(frozen=True, eq=False)
class _QPool2D(QLayer):
    """What the max and average pools share: the window and the output clamp."""

    pool_size: tuple[int, int] = (2, 2)
    strides: tuple[int, int] = (2, 2)
    padding: str = "valid"
    act_min: int = -128
    act_max: int = 127
    #: The spec layer class this pool is the integer form of.
    spec_class: ClassVar[type[Layer]]

    def spec(self) -> Layer:
        return self.spec_class(pool_size=self.pool_size, strides=self.strides,
                               padding=self.padding, name=self.name, inputs=self.inputs)


@dataclass(frozen=True, eq=False)
class QMaxPool2D(_QPool2D):
    """Max pooling; output quantization equals the input's; ``act_min``/``act_max`` clamp."""

    kind: ClassVar[str] = "max_pool2d"
    spec_class: ClassVar[type[Layer]] = MaxPooling2D


@dataclass(frozen=True, eq=False)
class QFlatten(QLayer):
    """NHWC flatten."""

    kind: ClassVar[str] = "flatten"

    def spec(self) -> Layer:
        return Flatten(name=self.name, inputs=self.inputs)


@dataclass(frozen=True, eq=False)
class QSoftmax(QLayer):
    """TFLite int8 softmax over the last axis with ``beta``."""

    kind: ClassVar[str] = "softmax"
    beta: float = 1.0

    def spec(self) -> Layer:
        return Activation(activation="softmax", name=self.name, inputs=self.inputs)


@dataclass(frozen=True, eq=False)
class QDepthwiseConv2D(QLayer):
    """Depthwise convolution with integer ``weights`` of shape ``(kh, kw, cin, m)`` (Keras's
    layout; output channel ``c * m + j`` uses ``weights[..., c, j]``), int ``bias`` of shape
    ``(cin * m,)`` and ``weight_scale`` per output channel (length 1 for per-tensor)."""

    kind: ClassVar[str] = "depthwise_conv2d"
    weights: np.ndarray = field(default=None)
    bias: np.ndarray = field(default=None)
    weight_scale: np.ndarray = field(default=None)
    weight_bits: int = 8
    strides: tuple[int, int] = (1, 1)
    padding: str = "valid"
    requant: Requant = field(default=None)
    activation: str = "linear"

    def spec(self) -> Layer:
        kh, kw, _, m = self.weights.shape
        return DepthwiseConv2D(kernel_size=(kh, kw), strides=self.strides, padding=self.padding,
                               depth_multiplier=m, activation=_spec_activation(self.activation),
                               name=self.name, inputs=self.inputs)


@dataclass(frozen=True, eq=False)
class QAvgPool2D(_QPool2D):
    """Average pooling (TFLite AVERAGE_POOL_2D): the mean of the in-image codes rounded half
    away from zero, clamped to ``act_min``/``act_max``; no requantization (the codes are
    written under ``output``, which TFLite expects to equal ``input``)."""

    kind: ClassVar[str] = "avg_pool2d"
    spec_class: ClassVar[type[Layer]] = AveragePooling2D


@dataclass(frozen=True, eq=False)
class QMean(QLayer):
    """Global average pooling (TFLite MEAN over H and W): ``multiplier``/``shift`` is
    ``QuantizeMultiplier(s_in / s_out)``, into which the kernel folds ``1 / (H * W)``."""

    kind: ClassVar[str] = "mean"
    multiplier: int = 0
    shift: int = 0
    keepdims: bool = False

    def spec(self) -> Layer:
        return GlobalAveragePooling2D(keepdims=self.keepdims, name=self.name,
                                      inputs=self.inputs)


@dataclass(frozen=True, eq=False)
class QPad(QLayer):
    """Zero padding (TFLite PAD): ``padding`` is ``((top, bottom), (left, right))``; padded
    elements take the *output* zero point, the codes are copied."""

    kind: ClassVar[str] = "pad"
    padding: tuple[tuple[int, int], tuple[int, int]] = ((1, 1), (1, 1))

    def spec(self) -> Layer:
        return ZeroPadding2D(padding=self.padding, name=self.name, inputs=self.inputs)


@dataclass(frozen=True, eq=False)
class QAdd(QLayer):
    """TFLite's int8 ADD of two inputs: ``input`` and ``input2`` are their quantizations;
    ``left_shift`` and the three multiplier/shift pairs are ``add.cc``'s (see
    :func:`accel.quant.tflite_kernels.add_params`); ``act_min``/``act_max`` the fused
    activation's clamp."""

    kind: ClassVar[str] = "add"
    input2: QuantParams = field(default=None)
    left_shift: int = 20
    input1_multiplier: int = 0
    input1_shift: int = 0
    input2_multiplier: int = 0
    input2_shift: int = 0
    output_multiplier: int = 0
    output_shift: int = 0
    act_min: int = -128
    act_max: int = 127
    activation: str = "linear"

    def spec(self) -> Layer:
        return Add(activation=_spec_activation(self.activation), name=self.name,
                   inputs=self.inputs)


@dataclass(frozen=True, eq=False)
class QConcatenate(QLayer):
    """Channel concatenation (TFLite int8 CONCATENATION): a copy; every input has the output's
    quantization (``input`` = ``output``), which the network checks against the producers."""

    kind: ClassVar[str] = "concatenate"

    def spec(self) -> Layer:
        return Concatenate(name=self.name, inputs=self.inputs)


def _spec_activation(activation: str) -> str:
    # The spec knows linear/relu/relu6; any other clamp (e.g. relu_n1_to_1 from TFLite) is
    # still exact in the requant range, so the spec records it as linear.
    return activation if activation in ("linear", "relu", "relu6") else "linear"


QLAYER_TYPES: dict[str, type[QLayer]] = {
    cls.kind: cls for cls in (QConv2D, QDense, QMaxPool2D, QFlatten, QSoftmax,
                              QDepthwiseConv2D, QAvgPool2D, QMean, QPad, QAdd, QConcatenate)
}


@dataclass(frozen=True, eq=False)
class QuantizedNetwork:
    """A quantized DAG of layers (see :class:`~accel.spec.Network`) on an int input.

    Members
    -------
    name : str
    scheme : str
        ``tflite-int8`` or ``pow2``.
    input_shape : tuple of int
        Without the batch dimension.
    input : QuantParams
        How real inputs are quantized.
    layers : tuple of QLayer
        In file order (a topological order); each names its ``inputs``.
    source : str
        Where it came from (a .tflite path, a Keras model + calibration, or a spec + seed).
    """

    name: str
    scheme: str
    input_shape: tuple[int, ...]
    input: QuantParams
    layers: tuple[QLayer, ...]
    source: str = ""

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise AccelError(f"scheme must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")
        # Shapes and inputs are validated once, by the spec's inference; the layers then carry
        # their resolved inputs (the default chain filled in).
        infos = self.network.infos
        object.__setattr__(self, "layers", tuple(
            layer if layer.inputs == info.inputs else dataclasses.replace(layer,
                                                                          inputs=info.inputs)
            for layer, info in zip(self.layers, infos, strict=True)))
        produced = {INPUT: self.input, **{layer.name: layer.output for layer in self.layers}}
        for layer, info in zip(self.layers, infos, strict=True):
            if isinstance(layer, QConcatenate):
                for k, source in enumerate(info.inputs):
                    q = produced[source]
                    if (np.float32(q.scale), q.zero_point) != (np.float32(layer.output.scale),
                                                               layer.output.zero_point):
                        raise AccelError(
                            f"{info.where()}: input {k} ({source}) is quantized (scale "
                            f"{q.scale:.6g}, zero point {q.zero_point}) unlike the output "
                            f"(scale {layer.output.scale:.6g}, zero point "
                            f"{layer.output.zero_point}); an int8 concatenation is exact only "
                            f"when they are equal")

    @property
    def network(self) -> Network:
        """The spec view of the quantized layers (names, shapes, windows, MACs)."""
        cached = self.__dict__.get("_network")
        if cached is None:
            cached = Network(self.name, self.input_shape,
                             tuple(layer.spec() for layer in self.layers))
            object.__setattr__(self, "_network", cached)
        return cached

    @property
    def output(self) -> QuantParams:
        return self.layers[-1].output

    def require_chain(self, where: str) -> None:
        """Raise a one-line ``AccelError`` prefixed with ``where`` unless every layer reads just
        the layer before it: for the stages that handle only chains so far (the planner)."""
        self.network.require_chain(where)

    @property
    def logits_layer(self) -> QLayer:
        """The last layer the hardware computes (the one a final softmax reads)."""
        last = self.layers[-1]
        if isinstance(last, QSoftmax) and last.inputs[0] != INPUT:
            return next(layer for layer in self.layers if layer.name == last.inputs[0])
        return last


# --- save / load ---------------------------------------------------------------------------------

_ARRAY_FIELDS = ("weights", "bias", "weight_scale")
_REQUANT_ARRAYS = ("multiplier", "shift", "scale")


#: Fields the manifest writes itself (or that are arrays); every other dataclass field of a
#: layer goes into its JSON entry by value (tuples as lists, QuantParams as objects).
_SPECIAL_FIELDS = ("name", "input", "output", "inputs", "requant", *_ARRAY_FIELDS)


def _to_json(value):
    if isinstance(value, QuantParams):
        return value.to_json()
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _from_json(value):
    if isinstance(value, dict) and "scale" in value:
        return QuantParams.from_json(value)
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    return value


def _layer_manifest(layer: QLayer, arrays: dict) -> dict:
    entry: dict = {"kind": layer.kind, "name": layer.name, "input": layer.input.to_json(),
                   "output": layer.output.to_json()}
    for f in dataclasses.fields(layer):
        if f.name not in _SPECIAL_FIELDS:
            entry[f.name] = _to_json(getattr(layer, f.name))
    for key in _ARRAY_FIELDS:
        if hasattr(layer, key):
            arrays[f"{layer.name}/{key}"] = np.asarray(getattr(layer, key))
    requant = getattr(layer, "requant", None)
    if requant is not None:
        entry["requant"] = {"mode": requant.mode, "zero_point": int(requant.zero_point),
                            "act_min": int(requant.act_min), "act_max": int(requant.act_max)}
        for key in _REQUANT_ARRAYS:
            arrays[f"{layer.name}/requant_{key}"] = np.asarray(getattr(requant, key))
    return entry


def save_quantized(qnet: QuantizedNetwork, path: str | Path) -> None:
    """Write ``qnet`` as an ``.npz`` of arrays plus a JSON manifest (no pickle)."""
    arrays: dict[str, np.ndarray] = {}
    manifest = {
        "format": "accel-quantized-network", "version": FORMAT_VERSION, "name": qnet.name,
        "scheme": qnet.scheme, "input_shape": list(qnet.input_shape),
        "input": qnet.input.to_json(), "source": qnet.source,
        "layers": [{**_layer_manifest(layer, arrays), "inputs": list(layer.inputs)}
                   for layer in qnet.layers],
    }
    arrays[MANIFEST_KEY] = np.array(json.dumps(manifest))
    write_npz(path, arrays)


def write_npz(path: str | Path, arrays: dict) -> None:
    """Write ``arrays`` to the ``.npz`` at ``path`` (see :func:`accel.io.archive.write_npz`:
    regular files only, the directory created, one-line errors)."""
    from ..io.archive import write_npz as write

    write(path, arrays)


def load_quantized(path: str | Path) -> QuantizedNetwork:
    """Read a file written by :func:`save_quantized`; errors are one line.

    The archive's structure is checked before anything is built and the network's numbers
    after (:mod:`accel.io.qnet_file`): a file that loads computes what it says."""
    from ..io.qnet_file import read_qnet_file, validate_qnet

    path = Path(path)
    manifest, arrays = read_qnet_file(path)
    try:
        layers = tuple(_layer_from_manifest(entry, arrays) for entry in manifest["layers"])
        qnet = QuantizedNetwork(
            name=manifest["name"], scheme=manifest["scheme"],
            input_shape=tuple(manifest["input_shape"]),
            input=QuantParams.from_json(manifest["input"]), layers=layers,
            source=manifest.get("source", ""),
        )
    except AccelError as e:
        raise AccelError(f"{path}: {e}") from None
    except (KeyError, ValueError, TypeError, OverflowError) as e:
        raise AccelError(f"{path}: malformed quantized network manifest: {e!r}") from None
    validate_qnet(qnet, str(path))
    return qnet


def _layer_from_manifest(entry: dict, arrays: dict) -> QLayer:
    if entry.get("kind") not in QLAYER_TYPES:
        raise ValueError(f"unknown layer kind {entry.get('kind')!r}")
    cls = QLAYER_TYPES[entry["kind"]]
    name = entry["name"]
    kwargs: dict = {"name": name, "input": QuantParams.from_json(entry["input"]),
                    "output": QuantParams.from_json(entry["output"])}
    # Files written before networks were graphs have no inputs: they are chains.
    for f in dataclasses.fields(cls):
        if f.name not in _SPECIAL_FIELDS and f.name in entry:
            kwargs[f.name] = _from_json(entry[f.name])
    if "inputs" in entry:
        kwargs["inputs"] = tuple(entry["inputs"])
    for key in _ARRAY_FIELDS:
        if f"{name}/{key}" in arrays:
            kwargs[key] = arrays[f"{name}/{key}"]
    if "requant" in entry:
        r = entry["requant"]
        kwargs["requant"] = Requant(
            mode=r["mode"], zero_point=r["zero_point"], act_min=r["act_min"],
            act_max=r["act_max"],
            **{key: arrays[f"{name}/requant_{key}"] for key in _REQUANT_ARRAYS},
        )
    return cls(**kwargs)
