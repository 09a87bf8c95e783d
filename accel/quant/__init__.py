"""Quantization: integer numerics and the golden model."""
