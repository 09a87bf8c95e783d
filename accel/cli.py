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
    """Turns an :class:`AccelError` from any command, and click's own usage errors, into one
    stderr line and exit status 2. NumPy's floating-point warnings are errors inside a command
    (a bad input must be refused with one line, not computed on with a warning)."""

    def invoke(self, ctx: click.Context):
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                return super().invoke(ctx)
        except AccelError as e:
            click.echo(f"accel: error: {e}", err=True)
            sys.exit(2)
        except RuntimeWarning as e:
            click.echo(f"accel: error: {ctx.invoked_subcommand or 'accel'}: numeric problem in "
                       f"the input: {AccelError(str(e))}", err=True)
            sys.exit(2)
        except MemoryError:
            click.echo(f"accel: error: {ctx.invoked_subcommand or 'accel'}: out of memory; the "
                       f"model or its inputs are too large", err=True)
            sys.exit(2)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `accel`: the help, as click does
                e.show()
                sys.exit(e.exit_code)
            ctx = getattr(e, "ctx", None)
            hint = f" (try '{ctx.command_path} -h')" if ctx is not None else ""
            click.echo(f"accel: error: {AccelError(e.format_message())}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="accel")
def main() -> None:
    """accel: fixed-point CNN accelerator generator.

    MODEL arguments accept a spec file (.yaml/.yml/.json), a Keras model (.keras/.h5), a
    fully-int8 TFLite model (.tflite) or a quantized network (.npz from accel quantize).
    """


def _print_json(obj: object) -> None:
    click.echo(json.dumps(obj, indent=2))


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def summary(model: str, as_json: bool) -> None:
    """Shapes, parameters and MACs per layer, as Keras's model.summary() reports them."""
    from .spec.summary import summary_dict, summary_table

    network = _load_network(model)
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
    from .spec.explain import explain_layer

    network = _load_network(model)
    for line in explain_layer(network, network.find(layer)):
        click.echo(line)


def _load_network(model: str):
    """The architecture of any MODEL: a spec or Keras file as written, a ``.tflite`` or
    quantized ``.npz`` as the layers its quantized network computes (in Keras terms)."""
    from pathlib import Path

    if Path(model).suffix.lower() in (".tflite", ".npz"):
        from .quant.load import load_quantized_model

        return load_quantized_model(model).network
    from .spec import load_network

    return load_network(model)


def _array_option(f):
    """``--array ROWSxCOLS``, shared by every command that plans hardware."""
    return click.option("--array", "array", default="4x4", show_default=True,
                        help="Largest systolic array any stage may use, ROWSxCOLS (each side "
                             "1..256).")(f)


class _Clock(click.ParamType):
    """A clock in MHz: a finite number in (0, 2000]."""

    name = "MHz"

    def convert(self, value, param, ctx):
        import math

        try:
            mhz = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not (math.isfinite(mhz) and 0 < mhz <= 2000):
            self.fail(f"{value!r} must be a finite clock in (0, 2000] MHz", param, ctx)
        return mhz


def _board_choice() -> click.Choice:
    from .synth.boards import BOARDS

    return click.Choice(sorted(BOARDS))


def _model_options(f):
    """The options every command taking a MODEL shares: how to quantize a float model."""
    options = [
        click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
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


def _stream_option(f):
    """``--stream LAYER`` (repeatable): stream this Dense layer's weights in any case; and
    ``--batch B``: use each streamed weight for B images."""
    f = click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Use every streamed weight for this many images (B input vectors "
                          "and B sum sets buffered in the streamed stage): the weight "
                          "bandwidth per image drops by B. Images go in multiples of B.")(f)
    return click.option("--stream", "stream_layers", multiple=True, metavar="LAYER",
                        help="Stream this Dense layer's weights from the board's memory even "
                             "if they fit its block RAMs (repeatable; needs --board).")(f)


def _plan_board_option(f):
    """``--board`` (and ``--stream``) for the commands that plan hardware without building
    it: plan for that board's block RAMs and stream weights from its external memory where
    they do not fit."""
    f = _stream_option(f)
    return click.option("--board", "board_name", type=_board_choice(), default=None,
                        help="Plan for this board: weights that do not fit its block RAMs "
                             "stream from its SDRAM/SPRAM/flash (Dense layers).")(f)


def _make_plan(qnet, rows: int, cols: int, model: str, board_name: str | None = None,
               stream: tuple[str, ...] = (), batch: int = 1):
    """The hardware plan (for ``board_name``'s memories when given, streaming the layers in
    ``stream`` in any case, each streamed weight used for ``batch`` images), its errors
    naming the MODEL file they are about."""
    from dataclasses import replace

    from .plan.plan import make_plan
    from .plan.weights import check_batch_fits

    placement = None
    if stream and board_name is None:
        raise AccelError(f"--stream {stream[0]}: needs --board (the memory to stream from)")
    if batch != 1 and board_name is None:
        raise AccelError(f"--batch {batch}: needs --board (it batches streamed weights)")
    if board_name is not None:
        from .synth.boards import get_board

        placement = replace(get_board(board_name).placement(tuple(stream)), batch=batch)
    try:
        net_plan = make_plan(qnet, rows, cols, weights=placement)
        if placement is not None:
            check_batch_fits(net_plan, placement)
        return net_plan
    except AccelError as e:
        message = str(e)
        raise AccelError(message if message.startswith(str(model)) else f"{model}: {message}"
                         ) from None


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
    from .io.archive import check_output_path
    from .quant.qnet import save_quantized

    check_output_path(output, "the quantized network")
    qnet = _load_quantized(model, seed, calibration, scheme, weight_bits, act_bits)
    save_quantized(qnet, output)
    click.echo(f"{qnet.name}: {qnet.scheme}, {len(qnet.layers)} layers "
               f"({', '.join(layer.name for layer in qnet.layers)}) -> {output}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("inputs", type=click.Path(dir_okay=False))
@_model_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write every layer's int output here (.npz: 'output' and 'layers/<name>').")
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
@_array_option
@_plan_board_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def plan(model, seed, calibration, scheme, weight_bits, act_bits, array, board_name,
         stream_layers, batch, as_json) -> None:
    """The hardware plan: per-stage array shape, folding, predicted cycles, PEs, memory,
    and (with --board) which layers stream their weights and what bounds the interval."""
    from rich.table import Table

    from .plan.plan import parse_array, plan_dict

    rows, cols = parse_array(array)
    qnet = _load_quantized(model, seed, calibration, scheme, weight_bits, act_bits)
    data = plan_dict(_make_plan(qnet, rows, cols, model, board_name, stream_layers, batch))
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"{data['name']}: plan for arrays up to {data['array']}",
                  title_justify="left")
    for column in ("stage", "layer (+pool)", "in -> out", "array", "Kt x Ft", "cycles",
                   "ideal", "util", "weight bits", "weights from"):
        table.add_column(column, justify="left" if column.startswith("layer") else "right")
    for s in data["stages"]:
        # Depthwise stages fold channels into G groups of lanes; pooling stages have no array.
        if s["kind"] == "depthwise_conv2d":
            tiles = f"{s['kernel'][0] * s['kernel'][1]} x G {s['groups']}"
        elif "k_tiles" in s:
            tiles = f"{s['k_tiles']} x {s['f_tiles']}"
        else:
            tiles = "-"
        table.add_row(
            str(s["index"]), s["layer"] + (f" + {s['pool']}" if s["pool"] else ""),
            f"{'x'.join(map(str, s['input']))} -> {'x'.join(map(str, s['output']))}",
            f"{s['array'][0]}x{s['array'][1]}", tiles,
            f"{s['cycles']:,}", f"{s['ideal_cycles']:,.0f}", f"{s['utilization']:.1%}",
            f"{s['memory_bits']['weights']:,}", _weights_from(s))
    console = Console(width=max(130, Console().width))
    console.print(table)
    console.print(
        f" PEs {data['pes']}, MACs {data['macs']:,}; interval {data['interval_cycles']:,} "
        f"cycles per inference vs ideal {data['ideal_cycles']:,.0f} (total MACs / PEs): "
        f"{data['interval_vs_ideal']:.3f}x; bound by {data['interval_bound']}",
        highlight=False)
    memory = data["weight_memory"]
    if memory is not None:
        batch = (f" at batch {data['batch']} (each weight used for {data['batch']} images)"
                 if data["batch"] > 1 else "")
        console.print(
            f" streamed weights: {data['stream_cycles']:,} cycles per inference{batch} at "
            f"{memory['words_per_cycle']:g} {memory['word_bits']}-bit words per cycle from "
            f"the {memory['kind']} ({memory['source']})", highlight=False)


def _weights_from(stage: dict) -> str:
    """The plan table's "weights from" cell: ROMs, or the stream and what bounds it."""
    streamed = stage.get("streamed")
    if streamed is None:
        return "ROM" if stage.get("k_tiles") or stage.get("kind") == "depthwise_conv2d" else "-"
    return f"{streamed['memory']} ({streamed['bound']})"


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@_model_options
@_array_option
@_plan_board_option
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory for accel_top.v and its JSON sidecar accel_top.json.")
def generate(model, seed, calibration, scheme, weight_bits, act_bits, array, board_name,
             stream_layers, batch, out_dir) -> None:
    """Generate the accelerator's Verilog and JSON sidecar for MODEL."""
    from .hw.generate import generate as run_generate
    from .io.archive import check_output_dir
    from .plan.plan import parse_array

    rows, cols = parse_array(array)
    check_output_dir(out_dir, "the Verilog")
    qnet = _load_quantized(model, seed, calibration, scheme, weight_bits, act_bits)
    net_plan = _make_plan(qnet, rows, cols, model, board_name, stream_layers, batch)
    data = run_generate(net_plan, out_dir)
    if net_plan.streamed_stages:
        # The streamed weights' memory image, with the header the board's loader checks.
        from pathlib import Path

        from .plan.weights import image_payload
        from .synth.weight_image import FLASH_LAYOUTS, flash_offset, write_weight_image

        streams = [s.streamed for s in net_plan.streamed_stages]
        image = write_weight_image(
            Path(out_dir) / "accel_weights.awi", image_payload(streams),
            word_width=streams[0].word_bits,
            flash_offset=flash_offset(board_name) if board_name in FLASH_LAYOUTS else 0)
        click.echo(f"{', '.join(s.layer for s in net_plan.streamed_stages)}: weights stream "
                   f"from the {streams[0].memory.kind} (ports "
                   f"{', '.join(data['weight_ports'])}); memory image -> {image}")
    click.echo(f"{data['model']}: {len(data['plan']['stages'])} stages, {data['pes']} PEs, "
               f"predicted {data['expected']['interval_cycles']:,} cycles per inference -> "
               f"{out_dir}/{data['generated']['verilog']} "
               f"({data['generated']['verilog_bytes']:,} bytes) and accel_top.json")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@_model_options
@_array_option
@_plan_board_option
@click.option("--simulator", type=click.Choice(["verilator", "icarus"]), default="verilator",
              show_default=True)
@click.option("--input", "input_path", type=click.Path(dir_okay=False), default=None,
              help="Images (.npy, batch first; float images are quantized).")
@click.option("--images", "n_images", type=click.IntRange(1, 10_000), default=None,
              help="How many images: the first N of --input (default: all of them), or N "
                   "random seeded ones without --input (default: 3).")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="Class labels (.npy) for --input: print the accuracy.")
@click.option("--stall-seed", "stall_seed", type=click.IntRange(0, 2**63 - 1), default=1,
              show_default=True,
              help="Seed of the random input gaps and output stalls (and random images).")
@click.option("--gaps", type=click.IntRange(0, 90), default=20, show_default=True,
              help="Percent of cycles the input is held invalid / the output not ready.")
@click.option("--build-dir", type=click.Path(file_okay=False), default="build/sim",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the results to this .npz: 'output' (the hardware's logits), 'golden' "
                   "(the golden model's) and 'layers/<name>' (every layer, as checked).")
@click.option("--waves", type=click.Path(dir_okay=False), default=None,
              help="Dump waveforms (FST, Verilator) to this file.")
@click.option("--rom-files/--inline-roms", "rom_files", default=None,
              help="Load large ROMs from $readmemh hex files instead of Verilog initialisers "
                   "(default: when weights and golden values exceed 1 M words).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sim(model, seed, calibration, scheme, weight_bits, act_bits, array, board_name,
        stream_layers, batch, simulator, input_path, n_images, labels, stall_seed, gaps, build_dir,
        output, waves, rom_files, as_json) -> None:
    """Generate, build and simulate the accelerator with cocotb, checking every layer of
    every image against the golden model, bit for bit. Exit status 1 on any mismatch."""
    import numpy as np
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .io.archive import check_output_dir, check_output_path
    from .io.files import about
    from .limits import check_network
    from .plan.plan import parse_array
    from .quant.load import load_array
    from .quant.predict import quantize_inputs
    from .sim.cocotb_run import run_cocotb
    from .sim.run import build_harness, report

    rows, cols = parse_array(array)
    check_output_dir(build_dir, "the simulation build")
    for path, what in ((output, "results"), (waves, "waveforms")):
        if path is not None:
            check_output_path(path, what)
    qnet = _load_quantized(model, seed, calibration, scheme, weight_bits, act_bits)
    if input_path is not None:
        images, _ = quantize_inputs(qnet, load_array(input_path, "inputs"),
                                    context=str(input_path))
        images = images[:n_images] if n_images is not None else images
    else:
        rng = np.random.default_rng(stall_seed)
        images = rng.integers(qnet.input.qmin, qnet.input.qmax + 1,
                              (n_images or (3 if batch == 1 else 2 * batch),
                               *qnet.input_shape))
    if len(images) % batch:
        # The streamed stage computes whole batches: a partial one would wait for the rest.
        raise AccelError(f"--batch {batch}: {len(images)} images are not a whole number of "
                         f"batches (give --images a multiple of {batch})")
    check_network(qnet.network, str(input_path or model), images=len(images))
    y = None
    if labels is not None:  # checked before the simulation, not after it
        y = load_array(labels, "labels")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) < len(images):
            raise AccelError(f"{labels}: labels must be at least {len(images)} integers, got "
                             f"shape {y.shape} of {y.dtype}")
        y = y[:len(images)]
    plan = _make_plan(qnet, rows, cols, model, board_name, stream_layers, batch)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  transient=True, disable=as_json) as progress:
        task = progress.add_task(f"{qnet.name}: building the harness", total=None)
        with about(input_path or model):  # the images' shape and range are checked here
            case = build_harness(qnet, plan, images, seed=stall_seed, gap_percent=gaps,
                                 stall_percent=gaps)
        progress.update(task, description=f"{qnet.name}: Verilog, {simulator} build, "
                                          f"simulation of {len(images)} images")
        result = run_cocotb(case, build_dir, simulator=simulator, waves=waves,
                            rom_files=rom_files)
    sim_report = report(case, result)
    if y is not None:
        sim_report = sim_report.with_accuracy(y)
    data = sim_report.to_json()
    if output:
        from .io.archive import result_arrays, write_npz

        golden_logits = case.golden[plan.output_layer]
        write_npz(output, result_arrays(result.outputs.reshape(golden_logits.shape),
                                        case.golden, golden=golden_logits))
    if as_json:
        _print_json(data)
    else:
        verdict = "bit-exact" if data["bit_exact"] else f"{data['mismatches']} MISMATCHES"
        click.echo(f"{data['model']} on {data['array']} arrays ({data['pes']} PEs), "
                   f"{simulator}: {data['images']} images {verdict} with every layer")
        if data["cycles_per_inference"]:
            click.echo(f"  interval {data['cycles_per_inference']:,.0f} cycles per inference "
                       f"(predicted {data['predicted_interval_cycles']:,}, ideal "
                       f"{data['ideal_cycles']:,.0f}: utilization {data['utilization']:.1%})")
        if data["stream_cycles"]:
            click.echo(f"  streamed weights: {data['weight_words']:,} words from the memory "
                       f"model; bandwidth bound {data['stream_cycles']:,} cycles per inference")
        click.echo(f"  latency {data['latency_cycles']:,} cycles; input gaps "
                   f"{data['input_gaps']:,}, output stalls {data['output_stalls']:,}")
        for layer in data["layers"]:
            click.echo(f"  {layer['layer']:<12} {layer['array'][0]}x{layer['array'][1]}  "
                       f"measured {layer['measured_cycles']:>9,} vs predicted "
                       f"{layer['predicted_cycles']:>9,} cycles")
        if "accuracy" in data:
            click.echo(f"  accuracy {data['accuracy']:.4f}")
        click.echo(f"  build {data.get('build_s', 0):.1f} s, simulation "
                   f"{data.get('run_s', 0):.1f} s")
    if not data["bit_exact"]:
        first = data["first_mismatch"]
        if first:
            click.echo(f"accel: first mismatch in layer {first['layer']}, image "
                       f"{first['image']}, pixel ({first['row']}, {first['col']}), channels "
                       f"from {first['channel']}: got {first['got']}, want {first['want']}",
                       err=True)
        sys.exit(1)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@_model_options
