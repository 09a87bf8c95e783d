"""``.tflite`` files: every table, vector and index accel uses is bounds-checked before the
``tflite`` package (which trusts its input) reads it.

:func:`verify_tflite` walks the parts of the TFLite schema the importer reads, the way the
flatbuffers verifier does: the root offset, every table's vtable and inline size, every field's
width inside its table, every vector's and string's length inside the buffer. Then it checks
what the importer would otherwise trip over: operator-code, tensor and buffer indices in range,
tensor types and option types that are valid enum values, every constant buffer exactly as long
as its tensor's shape needs, no data outside the flatbuffer (``Buffer.offset``), nonzero strides,
filter sizes and dilations, and the softmax ``beta``. The operator code of an operator is
resolved exactly as TFLite's ``GetBuiltinCode`` does: ``max(builtin_code,
deprecated_builtin_code)``, the byte-wide field read as a signed ``int8``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import AccelError
from .files import read_bytes, short

MAX_TFLITE_BYTES = 64 * 1024 * 1024
MAX_ITEMS = 100_000  # tensors, operators, buffers, operator codes per model
MAX_ELEMENTS = 1 << 28  # elements of one tensor

#: TensorType values and their element sizes (0 for non-numeric types accel never reads).
TENSOR_ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: 0, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16,
                   12: 8, 13: 0, 14: 0, 15: 4, 16: 2, 17: 0, 18: 2}
#: BuiltinOptions union types of the operators accel reads options of.
OPTIONS_TYPE = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 2, "MAX_POOL_2D": 5, "AVERAGE_POOL_2D": 5,
                "FULLY_CONNECTED": 8, "SOFTMAX": 9, "CONCATENATION": 10, "ADD": 11,
                "MEAN": 27, "STRIDED_SLICE": 32, "PACK": 59}


class _Corrupt(Exception):
    pass


class _Buf:
    """Little-endian reads that raise :class:`_Corrupt` instead of reading past the end."""

    def __init__(self, data: bytes):
        self.data = data
        self.n = len(data)

    def need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or size < 0 or pos + size > self.n:
            raise _Corrupt(f"{what} at byte {pos} (+{size}) is past the end ({self.n} bytes)")

    def u8(self, pos: int, what: str) -> int:
        self.need(pos, 1, what)
        return self.data[pos]

    def i8(self, pos: int, what: str) -> int:
        self.need(pos, 1, what)
        return struct.unpack_from("<b", self.data, pos)[0]

    def u16(self, pos: int, what: str) -> int:
        self.need(pos, 2, what)
        return struct.unpack_from("<H", self.data, pos)[0]

    def i32(self, pos: int, what: str) -> int:
        self.need(pos, 4, what)
        return struct.unpack_from("<i", self.data, pos)[0]

    def u32(self, pos: int, what: str) -> int:
        self.need(pos, 4, what)
        return struct.unpack_from("<I", self.data, pos)[0]

    def u64(self, pos: int, what: str) -> int:
        self.need(pos, 8, what)
        return struct.unpack_from("<Q", self.data, pos)[0]

    def f32(self, pos: int, what: str) -> float:
        self.need(pos, 4, what)
        return struct.unpack_from("<f", self.data, pos)[0]


class _Table:
    """A verified table: its vtable and inline size are inside the buffer."""

    def __init__(self, buf: _Buf, pos: int, what: str):
        self.buf, self.pos, self.what = buf, pos, what
        buf.need(pos, 4, what)
        vt = pos - buf.i32(pos, what)
        self.vt_size = buf.u16(vt, f"{what} vtable")
        self.size = buf.u16(vt + 2, f"{what} vtable")
        if self.vt_size < 4 or self.vt_size % 2 or self.size < 4:
            raise _Corrupt(f"{what}: malformed vtable (sizes {self.vt_size}, {self.size})")
        buf.need(vt, self.vt_size, f"{what} vtable")
        buf.need(pos, self.size, what)
        self.vt = vt

    def field(self, slot: int, width: int) -> int:
        """The absolute position of field ``slot`` (0 if absent), its width inside the table."""
        entry = 4 + 2 * slot
        if entry >= self.vt_size:
            return 0
        off = self.buf.u16(self.vt + entry, self.what)
        if off == 0:
            return 0
        if off + width > self.size:
            raise _Corrupt(f"{self.what}: field {slot} at offset {off} is outside the table "
                           f"({self.size} bytes)")
        return self.pos + off

    def check_fields(self) -> None:
        """Every field the vtable declares starts inside the table, with room for a 4-byte
        scalar or offset (the widest an options table holds) inside the buffer."""
        for entry in range(4, self.vt_size, 2):
            off = self.buf.u16(self.vt + entry, self.what)
            if off and (off >= self.size or self.pos + off + 4 > len(self.buf.data)):
                raise _Corrupt(f"{self.what}: field {(entry - 4) // 2} at offset {off} is "
                               f"outside the table ({self.size} bytes)")

    def scalar(self, slot: int, kind: str, default=0):
        width = {"u8": 1, "i8": 1, "u16": 2, "i32": 4, "u32": 4, "u64": 8, "f32": 4}[kind]
        pos = self.field(slot, width)
        if not pos:
            return default
        return getattr(self.buf, kind)(pos, f"{self.what} field {slot}")

    def _target(self, slot: int) -> int:
        pos = self.field(slot, 4)
        if not pos:
            return 0
        return pos + self.buf.u32(pos, f"{self.what} field {slot}")

    def table(self, slot: int, what: str) -> _Table | None:
        target = self._target(slot)
        return _Table(self.buf, target, what) if target else None

    def vector(self, slot: int, itemsize: int, what: str) -> tuple[int, int]:
        """``(position of element 0, length)`` of a vector field; (0, 0) if absent."""
        target = self._target(slot)
        if not target:
            return 0, 0
        n = self.buf.u32(target, what)
        self.buf.need(target + 4, n * itemsize, what)
        return target + 4, n

    def ints(self, slot: int, what: str) -> list[int]:
        start, n = self.vector(slot, 4, what)
        if n > MAX_ITEMS:
            raise _Corrupt(f"{what}: {n} entries")
        return list(struct.unpack_from(f"<{n}i", self.buf.data, start)) if n else []

    def tables(self, slot: int, what: str) -> list[_Table]:
        start, n = self.vector(slot, 4, what)
        if n > MAX_ITEMS:
            raise _Corrupt(f"{what}: {n} entries, more than {MAX_ITEMS:,}")
        out = []
        for i in range(n):
            pos = start + 4 * i
            out.append(_Table(self.buf, pos + self.buf.u32(pos, what), f"{what}[{i}]"))
        return out

    def string(self, slot: int, what: str) -> str:
        start, n = self.vector(slot, 1, what)
        return self.buf.data[start:start + n].decode("utf-8", "replace") if n else ""


@dataclass(frozen=True)
class TfliteFacts:
    """What the verifier established: each operator's builtin code (``GetBuiltinCode``)."""

    op_codes: tuple[int, ...]


