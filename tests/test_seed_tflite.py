"""The seed network and its 5x5 variant as int8 TFLite models (examples/seed): the golden model
reproduces TFLite's reference interpreter on every layer, both fit the ULX3S-85F with their
first Dense layer streamed from SDRAM, and `accel sim --board ulx3s-85f` on each is bit-exact
with the golden model and returns the logits the reference interpreter recorded."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from accel.cli import main

from .board_sim import sim_on_board
from .paths import EXAMPLES

SEED = EXAMPLES / "seed"
MODELS = ("seed_mnist_cnn", "seed_mnist_cnn_5x5")
#: The interpreter's operators on the int8 data path (Flatten's shape ops skipped).
DATA_OPS = ("CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX")


def reference(name):
    """(operator index, operator, tensor) of every data-path operator, in order."""
    meta = json.loads((SEED / f"{name}_expected.json").read_text())
    expected = np.load(SEED / f"{name}_expected.npz")
    return [(op["op_index"], op["op"], expected[op["outputs"][0]["key"]])
            for op in meta["ops"] if op["op"] in DATA_OPS]


def reference_logits(name):
    """The last FULLY_CONNECTED's int8 output: what the accelerator returns (no softmax)."""
    (*_, (_, op, logits), (_, last, _)) = reference(name)
    assert (op, last) == ("FULLY_CONNECTED", "SOFTMAX")
    return logits


@pytest.mark.parametrize("name", MODELS)
def test_accel_predict_matches_the_reference_interpreter_on_every_layer(name):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.npz"
        result = CliRunner().invoke(main, ["predict", str(SEED / f"{name}.tflite"),
                                           str(SEED / f"{name}_input.npy"), "-o", str(out)])
        assert result.exit_code == 0, result.output
        with np.load(out) as data:
            ours = {key: data[key] for key in data.files if key.startswith("layers/")}
    want_all = reference(name)
    assert [op for _, op, _ in want_all] == ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D",
                                             "RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED",
                                             "SOFTMAX"]
    assert len(ours) == len(want_all), (list(ours), want_all)
    for (layer, got), (index, op, want) in zip(ours.items(), want_all, strict=True):
        got = got.reshape(want.shape)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{name}/{layer} (operator {index}, {op}): {bad.size} of "
                               f"{want.size} differ, first at {bad[0]}")


def test_the_reference_records_are_of_the_seed_architectures():
    # What the files claim: the spec files' shapes, int8 in and out, per-channel conv weights
    # and per-tensor dense weights, held-out digits as inputs.
    for name, kernel, units in (("seed_mnist_cnn", 3, 128), ("seed_mnist_cnn_5x5", 5, 1024)):
        meta = json.loads((SEED / f"{name}_expected.json").read_text())
        assert meta["input"]["dtype"] == meta["output"]["dtype"] == "int8"
        shapes = {t["name"]: t for t in meta["tensors"]}
        weights = [t for t in shapes.values() if t["dtype"] == "int8" and len(t["shape"]) in
                   (2, 4) and t["key"] is None]
        assert sorted(tuple(t["shape"]) for t in weights) == sorted(
            [(32, kernel, kernel, 1), (64, kernel, kernel, 32), (units, 7 * 7 * 64),
             (10, units)])
        for t in weights:
            assert len(t["scales"]) == (t["shape"][0] if len(t["shape"]) == 4 else 1), t["name"]
        assert (SEED / f"{name}.tflite").stat().st_size < 4_000_000


@pytest.mark.parametrize(("name", "streamed_words"), [("seed_mnist_cnn", 7 * 7 * 64 * 128),
                                                      ("seed_mnist_cnn_5x5",
                                                       7 * 7 * 64 * 1024)])
def test_fit_only_on_the_ulx3s_streams_the_first_dense_layer(tmp_path, name, streamed_words):
    model = str(SEED / f"{name}.tflite")
    result = CliRunner().invoke(main, ["plan", model, "--board", "ulx3s-85f", "--array", "4x8",
                                       "--json"])
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)
    streamed = [s["streamed"] for s in planned["stages"]]
    assert [s is not None for s in streamed] == [False, False, True, False]
    assert streamed[2]["memory"] == "sdram"
    # Every int8 weight of the layer read once per image, two to a 16-bit SDRAM word.
    assert streamed[2]["words_per_image"] * streamed[2]["weights_per_word"] == streamed_words
    assert planned["interval_bound"] == "stage 2 (dense) bandwidth"
    result = CliRunner().invoke(main, ["build", model, "--board", "ulx3s-85f", "--array", "4x8",
                                       "--clock", "62.5", "--fit-only", "--json",
                                       "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    fit = json.loads(result.stdout)
    assert fit["fits"] is True
    for kind in ("multipliers", "bram_blocks", "luts"):
        r = fit["resources"][kind]
        assert 0 < r["needed"] <= r["available"], (kind, r)
    print(f"{name}: " + ", ".join(f"{k} {v['needed']}/{v['available']}"
                                  for k, v in fit["resources"].items()))


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_accel_sim_on_the_ulx3s_returns_the_reference_logits(tmp_path, build_dir, name):
    # The seed model and its 5x5 variant as built for the ULX3S (first Dense streamed from the
    # SDRAM memory model with random latency, gaps and refresh), in Verilator, on held-out
    # digits: bit-exact with the golden model on every layer, and the logits are the reference
    # interpreter's. Two images, so that the interval is measured (seed 71 s here, the
    # Verilator build most of it; 5x5 128 s, 3.4 M cycles per image pair, 1.65 M per image).
    images = 2
    r, logits = sim_on_board(SEED / f"{name}.tflite", SEED / f"{name}_input.npy",
                             board="ulx3s-85f", array="4x8", images=images,
                             build_dir=build_dir, out=tmp_path / "sim.npz")
    want = reference_logits(name)[:images]
    assert np.array_equal(logits.reshape(want.shape), want), (logits, want)
    # Bound by the weight stream: the plan's interval (exact against the deterministic memory
    # model, see accel/plan/stream_timing.py) is within 1 % of the stream's bandwidth bound, and
    # the random latency and gaps of this run make it a little slower than that.
    assert abs(r["predicted_interval_cycles"] / r["stream_cycles"] - 1) <= 0.01, r
    assert 1.0 <= r["cycles_per_inference"] / r["predicted_interval_cycles"] <= 1.10, r
    print(f"{name}: {r['cycles_per_inference']} cycles/inference, "
          f"{r['weight_words']} weight words")
