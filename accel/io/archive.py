"""Writing ``.npz`` results: one layout for ``predict -o`` and ``sim -o``, nothing clobbered.

Layout (every array batch first):

- ``output``: the final tensor (``predict``: the golden model's; ``sim``: the hardware's logits);
- ``golden`` (``sim`` only): the golden model's logits, which ``output`` must equal;
- ``layers/<name>``: each layer's int output, in network order.

Layer names live under ``layers/``, so no layer can replace ``output`` or ``golden`` or collide
with ``np.savez``'s own keywords, and each name is checked (:func:`check_name`) so that no member
name can escape the archive. Output paths must be regular files or not exist yet (never a FIFO,
a device or a directory), and their directory is created if needed.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from ..errors import AccelError
from .qnet_file import check_name


def check_output_path(path: str | Path, what: str) -> Path:
    """``path`` as a file accel may (over)write: absent or a regular file, under a directory
    (or a path that can become one)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as e:
        raise AccelError(f"{path}: cannot write {what}: {e.strerror or e}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise AccelError(f"{path}: exists and is not a regular file; refusing to write {what}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise AccelError(f"{path}: cannot write: {parent} is a file, not a directory")
            break
    return path


def check_output_dir(path: str | Path, what: str) -> Path:
    """``path`` as a directory accel may write into: a directory or absent, with no file on
    the way."""
    path = Path(path)
    if path.is_file() or (path.exists() and not path.is_dir()):
        raise AccelError(f"{path}: exists and is not a directory; refusing to write {what}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise AccelError(f"{path}: cannot write: {parent} is a file, not a directory")
            break
    return path


def write_npz(path: str | Path, arrays: dict[str, np.ndarray], what: str = "results") -> None:
    """Write ``arrays`` (member names as given, each ``.npy``) to ``path``; one-line errors."""
    path = check_output_path(path, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
            for name, array in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    except OSError as e:
        raise AccelError(f"{path}: cannot write: {e.strerror or e}") from None


def result_arrays(output: np.ndarray, layers: dict[str, np.ndarray],
                  golden: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The members of a result archive (see module doc), layer names checked."""
    arrays: dict[str, np.ndarray] = {"output": output}
    if golden is not None:
        arrays["golden"] = golden
    for name, value in layers.items():
        arrays[f"layers/{check_name(name, 'result archive')}"] = value
    return arrays
