"""The TFLite importer and the golden model on the one-operator models of the MLPerf Tiny
operator corpus (examples/tflite_ops): each case's model is rebuilt from the corpus's seed by
its generator (make_op_cases.py, flatbuffers only), read by ``load_tflite`` as a user's file
would be, run by ``golden.run`` and compared bit for bit with the interpreter's stored output.

This covers what ``tests/test_tflite_kernels.py`` does not: the importer's reading of each
operator's options, weights (per-channel depthwise filters on dimension 3), axis and paddings
tensors, the quantized layers and the golden operator dispatch. ADD and CONCATENATION cases
have two or more graph inputs, which the importer does not take (one model input); they are
covered through the MLPerf Tiny models and the spec tests.
"""

import importlib.util
import json
from functools import cache

import numpy as np
import pytest

from accel.errors import AccelError
from accel.quant import golden
from accel.quant.tflite_model import load_tflite

from .paths import EXAMPLES

OPS_DIR = EXAMPLES / "tflite_ops"
#: Operators with one graph input, and how many corpus cases each replays.
OPS = {"depthwise_conv2d": 300, "average_pool2d": 300, "mean": 300, "pad": 300}


@cache
def generator():
    spec = importlib.util.spec_from_file_location("make_op_cases", OPS_DIR / "make_op_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def fixture(op):
    with np.load(OPS_DIR / f"{op}.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return arrays, json.loads(str(arrays["__meta__"]))["seed"]


def fixture_cases(op):
    """The corpus's cases as (x, y), in order (the sampler's refused draws are not stored)."""
    arrays, _ = fixture(op)

    def cut(name, i):
        bounds = np.concatenate([[0], np.cumsum(np.prod(arrays[f"{name}_shape"].astype(
            np.int64), axis=1))])
        ndim = int(arrays[f"{name}_ndim"][i])
        shape = tuple(int(s) for s in arrays[f"{name}_shape"][i][4 - ndim:])
        return arrays[name][bounds[i]:bounds[i + 1]].reshape(shape)

    for i in range(len(arrays["x_ndim"])):
        yield cut("x", i), cut("y", i)


@pytest.mark.parametrize("op", sorted(OPS))
def test_imported_one_operator_models_match_the_corpus(op, tmp_path):
    g = generator()
    _, base = fixture(op)
    seed = [base, list(g.CASES).index(op)]  # as make_op_cases.main draws the corpus
    rng = np.random.default_rng(seed)
    cases = fixture_cases(op)
    x_want, y_want = next(cases)
    compared = refused = 0
    path = tmp_path / f"{op}.tflite"
    for _ in range(2 * OPS[op]):
        if compared + refused == OPS[op]:
            break
        _, model, x = g.SAMPLERS[op](rng)
        if x.shape != x_want.shape or not np.array_equal(x, x_want):
            continue  # a draw the interpreter refused when the corpus was made
        path.write_bytes(model)
        try:
            qnet = load_tflite(path)
        except AccelError as e:
            # Only PAD of the batch or channel axis is outside what a layer spec can say.
            assert op == "pad" and "only padding of height and width" in str(e), str(e)
            refused += 1
        else:
            (got,) = golden.run(qnet, x).values()
            assert np.array_equal(got.reshape(y_want.shape), y_want), (
                f"{op}, corpus seed {seed}, case {compared + refused}")
            compared += 1
        x_want, y_want = next(cases)
    assert compared + refused == OPS[op], (op, compared, refused, "draws out of step")
    assert compared >= 0.75 * OPS[op], (op, compared, refused)
