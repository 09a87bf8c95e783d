"""One point of a sweep: plan, fit check, and either the estimate or a real build.

:func:`run_point` is the unit of work that local worker processes and Dask workers run. It
takes a :class:`PointJob` (plain, picklable data: the model's path and quantization options,
the board's name, the array, the nextpnr seed, directories) and returns a
:class:`SweepPoint` (frozen, picklable; ``to_json`` is its record). It never raises for a
point that does not fit or whose tools fail: those are results, recorded with their reason
(and the tool log), so one bad point cannot stop a sweep.

Statuses: ``ok``; ``timing-failed`` (built, but the post-route Fmax is below the clock: the
numbers are real, the design just needs a slower clock); ``no-fit`` (the fit check rejected
it, ``reason`` says why); ``failed`` (an exception in elaboration or the tools: ``reason`` is
its one-line message, ``log`` the copied tool log, ``log_tail`` its last lines).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import AccelError

#: Lines of a failed tool log kept in the point's record.
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class ModelSource:
    """Where a sweep's network comes from, as ``accel build``'s MODEL and options take it.

    Members
    -------
    path : str
        A ``.tflite``, an ``.npz`` from ``accel quantize``, or a spec / Keras file.
    seed : int or None
        Random weights from this seed.
    calibration : str or None
        Calibration inputs (``.npy``) for a trained Keras model.
    scheme, weight_bits, act_bits
        Quantization options (see ``accel quantize``).
    """

    path: str
    seed: int | None = None
    calibration: str | None = None
    scheme: str = "tflite-int8"
    weight_bits: int = 8
    act_bits: int = 8

    def load(self):
        """The :class:`~accel.quant.qnet.QuantizedNetwork` (memoized in each process)."""
        return _load(self)


@functools.lru_cache(maxsize=8)
def _load(source: ModelSource):
    from ..quant.load import load_quantized_model

    return load_quantized_model(source.path, seed=source.seed, calibration=source.calibration,
                                scheme=source.scheme, weight_bits=source.weight_bits,
                                act_bits=source.act_bits)


@dataclass(frozen=True)
class PointJob:
    """One point to evaluate.

    Members
    -------
    model : ModelSource
    board : str
        A board name from :mod:`accel.synth.boards`.
    rows, cols : int
        The largest array any stage may use.
    pnr_seed : int
        nextpnr's placement seed (unused with ``estimate_only``).
    clock_mhz : float or None
        Clock to meet; the board's oscillator if None.
    estimate_only : bool
        Plan, fit estimate and cycle model only; no synthesis.
    clock_search : bool
        Build at rising clocks from ``clock_mhz`` up to the fastest that meets timing
        (:mod:`.clock_search`); the record is that build's.
    out_dir : str
        The sweep directory: bitstreams go to ``builds/<name>/``, failed logs to ``logs/``.
    cache_dir : str or None
        The build cache (``accel build``'s); its default if None.
    key : str
        Content key of the point (:func:`point_key`); names its record.
    """

    model: ModelSource
    board: str
    rows: int
    cols: int
    pnr_seed: int = 1
    clock_mhz: float | None = None
    estimate_only: bool = False
    clock_search: bool = False
    out_dir: str = "."
    cache_dir: str | None = None
    key: str = ""

    @property
    def array(self) -> str:
        return f"{self.rows}x{self.cols}"

    @property
    def name(self) -> str:
        """``2x4`` (estimate) or ``2x4-s1`` (a build with nextpnr seed 1)."""
        return self.array if self.estimate_only else f"{self.array}-s{self.pnr_seed}"


@dataclass(frozen=True)
class SweepPoint:
    """The result of one point: what :func:`run_point` returns and ``points/<key>.json``
    holds (:meth:`to_json`, every member, None where a status has no value).

    Members
    -------
    key, name, array, rows, cols, array_pes, board, pnr_seed, mode
        The point (see :class:`PointJob`); ``mode`` is ``estimate`` or ``synth``.
    status : str
        ``ok``, ``timing-failed``, ``no-fit`` or ``failed`` (see the module doc).
    reason : str
        Why a point is ``no-fit`` or ``failed`` (one line); empty otherwise.
    model, scheme, family, device, pes, clock_mhz, interval_cycles, latency_cycles
        The network, the board and the plan's figures (None if planning failed).
    luts_available, ffs_available, dsps_available, brams_available : int or None
        The board's resources (a build's: as nextpnr reports them).
    est_luts, est_dsps, est_brams, est_inferences_per_s
        The fit estimate, and inferences/s at ``clock_mhz``.
    luts, ffs, dsps, brams, inferences_per_s
        Measured (a build) or estimated (``mode`` estimate) resources and throughput; for a
        build, ``inferences_per_s`` is at the post-route Fmax.
    fmax_mhz, timing_met, inferences_per_s_at_clock, tool_seconds, build_seconds, cached,
    cache_key, bitstream
        A build's figures and where its bitstream is.
    synthesis_reused : bool or None
        The build ran nextpnr on an earlier build's yosys output (another seed of the point).
    err_luts, err_dsps, err_brams, err_inferences_per_s : float or None
        ``(estimate - real) / real`` of a build.
    clock_search : list of dict or None
        With ``--clock-search``: every build tried (its clock, Fmax, whether it met timing).
    log, log_tail : str or None
        A failed point's copied tool log and its last lines.
    seconds : float
        Wall time of the point.
    finished_at : str
        Local time the point finished (ISO 8601, seconds).
    """

    key: str
    name: str
    array: str
    rows: int
    cols: int
    array_pes: int
    board: str
    pnr_seed: int | None
    mode: str
    status: str
    reason: str = ""
    model: str | None = None
    scheme: str | None = None
    family: str | None = None
    device: str | None = None
    pes: int | None = None
    clock_mhz: float | None = None
    interval_cycles: int | None = None
    latency_cycles: int | None = None
    luts_available: int | None = None
    ffs_available: int | None = None
    dsps_available: int | None = None
    brams_available: int | None = None
    est_luts: int | None = None
    est_dsps: int | None = None
    est_brams: int | None = None
    est_inferences_per_s: float | None = None
    luts: int | None = None
    ffs: int | None = None
    dsps: int | None = None
    brams: int | None = None
    inferences_per_s: float | None = None
    fmax_mhz: float | None = None
    timing_met: bool | None = None
    inferences_per_s_at_clock: float | None = None
    tool_seconds: float | None = None
    build_seconds: float | None = None
    cached: bool | None = None
    cache_key: str | None = None
    bitstream: str | None = None
    synthesis_reused: bool | None = None
    err_luts: float | None = None
    err_dsps: float | None = None
    err_brams: float | None = None
    err_inferences_per_s: float | None = None
    clock_search: list | None = None
    log: str | None = None
    log_tail: str | None = None
    seconds: float | None = None
    finished_at: str | None = None

    @classmethod
    def begin(cls, job: PointJob, **fields) -> SweepPoint:
        """A point of ``job`` with its identity filled in (status ``failed`` until set)."""
        identity = {"key": job.key, "name": job.name, "array": job.array, "rows": job.rows,
                    "cols": job.cols, "array_pes": job.rows * job.cols, "board": job.board,
                    "pnr_seed": None if job.estimate_only else job.pnr_seed,
                    "mode": "estimate" if job.estimate_only else "synth", "status": "failed"}
        return cls(**{**identity, **fields})

    def to_json(self) -> dict:
        """Every member, as plain JSON data."""
        return dataclasses.asdict(self)


def qnet_digest(qnet) -> str:
    """SHA-256 of a quantized network's contents (every array and parameter; not its
    ``source`` text, which only says where it came from)."""
    from ..quant.qnet import _layer_manifest

    arrays: dict[str, np.ndarray] = {}
    manifest = {"name": qnet.name, "scheme": qnet.scheme, "input_shape": list(qnet.input_shape),
                "input": qnet.input.to_json(),
                "layers": [_layer_manifest(layer, arrays) for layer in qnet.layers]}
    h = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


#: Plans this process made, by (network digest, array, board): a sweep plans each point when
#: it makes the jobs (for their keys) and again where the point runs, often this process.
_PLANS: dict[tuple, object] = {}
_PLANS_KEPT = 32


def point_plan(qnet, rows: int, cols: int, board):
    """The plan of a point on ``board``: for the board's memories, as ``accel plan --board``
    makes it (weights its block RAMs cannot hold stream from its external memory)."""
    from ..plan.plan import make_plan

    key = (qnet_digest(qnet), rows, cols, board.name)
    if key not in _PLANS:
        if len(_PLANS) >= _PLANS_KEPT:
            _PLANS.pop(next(iter(_PLANS)))
        _PLANS[key] = make_plan(qnet, rows, cols, weights=board.placement())
    return _PLANS[key]


def point_key(job: PointJob, qnet, plan) -> str:
    """The content key of ``job``, correct by construction: it hashes what the point's record
    is computed from rather than a list of source files. That is the record's planning and
    estimate part itself (:func:`_planned`: the quantized network's digest, the plan, the fit
    estimate and the fit check's verdict, as the current code computes them), and for a point
    that is built, the build cache's key (:func:`accel.synth.build.cache_key`: the digest of
    the elaborated design, constraints and script, and the toolchain versions). An edit
    anywhere (``quant/numerics.py``, ``spec/shapes.py``, the generator) that changes any of
    these changes the key; one that changes none of them keeps the finished point.

    A built point costs one elaboration here (the design's Verilog), as the build does."""
    from ..plan.plan import plan_dict
    from ..synth.boards import get_board

    board = get_board(job.board)
    base, est = _planned(job, qnet, plan, board)
    content = {"record": base, "plan": plan_dict(plan), "qnet": qnet_digest(qnet),
               "estimate": _jsonable(est), "clock_mhz": job.clock_mhz,
               # only when set, so that the keys of plain points stay as they were
               **({"clock_search": True} if job.clock_search else {})}
    if not job.estimate_only and est.fits and board.buildable:
        from ..synth.build import cache_key, prepare, weight_clock

        try:
            # The clock the build runs at and its PLL (a streamed plan's SDRAM clock is the
            # PLL's second output at that clock), as accel.synth.build.build elaborates it.
            clock, pll = weight_clock(board, plan, base["clock_mhz"])
            build_plan, options = prepare(qnet, plan, board, clock_mhz=clock,
                                          seed=job.pnr_seed, pll=pll)
            content["build"] = cache_key(build_plan, board, options)
        except Exception as e:  # the point runs and records the failure (failed: not final)
            content["build"] = f"elaboration failed: {type(e).__name__}: {e}"
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()
                          ).hexdigest()[:24]


