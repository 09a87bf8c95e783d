"""Float weights of a Keras model file, read with h5py (no TensorFlow).

- ``.keras``: the zip's ``model.weights.h5`` is opened in memory (never extracted); layer
  ``name``'s variables are ``layers/<name>/vars/0, 1, ...`` in Keras's order.
- legacy ``.h5``: ``model_weights/<name>`` lists its datasets in the ``weight_names``
  attribute, in Keras's order.

Keras's variable order: Conv2D/DepthwiseConv2D/Dense ``kernel, bias``; BatchNormalization
``gamma`` (if ``scale``), ``beta`` (if ``center``), ``moving_mean``, ``moving_variance``. Every
array is checked against the shapes the spec implies; a mismatch is one line naming the layer.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import AccelError
from ..io.files import MAX_FILE_BYTES, check_file, short
from ..io.hdf5 import open_h5, read_attribute, read_dataset
from ..spec import BatchNormalization, Conv2D, Dense, DepthwiseConv2D, Network
from ..spec.keras_model import _check_zip_names

#: A model's weights may be large (the 5x5 seed network has 3.2 M floats), but not absurd: the
#: whole weights file is held in memory, so the bound is the one for any file accel reads.
MAX_WEIGHTS_BYTES = MAX_FILE_BYTES


def _expected_shapes(network: Network) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    shapes: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for info in network.infos:
        layer = info.layer
        if isinstance(layer, (Conv2D, DepthwiseConv2D, Dense)):
            out = info.output_shape[-1]
            shapes[info.name] = [("kernel", info.inferred.kernel_shape)]
            if layer.use_bias:
                shapes[info.name].append(("bias", (out,)))
        elif isinstance(layer, BatchNormalization):
            c = info.input_shape[-1]
            names = (["gamma"] if layer.scale else []) + (["beta"] if layer.center else [])
            shapes[info.name] = [(n, (c,)) for n in [*names, "moving_mean", "moving_variance"]]
    return shapes


def _read_keras_zip(path: Path, expected: dict) -> dict[str, list[np.ndarray]]:
    check_file(path, "Keras model", max_bytes=MAX_WEIGHTS_BYTES)
    try:
        with zipfile.ZipFile(path) as zf:
            _check_zip_names(path, zf)
            try:
                info = zf.getinfo("model.weights.h5")
            except KeyError:
                raise AccelError(f"{path}: no model.weights.h5 inside: the archive holds no "
                                 f"weights") from None
            if info.file_size > MAX_WEIGHTS_BYTES:
                raise AccelError(f"{path}: model.weights.h5 is {info.file_size} bytes, over "
                                 f"the {MAX_WEIGHTS_BYTES}-byte limit")
            blob = zf.read(info)
    except zipfile.BadZipFile as e:
        raise AccelError(f"{path}: not a valid .keras archive: {e}") from None
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as e:
        raise AccelError(f"{path}: cannot read the .keras archive: {short(str(e))[1:-1]}"
                         ) from None
    out: dict[str, list[np.ndarray]] = {}
    context = f"{path}: model.weights.h5"
    with open_h5(blob, context) as f:
        for name, want in expected.items():
            group = f.get(f"layers/{name}/vars")
            if group is None:
                raise AccelError(f"{path}: layer {name!r} has no weights in the file")
            count = len(group.keys())
            out[name] = [_read(group, str(i), want, i, context) for i in range(count)]
    return out


def _read(group, key: str, want: list, i: int, context: str) -> np.ndarray:
    """Dataset ``key`` of ``group``, its dtype and size checked before it is read (the shape
    is compared with the spec's by :func:`read_keras_weights`, which names the layer)."""
    if key not in group:
        raise AccelError(f"{context}: {short(group.name + '/' + key)} is missing")
    ds = group[key]
    shape = tuple(getattr(ds, "shape", None) or ())
    if i < len(want) and shape != tuple(want[i][1]):
        # cannot be the weights the spec needs: do not read it, report it as a mismatch
        return _Mismatch(shape)
    return read_dataset(ds, f"{group.name}/{key}", context)


class _Mismatch:
    """A dataset of the wrong shape left unread: only its ``shape`` is reported."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape


def _read_legacy_h5(path: Path, expected: dict) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    context = str(path)
    with open_h5(path, context) as f:
        root = f.get("model_weights", f)
        for name, want in expected.items():
            group = root.get(name)
            if group is None or not hasattr(group, "keys"):
                raise AccelError(f"{path}: layer {name!r} has no weights in the file")
            weight_names = read_attribute(group, "weight_names", context)
            weight_names = [] if weight_names is None else list(np.ravel(weight_names))
            names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)
                     for n in weight_names]
            out[name] = [_read(group, n, want, i, context) for i, n in enumerate(names)]
    return out


def read_keras_weights(path: str | Path, network: Network) -> dict[str, dict[str, np.ndarray]]:
    """Float weights by layer name and variable name (``kernel``, ``bias``, ``gamma``, ...),
    checked against ``network``'s shapes. Layers without weights are absent."""
    path = Path(path)
    expected = _expected_shapes(network)
    if path.suffix.lower() == ".keras":
        raw = _read_keras_zip(path, expected)
    else:
        raw = _read_legacy_h5(path, expected)
    weights: dict[str, dict[str, np.ndarray]] = {}
    for info in network.infos:
        if info.name not in expected:
            continue
        want = expected[info.name]
        got = raw[info.name]
        where = f"{path}: {info.where()}"
        if len(got) != len(want):
            raise AccelError(f"{where}: {len(got)} weight arrays in the file, the spec needs "
                             f"{len(want)} ({', '.join(n for n, _ in want)})")
        weights[info.name] = {}
        for (var, shape), array in zip(want, got, strict=True):
            if tuple(array.shape) != tuple(shape):
                raise AccelError(f"{where}: {var} has shape {tuple(array.shape)}, the spec "
                                 f"needs {tuple(shape)}")
            if not np.all(np.isfinite(array)):
                raise AccelError(f"{where}: {var} contains NaN or infinite values")
            weights[info.name][var] = array
    return weights
