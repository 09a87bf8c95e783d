"""The float network after folding, and its NumPy forward pass (for calibration and accuracy).

:func:`fold` turns a spec plus float weights into the layer list the quantizer sees:

- BatchNormalization right after a Conv2D/DepthwiseConv2D/Dense is folded into it, per output
  channel: ``k = gamma / sqrt(var + eps)``, ``W' = W * k``, ``b' = (b - mean) * k + beta``.
- ReLU / Activation(relu|relu6) is fused into the preceding Conv2D/DepthwiseConv2D/Dense, Add
  (TFLite's ADD with a fused activation) or pool (MaxPooling2D or AveragePooling2D: the clamp
  applies to the pool's output, as TFLite's fused activation does) as its activation; ReLU
  after ReLU6 or the reverse is ReLU6.
- Dropout is dropped (the identity at inference).
- A final softmax becomes its own layer (the hardware stops before it).

The graph is kept: every folded layer names its inputs. Anything that cannot be folded (a
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
    AveragePooling2D,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    Layer,
    MaxPooling2D,
    Network,
    ReLU,
    Reshape,
    ZeroPadding2D,
)
from .windows import extract_windows


@dataclass(frozen=True, eq=False)
class FoldedLayer:
    """One layer of the folded float network.

    Members
    -------
    spec : Layer
        Conv2D / DepthwiseConv2D / Dense / Add (with the fused activation), a pool,
        ZeroPadding2D, Flatten, Reshape, Concatenate, or ``Activation("softmax")``.
    activation : str
        ``linear``, ``relu`` or ``relu6`` applied at the output (``softmax`` for the softmax).
    kernel, bias : numpy.ndarray or None
        Float weights (Keras layout) of Conv2D/DepthwiseConv2D/Dense, BN already folded in.
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
    """
    folded: list[FoldedLayer] = []
    alias: dict[str, str] = {}  # folded-away layer -> the tensor that now carries its output

    position: dict[str, int] = {}  # folded layer name -> its index in ``folded``
    # Tensor -> its producer's output reaches it through single-reader steps only (fusing a
    # clamp into the producer then changes nobody else's input).
    exclusive: dict[str, bool] = {}

    def append(f: FoldedLayer, inputs: tuple[str, ...]) -> None:
        position[f.name] = len(folded)
        folded.append(dataclasses.replace(f, spec=dataclasses.replace(f.spec, inputs=inputs)))

    for info in network.infos:
        layer, where = info.layer, info.where()
        exclusive[info.name] = True
        inputs = tuple(alias.get(name, name) for name in info.inputs)
        # The folded layer this one reads (not necessarily the last one: Keras lists a
        # shortcut conv between a residual branch's conv and its BatchNormalization). A layer
        # is fused into it only if it is that tensor's sole reader.
        at = position.get(inputs[0]) if len(inputs) == 1 else None
        prev = folded[at] if at is not None else None
        sole_reader = len(network.consumers(info.inputs[0])) == 1
        fusable = prev is not None and sole_reader and exclusive.get(info.inputs[0], False)
        if isinstance(layer, (Conv2D, DepthwiseConv2D, Dense)):
            w = weights.get(info.name)
            if w is None:
                raise AccelError(f"{where}: no weights")
            kernel = w["kernel"]
            bias = w.get("bias", np.zeros(info.output_shape[-1]))
            act = _activation_of(layer, where)
            append(FoldedLayer(layer, act if act != "softmax" else "linear", kernel, bias),
                   inputs)
            if act == "softmax":
                append(FoldedLayer(Activation("softmax", name="softmax"), "softmax"),
                       (info.name,))
        elif isinstance(layer, BatchNormalization):
            if not fusable or prev.kernel is None or prev.activation != "linear":
                raise AccelError(f"{where}: BatchNormalization can only be folded into a "
                                 f"Conv2D/DepthwiseConv2D/Dense it alone reads, with no "
                                 f"activation")
            bn = weights[info.name]
            gamma = bn.get("gamma", np.ones_like(bn["moving_mean"]))
            beta = bn.get("beta", np.zeros_like(bn["moving_mean"]))
            k = gamma / np.sqrt(bn["moving_variance"] + layer.epsilon)
            # Output channel c * m + j of a depthwise kernel (kh, kw, c, m) is [..., c, j].
            k_kernel = k.reshape(prev.kernel.shape[-2:]) if isinstance(
                prev.spec, DepthwiseConv2D) else k
            folded[at] = dataclasses.replace(
                prev, kernel=prev.kernel * k_kernel,
                bias=(prev.bias - bn["moving_mean"]) * k + beta)
            alias[info.name] = prev.name
        elif isinstance(layer, (ReLU, Activation)):
            act = _activation_of(layer, where)
            if act == "softmax":
                append(FoldedLayer(Activation("softmax", name=info.name), "softmax"), inputs)
                continue
            if not fusable or not isinstance(prev.spec, _FUSES_ACTIVATION):
                raise AccelError(f"{where}: {act} must follow a Conv2D, DepthwiseConv2D, Dense, "
                                 f"Add, MaxPooling2D or AveragePooling2D (read by nothing else) "
                                 f"to be fused as its output clamp")
            folded[at] = dataclasses.replace(prev, activation=_combine(prev.activation, act))
            alias[info.name] = prev.name
        elif isinstance(layer, Dropout):
            alias[info.name] = inputs[0]
            exclusive[info.name] = exclusive.get(info.inputs[0], False) and sole_reader
        elif isinstance(layer, (MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
                                ZeroPadding2D, Flatten, Reshape, Add, Concatenate)):
            append(FoldedLayer(dataclasses.replace(layer, activation="linear") if isinstance(
                layer, Add) else layer, _activation_of(layer, where)), inputs)
        else:  # pragma: no cover - every spec layer type is handled above
            raise AccelError(f"{where}: cannot be quantized")
    # The compute layers carry their fused activation in the spec too (for summaries/plans).
    return [
        dataclasses.replace(f, spec=dataclasses.replace(f.spec, activation=f.activation))
        if isinstance(f.spec, _CARRIES_ACTIVATION) else f
        for f in folded
    ]


#: Layers whose output clamp a following ReLU becomes; those whose spec records it.
_FUSES_ACTIVATION = (Conv2D, DepthwiseConv2D, Dense, Add, MaxPooling2D, AveragePooling2D)
_CARRIES_ACTIVATION = (Conv2D, DepthwiseConv2D, Dense, Add)


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
        args = [outputs[name] for name in info.inputs]
        h = args[0]
        window = info.inferred.window
        if isinstance(f.spec, Conv2D):
            win = extract_windows(h, window, 0.0)
            n, oh, ow = win.shape[:3]
            k = f.kernel.reshape(-1, f.kernel.shape[-1])
            h = (win.reshape(n * oh * ow, -1) @ k).reshape(n, oh, ow, -1) + f.bias
        elif isinstance(f.spec, DepthwiseConv2D):
            win = extract_windows(h, window, 0.0)  # (n, oh, ow, kh, kw, c)
            h = np.einsum("nhwijc,ijcm->nhwcm", win, f.kernel)
            h = h.reshape(*h.shape[:3], -1) + f.bias
        elif isinstance(f.spec, Dense):
            h = h @ f.kernel + f.bias
        elif isinstance(f.spec, MaxPooling2D):
            h = extract_windows(h, window, -np.inf).max(axis=(3, 4))
        elif isinstance(f.spec, AveragePooling2D):
            # Only in-image values count (an edge window of a 'same' pool averages fewer).
            count = extract_windows(np.ones((1, *h.shape[1:3], 1)), window, 0.0).sum(axis=(3, 4))
            h = extract_windows(h, window, 0.0).sum(axis=(3, 4)) / count
        elif isinstance(f.spec, GlobalAveragePooling2D):
            h = h.mean(axis=(1, 2), keepdims=f.spec.keepdims)
        elif isinstance(f.spec, ZeroPadding2D):
            (top, bottom), (left, right) = f.spec.padding
            h = np.pad(h, ((0, 0), (top, bottom), (left, right), (0, 0)))
        elif isinstance(f.spec, (Flatten, Reshape)):
            h = h.reshape(h.shape[0], -1)
        elif isinstance(f.spec, Add):
            h = np.sum(args, axis=0)
        elif isinstance(f.spec, Concatenate):
            h = np.concatenate(args, axis=-1)
        h = _apply_activation(h, f.activation)
        outputs[f.name] = h
    del outputs[INPUT]
    return outputs
