"""Stage 1: what the network computes. Layer specs, shape math, spec and Keras file readers."""

from __future__ import annotations

from pathlib import Path

from ..errors import AccelError
from .keras_model import KERAS_SUFFIXES, load_keras_model
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
from .network import INPUT, LayerInfo, Network
from .spec_file import SPEC_SUFFIXES, load_spec_file


def load_network(path: str | Path) -> Network:
    """The architecture of a spec file (``.yaml``/``.yml``/``.json``) or a Keras model file
    (``.keras``/``.h5``), chosen by the file's suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in SPEC_SUFFIXES:
        return load_spec_file(path)
    if suffix in KERAS_SUFFIXES:
        return load_keras_model(path)
    known = ", ".join(SPEC_SUFFIXES + KERAS_SUFFIXES)
    raise AccelError(f"{path}: unknown model file type {suffix or '(none)'!r} (known: {known})")


__all__ = [
    "INPUT", "Activation", "Add", "AveragePooling2D", "BatchNormalization", "Concatenate",
    "Conv2D", "Dense", "DepthwiseConv2D", "Dropout", "Flatten", "GlobalAveragePooling2D", "Layer",
    "LayerInfo", "MaxPooling2D", "Network", "ReLU", "Reshape", "ZeroPadding2D", "load_network",
]
