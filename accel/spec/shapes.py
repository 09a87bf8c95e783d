"""Shape arithmetic of sliding-window layers, exactly as TensorFlow computes it.

This module is the only place where output sizes and padding amounts are computed; the spec,
the golden model, the hardware plan and the line buffers all call it.

TensorFlow's rules, per spatial axis with input length ``n``, window ``k`` and stride ``s``:

- ``valid``: no padding; ``out = ceil((n - k + 1) / s)``, which needs ``n >= k``.
- ``same``:  ``out = ceil(n / s)``; the total padding is ``max((out - 1) * s + k - n, 0)``,
  split with the smaller half before (top/left) and the odd pixel after (bottom/right).

The same rules hold for convolution and pooling (dilation is not supported).

A window may also have explicit padding ``(before, after)`` per axis (a ZeroPadding2D / TFLite
PAD folded into the window of the layer that reads it, :func:`fold_padding`):
``out = (n + before + after - k) // s + 1``, which needs ``n + before + after >= k``.
"""

from __future__ import annotations

from dataclasses import dataclass

PADDINGS = ("valid", "same")


@dataclass(frozen=True)
class AxisWindow:
    """How a window of size ``kernel`` and stride ``stride`` slides along one axis.

    Members
    -------
    size : int
        Input length along this axis.
    kernel, stride : int
        Window size and step.
    padding : str or (int, int)
        ``"valid"``, ``"same"`` or explicit ``(before, after)``.
    out : int
        Number of window positions (the output length).
    pad_before, pad_after : int
        Padding added before (top/left) and after (bottom/right) the input.
    """

    size: int
    kernel: int
    stride: int
    padding: str | tuple[int, int]
    out: int
    pad_before: int
    pad_after: int

    def start(self, i: int) -> int:
        """Input index of the first element of window ``i`` (negative inside the padding)."""
        return i * self.stride - self.pad_before


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for integers, without floating point."""
    return -(-a // b)


def _is_pads(value) -> bool:
    return (isinstance(value, tuple) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value))


def axis_window(size: int, kernel: int, stride: int,
                padding: str | tuple[int, int]) -> AxisWindow:
    """Output length and padding of a sliding window along one axis.

    Raises ``ValueError`` when the arguments are not positive integers, the padding is unknown,
    or (``valid`` and explicit) the window is larger than the (padded) input. With ``same``
    padding every window overlaps the input (the padding is always smaller than the window), so
    any sizes work.
    """
    for field, value in (("size", size), ("kernel", kernel), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{field} must be a positive integer, not {value!r}")
    if _is_pads(padding):
        before, after = padding
        if kernel > size + before + after:
            raise ValueError(f"window {kernel} is larger than the input {size} with padding "
                             f"{padding!r}")
        out = (size + before + after - kernel) // stride + 1
        return AxisWindow(size, kernel, stride, padding, out, before, after)
    if not isinstance(padding, str) or padding not in PADDINGS:
        raise ValueError(f"padding must be 'valid' or 'same', not {padding!r}")
    if padding == "valid":
        if kernel > size:
            raise ValueError(
                f"window {kernel} is larger than the input {size} with padding 'valid'"
            )
        out = ceil_div(size - kernel + 1, stride)
        return AxisWindow(size, kernel, stride, padding, out, 0, 0)
    out = ceil_div(size, stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return AxisWindow(size, kernel, stride, padding, out, total // 2, total - total // 2)


@dataclass(frozen=True)
class Window2D:
    """A 2-D sliding window: one :class:`AxisWindow` for rows and one for columns."""

    rows: AxisWindow
    cols: AxisWindow

    @property
    def out_shape(self) -> tuple[int, int]:
        return (self.rows.out, self.cols.out)

    @property
    def padding_amounts(self) -> dict[str, int]:
        """Padding per side, named as a user reads it."""
        return {
            "top": self.rows.pad_before,
            "bottom": self.rows.pad_after,
            "left": self.cols.pad_before,
            "right": self.cols.pad_after,
        }


def window_2d(
    size: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int], padding
) -> Window2D:
    """The 2-D window of a Conv2D or MaxPooling2D layer on an input of spatial ``size``;
    ``padding`` is ``"valid"``, ``"same"`` or explicit ``((top, bottom), (left, right))``."""
    rows, cols = (padding, padding) if isinstance(padding, str) else padding
    return Window2D(
        axis_window(size[0], kernel[0], strides[0], rows),
        axis_window(size[1], kernel[1], strides[1], cols),
    )


def fold_padding(size: tuple[int, int], pads, kernel: tuple[int, int],
                 strides: tuple[int, int], padding: str) -> tuple[tuple[int, int], ...]:
    """The explicit padding ``((top, bottom), (left, right))`` of a window with ``padding``
    on an input of spatial ``size`` that a zero padding ``pads`` (``((top, bottom), (left,
    right))``) enlarged first: the zero padding's plus the window's own on the padded size.
    Same windows, same output size."""
    (t, b), (left, right) = pads
    own = window_2d((size[0] + t + b, size[1] + left + right), kernel, strides, padding)
    return ((t + own.rows.pad_before, b + own.rows.pad_after),
            (left + own.cols.pad_before, right + own.cols.pad_after))
