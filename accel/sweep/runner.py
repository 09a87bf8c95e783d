"""Run a sweep's points in this process, in local worker processes, or on a Dask cluster.

Every finished point is written at once, atomically (a temporary file renamed into place), to
``DIR/points/<key>.json``, where ``key`` is the point's content key. Before running anything
the runner reads those records back: a point already finished (``ok``, ``timing-failed`` or
``no-fit``) is not run again, so a repeated sweep returns at once and a sweep killed half way
resumes where it stopped, losing at most the points that were running. Points that ``failed``
are run again (a tool crash may not repeat).

Three executors, one contract (``point_fn(job) -> SweepPoint``, see :mod:`.points`); the
records (``SweepPoint.to_json``, plus ``reused``) are what the reports and the CLI read:

- ``workers == 1``: in this process, one point after another (build stages are reported);
- ``workers > 1``: a :class:`concurrent.futures.ProcessPoolExecutor` of spawned processes,
  given at most ``workers`` points at a time so that "running" means running;
- ``scheduler``: a :class:`distributed.Client` connected to that address (``tcp://host:8786``)
  runs every point on the cluster's workers. They need ``accel`` installed and the model, the
  sweep directory and the build cache at the same paths (a shared file system) for the
  bitstreams and logs to land here; the records themselves come back over the wire.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from ..atomic import atomic_write
from ..errors import AccelError
from .points import PointJob, SweepPoint, run_point

#: Statuses that are final: a point with one of these is never run again.
FINAL = ("ok", "timing-failed", "no-fit")

#: How long to try reaching a ``--scheduler`` before giving up.
CONNECT_TIMEOUT = "10s"

#: ``on_event(job, event, record)``: event is ``cached`` (a finished record was found),
#: ``queued``, ``running``, ``stage:<name>`` (in-process builds only) or ``done``.
EventFn = Callable[[PointJob, str, "dict | None"], None]


def points_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "points"


def load_record(out_dir: str | Path, key: str) -> dict | None:
    """The finished record of point ``key``, or None (missing or unreadable: run it again)."""
    path = points_dir(out_dir) / f"{key}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("key") == key else None


def save_record(out_dir: str | Path, record: dict) -> Path:
    """Write ``record`` to ``points/<key>.json`` atomically: a reader (or a resumed sweep)
    sees the old file or the whole new one, never half of one."""
    directory = points_dir(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{record['key']}.json"
    atomic_write(target, json.dumps(record, indent=1) + "\n")
    return target


def _crashed(job: PointJob, error: BaseException) -> SweepPoint:
    """The result of a point whose worker died or whose function raised."""
    return SweepPoint.begin(job, reason=" ".join(f"{type(error).__name__}: {error}".split()),
                            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))


def run_points(jobs: list[PointJob], out_dir: str | Path, *, workers: int = 1,
               scheduler: str | None = None, point_fn: Callable[[PointJob], SweepPoint] = run_point,
               on_event: EventFn | None = None) -> list[dict]:
    """Run every job not already finished in ``out_dir``; returns the records in job order.
    Each record has ``reused`` set when it was read back instead of run."""
    if workers < 1:
        raise AccelError(f"--jobs must be a positive integer, not {workers!r}")
    event = on_event or (lambda job, name, record: None)
    records: dict[str, dict] = {}
    todo = []
    for job in jobs:
        record = load_record(out_dir, job.key)
        if record is not None and record.get("status") in FINAL:
            records[job.key] = {**record, "reused": True}
            event(job, "cached", records[job.key])
        else:
            todo.append(job)
            event(job, "queued", None)

    def finished(job: PointJob, point: SweepPoint) -> None:
        record = {**point.to_json(), "key": job.key}
        save_record(out_dir, record)
        records[job.key] = {**record, "reused": False}
        event(job, "done", records[job.key])

    if todo:
        if scheduler is not None:
            _run_dask(todo, scheduler, point_fn, finished, event)
        elif workers > 1:
            _run_pool(todo, workers, point_fn, finished, event)
        else:
            _run_serial(todo, point_fn, finished, event)
    return [records[job.key] for job in jobs]


def _run_serial(todo, point_fn, finished, event) -> None:
    for job in todo:
        event(job, "running", None)

        def stage(name: str, job=job) -> None:
            event(job, f"stage:{name}", None)

        if point_fn is run_point:
            record = run_point(job, progress=stage)
        else:
            record = point_fn(job)
        finished(job, record)


def _run_pool(todo, workers, point_fn, finished, event) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # Spawned workers: forking a process that may hold threads (rich's refresh thread) is
    # unsafe, and spawn behaves the same on every platform.
    context = multiprocessing.get_context("spawn")
    pending = list(todo)
    running = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        try:
            while pending or running:
                while pending and len(running) < workers:
                    job = pending.pop(0)
                    running[pool.submit(point_fn, job)] = job
                    event(job, "running", None)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    try:
                        record = future.result()
                    except Exception as e:  # the worker died (BrokenProcessPool) or raised
                        record = _crashed(job, e)
                    finished(job, record)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _run_dask(todo, scheduler, point_fn, finished, event) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:  # pragma: no cover - a dependency
        raise AccelError("--scheduler needs dask.distributed (pip install "
                         "'dask[distributed]')") from None
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as e:
        raise AccelError(f"--scheduler {scheduler}: cannot connect: {e}") from None
    with client:
        futures = {}
        for job in todo:
            # pure=False: every submission runs (the sweep, not Dask, decides what is done)
            futures[client.submit(point_fn, job, pure=False, retries=0)] = job
            event(job, "running", None)
        try:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    record = future.result()
                except Exception as e:  # the task raised or its worker was lost
                    record = _crashed(job, e)
                finished(job, record)
        except BaseException:
            client.cancel(list(futures))
            raise