def with_key(job: PointJob, qnet, plan) -> PointJob:
    return replace(job, key=point_key(job, qnet, plan))


def _jsonable(value):
    """``value`` as plain JSON data (a typed result through its ``to_json``)."""
    return value.to_json() if hasattr(value, "to_json") else value


def _planned(job: PointJob, qnet, plan, board) -> tuple[dict, object]:
    """The part of a point's record that needs no tools (identity, plan figures, estimate,
    and for a point that cannot fit the fit check's reason), and the fit estimate."""
    from ..synth.fit import check_fit, estimate

    clock = board.clock_mhz if job.clock_mhz is None else float(job.clock_mhz)
    record: dict = {
        "name": job.name, "array": job.array, "rows": job.rows,
        "cols": job.cols, "array_pes": job.rows * job.cols, "board": job.board,
        "pnr_seed": None if job.estimate_only else job.pnr_seed,
        "mode": "estimate" if job.estimate_only else "synth",
        "model": qnet.name, "scheme": qnet.scheme, "family": board.family,
        "device": board.device, "pes": plan.pes, "clock_mhz": clock,
        "interval_cycles": plan.interval_cycles, "latency_cycles": plan.latency_cycles,
        "luts_available": board.luts, "ffs_available": board.ffs,
        "dsps_available": board.dsps, "brams_available": board.bram_blocks,
    }
    est = estimate(plan, board)
    record.update(_estimate_fields(est, plan, clock))
    if not est.fits:
        try:
            check_fit(plan, board)
            record["reason"] = "the fit estimate exceeds the board"
        except AccelError as e:
            record["reason"] = str(e)
    return record, est


