"""Golden-model throughput on the seed network vs TFLite's interpreters, side by side.

    .venv/bin/python bench/golden_vs_tflite.py [--images N] [--rounds R]

Runs the trained seed-architecture model (examples/digits/digits_cnn.tflite: 28x28x1,
Conv32/Pool/Conv64/Pool/Dense128/Dense10) on N int8 images with:
- accel's golden model (NumPy): one ``golden.run`` call on all N images, which it evaluates
  in batches of ``golden.BATCH_CHUNK`` (32) images, every layer's output kept,
- ai-edge-litert with the reference kernels (BUILTIN_REF, what the golden model matches),
- ai-edge-litert with its default kernels (optimized + XNNPACK),
and prints images/s for each and the golden model's speed relative to the reference
interpreter (the goal is >= 3x). The TFLite columns are skipped if ai-edge-litert is missing.
The interpreter's model has a batch of 1, so it runs image by image.

The machine is shared and noisy, so the engines run in R interleaved rounds (golden, reference,
default, golden, ...) and each figure is the median over the rounds; the ratio is that of the
medians, measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from accel.quant import golden
from accel.quant.tflite_model import load_tflite

MODEL = Path(__file__).resolve().parent.parent / "examples" / "digits" / "digits_cnn.tflite"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interpreter(resolver_name: str):
    """A function running the interpreter image by image: x -> (seconds, outputs)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(MODEL),
                         experimental_op_resolver_type=getattr(OpResolverType, resolver_name))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]

    def run(x: np.ndarray) -> tuple[float, np.ndarray]:
        outputs = []

        def loop():
            for image in x:
                interp.set_tensor(inp, image[None])
                interp.invoke()
                outputs.append(interp.get_tensor(out)[0].copy())

        return timed(loop), np.array(outputs)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    qnet = load_tflite(MODEL)
    x = np.random.default_rng(0).integers(-128, 128, (args.images, 28, 28, 1), dtype=np.int8)
    golden.run(qnet, x[:8])  # warm-up (imports, BLAS threads, per-layer preparation)
    engines = [("accel golden model (NumPy)", None)]
    try:
        engines += [("TFLite reference kernels", interpreter("BUILTIN_REF")),
                    ("TFLite default (optimized)", interpreter("AUTO"))]
    except ImportError:
        engines.append(("TFLite interpreters", "skipped: ai-edge-litert missing"))
    seconds: dict[str, list[float]] = {label: [] for label, _ in engines}
    notes = {label: "" for label, _ in engines}
    ours = None
    for _ in range(max(args.rounds, 1)):
        for label, engine in engines:
            if engine is None:
                start = time.perf_counter()
                ours = list(golden.run(qnet, x).values())[-1]
                seconds[label].append(time.perf_counter() - start)
            elif isinstance(engine, str):
                notes[label] = engine
            else:
                took, theirs = engine(x)
                seconds[label].append(took)
                notes[label] = "bit-exact" if np.array_equal(theirs, ours) else \
                    f"{int((theirs != ours).any(axis=1).sum())} images differ"
    rates = {label: args.images / float(np.median(times)) if times else float("nan")
             for label, times in seconds.items()}
    golden_rate = rates[engines[0][0]]
    print(f"seed network ({MODEL.name}), {args.images} images, int8 in/out, median of "
          f"{max(args.rounds, 1)} interleaved rounds; golden model batch "
          f"{golden.BATCH_CHUNK}, interpreters batch 1")
    print(f"{'engine':<30} {'images/s':>10} {'golden is':>10}  output vs golden")
    for label, rate in rates.items():
        print(f"{label:<30} {rate:>10.1f} {golden_rate / rate:>9.2f}x  {notes[label]}")
    reference = rates.get("TFLite reference kernels")
    if reference is not None:
        print(f"golden / TFLite reference kernels: {golden_rate / reference:.2f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
