"""The four MLPerf Tiny reference models in RTL: ``accel sim --board ulx3s-85f`` of the int8 TFLite
files (examples/mlperf_tiny) at the array the ULX3S build uses, in Verilator, with random input
gaps and output stalls: bit-exact with the golden model on every layer, the logits are the ones
TFLite's reference interpreter recorded, and the latency is the plan's (exact without gaps;
with them, no earlier and within the cycles the input was held back)."""

import json

import numpy as np
import pytest

from .board_sim import sim_on_board
from .paths import EXAMPLES

MLPERF = EXAMPLES / "mlperf_tiny"


def reference_logits(name):
    """The last FULLY_CONNECTED's int8 output, image by image (the hardware returns logits)."""
    meta = json.loads((MLPERF / f"{name}_expected.json").read_text())
    fc = [op for op in meta["ops"] if op["op"] == "FULLY_CONNECTED"][-1]
    with np.load(MLPERF / f"{name}_expected.npz") as expected:
        return expected[fc["outputs"][0]["key"]]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "array"), [("vww_mobilenet_v1", "2x4"),
                                             ("ic_resnet8", "8x3"), ("kws_ds_cnn", "2x4"),
                                             ("ad_autoencoder", "8x3")])
def test_mlperf_model_in_verilator_returns_the_reference_logits(tmp_path, build_dir, name,
                                                                 array):
    # VWW MobileNetV1 0.25 (27 stages, 108 PEs; 3 min here), ResNet-8 with its residual forks
    # and Add joins (131 PEs; 77 s), KWS DS-CNN (41 PEs; 53 s) and the AD autoencoder (80 PEs,
    # its 640 reconstructed values are the "logits"; 75 s): one image each.
    r, logits = sim_on_board(MLPERF / f"{name}.tflite", MLPERF / f"{name}_input.npy",
                             board="ulx3s-85f", array=array, images=1, build_dir=build_dir,
                             out=tmp_path / "sim.npz")
    want = reference_logits(name)[:1]
    assert np.array_equal(logits.reshape(want.shape), want), (logits, want)
    assert r["predicted_latency_cycles"] <= r["latency_cycles"], r
    assert r["latency_cycles"] <= r["predicted_latency_cycles"] + r["input_gaps"], r
    print(f"{name} {array}: latency {r['latency_cycles']} (plan {r['predicted_latency_cycles']}"
          f" without gaps), {r['pes']} PEs, build {r.get('build_s')} s, run {r.get('run_s')} s")
