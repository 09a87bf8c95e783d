"""HDF5 files (legacy Keras ``.h5`` models and the ``model.weights.h5`` inside ``.keras``).

HDF5 can make a dataset read another file: external links, external raw storage
(``H5Pset_external``) and virtual datasets (VDS) all resolve to paths on the local machine, so
a hostile model could have ``accel quantize`` copy any readable file into its output. Before
anything is read, :func:`check_tree` walks every link of the file and refuses anything but hard
links, datasets with external storage and virtual datasets; :func:`read_dataset` checks a
dataset's shape and dtype before it reads a byte of it, and attributes are size-checked before
they are read.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AccelError
from .files import MAX_FILE_BYTES, check_file, short

#: A Keras model of the size accel handles has a few dozen objects; optimizer state adds some.
MAX_OBJECTS = 10_000
MAX_ATTRIBUTE_BYTES = 16 * 1024 * 1024


def open_h5(source: str | Path | bytes, context: str):
    """``h5py.File`` on a checked regular file (or in-memory bytes), with the tree checked.

    Use as a context manager; the caller catches nothing: every failure is an AccelError.
    """
    import h5py

    if isinstance(source, bytes):
        target: Any = io.BytesIO(source)
    else:
        check_file(source, "HDF5 model", max_bytes=MAX_FILE_BYTES)
        target = source
    try:
        f = h5py.File(target, "r")
    except (OSError, ValueError) as e:
        raise AccelError(f"{context}: not a readable HDF5 file (truncated or not HDF5): "
                         f"{short(str(e))[1:-1]}") from None
    try:
        check_tree(f, context)
    except BaseException:
        f.close()
        raise
    return f


def check_tree(f, context: str) -> None:
    """Refuse soft/external links, external storage and virtual datasets anywhere in ``f``."""
    import h5py

    count = 0
    stack = [("", f)]
    while stack:
        prefix, group = stack.pop()
        try:
            names = list(group.keys())
        except (OSError, RuntimeError, ValueError, KeyError) as e:
            raise AccelError(f"{context}: corrupt HDF5 group {short(prefix or '/')}: "
                             f"{short(str(e))[1:-1]}") from None
        for name in names:
            where = f"{prefix}/{name}"
            count += 1
            if count > MAX_OBJECTS:
                raise AccelError(f"{context}: more than {MAX_OBJECTS:,} HDF5 objects")
            try:
                link = group.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    kind = type(link).__name__
                    raise AccelError(f"{context}: HDF5 object {short(where)} is a {kind}; only "
                                     f"hard links are allowed (no links to other files/paths)")
                obj = group.get(name)
            except AccelError:
                raise
            except (OSError, RuntimeError, ValueError, KeyError, TypeError) as e:
                raise AccelError(f"{context}: corrupt HDF5 object {short(where)}: "
                                 f"{short(str(e))[1:-1]}") from None
            if isinstance(obj, h5py.Group):
                stack.append((where, obj))
            elif isinstance(obj, h5py.Dataset):
                _check_storage(obj, where, context)
            else:
                raise AccelError(f"{context}: HDF5 object {short(where)} is a "
                                 f"{type(obj).__name__}, not a group or dataset")


def _check_storage(ds, where: str, context: str) -> None:
    try:
        external = ds.external
        virtual = ds.is_virtual
    except (OSError, RuntimeError, ValueError) as e:
        raise AccelError(f"{context}: corrupt HDF5 dataset {short(where)}: "
                         f"{short(str(e))[1:-1]}") from None
    if external:
        raise AccelError(f"{context}: HDF5 dataset {short(where)} keeps its data in external "
                         f"files; refused (it would read outside the model file)")
    if virtual:
        raise AccelError(f"{context}: HDF5 dataset {short(where)} is a virtual dataset; "
                         f"refused (it would read outside the model file)")


def read_attribute(obj, name: str, context: str) -> Any:
    """Attribute ``name`` of ``obj`` (None if absent), its storage size checked first."""
    try:
        if name not in obj.attrs:
            return None
        size = obj.attrs.get_id(name).get_storage_size()
        if size > MAX_ATTRIBUTE_BYTES:
            raise AccelError(f"{context}: HDF5 attribute {name!r} is {size:,} bytes, more than "
                             f"a Keras model needs ({MAX_ATTRIBUTE_BYTES:,})")
        return obj.attrs[name]
    except AccelError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as e:
        raise AccelError(f"{context}: unreadable HDF5 attribute {name!r}: "
                         f"{short(str(e))[1:-1]}") from None


def read_dataset(ds, where: str, context: str, shape: tuple[int, ...] | None = None
                 ) -> np.ndarray:
    """A float/int dataset as float64, its shape (when given) and dtype checked before the
    read; ``where`` names it in messages."""
    import h5py

    if not isinstance(ds, h5py.Dataset):
        raise AccelError(f"{context}: {short(where)} is not an HDF5 dataset")
    _check_storage(ds, where, context)
    try:
        dtype, got = ds.dtype, tuple(ds.shape or ())
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise AccelError(f"{context}: corrupt HDF5 dataset {short(where)}: "
                         f"{short(str(e))[1:-1]}") from None
    if dtype.kind not in "fiu" or dtype.itemsize > 8:
        raise AccelError(f"{context}: dataset {short(where)} has dtype {short(str(dtype))}; "
                         f"float or integer weights are expected")
    if shape is not None and got != tuple(shape):
        raise AccelError(f"{context}: dataset {short(where)} has shape {got}, {tuple(shape)} "
                         f"is expected")
    if int(np.prod(got, dtype=object)) * 8 > MAX_FILE_BYTES:
        raise AccelError(f"{context}: dataset {short(where)} of shape {short(got)} is too large")
    try:
        return np.asarray(ds[()], dtype=np.float64)
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise AccelError(f"{context}: unreadable HDF5 dataset {short(where)}: "
                         f"{short(str(e))[1:-1]}") from None
