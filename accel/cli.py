"""The ``accel`` command line.

Every user error (a bad spec, model file or option) is an :class:`~accel.errors.AccelError`:
it is printed as one line on stderr and the exit status is 2, never a traceback. Click's own
usage errors also exit with 2.
"""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from .errors import AccelError


class _Group(click.Group):
    """Turns an :class:`AccelError` from any command into one stderr line and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AccelError as e:
            click.echo(f"accel: error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="accel")
def main() -> None:
    """accel: fixed-point CNN accelerator generator.

    MODEL arguments accept a spec file (.yaml/.yml/.json) or a Keras model (.keras/.h5).
    """


def _print_json(obj: object) -> None:
    click.echo(json.dumps(obj, indent=2))


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def summary(model: str, as_json: bool) -> None:
    """Shapes, parameters and MACs per layer, as Keras's model.summary() reports them."""
    from .spec import load_network
    from .spec.summary import summary_dict, summary_table

    network = load_network(model)
    if as_json:
        _print_json(summary_dict(network))
        return
    table, totals = summary_table(network)
    console = Console(width=max(100, Console().width), soft_wrap=True)
    console.print(table)
    for line in totals:
        console.print(" " + line, highlight=False)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("layer")
def explain(model: str, layer: str) -> None:
    """The arithmetic of one LAYER (its index from 0, or its name) with concrete numbers."""
    from .spec import load_network
    from .spec.explain import explain_layer

    network = load_network(model)
    for line in explain_layer(network, network.find(layer)):
        click.echo(line)


def _model_options(f):
    """The options every command taking a MODEL shares: how to quantize a float model."""
    options = [
        click.option("--seed", type=int, default=None,
                     help="Random weights from this seed (for a spec or untrained model)."),
        click.option("--calibration", type=click.Path(dir_okay=False), default=None,
                     help="Calibration inputs (.npy, float, batch first) for a Keras model."),
        click.option("--scheme", type=click.Choice(["tflite-int8", "pow2"]),
                     default="tflite-int8", show_default=True, help="Quantization scheme."),
        click.option("--weight-bits", type=click.IntRange(4, 16), default=8, show_default=True,
                     help="Weight bits (pow2 only; tflite-int8 is 8)."),
        click.option("--act-bits", type=click.IntRange(4, 16), default=8, show_default=True,
                     help="Activation bits (pow2 only; tflite-int8 is 8)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _load_quantized(model, seed, calibration, scheme, weight_bits, act_bits):
    from .quant.load import load_quantized_model

    return load_quantized_model(model, seed=seed, calibration=calibration, scheme=scheme,
                                weight_bits=weight_bits, act_bits=act_bits)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@_model_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Where to write the quantized network (.npz).")
def quantize(model, seed, calibration, scheme, weight_bits, act_bits, output) -> None:
    """Quantize MODEL (a Keras model with --calibration, any model with --seed, or a .tflite)
    into an integer network: .npz arrays plus a JSON manifest, no pickle."""
    from .quant.qnet import save_quantized

    qnet = _load_quantized(model, seed, calibration, scheme, weight_bits, act_bits)
    save_quantized(qnet, output)
    click.echo(f"{qnet.name}: {qnet.scheme}, {len(qnet.layers)} layers "
               f"({', '.join(layer.name for layer in qnet.layers)}) -> {output}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("inputs", type=click.Path(dir_okay=False))
@_model_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write every layer's int output here (.npz: 'output' and one per layer).")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="Integer class labels (.npy): print the accuracy.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def predict(model, inputs, seed, calibration, scheme, weight_bits, act_bits, output, labels,
            as_json) -> None:
    """Run the golden model on INPUTS (.npy, batch first; int inputs are taken as quantized,
    float inputs are quantized with the model's input parameters)."""
    from .quant.predict import predict as run_predict

    qnet = _load_quantized(model, seed, calibration, scheme, weight_bits, act_bits)
    result = run_predict(qnet, inputs, output=output, labels=labels)
    if as_json:
        _print_json(result)
        return
    click.echo(f"{result['model']}: {result['images']} images, output {result['output_shape']}"
               f" ({result['input_kind']} input)")
    if "accuracy" in result:
        click.echo(f"accuracy {result['accuracy']:.4f} ({result['correct']}/{result['images']})")
    if output:
        click.echo(f"wrote {output}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@_model_options
@click.option("--array", "array", default="4x4", show_default=True,
              help="Largest systolic array any stage may use, ROWSxCOLS.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def plan(model, seed, calibration, scheme, weight_bits, act_bits, array, as_json) -> None:
    """The hardware plan: per-stage array shape, folding, predicted cycles, PEs, memory."""
    from rich.table import Table

    from .plan.plan import make_plan, parse_array, plan_dict

    rows, cols = parse_array(array)
    qnet = _load_quantized(model, seed, calibration, scheme, weight_bits, act_bits)
    data = plan_dict(make_plan(qnet, rows, cols))
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"{data['name']}: plan for arrays up to {data['array']}",
                  title_justify="left")
    for column in ("stage", "layer (+pool)", "in -> out", "array", "Kt x Ft", "cycles",
                   "ideal", "util", "weight bits"):
        table.add_column(column, justify="left" if column.startswith("layer") else "right")
    for s in data["stages"]:
        table.add_row(
            str(s["index"]), s["layer"] + (f" + {s['pool']}" if s["pool"] else ""),
            f"{'x'.join(map(str, s['input']))} -> {'x'.join(map(str, s['output']))}",
            f"{s['array'][0]}x{s['array'][1]}", f"{s['k_tiles']} x {s['f_tiles']}",
            f"{s['cycles']:,}", f"{s['ideal_cycles']:,.0f}", f"{s['utilization']:.1%}",
            f"{s['memory_bits']['weights']:,}")
    console = Console(width=max(130, Console().width))
    console.print(table)
    console.print(
        f" PEs {data['pes']}, MACs {data['macs']:,}; interval {data['interval_cycles']:,} "
        f"cycles per inference vs ideal {data['ideal_cycles']:,.0f} (total MACs / PEs): "
        f"{data['interval_vs_ideal']:.3f}x", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    main()
