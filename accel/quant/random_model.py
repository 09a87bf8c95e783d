"""Deterministic random quantized networks from a spec and a seed.

For hardware tests and sweeps that need no trained model. Rather than drawing integers blindly,
a float network is drawn (He-normal kernels, small biases, plausible BatchNormalization
statistics) and quantized by the same post-training quantization as a trained model, with a
seeded batch of uniform [0, 1) inputs as calibration. The integers therefore have the
statistics of a real network: outputs use the int8 range instead of saturating, and every
scheme and bit width is covered by one code path.
"""

from __future__ import annotations

import numpy as np

from ..spec import BatchNormalization, Conv2D, Dense, DepthwiseConv2D, Network
from .float_model import fold
from .ptq import quantize_folded
from .qnet import QuantizedNetwork

CALIBRATION_IMAGES = 8


def random_float_weights(network: Network, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Float weights for every Conv2D/DepthwiseConv2D/Dense/BatchNormalization of ``network``."""
    rng = np.random.default_rng(seed)
    weights: dict[str, dict[str, np.ndarray]] = {}
    for info in network.infos:
        layer = info.layer
        if isinstance(layer, (Conv2D, DepthwiseConv2D, Dense)):
            shape = info.inferred.kernel_shape
            # A depthwise output sees kh * kw inputs; its bias is per output channel.
            depthwise = isinstance(layer, DepthwiseConv2D)
            fan_in = int(np.prod(shape[:2] if depthwise else shape[:-1]))
            channels = info.output_shape[-1]
            weights[info.name] = {
                "kernel": rng.normal(0.0, np.sqrt(2.0 / fan_in), shape),
                "bias": rng.normal(0.0, 0.05, channels) if layer.use_bias
                else np.zeros(channels),
            }
        elif isinstance(layer, BatchNormalization):
            c = info.input_shape[-1]
            weights[info.name] = {
                "gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(0.0, 0.1, c),
                "moving_mean": rng.normal(0.0, 0.1, c),
                "moving_variance": rng.uniform(0.5, 1.5, c),
            }
    return weights


def random_calibration(network: Network, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 1])
    return rng.uniform(0.0, 1.0, (CALIBRATION_IMAGES, *network.input_shape))


def random_quantized(network: Network, seed: int, *, scheme: str = "tflite-int8",
                     weight_bits: int = 8, act_bits: int = 8) -> QuantizedNetwork:
    """A quantized ``network`` with weights drawn from ``seed`` (same seed, same integers)."""
    folded = fold(network, random_float_weights(network, seed))
    return quantize_folded(network, folded, random_calibration(network, seed), scheme=scheme,
                           weight_bits=weight_bits, act_bits=act_bits,
                           source=f"{network.name} with random weights, seed {seed}")
