"""Payload layouts of the streams between accelerator stages, and the parameter checks they need.

Activations travel as **channel-group words**. A pixel of ``C`` channels is ``ceil(C / lanes)``
beats; beat ``g`` carries channels ``g * lanes .. g * lanes + lanes - 1`` in its ``data`` lanes
(lane ``k`` is channel ``g * lanes + k``). Lanes past ``C`` in a pixel's last group are don't-care
for the consumer, but every block that *produces* them fills them with a fixed value (the zero
point of the tensor), so streams are deterministic and can be compared bit for bit. Pixels come
in raster order (row by row, column by column, channels innermost) and frames follow each other
with no gap. ``last`` marks the final beat of a frame.

Layouts
-------
:func:`pixel_layout`
    ``{"data": ArrayLayout(signed(bits), lanes), "last": 1}``: activations (``bits = 8`` for
    int8) and, with ``bits = acc_bits``, the accumulators that enter the requantizer.
:func:`window_layout`
    ``{"data": ArrayLayout(signed(bits), lanes), "first": 1, "last": 1, "frame_last": 1}``: the
    output of the window generator, one beat per (tap, channel group) of a window.
"""

from __future__ import annotations

import numpy as np
from amaranth import signed
from amaranth.lib import data

from accel.spec.shapes import PADDINGS

__all__ = [
    "check_int",
    "check_padding",
    "check_pair",
    "pixel_layout",
    "window_layout",
]


# --- parameter checks -------------------------------------------------------------------------


def check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``lo..hi`` (``hi=None``: no bound).

    Raises ``TypeError`` for a non-integer (``bool`` included) and ``ValueError`` for an integer
    out of range; both messages name the parameter and the value.
    """
    if hi is not None:
        what = f"an integer in {lo}..{hi}"
    elif lo == 1:
        what = "a positive integer"
    elif lo == 0:
        what = "a non-negative integer"
    else:
        what = f"an integer >= {lo}"
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be {what}, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be {what}, not {value!r}")
    return int(value)


def check_pair(name: str, value: object) -> tuple[int, int]:
    """Return a ``(rows, cols)`` pair of positive integers; a single integer means a square."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        value = (value, value)
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise TypeError(f"{name} must be a positive integer or a pair of them, not {value!r}")
    for item in value:
        if isinstance(item, bool | np.bool_) or not isinstance(item, int | np.integer):
            raise TypeError(f"{name} must be a positive integer or a pair of them, not {value!r}")
        if item < 1:
            raise ValueError(f"{name} must be a positive integer or a pair of them, not {value!r}")
    return int(value[0]), int(value[1])


def check_padding(value: object):
    """Return ``value`` if it is ``"valid"``, ``"same"``, or explicit padding ``((top,
    bottom), (left, right))`` of non-negative integers (a folded zero padding,
    :func:`accel.spec.shapes.fold_padding`)."""
    if isinstance(value, tuple) and len(value) == 2 and all(
            isinstance(p, tuple) and len(p) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in p)
            for p in value):
        return value
    if not isinstance(value, str):
        raise TypeError(f"padding must be 'valid' or 'same', not {value!r}")
    if value not in PADDINGS:
        raise ValueError(f"padding must be 'valid' or 'same', not {value!r}")
    return value


# --- layouts ----------------------------------------------------------------------------------


def pixel_layout(lanes: int, bits: int = 8) -> data.StructLayout:
    """The layout of a channel-group word: ``lanes`` signed ``bits``-bit values and ``last``.

    Parameters
    ----------
    lanes : int
        Values per beat, >= 1.
    bits : int
        Width of each (signed) value, >= 1.

    Returns
    -------
    StructLayout
        ``{"data": ArrayLayout(signed(bits), lanes), "last": 1}``; ``last`` is high on the final
        beat of a frame.
    """
    lanes = check_int("lanes", lanes, 1)
    bits = check_int("bits", bits, 1)
    return data.StructLayout({"data": data.ArrayLayout(signed(bits), lanes), "last": 1})


def window_layout(lanes: int, bits: int = 8) -> data.StructLayout:
    """The layout of a window beat (the output of :class:`~accel.hw.window.WindowGenerator`).

    Parameters
    ----------
    lanes, bits : int
        As for :func:`pixel_layout`.

    Returns
    -------
    StructLayout
        ``{"data": ArrayLayout(signed(bits), lanes), "first": 1, "last": 1, "frame_last": 1}``:
        ``first`` and ``last`` mark the first and last beat of one window, ``frame_last`` the
        last beat of the last window of a frame.
    """
    lanes = check_int("lanes", lanes, 1)
    bits = check_int("bits", bits, 1)
    return data.StructLayout({
        "data": data.ArrayLayout(signed(bits), lanes),
        "first": 1,
        "last": 1,
        "frame_last": 1,
    })
