#!/usr/bin/env python3
"""Build the four MLPerf Tiny reference architectures in Keras, with seeded random weights,
and convert each to a fully-int8 TFLite model.

Run with a Python that has TensorFlow (NOT the project's .venv; see README.md here)::

    ../tfenv/bin/python examples/mlperf_tiny/make_models.py

then record the reference interpreter's tensors with the project venv (no TensorFlow)::

    PYTHONPATH=$PWD .venv/bin/python examples/mlperf_tiny/make_expected.py

The architectures follow the training definitions published in mlcommons/tiny,
benchmark/training/ (image_classification/keras_model.py: resnet_v1_eembc with 16/32/64
filters; keyword_spotting/keras_model.py: ds_cnn; visual_wake_words/vww_model.py:
mobilenet_v1; anomaly_detection/keras_model.py: get_model(640)); the code here is our own.
Their layer choices are kept: BatchNormalization and a separate ReLU after every convolution
or hidden dense layer, 'same' padding, the strides, the L2 regularizers and he_normal
initializers, Dropout in DS-CNN, the final AveragePooling2D + Flatten + Dense (softmax).

Weights: Keras's seeded initializers, then every bias and every BatchNormalization's
gamma/beta set to seeded random values, and each BatchNormalization's moving mean/variance set
to the statistics of its own input over the calibration set (layer by layer, in order), so
folding BN into the convolution is not the identity and the activations keep a healthy range;
in the three classifiers the last Dense is scaled so that its logits spread by about 1.5 (else
every sample saturates the softmax on one class). No training: there is no data to train on.
The runs are deterministic: two runs gave byte-identical .tflite files.

Written here: <name>.keras (float model, no optimizer), <name>.h5 (legacy HDF5),
<name>.tflite (int8 in and out, per-channel conv and depthwise weights, per-tensor fully
connected weights), keras_summaries.json (Keras's own figures per layer, plus MACs),
keras_summaries.txt (model.summary() as printed).
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
os.environ["COLUMNS"] = "130"  # rich, under model.summary(), wraps at 80 columns otherwise

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT))
import inputs  # noqa: E402

keras = tf.keras
L = keras.layers

SEED = 0
N_CALIB = 64  # representative dataset (and BatchNormalization statistics): samples per model
WEIGHT_DECAY = 1e-4
LOGIT_SPREAD = 1.5


# --------------------------------------------------------------------------- architectures
def _conv(x, filters, kernel, strides=1):
    return L.Conv2D(filters, kernel, strides=strides, padding="same",
                    kernel_initializer="he_normal",
                    kernel_regularizer=keras.regularizers.L2(WEIGHT_DECAY))(x)


def _depthwise(x, strides=1, init="he_normal"):
    return L.DepthwiseConv2D(3, strides=strides, padding="same", depth_multiplier=1,
                             depthwise_initializer=init,
                             depthwise_regularizer=keras.regularizers.L2(WEIGHT_DECAY))(x)


def _bn_relu(x):
    return L.Activation("relu")(L.BatchNormalization()(x))


def ic_resnet8():
    """ResNet-8 (EEMBC/MLPerf Tiny variant of ResNet v1) for CIFAR-10, 32x32x3 -> 10.

    A 3x3 conv stem, then three residual stages of two 3x3 convs (16, 32, 64 filters); stages
    two and three start with stride 2 and take the shortcut through a 1x1 stride-2 conv (no BN);
    the sum goes through a ReLU. Then an 8x8 average pool, Flatten, Dense(10, softmax).
    """
    inp = keras.Input((32, 32, 3))
    x = _bn_relu(_conv(inp, 16, 3))
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = _bn_relu(_conv(x, filters, 3, stride))
        y = L.BatchNormalization()(_conv(y, filters, 3))
        shortcut = x if stride == 1 else _conv(x, filters, 1, stride)
        x = L.Activation("relu")(L.Add()([shortcut, y]))
    x = L.AveragePooling2D(pool_size=min(x.shape[1:3]))(x)  # 8x8 -> 1x1
    x = L.Flatten()(x)
    out = L.Dense(10, activation="softmax", kernel_initializer="he_normal")(x)
    return keras.Model(inp, out, name="ic_resnet8")


def kws_ds_cnn():
    """DS-CNN for keyword spotting, 49x10x1 MFCCs -> 12 classes.

    A 10x4 stride-2 conv with 64 filters ('same': 25x5), four depthwise-separable blocks
    (3x3 depthwise + 1x1 conv with 64 filters, each with BN and ReLU), Dropout, an average
    pool, Flatten, Dense(12, softmax). The reference sizes the pool as
    (int(49 / 2), int(10 / 2)) = (24, 5), one frame short of the 25x5 map, so with its default
    'valid' padding and stride the pool drops the last frame; we keep that.
    """
    shape = (49, 10, 1)
    inp = keras.Input(shape)
    reg = keras.regularizers.L2(WEIGHT_DECAY)
    x = L.Conv2D(64, (10, 4), strides=(2, 2), padding="same", kernel_regularizer=reg)(inp)
    x = L.Dropout(0.2)(_bn_relu(x))
    for _ in range(4):
        x = _bn_relu(_depthwise(x, init="glorot_uniform"))
        x = _bn_relu(L.Conv2D(64, (1, 1), padding="same",
                              kernel_regularizer=keras.regularizers.L2(WEIGHT_DECAY))(x))
    x = L.Dropout(0.4)(x)
    x = L.AveragePooling2D(pool_size=(shape[0] // 2, shape[1] // 2))(x)
    x = L.Flatten()(x)
    out = L.Dense(12, activation="softmax")(x)
    return keras.Model(inp, out, name="kws_ds_cnn")


def vww_mobilenet_v1():
    """MobileNetV1 with width 0.25 for visual wake words, 96x96x3 -> 2 classes.

    A 3x3 stride-2 conv with 8 filters, then 13 depthwise-separable blocks (3x3 depthwise with
    BN+ReLU, then 1x1 conv with BN+ReLU); the pointwise filters double at blocks 1, 2, 4, 6 and
    12 (8 -> 16 -> 32 -> 64 -> 128 -> 256) and the depthwise stride is 2 at blocks 2, 4, 6 and
    12 (48 -> 24 -> 12 -> 6 -> 3). Plain ReLU (not ReLU6), 'same' padding (no ZeroPadding2D),
    biases on: the reference's choices. Then a 3x3 average pool, Flatten, Dense(2, softmax).
    """
    inp = keras.Input((96, 96, 3))
    x = _bn_relu(_conv(inp, 8, 3, 2))
    filters = 8
    #       block: 1  2  3  4  5  6  7  8  9 10 11 12 13
    strides = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
    doubles = (1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0)
    for stride, double in zip(strides, doubles, strict=True):
        x = _bn_relu(_depthwise(x, stride))
        filters *= 2 if double else 1
        x = _bn_relu(_conv(x, filters, 1))
    x = L.AveragePooling2D(pool_size=tuple(x.shape[1:3]))(x)  # 3x3 -> 1x1
    x = L.Flatten()(x)
    out = L.Dense(2, activation="softmax")(x)
    return keras.Model(inp, out, name="vww_mobilenet_v1")


def ad_autoencoder():
    """The ToyADMOS dense autoencoder, 640 -> 128 x4 -> 8 -> 128 x4 -> 640.

    Every hidden Dense is followed by BatchNormalization and ReLU; the output Dense is linear.
    Layer names as the reference gives them (Dense_1.., Batch_Normalization_1..).
    """
    inp = keras.Input((640,))
    x = inp
    for i, units in enumerate((128, 128, 128, 128, 8, 128, 128, 128, 128), start=1):
        x = L.Dense(units, name=f"Dense_{i}")(x)
        x = L.BatchNormalization(name=f"Batch_Normalization_{i}")(x)
        x = L.Activation("relu")(x)
    out = L.Dense(640)(x)
    return keras.Model(inp, out, name="ad_autoencoder")


BUILDERS = {
    "ic_resnet8": ic_resnet8,
    "kws_ds_cnn": kws_ds_cnn,
    "vww_mobilenet_v1": vww_mobilenet_v1,
    "ad_autoencoder": ad_autoencoder,
}


# --------------------------------------------------------------------------- weights
def randomize(model, calib: np.ndarray, seed: int) -> None:
    """Seeded biases and BN gamma/beta; BN moving statistics from the calibration set."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.Dense)) and layer.use_bias:
            w = layer.get_weights()
            w[1] = rng.normal(0.0, 0.05, w[1].shape).astype(np.float32)
            layer.set_weights(w)
    for layer in model.layers:
        if not isinstance(layer, L.BatchNormalization):
            continue
        # the BN's input on the calibration set, with every earlier BN already set
        probe = keras.Model(model.inputs, layer.input)
        a = probe.predict(calib, batch_size=16, verbose=0)
        axes = tuple(range(a.ndim - 1))
        c = a.shape[-1]
        gamma = rng.uniform(0.5, 1.5, c)
        beta = rng.normal(0.1, 0.2, c)
        mean = a.mean(axis=axes)
        var = a.var(axis=axes)
        layer.set_weights([v.astype(np.float32) for v in (gamma, beta, mean, var)])
    head = model.layers[-1]
    if isinstance(head, L.Dense) and head.activation is keras.activations.softmax:
        # Random features give logits far apart: every sample would get the same saturated
        # softmax. Scale the last Dense so its logits spread by about 1.5 (std within a sample).
        feats = keras.Model(model.inputs, head.input).predict(calib, batch_size=16, verbose=0)
        w, b = head.get_weights()
        logits = feats @ w + b
        k = LOGIT_SPREAD / float(np.std(logits - logits.mean(axis=1, keepdims=True)))
        head.set_weights([w * np.float32(k) for w in head.get_weights()])


