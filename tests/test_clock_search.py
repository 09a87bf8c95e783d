"""``accel sweep --clock-search`` (accel/sweep/clock_search.py) against a stand-in build whose
Fmax depends on the clock asked for, as nextpnr's does."""

from __future__ import annotations

import pytest

from accel.errors import AccelError
from accel.sweep import points as points_module
from accel.sweep import run_sweep
from accel.sweep.clock_search import fastest_clock_below, search_clock
from accel.synth.boards import get_board
from accel.synth.build import board_clock

from .test_sweep import ARRAYS, DIGITS_POW2

ULX3S = get_board("ulx3s-85f")
ICEBREAKER = get_board("icebreaker")


def fake_build(board, fmax_of):
    """A build at ``clock``: the PLL's real clock, and Fmax ``fmax_of(real clock)``."""
    calls = []

    def build_at(requested):
        clock, pll = board_clock(board, requested)
        fmax = fmax_of(clock)
        calls.append(clock)
        return {"clock_mhz": clock, "fmax_mhz": fmax, "timing_met": fmax >= clock,
                "pll": pll.to_json() if pll else None}

    return build_at, calls


def test_fastest_clock_below():
    assert fastest_clock_below(ULX3S, 92.05) == pytest.approx(91.666667)  # 25 * 11 / 3
    assert fastest_clock_below(ULX3S, 100) == 100
    assert fastest_clock_below(ICEBREAKER, 32.3) == pytest.approx(32.25)  # 12 * 86 / 32
    # below the iCE40 PLL's 16 MHz minimum only the oscillator is slower
    assert fastest_clock_below(ICEBREAKER, 15) == 12
    for limit in (10.5, 33.3, 47.0, 88.8, 133.0):
        clock = fastest_clock_below(ULX3S, limit)
        assert clock <= limit
    with pytest.raises(AccelError, match=r"^a clock limit must be positive, not 0$"):
        fastest_clock_below(ULX3S, 0)


def test_search_climbs_to_the_fastest_clock_that_meets():
    # Fmax rises a little with the constraint (nextpnr works harder), and saturates.
    build_at, calls = fake_build(ULX3S, lambda clock: min(90 + 0.1 * clock, 99.5))
    report = search_clock(build_at, ULX3S)
    tried = report["clock_search"]
    assert calls[0] == 25 and tried[0] == {"requested_mhz": 25.0, "clock_mhz": 25.0,
                                           "fmax_mhz": 92.5, "timing_met": True}
    # 25 MHz: Fmax 92.5 -> 91.67 (25 * 11 / 3): 99.17 -> 96.875 (25 * 31 / 8): 99.5, and
    # 96.875 is still the fastest clock the EHXPLLL makes below 99.5
    assert [t["clock_mhz"] for t in tried] == pytest.approx([25, 91.666667, 96.875])
    assert all(t["timing_met"] for t in tried)
    assert report["clock_mhz"] == 96.875 == fastest_clock_below(ULX3S, 99.5)


def test_search_steps_down_when_the_fmax_drops():
    # Asked for more, the design gets slower (a congested placement): the search keeps the
    # best build that met.
    build_at, calls = fake_build(ULX3S, lambda clock: 95.0 if clock < 90 else 85.0)
    report = search_clock(build_at, ULX3S, start_mhz=50)
    assert calls == [50, 95, 85]
    assert report["timing_met"] and report["clock_mhz"] == 85
    assert [t["timing_met"] for t in report["clock_search"]] == [True, False, True]


def test_search_reports_the_last_build_when_nothing_meets():
    build_at, calls = fake_build(ICEBREAKER, lambda clock: 10.0)
    report = search_clock(build_at, ICEBREAKER, start_mhz=30)
    assert not report["timing_met"]
    assert calls == [30, 12]  # then the oscillator, the slowest clock there is
    assert len(report["clock_search"]) == 2


def test_sweep_clock_search_records_the_found_clock(tmp_path, cache, monkeypatch):
    def build(qnet, plan, board, out_dir, **kwargs):
        clock, pll = board_clock(board, kwargs["clock_mhz"])
        fmax = 80.0 + 10 * plan.max_rows
        util = {"luts": 1000 * plan.pes, "ffs": 900, "dsps": 2 * plan.pes, "brams": 4}
        return {"utilization": {k: {"used": v, "available": 10_000} for k, v in util.items()},
                "clock_mhz": clock, "fmax_mhz": fmax, "timing_met": fmax >= clock,
                "inferences_per_s_at_fmax": fmax * 1e6 / plan.interval_cycles,
                "inferences_per_s_at_clock": clock * 1e6 / plan.interval_cycles,
                "tool_seconds": 1.0, "seconds": 1.0, "cached": False, "cache_key": "k",
                "bitstream": str(out_dir)}

    monkeypatch.setattr(points_module, "_build", build)
    doc = run_sweep(DIGITS_POW2, "ulx3s-85f", ARRAYS[:2], tmp_path, clock_search=True)
    assert doc["meta"]["clock_search"] is True
    for point, fmax in zip(doc["points"], (90.0, 100.0), strict=True):
        assert point["status"] == "ok"
        assert point["clock_mhz"] == fastest_clock_below(ULX3S, fmax)
        assert point["clock_search"][0]["clock_mhz"] == 25
    # a plain sweep of the same points has other keys: nothing is reused across the two
    plain = run_sweep(DIGITS_POW2, "ulx3s-85f", ARRAYS[:2], tmp_path)
    assert plain["meta"]["reused"] == 0
    assert all(p["clock_mhz"] == 25 for p in plain["points"])
