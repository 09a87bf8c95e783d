"""Writing a file atomically: a reader sees the old file or the whole new one, never a part.

Used wherever a file may be read while it is written or must survive a kill half way: sweep
records (a resumed sweep reads them back), the sweep's reports, build reports.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, newline: str | None = None
                ) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing (``mode`` ``"w"`` or ``"wb"``); when
    the block ends normally it is flushed to disk and renamed over ``path``; when the block
    raises, it is removed and ``path`` is untouched. The directory must exist."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    # A unique name (processes and threads may write the same path at once), created with
    # open(..., "x") rather than mkstemp so the file gets the usual permissions, not 0600.
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, mode.replace("w", "x"), newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, content: str | bytes) -> Path:
    """Write ``content`` (text or bytes) to ``path`` atomically (see :func:`atomic_open`);
    returns ``path``."""
    with atomic_open(path, "wb" if isinstance(content, bytes) else "w") as f:
        f.write(content)
    return Path(path)
