"""One point of a sweep: plan, fit check, and either the estimate or a real build.

:func:`run_point` is the unit of work that local worker processes and Dask workers run. It
takes a :class:`PointJob` (plain, picklable data: the model's path and quantization options,
the board's name, the array, the nextpnr seed, directories) and returns a plain,
JSON-ready dict. It never raises for a point that does not fit or whose tools fail: those are
results, recorded with their reason (and the tool log), so one bad point cannot stop a sweep.

Statuses: ``ok``; ``timing-failed`` (built, but the post-route Fmax is below the clock: the
numbers are real, the design just needs a slower clock); ``no-fit`` (the fit check rejected
it, ``reason`` says why); ``failed`` (an exception in elaboration or the tools: ``reason`` is
its one-line message, ``log`` the copied tool log, ``log_tail`` its last lines).
"""

from __future__ import annotations

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

#: Sources whose change must invalidate finished points: the generator, the planner, and the
#: fit model, board registry and build flow of the self-test top that sweeps build (not the
#: UART top's). The quantized network itself is hashed by content.
_SOURCES = ("hw/*.py", "plan/*.py", "synth/build.py", "synth/fit.py", "synth/boards.py",
            "synth/top.py")
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


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """SHA-256 of the generator, planner and build-flow sources (:data:`_SOURCES`), so a
    point built by older code is never served as a result of the current code."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pattern in _SOURCES:
        for path in sorted(root.glob(pattern)):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def point_key(job: PointJob, qnet, plan) -> str:
    """The content key of ``job``: the quantized network, the plan, the board and options,
    the toolchain versions and the sources (see :func:`source_digest`)."""
    from ..plan.plan import plan_dict
    from ..synth.build import toolchain_versions

    content = {
        "qnet": qnet_digest(qnet), "plan": plan_dict(plan), "board": job.board,
        "array": job.array, "clock_mhz": job.clock_mhz, "estimate_only": job.estimate_only,
        "pnr_seed": None if job.estimate_only else job.pnr_seed,
        "toolchain": None if job.estimate_only else toolchain_versions(),
        "sources": source_digest(),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:24]


def with_key(job: PointJob, qnet, plan) -> PointJob:
    return replace(job, key=point_key(job, qnet, plan))


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
    """:func:`accel.synth.build.build` (an indirection the tests replace)."""
    from ..synth.build import build

    return build(*args, **kwargs)


def run_point(job: PointJob, progress: Callable[[str], None] | None = None) -> dict:
    """Evaluate one point (see module doc). ``progress`` receives build stage names."""
    from ..plan.plan import make_plan
    from ..synth.boards import get_board
    from ..synth.fit import check_fit, estimate

    started = time.perf_counter()
    record: dict = {
        "key": job.key, "name": job.name, "array": job.array, "rows": job.rows,
        "cols": job.cols, "array_pes": job.rows * job.cols, "board": job.board,
        "pnr_seed": None if job.estimate_only else job.pnr_seed,
        "mode": "estimate" if job.estimate_only else "synth", "status": "failed", "reason": "",
    }

    def finish(status: str, **fields) -> dict:
        record.update(fields, status=status, seconds=round(time.perf_counter() - started, 2),
                      finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        return record

    try:
        qnet = job.model.load()
        board = get_board(job.board)
        plan = make_plan(qnet, job.rows, job.cols)
        clock = board.clock_mhz if job.clock_mhz is None else float(job.clock_mhz)
        record.update(model=qnet.name, scheme=qnet.scheme, family=board.family,
                      device=board.device, pes=plan.pes, clock_mhz=clock,
                      interval_cycles=plan.interval_cycles, latency_cycles=plan.latency_cycles,
                      luts_available=board.luts, ffs_available=board.ffs,
                      dsps_available=board.dsps, brams_available=board.bram_blocks)
        est = estimate(plan, board)
        record.update(_estimate_fields(est, plan, clock))
        if not est.fits:
            try:
                check_fit(plan, board)
                reason = "the fit estimate exceeds the board"
            except AccelError as e:
                reason = str(e)
            return finish("no-fit", reason=reason)
        if job.estimate_only:
            return finish("ok", luts=record["est_luts"], dsps=record["est_dsps"],
                          brams=record["est_brams"],
                          inferences_per_s=record["est_inferences_per_s"])
        report = _build(qnet, plan, board, Path(job.out_dir) / "builds" / job.name,
                        clock_mhz=job.clock_mhz, seed=job.pnr_seed, cache_dir=job.cache_dir,
                        progress=progress or (lambda stage: None))
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
        cached=report["cached"], cache_key=report["cache_key"], bitstream=report["bitstream"],
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
