"""``accel generate``: the accelerator's Verilog and its JSON sidecar.

The sidecar is the single source of truth for testbenches and host code: the top module's
ports and payload bit fields, the input and output quantization, the plan (per stage: array,
folding, predicted cycles, memory bits), the predicted interval, and PE / multiplier counts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from amaranth.back import verilog

from ..plan.plan import NetworkPlan, plan_dict
from .accelerator import Accelerator
from .ports import stream_ports

TOP_NAME = "accel_top"


def weight_ports(plan: NetworkPlan, accelerator: Accelerator) -> dict:
    """Per streamed stage, its weight-memory port as the Verilog has it (``weights<N>__mem_cmd``
    out, ``weights<N>__mem_rsp`` in) and what it reads: memory kind, word width, base word
    address, words per image, burst length and the layout of the words."""
    from types import SimpleNamespace

    found = {}
    for index, name in accelerator.weight_ports.items():
        ws = plan.stages[index].streamed
        streams = stream_ports(SimpleNamespace(
            signature=accelerator.signature.members[name].signature))
        for port in streams.values():
            for key in ("valid", "ready", "payload"):
                port[key] = f"{name}__{port[key]}"
        found[name] = {
            "stage": index, "layer": plan.stages[index].layer, **streams,
            "memory": ws.memory.kind, "word_bits": ws.word_bits, "base": ws.base,
            "words_per_image": ws.words_per_image, "max_burst": ws.max_burst,
            "layout": (f"{ws.tiles} tiles of {plan.stages[index].rows}x"
                       f"{plan.stages[index].cols} weights in the array's address order, each "
                       f"row-major in {ws.words_per_tile} word(s) of {ws.weights_per_word} "
                       f"{ws.weight_bits}-bit weights, the first in the low bits"),
        }
    return found


def sidecar(plan: NetworkPlan, accelerator: Accelerator) -> dict:
    """The JSON sidecar's content (see module doc), read from the plan; the ports come from
    ``accelerator``'s signature (the one built from ``plan`` and converted)."""
    in_bits, out_bits = plan.input_bits, plan.output_bits
    planned = plan_dict(plan)
    out = plan.output_stage
    ports = stream_ports(accelerator)
    return {
        "format": "accel-sidecar", "version": 1, "top": TOP_NAME, "model": plan.name,
        "scheme": plan.scheme, "source": plan.source,
        "clock": {"port": "clk", "reset": "rst", "reset_active": "high", "reset_sync": True},
        # Names, widths and bit fields from the accelerator's signature (hw/ports.py).
        "ports": {
            "i": {**ports["i"],
                  "meaning": "input image values in raster order, channels innermost, one per "
                             "beat; last on the image's final value"},
            "o": {**ports["o"],
                  "meaning": f"the {plan.output_layer} outputs (logits), one per beat; last on "
                             f"each image's final value"},
        },
        "input": {"shape": list(plan.input_shape), "scale": plan.input_scale,
                  "zero_point": plan.input_zero_point, "bits": in_bits},
        "output": {"layer": plan.output_layer,
                   "units": out.geometry.filters,
                   "scale": out.out_scale,
                   "zero_point": out.out_zero_point,
                   "bits": out_bits,
                   "softmax_in_software": plan.softmax_in_software},
        # Streamed stages' weight-memory ports (empty when every weight is in ROMs).
        "weight_ports": weight_ports(plan, accelerator),
        "plan": planned,
        "expected": {"interval_cycles": plan.interval_cycles,
                     "latency_cycles": plan.latency_cycles,
                     "ideal_cycles": plan.ideal_cycles},
        "pes": plan.pes,
        # Hardware multipliers per FPGA family (Gowin in 9x9 halves): PEs and requantizers.
        "multipliers": plan.multipliers,
        "bram_blocks": planned["bram_blocks"],
        "memory_bits": planned["memory_bits"],
    }


def generate(plan: NetworkPlan, out_dir: str | Path) -> dict:
    """Write ``<out_dir>/accel_top.v`` and ``accel_top.json``; returns the sidecar."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(plan)
    start = time.perf_counter()
    text = verilog.convert(accelerator, name=TOP_NAME, emit_src=False)
    seconds = time.perf_counter() - start
    (out / f"{TOP_NAME}.v").write_text(text)
    data = sidecar(plan, accelerator)
    data["generated"] = {"verilog": f"{TOP_NAME}.v", "verilog_bytes": len(text),
                         "convert_seconds": round(seconds, 3)}
    (out / f"{TOP_NAME}.json").write_text(json.dumps(data, indent=1) + "\n")
    return data
