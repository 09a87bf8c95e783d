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


if __name__ == "__main__":  # pragma: no cover
    main()
