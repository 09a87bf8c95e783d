"""Layer specs: frozen dataclasses with Keras's argument names and Keras's defaults.

A spec says what a layer computes in real numbers; it holds no weights. Every layer validates
its own arguments on construction (raising ``ValueError``/``TypeError`` that names the field and
the value) and knows its own shape arithmetic through :meth:`infer`, which uses
:mod:`accel.spec.shapes` for everything that slides a window.

Supported: Conv2D, DepthwiseConv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
ZeroPadding2D, Flatten, Reshape (only as a flatten), Dense, ReLU, Activation, Dropout (identity
at inference), BatchNormalization (kept in the spec, folded into the preceding
Conv2D/DepthwiseConv2D/Dense when quantizing), and the merge layers Add and Concatenate
(channel axis), which take two or more inputs. Pooling and padding may appear anywhere (after
the input, a pool, an Add). Every layer may name its inputs (``inputs``: layer names, or
``input`` for the model input); :class:`~accel.spec.network.Network` fills in the default, the
previous layer.
Data layout is channels-last (NHWC) throughout, as in Keras and TFLite.

Dense on a rank-3 input is rejected rather than applied per position as Keras would: the
per-position form is a 1x1 convolution, and saying so explicitly avoids the classic mistake of a
missing Flatten silently producing a (7, 7, 128) tensor where a vector was meant.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import ClassVar

from .shapes import PADDINGS, Window2D, window_2d

#: Activations a layer may carry. ``softmax`` is recorded (on the last layer only); the hardware
#: returns the logits before it.
ACTIVATIONS = ("linear", "relu", "relu6", "softmax")

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Inferred:
    """What one layer does to a tensor: the result of :meth:`Layer.infer`.

    Members
    -------
    output_shape : tuple of int
        Output shape without the batch dimension.
    params : int
        Parameter count exactly as Keras reports it (trainable and non-trainable).
    non_trainable : int
        The part of ``params`` Keras calls non-trainable (BatchNormalization's moving stats).
    macs : int
        Multiply-accumulates for one input (0 for layers that do none).
    kernel_shape : tuple of int or None
        Keras kernel shape: ``(kh, kw, cin, filters)`` for Conv2D, ``(in, units)`` for Dense.
    window : Window2D or None
        Sliding-window geometry (Conv2D and MaxPooling2D).
    """

    output_shape: Shape
    params: int = 0
    non_trainable: int = 0
    macs: int = 0
    kernel_shape: Shape | None = None
    window: Window2D | None = None


def _positive_int(field_name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{field_name} must be a positive integer, not {value!r}")
    return value


def _pair(field_name: str, value: object) -> tuple[int, int]:
    """Keras accepts ``3`` or ``[3, 3]`` (or a tuple) for sizes and strides."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(
                f"{field_name} must be a positive integer or a pair of them, not {value!r}"
            )
        items = tuple(value)
    else:
        items = (value, value)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise ValueError(
                f"{field_name} must be a positive integer or a pair of them, not {value!r}"
            )
    return items  # type: ignore[return-value]


