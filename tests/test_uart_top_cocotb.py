"""The UART board top as Verilog in cocotb + Verilator, driven only through its serial pins.

The trained digits model (``digits_small.tflite``, the accelerator at 1x1 as ``accel build``
puts it on a board) behind ``UartTop`` at 4 clock cycles per bit; ten real test images go in
as 0xA5 + int8 bytes and every answer (0x5A, ten logits, argmax) must equal the golden model's,
byte for byte, in the tests of :mod:`accel.sim.uart_tb` (lockstep with random gaps, baud
error, junk, glitches and breaks; pipelined; reset mid-request and mid-answer; resync), and
``accel run --check`` itself, in a subprocess, talks to the simulated pins over ``socket://``.
``ACCEL_WAVES=1`` dumps an FST into the build directory.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from accel.plan.plan import make_plan
from accel.quant.load import load_quantized_model
from accel.quant.predict import quantize_inputs
from accel.sim.uart_run import run_uart_cocotb

from .paths import EXAMPLES

DIGITS = EXAMPLES / "digits"

# One Verilator build of the whole top (about 25 s of CPU, 30-60 s wall on a busy 2-core
# machine), then 4-7 s of simulation.
pytestmark = pytest.mark.slow


def test_uart_top_answers_real_images_bit_exact_over_the_pins(tmp_path):
    seed, divisor, count = 1, 4, 10
    qnet = load_quantized_model(DIGITS / "digits_small.tflite")
    indices = np.random.default_rng(seed).choice(450, count, replace=False)
    images, _ = quantize_inputs(qnet, np.load(DIGITS / "digits_test_x.npy")[indices])
    labels = np.load(DIGITS / "digits_test_y.npy")[indices]
    result = run_uart_cocotb(
        qnet, make_plan(qnet, 1, 1), images, tmp_path / "uart", divisor=divisor, seed=seed,
        host_model=DIGITS / "digits_small.tflite",
        labels=[f"test image {i} (a {y})" for i, y in zip(indices, labels, strict=True)],
        waves=os.environ.get("ACCEL_WAVES", "") not in ("", "0"))
    log = result["log"].read_text()
    assert result["tests"] == 5 and result["failed"] == 0, "\n".join(log.splitlines()[-40:])
    figures = result["figures"]
    assert set(figures) == {"lockstep", "pipelined", "reset", "resync", "host_process"}
    for name in ("lockstep", "pipelined"):
        assert figures[name]["frames"] == count
        assert figures[name]["bytes_received"] == count * 12, figures[name]
    lockstep = figures["lockstep"]
    assert lockstep["bytes_sent"] == count * 65 + lockstep["junk_bytes"]
    # the seed gives every kind of line disturbance at least once
    assert all(lockstep[k] > 0 for k in ("junk_bytes", "gaps", "glitches", "breaks")), lockstep
    # accel run itself, over socket:// to the simulated pins, checked the answers
    host = result["host_report"]
    assert host is not None and host["bit_exact"] and host["images"] == count, host
    assert [r["class"] for r in host["results"]] == [r["golden_class"] for r in host["results"]]
    assert figures["host_process"]["bytes_received"] == count * 12
