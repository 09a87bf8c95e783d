"""Generators of hostile inputs, by class, from the repository's real example files.

Every generator takes a work directory (the test's tmp dir: every file it writes goes there)
and a seeded ``numpy.random.Generator``, and returns :class:`~tests.hostile.harness.Case`
objects. Mutations are seeded: the same seed gives the same files and the case id carries the
seed and index, so a failure can be reproduced exactly.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from .harness import ROOT, Case

DIGITS = ROOT / "examples" / "digits"

TINY_SPEC = """\
name: tiny
input: [8, 8, 1]
layers:
  - Conv2D: {filters: 4, kernel_size: 3, padding: same, activation: relu}
  - MaxPooling2D: {pool_size: 2}
  - Flatten: {}
  - Dense: {units: 10, activation: softmax, name: logits}
"""

HOSTILE_NUMBERS = ["-1", "0", "1" + "0" * 40, "9" * 5000, "1e308", ".nan", "-.inf", "x",
                   "[]", "{}", "null", "true", "2147483648", "-2147483649", "0.5"]


def _inputs(work: Path) -> Path:
    path = work / "x.npy"
    if not path.exists():
        np.save(path, np.load(DIGITS / "digits_test_x.npy")[:4])
    return path


def _calib(work: Path) -> Path:
    path = work / "calib.npy"
    if not path.exists():
        np.save(path, np.load(DIGITS / "digits_calib_x.npy")[:16])
    return path


def _flip(data: bytes, rng, count: int) -> bytes:
    b = bytearray(data)
    for _ in range(count):
        b[int(rng.integers(len(b)))] = int(rng.integers(256))
    return bytes(b)


def _patch_word(data: bytes, rng, limit: int | None = None) -> bytes:
    b = bytearray(data)
    top = min(len(b), limit or len(b)) - 4
    pos = int(rng.integers(0, max(top, 1))) & ~3
    value = [0, 1, -1, 2**31 - 1, -2**31, len(b), len(b) + 4, 0x7FFF, 255,
             int(rng.integers(-2**31, 2**31))][int(rng.integers(10))]
    b[pos:pos + 4] = struct.pack("<i", value)
    return bytes(b)


def _mutate_bytes(data: bytes, rng, i: int, header: int | None = None) -> tuple[str, bytes]:
    kind = i % 4
    if kind == 0:
        return "flip", _flip(data, rng, int(rng.integers(1, 9)))
    if kind == 1:
        return "truncate", data[:int(rng.integers(0, len(data)))]
    if kind == 2:
        return "patch", _patch_word(data, rng, header)
    # flips concentrated in the first bytes, where the headers and tables are
    head = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        head[int(rng.integers(min(len(head), header or 512)))] = int(rng.integers(256))
    return "headflip", bytes(head)


# --- spec files (YAML / JSON) ---------------------------------------------------------------

def _mutate_yaml(text: str, rng, i: int) -> str:
    lines = text.splitlines()
    kind = i % 6
    if kind == 0:  # a number replaced by a hostile value
        import re

        numbers = [m for line in lines for m in re.finditer(r"\b\d+\b", line)]
        target = int(rng.integers(len(numbers)))
        seen = 0
        for n, line in enumerate(lines):
            for m in re.finditer(r"\b\d+\b", line):
                if seen == target:
                    value = HOSTILE_NUMBERS[int(rng.integers(len(HOSTILE_NUMBERS)))]
                    lines[n] = line[:m.start()] + value + line[m.end():]
                seen += 1
        return "\n".join(lines)
    if kind == 1:  # a line dropped
        del lines[int(rng.integers(len(lines)))]
        return "\n".join(lines)
    if kind == 2:  # a line duplicated (duplicate keys)
        n = int(rng.integers(len(lines)))
        lines.insert(n, lines[n])
        return "\n".join(lines)
    if kind == 3:  # characters flipped
        b = bytearray(text.encode())
        for _ in range(int(rng.integers(1, 5))):
            b[int(rng.integers(len(b)))] = int(rng.choice(list(b"{}[]:,&*!-'\"\n\t x0")))
        return b.decode("utf-8", "replace")
    if kind == 4:  # truncated
        return text[:int(rng.integers(len(text)))]
    # a field value replaced by a structure of the wrong type
    field = ["filters", "kernel_size", "pool_size", "units", "padding", "activation",
             "strides", "name"][int(rng.integers(8))]
    value = ["[1, 2, 3]", "{a: 1}", "-5", "'same'", "0", "[0, 0]", "!!binary aGk=", "~",
             "*undefined", "&a [*a]"][int(rng.integers(10))]
    out = []
    for line in lines:
        if f"{field}:" in line:
            import re

            line = re.sub(rf"{field}: [^,}}]+", f"{field}: {value}", line, count=1)
        out.append(line)
    return "\n".join(out) + f"\n# {field}\n"


def alias_bomb(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels):
        name, prev = chr(97 + n), chr(96 + n)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append(f"input: [8, 8, 1]\nlayers: *{chr(96 + levels)}")
    return "\n".join(lines) + "\n"


def spec_cases(work: Path, rng, count: int) -> list[Case]:
    cases = []
    base_json = json.dumps({"name": "tiny", "input": [8, 8, 1], "layers": [
        {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
        {"Flatten": {}}, {"Dense": {"units": 10}}]}, indent=1)
    for i in range(count):
        if i % 3 == 2:
            text = base_json
            if i % 2:
                b = bytearray(text.encode())
                for _ in range(int(rng.integers(1, 4))):
                    b[int(rng.integers(len(b)))] = int(rng.choice(list(b'{}[]:,"-0e9 ')))
                text = b.decode("utf-8", "replace")
            else:
                text = text[:int(rng.integers(len(text)))]
            path = work / f"spec_{i}.json"
        else:
            text = _mutate_yaml(TINY_SPEC, rng, i)
            path = work / f"spec_{i}.yaml"
        path.write_text(text)
        command = [["summary", path.name], ["plan", path.name, "--seed", "1"],
                   ["explain", path.name, "0"]][i % 3]
        cases.append(Case(f"spec-{i}", command, (path.name,), may_succeed=True))
    special = {
        "bomb.yaml": alias_bomb(), "bomb_small.yaml": alias_bomb(4),
        "dup.yaml": TINY_SPEC.replace("name: tiny\n", "name: tiny\nname: other\n"),
        "dup_inner.yaml": TINY_SPEC.replace("{units: 10,", "{units: 10, units: 3,"),
        "dup.json": '{"input": [8, 8, 1], "input": [4, 4, 1], "layers": [{"Flatten": {}}]}',
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "deep.yaml": "input: " + "[" * 5000 + "]" * 5000 + "\nlayers: []\n",
        "bigint.yaml": TINY_SPEC.replace("units: 10", "units: " + "9" * 5000),
        "bigint.json": '{"input": [8, 8, 1], "layers": [{"Dense": {"units": ' + "9" * 5000
                       + "}}]}",
        "huge_shape.yaml": TINY_SPEC.replace("[8, 8, 1]", "[100000, 100000, 3]"),
        "huge_dense.yaml": TINY_SPEC.replace("units: 10", "units: 1000000000000"),
        "huge_filters.yaml": TINY_SPEC.replace("filters: 4", "filters: 100000000"),
        "python_tag.yaml": "!!python/object/apply:os.system ['echo pwned']\n",
        "nan.json": '{"input": [8, 8, NaN], "layers": [{"Flatten": {}}]}',
        "binary.yaml": "\x00\xff\xfe" * 100,
        "utf16.yaml": TINY_SPEC.encode("utf-16").decode("latin-1"),
        "list.yaml": "- 1\n- 2\n", "empty.yaml": "", "scalar.json": "3",
    }
    for name, text in special.items():
        path = work / name
        path.write_bytes(text.encode("latin-1") if name == "utf16.yaml" else text.encode())
        for command in (["summary", name], ["plan", name, "--seed", "1"]):
            # a huge network is a valid spec to summarize (no arrays): only work is refused
            lenient = name.startswith("huge") and command[0] == "summary"
            cases.append(Case(f"spec-{name}-{command[0]}", command, (name,),
                              may_succeed=lenient))
    return cases


# --- Keras files (.keras zip, legacy .h5) -------------------------------------------------

def keras_cases(work: Path, rng, count: int) -> list[Case]:
    calib = _calib(work).name
    sources = {".keras": (DIGITS / "digits_small.keras").read_bytes(),
               ".h5": (DIGITS / "digits_small.h5").read_bytes()}
    cases = []
    for i in range(count):
        suffix = (".keras", ".h5")[i % 2]
        kind, data = _mutate_bytes(sources[suffix], rng, i // 2, header=4096)
        path = work / f"keras_{i}{suffix}"
        path.write_bytes(data)
        command = (["summary", path.name] if i % 4 < 2 else
                   ["quantize", path.name, "--calibration", calib, "-o", f"out/k{i}.npz"])
        cases.append(Case(f"keras-{i}-{kind}", command, (path.name,), may_succeed=True))
    cases += _h5_outside_cases(work, calib)
    cases += _keras_zip_cases(work)
    return cases


def _h5_outside_cases(work: Path, calib: str) -> list[Case]:
    """HDF5 that would read other files: external storage, soft/external links, VDS."""
    import h5py

    secret = work / "secret.bin"
    secret.write_bytes(os.urandom(4096))
    cases = []
    for kind in ("external", "softlink", "extlink", "virtual", "attr_bomb", "bad_dtype"):
        path = work / f"h5_{kind}.h5"
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
            elif kind == "extlink":
                g["kernel"] = h5py.ExternalLink(str(secret), "/x")
            elif kind == "virtual":
                layout = h5py.VirtualLayout(shape=shape, dtype="f4")
                layout[...] = h5py.VirtualSource(str(work / "other.h5"), "d", shape=shape)
                g.create_virtual_dataset("kernel", layout)
            elif kind == "attr_bomb":
                g.create_dataset("kernel", data=np.zeros(shape, "f4"))
                f.attrs["model_config"] = "{" * 3000 + "}" * 3000
            else:
                g.create_dataset("kernel", data=np.array(["x"] * int(np.prod(shape)),
                                                         dtype="S1").reshape(shape))
        command = ["quantize", path.name, "--calibration", calib, "-o", f"out/{kind}.npz"]
        cases.append(Case(f"h5-{kind}", command, (path.name,)))
    return cases


def _keras_zip_cases(work: Path) -> list[Case]:
    cases = []
    with zipfile.ZipFile(DIGITS / "digits_small.keras") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    variants = {
        "slip": {**members, "../evil.txt": b"x"},
        "abs": {**members, "/etc/evil": b"x"},
        "noconfig": {k: v for k, v in members.items() if k != "config.json"},
        "badjson": {**members, "config.json": b"{not json"},
        "dupjson": {**members, "config.json": b'{"class_name": "Sequential", '
                                              b'"class_name": "Functional", "config": {}}'},
        "wrongtype": {**members, "config.json": json.dumps(
            {"class_name": "Sequential", "config": {"layers": [5, "x", None]}}).encode()},
        "wrongtype2": {**members, "config.json": json.dumps(
            {"class_name": "Sequential", "config": {"layers": [
                {"class_name": "Dense", "config": {"units": "ten"}}]}}).encode()},
        "deep": {**members, "config.json": b"[" * 50_000 + b"]" * 50_000},
        "noweights": {k: v for k, v in members.items() if k != "model.weights.h5"},
        "badweights": {**members, "model.weights.h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 100},
    }
    for name, content in variants.items():
        path = work / f"zip_{name}.keras"
        with zipfile.ZipFile(path, "w") as zf:
            for member, data in content.items():
                zf.writestr(member, data)
        for command in (["summary", path.name],
                        ["quantize", path.name, "--calibration", "calib.npy", "-o",
                         f"out/z_{name}.npz"]):
            # the architecture alone is enough to summarize
            lenient = name in ("noweights", "badweights") and command[0] == "summary"
            cases.append(Case(f"keraszip-{name}-{command[0]}", command, (path.name,),
                              may_succeed=lenient))
    # a zip bomb: config.json declares 1 GB (highly compressible zeros)
    path = work / "zip_bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("config.json", "w", force_zip64=True) as f:
            chunk = b" " * (1 << 20)
            for _ in range(64):
                f.write(chunk)
    cases.append(Case("keraszip-bomb", ["summary", path.name], (path.name,)))
    return cases


# --- TFLite flatbuffers -----------------------------------------------------------------------

def tflite_cases(work: Path, rng, count: int) -> list[Case]:
    x = _inputs(work).name
    sources = [(DIGITS / n).read_bytes() for n in ("digits_small.tflite", "dense_pt.tflite")]
    cases = []
    for i in range(count):
        data = sources[i % 2]
        kind, mutated = _mutate_bytes(data, rng, i // 2, header=len(data) // 4)
        path = work / f"tfl_{i}.tflite"
        path.write_bytes(mutated)
        command = ["summary", path.name] if i % 3 == 0 else ["predict", path.name, x]
        cases.append(Case(f"tflite-{i}-{kind}", command, (path.name,), may_succeed=True))
    cases += tflite_patch_cases(work)
    return cases


def _tables(data: bytes):
    """Field positions of digits_small.tflite, found with the verifier's reader."""
    from accel.io.flatbuffer import _Buf, _Table

    buf = _Buf(data)
    model = _Table(buf, buf.u32(0, "root"), "model")
    return buf, model