def _choice(field_name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        options = ", ".join(choices)
        raise ValueError(f"{field_name} must be one of {options}, not {value!r}")
    return value.lower()


def _bool(field_name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{field_name} must be true or false, not {value!r}")
    return value


def _activation(value: object) -> str:
    # Keras writes no activation as None or "linear".
    return "linear" if value is None else _choice("activation", value, ACTIVATIONS)


def _require_rank(layer: Layer, shape: Shape, rank: int) -> None:
    if len(shape) != rank:
        what = {1: "a vector (h*w*c,)", 3: "an image (h, w, c)"}[rank]
        hint = ""
        if isinstance(layer, Dense) and len(shape) == 3:
            hint = (
                "; Keras would apply it per position: insert Flatten before it, or use "
                "Conv2D(kernel_size=1) for a per-position layer"
            )
        raise ValueError(f"{layer.type_name} needs {what} input, got {shape}{hint}")


def _window(input_shape: Shape, field_name: str, size, strides, padding: str) -> Window2D:
    """The sliding window of a conv or pool over an (h, w, c) input; an impossible window is a
    ``ValueError`` naming the size field."""
    try:
        return window_2d(input_shape[:2], size, strides, padding)
    except ValueError as e:
        raise ValueError(f"{field_name} {size}: {e}") from None


def _normalize_kernel_fields(layer: Layer) -> None:
    """Validates and normalizes the fields Conv2D and DepthwiseConv2D share."""
    object.__setattr__(layer, "kernel_size", _pair("kernel_size", layer.kernel_size))
    object.__setattr__(layer, "strides", _pair("strides", layer.strides))
    object.__setattr__(layer, "padding", _choice("padding", layer.padding, PADDINGS))
    object.__setattr__(layer, "activation", _activation(layer.activation))
    _bool("use_bias", layer.use_bias)


def _input_names(value: object) -> tuple[str, ...]:
    """``inputs`` as given in a spec: a non-empty list of layer names (or ``input``)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(item, str) and item for item in value):
        raise ValueError(f"inputs must be a non-empty list of layer names, not {value!r}")
    return tuple(value)


def keras_base_name(type_name: str) -> str:
    """Keras's default layer name for a class: ``MaxPooling2D`` -> ``max_pooling2d``."""
    # Keras 3 (keras.src.utils.naming.to_snake_case): split before capitals, lower-case.
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


@dataclass(frozen=True)
class Layer:
    """Base of all layer specs. ``name`` is filled in Keras-style by the network if omitted."""

    type_name: ClassVar[str] = "Layer"
    #: How many inputs the layer takes: 1, or ``None`` for a merge layer (two or more).
    arity: ClassVar[int | None] = 1

    def __post_init__(self):
        inputs = getattr(self, "inputs", None)
        if inputs is not None:
            object.__setattr__(self, "inputs", _input_names(inputs))

    def infer(self, input_shape: Shape) -> Inferred:  # pragma: no cover - abstract
        raise NotImplementedError

    def infer_inputs(self, input_shapes: tuple[Shape, ...]) -> Inferred:
        """Shape inference on all inputs. Single-input layers check that there is exactly one
        and call :meth:`infer`; merge layers override this. Raises ``ValueError``."""
        if len(input_shapes) != 1:
            raise ValueError(f"inputs: {self.type_name} takes one input, not "
                             f"{len(input_shapes)}")
        return self.infer(input_shapes[0])

    @property
    def activation_name(self) -> str:
        """The activation applied at this layer's output (``linear`` if none)."""
        return "linear"

    def with_name(self, name: str) -> Layer:
        return dataclasses.replace(self, name=name)


@dataclass(frozen=True)
class Conv2D(Layer):
    """2-D convolution, channels-last. Kernel shape ``(kh, kw, cin, filters)``.

    Each output channel ``f`` sums a ``kh x kw`` convolution over *all* input channels, plus
    ``bias[f]``; there are ``filters`` output channels, never ``filters * cin``.
    """

    filters: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: str = "valid"
    activation: str = "linear"
    use_bias: bool = True
    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "Conv2D"

    def __post_init__(self):
        super().__post_init__()
        _positive_int("filters", self.filters)
        _normalize_kernel_fields(self)

    @property
    def activation_name(self) -> str:
        return self.activation

    def infer(self, input_shape: Shape) -> Inferred:
        _require_rank(self, input_shape, 3)
        cin = input_shape[2]
        window = _window(input_shape, "kernel_size", self.kernel_size, self.strides, self.padding)
        kh, kw = self.kernel_size
        oh, ow = window.out_shape
        params = kh * kw * cin * self.filters + (self.filters if self.use_bias else 0)
        return Inferred(
            output_shape=(oh, ow, self.filters),
            params=params,
            macs=oh * ow * self.filters * kh * kw * cin,
            kernel_shape=(kh, kw, cin, self.filters),
            window=window,
        )


@dataclass(frozen=True)
class _Pooling2D(Layer):
    """What max and average pooling share: a window per channel; ``strides`` defaults to
    ``pool_size`` as in Keras."""

    pool_size: tuple[int, int] = (2, 2)
    strides: tuple[int, int] | None = None
    padding: str = "valid"
    name: str | None = None
    inputs: tuple[str, ...] | None = None

    def __post_init__(self):
        super().__post_init__()
        pool = _pair("pool_size", self.pool_size)
        object.__setattr__(self, "pool_size", pool)
        strides = pool if self.strides is None else _pair("strides", self.strides)
        object.__setattr__(self, "strides", strides)
        object.__setattr__(self, "padding", _choice("padding", self.padding, PADDINGS))

    def infer(self, input_shape: Shape) -> Inferred:
        _require_rank(self, input_shape, 3)
        window = _window(input_shape, "pool_size", self.pool_size, self.strides, self.padding)
        return Inferred(output_shape=(*window.out_shape, input_shape[2]), window=window)


@dataclass(frozen=True)
class MaxPooling2D(_Pooling2D):
    """Max pooling; ``strides`` defaults to ``pool_size`` as in Keras."""

    type_name: ClassVar[str] = "MaxPooling2D"


@dataclass(frozen=True)
class Flatten(Layer):
    """Reorders (h, w, c) into a vector of h*w*c in NHWC (row, column, channel) order."""

    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "Flatten"

    def infer(self, input_shape: Shape) -> Inferred:
        return Inferred(output_shape=(math.prod(input_shape),))


@dataclass(frozen=True)
class Dense(Layer):
    """Fully connected layer on a vector. Kernel shape ``(in, units)``."""

    units: int
    activation: str = "linear"
    use_bias: bool = True
    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "Dense"

    def __post_init__(self):
        super().__post_init__()
        _positive_int("units", self.units)
        object.__setattr__(self, "activation", _activation(self.activation))
        _bool("use_bias", self.use_bias)

    @property
    def activation_name(self) -> str:
        return self.activation

    def infer(self, input_shape: Shape) -> Inferred:
        _require_rank(self, input_shape, 1)
        (n,) = input_shape
        return Inferred(
            output_shape=(self.units,),
            params=n * self.units + (self.units if self.use_bias else 0),
            macs=n * self.units,
            kernel_shape=(n, self.units),
        )


@dataclass(frozen=True)
class ReLU(Layer):
    """Keras's ReLU layer: ``min(max(x, 0), max_value)``. Only the plain form is supported
    (``negative_slope`` and ``threshold`` zero) because that is what int8 hardware fuses as a
    clamp."""

    max_value: float | None = None
    negative_slope: float = 0.0
    threshold: float = 0.0
    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "ReLU"

    def __post_init__(self):
        super().__post_init__()
        mv = self.max_value
        if mv is not None and (
            isinstance(mv, bool) or not isinstance(mv, (int, float)) or not mv > 0
        ):
            raise ValueError(f"max_value must be a positive number or null, not {mv!r}")
        for name in ("negative_slope", "threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != 0:
                raise ValueError(f"{name} must be 0 (leaky/thresholded ReLU is not supported), "
                                 f"not {value!r}")

    @property
    def activation_name(self) -> str:
        if self.max_value is None:
            return "relu"
        return "relu6" if self.max_value == 6 else f"relu(max={self.max_value:g})"

    def infer(self, input_shape: Shape) -> Inferred:
        return Inferred(output_shape=input_shape)


@dataclass(frozen=True)
class Activation(Layer):
    """Keras's Activation layer with one of :data:`ACTIVATIONS`."""

    activation: str
    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "Activation"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "activation", _activation(self.activation))

    @property
    def activation_name(self) -> str:
        return self.activation

    def infer(self, input_shape: Shape) -> Inferred:
        return Inferred(output_shape=input_shape)


@dataclass(frozen=True)
class Dropout(Layer):
    """Dropout: the identity at inference."""

    rate: float
    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "Dropout"

    def __post_init__(self):
        super().__post_init__()
        r = self.rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1:
            raise ValueError(f"rate must be a number in [0, 1), not {r!r}")

    def infer(self, input_shape: Shape) -> Inferred:
        return Inferred(output_shape=input_shape)


@dataclass(frozen=True)
class BatchNormalization(Layer):
    """Batch normalization over the channel (last) axis; folded into the preceding Conv2D or
    Dense when quantizing. Keras counts gamma, beta, moving mean and moving variance as
    parameters (the last two non-trainable)."""

    axis: int = -1
    momentum: float = 0.99
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "BatchNormalization"

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise TypeError(f"axis must be an integer, not {self.axis!r}")
        eps = self.epsilon
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"epsilon must be a positive number, not {eps!r}")
        _bool("center", self.center)
        _bool("scale", self.scale)

    def infer(self, input_shape: Shape) -> Inferred:
        rank = len(input_shape)
        if self.axis not in (-1, rank):
            raise ValueError(
                f"axis must be the channel axis (-1 or {rank}), not {self.axis!r}"
            )
        channels = input_shape[-1]
        per_channel = 2 + int(self.center) + int(self.scale)
        return Inferred(
            output_shape=input_shape, params=per_channel * channels, non_trainable=2 * channels
        )


@dataclass(frozen=True)
class DepthwiseConv2D(Layer):
    """Depthwise 2-D convolution: each input channel ``c`` is convolved with its own
    ``depth_multiplier`` kernels, giving output channels ``c * depth_multiplier + j`` (Keras's
    and TFLite's order). Kernel shape ``(kh, kw, cin, depth_multiplier)``; no sum over input
    channels, so a layer does ``kh * kw`` MACs per output element."""

    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: str = "valid"
    depth_multiplier: int = 1
    activation: str = "linear"
    use_bias: bool = True
    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "DepthwiseConv2D"

    def __post_init__(self):
        super().__post_init__()
        _normalize_kernel_fields(self)
        _positive_int("depth_multiplier", self.depth_multiplier)

    @property
    def activation_name(self) -> str:
        return self.activation

    def infer(self, input_shape: Shape) -> Inferred:
        _require_rank(self, input_shape, 3)
        cin = input_shape[2]
        window = _window(input_shape, "kernel_size", self.kernel_size, self.strides, self.padding)
        kh, kw = self.kernel_size
        oh, ow = window.out_shape
        cout = cin * self.depth_multiplier
        return Inferred(
            output_shape=(oh, ow, cout),
            params=kh * kw * cout + (cout if self.use_bias else 0),
            macs=oh * ow * cout * kh * kw,
            kernel_shape=(kh, kw, cin, self.depth_multiplier),
            window=window,
        )


@dataclass(frozen=True)
class AveragePooling2D(_Pooling2D):
    """Average pooling; ``strides`` defaults to ``pool_size`` as in Keras. With ``same``
    padding an edge window averages only its in-image values (Keras and TFLite alike)."""

    type_name: ClassVar[str] = "AveragePooling2D"


@dataclass(frozen=True)
class GlobalAveragePooling2D(Layer):
    """The mean over height and width per channel: ``(c,)``, or ``(1, 1, c)`` with
    ``keepdims`` (TFLite: MEAN over axes 1 and 2)."""

    keepdims: bool = False
    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "GlobalAveragePooling2D"

    def __post_init__(self):
        super().__post_init__()
        _bool("keepdims", self.keepdims)

    def infer(self, input_shape: Shape) -> Inferred:
        _require_rank(self, input_shape, 3)
        c = input_shape[-1]
        return Inferred(output_shape=(1, 1, c) if self.keepdims else (c,))


def _zero_padding(value: object) -> tuple[tuple[int, int], tuple[int, int]]:
    """Keras's forms: ``p``, ``(ph, pw)`` or ``((top, bottom), (left, right))``, each >= 0."""
    message = (f"padding must be an integer >= 0, a pair of them, or ((top, bottom), (left, "
               f"right)), not {value!r}")

    def count(v: object) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(message)
        return v

    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(message)
        if all(isinstance(v, (list, tuple)) for v in value):
            if any(len(v) != 2 for v in value):
                raise ValueError(message)
            return ((count(value[0][0]), count(value[0][1])),
                    (count(value[1][0]), count(value[1][1])))
        ph, pw = count(value[0]), count(value[1])
        return ((ph, ph), (pw, pw))
    p = count(value)
    return ((p, p), (p, p))


@dataclass(frozen=True)
class ZeroPadding2D(Layer):
    """Pads height and width with zeros (TFLite PAD: with the zero point).
    ``padding`` is kept as ``((top, bottom), (left, right))``."""

    padding: tuple[tuple[int, int], tuple[int, int]] = ((1, 1), (1, 1))
    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "ZeroPadding2D"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "padding", _zero_padding(self.padding))

    def infer(self, input_shape: Shape) -> Inferred:
        _require_rank(self, input_shape, 3)
        h, w, c = input_shape
        (top, bottom), (left, right) = self.padding
        return Inferred(output_shape=(h + top + bottom, w + left + right, c))


