"""The CLI: summary/explain output, and one-line errors with exit status 2 for bad input."""

import json
import zipfile

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from accel.cli import main

from .paths import SPECS

SEED = str(SPECS / "seed_mnist_cnn.yaml")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_summary_json_is_keras_numbers():
    result = run("summary", SEED, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "seed_mnist_cnn"
    assert data["input_shape"] == [28, 28, 1]
    assert [(r["index"], r["name"], r["type"], r["output_shape"], r["params"]) for r in
            data["layers"]] == [
        (0, "conv2d", "Conv2D", [28, 28, 32], 320),
        (1, "max_pooling2d", "MaxPooling2D", [14, 14, 32], 0),
        (2, "conv2d_1", "Conv2D", [14, 14, 64], 18_496),
        (3, "max_pooling2d_1", "MaxPooling2D", [7, 7, 64], 0),
        (4, "flatten", "Flatten", [3136], 0),
        (5, "dense", "Dense", [128], 401_536),
        (6, "dense_1", "Dense", [10], 1_290),
    ]
    assert data["total_params"] == 421_642
    assert data["total_macs"] == 4_241_152


def test_summary_table():
    result = run("summary", SEED)
    assert result.exit_code == 0, result.output
    assert "conv2d_1 (Conv2D)" in result.stdout
    assert "(None, 14, 14, 64)" in result.stdout
    assert "18,496" in result.stdout
    assert "Total params: 421,642" in result.stdout


def test_explain_conv_spells_out_the_sum():
    result = run("explain", SEED, "conv2d_1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "kernel (3, 3, 32, 64)" in out
    assert "output (14, 14, 64)" in out
    assert "top 1, bottom 1" in out
    assert "sum over kh < 3, kw < 3, c < 32" in out
    assert "not 64*32 = 2,048" in out
    assert "= 18,496" in out


def test_explain_dense_after_flatten():
    result = run("explain", SEED, "5")
    assert result.exit_code == 0, result.output
    assert "3,136 = 7*7*64" in result.stdout
    assert "28x28 -> 28x28 -> 14x14 -> 14x14 -> 7x7" in result.stdout


def test_explain_pool_and_flatten():
    assert "(14, 14, 32)" in run("explain", SEED, "max_pooling2d").stdout
    assert "(i*7 + j)*64 + k" in run("explain", SEED, "flatten").stdout


BAD_SPECS = [
    ("unknown_type.yaml", "input: [8, 8, 1]\nlayers:\n  - Conv3D: {filters: 2}\n",
     r"unknown_type\.yaml: layer 0: unknown layer type 'Conv3D' \(known: Conv2D, "),
    ("unknown_field.yaml",
     "input: [8, 8, 1]\nlayers:\n  - Conv2D: {filters: 2, kernel_size: 3, kernal: 3}\n",
     r"unknown_field\.yaml: layer 0 \(\?, Conv2D\): unknown field 'kernal' \(fields: "),
    ("missing_field.yaml", "input: [8, 8, 1]\nlayers:\n  - Conv2D: {filters: 2, name: c1}\n",
     r"missing_field\.yaml: layer 0 \(c1, Conv2D\): missing required field 'kernel_size'$"),
    ("wrong_type.yaml",
     "input: [8, 8, 1]\nlayers:\n  - Conv2D: {filters: '32', kernel_size: 3}\n",
     (r"wrong_type\.yaml: layer 0 \(\?, Conv2D\): filters must be a positive integer, "
     r"not '32'$")),
    ("zero_kernel.yaml", "input: [8, 8, 1]\nlayers:\n  - Conv2D: {filters: 2, kernel_size: 0}\n",
     (r"zero_kernel\.yaml: layer 0 \(\?, Conv2D\): kernel_size must be a positive integer or a "
     r"pair of them, not 0$")),
    ("neg_stride.yaml",
     "input: [8, 8, 1]\nlayers:\n  - MaxPooling2D: {pool_size: 2, strides: [1, -2]}\n",
     (r"neg_stride\.yaml: layer 0 \(\?, MaxPooling2D\): strides must be a positive integer or "
     r"a pair of them, not \[1, -2\]$")),
    ("big_kernel.yaml",
     ("input: [8, 8, 1]\nlayers:\n  - Conv2D: {filters: 2, kernel_size: 3}\n"
     "  - Conv2D: {filters: 2, kernel_size: 7}\n"),
     (r"big_kernel\.yaml: layer 1 \(conv2d_1, Conv2D\): kernel_size \(7, 7\): window 7 is "
     r"larger than the input 6 with padding 'valid'$")),
    ("big_pool.yaml", "input: [3, 3, 1]\nlayers:\n  - MaxPooling2D: {pool_size: 4}\n",
     (r"big_pool\.yaml: layer 0 \(max_pooling2d, MaxPooling2D\): pool_size \(4, 4\): window 4 "
     r"is larger than the input 3 with padding 'valid'$")),
    ("empty.yaml", "input: [8, 8, 1]\nlayers: []\n", r"empty\.yaml: the network has no layers$"),
    ("dense_rank3.yaml", "input: [8, 8, 1]\nlayers:\n  - Dense: {units: 4}\n",
     (r"dense_rank3\.yaml: layer 0 \(dense, Dense\): Dense needs a vector \(h\*w\*c,\) input, "
     r"got \(8, 8, 1\); Keras would apply it per position: insert Flatten before it")),
    ("conv_rank1.yaml",
     "input: [8, 8, 1]\nlayers:\n  - Flatten: {}\n  - Conv2D: {filters: 2, kernel_size: 1}\n",
     (r"conv_rank1\.yaml: layer 1 \(conv2d, Conv2D\): Conv2D needs an image \(h, w, c\) input, "
     r"got \(64,\)$")),
    ("bad.yaml", "input: [8, 8, 1]\nlayers:\n  - Conv2D: {filters: 2\n",
     r"bad\.yaml: malformed YAML at line \d+, column \d+: "),
    ("bad.json", '{"input": [8, 8, 1], "layers": [}', r"bad\.json: malformed JSON at line 1: "),
    ("no_input.yaml", "layers:\n  - Flatten: {}\n", (r"no_input\.yaml: missing required field "
     r"'input'$")),
    ("bad_input.yaml", "input: [8, 0, 1]\nlayers:\n  - Flatten: {}\n",
     r"bad_input\.yaml: input sizes must be positive integers, not \[8, 0, 1\]$"),
    ("softmax_mid.yaml",
     "input: [4]\nlayers:\n  - Dense: {units: 4, activation: softmax}\n  - Dense: {units: 2}\n",
     (r"softmax_mid\.yaml: layer 0 \(dense, Dense\): activation 'softmax' is only supported on "
     r"the last layer$")),
    ("dup.yaml",
     "input: [4]\nlayers:\n  - Dense: {units: 4, name: a}\n  - Dense: {units: 2, name: a}\n",
     r"dup\.yaml: layer 1 \(a, Dense\): name 'a' is already used by layer 0$"),
    ("top.yaml", "input: [4]\nlayer: []\n", r"top\.yaml: unknown top-level field 'layer'"),
    ("list.yaml", "- Dense: {units: 4}\n",
     r"list\.yaml: a spec must be a mapping with 'input' and 'layers', not list$"),
    ("entry.yaml", "input: [4]\nlayers:\n  - Dense\n",
     r"entry\.yaml: layer 0: must be a mapping with one key, the layer type"),
    ("model.onnx", "", r"model\.onnx: unknown model file type '\.onnx'"),
]


def assert_one_line_error(result, pattern):
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("accel: error: ")
    import re
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize(("filename", "text", "pattern"), BAD_SPECS,
                         ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_exits_2_with_one_line(tmp_path, filename, text, pattern):
    path = tmp_path / filename
    path.write_text(text)
    assert_one_line_error(run("summary", path), pattern)


def test_missing_file(tmp_path):
    assert_one_line_error(run("summary", tmp_path / "nope.yaml"), r"nope\.yaml: no such file$")


def test_explain_unknown_layer():
    assert_one_line_error(run("explain", SEED, "conv9"), r"no layer named 'conv9'")


# --- Keras files: bad ones --------------------------------------------------------------------

def test_truncated_keras_zip(tmp_path):
    good = tmp_path / "good.keras"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("config.json", "{}" * 1000)
    bad = tmp_path / "trunc.keras"
    bad.write_bytes(good.read_bytes()[:100])
    assert_one_line_error(run("summary", bad),
                          r"trunc\.keras: not a valid \.keras archive \(truncated or not a zip")


def test_keras_zip_without_config(tmp_path):
    path = tmp_path / "noconf.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert_one_line_error(run("summary", path),
                          r"noconf\.keras: not a Keras model archive \(no config\.json inside\)$")


@pytest.mark.parametrize("member", ["../evil.json", "/etc/passwd", "a/../../b", "..\\x.json"])
def test_keras_zip_path_traversal(tmp_path, member):
    path = tmp_path / "evil.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr(member, "x")
    assert_one_line_error(run("summary", path),
                          r"evil\.keras: unsafe member name .* in the \.keras archive$")


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("not hdf5 at all")
    assert_one_line_error(run("summary", path), r"text\.h5: not a readable HDF5 file")


def test_truncated_h5(tmp_path):
    path = tmp_path / "full.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {}})
        f.create_dataset("w", data=np.zeros(10_000))
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(path.read_bytes()[:2000])
    assert_one_line_error(run("summary", trunc), r"trunc\.h5: not a readable HDF5 file")


def test_weights_only_h5(tmp_path):
    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("dense/kernel", data=np.zeros((4, 4)))
    assert_one_line_error(run("summary", path),
                          r"weights\.h5: no model_config attribute: not a Keras model file")
