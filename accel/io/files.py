"""Checks common to every file accel reads: regular files only, stat first, bounded reads.

A FIFO would block forever and ``/dev/zero`` would be read until memory runs out, so nothing is
opened before :func:`check_file` has seen, with ``os.stat``, a regular file of a size the
format can need. Values quoted in error messages go through :func:`short`, so a hostile file
cannot make an error message large.
"""

from __future__ import annotations

import contextlib
import os
import reprlib
import stat
from pathlib import Path

from ..errors import AccelError

#: The largest file of any format accel reads (the biggest models it can fit are a few MB).
MAX_FILE_BYTES = 256 * 1024 * 1024

#: The ``what`` of model files: "no such file" needs no role for them.
MODEL_ROLES = ("spec", "Keras model", "HDF5 model", "TFLite model", "quantized network")

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlong = 40
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6
_repr.maxlevel = 3


def short(value: object) -> str:
    """``repr(value)`` cut to a few dozen characters (``reprlib``): safe to put in a message."""
    try:
        return _repr.repr(value)
    except Exception:  # noqa: BLE001 - a hostile object's __repr__ must not escape
        return f"<{type(value).__name__}>"


@contextlib.contextmanager
def about(path: str | Path):
    """Prefix ``path: `` to an :class:`AccelError` raised inside (unless it names it already),
    so a message from deep inside (a zero point, an input shape) says which file it is about."""
    try:
        yield
    except AccelError as e:
        message = str(e)
        if str(path) in message:
            raise
        raise AccelError(f"{path}: {message}") from None


def check_file(path: str | Path, what: str, *, max_bytes: int = MAX_FILE_BYTES,
               suffixes: tuple[str, ...] | None = None) -> int:
    """Check that ``path`` is a readable regular file of at most ``max_bytes``; its size.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the file is for (``"inputs"``, ``"model"``), used in messages.
    max_bytes : int
        The largest size the format can need.
    suffixes : tuple of str, optional
        Accepted suffixes (lower case, with the dot); others are refused with one line.

    Raises
    ------
    AccelError
        Missing, not a regular file (directory, FIFO, device, socket), unreadable, too large
        or of the wrong type; the message names the file.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        # a model is named by its own suffix; a data file says what it was for
        role = "" if what in MODEL_ROLES else f" ({what})"
        raise AccelError(f"{path}: no such file{role}") from None
    except (OSError, ValueError) as e:
        raise AccelError(f"{path}: cannot read ({what}): {getattr(e, 'strerror', None) or e}"
                         ) from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else
                "a FIFO" if stat.S_ISFIFO(st.st_mode) else
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise AccelError(f"{path}: is {kind}, not a regular file ({what})")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise AccelError(f"{path}: {what} must be a {'/'.join(suffixes)} file, not "
                         f"{short(path.suffix or '(no suffix)')}")
    if st.st_size > max_bytes:
        raise AccelError(f"{path}: {st.st_size:,} bytes, more than a {what} file can need "
                         f"({max_bytes:,})")
    if not os.access(path, os.R_OK):
        raise AccelError(f"{path}: permission denied ({what})")
    return st.st_size


def read_bytes(path: str | Path, what: str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The contents of a regular file checked by :func:`check_file`, read at most
    ``max_bytes + 1`` bytes (so a file that grows after the stat is still refused)."""
    path = Path(path)
    check_file(path, what, max_bytes=max_bytes)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise AccelError(f"{path}: cannot read ({what}): {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise AccelError(f"{path}: more than {max_bytes:,} bytes ({what})")
    return data
