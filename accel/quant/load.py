"""Every way a quantized network comes in, behind one function.

``MODEL`` arguments of ``accel predict`` (and later ``plan``, ``generate``, ``sim``, ``build``)
may be a ``.tflite`` file (taken as given), an ``.npz`` written by ``accel quantize``, or a spec
/ Keras file with either ``seed`` (random weights) or ``calibration`` (a trained Keras model,
quantized after training).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import AccelError
from ..io.files import about
from ..limits import check_network
from ..spec import load_network
from ..spec.keras_model import KERAS_SUFFIXES
from .qnet import QuantizedNetwork, load_quantized


def load_array(path: str | Path, what: str) -> np.ndarray:
    """A ``.npy`` array, never unpickled, its header checked first (:mod:`accel.io.npy`)."""
    from ..io.npy import load_array as load

    return load(path, what)


def load_quantized_model(path: str | Path, *, seed: int | None = None,
                         calibration: str | Path | None = None, scheme: str = "tflite-int8",
                         weight_bits: int = 8, act_bits: int = 8) -> QuantizedNetwork:
    """A :class:`QuantizedNetwork` from any model form (see module doc), its numbers validated
    (:func:`accel.io.qnet_file.validate_qnet`) whichever form it came from."""
    from ..io.qnet_file import validate_qnet

    qnet = _load(Path(path), seed, calibration, scheme, weight_bits, act_bits)
    check_network(qnet.network, str(path))
    validate_qnet(qnet, str(path))
    return qnet


def _load(path: Path, seed: int | None, calibration: str | Path | None, scheme: str,
          weight_bits: int, act_bits: int) -> QuantizedNetwork:
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from .tflite_model import load_tflite

        with about(path):
            return load_tflite(path)
    if suffix == ".npz":
        return load_quantized(path)
    network = load_network(path)
    check_network(network, str(path))  # before any weights are drawn or read
    if seed is not None:
        from .random_model import CALIBRATION_IMAGES, random_quantized

        check_network(network, str(path), images=CALIBRATION_IMAGES,
                      what="calibration images")
        return random_quantized(network, seed, scheme=scheme, weight_bits=weight_bits,
                                act_bits=act_bits)
    if calibration is None:
        raise AccelError(f"{path}: a float model needs --calibration X.npy (a trained Keras "
                         f"model) or --seed N (random weights) to be quantized")
    if suffix not in KERAS_SUFFIXES:
        raise AccelError(f"{path}: a spec file has no weights: use --seed N for random weights")
    from .float_model import fold
    from .keras_weights import read_keras_weights
    from .ptq import quantize_folded

    data = load_array(calibration, "calibration data")
    check_network(network, str(calibration), images=len(data) if data.ndim else 1,
                  what="calibration images")
    folded = fold(network, read_keras_weights(path, network))
    try:
        return quantize_folded(network, folded, data, scheme=scheme, weight_bits=weight_bits,
                               act_bits=act_bits,
                               source=f"{path} calibrated on {Path(calibration).name}")
    except AccelError as e:
        message = str(e)
        if message.startswith("calibration data"):  # about the file: name it
            raise AccelError(f"{calibration}: {message}") from None
        raise