def tflite_patch_cases(work: Path) -> list[Case]:
    """Field patches that must be refused: each one breaks one rule of the schema."""
    x = _inputs(work).name
    data = (DIGITS / "digits_small.tflite").read_bytes()
    buf, model = _tables(data)
    sg = model.tables(2, "subgraphs")[0]
    ops = sg.tables(3, "operators")
    tensors = sg.tables(0, "tensors")
    codes = model.tables(1, "operator_codes")
    patches: dict[str, list[tuple[int, bytes]]] = {}

    def put(name: str, pos: int, fmt: str, value) -> None:
        if pos:
            patches.setdefault(name, []).append((pos, struct.pack(fmt, value)))

    put("version", model.field(0, 4), "<I", 2)
    for k, op in enumerate(ops):
        put(f"opcode_index_{k}", op.field(0, 4), "<I", 200)
        start, n = op.vector(1, 4, "inputs")
        if n:
            put(f"input_index_{k}", start, "<i", 9999)
            put(f"input_neg_{k}", start, "<i", -7)
        opts = op.table(4, "options")
        code = codes[op.scalar(0, "u32")]
        builtin = max(code.scalar(3, "i32"), code.scalar(0, "i8"))
        if builtin in (3, 9, 17, 25):  # the operators whose options accel reads
            put(f"options_type_{k}", op.field(3, 1), "<B", 77)
        if opts is not None:
            if builtin == 3:  # CONV_2D
                put(f"conv_stride_w_zero_{k}", opts.field(1, 4), "<i", 0)
                put(f"conv_stride_h_neg_{k}", opts.field(2, 4), "<i", -1)
                put(f"conv_padding_{k}", opts.field(0, 1), "<b", 9)
                put(f"conv_dilation_{k}", opts.field(4, 4), "<i", 0)
            if builtin == 17:  # MAX_POOL_2D
                put(f"pool_filter_zero_{k}", opts.field(3, 4), "<i", 0)
                put(f"pool_stride_zero_{k}", opts.field(1, 4), "<i", 0)
            if builtin == 25:  # SOFTMAX
                for label, beta in (("nan", float("nan")), ("neg", -1.0), ("zero", 0.0),
                                    ("inf", float("inf")), ("tiny", 1e-30)):
                    put(f"softmax_beta_{label}", opts.field(0, 4), "<f", beta)
            if builtin == 9:  # FULLY_CONNECTED
                put(f"fc_weights_format_{k}", opts.field(1, 1), "<b", 5)
    for k, code in enumerate(codes):
        put(f"builtin_code_unknown_{k}", code.field(3, 4), "<i", 9999)
        put(f"deprecated_code_unknown_{k}", code.field(0, 1), "<b", 127)
    for k, t in enumerate(tensors):
        put(f"tensor_type_{k}", t.field(1, 1), "<b", 99)
        put(f"tensor_buffer_{k}", t.field(2, 4), "<I", 10_000)
        start, n = t.vector(0, 4, "shape")
        if n:
            put(f"tensor_shape_neg_{k}", start, "<i", -3)
            put(f"tensor_shape_big_{k}", start + 4 * (n - 1), "<i", 2**30)
        q = t.table(4, "q")
        if q is not None:
            s_start, s_n = q.vector(2, 4, "scale")
            if s_n:
                put(f"tensor_scale_nan_{k}", s_start, "<f", float("nan"))
    put("root_offset", 0, "<I", 2**31)
    patches["root_offset"] = [(0, struct.pack("<I", len(data) + 100))]
    cases = []
    for name, edits in patches.items():
        b = bytearray(data)
        for pos, raw in edits:
            b[pos:pos + len(raw)] = raw
        path = work / f"tflpatch_{name}.tflite"
        path.write_bytes(bytes(b))
        # a patch may leave a tensor the chain does not use: then it may still run
        lenient = name.startswith(("tensor_", "input_neg"))
        cases.append(Case(f"tflpatch-{name}", ["predict", path.name, x], (path.name,),
                          may_succeed=lenient))
    return cases


