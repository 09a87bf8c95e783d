#!/usr/bin/env python3
"""Record what TFLite's reference kernels compute on the two seed models.

Run with the project venv (ai-edge-litert; no TensorFlow), after make_models.py::

    PYTHONPATH=$PWD .venv/bin/python examples/seed/make_expected.py

For each <name>.tflite here, the first N_SAMPLES held-out digits (digits28_test_x.npy from
index make_models.TRAIN_IMAGES on, never trained on) are quantized with the model's input
parameters and run one per invoke() through ``Interpreter(...,
experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
experimental_preserve_all_tensors=True)``. Written, in the format of
examples/digits/*_expected.{npz,json} (see examples/digits/README.md):

- <name>_expected.npz: 'input' (int8, batch first), 'labels' (int64) and every tensor an op
  writes, keyed t<index:03d>_<sanitized name>, plus '__tensors__' (the op list as JSON).
- <name>_expected.json: the op list, the input and output tensors, and every tensor with its
  quantization parameters.
- <name>_input.npy: the same int8 input samples, for ``accel predict`` / ``accel sim --input``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

OUT = Path(__file__).resolve().parent
DIGITS = OUT.parent / "digits"
sys.path.insert(0, str(OUT.parent))
from reference_records import (  # noqa: E402
    op_records,
    quantize_input,
    sanitize,
    tensor_record,
)

NAMES = ("seed_mnist_cnn", "seed_mnist_cnn_5x5")
FIRST = 300  # make_models.TRAIN_IMAGES: the held-out images start here (no TF import here)
N_SAMPLES = 4


def run_reference(name: str, x: np.ndarray, y: np.ndarray) -> None:
    it = Interpreter(
        model_path=str(OUT / f"{name}.tflite"),
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    it.allocate_tensors()
    inp, outd = it.get_input_details()[0], it.get_output_details()[0]
    assert inp["dtype"] == np.int8 and outd["dtype"] == np.int8
    ops = it._get_ops_details()  # execution order == subgraph operator order
    assert all(op["op_name"] != "DELEGATE" for op in ops), "reference run must not delegate"
    tdet = {t["index"]: t for t in it.get_tensor_details()}
    op_outputs = [int(o) for op in ops for o in op["outputs"]]
    keys = {i: sanitize(i, tdet[i]["name"]) for i in op_outputs}
    keys[int(inp["index"])] = "input"

    xq = quantize_input(x, *inp["quantization"])
    stored: dict[int, list] = {i: [] for i in op_outputs}
    for k in range(len(xq)):
        it.set_tensor(inp["index"], xq[k : k + 1])
        it.invoke()
        for i in op_outputs:
            stored[i].append(it.get_tensor(i).copy())

    arrays = {"input": xq, "labels": y.astype(np.int64)}
    layout = {}
    for i in op_outputs:
        a = np.stack(stored[i])
        shp = list(tdet[i]["shape"])
        if len(shp) >= 2 and shp[0] == 1:
            arrays[keys[i]] = a[:, 0]  # activation [1, ...] -> batch first (N, ...)
            layout[i] = "batch"
        else:
            arrays[keys[i]] = a  # int32 shape arithmetic of Flatten: one copy per sample
            layout[i] = "stacked"

    op_list = op_records(ops, tdet, keys, layout)
    arrays["__tensors__"] = np.array(json.dumps(op_list))
    np.savez_compressed(OUT / f"{name}_expected.npz", **arrays)
    np.save(OUT / f"{name}_input.npy", xq)

    meta = {
        "model": f"{name}.tflite",
        "resolver": "BUILTIN_REF",
        "n_images": len(xq),
        "images": f"examples/digits/digits28_test_x.npy[{FIRST}:{FIRST + len(xq)}] (held out)",
        "input": {**tensor_record(tdet[int(inp["index"])]), "key": "input"},
        "output": {**tensor_record(tdet[int(outd["index"])]), "key": keys[int(outd["index"])]},
        "input_quantization": (
            "q = clamp(round_half_away_from_zero(x / scale) + zero_point, -128, 127)"
        ),
        "ops": op_list,
        "tensors": [{**tensor_record(tdet[i]), "key": keys.get(i)} for i in sorted(tdet)],
    }
    (OUT / f"{name}_expected.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{name}: {len(ops)} ops, {len(xq)} samples, argmax "
          f"{[int(np.argmax(v)) for v in arrays[keys[int(outd['index'])]]]} labels {y.tolist()}")


def main(names) -> int:
    x = np.load(DIGITS / "digits28_test_x.npy")[FIRST : FIRST + N_SAMPLES]
    y = np.load(DIGITS / "digits_test_y.npy")[FIRST : FIRST + N_SAMPLES]
    for name in names:
        run_reference(name, x, y)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or NAMES))
