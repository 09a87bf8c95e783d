#!/usr/bin/env python3
"""Build the seed network and its 5x5 variant in Keras, train them briefly on the labelled
28x28 digits, and convert each to a fully-int8 TFLite model.

Run with a Python that has TensorFlow (NOT the project's .venv; see README.md here)::

    /work/tfenv/bin/python examples/seed/make_models.py

then record the reference interpreter's tensors with the project venv (no TensorFlow)::

    PYTHONPATH=$PWD .venv/bin/python examples/seed/make_expected.py

The architectures are the ones of examples/specs/seed_mnist_cnn.yaml and
seed_mnist_cnn_5x5.yaml (the two files are read, not copied): 28x28x1, Conv2D(32, k, same,
relu), MaxPooling2D(2), Conv2D(64, k, same, relu), MaxPooling2D(2), Flatten, Dense(units, relu),
Dense(10, softmax), with k = 3 and units = 128 (421,642 parameters), and k = 5 and units = 1024
(3,274,634 parameters).

Data: the only 28x28 digits with labels in examples/digits are the 450 test images
(digits28_test_x.npy, digits_test_y.npy; the 200 calibration images have no labels). The first
TRAIN_IMAGES of them train the model, the rest are held out: the accuracy on those is printed
and written to accuracy.json, and examples/seed/make_expected.py takes its samples from them.
The representative dataset is examples/digits/digits28_calib_x.npy (all 200 images, one per
batch). The models are fixtures for bit-exactness, trained only so that their activations and
logits look like a real network's (12 epochs on 300 images).

Conversion: int8 input and output, per-channel conv weights, per-tensor FULLY_CONNECTED weights
(as examples/mlperf_tiny/make_models.py does; TF 2.21's default would be per channel).
The runs are deterministic (seeds fixed, op determinism on, single inter-op thread).

Written here: <name>.tflite, seed_mnist_cnn.keras (float model, no optimizer; the 5x5 variant's
float model would be 13 MB and is not written), accuracy.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import yaml  # noqa: E402

OUT = Path(__file__).resolve().parent
EXAMPLES = OUT.parent
DIGITS = EXAMPLES / "digits"
SPECS = EXAMPLES / "specs"

keras = tf.keras
L = keras.layers

SEED = 0
TRAIN_IMAGES = 300  # of the 450 labelled 28x28 images; the other 150 are held out
EPOCHS = 12
NAMES = ("seed_mnist_cnn", "seed_mnist_cnn_5x5")
#: The float model is committed only where it stays small (the 5x5 one is 13 MB of float32).
KEEP_KERAS = ("seed_mnist_cnn",)

_LAYERS = {"Conv2D": L.Conv2D, "MaxPooling2D": L.MaxPooling2D, "Flatten": L.Flatten,
           "Dense": L.Dense}


def build(name: str):
    """The Keras model of examples/specs/<name>.yaml, layer by layer as the spec lists them."""
    spec = yaml.safe_load((SPECS / f"{name}.yaml").read_text())
    assert spec["name"] == name, (spec["name"], name)
    inp = keras.Input(tuple(spec["input"]))
    x = inp
    for entry in spec["layers"]:
        ((kind, kwargs),) = entry.items()
        x = _LAYERS[kind](**(kwargs or {}))(x)
    return keras.Model(inp, x, name=name)


def train(model, x, y) -> None:
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=EPOCHS, shuffle=True, verbose=0)


def convert(model, calib: np.ndarray) -> bytes:
    def representative():
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    return conv.convert()


def weight_scale_counts(tfl: bytes) -> dict[str, list[int]]:
    """Op name -> number of scales of each op's weight tensor (input 1)."""
    it = tf.lite.Interpreter(model_content=tfl)
    det = {t["index"]: t for t in it.get_tensor_details()}
    out: dict[str, list[int]] = {}
    for op in it._get_ops_details():
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED"):
            w = det[int(op["inputs"][1])]
            out.setdefault(op["op_name"], []).append(len(w["quantization_parameters"]["scales"]))
    return out


def int8_accuracy(tfl: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Argmax accuracy of the int8 model (TF's default kernels: a figure, not a fixture)."""
    it = tf.lite.Interpreter(model_content=tfl)
    it.allocate_tensors()
    inp, outd = it.get_input_details()[0], it.get_output_details()[0]
    scale, zp = inp["quantization"]
    hits = 0
    for k in range(len(x)):
        q = np.clip(np.round(x[k : k + 1] / scale) + zp, -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], q)
        it.invoke()
        hits += int(np.argmax(it.get_tensor(outd["index"])[0]) == y[k])
    return hits / len(x)


def main() -> int:
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(2)
    x = np.load(DIGITS / "digits28_test_x.npy").astype(np.float32)
    y = np.load(DIGITS / "digits_test_y.npy")
    calib = np.load(DIGITS / "digits28_calib_x.npy").astype(np.float32)
    x_tr, y_tr, x_ho, y_ho = x[:TRAIN_IMAGES], y[:TRAIN_IMAGES], x[TRAIN_IMAGES:], y[TRAIN_IMAGES:]
    record = {}
    for name in NAMES:
        t = time.time()
        keras.backend.clear_session()  # restart the auto layer names: conv2d, conv2d_1, ...
        keras.utils.set_random_seed(SEED)
        model = build(name)
        train(model, x_tr, y_tr)
        float_acc = float(np.mean(np.argmax(model.predict(x_ho, verbose=0), 1) == y_ho))
        tfl = convert(model, calib)
        (OUT / f"{name}.tflite").write_bytes(tfl)
        counts = weight_scale_counts(tfl)
        assert all(c == 1 for c in counts["FULLY_CONNECTED"]), counts
        assert all(c > 1 for c in counts["CONV_2D"]), counts
        if name in KEEP_KERAS:
            plain = keras.Model.from_config(model.get_config())  # no optimizer in the file
            plain.set_weights(model.get_weights())
            plain.save(OUT / f"{name}.keras")
        record[name] = {
            "params": model.count_params(),
            "train_images": TRAIN_IMAGES, "epochs": EPOCHS,
            "held_out_images": len(x_ho),
            "float_accuracy_held_out": float_acc,
            "int8_accuracy_held_out": int8_accuracy(tfl, x_ho, y_ho),
            "weight_scale_counts": counts,
            "tflite_bytes": len(tfl),
        }
        r = record[name]
        print(f"{name}: {r['params']:,} params, float {r['float_accuracy_held_out']:.4f} "
              f"int8 {r['int8_accuracy_held_out']:.4f} on {len(x_ho)} held out, "
              f"{len(tfl):,} B tflite, {time.time() - t:.1f}s", flush=True)
    import importlib.metadata as md

    record["_versions"] = {"python": sys.version.split()[0],
                           **{p: md.version(p) for p in ("tensorflow-cpu", "keras", "numpy")}}
    (OUT / "accuracy.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
