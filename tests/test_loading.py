"""The loading boundary (accel/io) and the CLI behaviour it gives: each check pinned with the
message it must produce. The hostile suite (tests/hostile) covers the same classes in bulk."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

from accel.cli import main
from accel.errors import AccelError
from accel.io.documents import parse_json, parse_yaml
from accel.io.files import check_file
from accel.plan.plan import parse_array
from accel.quant.qnet import load_quantized, save_quantized
from accel.quant.tflite_model import load_tflite

from .paths import EXAMPLES, SPECS

DIGITS = EXAMPLES / "digits"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_error(result, pattern):
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture
def qnet_file(tmp_path):
    path = tmp_path / "q.npz"
    save_quantized(load_tflite(DIGITS / "digits_small.tflite"), path)
    return path


def _patched(path, change):
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    np.savez(path, **arrays)
    return path


def _manifest(change):
    def apply(arrays):
        m = json.loads(str(arrays["__manifest__"]))
        change(m)
        arrays["__manifest__"] = np.array(json.dumps(m))
    return apply


# --- files ----------------------------------------------------------------------------------

def test_non_regular_files_are_refused_without_opening(tmp_path):
    fifo = tmp_path / "in.npy"
    os.mkfifo(fifo)
    with pytest.raises(AccelError, match=r"in\.npy: is a FIFO, not a regular file \(inputs\)$"):
        check_file(fifo, "inputs")
    with pytest.raises(AccelError, match=r"^/dev/zero: is a device, not a regular file"):
        check_file("/dev/zero", "inputs")
    with pytest.raises(AccelError, match=r"is a directory, not a regular file"):
        check_file(tmp_path, "inputs")


# --- YAML / JSON ----------------------------------------------------------------------------

def test_duplicate_keys_are_refused():
    with pytest.raises(AccelError, match=r"^s\.yaml: YAML refused: duplicate key 'units' at "
                                         r"line 1, column 12$"):
        parse_yaml("{units: 1, units: 2}", "s.yaml")
    with pytest.raises(AccelError, match=r"^s\.json: JSON refused: duplicate key 'a'$"):
        parse_json('{"a": 1, "a": 2}', "s.json")


def test_alias_bomb_is_refused_before_expansion():
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for n in range(1, 9):
        lines.append(f"{chr(97 + n)}: &{chr(97 + n)} [" + ",".join([f"*{chr(96 + n)}"] * 9)
                     + "]")
    with pytest.raises(AccelError, match=r"more than 100,000 values once its aliases are "
                                         r"expanded") as e:
        parse_yaml("\n".join(lines), "bomb.yaml")
    assert len(str(e.value)) < 200
    # a few aliases are fine
    assert parse_yaml("a: &x [1, 2]\nb: *x\n", "ok.yaml") == {"a": [1, 2], "b": [1, 2]}


def test_deep_nesting_and_huge_integers_are_one_line():
    with pytest.raises(AccelError, match=r"nested deeper than 64 levels"):
        parse_json("[" * 10_000 + "]" * 10_000, "d.json")
    with pytest.raises(AccelError, match=r"nested deeper than 64 levels"):
        parse_yaml("[" * 10_000 + "]" * 10_000, "d.yaml")
    with pytest.raises(AccelError, match=r"^i\.yaml: malformed YAML: Exceeds the limit"):
        parse_yaml("units: " + "9" * 5000, "i.yaml")
    with pytest.raises(AccelError, match=r"^n\.json: JSON refused: NaN is not a JSON number$"):
        parse_json('{"a": NaN}', "n.json")


# --- HDF5 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, pattern", [
    ("external", r"keeps its data in external files; refused"),
    ("softlink", r"is a SoftLink; only hard links are allowed"),
    ("extlink", r"is a ExternalLink; only hard links are allowed"),
])
def test_h5_cannot_read_other_files(tmp_path, kind, pattern):
    import h5py

    secret = tmp_path / "secret"
    secret.write_bytes(b"\x01" * 4096)
    path = tmp_path / f"{kind}.h5"
    path.write_bytes((DIGITS / "digits_small.h5").read_bytes())
    with h5py.File(path, "a") as f:
        g = f["model_weights/conv2d/digits_small/conv2d"]
        shape = g["kernel"].shape
        del g["kernel"]
        if kind == "external":
            g.create_dataset("kernel", shape=shape, dtype="f4",
                             external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
        elif kind == "softlink":
            g["kernel"] = h5py.SoftLink("/model_weights/dense/digits_small/dense/kernel")
        else:
            g["kernel"] = h5py.ExternalLink(str(secret), "/x")
    out = tmp_path / "q.npz"
    assert_error(run("quantize", path, "--calibration", DIGITS / "digits_calib_x.npy", "-o", out),
                 rf"{kind}\.h5: HDF5 .*'/model_weights/conv2d/digits_small/conv2d/kernel' "
                 rf".*{pattern}")
    assert not out.exists()


# --- quantized .npz -------------------------------------------------------------------------

@pytest.mark.parametrize("change, pattern", [
    (_manifest(lambda m: m.update(version=999)),
     r"q\.npz: format version 999; this accel reads version 1$"),
    (_manifest(lambda m: m["layers"][0]["requant"].update(mode="pow2")),
     r"layer 0 \(conv2d, conv2d\): requant mode 'pow2' contradicts scheme tflite-int8"),
    (_manifest(lambda m: m["layers"][0]["requant"].update(act_max=1000)),
     r"layer 0 \(conv2d, conv2d\): clamp \[-128, 1000\] is not within the output type"),
    (_manifest(lambda m: m["layers"][0]["output"].update(zero_point=1_000_000)),
     (r"layer 0 \(conv2d, conv2d\): output\.zero_point must be an integer in \[-128, 127\], "
     r"not 1000000$")),
    (_manifest(lambda m: m["layers"][2]["input"].update(scale=0.5)),
     r"layer 2 \(flatten, flatten\): input quantization .* differs from its producer's output"),
    (lambda a: a.update({"conv2d/weights": a["conv2d/weights"] + 200}),
     r"layer 0 \(conv2d, conv2d\): weight \d+ is outside the 8-bit range \[-128, 127\]$"),
    (lambda a: a.update({"conv2d/weights": a["conv2d/weights"] + 0.5}),
     r"q\.npz: layer 'conv2d': weights has dtype float64; integers are required$"),
    (lambda a: a.update({"conv2d/weights": a["conv2d/weights"].astype(complex)}),
     r"dtype 'complex128' is not a plain numeric dtype"),
    (lambda a: a.update({"conv2d/requant_multiplier": a["conv2d/requant_multiplier"] + 1}),
     r"requant multiplier/shift are not the Q31 encoding of requant scale"),
    (lambda a: a.update({"stray": np.zeros(2)}),
     r"q\.npz: unexpected member 'stray' \(not an array of a layer in the manifest\)$"),
])
def test_corrupt_quantized_networks_are_refused(qnet_file, change, pattern):
    _patched(qnet_file, change)
    with pytest.raises(AccelError, match=pattern):
        load_quantized(qnet_file)
    assert_error(run("predict", qnet_file, DIGITS / "digits_test_x.npy"), pattern)


def test_an_npz_member_is_refused_from_its_header(qnet_file, tmp_path):
    import io
    import zipfile

    big = tmp_path / "big.npz"
    with zipfile.ZipFile(qnet_file) as src, zipfile.ZipFile(big, "w",
                                                            zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == "dense/weights.npy":
                header = io.BytesIO()
                np.lib.format.write_array_header_1_0(header, {
                    "descr": "<i8", "fortran_order": False, "shape": (312_500_000,)})
                with dst.open(info.filename, "w", force_zip64=True) as f:
                    f.write(header.getvalue() + b"\0" * (1 << 20))
            else:
                dst.writestr(info.filename, src.read(info))
    with pytest.raises(AccelError, match=r"big\.npz: member 'dense/weights\.npy': an array of "
                                         r"shape \(312500000,\) and dtype int64 is "
                                         r"2,500,000,000 bytes, more than accel reads"):
        load_quantized(big)


def test_a_round_trip_is_unchanged(qnet_file):
    a = load_tflite(DIGITS / "digits_small.tflite")
    b = load_quantized(qnet_file)
    for la, lb in zip(a.layers, b.layers, strict=True):
        for key in ("weights", "bias"):
            if hasattr(la, key):
                assert np.array_equal(getattr(la, key), getattr(lb, key))


# --- result archives ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["output", "allow_pickle", "file"])
def test_layer_names_cannot_clobber_the_result_archive(qnet_file, tmp_path, name):
    def rename(arrays):
        m = json.loads(str(arrays["__manifest__"]))
        m["layers"][3]["name"] = name
        for layer in m["layers"]:  # the graph: readers of the renamed layer follow it
            if "inputs" in layer:
                layer["inputs"] = [name if i == "dense" else i for i in layer["inputs"]]
        arrays["__manifest__"] = np.array(json.dumps(m))
        for key in [k for k in arrays if k.startswith("dense/")]:
            arrays[key.replace("dense/", f"{name}/")] = arrays.pop(key)
    _patched(qnet_file, rename)
    out = tmp_path / "out.npz"
    result = run("predict", qnet_file, DIGITS / "digits_test_x.npy", "-o", out)
    assert result.exit_code == 0, result.output
    with np.load(out) as saved:
        assert saved.files == ["output", "layers/conv2d", "layers/max_pooling2d",
                               "layers/flatten", f"layers/{name}", "layers/softmax"]
        assert saved["output"].shape == (450, 10)
        assert np.array_equal(saved["output"], saved["layers/softmax"])


# --- TFLite ---------------------------------------------------------------------------------

def test_opcode_is_resolved_as_get_builtin_code(tmp_path):
    """A file whose deprecated byte says CONV_2D (3) but whose builtin_code says
    DEPTHWISE_CONV_2D (4): TFLite runs max(4, 3) = 4, so accel must not run a CONV_2D."""
    from accel.io.flatbuffer import _Buf, _Table

    data = bytearray((DIGITS / "digits_small.tflite").read_bytes())
    buf = _Buf(bytes(data))
    model = _Table(buf, buf.u32(0, "root"), "model")
    for oc in model.tables(1, "operator_codes"):
        if max(oc.scalar(3, "i32"), oc.scalar(0, "i8")) == 3 and oc.field(3, 4):
            data[oc.field(3, 4):oc.field(3, 4) + 4] = (4).to_bytes(4, "little")
    path = tmp_path / "patched.tflite"
    path.write_bytes(bytes(data))
    with pytest.raises(AccelError, match=r"operator 0 \(DEPTHWISE_CONV_2D\)"):
        load_tflite(path)


def test_truncated_tflite_is_one_line(tmp_path):
    data = (DIGITS / "digits_small.tflite").read_bytes()
    for n in (8, 100, len(data) // 2, len(data) - 1):
        path = tmp_path / "t.tflite"
        path.write_bytes(data[:n])
        with pytest.raises(AccelError, match=r"t\.tflite: "):
            load_tflite(path)


# --- CLI ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["²x2", "4x٤", "257x1", "1x99999999999", " x4", "-1x4"])
def test_parse_array_ascii_and_bounded(text):
    with pytest.raises(AccelError, match=r"^--array must be ROWSxCOLS with integers from 1 to "
                                         r"256"):
        parse_array(text)
    assert parse_array("256x256") == (256, 256)


@pytest.mark.parametrize("model", ["digits_small.tflite", "digits_small.keras"])
def test_summary_and_explain_take_every_model(model, qnet_file):
    for path in (DIGITS / model, qnet_file):
        result = run("summary", path, "--json")
        assert result.exit_code == 0, result.output
        layers = [(x["name"], x["output_shape"], x["params"], x["macs"])
                  for x in json.loads(result.stdout)["layers"]]
        assert layers[:4] == [("conv2d", [6, 6, 8], 80, 2592),
                              ("max_pooling2d", [3, 3, 8], 0, 0), ("flatten", [72], 0, 0),
                              ("dense", [10], 730, 720)]
        result = run("explain", path, "conv2d")
        assert result.exit_code == 0 and "kernel (3, 3, 1, 8)" in result.stdout


@pytest.mark.parametrize("args, pattern", [
    (["plan", "{spec}", "--seed", "-1"], r"Invalid value for '--seed': -1 is not in the range"),
    (["build", "{tfl}", "--board", "icebreaker", "--clock", "inf", "--fit-only", "-o", "b"],
     r"Invalid value for '--clock': 'inf' must be a finite clock"),
    (["predict", "{tfl}", "{empty}"], r"empty\.npy: an empty batch \(shape \(0, 8, 8, 1\)\)"),
    (["predict", "{tfl}", "{npz}"], r"q\.npz: inputs must be a \.npy array, not an \.npz"),
    (["generate", "{tfl}", "-o", "{file}/gen"], (r"cannot write: .*afile is a file, not a "
                                                r"directory$")),
    (["plan", "{huge}", "--seed", "1"], (r"huge\.yaml: 6,399,744,[\d,]+ parameters, more than "
                                        r"accel handles")),
])
def test_cli_refusals(tmp_path, monkeypatch, qnet_file, args, pattern):
    (tmp_path / "afile").write_text("x")
    np.save(tmp_path / "empty.npy", np.zeros((0, 8, 8, 1), np.float32))
    (tmp_path / "huge.yaml").write_text(
        "input: [100000, 100000, 3]\nlayers:\n  - Conv2D: {filters: 64, kernel_size: 3}\n"
        "  - Flatten: {}\n  - Dense: {units: 10}\n")
    names = {"spec": SPECS / "seed_mnist_cnn.yaml",
             "tfl": DIGITS / "digits_small.tflite", "empty": tmp_path / "empty.npy",
             "npz": qnet_file, "file": tmp_path / "afile", "huge": tmp_path / "huge.yaml"}
    monkeypatch.chdir(tmp_path)
    assert_error(run(*[a.format(**names) for a in args]), pattern)


def test_usage_errors_are_one_line_and_bare_accel_shows_the_help():
    result = run("summary")
    assert_error(result, r"^accel: error: Missing argument 'MODEL'\. \(try 'main summary -h'\)$")
    result = run()
    assert "Usage:" in result.output and "Commands:" in result.output
    assert run("--version").exit_code == 0


def test_the_planner_search_bounded_by_the_layer_finds_the_same_arrays():
    """Rows beyond the input channels and columns beyond the filters never win, so bounding
    the search by the layer changes no plan: checked against the unbounded search."""
    from accel.plan.plan import Geometry, _smallest_array, stage_cycles

    def unbounded(g, max_rows, max_cols, target):
        best = None
        for rows in range(1, max_rows + 1):
            for cols in range(1, max_cols + 1):
                cycles, _, _ = stage_cycles(g, rows, cols)
                key = (cycles > target, rows * cols if cycles <= target else cycles, cycles)
                if best is None or key < best[0]:
                    best = (key, (rows, cols))
        return best[1]

    rng = np.random.default_rng(15)
    for _ in range(60):
        cin, filters = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        k = int(rng.integers(1, 4))
        g = Geometry(8, 8, cin, (k, k), (1, 1), "valid", 8 - k + 1, 8 - k + 1, filters)
        max_rows, max_cols = int(rng.integers(1, 48)), int(rng.integers(1, 48))
        fastest = stage_cycles(g, max_rows, max_cols)[0]
        for target in (0, fastest, fastest * 3, 10**9):
            assert _smallest_array(g, max_rows, max_cols, target) == \
                unbounded(g, max_rows, max_cols, target), (g, max_rows, max_cols, target)
