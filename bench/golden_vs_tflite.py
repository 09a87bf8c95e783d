"""Golden-model throughput vs TFLite's interpreters, side by side: the seed network, and the
four MLPerf Tiny models.

    .venv/bin/python bench/golden_vs_tflite.py [--images N] [--rounds R] [--mlperf]

Runs the trained seed-architecture model (examples/digits/digits_cnn.tflite: 28x28x1,
Conv32/Pool/Conv64/Pool/Dense128/Dense10) on N int8 images with:
- accel's golden model (NumPy): one ``golden.run`` call on all N images, which it evaluates
  in batches of ``golden.BATCH_CHUNK`` (32) images, every layer's output kept,
- ai-edge-litert with the reference kernels (BUILTIN_REF, what the golden model matches),
- ai-edge-litert with its default kernels (optimized + XNNPACK),
and prints images/s for each and the golden model's speed relative to the reference
interpreter (the goal is >= 3x). The TFLite columns are skipped if ai-edge-litert is missing.
The interpreter's model has a batch of 1, so it runs image by image. ``--mlperf`` does the
same for the four models of examples/mlperf_tiny (random int8 inputs; the default kernels are
left out there).

The machine is shared and noisy, so the engines run in R interleaved rounds (golden, reference,
default, golden, ...) and each figure is the median over the rounds; the ratio is that of the
medians, measured in the same run. Both the wall time and the process's CPU time are measured
(every engine runs on one thread): on a loaded machine the CPU-time rates are the comparable
ones, and the ratio is given for both.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from accel.quant import golden
from accel.quant.tflite_model import load_tflite

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODEL = EXAMPLES / "digits" / "digits_cnn.tflite"
MLPERF = ("ad_autoencoder", "kws_ds_cnn", "ic_resnet8", "vww_mobilenet_v1")


def timed(fn) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def interpreter(model: Path, resolver_name: str):
    """A function running the interpreter image by image: x -> ((wall, cpu), outputs)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(model), num_threads=1,
                         experimental_op_resolver_type=getattr(OpResolverType, resolver_name))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]

    def run(x: np.ndarray):
        outputs = []

        def loop():
            for image in x:
                interp.set_tensor(inp, image[None])
                interp.invoke()
                outputs.append(interp.get_tensor(out)[0].copy())

        return timed(loop), np.array(outputs)

    return run


def compare(model: Path, x: np.ndarray, rounds: int, default_kernels: bool = True) -> dict:
    """Median images/s (wall and CPU) per engine on ``x``, and bit-exactness notes."""
    qnet = load_tflite(model)
    golden.run(qnet, x[:8])  # warm-up (imports, BLAS threads, per-layer preparation)
    engines = [("accel golden model (NumPy)", None)]
    try:
        engines.append(("TFLite reference kernels", interpreter(model, "BUILTIN_REF")))
        if default_kernels:
            engines.append(("TFLite default (optimized)", interpreter(model, "AUTO")))
    except ImportError:
        engines.append(("TFLite interpreters", "skipped: ai-edge-litert missing"))
    seconds: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in engines}
    notes = {label: "" for label, _ in engines}
    ours = None
    for _ in range(max(rounds, 1)):
        for label, engine in engines:
            if engine is None:
                result: dict = {}
                seconds[label].append(timed(lambda out=result: out.update(golden.run(qnet, x))))
                ours = result[qnet.layers[-1].name]
            elif isinstance(engine, str):
                notes[label] = engine
            else:
                took, theirs = engine(x)
                seconds[label].append(took)
                theirs = theirs.reshape(ours.shape)
                notes[label] = "bit-exact" if np.array_equal(theirs, ours) else \
                    f"{int((theirs != ours).reshape(len(x), -1).any(axis=1).sum())} images differ"
    rates = {label: tuple(len(x) / float(np.median([t[k] for t in times])) for k in (0, 1))
             if times else (float("nan"),) * 2 for label, times in seconds.items()}
    return {"rates": rates, "notes": notes, "golden": engines[0][0]}


def show(title: str, result: dict) -> None:
    rates, notes, ours = result["rates"], result["notes"], result["golden"]
    print(title)
    print(f"  {'engine':<30} {'images/s wall':>14} {'images/s CPU':>13}  output vs golden")
    for label, (wall, cpu) in rates.items():
        print(f"  {label:<30} {wall:>14.1f} {cpu:>13.1f}  {notes[label]}")
    reference = rates.get("TFLite reference kernels")
    if reference is not None:
        print(f"  golden / TFLite reference kernels: {rates[ours][0] / reference[0]:.2f}x wall, "
              f"{rates[ours][1] / reference[1]:.2f}x CPU (goal >= 3x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mlperf", action="store_true",
                        help="Also the four MLPerf Tiny models (--images each, at most 64).")
    args = parser.parse_args()
    x = np.random.default_rng(0).integers(-128, 128, (args.images, 28, 28, 1), dtype=np.int8)
    show(f"seed network ({MODEL.name}), {args.images} images, int8 in/out, median of "
         f"{max(args.rounds, 1)} interleaved rounds; golden model batch "
         f"{golden.BATCH_CHUNK}, interpreters batch 1", compare(MODEL, x, args.rounds))
    if not args.mlperf:
        return
    for name in MLPERF:
        model = EXAMPLES / "mlperf_tiny" / f"{name}.tflite"
        qnet = load_tflite(model)
        n = min(args.images, 64)
        x = np.random.default_rng(0).integers(qnet.input.qmin, qnet.input.qmax + 1,
                                              (n, *qnet.input_shape), dtype=np.int8)
        show(f"{name}, {n} images", compare(model, x, args.rounds, default_kernels=False))


if __name__ == "__main__":
    main()