def _estimate_fields(est, plan, clock: float) -> dict:
    needs = est.resources
    return {
        "est_luts": needs["luts"].needed, "est_dsps": needs["multipliers"].needed,
        "est_brams": needs["bram_blocks"].needed,
        "est_inferences_per_s": clock * 1e6 / plan.interval_cycles,
    }


def _copy_log(message: str, job: PointJob, text: str | None = None) -> tuple[str | None, str]:
    """Keep the tool log of a failed point in ``logs/<name>.log`` (the build's work directory
    is wiped by the next attempt); returns its path and tail. ``text`` (a traceback) is
    written instead when the message names no log."""
    logs = Path(job.out_dir) / "logs"
    target = logs / f"{job.name}.log"
    found = re.search(r"full log in (\S+)", message)
    try:
        logs.mkdir(parents=True, exist_ok=True)
        if found and Path(found.group(1)).exists():
            shutil.copyfile(found.group(1), target)
        elif text is not None:
            target.write_text(text)
        else:
            return None, ""
        lines = target.read_text(errors="replace").splitlines()
    except OSError:
        return None, ""
    return str(target), "\n".join(lines[-LOG_TAIL_LINES:])


def _build(*args, **kwargs) -> dict:
    """:func:`accel.synth.build.build`'s report as JSON data (an indirection the tests
    replace)."""
    from ..synth.build import build

    return build(*args, **kwargs).to_json()


