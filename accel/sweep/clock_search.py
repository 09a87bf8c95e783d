"""``accel sweep --clock-search``: the highest clock the board's PLL makes at which a design
meets timing.

nextpnr's Fmax depends on the clock it is asked to meet (it works harder on a tighter
constraint), so the search builds rather than extrapolates: build at the first clock; then
at the fastest clock the PLL makes that is not above the Fmax just measured; repeat while
that is a clock not tried yet and above the best one that met, at most ``max_builds`` builds.
Every build goes through the build cache, so a repeated search costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import AccelError
from ..synth.boards import Board
from ..synth.build import board_clock, weight_clock

__all__ = ["fastest_clock_below", "search_clock"]


def fastest_clock_below(board: Board, limit_mhz: float, plan=None) -> float:
    """The fastest clock ``board`` makes (its PLL's outputs, or the oscillator) that is at
    most ``limit_mhz``; the oscillator when nothing slower is possible. With ``plan``, the
    clocks its build can run at (:func:`~accel.synth.build.weight_clock`: a plan streaming
    from the SDRAM has the memory's PLL, whose outputs differ)."""
    if not limit_mhz > 0:
        raise AccelError(f"a clock limit must be positive, not {limit_mhz!r}")
    request = limit_mhz
    for _ in range(200):
        clock, _ = (board_clock(board, request) if plan is None
                    else weight_clock(board, plan, request))
        if clock <= limit_mhz + 1e-9:
            return clock
        # the nearest setting lies above: ask again just below the limit, by what it missed
        request -= max(clock - limit_mhz, limit_mhz * 1e-3)
        if request <= 0:
            break
    return board.clock_mhz


def search_clock(build_at: Callable[[float], dict], board: Board, *,
                 start_mhz: float | None = None, max_builds: int = 4, plan=None) -> dict:
    """Search (see module doc) with ``build_at(clock_mhz) -> report`` (a build report as
    JSON data: ``clock_mhz``, ``fmax_mhz``, ``timing_met``). Returns the report of the fastest
    build that met timing (or of the last one, if none did) with ``clock_search``: every
    build's requested clock, real clock, Fmax and verdict, in order. ``plan``: the clocks
    are those its builds can run at (:func:`fastest_clock_below`)."""
    if max_builds < 1:
        raise AccelError(f"max_builds must be a positive integer, not {max_builds!r}")
    clock = board.clock_mhz if start_mhz is None else start_mhz
    tried: list[dict] = []
    best = last = None
    for _ in range(max_builds):
        report = build_at(clock)
        last = report
        tried.append({"requested_mhz": clock, "clock_mhz": report["clock_mhz"],
                      "fmax_mhz": report["fmax_mhz"], "timing_met": report["timing_met"]})
        if report["timing_met"] and (best is None or report["clock_mhz"] > best["clock_mhz"]):
            best = report
        if not report["fmax_mhz"]:
            break
        nxt = fastest_clock_below(board, report["fmax_mhz"], plan)
        if any(abs(nxt - t["clock_mhz"]) < 1e-9 for t in tried) or (
                best is not None and nxt <= best["clock_mhz"]):
            break
        clock = nxt
    chosen = best if best is not None else last
    return {**chosen, "clock_search": tried}
