"""Keras model files, read without TensorFlow: ``.keras`` (Keras 3 zip) and legacy ``.h5``.

A ``.keras`` file is a zip holding ``config.json`` (the architecture) and ``model.weights.h5``;
a legacy ``.h5`` file is HDF5 with the architecture as JSON in its ``model_config`` attribute.
Both configs have the same shape: ``{"class_name": "Sequential" | "Functional", "config":
{"layers": [{"class_name": ..., "config": {...}}, ...]}}``. This module turns that into a
:class:`~accel.spec.network.Network`: Sequential models, and functional models that are any DAG
of supported layers with one input and one output, each layer called once (layers keep the
config's order where it is a topological order; each names its inbound layers as ``inputs``).

Safety: the zip is never extracted. Member names are checked (no absolute paths, no ``..``) and
the config is read by name with a size limit; HDF5 is read with h5py; JSON with ``json.loads``.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import AccelError
from ..io.documents import parse_json
from ..io.files import check_file, short
from ..io.hdf5 import open_h5, read_attribute
from .layers import (
    Activation,
    Add,
    AveragePooling2D,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    Layer,
    MaxPooling2D,
    ReLU,
    Reshape,
    ZeroPadding2D,
)
from .network import INPUT, Network

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
#: A Keras config is a few kB; anything this large is not one (and must not exhaust memory).
MAX_CONFIG_BYTES = 16 * 1024 * 1024


# --- reading the files ------------------------------------------------------------------------

def _check_zip_names(path: Path, zf: zipfile.ZipFile) -> None:
    for info in zf.infolist():
        name = info.filename
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":"):
            raise AccelError(f"{path}: unsafe member name {name!r} in the .keras archive")


def read_keras_zip_config(path: Path) -> dict:
    """The ``config.json`` of a ``.keras`` archive, parsed."""
    check_file(path, "Keras model")
    try:
        with zipfile.ZipFile(path) as zf:
            _check_zip_names(path, zf)
            try:
                info = zf.getinfo("config.json")
            except KeyError:
                raise AccelError(
                    f"{path}: not a Keras model archive (no config.json inside)"
                ) from None
            if info.file_size > MAX_CONFIG_BYTES:
                raise AccelError(
                    f"{path}: config.json is {info.file_size} bytes, more than a Keras config "
                    f"can be ({MAX_CONFIG_BYTES})"
                )
            raw = zf.read(info)
    except zipfile.BadZipFile as e:
        raise AccelError(
            f"{path}: not a valid .keras archive (truncated or not a zip: {e})"
        ) from None
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as e:
        raise AccelError(f"{path}: cannot read the .keras archive: {short(str(e))[1:-1]}"
                         ) from None
    return _parse_config_json(path, raw, "config.json")


def read_h5_config(path: Path) -> dict:
    """The ``model_config`` attribute of a legacy ``.h5`` model file, parsed."""
    with open_h5(path, str(path)) as f:  # links and storage checked before any read
        raw = read_attribute(f, "model_config", str(path))
    if raw is None:
        raise AccelError(
            f"{path}: no model_config attribute: not a Keras model file (a weights-only file?)"
        )
    return _parse_config_json(path, raw, "model_config")


def _parse_config_json(path: Path, raw: Any, what: str) -> dict:
    if isinstance(raw, np.ndarray) and raw.shape == ():
        raw = raw[()]
    if not isinstance(raw, (bytes, str)):
        raise AccelError(f"{path}: {what} is not a JSON string but {short(raw)}")
    config = parse_json(raw, f"{path}: {what}")
    if not isinstance(config, dict):
        raise AccelError(f"{path}: {what} is not a Keras model config")
    return config


def load_keras_model(path: str | Path) -> Network:
    """The architecture of a ``.keras`` or ``.h5`` model file as a :class:`Network`."""
    path = Path(path)
    if not path.exists():
        raise AccelError(f"{path}: no such file")
    if path.suffix.lower() == ".keras":
        config = read_keras_zip_config(path)
    else:
        config = read_h5_config(path)
    try:
        return network_from_keras_config(config, str(path))
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) as e:
        # a config entry of the wrong type (a number where a mapping belongs, ...): the
        # interpreter below trusts the shape of Keras's JSON, the boundary must not
        raise AccelError(f"{path}: malformed Keras config: {short(str(e) or repr(e))[1:-1]}"
                         ) from None


# --- interpreting the config ------------------------------------------------------------------

def _activation(value: Any) -> Any:
    # Keras 3 may serialize a built-in activation as {"class_name": "function", "config": "relu"}.
    if isinstance(value, dict) and isinstance(value.get("config"), str):
        return value["config"]
    return value


def _require_default(cfg: dict, key: str, allowed: tuple, why: str) -> None:
    value = cfg.get(key)
    if isinstance(value, list):
        value = tuple(value)
    if key in cfg and value not in allowed:
        raise ValueError(f"{key} {cfg[key]!r} is not supported ({why})")


def _channels_last(cfg: dict) -> None:
    _require_default(cfg, "data_format", (None, "channels_last"), "only channels_last")


def _conv2d(cfg: dict) -> Layer:
    _channels_last(cfg)
    _require_default(cfg, "dilation_rate", (1, (1, 1)), "no dilation")
    _require_default(cfg, "groups", (1,), "no grouped convolution")
    return Conv2D(
        filters=cfg["filters"], kernel_size=cfg["kernel_size"], strides=cfg.get("strides", 1),
        padding=cfg.get("padding", "valid"), activation=_activation(cfg.get("activation")),
        use_bias=cfg.get("use_bias", True), name=cfg.get("name"),
    )


def _max_pooling2d(cfg: dict) -> Layer:
    _channels_last(cfg)
    return MaxPooling2D(
        pool_size=cfg.get("pool_size", 2), strides=cfg.get("strides"),
        padding=cfg.get("padding", "valid"), name=cfg.get("name"),
    )


def _depthwise_conv2d(cfg: dict) -> Layer:
    _channels_last(cfg)
    _require_default(cfg, "dilation_rate", (1, (1, 1)), "no dilation")
    return DepthwiseConv2D(
        kernel_size=cfg["kernel_size"], strides=cfg.get("strides", 1),
        padding=cfg.get("padding", "valid"), depth_multiplier=cfg.get("depth_multiplier", 1),
        activation=_activation(cfg.get("activation")), use_bias=cfg.get("use_bias", True),
        name=cfg.get("name"),
    )


def _average_pooling2d(cfg: dict) -> Layer:
    _channels_last(cfg)
    return AveragePooling2D(
        pool_size=cfg.get("pool_size", 2), strides=cfg.get("strides"),
        padding=cfg.get("padding", "valid"), name=cfg.get("name"),
    )


def _global_average_pooling2d(cfg: dict) -> Layer:
    _channels_last(cfg)
    # Keras 2.6+ writes keepdims; older files have none (False).
    return GlobalAveragePooling2D(keepdims=cfg.get("keepdims", False), name=cfg.get("name"))


def _zero_padding2d(cfg: dict) -> Layer:
    _channels_last(cfg)
    return ZeroPadding2D(padding=cfg.get("padding", 1), name=cfg.get("name"))


def _reshape(cfg: dict) -> Layer:
    return Reshape(target_shape=cfg["target_shape"], name=cfg.get("name"))


def _flatten(cfg: dict) -> Layer:
    _channels_last(cfg)
    return Flatten(name=cfg.get("name"))


def _dense(cfg: dict) -> Layer:
    return Dense(
        units=cfg["units"], activation=_activation(cfg.get("activation")),
        use_bias=cfg.get("use_bias", True), name=cfg.get("name"),
    )


def _relu(cfg: dict) -> Layer:
    return ReLU(
        max_value=cfg.get("max_value"), negative_slope=cfg.get("negative_slope") or 0.0,
        threshold=cfg.get("threshold") or 0.0, name=cfg.get("name"),
    )


def _activation_layer(cfg: dict) -> Layer:
    return Activation(activation=_activation(cfg["activation"]), name=cfg.get("name"))


def _dropout(cfg: dict) -> Layer:
    return Dropout(rate=cfg["rate"], name=cfg.get("name"))


def _add(cfg: dict) -> Layer:
    return Add(name=cfg.get("name"))


def _concatenate(cfg: dict) -> Layer:
    return Concatenate(axis=cfg.get("axis", -1), name=cfg.get("name"))


def _batch_normalization(cfg: dict) -> Layer:
    axis = cfg.get("axis", -1)
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    return BatchNormalization(
        axis=axis, momentum=cfg.get("momentum", 0.99), epsilon=cfg.get("epsilon", 1e-3),
        center=cfg.get("center", True), scale=cfg.get("scale", True), name=cfg.get("name"),
    )


#: Keras class name -> builder from that layer's config.
KERAS_LAYERS = {
    "Conv2D": _conv2d,
    "Convolution2D": _conv2d,
    "DepthwiseConv2D": _depthwise_conv2d,
    "MaxPooling2D": _max_pooling2d,
    "MaxPool2D": _max_pooling2d,
    "AveragePooling2D": _average_pooling2d,
    "AvgPool2D": _average_pooling2d,
    "GlobalAveragePooling2D": _global_average_pooling2d,
    "GlobalAvgPool2D": _global_average_pooling2d,
    "ZeroPadding2D": _zero_padding2d,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Dense": _dense,
    "ReLU": _relu,
    "Activation": _activation_layer,
    "Dropout": _dropout,
    "BatchNormalization": _batch_normalization,
    "Add": _add,
    "Concatenate": _concatenate,
}
INPUT_LAYER = "InputLayer"


def _batch_shape(cfg: dict) -> list | None:
    for key in ("batch_shape", "batch_input_shape"):
        if cfg.get(key) is not None:
            return list(cfg[key])
    return None


def _inbound_names(node_data: Any) -> list[str]:
    """Names of the layers feeding a functional-model layer, in Keras 2 or Keras 3 form."""
    found: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            history = x.get("keras_history")
            if isinstance(history, list) and history and isinstance(history[0], str):
                found.append(history[0])
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            # Keras 2: [layer_name, node_index, tensor_index, kwargs]
            if len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int):
                found.append(x[0])
                return
            for v in x:
                walk(v)

    walk(node_data)
    return found


def _entry_name(entry: dict) -> Any:
    return entry.get("name") or (entry.get("config") or {}).get("name")


def _node_count(inbound: Any) -> int:
    """How many times a functional-model layer is called (its inbound nodes)."""
    return len(inbound) if isinstance(inbound, list) else 0


def _graph_order(layers: list[dict], context: str) -> list[tuple[dict, tuple[str, ...]]]:
    """The layers of a functional model as ``(entry, input names)`` in a topological order
    (config order where it allows), the input layer first with no inputs and named
    :data:`~accel.spec.network.INPUT` in the others' inputs.

    Rejects models with other than one input layer, shared layers (called more than once),
    inputs that name no layer, and cycles; the :class:`Network` checks the rest.
    """
    by_name: dict[str, dict] = {}
    for entry in layers:
        name = _entry_name(entry)
        if not isinstance(name, str) or not name:
            raise AccelError(f"{context}: a layer of class {entry.get('class_name')!r} has no "
                             f"name")
        if name in by_name:
            raise AccelError(f"{context}: two layers are named {name!r}")
        by_name[name] = entry
    model_inputs = [name for name, e in by_name.items() if e.get("class_name") == INPUT_LAYER]
    if len(model_inputs) != 1:
        raise AccelError(f"{context}: the model has {len(model_inputs)} inputs; exactly one "
                         f"is supported")
    sources: dict[str, tuple[str, ...]] = {}
    for name, entry in by_name.items():
        if name in model_inputs:
            continue
        inbound = entry.get("inbound_nodes", [])
        where = f"{context}: layer {name!r} ({entry.get('class_name')})"
        if _node_count(inbound) != 1:
            raise AccelError(f"{where}: called {_node_count(inbound)} times; only layers "
                             f"called once are supported (no shared layers)")
        found = _inbound_names(inbound)
        for source in found:
            if source not in by_name:
                raise AccelError(f"{where}: inputs: no layer named {source!r} in the model")
        sources[name] = tuple(INPUT if s == model_inputs[0] else s for s in found)
    # Kahn's algorithm, always taking the earliest ready layer in config order, so a config
    # already in topological order (Keras writes them so) keeps its order.
    position = {name: i for i, name in enumerate(by_name)}
    placed = {INPUT}
    order = [(by_name[model_inputs[0]], ())]
    pending = [name for name in by_name if name not in model_inputs]
    while pending:
        ready = [n for n in pending if all(s in placed for s in sources[n])]
        if not ready:
            raise AccelError(f"{context}: layers {sorted(pending)} form a cycle or depend on "
                             f"one")
        name = min(ready, key=position.__getitem__)
        pending.remove(name)
        placed.add(name)
        order.append((by_name[name], sources[name]))
    return order


def _output_names(config: dict) -> list[str]:
    """Names of a functional model's output layers (Keras 2 and 3 forms)."""
    outputs = config.get("output_layers")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], str):
        outputs = [outputs]  # Keras 3 writes a single output as one [name, node, tensor]
    if not isinstance(outputs, list):
        return []
    return [item[0] for item in outputs if isinstance(item, list) and item
            and isinstance(item[0], str)]


