"""The whole-network bench on the shared harness: ``accel generate``'s Verilog, driven by the
stream driver and monitor of ``sim/streams.py`` bound only through the generated sidecar,
bit-exact with the golden model under random input gaps and output stalls."""

from __future__ import annotations

import json

import numpy as np

from accel.hw.generate import TOP_NAME, generate
from accel.plan.plan import make_plan
from accel.quant import golden
from accel.quant.load import load_quantized_model
from accel.sim.bench import run_cocotb_tests

from .paths import EXAMPLES


def test_generated_top_through_its_sidecar(build_dir, seed, rng):
    qnet = load_quantized_model(str(EXAMPLES / "digits" / "dense_pt.tflite"))
    plan = make_plan(qnet, 2, 2)
    side = generate(plan, build_dir / "rtl")
    images = rng.integers(qnet.input.qmin, qnet.input.qmax + 1, (3, *qnet.input_shape))
    logits = golden.run(qnet, images)[plan.output_layer].reshape(len(images), -1)
    case = {"sidecar": str(build_dir / "rtl" / f"{TOP_NAME}.json"), "seed": seed,
            "gap": 0.25, "stall": 0.25, "images": images.reshape(len(images), -1).tolist(),
            "logits": logits.tolist(),
            "timeout_cycles": 4 * (side["expected"]["latency_cycles"]
                                   + len(images) * side["expected"]["interval_cycles"]) + 1000}
    (build_dir / "case.json").write_text(json.dumps(case))
    run = run_cocotb_tests(
        sources=[build_dir / "rtl" / side["generated"]["verilog"]], toplevel=side["top"],
        test_module="sim.network.tb_accel_top", build_dir=build_dir / "sim", seed=seed,
        extra_env={"ACCEL_TOP_CASE": str(build_dir / "case.json"),
                   "ACCEL_TOP_RESULT": str(build_dir / "result.json")})
    assert (run.tests, run.failed) == (1, 0), f"seed {seed}:\n{run.log_tail()}"
    result = json.loads((build_dir / "result.json").read_text())
    assert result["beats"] == logits.size
    # Back to back, with gaps and stalls of a quarter of the cycles: within 2x of the plan.
    interval = float(np.diff(result["image_done"]).mean())
    assert interval <= 2 * side["expected"]["interval_cycles"], (interval, side["expected"])
