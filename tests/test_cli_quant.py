"""``accel quantize`` and ``accel predict`` from the command line, and their one-line errors."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from accel.cli import main

from .paths import EXAMPLES, SPECS

DIGITS = EXAMPLES / "digits"
BAD = EXAMPLES / "bad_models"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_error(result, pattern):
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("accel: error: "), result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_quantize_then_predict_reports_accuracy(tmp_path):
    q = tmp_path / "q.npz"
    result = run("quantize", DIGITS / "digits_valid_s2.keras", "--calibration",
                 DIGITS / "digits16_calib_x.npy", "-o", q)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.npz"
    result = run("predict", q, DIGITS / "digits16_test_x.npy", "--labels",
                 DIGITS / "digits_test_y.npy", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["images"] == 450 and data["input_kind"] == "float, quantized"
    assert data["accuracy"] > 0.98
    with np.load(out) as saved:
        assert saved.files == ["output", "layers/conv2d", "layers/conv2d_1",
                               "layers/max_pooling2d", "layers/flatten", "layers/dense"]
        assert np.array_equal(saved["output"], saved["layers/dense"])
        assert saved["output"].dtype == np.int8 and saved["output"].shape == (450, 10)


def test_predict_pow2_from_spec_with_seed():
    result = run("predict", SPECS / "seed_mnist_cnn.yaml", DIGITS / "digits28_test_x.npy",
                 "--seed", "1", "--scheme", "pow2", "--weight-bits", "6", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["scheme"] == "pow2" and data["output_shape"] == [10]


def test_predict_int8_inputs_as_given(tmp_path):
    x = np.load(DIGITS / "digits_small_expected.npz")["input"]
    np.save(tmp_path / "x.npy", x)
    result = run("predict", DIGITS / "digits_small.tflite", tmp_path / "x.npy", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input_kind"] == "int"


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("predict", DIGITS / "digits_small.tflite", DIGITS / "digits16_test_x.npy"),
         r"input shape \(16, 16, 1\) does not match the model input \(8, 8, 1\)"),
        # AVERAGE_POOL_2D is supported since issue 12: the model loads, the input does not fit.
        (("predict", BAD / "avgpool_int8.tflite", DIGITS / "digits_test_x.npy"),
         r"^accel: error: \S*digits_test_x.npy: input shape \(8, 8, 1\) does not match the model input \(6, 6, 1\)"),
        (("predict", BAD / "float32.tflite", DIGITS / "digits_test_x.npy"),
         r"float32\.tflite: model input: tensor 'serving_default_keras_tensor:0' is not int8"),
        (("predict", SPECS / "seed_mnist_cnn.yaml", DIGITS / "digits28_test_x.npy"),
         r"seed_mnist_cnn\.yaml: a float model needs --calibration X\.npy"),
        (("quantize", SPECS / "seed_mnist_cnn.yaml", "--calibration",
          DIGITS / "digits28_calib_x.npy", "-o", "x.npz"),
         r"a spec file has no weights: use --seed N"),
        (("quantize", DIGITS / "digits_cnn.keras", "--calibration",
          DIGITS / "digits_calib_x.npy", "-o", "x.npz"),
         r"calibration data has shape \(200, 8, 8, 1\); the model needs \(N, 28, 28, 1\)$"),
        (("predict", DIGITS / "digits_small.tflite", DIGITS / "nothing.npy"),
         r"nothing\.npy: no such file \(inputs\)$"),
        (("predict", DIGITS / "digits_small.tflite", DIGITS / "digits_test_x.npy", "--labels",
          DIGITS / "digits_calib_x.npy"), r"labels must be 450 integers"),
    ],
)
def test_bad_input(args, pattern, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_error(run(*args), pattern)


def test_bad_dtype_and_range(tmp_path):
    np.save(tmp_path / "s.npy", np.array(["a"] * 64).reshape(1, 8, 8, 1))
    assert_error(run("predict", DIGITS / "digits_small.tflite", tmp_path / "s.npy"),
                 r"s\.npy \(inputs\): dtype '<U1' is not a plain numeric dtype \(bool, int or "
                 r"float\)$")
    np.save(tmp_path / "big.npy", np.full((1, 8, 8, 1), 300, np.int16))
    assert_error(run("predict", DIGITS / "digits_small.tflite", tmp_path / "big.npy"),
                 r"input values span \[300, 300\], outside int8 \[-128, 127\]$")


def test_zero_scale_in_a_quantized_file(tmp_path):
    q = tmp_path / "q.npz"
    assert run("quantize", DIGITS / "digits_small.tflite", "-o", q).exit_code == 0
    with np.load(q) as data:
        arrays = {k: data[k] for k in data.files}
    manifest = json.loads(str(arrays["__manifest__"]))
    manifest["layers"][0]["output"]["scale"] = 0.0
    arrays["__manifest__"] = np.array(json.dumps(manifest))
    np.savez(q, **arrays)
    assert_error(run("predict", q, DIGITS / "digits_test_x.npy"),
                 r"q\.npz: layer 0 \(conv2d, conv2d\): output\.scale must be a finite positive "
                 r"number, not 0\.0$")


def test_not_a_tflite_file(tmp_path):
    path = tmp_path / "x.tflite"
    path.write_bytes(b"\0" * 64)
    assert_error(run("predict", path, DIGITS / "digits_test_x.npy"),
                 r"x\.tflite: not a TFLite flatbuffer \(no TFL3 identifier\)$")


def test_output_directories_are_created_and_unwritable_paths_are_one_line(tmp_path):
    out = tmp_path / "new" / "dir" / "q.npz"
    assert run("quantize", DIGITS / "digits_small.tflite", "-o", out).exit_code == 0
    assert out.exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_error(run("quantize", DIGITS / "digits_small.tflite", "-o", blocker / "q.npz"),
                 r"file/q\.npz: cannot write: ")
