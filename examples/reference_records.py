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