@dataclass(frozen=True)
class Reshape(Layer):
    """Keras's Reshape, only where it flattens: ``target_shape`` must be ``(n,)`` with ``n``
    the input's element count, or ``(-1,)``; the result is :class:`Flatten`'s NHWC order."""

    target_shape: tuple[int, ...]
    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "Reshape"

    def __post_init__(self):
        super().__post_init__()
        shape = self.target_shape
        if not isinstance(shape, (list, tuple)) or len(shape) != 1 or isinstance(
                shape[0], bool) or not isinstance(shape[0], int) or not (
                shape[0] == -1 or shape[0] >= 1):
            raise ValueError(f"target_shape must be [n] or [-1] (only a flatten is supported), "
                             f"not {shape!r}")
        object.__setattr__(self, "target_shape", tuple(shape))

    def infer(self, input_shape: Shape) -> Inferred:
        n = math.prod(input_shape)
        if self.target_shape[0] not in (-1, n):
            raise ValueError(f"target_shape {list(self.target_shape)} does not flatten "
                             f"{input_shape} ({n} elements); only a flatten is supported")
        return Inferred(output_shape=(n,))


def _merge_count(layer: Layer, input_shapes: tuple[Shape, ...]) -> None:
    if len(input_shapes) < 2:
        raise ValueError(f"inputs: {layer.type_name} needs at least two inputs, not "
                         f"{len(input_shapes)}")


