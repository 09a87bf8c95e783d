"""A network spec: an input shape and a chain of layers, with its shape inference.

:class:`Network` is the first of the four typed stages (spec -> quantized network -> hardware
plan -> Amaranth top). Constructing one names unnamed layers the way Keras does and runs the
shape inference, so a ``Network`` that exists is a network whose every layer is well-formed;
:attr:`Network.infos` then holds each layer's shapes, parameters and MACs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..errors import AccelError
from .layers import Inferred, Layer, keras_base_name

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerInfo:
    """One layer of an inferred network.

    Members
    -------
    index : int
        Position in the network, from 0.
    layer : Layer
        The (named) layer spec.
    input_shape : tuple of int
        Shape of the layer's input, without the batch dimension.
    inferred : Inferred
        Output shape, params, MACs, kernel shape and window geometry.
    """

    index: int
    layer: Layer
    input_shape: Shape
    inferred: Inferred

    @property
    def name(self) -> str:
        return self.layer.name  # type: ignore[return-value]

    @property
    def type_name(self) -> str:
        return self.layer.type_name

    @property
    def output_shape(self) -> Shape:
        return self.inferred.output_shape

    @property
    def params(self) -> int:
        return self.inferred.params

    @property
    def macs(self) -> int:
        return self.inferred.macs

    def where(self) -> str:
        """How error messages name this layer: ``layer 2 (conv2d_1, Conv2D)``."""
        return f"layer {self.index} ({self.name}, {self.type_name})"


def _check_input_shape(shape: object) -> Shape:
    if not isinstance(shape, (list, tuple)) or len(shape) not in (1, 3):
        raise AccelError(
            f"input must be [height, width, channels] or [features], not {shape!r}"
        )
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise AccelError(f"input sizes must be positive integers, not {list(shape)!r}")
    return tuple(shape)


@dataclass(frozen=True)
class Network:
    """A chain of layers on an input of shape ``input_shape`` (no batch dimension).

    Raises :class:`AccelError` (one line, naming the layer by index, name and type) when the
    network is empty, names repeat, a layer does not fit its input, or ``softmax`` appears
    anywhere but on the last layer.
    """

    name: str
    input_shape: Shape
    layers: tuple[Layer, ...]

    def __post_init__(self):
        object.__setattr__(self, "input_shape", _check_input_shape(self.input_shape))
        if not isinstance(self.name, str) or not self.name:
            raise AccelError(f"name must be a non-empty string, not {self.name!r}")
        layers = tuple(self.layers)
        if not layers:
            raise AccelError("the network has no layers")
        object.__setattr__(self, "layers", _name_layers(layers))
        self.infos  # noqa: B018 - validate eagerly: a Network that exists is well-formed

    @cached_property
    def infos(self) -> tuple[LayerInfo, ...]:
        """Per-layer shapes, params and MACs: the one shape inference of the project."""
        infos = []
        shape = self.input_shape
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            where = f"layer {index} ({layer.name}, {layer.type_name})"
            if layer.activation_name == "softmax" and index != last:
                raise AccelError(
                    f"{where}: activation 'softmax' is only supported on the last layer"
                )
            try:
                inferred = layer.infer(shape)
            except (ValueError, TypeError) as e:
                raise AccelError(f"{where}: {e}") from None
            infos.append(LayerInfo(index, layer, shape, inferred))
            shape = inferred.output_shape
        return tuple(infos)

    @property
    def output_shape(self) -> Shape:
        return self.infos[-1].output_shape

    @property
    def total_params(self) -> int:
        return sum(info.params for info in self.infos)

    @property
    def total_macs(self) -> int:
        return sum(info.macs for info in self.infos)

    @property
    def ends_with_softmax(self) -> bool:
        """The last layer applies softmax; the hardware returns the logits before it."""
        return self.layers[-1].activation_name == "softmax"

    def find(self, key: str | int) -> LayerInfo:
        """A layer by index (int or decimal string) or by name; ``AccelError`` if absent."""
        if isinstance(key, int) or (isinstance(key, str) and key.lstrip("-").isdigit()):
            index = int(key)
            if not 0 <= index < len(self.infos):
                raise AccelError(
                    f"layer index {index} is out of range: {self.name} has layers "
                    f"0..{len(self.infos) - 1}"
                )
            return self.infos[index]
        for info in self.infos:
            if info.name == key:
                return info
        names = ", ".join(info.name for info in self.infos)
        raise AccelError(f"no layer named {key!r} in {self.name} (layers: {names})")


def _name_layers(layers: tuple[Layer, ...]) -> tuple[Layer, ...]:
    """Give unnamed layers Keras's default names (conv2d, conv2d_1, ...); reject duplicates.

    Keras counts per base name across the model, skipping names the user already took.
    """
    taken = {layer.name for layer in layers if layer.name is not None}
    counters: dict[str, int] = {}
    named = []
    for index, layer in enumerate(layers):
        if layer.name is not None:
            if not isinstance(layer.name, str) or not layer.name:
                raise AccelError(
                    f"layer {index} ({layer.type_name}): name must be a non-empty string, "
                    f"not {layer.name!r}"
                )
            named.append(layer)
            continue
        base = keras_base_name(layer.type_name)
        while True:
            n = counters.get(base, 0)
            counters[base] = n + 1
            candidate = base if n == 0 else f"{base}_{n}"
            if candidate not in taken:
                break
        taken.add(candidate)
        named.append(layer.with_name(candidate))
    seen: dict[str, int] = {}
    for index, layer in enumerate(named):
        if layer.name in seen:
            raise AccelError(
                f"layer {index} ({layer.name}, {layer.type_name}): name {layer.name!r} is "
                f"already used by layer {seen[layer.name]}"
            )
        seen[layer.name] = index
    return tuple(named)

