"""A whole depthwise-separable network (DS-CNN's layer kinds: a strided 'same' convolution,
a depthwise 3x3, a pointwise 1x1, an average pool, a dense classifier) through `accel sim`:
generated Verilog, cocotb, Verilator, every layer of every image bit-exact under random
input gaps and output stalls. The slow tier's whole depthwise model (the residual one is in
test_graph_accelerator.py; the cycle-exact timing of these stage kinds is checked in
amaranth.sim by test_timing_exact.py)."""

import json

import pytest
from click.testing import CliRunner

from accel.cli import main

DS_CNN_SPEC = """\
name: ds_cnn_small
input: [9, 6, 1]
layers:
  - Conv2D: {filters: 4, kernel_size: [4, 3], strides: 2, padding: same, activation: relu}
  - DepthwiseConv2D: {kernel_size: 3, padding: same, activation: relu}
  - Conv2D: {filters: 4, kernel_size: 1, activation: relu}
  - DepthwiseConv2D: {kernel_size: 3, padding: same, activation: relu}
  - Conv2D: {filters: 4, kernel_size: 1, activation: relu}
  - AveragePooling2D: {pool_size: [5, 3]}
  - Flatten: {}
  - Dense: {units: 3}
"""


@pytest.mark.slow
def test_depthwise_network_in_verilator(tmp_path, build_dir):
    spec = tmp_path / "ds_cnn_small.yaml"
    spec.write_text(DS_CNN_SPEC)
    result = CliRunner().invoke(main, ["sim", str(spec), "--seed", "2", "--array", "2x2",
                                       "--images", "2", "--gaps", "25", "--build-dir",
                                       str(build_dir), "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["bit_exact"] and r["mismatches"] == 0, r["first_mismatch"]
    kinds = [layer["layer"] for layer in r["layers"]]
    assert kinds[1].startswith("depthwise_conv2d") and kinds[-1] == "dense", kinds
    assert r["input_gaps"] > 0 and r["output_stalls"] > 0