def network_from_keras_config(model: dict, context: str) -> Network:
    """A :class:`Network` from a Keras model config dict (``{"class_name", "config"}``)."""
    kind = model.get("class_name")
    config = model.get("config")
    if kind not in ("Sequential", "Functional", "Model") or not isinstance(config, dict):
        raise AccelError(
            f"{context}: model class {kind!r} is not supported (Sequential or Functional)"
        )
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise AccelError(f"{context}: the model config has no layer list")
    if kind == "Sequential":
        ordered = [(entry, None) for entry in entries]
    else:
        ordered = _graph_order(entries, context)
        outputs = _output_names(config)
        if len(outputs) > 1:
            raise AccelError(f"{context}: the model has {len(outputs)} outputs ({outputs}); "
                             f"exactly one is supported")
        read = {source for _, inputs in ordered for source in inputs}
        for entry, _ in ordered[1:]:
            name = _entry_name(entry)
            if outputs and name not in read and name != outputs[0]:
                raise AccelError(f"{context}: layer {name!r} ({entry.get('class_name')}): "
                                 f"output: no other layer reads it, and it is not the model "
                                 f"output {outputs[0]!r}")

    input_shape = None
    if isinstance(config.get("build_input_shape"), list):
        input_shape = config["build_input_shape"][1:]
    layers: list[Layer] = []
    for entry, inputs in ordered:
        class_name = entry.get("class_name")
        cfg = entry.get("config") or {}
        if class_name == INPUT_LAYER:
            shape = _batch_shape(cfg)
            if shape is not None:
                input_shape = shape[1:]
            continue
        index = len(layers)
        name = cfg.get("name", "?")
        where = f"{context}: layer {index} ({name}, {class_name})"
        if class_name not in KERAS_LAYERS:
            known = ", ".join(sorted(KERAS_LAYERS))
            raise AccelError(f"{where}: layer type {class_name!r} is not supported ({known})")
        if not layers and input_shape is None and _batch_shape(cfg) is not None:
            input_shape = _batch_shape(cfg)[1:]
        try:
            layer = KERAS_LAYERS[class_name](cfg)
            if inputs is not None:
                layer = dataclasses.replace(layer, inputs=inputs)
            layers.append(layer)
        except KeyError as e:
            raise AccelError(f"{where}: missing required field {e.args[0]!r}") from None
        except (ValueError, TypeError) as e:
            raise AccelError(f"{where}: {e}") from None
    if input_shape is None:
        raise AccelError(f"{context}: the model config does not give an input shape")
    if any(size is None for size in input_shape):
        raise AccelError(f"{context}: input shape {input_shape} has unknown (None) sizes")
    try:
        return Network(name=config.get("name") or Path(context).stem,
                       input_shape=tuple(input_shape), layers=tuple(layers))
    except AccelError as e:
        raise AccelError(f"{context}: {e}") from None
