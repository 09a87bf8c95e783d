"""What the fixture scripts record of a TFLite reference run, in one place.

examples/digits/make_fixtures.py and examples/mlperf_tiny/make_expected.py both store the
reference interpreter's tensors in the format examples/digits/README.md describes; these are
the pieces of that format they share (numpy only, so either environment can import them).
"""

from __future__ import annotations

import re

import numpy as np


def sanitize(idx: int, name: str) -> str:
    """The npz key of tensor ``idx``: ``t<idx:03d>_<name with runs of other characters as _>``."""
    s = re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")
    return f"t{idx:03d}_{s[:60]}"


def quantize_input(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """Float samples to int8 codes as the converter's QUANTIZE does (round half away from 0)."""
    v = x.astype(np.float64) / scale
    r = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return np.clip(r + zp, -128, 127).astype(np.int8)


def tensor_record(t: dict) -> dict:
    """One interpreter tensor detail as plain JSON: index, name, dtype, shape, quantization."""
    qp = t["quantization_parameters"]
    return {
        "index": int(t["index"]),
        "name": t["name"],
        "dtype": np.dtype(t["dtype"]).name,
        "shape": [int(v) for v in t["shape"]],
        "scales": [float(v) for v in qp["scales"]],
        "zero_points": [int(v) for v in qp["zero_points"]],
        "quantized_dimension": int(qp["quantized_dimension"]),
    }


def op_records(ops: list[dict], tdet: dict[int, dict], keys: dict[int, str],
               layout: dict[int, str]) -> list[dict]:
    """The interpreter's operators in execution order as plain JSON: each op's inputs (index,
    name, npz key; index -1 for an absent optional input) and outputs (with dtype, shape,
    per-tensor scale and zero point, and ``layout``: how the npz stores it, "batch" or
    "stacked")."""
    def ref(i: int) -> dict:
        i = int(i)
        if i < 0:
            return {"index": -1, "name": None, "key": None}  # optional input absent
        return {"index": i, "name": tdet[i]["name"], "key": keys.get(i)}

    records = []
    for op in ops:
        rec = {"op_index": int(op["index"]), "op": op["op_name"],
               "inputs": [ref(i) for i in op["inputs"]], "outputs": []}
        for o in op["outputs"]:
            t = tdet[int(o)]
            sc, zp = t["quantization"]
            rec["outputs"].append({
                **ref(o), "dtype": np.dtype(t["dtype"]).name,
                "shape": [int(v) for v in t["shape"]], "scale": float(sc),
                "zero_point": int(zp), "npz_layout": layout[int(o)],
            })
        records.append(rec)
    return records