def run_point(job: PointJob, progress: Callable[[str], None] | None = None) -> SweepPoint:
    """Evaluate one point (see module doc). ``progress`` receives build stage names."""
    from ..synth.boards import get_board

    started = time.perf_counter()
    record: dict = {}

    def finish(status: str, **fields) -> SweepPoint:
        record.update(fields, status=status, seconds=round(time.perf_counter() - started, 2),
                      finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        return SweepPoint.begin(job, **record)

    try:
        qnet = job.model.load()
        board = get_board(job.board)
        plan = point_plan(qnet, job.rows, job.cols, board)
        planned, est = _planned(job, qnet, plan, board)
        record.update(planned)
        if not est.fits:
            return finish("no-fit")
        if job.estimate_only:
            return finish("ok", luts=record["est_luts"], dsps=record["est_dsps"],
                          brams=record["est_brams"],
                          inferences_per_s=record["est_inferences_per_s"])
        def build_at(clock_mhz):
            return _build(qnet, plan, board, Path(job.out_dir) / "builds" / job.name,
                          clock_mhz=clock_mhz, seed=job.pnr_seed, cache_dir=job.cache_dir,
                          progress=progress or (lambda stage: None))

        if job.clock_search:
            from .clock_search import search_clock

            report = search_clock(build_at, board, start_mhz=job.clock_mhz, plan=plan)
        else:
            report = build_at(job.clock_mhz)
    except AccelError as e:
        log, tail = _copy_log(str(e), job)
        return finish("failed", reason=str(e), log=log, log_tail=tail)
    except Exception as e:  # a bug or a tool crash: record it, let the other points run
        message = " ".join(f"{type(e).__name__}: {e}".split())
        log, tail = _copy_log(message, job, traceback.format_exc())
        return finish("failed", reason=message, log=log, log_tail=tail)
    util = report["utilization"]
    fields = {resource: util[resource]["used"] for resource in ("luts", "ffs", "dsps", "brams")}
    fmax = report["fmax_mhz"]
    fields.update(
        fmax_mhz=fmax, timing_met=report["timing_met"],
        inferences_per_s=report["inferences_per_s_at_fmax"],
        inferences_per_s_at_clock=report["inferences_per_s_at_clock"],
        tool_seconds=report["tool_seconds"], build_seconds=report["seconds"],
        # the clock the design runs at (a PLL's nearest output, or what the search found)
        clock_mhz=report.get("clock_mhz", record["clock_mhz"]),
        **({"clock_search": report["clock_search"]} if "clock_search" in report else {}),
        cached=report["cached"], cache_key=report["cache_key"], bitstream=report["bitstream"],
        synthesis_reused=report.get("synthesis_reused"),
        # nextpnr may report the die's capacity rather than the data sheet's (ULX3S 12F)
        luts_available=util["luts"]["available"], dsps_available=util["dsps"]["available"],
        brams_available=util["brams"]["available"], ffs_available=util["ffs"]["available"])
    for resource in ("luts", "dsps", "brams"):
        real = fields[resource]
        fields[f"err_{resource}"] = (record[f"est_{resource}"] - real) / real if real else None
    # The estimate assumes the design runs at the requested clock.
    fields["err_inferences_per_s"] = (record["est_inferences_per_s"] / fields["inferences_per_s"]
                                      - 1 if fields["inferences_per_s"] else None)
    return finish("ok" if report["timing_met"] else "timing-failed", **fields)