def _shapes_text(input_shapes: tuple[Shape, ...]) -> str:
    return ", ".join(map(str, input_shapes))


@dataclass(frozen=True)
class Add(Layer):
    """Element-wise sum of two or more inputs of the same shape (Keras's ``Add``).

    Keras would also broadcast sizes of 1; that is refused here, because the hardware adds two
    streams of equal shape element by element. No parameters, no MACs (additions only).
    """

    #: Not a Keras argument: the clamp TFLite fuses into ADD (a ReLU after the Add in Keras).
    activation: str = "linear"
    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "Add"
    arity: ClassVar[int | None] = None

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "activation", _activation(self.activation))
        if self.activation == "softmax":
            raise ValueError("activation must be one of linear, relu, relu6 on an Add, not "
                             "'softmax'")

    @property
    def activation_name(self) -> str:
        return self.activation

    def infer_inputs(self, input_shapes: tuple[Shape, ...]) -> Inferred:
        _merge_count(self, input_shapes)
        if len(set(input_shapes)) != 1:
            raise ValueError(f"inputs: shapes {_shapes_text(input_shapes)} cannot be added "
                             f"(Add needs equal shapes)")
        return Inferred(output_shape=input_shapes[0])


@dataclass(frozen=True)
class Concatenate(Layer):
    """Concatenation of two or more inputs along the channel (last) axis (Keras's
    ``Concatenate``, ``axis=-1``). All other sizes must agree; no parameters, no MACs."""

    axis: int = -1
    name: str | None = None
    inputs: tuple[str, ...] | None = None
    type_name: ClassVar[str] = "Concatenate"
    arity: ClassVar[int | None] = None

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise TypeError(f"axis must be an integer, not {self.axis!r}")

    def infer_inputs(self, input_shapes: tuple[Shape, ...]) -> Inferred:
        _merge_count(self, input_shapes)
        rank = len(input_shapes[0])
        if self.axis not in (-1, rank):
            raise ValueError(f"axis must be the channel axis (-1 or {rank}), not {self.axis!r}")
        if any(len(shape) != rank or shape[:-1] != input_shapes[0][:-1]
               for shape in input_shapes):
            raise ValueError(f"inputs: shapes {_shapes_text(input_shapes)} cannot be "
                             f"concatenated on the channel axis (all other sizes must be equal)")
        channels = sum(shape[-1] for shape in input_shapes)
        return Inferred(output_shape=(*input_shapes[0][:-1], channels))


#: Every layer type a spec may name, by its Keras class name.
LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type_name: cls
    for cls in (Conv2D, DepthwiseConv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
                ZeroPadding2D, Flatten, Reshape, Dense, ReLU, Activation, Dropout,
                BatchNormalization, Add, Concatenate)
}

#: Fields every layer accepts besides its own (used by the loaders to reject unknown fields).
COMMON_FIELDS = ("name", "inputs")


def layer_fields(cls: type[Layer]) -> dict[str, dataclasses.Field]:
    """The constructor fields of a layer class, by name."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def required_fields(cls: type[Layer]) -> list[str]:
    return [
        name
        for name, f in layer_fields(cls).items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


__all__ = [
    "ACTIVATIONS", "Activation", "Add", "AveragePooling2D", "BatchNormalization", "Concatenate",
    "Conv2D", "Dense", "DepthwiseConv2D", "Dropout", "Flatten", "GlobalAveragePooling2D",
    "Inferred", "LAYER_TYPES", "Layer", "MaxPooling2D", "ReLU", "Reshape", "ZeroPadding2D",
    "keras_base_name",
    "layer_fields", "required_fields",
]
