"""Spec files: a network written down in YAML or JSON, Keras-style.

The format::

    name: seed_mnist_cnn            # optional, defaults to the file name
    input: [28, 28, 1]              # height, width, channels (or [features])
    layers:                         # Keras class names as keys, Keras argument names inside
      - Conv2D: {filters: 32, kernel_size: 3, padding: same, activation: relu}
      - MaxPooling2D: {pool_size: 2}
      - Flatten: {}
      - Dense: {units: 10, activation: softmax, name: logits}

A layer may name the tensors it reads, ``inputs: [name, ...]`` among its arguments (default:
the previous layer; the model input is ``input``), which makes the network a graph; the
:class:`~accel.spec.network.Network` checks the names and the shapes.

Parsing goes through :mod:`accel.io.documents` (a ``yaml.SafeLoader`` and ``json.loads``
with duplicate keys, alias bombs and deep nesting refused). Every problem becomes
one :class:`AccelError` line naming the file, the layer (index, name, type), the field and the
value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import AccelError
from .layers import LAYER_TYPES, Layer, layer_fields, required_fields
from .network import Network

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
TOP_LEVEL_FIELDS = ("name", "input", "layers")


def read_document(path: Path) -> Any:
    """Parse a YAML or JSON file into plain Python data; errors are one line (see
    :mod:`accel.io.documents` for the limits: regular files, duplicate keys, aliases, depth)."""
    from ..io.documents import read_document as read

    return read(path)


def layer_from_entry(entry: Any, index: int, context: str) -> Layer:
    """Build one layer from ``{ClassName: {field: value, ...}}``.

    ``context`` prefixes error messages (the file name).
    """
    if not isinstance(entry, dict) or len(entry) != 1:
        raise AccelError(
            f"{context}: layer {index}: must be a mapping with one key, the layer type "
            f"(e.g. {{Conv2D: {{filters: 8, kernel_size: 3}}}}), not {entry!r}"
        )
    ((type_name, args),) = entry.items()
    if type_name not in LAYER_TYPES:
        known = ", ".join(LAYER_TYPES)
        raise AccelError(
            f"{context}: layer {index}: unknown layer type {type_name!r} (known: {known})"
        )
    args = {} if args is None else args
    if not isinstance(args, dict):
        raise AccelError(
            f"{context}: layer {index} ({type_name}): arguments must be a mapping, not {args!r}"
        )
    cls = LAYER_TYPES[type_name]
    name = args.get("name")
    where = f"{context}: layer {index} ({name or '?'}, {type_name})"
    fields = layer_fields(cls)
    for key in args:
        if key not in fields:
            known = ", ".join(fields)
            raise AccelError(f"{where}: unknown field {key!r} (fields: {known})")
    for key in required_fields(cls):
        if key not in args:
            raise AccelError(f"{where}: missing required field {key!r}")
    try:
        return cls(**args)
    except (ValueError, TypeError) as e:
        raise AccelError(f"{where}: {e}") from None


def network_from_document(doc: Any, context: str, default_name: str) -> Network:
    """Build a :class:`Network` from a parsed spec document."""
    if not isinstance(doc, dict):
        raise AccelError(
            f"{context}: a spec must be a mapping with 'input' and 'layers', not "
            f"{type(doc).__name__}"
        )
    for key in doc:
        if key not in TOP_LEVEL_FIELDS:
            raise AccelError(
                f"{context}: unknown top-level field {key!r} (fields: name, input, layers)"
            )
    for key in ("input", "layers"):
        if key not in doc:
            raise AccelError(f"{context}: missing required field {key!r}")
    layers = doc["layers"]
    if not isinstance(layers, list):
        raise AccelError(f"{context}: layers must be a list, not {layers!r}")
    if not layers:
        raise AccelError(f"{context}: the network has no layers")
    built = tuple(layer_from_entry(entry, i, context) for i, entry in enumerate(layers))
    name = doc.get("name", default_name)
    try:
        return Network(name=name, input_shape=doc["input"], layers=built)
    except AccelError as e:
        raise AccelError(f"{context}: {e}") from None


def load_spec_file(path: str | Path) -> Network:
    """Read a YAML/JSON spec file into a validated :class:`Network`."""
    path = Path(path)
    return network_from_document(read_document(path), str(path), path.stem)
