"""``accel predict``: the golden model on a batch of inputs, with every layer's output saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import AccelError
from ..io.archive import check_output_path, result_arrays
from ..io.files import about
from ..limits import check_network
from . import golden, numerics
from .load import load_array
from .qnet import QuantizedNetwork, write_npz


def quantize_inputs(qnet: QuantizedNetwork, x: np.ndarray, *, context: str = "inputs"
                    ) -> tuple[np.ndarray, str]:
    """Integer inputs as given; float inputs quantized with the model's input parameters.

    ``x`` must be a non-empty batch (``(N, *input_shape)``, ``N >= 1``); ``context`` (the
    file) prefixes the errors about it."""
    if x.ndim == 0 or len(x) == 0:
        raise AccelError(f"{context}: an empty batch (shape {x.shape}); at least one image is "
                         f"needed")
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)):
            raise AccelError(f"{context}: inputs contain NaN or infinite values")
        q = qnet.input
        return numerics.quantize(x, q.scale, q.zero_point, bits=q.bits), "float, quantized"
    if np.issubdtype(x.dtype, np.integer):
        return x, "int"
    raise AccelError(f"{context}: inputs have dtype {x.dtype}; int8 or float arrays are "
                     f"expected")


def predict(qnet: QuantizedNetwork, inputs: str | Path, *, output: str | Path | None = None,
            labels: str | Path | None = None) -> dict:
    """Run ``qnet`` on the ``.npy`` at ``inputs``; returns a JSON-ready summary.

    ``output`` (optional) receives an ``.npz`` with ``output`` (the final tensor, batch first)
    and ``layers/<name>`` per layer, in network order (:mod:`accel.io.archive`).
    """
    if output is not None:
        check_output_path(output, "results")  # before the work, not after
    x, kind = quantize_inputs(qnet, load_array(inputs, "inputs"), context=str(inputs))
    check_network(qnet.network, str(inputs), images=len(x))
    with about(inputs):  # the input's shape and range are checked in there
        layers = golden.run(qnet, x)
    final = list(layers.values())[-1]
    logits = layers[qnet.logits_layer.name]
    result: dict = {
        "model": qnet.name, "scheme": qnet.scheme, "images": int(final.shape[0]),
        "input_kind": kind, "output_shape": list(final.shape[1:]),
        "layers": [{"name": name, "shape": list(a.shape[1:])} for name, a in layers.items()],
        "predictions": logits.reshape(len(logits), -1).argmax(axis=1).tolist(),
    }
    if labels is not None:
        y = load_array(labels, "labels")
        if y.shape != (len(final),) or not np.issubdtype(y.dtype, np.integer):
            raise AccelError(f"{labels}: labels must be {len(final)} integers, got shape "
                             f"{y.shape} of {y.dtype}")
        correct = int((np.asarray(result["predictions"]) == y).sum())
        result.update(correct=correct, accuracy=correct / len(y))
    if output is not None:
        write_npz(output, result_arrays(final, layers))
    return result
