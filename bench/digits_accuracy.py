"""Accuracy of the trained digits models: float, accel's int8, TFLite's int8.

    .venv/bin/python bench/digits_accuracy.py

For each model in examples/digits, on the 450 held-out images:
- float: the Keras model's float forward pass (accel's NumPy implementation, BN folded);
- accel PTQ int8 / pow2: `accel quantize MODEL.keras --calibration ...` then the golden model;
- TFLite int8: the golden model on the converter's .tflite, which is bit-exact with TFLite's
  reference interpreter (tests/test_golden_tflite.py), so it *is* TFLite's accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from accel.quant.float_model import float_forward, fold
from accel.quant.keras_weights import read_keras_weights
from accel.quant.load import load_quantized_model
from accel.quant.predict import predict
from accel.spec import load_network

DIGITS = Path(__file__).resolve().parent.parent / "examples" / "digits"
DATA = {"digits_small": "digits", "digits_valid_s2": "digits16", "dense_pc": "digits",
        "dense_pt": "digits", "digits_cnn": "digits28"}


def main() -> None:
    labels = DIGITS / "digits_test_y.npy"
    y = np.load(labels)
    print(f"{'model':<16} {'float':>7} {'accel int8':>10} {'accel pow2':>10} {'TFLite int8':>11}")
    for name, data in DATA.items():
        keras_path = DIGITS / f"{name}.keras"
        if not keras_path.exists():
            keras_path = DIGITS / "dense_pc.keras"  # dense_pt is the same float model
        x = DIGITS / f"{data}_test_x.npy"
        calib = DIGITS / f"{data}_calib_x.npy"
        net = load_network(keras_path)
        probs = list(float_forward(net, fold(net, read_keras_weights(keras_path, net)),
                                   np.load(x)).values())[-1]
        row = [float((probs.argmax(axis=1) == y).mean())]
        for scheme in ("tflite-int8", "pow2"):
            q = load_quantized_model(keras_path, calibration=calib, scheme=scheme)
            row.append(predict(q, x, labels=labels)["accuracy"])
        row.append(predict(load_quantized_model(DIGITS / f"{name}.tflite"), x,
                           labels=labels)["accuracy"])
        cells = (f"{v:>{w}.4f}" for v, w in zip(row, (7, 10, 10, 11), strict=True))
        print(f"{name:<16} " + " ".join(cells))


if __name__ == "__main__":
    main()