# --- quantized networks (.npz) ----------------------------------------------------------------

def _qnet_arrays(work: Path) -> dict[str, np.ndarray]:
    from accel.quant.qnet import save_quantized
    from accel.quant.tflite_model import load_tflite

    path = work / "base_q.npz"
    if not path.exists():
        save_quantized(load_tflite(DIGITS / "digits_small.tflite"), path)
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _save(path: Path, arrays: dict) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _manifest_patch(arrays: dict, change) -> dict:
    arrays = dict(arrays)
    manifest = json.loads(str(arrays["__manifest__"]))
    change(manifest)
    arrays["__manifest__"] = np.array(json.dumps(manifest))
    return arrays


def npz_patch_variants(arrays: dict) -> dict[str, dict]:
    """Each variant breaks one rule of the quantized-network format."""
    def layer(m, i=0):
        return m["layers"][i]

    def setter(*path, value):
        def change(m):
            target = m
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        return change

    out = {
        "version": _manifest_patch(arrays, setter("version", value=999)),
        "format": _manifest_patch(arrays, setter("format", value="other")),
        "scheme": _manifest_patch(arrays, setter("scheme", value="int3")),
        "mode_vs_scheme": _manifest_patch(arrays, lambda m: layer(m)["requant"].update(
            mode="pow2")),
        "mode_unknown": _manifest_patch(arrays, lambda m: layer(m)["requant"].update(
            mode="magic")),
        "clamp_wide": _manifest_patch(arrays, lambda m: layer(m)["requant"].update(
            act_max=1000)),
        "clamp_inverted": _manifest_patch(arrays, lambda m: layer(m)["requant"].update(
            act_min=100, act_max=-100)),
        "requant_zp": _manifest_patch(arrays, lambda m: layer(m)["requant"].update(
            zero_point=1_000_000)),
        "out_zp_huge": _manifest_patch(arrays, lambda m: layer(m)["output"].update(
            zero_point=1_000_000)),
        "in_zp_mismatch": _manifest_patch(arrays, lambda m: layer(m, 3)["input"].update(
            zero_point=layer(m, 3)["input"]["zero_point"] + 1)),
        "scale_zero": _manifest_patch(arrays, lambda m: layer(m)["input"].update(scale=0)),
        "scale_str": _manifest_patch(arrays, lambda m: layer(m)["input"].update(scale="1")),
        "bits_huge": _manifest_patch(arrays, lambda m: layer(m)["output"].update(bits=99)),
        "kind": _manifest_patch(arrays, lambda m: layer(m).update(kind="conv3d")),
        "name_int": _manifest_patch(arrays, lambda m: m.update(name=5)),
        "layer_name_slash": _manifest_patch(arrays, lambda m: layer(m, 1).update(
            name="../../evil")),
        "layer_name_dup": _manifest_patch(arrays, lambda m: layer(m, 1).update(
            name=layer(m, 2)["name"])),
        "strides_zero": _manifest_patch(arrays, lambda m: layer(m).update(strides=[0, 1])),
        "padding": _manifest_patch(arrays, lambda m: layer(m).update(padding="full")),
        "pool_huge": _manifest_patch(arrays, lambda m: layer(m, 1).update(
            pool_size=[100000, 1])),
        "input_shape_huge": _manifest_patch(arrays, setter("input_shape",
                                                           value=[1000000, 1000000, 1])),
        "input_shape_neg": _manifest_patch(arrays, setter("input_shape", value=[-8, 8, 1])),
        "layers_empty": _manifest_patch(arrays, setter("layers", value=[])),
        "layers_many": _manifest_patch(arrays, lambda m: m.update(
            layers=m["layers"] * 1000)),
        "beta_nan": _manifest_patch(arrays, lambda m: m["layers"][-1].update(beta=1e-40)),
        "weight_bits": _manifest_patch(arrays, lambda m: layer(m).update(weight_bits=4)),
    }
    conv = [k for k in arrays if k.endswith("/weights")][0].split("/")[0]

    def with_array(key, value):
        return {**arrays, f"{conv}/{key}": value}

    w = arrays[f"{conv}/weights"]
    out.update({
        "weights_range": with_array("weights", w + 300),
        "weights_fraction": with_array("weights", w + 0.5),
        "weights_complex": with_array("weights", w.astype(np.complex128)),
        "weights_shape": with_array("weights", w[:, :, :, :2]),
        "weights_cin": with_array("weights", np.concatenate([w, w], axis=2)),
        "bias_shape": with_array("bias", arrays[f"{conv}/bias"][:1]),
        "bias_range": with_array("bias", arrays[f"{conv}/bias"] + 2**40),
        "weight_scale_neg": with_array("weight_scale", -arrays[f"{conv}/weight_scale"]),
        "multiplier_off": with_array("requant_multiplier",
                                     arrays[f"{conv}/requant_multiplier"] + 1),
        "shift_off": with_array("requant_shift", arrays[f"{conv}/requant_shift"] - 5),
        "requant_scale_nan": with_array("requant_scale",
                                        arrays[f"{conv}/requant_scale"] * np.nan),
        "object_array": with_array("bias", np.array([None] * 8, dtype=object)),
        "missing_array": {k: v for k, v in arrays.items() if not k.endswith("/bias")},
        "extra_member": {**arrays, "extra": np.zeros(3)},
        "no_manifest": {k: v for k, v in arrays.items() if k != "__manifest__"},
        "manifest_not_json": {**arrays, "__manifest__": np.array("{oops")},
        "manifest_array": {**arrays, "__manifest__": np.zeros(3)},
        "manifest_dup": {**arrays, "__manifest__": np.array(
            '{"format": "accel-quantized-network", "format": "x"}')},
    })
    return out


