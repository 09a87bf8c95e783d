#!/usr/bin/env python3
"""Record what TFLite's reference kernels compute on the four MLPerf Tiny models.

Run with the project venv (ai-edge-litert and tflite; no TensorFlow), after make_models.py::

    PYTHONPATH=$PWD .venv/bin/python examples/mlperf_tiny/make_expected.py

For each <name>.tflite here, a few seeded float samples (inputs.py) are quantized with the
model's input parameters and run one per invoke() through
``Interpreter(..., experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
experimental_preserve_all_tensors=True)``. Written, in the format of
examples/digits/*_expected.{npz,json} (see examples/digits/README.md):

- <name>_expected.npz: 'input' (int8, batch first) and every tensor an op writes, keyed
  t<index:03d>_<sanitized name>, plus '__tensors__' (the op list as JSON). There is no
  'labels' array: the samples are synthetic and have no labels.
- <name>_expected.json: the op list and every tensor with its quantization parameters.
- <name>_input.npy: the same int8 input samples, for ``accel predict <name>.tflite ...``.
- models.json: per model, the operators (in order, and counted), each operator's options
  (fused activation, padding, strides, filter sizes, ...), the quantization of the inputs and
  output of every ADD and AVERAGE_POOL_2D, and the file sizes.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import tflite
from ai_edge_litert.interpreter import Interpreter, OpResolverType

OUT = Path(__file__).resolve().parent
sys.path[:0] = [str(OUT), str(OUT.parent)]
import inputs  # noqa: E402
from reference_records import (  # noqa: E402
    op_records,
    quantize_input,
    sanitize,
    tensor_record,
)

N_SAMPLES = {"ic_resnet8": 2, "kws_ds_cnn": 2, "vww_mobilenet_v1": 1}  # size budget; default below
N_SAMPLES_DEFAULT = 4


# --------------------------------------------------------------------------- reference run
def run_reference(name: str, n: int) -> dict:
    path = OUT / f"{name}.tflite"
    it = Interpreter(
        model_path=str(path),
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

    xq = quantize_input(inputs.samples(name, n), in_scale, in_zp)
    stored: dict[int, list] = {i: [] for i in op_outputs}
    for k in range(n):
        it.set_tensor(inp["index"], xq[k : k + 1])
        it.invoke()
        for i in op_outputs:
            stored[i].append(it.get_tensor(i).copy())

    arrays = {"input": xq}
    layout = {}
    for i in op_outputs:
        a = np.stack(stored[i])  # (N, *tensor_shape)
        shp = list(tdet[i]["shape"])
        if len(shp) >= 2 and shp[0] == 1:
            arrays[keys[i]] = a[:, 0]  # activation [1, ...] -> batch first (N, ...)
            layout[i] = "batch"
        else:
            arrays[keys[i]] = a  # int32 shape arithmetic: one copy per sample, stacked
            layout[i] = "stacked"

    op_list = op_records(ops, tdet, keys, layout)
    arrays["__tensors__"] = np.array(json.dumps(op_list))
    np.savez_compressed(OUT / f"{name}_expected.npz", **arrays)
    np.save(OUT / f"{name}_input.npy", xq)

    meta = {
        "model": f"{name}.tflite",
        "resolver": "BUILTIN_REF",
        "n_images": int(n),
        "input_distribution": f"examples/mlperf_tiny/inputs.py: samples({name!r}, {n})",
        "input": {**tensor_record(tdet[int(inp["index"])]), "key": "input"},
        "output": {**tensor_record(tdet[int(outd["index"])]), "key": keys[int(outd["index"])]},
        "input_quantization": (
            "q = clamp(round_half_away_from_zero(x / scale) + zero_point, -128, 127)"
        ),
        "ops": op_list,
        "tensors": [{**tensor_record(tdet[i]), "key": keys.get(i)} for i in sorted(tdet)],
    }
    (OUT / f"{name}_expected.json").write_text(json.dumps(meta, indent=1) + "\n")
    return {"ops": op_list, "tensors": tdet}


# --------------------------------------------------------------------------- graph facts
_ENUMS = {"FusedActivationFunction": tflite.ActivationFunctionType, "Padding": tflite.Padding}


def _enum_name(enum, value: int) -> str:
    for k, v in vars(enum).items():
        if not k.startswith("_") and v == value:
            return k
    return str(value)


def op_options(buf: bytes) -> list[dict]:
    """Each operator's builtin options, decoded generically with the tflite package."""
    model = tflite.Model.GetRootAsModel(buf, 0)
    sub = model.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
    out = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        kind = names.get(op.BuiltinOptionsType(), "NONE")
        opts: dict = {}
        table = op.BuiltinOptions()
        if kind != "NONE" and table is not None:
            cls = getattr(tflite, kind)
            obj = cls()
            obj.Init(table.Bytes, table.Pos)
            for attr in dir(obj):
                if not attr[0].isupper() or attr.startswith(("Init", "GetRootAs")):
                    continue
                if attr.endswith(("Length", "AsNumpy", "IsNone", "BufferHasIdentifier")):
                    continue
                try:
                    v = getattr(obj, attr)()
                except TypeError:
                    continue  # vector accessors need an index
                if attr in _ENUMS:
                    v = _enum_name(_ENUMS[attr], v)
                if isinstance(v, (int, float, bool, str)):
                    opts[attr] = v
        out.append({"options_type": kind, **opts})
    return out


def facts(name: str, ref: dict) -> dict:
    buf = (OUT / f"{name}.tflite").read_bytes()
    ops, tdet = ref["ops"], ref["tensors"]
    options = op_options(buf)
    assert len(options) == len(ops)

    def q(i: int) -> dict:
        t = tdet[i]
        sc, zp = t["quantization"]
        return {"name": t["name"], "scale": float(sc), "zero_point": int(zp)}

    per_op = []
    for op, opt in zip(ops, options, strict=True):
        rec = {"op": op["op"], "output_shape": op["outputs"][0]["shape"], **opt}
        if op["op"] in ("ADD", "AVERAGE_POOL_2D"):
            rec["inputs_q"] = [q(i["index"]) for i in op["inputs"]]
            rec["output_q"] = q(op["outputs"][0]["index"])
        per_op.append(rec)
    sizes = {p.name: p.stat().st_size for p in sorted(OUT.glob(f"{name}*")) if p.is_file()}
    return {
        "op_sequence": [op["op"] for op in ops],
        "op_counts": dict(Counter(op["op"] for op in ops)),
        "ops": per_op,
        "file_sizes": sizes,
    }


def main(names: list[str]) -> int:
    path = OUT / "models.json"
    summary = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        n = N_SAMPLES.get(name, N_SAMPLES_DEFAULT)
        ref = run_reference(name, n)
        summary[name] = facts(name, ref)
        print(f"{name}: {summary[name]['op_counts']}", flush=True)
    import importlib.metadata as md

    summary["_versions"] = {p: md.version(p) for p in ("ai-edge-litert", "numpy", "tflite")}
    path.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    default = [n for n in inputs.SHAPES if (OUT / f"{n}.tflite").exists()]
    sys.exit(main(sys.argv[1:] or default))