def _opcode_names() -> dict[int, str]:
    from tflite.utils import BUILTIN_OPCODE2NAME

    return BUILTIN_OPCODE2NAME


def verify_tflite(data: bytes, context: str) -> TfliteFacts:
    """Verify ``data`` (a whole ``.tflite`` file); one :class:`AccelError` line or the facts."""
    try:
        return _verify(_Buf(data), context)
    except _Corrupt as e:
        raise AccelError(f"{context}: corrupt TFLite flatbuffer: {e}") from None


def _verify(buf: _Buf, context: str) -> TfliteFacts:  # noqa: C901 - one walk of the schema
    if buf.n < 8 or buf.data[4:8] != b"TFL3":
        raise AccelError(f"{context}: not a TFLite flatbuffer (no TFL3 identifier)")
    model = _Table(buf, buf.u32(0, "root offset"), "model")
    version = model.scalar(0, "u32")
    if version != 3:
        raise AccelError(f"{context}: TFLite schema version {version}; version 3 is supported")
    names = _opcode_names()
    codes = []
    for i, oc in enumerate(model.tables(1, "operator_codes")):
        deprecated = oc.scalar(0, "i8")
        builtin = oc.scalar(3, "i32")
        code = max(builtin, deprecated)  # GetBuiltinCode (schema_utils.cc)
        if code not in names:
            raise AccelError(f"{context}: operator code {i} has builtin code {code}, not a "
                             f"TFLite builtin operator")
        codes.append(code)
    buffers = model.tables(4, "buffers")
    buffer_sizes = []
    for i, b in enumerate(buffers):
        _, n = b.vector(0, 1, f"buffers[{i}].data")
        if b.scalar(1, "u64") > 1 or b.scalar(2, "u64") > 0:
            raise AccelError(f"{context}: buffer {i} keeps its data outside the flatbuffer "
                             f"(offset/size fields); not supported")
        buffer_sizes.append(n)
    subgraphs = model.tables(2, "subgraphs")
    if len(subgraphs) != 1:
        raise AccelError(f"{context}: {len(subgraphs)} subgraphs; only one is supported")
    sg = subgraphs[0]
    tensors = sg.tables(0, "tensors")
    shapes: list[list[int]] = []
    types: list[int] = []
    for i, t in enumerate(tensors):
        where = f"{context}: tensor {i}"
        shape = t.ints(0, f"tensors[{i}].shape")
        if any(d < 0 for d in shape) or len(shape) > 8:
            raise AccelError(f"{where}: bad shape {short(shape)}")
        elements = math.prod(shape)
        if elements > MAX_ELEMENTS:
            raise AccelError(f"{where}: shape {short(shape)} has {elements:,} elements")
        kind = t.scalar(1, "i8")
        if kind not in TENSOR_ITEMSIZE:
            raise AccelError(f"{where}: tensor type {kind} is not a TFLite TensorType")
        index = t.scalar(2, "u32")
        if index >= max(len(buffers), 1):
            raise AccelError(f"{where}: buffer index {index} is out of range "
                             f"({len(buffers)} buffers)")
        t.string(3, f"tensors[{i}].name")
        q = t.table(4, f"tensors[{i}].quantization")
        if q is not None:
            _, n_min = q.vector(0, 4, "min")
            _, n_max = q.vector(1, 4, "max")
            start, n_scale = q.vector(2, 4, "scale")
            _, n_zp = q.vector(3, 8, "zero_point")
            if n_zp not in (0, n_scale):
                raise AccelError(f"{where}: {n_scale} scales but {n_zp} zero points")
            axis = q.scalar(6, "i32")
            if n_scale > 1 and not 0 <= axis < max(len(shape), 1):
                raise AccelError(f"{where}: quantized dimension {axis} is outside its rank "
                                 f"{len(shape)}")
            if n_scale > 1 and shape and shape[axis] != n_scale:
                raise AccelError(f"{where}: {n_scale} scales for {shape[axis]} channels")
            for k in range(n_scale):
                s = buf.f32(start + 4 * k, "scale")
                if not math.isfinite(s):
                    raise AccelError(f"{where}: scale {s!r} is not finite")
        size = buffer_sizes[index] if index < len(buffer_sizes) else 0
        if size and TENSOR_ITEMSIZE[kind] and size != elements * TENSOR_ITEMSIZE[kind]:
            raise AccelError(f"{where}: buffer {index} holds {size:,} bytes, its shape "
                             f"{short(shape)} of type {kind} needs "
                             f"{elements * TENSOR_ITEMSIZE[kind]:,}")
        shapes.append(shape)
        types.append(kind)

    def check_indices(values: list[int], what: str, optional: bool) -> None:
        for v in values:
            if not (-1 if optional else 0) <= v < len(tensors):
                raise AccelError(f"{context}: {what}: tensor index {v} is out of range "
                                 f"({len(tensors)} tensors)")

    check_indices(sg.ints(1, "subgraph inputs"), "subgraph inputs", False)
    check_indices(sg.ints(2, "subgraph outputs"), "subgraph outputs", False)
    op_codes = []
    for i, op in enumerate(sg.tables(3, "operators")):
        index = op.scalar(0, "u32")
        if index >= len(codes):
            raise AccelError(f"{context}: operator {i}: opcode index {index} is out of range "
                             f"({len(codes)} operator codes)")
        name = names[codes[index]]
        where = f"{context}: operator {i} ({name})"
        inputs = op.ints(1, f"operators[{i}].inputs")
        outputs = op.ints(2, f"operators[{i}].outputs")
        check_indices(inputs, f"operator {i} ({name}) inputs", True)
        check_indices(outputs, f"operator {i} ({name}) outputs", False)
        if not inputs or inputs[0] < 0 or not outputs:
            raise AccelError(f"{where}: needs an input and an output tensor")
        op_codes.append(codes[index])
        # Any operator's options table is read by the tflite package through its vtable:
        # the table, and every field it declares, must lie inside the buffer.
        opts_type = op.scalar(3, "u8")
        opts = op.table(4, f"operators[{i}].builtin_options")
        if opts is not None:
            opts.check_fields()
            if name == "RESHAPE":
                opts.ints(0, f"operators[{i}].builtin_options.new_shape")
        if name not in OPTIONS_TYPE:
            continue
        if opts_type != OPTIONS_TYPE[name] or opts is None:
            raise AccelError(f"{where}: builtin options of type {opts_type}, "
                             f"{OPTIONS_TYPE[name]} is required")
        _check_options(name, opts, inputs, shapes, where)
    return TfliteFacts(op_codes=tuple(op_codes))