@click.option("--board", "board_name", type=_board_choice(), required=True,
              help="Target board.")
@_array_option
@click.option("--clock", "clock_mhz", type=_Clock(), default=None,
              help="Clock in MHz, made by the board's PLL from its oscillator (the nearest "
                   "frequency the PLL can make; the report gives it). Default: the oscillator "
                   "itself, no PLL (icebreaker 12, ulx3s 25, orangecrab 48, tangnano9k 27).")
@click.option("--pnr-seed", "pnr_seed", type=click.IntRange(0, 2**31 - 1), default=1,
              show_default=True,
              help="nextpnr placement seed.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory for the bitstream and build_report.json.")
@click.option("--top", "top", type=click.Choice(["selftest", "uart"]), default="selftest",
              show_default=True, help="Board top: LFSR self-test (LED) or the UART link.")
@click.option("--baud", type=click.IntRange(1200, 12_000_000), default=115200,
              show_default=True, help="UART bits per second (--top uart).")
@click.option("--fit-only", is_flag=True, help="Only run the fit check (no synthesis).")
@_stream_option
@click.option("--allow-timing-failure", is_flag=True,
              help="Exit 0 even if the post-route Fmax is below --clock.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def build(model, seed, calibration, scheme, weight_bits, act_bits, board_name, array, clock_mhz,
          pnr_seed, out_dir, top, baud, fit_only, stream_layers, batch, allow_timing_failure,
          as_json) -> None:
    """Fit-check MODEL on a board, then build its bitstream with the YoWASP tools and report
    utilisation, Fmax and inferences/s. Exit 2 if it cannot fit, 1 if timing is not met."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .io.archive import check_output_dir
    from .plan.plan import parse_array
    from .synth.boards import get_board
    from .synth.build import build as run_build
    from .synth.fit import check_fit

    board = get_board(board_name)
    rows, cols = parse_array(array)
    check_output_dir(out_dir, "the build")
    qnet = _load_quantized(model, seed, calibration, scheme, weight_bits, act_bits)
    net_plan = _make_plan(qnet, rows, cols, model, board_name, stream_layers, batch)
    if fit_only:
        fit = check_fit(net_plan, board)
        if as_json:
            _print_json(fit.to_json())
        else:
            needs = ", ".join(f"{k} {v.needed:,}/{v.available:,}"
                              for k, v in fit.resources.items())
            click.echo(f"{qnet.name} fits {board.name} (estimate): {needs}")
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  transient=True, disable=as_json) as progress:
        task = progress.add_task(f"{qnet.name} on {board.name}: fit check", total=None)

        def stage(name: str) -> None:
            progress.update(task, description=f"{qnet.name} on {board.name}: {name}")

        report = run_build(qnet, net_plan, board, out_dir, clock_mhz=clock_mhz, seed=pnr_seed,
                           top=top, baud=baud, progress=stage).to_json()
    if as_json:
        _print_json(report)
    else:
        for line in _build_lines(report):
            click.echo(line)
    if not report["timing_met"]:
        click.echo(f"accel: timing not met on {report['board']}: Fmax "
                   f"{report['fmax_mhz']:.1f} MHz < {report['clock_mhz']:g} MHz "
                   f"{'from the PLL' if report.get('pll') else 'requested'}; try a lower "
                   f"--clock, another --pnr-seed or --allow-timing-failure", err=True)
        if not allow_timing_failure:
            sys.exit(1)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("image", type=click.Path(dir_okay=False))
@_model_options
@click.option("--port", required=True,
              help="Serial port of the board (/dev/ttyUSB1, COM3) or a pyserial URL "
                   "(socket://host:port, loop://).")
@click.option("--baud", type=click.IntRange(1200, 12_000_000), default=115200,
              show_default=True, help="UART bits per second (as built with accel build --baud).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=2.0,
              show_default=True, help="Seconds to wait for each answer.")
@click.option("--check", is_flag=True,
              help="Compare every answer with the golden model; exit 1 on a mismatch.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def run(model, image, seed, calibration, scheme, weight_bits, act_bits, port, baud, timeout,
        check, as_json) -> None:
    """Classify IMAGE (.npy: one image or a batch; float images are quantized with the
    model's input parameters, int images taken as quantized) on a board built with
    `accel build --top uart`: prints each image's logits and class."""
    from .host.board import link_logits, open_port, quantized_images, run_images
    from .quant.load import load_array

    qnet = _load_quantized(model, seed, calibration, scheme, weight_bits, act_bits)
    images, kind = quantized_images(qnet, load_array(image, "images"))
    link_logits(qnet)  # a model the link cannot carry fails before the port is opened
    serial_port = open_port(port, baud)
    try:
        data = run_images(qnet, images, serial_port, timeout=timeout, check=check)
    except AccelError as e:
        raise AccelError(f"{port}: {e}") from None
    finally:
        serial_port.close()
    data.update(port=port, baud=baud, input_kind=kind)
    if as_json:
        _print_json(data)
    else:
        for r in data["results"]:
            verdict = ""
            if check:
                verdict = "  ok" if r["match"] else (f"  MISMATCH: golden {r['golden_logits']}"
                                                     f" class {r['golden_class']}")
            click.echo(f"image {r['index']}: class {r['class']}  logits {r['logits']}{verdict}")
        if data["stale_bytes"]:
            click.echo(f"(dropped {data['stale_bytes']} stale bytes: the board was still inside "
                       f"an image from an interrupted run)")
        rate = f", {data['images_per_s']:.1f} images/s" if data["images_per_s"] else ""
        click.echo(f"{data['model']}: {data['images']} images ({kind} input) over {port} at "
                   f"{baud:,} baud in {data['seconds']:.2f} s{rate}")
        if check:
            click.echo("bit-exact with the golden model" if data["bit_exact"] else
                       f"{data['mismatches']} of {data['images']} images differ from the "
                       f"golden model")
    if check and not data["bit_exact"]:
        first = next(r for r in data["results"] if not r["match"])
        click.echo(f"accel: image {first['index']}: board logits {first['logits']} class "
                   f"{first['class']} != golden {first['golden_logits']} class "
                   f"{first['golden_class']}", err=True)
        sys.exit(1)


def _build_lines(report: dict) -> list[str]:
    util = report["utilization"]
    names = {"luts": "LUT4" if report["family"] != "ice40" else "LC", "ffs": "FF",
             "dsps": "DSP", "brams": "BRAM", "plls": "PLL"}
    usage = ", ".join(f"{names[k]} {util[k]['used']:,}/{util[k]['available']:,}"
                      for k in ("luts", "ffs", "dsps", "brams", "plls") if k in util)
    fmax = report["fmax_mhz"]
    head = (f"{report['model']} on {report['board']} ({report['device']}), array "
            f"{report['array']}, {report['pes']} PEs, top {report['top']}: {report['bitstream']}")
    pll = report.get("pll")
    source = (f"{pll['primitive']} PLL from {pll['input_mhz']:g} MHz"
              + (f" ({report['requested_clock_mhz']:g} requested)"
                 if abs(pll["output_mhz"] - report["requested_clock_mhz"]) > 1e-6 else "")
              if pll else "the oscillator")
    timing = (f"  clock {report['clock_mhz']:g} MHz ({source}); Fmax {fmax:.1f} MHz: "
              f"{'met' if report['timing_met'] else 'NOT MET'}")
    speed = (f"  {report['interval_cycles']:,} cycles per inference: "
             f"{report['inferences_per_s_at_clock']:,.0f} inferences/s at "
             f"{report['clock_mhz']:g} MHz, {report['inferences_per_s_at_fmax']:,.0f} at Fmax")
    stages = report.get("tool_stage_seconds")
    split = (", ".join(f"{name} {t:.1f}" for name, t in stages.items()) + " s; "
             if stages else "")
    took = (f" (cached; tools {split}{report['tool_seconds']:.1f} s)" if report["cached"]
            else f" (tools {split}{report['tool_seconds']:.1f} s in all)")
    lines = [head, f"  {usage}", timing, speed]
    if report.get("uart_inferences_per_s"):
        lines.append(f"  over the UART at {report['baud']:,} baud: "
                     f"{report['uart_inferences_per_s']:,.0f} inferences/s (link-limited)")
    return [*lines, f"  build {report['seconds']:.1f} s{took}"]


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@_model_options
@click.option("--board", "board_name", type=_board_choice(), required=True,
              help="Target board.")
@click.option("--arrays", default="1x1,2x2,4x4,8x8", show_default=True,
              help="Comma-separated ROWSxCOLS array sizes to sweep.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="nextpnr seeds per array (1..N).")
@click.option("--clock", "clock_mhz", type=_Clock(), default=None,
              help="Clock to meet in MHz (default: the board's oscillator).")
@click.option("--estimate", "estimate_only", is_flag=True,
              help="Plan, fit estimate and cycle model only: no synthesis, seconds.")
@click.option("--clock-search", is_flag=True,
              help="Per point, rebuild at the fastest clock the board's PLL makes below the "
                   "measured Fmax until timing is met (at most 4 builds; from --clock).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Points built at once, in local worker processes.")
@click.option("--scheduler", default=None,
              help="Run the points on this Dask distributed scheduler (tcp://host:8786).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory for results.csv/.json, report.md, plots and finished points.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def sweep(model, seed, calibration, scheme, weight_bits, act_bits, board_name, arrays, seeds,
          clock_mhz, estimate_only, clock_search, jobs, scheduler, out_dir, as_json) -> None:
    """Plan, fit-check and build MODEL for each array size (and nextpnr seed) on a board;
    record resources, Fmax, cycles, inferences/s and build time as CSV, JSON, a Markdown
    report and plots. Finished points are kept in OUT/points, so a re-run or a killed sweep
    resumes. Exit 1 if a point failed in the tools (it is recorded; the others still run)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from .io.archive import check_output_dir
    from .sweep import ModelSource, parse_arrays, run_sweep

    array_list = parse_arrays(arrays)
    check_output_dir(out_dir, "the sweep")
    source = ModelSource(path=model, seed=seed, calibration=calibration, scheme=scheme,
                         weight_bits=weight_bits, act_bits=act_bits)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=True,
                  disable=as_json) as progress:
        overall = progress.add_task("sweep", total=None)
        tasks: dict = {}

        def on_event(job, event, record) -> None:
            if job.key not in tasks:
                tasks[job.key] = progress.add_task(f"  {job.name}: queued", total=1)
                progress.update(overall, total=len(tasks))
            task = tasks[job.key]
            if event in ("done", "cached"):
                progress.update(task, completed=1, description=f"  {job.name}: "
                                f"{record['status']}{' (reused)' if event == 'cached' else ''}")
                progress.advance(overall)
                if not as_json:
                    progress.console.print(_sweep_line(record), highlight=False, soft_wrap=True)
            elif event != "queued":
                progress.update(task, description=f"  {job.name}: {event.removeprefix('stage:')}")

        doc = run_sweep(source, board_name, array_list, out_dir, seeds=seeds,
                        estimate_only=estimate_only, clock_mhz=clock_mhz, jobs=jobs,
                        scheduler=scheduler, on_event=on_event, clock_search=clock_search)
    if as_json:
        _print_json({**doc, "pareto": {k: [r["name"] for r in v]
                                       for k, v in doc["pareto"].items()}})
    else:
        meta = doc["meta"]
        counts = ", ".join(f"{n} {s}" for s, n in meta["status_counts"].items())
        click.echo(f"{meta['model']} on {meta['board']} ({meta['mode']}): {len(doc['points'])} "
                   f"points ({counts}; {meta['reused']} reused) in {meta['seconds']:.1f} s")
        for cost in ("luts", "dsps"):
            front = ", ".join(r["name"] for r in doc["pareto"][cost]) or "-"
            click.echo(f"  Pareto front (inferences/s vs {cost[:-1].upper()}s): {front}")
        for name, err in doc["estimate_error"].items():
            click.echo(f"  estimate error {name}: mean |{err['mean_abs']:.1%}|, worst "
                       f"{err['worst']:+.1%} over {err['points']} points")
        files = doc["files"]
        click.echo(f"  -> {out_dir}/{{{files['csv']}, {files['json']}, {files['report']}, "
                   f"{', '.join(files['plots'])}}}")
    if any(r["status"] == "failed" for r in doc["points"]):
        sys.exit(1)


def _sweep_line(r: dict) -> str:
    """One finished point, as the sweep's progress prints it."""
    head = f"{r['name']:>9} {r['status']:<13}"
    if r["status"] in ("no-fit", "failed"):
        # the first clause says what is short ("needs 212 block RAMs ..., 208 available")
        reason = r.get("reason", "").split("; ")[0]
        return f"{head} {reason.split(': ', 1)[-1] if r['status'] == 'no-fit' else reason}"
    fmax = f"Fmax {r['fmax_mhz']:.1f} MHz, " if r.get("fmax_mhz") else ""
    took = (" (reused)" if r.get("reused") else " (cached build)" if r.get("cached")
            else f" (tools {r['tool_seconds']:.0f} s)" if r.get("tool_seconds") else "")
    return (f"{head} LUT {r['luts']:,} DSP {r['dsps']:,} BRAM {r['brams']:,}, {fmax}"
            f"{r['interval_cycles']:,} cycles, {r['inferences_per_s']:,.1f} inf/s{took}")


@main.command()
@click.argument("path", type=click.Path())
@click.option("--board", "board_name", type=_board_choice(), default=None,
              help="Target board; optional when PATH is an accel build directory.")
@click.option("--flash", is_flag=True,
              help="Write the board's configuration flash (kept at power-off) instead of "
                   "loading SRAM. The iCEBreaker and OrangeCrab are reached only this way.")
@click.option("--dry-run", is_flag=True, help="Print the openFPGALoader command; run nothing.")
def program(path, board_name, flash, dry_run) -> None:
    """Load PATH (a bitstream, or an `accel build` output directory) onto a board with
    openFPGALoader: SRAM by default, --flash for the flash. A weight image (weights.img, from
    a build that streams weights) beside the bitstream goes into the flash at its offset in
    either case (the board loads it from there at power-up). Exit 2 when the bitstream, the
    cable or the board is missing."""
    from .host.program import run_program
    from .host.program_weights import plan_program_build

    plans = plan_program_build(path, board_name, flash=flash, dry_run=dry_run)
    for plan in plans:
        if dry_run:
            click.echo(plan.shell)
            continue
        run_program(plan)
        click.echo(f"{plan.bitstream} -> {plan.board} "
                   f"({'flash written' if plan.flash else 'SRAM loaded'})")


if __name__ == "__main__":  # pragma: no cover
    main()