# --------------------------------------------------------------------------- conversion
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
    # TF 2.21's default is per-channel FULLY_CONNECTED weights; the published MLPerf Tiny
    # models (older converters) and the issue ask for per-tensor ones. Conv and depthwise
    # weights stay per-channel.
    conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    return conv.convert()


def weight_scale_counts(tfl: bytes) -> dict[str, list[int]]:
    """Op name -> number of scales of each op's weight tensor (input 1)."""
    it = tf.lite.Interpreter(model_content=tfl)
    det = {t["index"]: t for t in it.get_tensor_details()}
    out: dict[str, list[int]] = {}
    for op in it._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = det[int(op["inputs"][1])]
            out.setdefault(op["op_name"], []).append(len(w["quantization_parameters"]["scales"]))
    return out


# --------------------------------------------------------------------------- summaries
def macs(layer) -> int:
    """Multiply-accumulates of one inference (batch 1); 0 for layers without weights' MACs."""
    if isinstance(layer, L.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        h, w, c = layer.output.shape[1:]
        return h * w * c * kh * kw
    if isinstance(layer, L.Conv2D):
        kh, kw = layer.kernel_size
        h, w, c = layer.output.shape[1:]
        return h * w * c * kh * kw * layer.input.shape[-1]
    if isinstance(layer, L.Dense):
        return int(layer.input.shape[-1]) * layer.units
    return 0


def inbound(layer) -> list[str]:
    names = []
    for node in layer._inbound_nodes:
        for t in node.input_tensors:
            names.append(t._keras_history[0].name)
    return names


def describe(model) -> dict:
    rows = [
        {"name": layer.name, "type": type(layer).__name__,
         "output_shape": list(layer.output.shape[1:]), "params": layer.count_params(),
         "connected_to": inbound(layer), "macs": macs(layer)}
        for layer in model.layers
    ]
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = model.count_params()
    return {
        "layers": rows,
        "total_params": total,
        "trainable_params": trainable,
        "non_trainable_params": total - trainable,
        "macs": sum(r["macs"] for r in rows),
    }


def summary_text(model) -> str:
    lines: list[str] = []
    model.summary(line_length=128, print_fn=lambda s, **_: lines.append(s))
    return "\n".join(lines)


def save_float(model, name: str) -> dict[str, str]:
    status = {}
    model.save(OUT / f"{name}.keras")
    status["keras"] = "ok"
    try:
        model.save(OUT / f"{name}.h5")  # legacy HDF5; Keras warns, as expected
        status["h5"] = "ok"
    except Exception as exc:  # record why, keep going
        status["h5"] = f"failed: {type(exc).__name__}: {exc}"
        print(f"  {name}.h5: {status['h5']}", flush=True)
    return status


# --------------------------------------------------------------------------- main
def main(names: list[str]) -> int:
    t0 = time.time()
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(2)

    summaries_path = OUT / "keras_summaries.json"
    summaries = json.loads(summaries_path.read_text()) if summaries_path.exists() else {}
    texts = {}
    for name in names:
        t = time.time()
        keras.backend.clear_session()  # restart the auto layer names: conv2d, conv2d_1, ...
        keras.utils.set_random_seed(SEED)
        model = BUILDERS[name]()
        calib = inputs.calibration(name, N_CALIB)
        randomize(model, calib, SEED)
        saved = save_float(model, name)
        tfl = convert(model, calib)
        (OUT / f"{name}.tflite").write_bytes(tfl)
        counts = weight_scale_counts(tfl)
        assert all(c == 1 for c in counts.get("FULLY_CONNECTED", [])), counts
        assert all(c > 1 for op in ("CONV_2D", "DEPTHWISE_CONV_2D") for c in counts.get(op, []))
        summaries[name] = describe(model)
        summaries[name]["saved"] = saved
        summaries[name]["weight_scale_counts"] = counts
        texts[name] = summary_text(model)
        s = summaries[name]
        print(f"{name}: {s['total_params']:,} params, {s['macs']:,} MACs, "
              f"{len(tfl):,} B tflite, {time.time() - t:.1f}s", flush=True)
    summaries["_versions"] = versions()
    summaries["_build"] = {
        "seed": SEED, "calibration_samples": N_CALIB,
        "macs": "Conv2D: H_out*W_out*C_out*KH*KW*C_in; DepthwiseConv2D: H_out*W_out*C*KH*KW; "
                "Dense: in*out; BatchNormalization, pooling, Add, activations: 0",
    }
    summaries_path.write_text(json.dumps(summaries, indent=1) + "\n")
    txt = OUT / "keras_summaries.txt"
    blocks = {}  # keep the blocks of models not rebuilt in this run
    for block in txt.read_text().split("\n=== ")[1:] if txt.exists() else []:
        head, _, body = block.partition(" ===\n")
        blocks[head] = body.rstrip("\n")
    blocks.update({k: v.rstrip("\n") for k, v in texts.items()})
    txt.write_text("".join(f"\n=== {k} ===\n{blocks[k]}\n" for k in BUILDERS if k in blocks))
    print(f"total {time.time() - t0:.1f}s")
    return 0


def versions() -> dict:
    import importlib.metadata as md

    v = {"python": sys.version.split()[0]}
    for p in ("tensorflow-cpu", "tensorflow", "keras", "numpy", "h5py"):
        try:
            v[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return v


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(BUILDERS)))
