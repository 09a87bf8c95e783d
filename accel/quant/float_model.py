"""The float network after folding, and its NumPy forward pass (for calibration and accuracy).

:func:`fold` turns a spec plus float weights into the layer list the quantizer sees:

- BatchNormalization right after a Conv2D/Dense is folded into it, per output channel:
  ``k = gamma / sqrt(var + eps)``, ``W' = W * k``, ``b' = (b - mean) * k + beta``.
- ReLU / Activation(relu|relu6) is fused into the preceding Conv2D/Dense (or MaxPooling2D,
  since max commutes with a monotone clamp) as its activation; ReLU after ReLU6 or the reverse
  is ReLU6.
- Dropout is dropped (the identity at inference).
- A final softmax becomes its own layer (the hardware stops before it).

The graph is kept: every folded layer names its inputs. Add and Concatenate are refused (their
integer numerics are not implemented yet). Anything that cannot be folded (a
BatchNormalization after a pool, an activation after a Flatten) fails with one line naming the
layer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import AccelError
from ..spec import (
    INPUT,
    Activation,
    Add,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPooling2D,
    Network,
    ReLU,
)
from .windows import extract_windows


@dataclass(frozen=True, eq=False)
class FoldedLayer:
    """One layer of the folded float network.

    Members
    -------
    spec : Layer
        Conv2D / Dense (with the fused activation), MaxPooling2D, Flatten, or
        ``Activation("softmax")``.
    activation : str
        ``linear``, ``relu`` or ``relu6`` applied at the output (``softmax`` for the softmax).
    kernel, bias : numpy.ndarray or None
        Float weights (Keras layout) of Conv2D/Dense, BN already folded in.
    """

    spec: Layer
    activation: str = "linear"
    kernel: np.ndarray | None = None
    bias: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self.spec.name  # type: ignore[return-value]


def _combine(first: str, second: str) -> str:
    """The single clamp equal to applying ``first`` then ``second`` (both ReLU-like)."""
    if first == "linear":
        return second
    if second == "linear":
        return first
    return "relu6" if "relu6" in (first, second) else "relu"


def _activation_of(layer: Layer, where: str) -> str:
    name = layer.activation_name
    if name not in ("linear", "relu", "relu6", "softmax"):
        raise AccelError(f"{where}: activation {name} cannot be quantized (relu, relu6, linear)")
    return name


def fold(network: Network, weights: dict[str, dict[str, np.ndarray]]) -> list[FoldedLayer]:
    """Fold BatchNormalization and activations into the compute layers (see module doc).

    The folded layers keep the network's graph: each names its inputs, with a folded-away
    layer's name replaced by the layer it was folded into (or its own input, for Dropout).
    Add and Concatenate have no integer implementation yet and fail with one line.
    """
    folded: list[FoldedLayer] = []
    alias: dict[str, str] = {}  # folded-away layer -> the tensor that now carries its output

    def append(f: FoldedLayer, inputs: tuple[str, ...]) -> None:
        folded.append(dataclasses.replace(f, spec=dataclasses.replace(f.spec, inputs=inputs)))

    for info in network.infos:
        layer, where = info.layer, info.where()
        inputs = tuple(alias.get(name, name) for name in info.inputs)
        prev = folded[-1] if folded else None
        # A layer is fused into the one before it only if it is that layer's sole reader.
        fusable = (prev is not None and inputs == (prev.name,)
                   and len(network.consumers(info.inputs[0])) == 1)
        if isinstance(layer, (Add, Concatenate)):
            raise AccelError(f"{where}: no integer implementation yet")
        if isinstance(layer, (Conv2D, Dense)):
            w = weights.get(info.name)
            if w is None:
                raise AccelError(f"{where}: no weights")
            kernel = w["kernel"]
            bias = w.get("bias", np.zeros(kernel.shape[-1]))
            act = _activation_of(layer, where)
            append(FoldedLayer(layer, act if act != "softmax" else "linear", kernel, bias),
                   inputs)
            if act == "softmax":
                append(FoldedLayer(Activation("softmax", name="softmax"), "softmax"),
                       (info.name,))
        elif isinstance(layer, BatchNormalization):
            if not fusable or prev.kernel is None or prev.activation != "linear":
                raise AccelError(f"{where}: BatchNormalization can only be folded into a "
                                 f"Conv2D/Dense right before it with no activation")
            bn = weights[info.name]
            gamma = bn.get("gamma", np.ones_like(bn["moving_mean"]))
            beta = bn.get("beta", np.zeros_like(bn["moving_mean"]))
            k = gamma / np.sqrt(bn["moving_variance"] + layer.epsilon)
            folded[-1] = dataclasses.replace(
                prev, kernel=prev.kernel * k, bias=(prev.bias - bn["moving_mean"]) * k + beta)
            alias[info.name] = prev.name
        elif isinstance(layer, (ReLU, Activation)):
            act = _activation_of(layer, where)
            if act == "softmax":
                append(FoldedLayer(Activation("softmax", name=info.name), "softmax"), inputs)
                continue
            if not fusable or not isinstance(prev.spec, (Conv2D, Dense, MaxPooling2D)):
                raise AccelError(f"{where}: {act} must follow a Conv2D, Dense or MaxPooling2D "
                                 f"to be fused as its output clamp")
            folded[-1] = dataclasses.replace(prev, activation=_combine(prev.activation, act))
            alias[info.name] = prev.name
        elif isinstance(layer, Dropout):
            alias[info.name] = inputs[0]
        elif isinstance(layer, (MaxPooling2D, Flatten)):
            append(FoldedLayer(layer), inputs)
        else:  # pragma: no cover - every spec layer type is handled above
            raise AccelError(f"{where}: cannot be quantized")
    # The compute layers carry their fused activation in the spec too (for summaries/plans).
    return [
        dataclasses.replace(f, spec=dataclasses.replace(f.spec, activation=f.activation))
        if isinstance(f.spec, (Conv2D, Dense)) else f
        for f in folded
    ]


def folded_network(network: Network, folded: list[FoldedLayer]) -> Network:
    """The spec of the folded layers (shape inference runs again)."""
    return Network(network.name, network.input_shape, tuple(f.spec for f in folded))


def _apply_activation(y: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(y, 0.0)
    if activation == "relu6":
        return np.clip(y, 0.0, 6.0)
    if activation == "softmax":
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return y


def float_forward(network: Network, folded: list[FoldedLayer],
                  x: np.ndarray) -> dict[str, np.ndarray]:
    """Every folded layer's float output for a float input batch, by layer name."""
    spec = folded_network(network, folded)
    outputs: dict[str, np.ndarray] = {INPUT: np.asarray(x, dtype=np.float64)}
    for f, info in zip(folded, spec.infos, strict=True):
        (h,) = (outputs[name] for name in info.inputs)
        if isinstance(f.spec, Conv2D):
            win = extract_windows(h, info.inferred.window, 0.0)
            n, oh, ow = win.shape[:3]
            k = f.kernel.reshape(-1, f.kernel.shape[-1])
            h = (win.reshape(n * oh * ow, -1) @ k).reshape(n, oh, ow, -1) + f.bias
        elif isinstance(f.spec, Dense):
            h = h @ f.kernel + f.bias
        elif isinstance(f.spec, MaxPooling2D):
            h = extract_windows(h, info.inferred.window, -np.inf).max(axis=(3, 4))
        elif isinstance(f.spec, Flatten):
            h = h.reshape(h.shape[0], -1)
        h = _apply_activation(h, f.activation)
        outputs[f.name] = h
    del outputs[INPUT]
    return outputs
