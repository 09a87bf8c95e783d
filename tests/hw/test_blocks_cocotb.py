# amaranth: UnusedElaboratable=no
"""The stream blocks as Verilog: cocotb + Verilator, bit-exact under random stalls, and lint.

Each block (one small configuration each; the requantizer once per arithmetic mode) is
converted to Verilog, built and run by the one runner (:mod:`accel.sim.bench`) in its own
build directory and driven by ``sim/blocks/stream_bench.py`` (the shared driver with random
valid gaps and monitor with random ready stalls of ``sim/streams.py``, bound from the block's
port description; a scoreboard). The expected beats are computed here with the same NumPy
references as the ``amaranth.sim`` tests and handed over as a JSON file. The lint allows only
:data:`accel.sim.bench.LINT_ALLOWED`.
"""

from __future__ import annotations

import numpy as np
import pytest

from accel.hw.layouts import pixel_layout, window_layout
from accel.hw.maxpool import MaxPool
from accel.hw.regroup import ChannelRegroup
from accel.hw.window import WindowGenerator
from accel.sim.bench import lint_violations
from sim.blocks.harness import run_block, write_verilog
from tests.hw import test_maxpool, test_regroup, test_requantizer, test_window


def _pack(layout, rows) -> list[int]:
    return [layout.const(row).as_bits() for row in rows]


def window_case():
    dut = WindowGenerator(height=5, width=6, channels=3, kernel=3, padding="same", lanes=2,
                          zero_point=-5)
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (2, 5, 6, 3))
    beats = test_window.pixel_beats(x, 2, rng)
    want = test_window.expected_windows(x, dut.kernel, dut.strides, "same", 2, -5)
    rows = [{"data": list(row[:2]), "first": row[2], "last": row[3], "frame_last": row[4]}
            for row in want.tolist()]
    return dut, ("pixels", _pack(pixel_layout(2), beats)), ("windows",
                                                          _pack(window_layout(2), rows))


def maxpool_case():
    dut = MaxPool(height=7, width=7, channels=3, pool=3, strides=2, padding="same", lanes=2,
                  zero_point=9)
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (2, 7, 7, 3))
    beats = test_window.pixel_beats(x, 2, rng)
    y = test_maxpool.numpy_maxpool(x, dut.pool, dut.strides, "same")
    want = test_maxpool.expected_words(y, 2, 9)
    rows = [{"data": list(row[:2]), "last": row[2]} for row in want.tolist()]
    return dut, ("i", _pack(pixel_layout(2), beats)), ("o", _pack(pixel_layout(2), rows))


def requantizer_case(mode):
    dut = {
        "tflite": lambda: test_requantizer.random_tflite(4),
        "float": lambda: test_requantizer.random_float(4),
        "pow2": lambda: test_requantizer.random_pow2(4),
    }[mode]()
    rng = np.random.default_rng(3)
    acc = test_requantizer.random_acc(rng, dut, 24)
    beats = test_requantizer.acc_beats(dut, acc, 12, rng)
    want = test_requantizer.expected_words(dut, test_requantizer.reference(dut, acc), 12)
    rows = [{"data": list(row[:-1]), "last": row[-1]} for row in want.tolist()]
    return (dut, ("i", _pack(pixel_layout(dut.lanes, dut.acc_bits), beats)),
            ("o", _pack(pixel_layout(dut.lanes, dut.out_bits), rows)))


def regroup_case():
    dut = ChannelRegroup(channels=10, lanes_in=3, lanes_out=4, zero_point=-1)
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (16, 10))
    beats = [{"data": list(row[:-1]), "last": row[-1]}
             for row in test_regroup.words(x, 3, rng, 8).tolist()]
    rows = [{"data": list(row[:-1]), "last": row[-1]}
            for row in test_regroup.words(x, 4, -1, 8).tolist()]
    return dut, ("i", _pack(pixel_layout(3), beats)), ("o", _pack(pixel_layout(4), rows))


CASES = {
    "window_generator": window_case,
    "max_pool": maxpool_case,
    "requantizer_tflite": lambda: requantizer_case("tflite"),
    "requantizer_float": lambda: requantizer_case("float"),
    "requantizer_pow2": lambda: requantizer_case("pow2"),
    "channel_regroup": regroup_case,
}
# Each bench pays a Verilator build (10-20 s on 2 cores): one configuration per block runs by
# default, the requantizer's other two arithmetic modes are marked slow.
SLOW = {"requantizer_float", "requantizer_pow2"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES]
)
def test_verilog_bench(name, build_dir):
    dut, inputs, outputs = CASES[name]()
    source = write_verilog(dut, name, build_dir / "rtl")
    result = run_block(dut, source, name=name, inputs=inputs, outputs=outputs,
                       build_dir=build_dir / "sim", seed=len(name))
    assert result["beats"] == len(outputs[1]) and result["mismatches"] == 0


@pytest.mark.parametrize("name", list(CASES))
def test_verilog_lint(name, tmp_path):
    dut, _, _ = CASES[name]()
    source = write_verilog(dut, name, tmp_path)
    unexpected = lint_violations(source, name)
    assert not unexpected, unexpected
