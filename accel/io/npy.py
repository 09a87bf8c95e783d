"""``.npy`` arrays (inputs, labels, calibration data), headers checked before any data is read.

Never unpickled: object dtypes are refused from the header, and so are structured, string and
complex dtypes, shapes whose data would not match the file's size, and arrays larger than
:data:`MAX_ARRAY_BYTES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import AccelError
from .files import check_file, short

MAX_ARRAY_BYTES = 256 * 1024 * 1024
#: Array dtype kinds accel computes with: bool, signed/unsigned integers, floats.
NUMERIC_KINDS = "biuf"


def read_header(f: BinaryIO, context: str, *, max_bytes: int = MAX_ARRAY_BYTES,
                kinds: str = NUMERIC_KINDS) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of the ``.npy`` stream ``f``, positioned at its data;
    refuses dtypes whose kind is not in ``kinds`` and arrays larger than ``max_bytes``."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=4096)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=4096)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except Exception as e:  # noqa: BLE001 - numpy parses the header with ast/tokenize: any
        # failure of that parser on a hostile header is the same one-line refusal
        raise AccelError(f"{context}: not a readable .npy array: {short(str(e))[1:-1]}"
                         ) from None
    if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None \
            or dtype.subdtype is not None:
        wanted = "a plain numeric dtype (bool, int or float)" if kinds == NUMERIC_KINDS \
            else f"of kind {kinds!r}"
        raise AccelError(f"{context}: dtype {short(str(dtype))} is not {wanted}")
    if not all(isinstance(s, int) and s >= 0 for s in shape):
        raise AccelError(f"{context}: bad shape {short(shape)}")
    size = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size > max_bytes:
        raise AccelError(f"{context}: an array of shape {short(shape)} and dtype {dtype} is "
                         f"{size:,} bytes, more than accel reads ({max_bytes:,})")
    return tuple(shape), bool(fortran), dtype


def read_data(f: BinaryIO, shape: tuple[int, ...], fortran: bool, dtype: np.dtype,
              context: str) -> np.ndarray:
    """The data after :func:`read_header`: exactly ``prod(shape)`` items, or one line."""
    count = int(np.prod(shape, dtype=object))
    want = count * dtype.itemsize
    try:
        raw = f.read(want)
    except (OSError, EOFError, ValueError) as e:
        raise AccelError(f"{context}: unreadable array data: {short(str(e))[1:-1]}") from None
    if len(raw) != want:
        raise AccelError(f"{context}: truncated: {len(raw):,} of {want:,} data bytes")
    array = np.frombuffer(raw, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C").copy()


def load_array(path: str | Path, what: str) -> np.ndarray:
    """A ``.npy`` array from a checked regular file; ``what`` names its role in messages."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        raise AccelError(f"{path}: {what} must be a .npy array, not an .npz archive")
    check_file(path, what, max_bytes=MAX_ARRAY_BYTES + 4096)
    context = f"{path} ({what})"
    try:
        with open(path, "rb") as f:
            shape, fortran, dtype = read_header(f, context)
            array = read_data(f, shape, fortran, dtype, context)
            if f.read(1):
                raise AccelError(f"{context}: trailing bytes after the array data")
    except OSError as e:
        raise AccelError(f"{context}: cannot read: {e.strerror or e}") from None
    return array
