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

import io
import zipfile
from pathlib import Path

import numpy as np

from ..errors import AccelError
from ..spec import BatchNormalization, Conv2D, Dense, DepthwiseConv2D, Network
from ..spec.keras_model import _check_zip_names

#: A model's weights may be large (the 5x5 seed network has 3.2 M floats), but not absurd.
MAX_WEIGHTS_BYTES = 1 << 30


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


def _read_keras_zip(path: Path, names: list[str]) -> dict[str, list[np.ndarray]]:
    import h5py

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
    out: dict[str, list[np.ndarray]] = {}
    try:
        with h5py.File(io.BytesIO(blob), "r") as f:
            for name in names:
                group = f.get(f"layers/{name}/vars")
                if group is None:
                    raise AccelError(f"{path}: layer {name!r} has no weights in the file")
                count = len(group.keys())
                out[name] = [np.asarray(group[str(i)], dtype=np.float64) for i in range(count)]
    except OSError as e:
        raise AccelError(f"{path}: model.weights.h5 is not readable HDF5: {e}") from None
    return out


def _read_legacy_h5(path: Path, names: list[str]) -> dict[str, list[np.ndarray]]:
    import h5py

    out: dict[str, list[np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as f:
            root = f.get("model_weights", f)
            for name in names:
                group = root.get(name)
                if group is None:
                    raise AccelError(f"{path}: layer {name!r} has no weights in the file")
                weight_names = [n.decode() if isinstance(n, bytes) else str(n)
                                for n in group.attrs.get("weight_names", [])]
                out[name] = [np.asarray(group[n], dtype=np.float64) for n in weight_names]
    except OSError as e:
        raise AccelError(f"{path}: not a readable HDF5 file: {e}") from None
    return out


def read_keras_weights(path: str | Path, network: Network) -> dict[str, dict[str, np.ndarray]]:
    """Float weights by layer name and variable name (``kernel``, ``bias``, ``gamma``, ...),
    checked against ``network``'s shapes. Layers without weights are absent."""
    path = Path(path)
    expected = _expected_shapes(network)
    if path.suffix.lower() == ".keras":
        raw = _read_keras_zip(path, list(expected))
    else:
        raw = _read_legacy_h5(path, list(expected))
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
