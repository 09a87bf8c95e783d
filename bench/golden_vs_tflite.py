"""Golden-model throughput on the seed network vs TFLite's interpreters, side by side.

    .venv/bin/python bench/golden_vs_tflite.py [--images N]

Runs the trained seed-architecture model (examples/digits/digits_cnn.tflite: 28x28x1,
Conv32/Pool/Conv64/Pool/Dense128/Dense10) on N int8 images with:
- accel's golden model (NumPy, vectorized over the batch),
- ai-edge-litert with the reference kernels (BUILTIN_REF, what the golden model matches),
- ai-edge-litert with its default kernels (optimized + XNNPACK),
and prints images/s for each. The TFLite columns are skipped if ai-edge-litert is missing.
The interpreter's model has a batch of 1, so it runs image by image.
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


def interpreter_rate(resolver_name: str, x: np.ndarray) -> tuple[float, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(MODEL),
                         experimental_op_resolver_type=getattr(OpResolverType, resolver_name))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]
    outputs = []

    def run():
        for image in x:
            interp.set_tensor(inp, image[None])
            interp.invoke()
            outputs.append(interp.get_tensor(out)[0].copy())

    seconds = timed(run)
    return len(x) / seconds, np.array(outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    qnet = load_tflite(MODEL)
    x = np.random.default_rng(0).integers(-128, 128, (args.images, 28, 28, 1), dtype=np.int8)
    golden.run(qnet, x[:8])  # warm-up (imports, BLAS threads)
    result = {}
    seconds = timed(lambda: result.update(golden.run(qnet, x)))
    ours = list(result.values())[-1]
    rows = [("accel golden model (NumPy)", args.images / seconds, "")]
    try:
        for label, resolver in (("TFLite reference kernels", "BUILTIN_REF"),
                                ("TFLite default (optimized)", "AUTO")):
            rate, theirs = interpreter_rate(resolver, x)
            same = "bit-exact" if np.array_equal(theirs, ours) else \
                f"{int((theirs != ours).any(axis=1).sum())} images differ"
            rows.append((label, rate, same))
    except ImportError:
        rows.append(("TFLite interpreters", float("nan"), "skipped: ai-edge-litert missing"))
    print(f"seed network ({MODEL.name}), {args.images} images, int8 in/out")
    print(f"{'engine':<30} {'images/s':>10} {'vs golden':>10}  output vs golden")
    for label, rate, note in rows:
        print(f"{label:<30} {rate:>10.1f} {rows[0][1] / rate:>9.2f}x  {note}")


if __name__ == "__main__":
    main()
