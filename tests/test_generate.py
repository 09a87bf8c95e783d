"""`accel generate`: Verilog whose ports are what the JSON sidecar says."""

import json
import re

from click.testing import CliRunner

from accel.cli import main

from .paths import EXAMPLES


def test_generate_writes_verilog_and_a_consistent_sidecar(tmp_path):
    model = EXAMPLES / "digits" / "digits_small.tflite"
    result = CliRunner().invoke(main, ["generate", str(model),
                                       "--array", "2x4", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    verilog = (tmp_path / "accel_top.v").read_text()
    side = json.loads((tmp_path / "accel_top.json").read_text())
    assert side["top"] == "accel_top" and re.search(r"^module accel_top\(", verilog, re.M)
    for port in side["ports"].values():
        for key in ("valid", "ready"):
            assert re.search(rf"\b(input|output)\s+{port[key]};", verilog), port[key]
        width = port["payload_width"]
        assert re.search(rf"\[{width - 1}:0\] {port['payload']};", verilog), port["payload"]
    assert side["input"]["shape"] == [8, 8, 1] and side["output"]["units"] == 10
    assert side["output"]["softmax_in_software"] is True
    assert side["expected"]["interval_cycles"] == 648
    assert [s["array"] for s in side["plan"]["stages"]] == [[1, 4], [1, 2]]
    assert side["pes"] == 6 and side["memory_bits"]["weights"] == 576 + 5760
