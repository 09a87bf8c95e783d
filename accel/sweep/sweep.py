"""``accel sweep``: a model over array sizes (and nextpnr seeds) on one board.

Everything that can be wrong with the request (the model, the board, an array, a directory)
is checked here, before any point runs, and raised as one :class:`~accel.errors.AccelError`.
Then :mod:`.runner` runs the points (skipping those already finished in ``out_dir``) and
:mod:`.report` writes the CSV, JSON, Markdown report and plots.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections import Counter
from pathlib import Path

from ..errors import AccelError
from .points import ModelSource, PointJob, run_point, with_key
from .report import write_reports
from .runner import EventFn, run_points

DEFAULT_ARRAYS = "1x1,2x2,4x4,8x8"


def parse_arrays(text: str) -> list[tuple[int, int]]:
    """``"1x1,2x2,4x8"`` -> ``[(1, 1), (2, 2), (4, 8)]`` (duplicates dropped); one-line
    error otherwise."""
    from ..plan.plan import parse_array

    arrays = []
    for part in str(text).split(","):
        try:
            array = parse_array(part.strip())
        except AccelError:
            raise AccelError(f"--arrays must be a comma-separated list of ROWSxCOLS (e.g. "
                             f"{DEFAULT_ARRAYS}), not {text!r}") from None
        if array not in arrays:
            arrays.append(array)
    return arrays


def make_jobs(source: ModelSource, board_name: str, arrays: list[tuple[int, int]],
              out_dir: str | Path, *, seeds: int = 1, estimate_only: bool = False,
              clock_mhz: float | None = None, cache_dir: str | Path | None = None,
              clock_search: bool = False) -> tuple[list[PointJob], dict]:
    """The sweep's points with their content keys, and the sweep's description. Loads the
    model and plans every array here, so bad input fails before anything runs."""
    from ..synth.boards import get_board
    from ..synth.build import default_cache_dir
    from .points import point_plan

    board = get_board(board_name)
    if not estimate_only and not board.buildable:
        raise AccelError(f"--board {board.name} is {board.note}; use --estimate")
    if seeds < 1:
        raise AccelError(f"--seeds must be a positive integer, not {seeds!r}")
    if clock_mhz is not None and not clock_mhz > 0:
        raise AccelError(f"--clock must be a positive frequency in MHz, not {clock_mhz!r}")
    qnet = source.load()
    cache = str(Path(cache_dir) if cache_dir is not None else default_cache_dir())
    out = str(Path(out_dir).resolve())
    jobs = []
    for rows, cols in arrays:
        plan = point_plan(qnet, rows, cols, board)
        for seed in ([1] if estimate_only else range(1, seeds + 1)):
            job = PointJob(model=source, board=board.name, rows=rows, cols=cols, pnr_seed=seed,
                           clock_mhz=clock_mhz, estimate_only=estimate_only, out_dir=out,
                           cache_dir=cache, clock_search=clock_search and not estimate_only)
            jobs.append(with_key(job, qnet, plan))
    meta = {
        "model": qnet.name, "model_path": source.path, "scheme": qnet.scheme,
        "quantization": {"seed": source.seed, "calibration": source.calibration,
                         "scheme": source.scheme, "weight_bits": source.weight_bits,
                         "act_bits": source.act_bits},
        "board": board.name, "device": board.device, "family": board.family,
        "arrays": [f"{r}x{c}" for r, c in arrays],
        "seeds": [] if estimate_only else list(range(1, seeds + 1)),
        "clock_mhz": board.clock_mhz if clock_mhz is None else float(clock_mhz),
        "mode": "estimate" if estimate_only else "synth", "cache_dir": cache,
        "clock_search": clock_search and not estimate_only,
    }
    return jobs, meta


def run_sweep(source: ModelSource, board_name: str, arrays: list[tuple[int, int]],
              out_dir: str | Path, *, seeds: int = 1, estimate_only: bool = False,
              clock_mhz: float | None = None, jobs: int = 1, scheduler: str | None = None,
              cache_dir: str | Path | None = None, point_fn=run_point,
              on_event: EventFn | None = None, clock_search: bool = False) -> dict:
    """Run the sweep (see module doc) and write its reports; returns the results document
    (``meta``, ``points``, ``pareto``, ``estimate_error``, ``plots``, ``files``)."""
    started = time.perf_counter()
    if jobs < 1:
        raise AccelError(f"--jobs must be a positive integer, not {jobs!r}")
    if scheduler is not None and jobs != 1:
        raise AccelError("--jobs and --scheduler exclude each other: the cluster decides how "
                         "many points run at once")
    point_jobs, meta = make_jobs(source, board_name, arrays, out_dir, seeds=seeds,
                                 estimate_only=estimate_only, clock_mhz=clock_mhz,
                                 cache_dir=cache_dir, clock_search=clock_search)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AccelError(f"{out}: cannot create the output directory: "
                         f"{e.strerror or e}") from None
    records = run_points(point_jobs, out, workers=jobs, scheduler=scheduler,
                         point_fn=point_fn, on_event=on_event)
    meta.update(
        executor=(f"dask {scheduler}" if scheduler else
                  f"{jobs} local processes" if jobs > 1 else "in process"),
        status_counts=dict(Counter(r["status"] for r in records)),
        reused=sum(bool(r.get("reused")) for r in records),
        seconds=round(time.perf_counter() - started, 2),
        command=" ".join(shlex.quote(a) for a in ["accel", *sys.argv[1:]]),
    )
    from ..synth.build import toolchain_versions

    doc = {"format": "accel-sweep", "version": 1, "meta": meta,
           "toolchain": toolchain_versions(), "points": records}
    write_reports(doc, out)
    return doc
