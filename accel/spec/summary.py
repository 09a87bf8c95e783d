"""``accel summary``: the network as Keras's ``model.summary()`` shows it, plus MACs.

:func:`summary_dict` is the machine-readable form (the ``--json`` output); :func:`summary_table`
renders the same numbers as a table. Both read :attr:`Network.infos`, the one shape inference.
Layers are listed in file order. A network that is not a plain chain gets Keras's functional
summary layout: a row for the input and a "Connected to" column naming each layer's inputs as
``name[0][0]`` (node 0, tensor 0: every layer is called once).
"""

from __future__ import annotations

from rich import box
from rich.table import Table

from .network import INPUT, Network


def format_shape(shape: tuple[int, ...]) -> str:
    """Keras's way of printing an output shape: ``(None, 14, 14, 64)``."""
    return "(" + ", ".join(["None", *map(str, shape)]) + ")"


def summary_dict(network: Network) -> dict:
    """The summary as one JSON-ready object.

    Keys: ``name``, ``input_shape``, ``layers`` (in file order, each ``index``, ``name``,
    ``type``, ``inputs`` (the names of the tensors it reads; ``"input"`` is the model input),
    ``output_shape``, ``params``, ``macs``, ``kernel_shape``, ``activation``), ``total_params``,
    ``trainable_params``, ``non_trainable_params``, ``total_macs``, ``softmax_on_output``.
    Shapes have no batch dimension.
    """
    layers = []
    for info in network.infos:
        kernel = info.inferred.kernel_shape
        layers.append({
            "index": info.index,
            "name": info.name,
            "type": info.type_name,
            "inputs": list(info.inputs),
            "output_shape": list(info.output_shape),
            "params": info.params,
            "macs": info.macs,
            "kernel_shape": list(kernel) if kernel is not None else None,
            "activation": info.layer.activation_name,
        })
    non_trainable = sum(info.inferred.non_trainable for info in network.infos)
    return {
        "name": network.name,
        "input_shape": list(network.input_shape),
        "layers": layers,
        "total_params": network.total_params,
        "trainable_params": network.total_params - non_trainable,
        "non_trainable_params": non_trainable,
        "total_macs": network.total_macs,
        "softmax_on_output": network.ends_with_softmax,
    }


def _bytes(params: int) -> str:
    # Keras prints the float32 size next to the counts.
    size = params * 4
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}" if unit != "B" else f"{size} B"
        size /= 1024
    raise AssertionError("unreachable")


def summary_table(network: Network) -> tuple[Table, list[str]]:
    """The Keras-style table and the totals lines under it."""
    table = Table(
        title=f'Model: "{network.name}"', title_justify="left", box=box.HEAVY_HEAD,
        show_lines=False,
    )
    graph = not network.is_chain
    table.add_column("Layer (type)", no_wrap=True)
    table.add_column("Output Shape", no_wrap=True)
    table.add_column("Param #", justify="right", no_wrap=True)
    table.add_column("MACs", justify="right", no_wrap=True)
    if graph:
        # The one column that may wrap (at ", ", as Keras's does) when the console is narrow.
        table.add_column("Connected to")
        table.add_row(f"{INPUT} (InputLayer)", format_shape(network.input_shape), "0", "0",
                      "-")
    for info in network.infos:
        row = [f"{info.name} ({info.type_name})", format_shape(info.output_shape),
               f"{info.params:,}", f"{info.macs:,}"]
        if graph:
            # Keras's get_connections: "name[node][tensor]" joined with ", ".
            row.append(", ".join(f"{name}[0][0]" for name in info.inputs))
        table.add_row(*row)
    data = summary_dict(network)
    totals = [
        f"Input: {format_shape(network.input_shape)}",
        f"Total params: {data['total_params']:,} ({_bytes(data['total_params'])})",
        f"Trainable params: {data['trainable_params']:,} ({_bytes(data['trainable_params'])})",
        (f"Non-trainable params: {data['non_trainable_params']:,} "
        f"({_bytes(data['non_trainable_params'])})"),
        f"Total MACs per inference: {data['total_macs']:,}",
    ]
    if network.ends_with_softmax:
        totals.append("Softmax on the output is recorded; the hardware returns the logits.")
    return table, totals