def _check_options(name: str, opts: _Table, inputs: list[int], shapes: list[list[int]],
                   where: str) -> None:
    in_rank = len(shapes[inputs[0]])
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"):
        if in_rank != 4:
            raise AccelError(f"{where}: input of rank {in_rank}; an NHWC tensor is required")
        if opts.scalar(0, "i8") not in (0, 1):
            raise AccelError(f"{where}: padding {opts.scalar(0, 'i8')} is not SAME or VALID")
        for slot, field in ((1, "stride_w"), (2, "stride_h")):
            if opts.scalar(slot, "i32") < 1:
                raise AccelError(f"{where}: {field} {opts.scalar(slot, 'i32')} must be >= 1")
    if name == "DEPTHWISE_CONV_2D":
        for slot, field in ((5, "dilation_w_factor"), (6, "dilation_h_factor")):
            if opts.scalar(slot, "i32", 1) < 1:
                raise AccelError(f"{where}: {field} {opts.scalar(slot, 'i32', 1)} must be >= 1")
        if len(inputs) < 2 or inputs[1] < 0 or len(shapes[inputs[1]]) != 4:
            raise AccelError(f"{where}: needs a 4-D filter tensor (1HWC)")
    if name == "CONV_2D":
        for slot, field in ((4, "dilation_w_factor"), (5, "dilation_h_factor")):
            if opts.scalar(slot, "i32", 1) < 1:
                raise AccelError(f"{where}: {field} {opts.scalar(slot, 'i32', 1)} must be >= 1")
        if len(inputs) < 2 or inputs[1] < 0 or len(shapes[inputs[1]]) != 4:
            raise AccelError(f"{where}: needs a 4-D filter tensor (OHWI)")
        if len(inputs) > 2 and inputs[2] >= 0 and \
                shapes[inputs[2]] != [shapes[inputs[1]][0]]:
            raise AccelError(f"{where}: bias of shape {short(shapes[inputs[2]])} for "
                             f"{shapes[inputs[1]][0]} filters")
    if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        for slot, field in ((3, "filter_width"), (4, "filter_height")):
            if opts.scalar(slot, "i32") < 1:
                raise AccelError(f"{where}: {field} {opts.scalar(slot, 'i32')} must be >= 1")
    if name == "FULLY_CONNECTED":
        if opts.scalar(1, "i8") not in (0, 1):
            raise AccelError(f"{where}: weights format {opts.scalar(1, 'i8')} is not a "
                             f"FullyConnectedOptionsWeightsFormat")
        if len(inputs) < 2 or inputs[1] < 0 or len(shapes[inputs[1]]) != 2:
            raise AccelError(f"{where}: needs a 2-D weights tensor (units, features)")
        if len(inputs) > 2 and inputs[2] >= 0 and \
                shapes[inputs[2]] != [shapes[inputs[1]][0]]:
            raise AccelError(f"{where}: bias of shape {short(shapes[inputs[2]])} for "
                             f"{shapes[inputs[1]][0]} units")
    if name == "SOFTMAX":
        beta = opts.scalar(0, "f32", 0.0)
        if not (math.isfinite(beta) and beta > 0):
            raise AccelError(f"{where}: softmax beta {beta!r} must be finite and positive")


def read_tflite(path: str | Path) -> tuple[bytes, TfliteFacts]:
    """The bytes of a checked regular ``.tflite`` file and what its verification found."""
    path = Path(path)
    data = read_bytes(path, "TFLite model", max_bytes=MAX_TFLITE_BYTES)
    return data, verify_tflite(data, str(path))
