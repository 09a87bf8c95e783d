"""A network spec: an input shape and a graph of layers in file order, with its shape inference.

:class:`Network` is the first of the four typed stages (spec -> quantized network -> hardware
plan -> Amaranth top). The network is a DAG of named tensors: each layer's output is the tensor
of the layer's name, the model input is the tensor :data:`INPUT`, and each layer names the
tensors it reads in ``inputs`` (default: the previous layer, or the model input for the first
layer, so a plain list of layers is a chain). Layers are kept in file order, which must be a
topological order: a layer may only read the input and layers before it. The last layer is the
model output, and every other layer's output must be read by some later layer.

Constructing one names unnamed layers the way Keras does, resolves every layer's ``inputs`` and
runs the shape inference, so a ``Network`` that exists is a network whose every layer is
well-formed; :attr:`Network.infos` then holds each layer's inputs, shapes, parameters and MACs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

from ..errors import AccelError
from .layers import Inferred, Layer, keras_base_name

Shape = tuple[int, ...]

#: The name of the model input tensor, as layers' ``inputs`` refer to it.
INPUT = "input"


@dataclass(frozen=True)
class LayerInfo:
    """One layer of an inferred network.

    Members
    -------
    index : int
        Position in the network (file order), from 0.
    layer : Layer
        The (named) layer spec, with its ``inputs`` resolved.
    input_shapes : tuple of tuple of int
        Shape of each input, in the order of ``inputs``, without the batch dimension.
    inferred : Inferred
        Output shape, params, MACs, kernel shape and window geometry.
    """

    index: int
    layer: Layer
    input_shapes: tuple[Shape, ...]
    inferred: Inferred

    @property
    def name(self) -> str:
        return self.layer.name  # type: ignore[return-value]

    @property
    def type_name(self) -> str:
        return self.layer.type_name

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the tensors this layer reads (layer names, or :data:`INPUT`)."""
        return self.layer.inputs  # type: ignore[return-value]

    @property
    def input_shape(self) -> Shape:
        """The shape of the only input; ``AccelError`` for a layer with several inputs."""
        if len(self.input_shapes) != 1:
            raise AccelError(f"{self.where()}: has {len(self.input_shapes)} inputs; "
                             f"input_shape is only defined for single-input layers")
        return self.input_shapes[0]

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
    """A DAG of layers in file order on an input of shape ``input_shape`` (no batch
    dimension); see the module doc for how layers name their inputs.

    Raises :class:`AccelError` (one line, naming the layer by index, name and type, and the
    field) when the network is empty, names repeat or take the input's name, an input names no
    layer or a later one (a forward reference, so a cycle), a layer does not fit its inputs
    (including inputs that cannot be added or concatenated), a layer's output is read by no
    later layer (only the last layer is the model output), or ``softmax`` appears anywhere but
    on the last layer.
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
        object.__setattr__(self, "layers", _resolve_inputs(_name_layers(layers)))
        self.infos  # noqa: B018 - validate eagerly: a Network that exists is well-formed

    @cached_property
    def infos(self) -> tuple[LayerInfo, ...]:
        """Per-layer inputs, shapes, params and MACs: the one shape inference of the project."""
        infos: list[LayerInfo] = []
        shapes = {INPUT: self.input_shape}
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            where = f"layer {index} ({layer.name}, {layer.type_name})"
            if layer.activation_name == "softmax" and index != last:
                raise AccelError(
                    f"{where}: activation 'softmax' is only supported on the last layer"
                )
            input_shapes = tuple(shapes[name] for name in layer.inputs)
            try:
                inferred = layer.infer_inputs(input_shapes)
            except (ValueError, TypeError) as e:
                raise AccelError(f"{where}: {e}") from None
            infos.append(LayerInfo(index, layer, input_shapes, inferred))
            shapes[layer.name] = inferred.output_shape
        return tuple(infos)

    @cached_property
    def is_chain(self) -> bool:
        """Every layer reads exactly the one before it (the first reads the input)."""
        previous = INPUT
        for layer in self.layers:
            if layer.inputs != (previous,):
                return False
            previous = layer.name
        return True

    def require_chain(self, where: str) -> None:
        """Raise a one-line ``AccelError`` (prefixed with ``where``) unless :attr:`is_chain`.

        For the parts of the flow that handle only chains so far (the hardware planner)."""
        previous = INPUT
        for info in self.infos:
            if info.inputs != (previous,):
                raise AccelError(
                    f"{where}: {info.where()} reads {', '.join(info.inputs)}, not just the "
                    f"layer before it; only a chain of layers is supported here so far"
                )
            previous = info.name

    def consumers(self, name: str) -> tuple[LayerInfo, ...]:
        """The layers that read tensor ``name`` (a layer name or :data:`INPUT`), in order."""
        return tuple(info for info in self.infos if name in info.inputs)

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



def _resolve_inputs(layers: tuple[Layer, ...]) -> tuple[Layer, ...]:
    """Fill in the default ``inputs`` (the previous layer) and check every name: it must be the
    model input or an earlier layer, and every layer but the last must be read by a later one.
    """
    index_of = {layer.name: index for index, layer in enumerate(layers)}
    for index, layer in enumerate(layers):
        if layer.name == INPUT:
            raise AccelError(f"layer {index} ({layer.name}, {layer.type_name}): name "
                             f"{INPUT!r} is reserved for the model input")
    resolved = []
    for index, layer in enumerate(layers):
        where = f"layer {index} ({layer.name}, {layer.type_name})"
        if layer.inputs is None:
            default = INPUT if index == 0 else layers[index - 1].name
            layer = dataclasses.replace(layer, inputs=(default,))
        for source in layer.inputs:
            if source == INPUT:
                continue
            if source not in index_of:
                known = ", ".join([INPUT, *(other.name for other in layers[:index])])
                raise AccelError(f"{where}: inputs: no layer named {source!r} before it "
                                 f"(known: {known})")
            if index_of[source] >= index:
                what = "itself" if index_of[source] == index else (
                    f"layer {index_of[source]}, which comes later")
                raise AccelError(f"{where}: inputs: {source!r} is {what}; a layer can only "
                                 f"read layers before it (a forward reference is a cycle)")
        resolved.append(layer)
    read = {source for layer in resolved for source in layer.inputs}
    for index, layer in enumerate(resolved[:-1]):
        if layer.name not in read:
            raise AccelError(
                f"layer {index} ({layer.name}, {layer.type_name}): output: no later layer "
                f"reads it; only the last layer's output is the model output"
            )
    return tuple(resolved)
