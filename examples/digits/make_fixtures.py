#!/usr/bin/env python3
"""Regenerate the digits test fixtures (Keras models, int8 TFLite models, reference outputs).

Run with a Python that has TensorFlow, ai-edge-litert, scikit-learn and h5py (NOT the project's
.venv; see README.md in this folder):

    /opt/tfenv/bin/python examples/digits/make_fixtures.py

Everything is written next to this script. The script is deterministic in its data split,
upsampling, seeds and op-determinism; the .keras files still hold a save date, and float
training on another CPU / TF build may differ in the last bits, so regenerated files need
not be byte-identical, but each run is self-consistent: every *_expected.npz holds exactly
what TFLite's reference kernels (OpResolverType.BUILTIN_REF) compute for the .tflite saved
beside it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # plain float kernels, fewer surprises
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

keras = tf.keras
layers = keras.layers

OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT.parent))
from reference_records import quantize_input, sanitize, tensor_record  # noqa: E402

SEED = 0
N_CALIB = 200  # representative-dataset images (first 200 of the training split)
N_STORE = {"digits_cnn": 32}  # images whose every tensor is stored; default below
N_STORE_DEFAULT = 200
RESIZE_METHOD = "bilinear"  # tf.image.resize, antialias=False, half-pixel centres (TF2 default)


# --------------------------------------------------------------------------- data
def load_data():
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]  # (1797, 8, 8, 1) in [0, 1]
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return x_tr, y_tr, x_te, y_te


def upsample(x: np.ndarray, size: int) -> np.ndarray:
    out = tf.image.resize(x, (size, size), method=RESIZE_METHOD, antialias=False)
    return np.clip(out.numpy(), 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- models
def fresh(seed: int = SEED):
    keras.backend.clear_session()  # resets auto layer names: conv2d, conv2d_1, ...
    keras.utils.set_random_seed(seed)


def build_digits_cnn():
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="digits_cnn",
    )


def build_digits_small():
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            layers.Conv2D(8, 3, padding="valid", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ],
        name="digits_small",
    )


def build_digits_valid_s2():
    # Conv (linear) -> BatchNormalization -> ReLU so that the converter can fold the BN into
    # the conv's weights/bias and fuse the ReLU (BN after a ReLU could not be folded).
    return keras.Sequential(
        [
            keras.Input(shape=(16, 16, 1)),
            layers.Conv2D(8, 3, strides=2, padding="valid"),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Conv2D(16, 3, strides=1, padding="same", activation="relu6"),
            layers.MaxPooling2D(pool_size=3, strides=2, padding="same"),
            layers.Flatten(),
            layers.Dense(10),  # logits
        ],
        name="digits_valid_s2",
    )


def build_dense():
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            layers.Flatten(),
            layers.Dense(32, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="dense",
    )


def train(model, x, y, epochs, lr, logits=False):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
        metrics=["accuracy"],
    )
    t = time.time()
    model.fit(x, y, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    print(f"  trained {model.name}: {epochs} epochs in {time.time() - t:.1f}s", flush=True)


def float_accuracy(model, x, y) -> float:
    p = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(p, axis=1) == y))


def save_keras(model, name: str, keep_optimizer: bool):
    """Save <name>.keras and legacy <name>.h5."""
    if not keep_optimizer:
        # Fresh, uncompiled copy: no optimizer state in the files (size).
        clone = keras.Sequential.from_config(model.get_config())
        clone.set_weights(model.get_weights())
        model = clone
    model.save(OUT / f"{name}.keras")
    if keep_optimizer:
        # Legacy HDF5 (Keras warns; that is expected). Not for the large digits_cnn: its
        # .keras copy is enough and the .h5 would add 1.7 MB to the repository.
        model.save(OUT / f"{name}.h5")


# --------------------------------------------------------------------------- conversion
def convert(model, calib: np.ndarray, per_tensor_dense: str | None = None) -> bytes:
    def rep():
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    if per_tensor_dense is not None:
        setattr(conv, per_tensor_dense, True)
    return conv.convert()


def fc_weight_scale_counts(tfl: bytes) -> list[int]:
    """Number of quantization scales of each FULLY_CONNECTED weight tensor (via the interpreter)."""
    it = Interpreter(model_content=tfl)
    det = {t["index"]: t for t in it.get_tensor_details()}
    out = []
    for op in it._get_ops_details():
        if op["op_name"] == "FULLY_CONNECTED":
            w = det[int(op["inputs"][1])]
            out.append(len(w["quantization_parameters"]["scales"]))
    return out


# --------------------------------------------------------------------------- reference run
def run_reference(name: str, tfl_path: Path, x_te: np.ndarray, y_te: np.ndarray, n_store: int):
    it = Interpreter(
        model_path=str(tfl_path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    outd = it.get_output_details()[0]
    assert inp["dtype"] == np.int8 and outd["dtype"] == np.int8
    in_scale, in_zp = inp["quantization"]
    ops = it._get_ops_details()  # execution order == subgraph operator order
    assert all(op["op_name"] != "DELEGATE" for op in ops), "reference run must not delegate"
    tdet = {t["index"]: t for t in it.get_tensor_details()}
    op_outputs = [int(o) for op in ops for o in op["outputs"]]
    keys = {i: sanitize(i, tdet[i]["name"]) for i in op_outputs}
    keys[int(inp["index"])] = "input"

    xq = quantize_input(x_te, in_scale, in_zp)
    stored = {i: [] for i in op_outputs}
    preds = np.empty(len(x_te), dtype=np.int64)
    for n in range(len(x_te)):
        it.set_tensor(inp["index"], xq[n : n + 1])
        it.invoke()
        preds[n] = int(np.argmax(it.get_tensor(outd["index"])[0]))
        if n < n_store:
            for i in op_outputs:
                stored[i].append(it.get_tensor(i).copy())
    acc = float(np.mean(preds == y_te))

    arrays = {"input": xq[:n_store], "labels": y_te[:n_store].astype(np.int64)}
    layout = {}
    for i in op_outputs:
        a = np.stack(stored[i])  # (N, *tensor_shape)
        shp = list(tdet[i]["shape"])
        if len(shp) >= 2 and shp[0] == 1:
            arrays[keys[i]] = a[:, 0]  # activation [1, ...] -> batch first (N, ...)
            layout[i] = "batch"
        else:
            # e.g. the int32 SHAPE / STRIDED_SLICE / PACK outputs that compute Flatten's
            # target shape: one copy per image, stacked -> (N, *tensor_shape)
            arrays[keys[i]] = a
            layout[i] = "stacked"

    def ref(i: int) -> dict:
        i = int(i)
        if i < 0:
            return {"index": -1, "name": None, "key": None}  # optional input absent
        return {"index": i, "name": tdet[i]["name"], "key": keys.get(i)}

    op_list = []
    for op in ops:
        rec = {
            "op_index": int(op["index"]),
            "op": op["op_name"],
            "inputs": [ref(i) for i in op["inputs"]],
            "outputs": [],
        }
        for o in op["outputs"]:
            t = tdet[int(o)]
            sc, zp = t["quantization"]
            rec["outputs"].append(
                {
                    **ref(o),
                    "dtype": np.dtype(t["dtype"]).name,
                    "shape": [int(v) for v in t["shape"]],
                    "scale": float(sc),
                    "zero_point": int(zp),
                    "npz_layout": layout[int(o)],
                }
            )
        op_list.append(rec)
    arrays["__tensors__"] = np.array(json.dumps(op_list))
    np.savez_compressed(OUT / f"{name}_expected.npz", **arrays)

    meta = {
        "model": f"{name}.tflite",
        "resolver": "BUILTIN_REF",
        "n_images": int(n_store),
        "input": {**tensor_record(tdet[int(inp["index"])]), "key": "input"},
        "output": {**tensor_record(tdet[int(outd["index"])]), "key": keys[int(outd["index"])]},
        "input_quantization": (
            "q = clamp(round_half_away_from_zero(x / scale) + zero_point, -128, 127)"
        ),
        "ops": op_list,
        "tensors": [{**tensor_record(tdet[i]), "key": keys.get(i)} for i in sorted(tdet)],
    }
    (OUT / f"{name}_expected.json").write_text(json.dumps(meta, indent=1) + "\n")
    return acc, [op["op_name"] for op in ops]


# --------------------------------------------------------------------------- main
def main() -> int:
    t0 = time.time()
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_inter_op_parallelism_threads(1)

    x_tr, y_tr, x_te, y_te = load_data()
    x16_tr, x16_te = upsample(x_tr, 16), upsample(x_te, 16)
    x28_tr, x28_te = upsample(x_tr, 28), upsample(x_te, 28)
    print(f"train {x_tr.shape}, test {x_te.shape}", flush=True)

    np.save(OUT / "digits_test_x.npy", x_te)
    np.save(OUT / "digits_test_y.npy", y_te)
    np.save(OUT / "digits16_test_x.npy", x16_te)
    np.save(OUT / "digits28_test_x.npy", x28_te)
    np.save(OUT / "digits_calib_x.npy", x_tr[:N_CALIB])
    np.save(OUT / "digits16_calib_x.npy", x16_tr[:N_CALIB])
    np.save(OUT / "digits28_calib_x.npy", x28_tr[:N_CALIB])

    # name -> (builder, train x, test x, calib x, epochs, lr, logits, keep optimizer state)
    specs = {
        "digits_cnn": (build_digits_cnn, x28_tr, x28_te, 5, 1e-3, False, False),
        "digits_small": (build_digits_small, x_tr, x_te, 60, 1e-2, False, True),
        "digits_valid_s2": (build_digits_valid_s2, x16_tr, x16_te, 30, 3e-3, True, True),
        "dense": (build_dense, x_tr, x_te, 40, 3e-3, False, True),
    }
    accuracy = {
        "split": "sklearn load_digits, train_test_split(test_size=0.25, random_state=0, "
        "stratify=y): 1347 train / 450 test",
        "models": {},
    }
    ops_summary = {}
    for base, (build, xtr, xte, epochs, lr, logits, keep_opt) in specs.items():
        fresh()
        model = build()
        train(model, xtr, y_tr, epochs, lr, logits)
        facc = float_accuracy(model, xte, y_te)
        calib = xtr[:N_CALIB]
        if base == "dense":
            variants = {"dense_pc": None, "dense_pt": "per_tensor"}
        else:
            variants = {base: None}
        for name, pt in variants.items():
            save_keras(model, name, keep_opt)
            if pt is None:
                tfl = convert(model, calib)
                flag = None
            else:
                # Try the dense-only switch first, then the global one; keep the first that
                # really gives per-tensor FULLY_CONNECTED weights.
                for flag in (
                    "_experimental_disable_per_channel_quantization_for_dense_layers",
                    "_experimental_disable_per_channel",
                ):
                    tfl = convert(model, calib, flag)
                    counts = fc_weight_scale_counts(tfl)
                    print(f"  {name}: {flag} -> FC weight scale counts {counts}", flush=True)
                    if all(c == 1 for c in counts):
                        break
                else:
                    raise SystemExit("no converter flag produced per-tensor dense weights")
            (OUT / f"{name}.tflite").write_bytes(tfl)
            n_store = min(N_STORE.get(name, N_STORE_DEFAULT), len(xte))
            qacc, op_names = run_reference(name, OUT / f"{name}.tflite", xte, y_te, n_store)
            fc_counts = fc_weight_scale_counts(tfl)
            accuracy["models"][name] = {
                "float_keras_test_accuracy": round(facc, 6),
                "tflite_int8_test_accuracy": round(qacc, 6),
                "n_test": int(len(y_te)),
                "expected_npz_images": int(n_store),
                "input": f"{xte.shape[1]}x{xte.shape[2]}x1",
                "epochs": epochs,
                "per_tensor_flag": flag,
                "fc_weight_scale_counts": fc_counts,
            }
            ops_summary[name] = op_names
            print(f"  {name}: float {facc:.4f}  int8 {qacc:.4f}  ops {op_names}", flush=True)

    accuracy["upsampling"] = (
        f"tf.image.resize(method='{RESIZE_METHOD}', antialias=False) of the [0,1] 8x8 images, "
        "clipped to [0,1]"
    )
    accuracy["versions"] = versions()
    (OUT / "accuracy.json").write_text(json.dumps(accuracy, indent=1) + "\n")
    print(json.dumps(ops_summary, indent=1))
    total = sum(f.stat().st_size for f in OUT.iterdir() if f.is_file())
    print(f"examples/digits: {total / 1e6:.2f} MB in total")
    if total > 9.0e6:
        print("WARNING: fixtures exceed the ~8 MB budget", file=sys.stderr)
    print(f"total {time.time() - t0:.1f}s")
    return 0


def versions() -> dict:
    import importlib.metadata as md

    v = {"python": sys.version.split()[0]}
    for p in (
        "tensorflow-cpu",
        "tensorflow",
        "keras",
        "ai-edge-litert",
        "numpy",
        "scikit-learn",
        "h5py",
    ):
        try:
            v[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return v


if __name__ == "__main__":
    sys.exit(main())
