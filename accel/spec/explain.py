"""``accel explain``: one layer's arithmetic in words, with the network's concrete numbers.

Answers the questions people ask about a layer: what shape goes in, what the kernel's shape is
and why, how much padding is added on each side, what one output element is as a sum, how many
parameters and MACs that makes, and what pooling and flatten do to the shape.
"""

from __future__ import annotations

from .layers import (
    Add,
    AveragePooling2D,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAveragePooling2D,
    MaxPooling2D,
    Reshape,
    ZeroPadding2D,
)
from .network import INPUT, LayerInfo, Network
from .shapes import AxisWindow, Window2D


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _axis_formula(axis: AxisWindow, what: str) -> str:
    if axis.padding == "same":
        return (
            f"{what}: ceil({axis.size} / {axis.stride}) = {axis.out} (padding 'same' gives "
            f"ceil(in / stride))"
        )
    return (
        f"{what}: ceil(({axis.size} - {axis.kernel} + 1) / {axis.stride}) = {axis.out} "
        f"(padding 'valid' gives ceil((in - k + 1) / stride))"
    )


def _padding_lines(window: Window2D) -> list[str]:
    lines = [
        "  " + _axis_formula(window.rows, "rows"),
        "  " + _axis_formula(window.cols, "cols"),
    ]
    p = window.padding_amounts
    if window.rows.padding == "same":
        total_r = p["top"] + p["bottom"]
        total_c = p["left"] + p["right"]
        lines.append(
            f"  padding: rows {total_r} = (out-1)*stride + k - in -> top {p['top']}, "
            f"bottom {p['bottom']}; cols {total_c} -> left {p['left']}, right {p['right']} "
            f"(an odd pixel goes to the bottom/right, as in TensorFlow)"
        )
    else:
        dropped_r = window.rows.size - ((window.rows.out - 1) * window.rows.stride
                                        + window.rows.kernel)
        dropped_c = window.cols.size - ((window.cols.out - 1) * window.cols.stride
                                        + window.cols.kernel)
        lines.append("  padding: none ('valid')")
        if dropped_r or dropped_c:
            lines.append(
                f"  the windows do not reach the last {dropped_r} row(s) and {dropped_c} "
                f"column(s) of the input; those pixels are never read"
            )
    return lines


def _activation_wrap(activation: str, expr: str) -> str:
    if activation == "linear":
        return expr
    if activation == "softmax":
        return f"softmax over the output vector of ({expr})"
    return f"{activation}({expr})"


def _explain_conv(info: LayerInfo, network: Network) -> list[str]:
    layer: Conv2D = info.layer  # type: ignore[assignment]
    h, w, cin = info.input_shape
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    oh, ow, f = info.output_shape
    per_output = kh * kw * cin
    bias = " + b[f]" if layer.use_bias else ""
    lines = [
        f"input  {_shape(info.input_shape)}: {h} rows x {w} columns x {cin} channels",
        f"kernel {_shape(info.inferred.kernel_shape)} = (kernel_h, kernel_w, in_channels "
        f"{cin}, filters {f})" + (f", bias ({f},)" if layer.use_bias else ", no bias"),
        (f"output {_shape(info.output_shape)}: {oh} x {ow} positions x {f} filters "
        f"(stride {sh}x{sw}, padding '{layer.padding}')"),
        *_padding_lines(info.inferred.window),
        "one output element:",
        "  y[i, j, f] = " + _activation_wrap(
            layer.activation,
            f"sum over kh < {kh}, kw < {kw}, c < {cin} of "
            f"x[{sh}*i + kh - {info.inferred.window.rows.pad_before}, "
            f"{sw}*j + kw - {info.inferred.window.cols.pad_before}, c] * W[kh, kw, c, f]{bias}",
        ),
        f"  = {kh}*{kw}*{cin} = {per_output:,} multiply-adds per output element"
        + (" (pixels outside the input count as zero)" if layer.padding == "same" else ""),
        (f"each of the {f} output channels is the sum over all {cin} input channels of a "
        f"{kh}x{kw} convolution (one {kh}x{kw} slice of W per input channel), so the output "
        f"has {f} channels, not {f}*{cin} = {f * cin:,}"),
        f"params {kh}*{kw}*{cin}*{f}" + (f" + {f}" if layer.use_bias else "")
        + f" = {info.params:,}",
        f"MACs   {oh}*{ow}*{f} outputs * {per_output:,} = {info.macs:,}",
    ]
    return lines


