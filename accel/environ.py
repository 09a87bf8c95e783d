"""Setting environment variables for the duration of a tool run."""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def environ(values: dict[str, str]):
    """Set ``values`` in ``os.environ`` inside the block; afterwards every key has its old
    value again (or is unset, if it was). The tools read these (Amaranth's yosys choice, the
    YoWASP tool paths, Verilator's root and make flags), and cocotb's runner passes
    ``os.environ`` to its subprocesses."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
