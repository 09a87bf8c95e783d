"""Seeded synthetic inputs for the four MLPerf Tiny reference architectures (NumPy only).

No dataset can be downloaded here, so the representative dataset (calibration) and the test
samples are drawn from simple distributions with the value range of each benchmark's real
input. Both make_models.py (TensorFlow side venv) and make_expected.py (project venv, no
TensorFlow) import this module, so the two always draw the same numbers.

- ``ic_resnet8``: CIFAR-10 images scaled to [0, 1] (the reference divides by 255): uniform.
- ``kws_ds_cnn``: 49 frames x 10 MFCCs: normal, mean 0, standard deviation 10 / (1 + c / 3)
  for coefficient c (10 for the first, 4 for the last: the spread falls with the coefficient
  index, as in real MFCCs), clipped to [-40, 40].
- ``vww_mobilenet_v1``: 96x96 RGB images scaled to [0, 1]: uniform.
- ``ad_autoencoder``: 5 frames x 128 log-mel energies (dB), flattened to 640: normal, mean -20,
  standard deviation 10, clipped to [-60, 20].
"""

from __future__ import annotations

import numpy as np

#: model name -> input shape without the batch dimension
SHAPES = {
    "ic_resnet8": (32, 32, 3),
    "kws_ds_cnn": (49, 10, 1),
    "vww_mobilenet_v1": (96, 96, 3),
    "ad_autoencoder": (640,),
}
#: per-model seed offsets: the calibration set and the test samples never share a stream
CALIB_SEED = 0
TEST_SEED = 1000


def draw(name: str, n: int, seed: int) -> np.ndarray:
    """``n`` float32 inputs of model ``name``, batch first, from ``seed``."""
    shape = SHAPES[name]
    rng = np.random.default_rng([seed, sorted(SHAPES).index(name)])
    if name in ("ic_resnet8", "vww_mobilenet_v1"):
        x = rng.uniform(0.0, 1.0, (n, *shape))
    elif name == "kws_ds_cnn":
        std = 10.0 / (1.0 + np.arange(shape[1]) / 3.0)
        x = np.clip(rng.normal(0.0, 1.0, (n, *shape)) * std[None, None, :, None], -40, 40)
    elif name == "ad_autoencoder":
        x = np.clip(rng.normal(-20.0, 10.0, (n, *shape)), -60, 20)
    else:
        raise KeyError(name)
    return x.astype(np.float32)


def calibration(name: str, n: int) -> np.ndarray:
    return draw(name, n, CALIB_SEED)


def samples(name: str, n: int) -> np.ndarray:
    return draw(name, n, TEST_SEED)
