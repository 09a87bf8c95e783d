"""Simulate the UART board top (:class:`~accel.synth.uart_top.UartTop`) around a model's
accelerator with cocotb + Verilator, talking to it only through its serial pins.

The host side computes what a host would send (:func:`~accel.host.link.encode_request` of each
quantized image) and what the board must answer (:func:`~accel.host.link.encode_response` of
the golden model's logits), writes them to a JSON case file, and runs the testbench
:mod:`accel.sim.uart_tb` on the Verilog of the top (Amaranth's back end; the top is built with
no platform, so ``rx``, ``tx`` and the two LED signals are its ports).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from ..host.link import encode_request, encode_response, image_bytes
from ..hw.accelerator import Accelerator
from ..plan.plan import NetworkPlan
from ..quant import golden
from ..quant.qnet import QuantizedNetwork
from .bench import run_cocotb_tests

TOP = "uart_top"
TESTBENCH = "accel.sim.uart_tb"


def uart_top(qnet: QuantizedNetwork, plan: NetworkPlan, divisor: int):
    from ..synth.uart_top import UartTop

    logits = math.prod(qnet.network.infos[qnet.layers.index(qnet.logits_layer)].output_shape)
    return UartTop(accelerator=Accelerator(plan), image_values=plan.input_cycles,
                   logits=logits, divisor=divisor)


def write_verilog(top, path: Path) -> float:
    """``top`` as Verilog at ``path``; returns the seconds it took."""
    from amaranth.back import verilog

    start = time.perf_counter()
    path.write_text(verilog.convert(top, name=TOP, emit_src=False,
                                    ports=[top.rx, top.tx, top.answers, top.error]))
    return time.perf_counter() - start


def frames(qnet: QuantizedNetwork, images: np.ndarray, labels: list[str]) -> list[dict]:
    """Request and expected answer bytes for each quantized image."""
    logits = golden.run(qnet, images)[qnet.logits_layer.name].reshape(len(images), -1)
    return [{"label": label, "request": list(encode_request(image_bytes(image))),
             "response": list(encode_response(want))}
            for image, want, label in zip(images, logits, labels, strict=True)]


def run_uart_cocotb(qnet: QuantizedNetwork, plan: NetworkPlan, images: np.ndarray,
                    build_dir: str | Path, *, divisor: int = 4, seed: int = 1,
                    labels: list[str] | None = None, max_gap_cycles: int | None = None,
                    skew: float = 0.015, junk_probability: float = 0.3,
                    pipelined_frames: int | None = None, host_model: str | Path | None = None,
                    waves: bool = False) -> dict:
    """Build the top and run every test of :mod:`accel.sim.uart_tb` on ``images`` (an int
    batch, at least 4). With ``host_model`` (the file ``qnet`` was loaded from), the
    ``host_process`` test also runs ``accel run --check`` on the images against the simulated
    board; its JSON report is ``host_report`` in the result. Returns ``{"tests", "failed",
    "figures", "log", ...}``: the caller decides what a failure means (the log has the
    scoreboard's message)."""
    if len(images) < 4:
        raise ValueError(f"images must hold at least 4 images, not {len(images)}")
    labels = labels or [f"image {n}" for n in range(len(images))]
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    top = uart_top(qnet, plan, divisor)
    source = build_dir / f"{TOP}.v"
    convert_s = write_verilog(top, source)
    case = {
        "clock_ns": 10, "divisor": divisor, "seed": seed, "skew": skew,
        "junk_probability": junk_probability,
        "max_gap_cycles": 3 * divisor if max_gap_cycles is None else max_gap_cycles,
        "pipelined_frames": len(images) if pipelined_frames is None else pipelined_frames,
        # generous: a whole request and answer on the wire plus the accelerator's latency
        "answer_timeout_cycles": 2 * (plan.latency_cycles + plan.interval_cycles
                                      + 10 * divisor * (plan.input_cycles + top.logits + 3)),
        "filler": [0] * plan.input_cycles,
        "frames": frames(qnet, images, labels),
    }
    host_output = build_dir / "host_report.json"
    host_output.unlink(missing_ok=True)
    if host_model is not None:
        np.save(build_dir / "host_images.npy", np.asarray(images, dtype=np.int8))
        case["host"] = {
            "command": [sys.executable, "-m", "accel.cli", "run", "--port", "{port}",
                        str(Path(host_model).resolve()), str(build_dir / "host_images.npy"),
                        "--check", "--json", "--timeout", "60"],
            "output": str(host_output), "timeout_s": 300,
        }
    case_path, result_path = build_dir / "uart_case.json", build_dir / "uart_result.json"
    case_path.write_text(json.dumps(case))
    result_path.unlink(missing_ok=True)
    # (the "run" C++ profile, -O1 on the model alone: here, a few thousand bits per image,
    # compile time dominates; -O0 made runs 4x slower, -O2 everywhere a slower build)
    run = run_cocotb_tests(sources=[source], toplevel=TOP, test_module=TESTBENCH,
                           build_dir=build_dir, waves=waves or None, cxx="run",
                           extra_env={"ACCEL_UART_CASE": str(case_path),
                                      "ACCEL_UART_RESULT": str(result_path)})
    figures = json.loads(result_path.read_text()) if result_path.exists() else {}
    host_report = None
    if host_model is not None and host_output.exists() and host_output.stat().st_size:
        host_report = json.loads(host_output.read_text())
    return {"tests": run.tests, "failed": run.failed, "figures": figures, "log": run.test_log,
            "host_report": host_report,
            "convert_s": convert_s, "build_s": run.build_s, "run_s": run.run_s,
            "bits_per_image": 10 * (plan.input_cycles + 1 + top.logits + 2)}