def _big_member_npz(path: Path, arrays: dict) -> None:
    """An archive whose weights member declares 2.5 GB (zeros, deflated to a few MB)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            if key.endswith("/weights"):
                header = io.BytesIO()
                np.lib.format.write_array_header_1_0(header, {
                    "descr": "<i8", "fortran_order": False, "shape": (312_500_000,)})
                with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                    f.write(header.getvalue())
                    chunk = b"\0" * (1 << 22)
                    for _ in range(4):
                        f.write(chunk)
                continue
            buf = io.BytesIO()
            np.lib.format.write_array(buf, value, allow_pickle=False)
            zf.writestr(f"{key}.npy", buf.getvalue())


def npz_cases(work: Path, rng, count: int) -> list[Case]:
    x = _inputs(work).name
    arrays = _qnet_arrays(work)
    base = (work / "base_q.npz").read_bytes()
    cases = []
    for name, variant in npz_patch_variants(arrays).items():
        path = work / f"npzpatch_{name}.npz"
        _save(path, variant)
        for command in (["predict", path.name, x], ["plan", path.name]):
            cases.append(Case(f"npzpatch-{name}-{command[0]}", command, (path.name,)))
    path = work / "npz_big_member.npz"
    _big_member_npz(path, arrays)
    cases.append(Case("npz-big-member", ["predict", path.name, x], (path.name,)))
    for i in range(count):
        kind, data = _mutate_bytes(base, rng, i, header=len(base))
        path = work / f"npz_{i}.npz"
        path.write_bytes(data)
        command = ["predict", path.name, x] if i % 2 else ["summary", path.name]
        cases.append(Case(f"npz-{i}-{kind}", command, (path.name,), may_succeed=True))
    return cases


# --- .npy inputs and special files ------------------------------------------------------------

def npy_cases(work: Path, rng, count: int) -> list[Case]:
    model = "model.tflite"
    (work / model).write_bytes((DIGITS / "digits_small.tflite").read_bytes())
    base = _inputs(work).read_bytes()
    cases = []
    for i in range(count):
        if i % 2:
            kind, data = _mutate_bytes(base, rng, i, header=128)
            command = ["predict", model, f"in_{i}.npy"]
        else:
            # sim only on truncated files: a valid mutation would start a Verilator build
            kind, data = "truncate", base[:int(rng.integers(len(base)))]
            command = ["sim", model, "--input", f"in_{i}.npy", "--build-dir", "simbuild"]
        (work / f"in_{i}.npy").write_bytes(data)
        cases.append(Case(f"npy-{i}-{kind}", command, (f"in_{i}.npy",),
                          may_succeed=i % 2 == 1))
    special: dict[str, np.ndarray | bytes | None] = {
        "empty.npy": np.zeros((0, 8, 8, 1), np.float32),
        "scalar.npy": np.array(3.0),
        "wrong_shape.npy": np.zeros((2, 9, 9, 1), np.float32),
        "object.npy": None,
        "strings.npy": np.array([["a"] * 64]).reshape(1, 8, 8, 1),
        "complex.npy": np.zeros((1, 8, 8, 1), np.complex64),
        "nan.npy": np.full((1, 8, 8, 1), np.nan, np.float32),
        "inf.npy": np.full((1, 8, 8, 1), np.inf, np.float32),
        "int_range.npy": np.full((1, 8, 8, 1), 300, np.int16),
        "big_header.npy": b"\x93NUMPY\x01\x00\xff\xff" + b" " * 65535,
        "huge_decl.npy": b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, "
                         b"'shape': (100000000000, 8, 8, 1), }".ljust(118) + b"\n",
        "not_npy.npy": b"hello world" * 10,
        "quantized.npz": None,
    }
    for name, value in special.items():
        path = work / name
        if name == "object.npy":
            np.save(path, np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
        elif name == "quantized.npz":
            path.write_bytes((work / "base_q.npz").read_bytes()
                             if (work / "base_q.npz").exists() else b"PK")
        elif isinstance(value, bytes):
            path.write_bytes(value)
        else:
            np.save(path, value)
        cases.append(Case(f"npy-{name}", ["predict", model, name], (name,)))
    # non-regular files: a FIFO (would block forever), /dev/zero (endless), a directory
    fifo = work / "fifo.npy"
    os.mkfifo(fifo)
    (work / "adir.npy").mkdir()
    (work / "fifo.tflite").unlink(missing_ok=True)
    os.mkfifo(work / "fifo.tflite")
    os.mkfifo(work / "fifo.yaml")
    for name, argv in {
        "fifo-input": ["predict", model, fifo.name],
        "fifo-labels": ["predict", model, "x.npy", "--labels", fifo.name],
        "fifo-model": ["predict", "fifo.tflite", "x.npy"],
        "fifo-spec": ["summary", "fifo.yaml"],
        "devzero-input": ["predict", model, "/dev/zero"],
        "devzero-tflite": ["summary", "/dev/zero"],
        "dir-input": ["predict", model, "adir.npy"],
        "sim-bad-labels": ["sim", model, "--input", "x.npy", "--labels", "x.npy",
                           "--build-dir", "simbuild"],
        "sim-fifo-labels": ["sim", model, "--input", "x.npy", "--labels", fifo.name,
                            "--build-dir", "simbuild"],
        "missing": ["predict", model, "nothing.npy"],
        "fifo-calibration": ["quantize", str(DIGITS / "digits_small.keras"), "--calibration",
                             fifo.name, "-o", "out/q.npz"],
    }.items():
        names = tuple(a for a in argv if a in (fifo.name, "fifo.tflite", "fifo.yaml",
                                                "/dev/zero", "adir.npy", "nothing.npy")) \
            or ("x.npy",)
        cases.append(Case(f"special-{name}", argv, names, timeout=15))
    return cases


# --- options and outputs ----------------------------------------------------------------------

def option_cases(work: Path) -> list[Case]:
    model = "model.tflite"
    (work / model).write_bytes((DIGITS / "digits_small.tflite").read_bytes())
    x = _inputs(work).name
    (work / "afile").write_text("x")
    os.mkfifo(work / "out_fifo.npz")
    spec = work / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    cases = []
    for value in ["²x2", "4x٤", "0x4", "4x", "x", "1e3x2", "-1x4", "257x1", "4x4x4", " ",
                  "99999999999999999999999x1", "4X4X", "4 x 4", "0x0", "100000x100000"]:
        for command in ("plan", "generate"):
            argv = [command, model, "--array", value]
            if command == "generate":
                argv += ["-o", "gen"]
            cases.append(Case(f"opt-array-{command}-{value!r}", argv, ("--array",)))
    for value in ["-1", "-99999999999999999999", str(2**64), "abc", "1.5"]:
        cases.append(Case(f"opt-seed-{value}", ["plan", "tiny.yaml", "--seed", value],
                          ("--seed",)))
    for value in ["inf", "nan", "-1", "0", "1e9", "-inf", "x"]:
        cases.append(Case(f"opt-clock-{value}", ["build", model, "--board", "icebreaker",
                                                 "--fit-only", "--clock", value, "-o", "b"],
                          ("--clock",)))
        cases.append(Case(f"opt-sweep-clock-{value}", [
            "sweep", model, "--board", "icebreaker", "--estimate", "--clock", value, "-o",
            "sw"], ("--clock",)))
    for value in ["0", "-1", "1000000", "x"]:
        cases.append(Case(f"opt-images-{value}", ["sim", model, "--images", value],
                          ("--images",)))
    for value in ["nope", "", "ICEBREAKER", "../icebreaker"]:
        cases.append(Case(f"opt-board-{value!r}", ["build", model, "--board", value,
                                                    "--fit-only", "-o", "b"], ("--board",)))
    for value in ["1x1,0x2", "", ",", "²x2", "1x1," * 1000]:
        cases.append(Case(f"opt-arrays-{value[:10]!r}", [
            "sweep", model, "--board", "icebreaker", "--estimate", "--arrays", value, "-o",
            "sw"], ("--arrays",)))
    for option, value, command in (("--gaps", "1000", "sim"), ("--weight-bits", "99", "plan"),
                                   ("--scheme", "int3", "plan"), ("--act-bits", "-8", "plan"),
                                   ("--stall-seed", "x", "sim"), ("--baud", "0", "build"),
                                   ("--seeds", "0", "sweep"), ("--stall-seed", "-5", "sim"),
                                   ("--pnr-seed", "-1", "build"), ("--images", "9" * 5000, "sim"),
                                   ("--timeout", "nan", "run")):
        argv = [command, "tiny.yaml" if command == "plan" else model, option, value]
        if command in ("build", "sweep"):
            argv += ["--board", "icebreaker", "-o", "b"]
        if command == "run":
            argv += ["x.npy", "--port", "loop://"]
        cases.append(Case(f"opt-{option}-{value}", argv, (option,)))
    # calibration data whose range underflows every scale
    np.save(work / "tiny_calib.npy", np.full((4, 8, 8, 1), 1e-30))
    cases.append(Case("opt-calibration-underflow", [
        "quantize", str(DIGITS / "digits_small.keras"), "--calibration", "tiny_calib.npy",
        "-o", "q_under.npz"], ("tiny_calib.npy",)))
    outputs = {
        "generate-under-file": (["generate", model, "-o", "afile/gen"], ("afile",)),
        "generate-onto-file": (["generate", model, "-o", "afile"], ("afile",)),
        "predict-under-file": (["predict", model, x, "-o", "afile/p.npz"], ("afile",)),
        "predict-onto-dir": (["predict", model, x, "-o", "."], (".",)),
        "predict-onto-fifo": (["predict", model, x, "-o", "out_fifo.npz"], ("out_fifo",)),
        "quantize-under-file": (["quantize", model, "-o", "afile/q.npz"], ("afile",)),
        "sim-build-under-file": (["sim", model, "--build-dir", "afile/b"], ("afile",)),
        "sim-o-under-file": (["sim", model, "-o", "afile/s.npz"], ("afile",)),
        "build-under-file": (["build", model, "--board", "icebreaker", "-o", "afile/b"],
                             ("afile",)),
        "sweep-under-file": (["sweep", model, "--board", "icebreaker", "--estimate", "-o",
                              "afile/s"], ("afile",)),
        "spec-no-seed": (["predict", "tiny.yaml", x], ("tiny.yaml",)),
        "spec-calibration": (["quantize", "tiny.yaml", "--calibration", x, "-o", "q.npz"],
                             ("tiny.yaml",)),
        "npz-as-inputs": (["predict", model, "quantized_as_input.npz"],
                          ("quantized_as_input.npz",)),
        "unknown-suffix": (["summary", "afile"], ("afile",)),
        "tflite-as-spec": (["explain", model, "99"], ("99",)),
    }
    (work / "quantized_as_input.npz").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    for name, (argv, names) in outputs.items():
        cases.append(Case(f"out-{name}", argv, names, timeout=15))
    return cases
