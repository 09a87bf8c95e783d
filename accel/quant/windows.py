"""Sliding windows of an NHWC batch, as one strided view: the im2col used by both the golden
model (integers) and the float reference model, so window extraction exists once."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..spec.shapes import Window2D


def extract_windows(x: np.ndarray, window: Window2D, pad_value) -> np.ndarray:
    """Every window of ``x`` (N, H, W, C) as an array (N, out_h, out_w, kh, kw, C).

    The input is padded per :attr:`Window2D.padding_amounts` with ``pad_value`` (zero for a
    convolution after subtracting the zero point, the lowest value for max pooling); window
    ``(i, j)`` starts at padded row ``i * stride_h`` and column ``j * stride_w``.
    """
    p = window.padding_amounts
    xp = np.pad(x, ((0, 0), (p["top"], p["bottom"]), (p["left"], p["right"]), (0, 0)),
                constant_values=pad_value)
    kh, kw = window.rows.kernel, window.cols.kernel
    oh, ow = window.out_shape
    sh, sw = window.rows.stride, window.cols.stride
    # sliding_window_view gives (N, H', W', C, kh, kw); keep every stride-th window.
    win = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw][:, :oh, :ow]
    return win.transpose(0, 1, 2, 4, 5, 3)
