"""``.npz`` archives, read member by member with their headers checked first.

The archive is never extracted and never unpickled. :func:`read_npz` refuses unsafe or
unexpected member names, members whose declared size is larger than the caller allows (so a
2.5 GB member of zeros is refused from the zip directory, not read), and then reads each
expected member's ``.npy`` header (dtype, shape, size) before its data.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import AccelError
from .files import check_file, short
from .npy import MAX_ARRAY_BYTES, NUMERIC_KINDS, read_data, read_header

MAX_MEMBERS = 10_000


def _member_name(info: zipfile.ZipInfo, context: str) -> str:
    name = info.filename
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":") \
            or not name.endswith(".npy"):
        raise AccelError(f"{context}: unexpected member {short(name)} in the .npz archive")
    return name[:-len(".npy")]


def open_npz(path: str | Path, what: str) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    """The open archive and its members by array name (``.npy`` stripped), names checked."""
    path = Path(path)
    check_file(path, what)
    try:
        zf = zipfile.ZipFile(path)
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise AccelError(f"{path}: not a readable .npz archive: {short(str(e))[1:-1]}"
                         ) from None
    try:
        if len(infos) > MAX_MEMBERS:
            raise AccelError(f"{path}: {len(infos):,} members in the .npz archive")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = _member_name(info, str(path))
            if name in members:
                raise AccelError(f"{path}: member {short(name)} appears twice in the archive")
            members[name] = info
    except BaseException:
        zf.close()
        raise
    return zf, members


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, context: str, *,
                max_bytes: int = MAX_ARRAY_BYTES, kinds: str = NUMERIC_KINDS,
                check: Callable[[tuple[int, ...], np.dtype], None] | None = None) -> np.ndarray:
    """One member as an array: its declared size, then its header (and ``check(shape,
    dtype)``, which raises to refuse) before its data."""
    where = f"{context}: member {short(info.filename)}"
    if info.file_size > max_bytes + 4096:
        raise AccelError(f"{where} is {info.file_size:,} bytes, more than it can need "
                         f"({max_bytes:,})")
    try:
        with zf.open(info) as f:
            shape, fortran, dtype = read_header(f, where, max_bytes=max_bytes, kinds=kinds)
            if check is not None:
                check(shape, dtype)
            return read_data(f, shape, fortran, dtype, where)
    except AccelError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError) as e:
        raise AccelError(f"{where}: unreadable: {short(str(e))[1:-1]}") from None
