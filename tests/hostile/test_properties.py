"""Property tests of the loading boundary (hypothesis): whatever the input, the readers either
return their result or raise one one-line :class:`AccelError` naming the file; nothing else
escapes. In-process (no CLI), so each example costs microseconds."""

from __future__ import annotations

import json

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accel.errors import AccelError
from accel.io.documents import parse_json, parse_yaml
from accel.io.flatbuffer import verify_tflite
from accel.spec.spec_file import network_from_document

from .harness import ROOT

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["same", "valid", "relu", "softmax", "x", ""]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)
layer_types = st.sampled_from(["Conv2D", "Dense", "MaxPooling2D", "Flatten", "Activation",
                               "ReLU", "Dropout", "BatchNormalization", "Nope"])
fields = st.sampled_from(["filters", "kernel_size", "strides", "padding", "activation",
                          "units", "pool_size", "name", "use_bias", "rate", "bogus"])
layers = st.lists(st.dictionaries(layer_types, st.one_of(
    st.dictionaries(fields, values, max_size=4), values), min_size=1, max_size=1),
    max_size=5)
documents = st.fixed_dictionaries({"input": st.one_of(
    st.lists(st.integers(-3, 40), max_size=4), values), "layers": layers},
    optional={"name": values, "extra": values})


def _one_line(e: AccelError, name: str) -> None:
    message = str(e)
    assert "\n" not in message and name in message and len(message) <= 1000


@SETTINGS
@given(documents)
def test_any_spec_document_is_a_network_or_one_line(doc):
    try:
        network_from_document(doc, "doc.yaml", "doc")
    except AccelError as e:
        _one_line(e, "doc.yaml")


@SETTINGS
@given(documents, st.sampled_from(["yaml", "json"]))
def test_any_spec_text_parses_or_is_one_line(doc, kind):
    text = yaml.safe_dump(doc) if kind == "yaml" else json.dumps(doc)
    try:
        parsed = parse_yaml(text, "f.yaml") if kind == "yaml" else parse_json(text, "f.json")
        network_from_document(parsed, "f", "f")
    except AccelError as e:
        _one_line(e, "f")


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list("{}[]:,&*!-|>'\"\n\t #0123abc.")),
               max_size=200))
def test_any_yaml_text_parses_or_is_one_line(text):
    try:
        parse_yaml(text, "t.yaml")
    except AccelError as e:
        _one_line(e, "t.yaml")


_TFLITE = (ROOT / "examples" / "digits" / "digits_small.tflite").read_bytes()


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, len(_TFLITE) - 1), st.integers(0, 255)),
                min_size=1, max_size=8), st.integers(8, len(_TFLITE)))
def test_any_mutated_flatbuffer_verifies_or_is_one_line(flips, length):
    data = bytearray(_TFLITE)
    for pos, value in flips:
        data[pos] = value
    try:
        verify_tflite(bytes(data[:length]), "m.tflite")
    except AccelError as e:
        _one_line(e, "m.tflite")


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_after_the_identifier_verify_or_are_one_line(tail):
    try:
        verify_tflite(b"\x10\0\0\0TFL3" + tail, "r.tflite")
    except AccelError as e:
        _one_line(e, "r.tflite")


@SETTINGS
@given(st.binary(max_size=200))
def test_any_npy_header_is_an_array_or_one_line(raw):
    import io

    from accel.io.npy import read_data, read_header

    f = io.BytesIO(b"\x93NUMPY\x01\x00" + raw)
    try:
        shape, fortran, dtype = read_header(f, "h.npy")
        array = read_data(f, shape, fortran, dtype, "h.npy")
        assert isinstance(array, np.ndarray)
    except AccelError as e:
        _one_line(e, "h.npy")
