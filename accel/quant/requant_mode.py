"""The one vocabulary of requantization modes, shared by the quantized network and the plan."""

from __future__ import annotations

import enum

__all__ = ["RequantMode"]


class RequantMode(enum.StrEnum):
    """How an accumulator becomes an output value (the arithmetic, not its circuit).

    ``TFLITE``
        TFLite's Q31 multiplier and shift with its rounding (CONV_2D; FULLY_CONNECTED before
        TF 2.20): :func:`accel.quant.numerics.requantize`.
    ``FLOAT``
        ``round(double(acc) * scale)`` (FULLY_CONNECTED of TF 2.20+):
        :func:`accel.quant.numerics.requantize_float`.
    ``WIDE``
        An integer ``round(acc * M / 2**n)`` that
        :func:`accel.quant.numerics.wide_multiplier_for_scale` proves equal to ``FLOAT`` over
        the layer's accumulator range: chosen by the planner, never by a quantizer.
    ``POW2``
        A rounding arithmetic shift (power-of-two scales), no multiplier.
    """

    TFLITE = "tflite"
    FLOAT = "float"
    WIDE = "wide"
    POW2 = "pow2"

    @classmethod
    def parse(cls, value: object) -> RequantMode:
        """``value`` as a mode; ``"multiplier"`` (the quantizer's old name) is ``TFLITE``."""
        if value == "multiplier":
            return cls.TFLITE
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(repr(m.value) for m in cls)
            raise ValueError(f"requant mode must be one of {names}, not {value!r}") from None