def _explain_pool(info: LayerInfo, network: Network) -> list[str]:
    layer: MaxPooling2D = info.layer  # type: ignore[assignment]
    ph, pw = layer.pool_size
    sh, sw = layer.strides
    c = info.input_shape[2]
    return [
        f"input  {_shape(info.input_shape)}",
        f"window {ph}x{pw}, stride {sh}x{sw}, padding '{layer.padding}'",
        *_padding_lines(info.inferred.window),
        (f"output {_shape(info.output_shape)}: each channel separately, y[i, j, c] = max over "
        f"kh < {ph}, kw < {pw} of x[{sh}*i + kh - {info.inferred.window.rows.pad_before}, "
        f"{sw}*j + kw - {info.inferred.window.cols.pad_before}, c]"),
        f"the channel count stays {c}; "
        + ("padded positions are ignored by the max" if layer.padding == "same"
           else "no parameters, no MACs (comparisons only)"),
    ]


def _explain_depthwise(info: LayerInfo, network: Network) -> list[str]:
    layer: DepthwiseConv2D = info.layer  # type: ignore[assignment]
    h, w, cin = info.input_shape
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    m = layer.depth_multiplier
    oh, ow, cout = info.output_shape
    window = info.inferred.window
    bias = " + b[c*m + d]" if layer.use_bias else ""
    return [
        f"input  {_shape(info.input_shape)}: {h} rows x {w} columns x {cin} channels",
        f"kernel {_shape(info.inferred.kernel_shape)} = (kernel_h, kernel_w, in_channels "
        f"{cin}, depth_multiplier {m})" + (f", bias ({cout},)" if layer.use_bias else
                                            ", no bias"),
        (f"output {_shape(info.output_shape)}: {oh} x {ow} positions x {cin}*{m} = {cout} "
         f"channels (stride {sh}x{sw}, padding '{layer.padding}')"),
        *_padding_lines(window),
        "one output element (channel c*m + d, d < m, reads input channel c only):",
        "  y[i, j, c*m + d] = " + _activation_wrap(
            layer.activation,
            f"sum over kh < {kh}, kw < {kw} of x[{sh}*i + kh - {window.rows.pad_before}, "
            f"{sw}*j + kw - {window.cols.pad_before}, c] * W[kh, kw, c, d]{bias}"),
        (f"  = {kh}*{kw} = {kh * kw} multiply-adds per output element: no sum over input "
         f"channels (that is the pointwise 1x1 Conv2D that usually follows)"),
        f"params {kh}*{kw}*{cin}*{m}" + (f" + {cout}" if layer.use_bias else "")
        + f" = {info.params:,}",
        f"MACs   {oh}*{ow}*{cout} outputs * {kh * kw} = {info.macs:,}",
    ]


def _explain_avg_pool(info: LayerInfo, network: Network) -> list[str]:
    layer: AveragePooling2D = info.layer  # type: ignore[assignment]
    ph, pw = layer.pool_size
    sh, sw = layer.strides
    return [
        f"input  {_shape(info.input_shape)}",
        f"window {ph}x{pw}, stride {sh}x{sw}, padding '{layer.padding}'",
        *_padding_lines(info.inferred.window),
        (f"output {_shape(info.output_shape)}: each channel separately, y[i, j, c] = the mean "
         f"of x over the window's pixels inside the image"
         + (" (an edge window averages fewer values; padding is not counted)"
            if layer.padding == "same" else "")),
        ("int8 (TFLite): the sum of the codes divided by the count, rounded half away from "
        "zero; the output keeps the input's scale and zero point; no parameters, no MACs"),
    ]


