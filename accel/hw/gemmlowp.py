"""gemmlowp's fixed-point primitives as Amaranth expressions, for blocks whose multipliers and
shifts are constants (per-tensor ``ADD`` and ``MEAN``).

Each is exactly the NumPy function of :mod:`accel.quant.numerics` it is named after; the block
tests compare the hardware with those bit for bit.
"""

from __future__ import annotations

from amaranth import Mux

__all__ = ["rounding_divide_by_pot", "srdhm_of_product"]


def srdhm_of_product(product):
    """``SaturatingRoundingDoublingHighMul(a, b)`` given the exact product ``a * b``:
    ``(a * b + nudge) / 2**31`` truncated toward zero, ``nudge = 2**30`` if ``a * b >= 0`` else
    ``1 - 2**30``. The saturating case ``a == b == INT32_MIN`` is the caller's to exclude (it
    cannot occur with a non-negative multiplier)."""
    v = product + Mux(product < 0, 1 - (1 << 30), 1 << 30)
    return (v >> 31) + ((v < 0) & (v[:31] != 0))


def rounding_divide_by_pot(x, exponent: int):
    """``RoundingDivideByPOT(x, exponent)`` for a constant ``exponent`` in 0..31: an arithmetic
    shift with ties away from zero."""
    if exponent == 0:
        return x
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (x[:exponent] > threshold)
