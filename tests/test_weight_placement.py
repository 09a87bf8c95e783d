"""Weight placement: the planner keeps weights in ROMs while they fit the board's block RAMs and
streams Dense layers from its external memory when they do not; the streamed layout, the
bandwidth bound and the one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from accel.errors import AccelError
from accel.plan.lower import tile_weights
from accel.plan.plan import make_plan, plan_dict
from accel.plan.weights import (
    ExternalMemory,
    WeightPlacement,
    image_payload,
    pack_tiles,
)
from accel.quant.load import load_quantized_model
from accel.quant.random_model import random_quantized
from accel.spec import Dense, Network
from accel.synth.boards import BOARDS, get_board
from accel.synth.fit import check_fit, estimate

from .paths import SPECS


@pytest.fixture(scope="module")
def seed_net():
    return load_quantized_model(str(SPECS / "seed_mnist_cnn.yaml"), seed=1,
                                calibration=None, scheme="tflite-int8", weight_bits=8,
                                act_bits=8)


def test_boards_describe_their_memories():
    sdram = get_board("ulx3s-85f").memories[0]
    assert (sdram.kind, sdram.size_bytes, sdram.word_bits) == ("sdram", 32 << 20, 16)
    assert sdram.words_per_cycle == 0.969 and sdram.max_burst == 64
    kinds = [m.kind for m in get_board("icebreaker").memories]
    assert kinds == ["spram", "flash"]
    assert get_board("icebreaker").memories[0].size_bytes == 128 << 10
    assert get_board("tangnano9k").memories == ()
    for board in BOARDS.values():
        for memory in board.memories:
            assert 0 < memory.words_per_cycle <= 1 and memory.words > 0


def test_seed_network_streams_its_first_dense_layer_on_ulx3s(seed_net):
    board = get_board("ulx3s-85f")
    plain = make_plan(seed_net, 1, 1)
    assert not estimate(plain, board).fits  # 219 block RAMs at 1x1, 208 on the board
    plan = make_plan(seed_net, 1, 1, weights=board.placement())
    assert [s.layer for s in plan.streamed_stages] == ["dense"]  # dense_1 stays in ROMs
    assert check_fit(plan, board).fits
    assert plan.bram_blocks("ecp5") < plain.bram_blocks("ecp5") - 150


def test_streamed_layout_and_bandwidth_bound(seed_net):
    board = get_board("ulx3s-85f")
    plan = make_plan(seed_net, 4, 8, weights=board.placement())
    (stage,) = plan.streamed_stages
    ws = stage.streamed
    layer = next(q for q in seed_net.layers if q.name == "dense")
    tiles = tile_weights(layer, stage.rows, stage.cols)
    # The words are the tiles in the array's address order: one sequential frame per image.
    assert np.array_equal(ws.words, pack_tiles(tiles, 8, 16))
    assert ws.words_per_image == len(ws.words) == ws.tiles * ws.words_per_tile
    assert ws.base == 0 and ws.word_bits == 16 and ws.max_burst == 64
    assert ws.fifo_depth == 2 * 64 + board.memories[0].read_latency
    assert ws.bandwidth_cycles == math.ceil(ws.words_per_image / 0.969)
    assert stage.cycles == max(ws.compute_cycles, ws.bandwidth_cycles)
    assert stage.array.weight_roms == () and ws.fifo in stage.memories
    # The interval is the weight bandwidth's: 401,408 int8 weights in 200,704 words.
    assert ws.words_per_image == 3136 * 128 // 2
    # (The plan's interval follows the deterministic memory model cycle by cycle, which moves
    # slightly more than the measured 0.969 words a cycle: within 1 % of the bound.)
    assert plan.stream_cycles == ws.bandwidth_cycles
    assert plan.interval_cycles == 206_498
    assert abs(plan.interval_cycles / plan.stream_cycles - 1) < 0.01
    assert plan.interval_bound == "stage 2 (dense) bandwidth"
    assert plan.interval_cycles <= 1e8 / 400  # at least 400 inferences/s at 100 MHz
    data = plan_dict(plan)
    assert data["stages"][2]["streamed"]["bound"] == "bandwidth"
    assert data["weight_memory"]["kind"] == "sdram"
    assert plan.latency_exact  # one streamed stage: exact against the deterministic memory model
    payload = image_payload(list(s.streamed for s in plan.streamed_stages))
    assert len(payload) == 2 * ws.end
    first = int.from_bytes(payload[:2], "little")
    assert first == (int(tiles[0, 0, 0]) & 0xFF) | (int(tiles[0, 0, 1]) & 0xFF) << 8


def test_weights_stay_in_roms_when_they_fit():
    qnet = random_quantized(Network("n", (20,), (Dense(8), Dense(3))), 1)
    plan = make_plan(qnet, 2, 2, weights=get_board("ulx3s-85f").placement())
    assert plan.streamed_stages == ()


def _tiny_memory(words: int) -> ExternalMemory:
    return ExternalMemory(kind="spram", size_bytes=2 * words, word_bits=16, clock_mhz=12.0,
                          words_per_cycle=1.0, max_burst=8, read_latency=2, source="test")


def test_forced_stream_and_errors():
    qnet = random_quantized(Network("n", (40,), (Dense(8), Dense(3))), 2)
    two = WeightPlacement(family="ice40", bram_blocks=None, memories=(_tiny_memory(1024),),
                          stream=("dense", "dense_1"), board="b")
    plan = make_plan(qnet, 1, 2, weights=two)
    first, second = plan.streamed_stages
    assert first.streamed.base == 0 and second.streamed.base % 8 == 0
    assert second.streamed.base >= first.streamed.end
    assert plan.stream_cycles == first.streamed.words_per_image + \
        second.streamed.words_per_image
    with pytest.raises(AccelError, match=r"^n: the streamed weights \(dense\) need 160 words "
                                         r"of 16 bits, more than --board b's spram holds "
                                         r"\(100 words\)$"):
        make_plan(qnet, 1, 2, weights=WeightPlacement(
            family="ice40", bram_blocks=None, memories=(_tiny_memory(100),),
            stream=("dense",), board="b"))
    with pytest.raises(AccelError, match=r"^--stream conv: only Dense layers can stream"):
        make_plan(qnet, 1, 2, weights=WeightPlacement(family="ice40", bram_blocks=None,
                                                      stream=("conv",)))
    with pytest.raises(AccelError, match=r"^--board x has no external memory to stream "
                                         r"dense from"):
        make_plan(qnet, 1, 2, weights=WeightPlacement(family="ice40", bram_blocks=None,
                                                      stream=("dense",), board="x"))


def _cli(*args):
    from click.testing import CliRunner

    from accel.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_plan_and_fit_on_the_board(tmp_path):
    seed = str(SPECS / "seed_mnist_cnn.yaml")
    result = _cli("plan", seed, "--seed", 1, "--array", "4x8", "--board", "ulx3s-85f", "--json")
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.stdout)
    assert [s["streamed"] is not None for s in data["stages"]] == [False, False, True, False]
    assert data["interval_bound"] == "stage 2 (dense) bandwidth"
    result = _cli("build", seed, "--seed", 1, "--array", "1x1", "--board", "ulx3s-85f",
                  "--fit-only", "-o", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert "fits ulx3s-85f" in result.output
    # Without external memory the fit check still says no, and says why.
    result = _cli("build", seed, "--seed", 1, "--array", "1x1", "--board", "tangnano9k",
                  "--fit-only", "-o", tmp_path / "c")
    assert result.exit_code == 2
    assert "tangnano9k has none described" in result.output
    assert len(result.output.strip().splitlines()) == 1
    # A full build streaming from a memory the board tops do not build (the iCEBreaker's
    # flash: 204,800 weights do not fit its SPRAM) is refused in one line.
    spec = tmp_path / "flashy.yaml"
    spec.write_text("name: flashy\ninput: [16, 16, 8]\nlayers:\n  - Flatten: {}\n"
                    "  - Dense: {units: 100}\n  - Dense: {units: 10}\n")
    result = _cli("build", spec, "--seed", 1, "--scheme", "pow2", "--array", "1x1",
                  "--board", "icebreaker", "-o", tmp_path / "d")
    assert result.exit_code == 2
    assert result.output.strip().endswith(
        "flashy: dense stream their weights from icebreaker's flash, which the board tops "
        "do not build (they build ulx3s-85f: sdram; icebreaker: spram); use --fit-only, or "
        "accel sim --board")
    assert len(result.output.strip().splitlines()) == 1


def test_generate_writes_the_weight_ports_and_image(tmp_path):
    import json

    from accel.synth.weight_image import flash_offset, read_weight_image

    spec = tmp_path / "wide.yaml"
    spec.write_text("name: wide\ninput: [16, 16, 4]\nlayers:\n  - Flatten: {}\n"
                    "  - Dense: {units: 40}\n  - Dense: {units: 10}\n")
    result = _cli("generate", spec, "--seed", 1, "--array", "1x2", "--board", "icebreaker",
                  "-o", tmp_path / "g")
    assert result.exit_code == 0, result.output
    side = json.loads((tmp_path / "g" / "accel_top.json").read_text())
    port = side["weight_ports"]["weights0"]
    assert port["mem_cmd"]["valid"] == "weights0__mem_cmd__valid"
    assert port["mem_rsp"]["direction"] == "in" and port["mem_rsp"]["payload_width"] == 16
    assert port["memory"] == "spram" and port["words_per_image"] == 1024 * 40 // 2
    verilog = (tmp_path / "g" / "accel_top.v").read_text()
    assert "weights0__mem_rsp__payload" in verilog
    image = read_weight_image(tmp_path / "g" / "accel_weights.awi")
    assert image.word_width == 16 and image.flash_offset == flash_offset("icebreaker")
    assert len(image.payload) == 2 * port["words_per_image"]


def test_cli_stream_option():
    seed = str(SPECS / "seed_mnist_cnn.yaml")
    result = _cli("plan", seed, "--seed", 1, "--array", "4x8", "--board", "ulx3s-85f",
                  "--stream", "dense_1", "--json")
    assert result.exit_code == 0, result.output
    import json

    stages = json.loads(result.stdout)["stages"]
    assert [s["layer"] for s in stages if s["streamed"]] == ["dense", "dense_1"]
    for args, message in (
            (("--board", "ulx3s-85f", "--stream", "conv2d"),
             (r"^accel: error: .*--stream conv2d: only Dense layers can stream their weights "
              r"\(choose from dense, dense_1\)$")),
            (("--stream", "dense"), r"^accel: error: .*--stream dense: needs --board"),
            (("--board", "tangnano9k", "--stream", "dense"),
             (r"^accel: error: .*--board tangnano9k has no external memory to stream dense "
              r"from"))):
        result = _cli("plan", seed, "--seed", 1, *args)
        assert result.exit_code == 2, result.output
        import re

        assert re.match(message, result.stderr.strip()), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_seed_network_at_batch_4_and_16(seed_net):
    from dataclasses import replace

    from accel.plan.weights import check_batch_fits

    board = get_board("ulx3s-85f")
    one = make_plan(seed_net, 4, 8, weights=board.placement())
    for batch in (4, 16):
        placement = replace(board.placement(), batch=batch)
        plan = make_plan(seed_net, 4, 8, weights=placement)
        (stage,) = plan.streamed_stages
        ws = stage.streamed
        # Each frame of 200,704 words serves B images: the bandwidth bound per image drops
        # by B, and the convolutions bound the interval (conv2d_1 on the whole 4x8 array).
        assert ws.batch == plan.batch == batch and ws.words_per_image == 3136 * 128 // 2
        assert plan.stream_cycles == math.ceil(ws.words_per_image / (0.969 * batch))
        assert ws.bandwidth_cycles == plan.stream_cycles
        assert plan.interval_cycles == 112_896 < one.interval_cycles == 206_498
        assert plan.interval_bound.endswith("compute")
        # The buffers: B input vectors twice, B sum sets, the sums of two batches.
        inputs = ws.buffers[0]
        assert inputs.words == 2 * batch * stage.k_tiles
        assert all(m in stage.memories for m in ws.buffers)
        buffers = sum(m.blocks("ecp5") for m in ws.buffers)
        assert buffers > 0 and check_fit(plan, board).fits
        assert estimate(plan, board).resources["bram_blocks"].needed == plan.bram_blocks("ecp5")
        check_batch_fits(plan, placement)
        assert plan_dict(plan)["batch"] == batch
    placement = replace(board.placement(), batch=64)
    with pytest.raises(AccelError, match=r"^--batch 64: stage 2 \(dense\) buffers 64 images "
                                         r"in \d+ block RAMs; the plan needs \d+, more than "
                                         r"the 208 of --board ulx3s-85f$"):
        check_batch_fits(make_plan(seed_net, 4, 8, weights=placement), placement)