def _explain_global_avg_pool(info: LayerInfo, network: Network) -> list[str]:
    h, w, c = info.input_shape
    return [
        f"input  {_shape(info.input_shape)}",
        (f"output {_shape(info.output_shape)}: per channel, y[c] = the mean of x[:, :, c] over "
         f"all {h}*{w} = {h * w} positions"),
        ("int8 (TFLite MEAN): the sum minus the zero points, times s_in/s_out with 1/(h*w) "
        "folded into the Q31 multiplier; no parameters, no MACs"),
    ]


def _explain_zero_padding(info: LayerInfo, network: Network) -> list[str]:
    layer: ZeroPadding2D = info.layer  # type: ignore[assignment]
    (top, bottom), (left, right) = layer.padding
    h, w, c = info.input_shape
    return [
        f"input  {_shape(info.input_shape)}",
        (f"padding top {top}, bottom {bottom}, left {left}, right {right}: output "
         f"({h} + {top} + {bottom}, {w} + {left} + {right}, {c}) = "
         f"{_shape(info.output_shape)}"),
        "the new border is zero (int8: the zero point); no parameters, no arithmetic",
    ]


def _explain_reshape(info: LayerInfo, network: Network) -> list[str]:
    return [(f"input  {_shape(info.input_shape)} -> output {_shape(info.output_shape)}: a "
            f"flatten in NHWC (row, column, channel) order, like Flatten; no arithmetic")]


def _source(network: Network, name: str) -> LayerInfo | None:
    """The layer that produces tensor ``name`` (``None`` for the model input)."""
    return None if name == INPUT else network.find(name)


def _spatial_trace(network: Network, info: LayerInfo) -> str:
    """How the spatial size evolved from the input to the input of ``info``, following each
    layer's first input back to the model input."""
    path = []
    source = _source(network, info.inputs[0])
    while source is not None:
        path.append(source)
        source = _source(network, source.inputs[0])
    sizes = [network.input_shape[:2]]
    names = ["input"]
    for step in reversed(path):
        if len(step.output_shape) == 3 and step.inferred.window is not None:
            sizes.append(step.output_shape[:2])
            names.append(step.name)
    trace = " -> ".join(f"{h}x{w}" for h, w in sizes)
    return f"spatial size {trace} ({', '.join(names)})"


def _explain_flatten(info: LayerInfo, network: Network) -> list[str]:
    shape = info.input_shape
    if len(shape) != 3:
        return [f"input {_shape(shape)} is already a vector: Flatten leaves it as it is"]
    h, w, c = shape
    return [
        f"input  {_shape(shape)}",
        _spatial_trace(network, info),
        (f"output {_shape(info.output_shape)} = {h}*{w}*{c}: the tensor read in row-major "
        f"(NHWC) order, element [i, j, k] -> index (i*{w} + j)*{c} + k"),
        "no parameters, no arithmetic: a reordering of the stream",
    ]


def _explain_dense(info: LayerInfo, network: Network) -> list[str]:
    layer: Dense = info.layer  # type: ignore[assignment]
    (n,) = info.input_shape
    u = layer.units
    lines = [f"input  {_shape(info.input_shape)}"]
    prev = _source(network, info.inputs[0])
    if prev is not None and isinstance(prev.layer, Flatten) and len(prev.input_shape) == 3:
        h, w, c = prev.input_shape
        source = "the input" if prev.inputs[0] == INPUT else prev.inputs[0]
        lines.append(f"  {n:,} = {h}*{w}*{c}, the flattened {_shape(prev.input_shape)} "
                     f"output of {source}")
        lines.append("  " + _spatial_trace(network, prev))
    bias = " + b[u]" if layer.use_bias else ""
    lines += [
        f"kernel {_shape(info.inferred.kernel_shape)}: one row per input element, one column "
        f"per unit" + (f"; bias ({u},)" if layer.use_bias else "; no bias"),
        f"output {_shape(info.output_shape)}",
        "one output element:",
        "  y[u] = " + _activation_wrap(layer.activation, f"sum over i < {n:,} of x[i] * W[i, u]"
                                       f"{bias}"),
        f"params {n:,}*{u}" + (f" + {u}" if layer.use_bias else "") + f" = {info.params:,}",
        f"MACs   {n:,}*{u} = {info.macs:,}",
    ]
    if layer.activation == "softmax":
        lines.append("softmax is recorded; the accelerator returns the logits before it "
                     "(the argmax is the same)")
    return lines


def _explain_elementwise(info: LayerInfo, network: Network) -> list[str]:
    layer = info.layer
    what = {
        "ReLU": f"applies {layer.activation_name} to every element",
        "Activation": f"applies {layer.activation_name} to every element",
        "Dropout": "is the identity at inference",
    }.get(info.type_name, "")
    lines = [f"input and output {_shape(info.input_shape)}: {info.type_name} {what}"]
    if isinstance(layer, BatchNormalization):
        c = info.input_shape[-1]
        lines = [
            (f"input and output {_shape(info.input_shape)}: per channel, "
            f"y = gamma * (x - mean) / sqrt(var + {layer.epsilon:g}) + beta"),
            (f"params {info.params} = {info.params // c} per channel x {c} "
            f"({info.inferred.non_trainable} non-trainable: moving mean and variance)"),
            "folded into the preceding Conv2D/Dense when quantizing: no hardware of its own",
        ]
    elif info.type_name in ("ReLU", "Activation"):
        lines.append("fused into the preceding layer's output clamp when quantizing")
    return lines


def _input_list(info: LayerInfo) -> list[str]:
    return [f"  {name} {_shape(shape)}" for name, shape in zip(info.inputs, info.input_shapes,
                                                             strict=True)]


def _explain_add(info: LayerInfo, network: Network) -> list[str]:
    terms = " + ".join(f"{name}[i]" for name in info.inputs)
    return [
        f"inputs ({len(info.inputs)}, all of shape {_shape(info.output_shape)}):",
        *_input_list(info),
        f"output {_shape(info.output_shape)}: element by element, y[i] = "
        + _activation_wrap(info.layer.activation_name, terms),
        "the shapes must be equal (no broadcasting); no parameters, no MACs (additions only)",
    ]


def _explain_concatenate(info: LayerInfo, network: Network) -> list[str]:
    channels = " + ".join(str(shape[-1]) for shape in info.input_shapes)
    offsets, start = [], 0
    for name, shape in zip(info.inputs, info.input_shapes, strict=True):
        offsets.append(f"{name} -> channels {start}..{start + shape[-1] - 1}")
        start += shape[-1]
    return [
        f"inputs ({len(info.inputs)}):",
        *_input_list(info),
        (f"output {_shape(info.output_shape)}: the inputs side by side on the channel (last) "
         f"axis, {channels} = {info.output_shape[-1]} channels"),
        f"  {'; '.join(offsets)}",
        "all other sizes must be equal; no parameters, no arithmetic: a reordering",
    ]


#: Layer type -> explainer; anything else is element-wise (ReLU, Activation, Dropout, BN).
EXPLAINERS = {
    Conv2D: _explain_conv,
    DepthwiseConv2D: _explain_depthwise,
    MaxPooling2D: _explain_pool,
    AveragePooling2D: _explain_avg_pool,
    GlobalAveragePooling2D: _explain_global_avg_pool,
    ZeroPadding2D: _explain_zero_padding,
    Reshape: _explain_reshape,
    Flatten: _explain_flatten,
    Dense: _explain_dense,
    Add: _explain_add,
    Concatenate: _explain_concatenate,
}


def explain_layer(network: Network, info: LayerInfo) -> list[str]:
    """Lines of text explaining layer ``info`` of ``network``."""
    header = f"{info.name} ({info.type_name}), layer {info.index} of {network.name}"
    explainer = EXPLAINERS.get(type(info.layer), _explain_elementwise)
    return [header, *("  " + line for line in explainer(info, network))]
