"""Fixtures every test may use: a watchdog, seeds, build and cache directories.

- Watchdog (every test): a test still running after ``ACCEL_TEST_TIMEOUT`` seconds (default
  900; twice that for tests marked ``slow``) dumps every thread's traceback and ends the
  session, so a hung simulator or tool cannot stall CI silently.
- ``seed`` / ``rng``: a seed fixed per test (derived from its node id, or ``ACCEL_TEST_SEED``
  for all tests) and ``numpy.random.default_rng(seed)``; a failing test's report shows the
  seed, and ``ACCEL_TEST_SEED=N`` reruns with it.
- ``build_dir``: a fresh directory for a test's Verilog, Verilator builds and logs: under
  pytest's ``tmp_path``, or under ``$ACCEL_KEEP_BUILDS/<test name>`` to keep them.
- ``cache``: ``ACCEL_CACHE_DIR`` pointed at a fresh directory, so a test never reads builds
  that an earlier run (or test) left in the user's build cache.
- ``-n auto`` (the Makefile's default) starts one worker per CPU this process may really use
  (:func:`accel.machine.usable_cpus`: the affinity mask and cgroup quota, not the host's
  processor count that pytest-xdist reads through psutil), and no more than the memory holds.
"""

from __future__ import annotations

import faulthandler
import os
import re
import shutil
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from accel.machine import usable_cpus, usable_memory_bytes

#: Seconds a test may run before the watchdog ends the session.
TIMEOUT_S = float(os.environ.get("ACCEL_TEST_TIMEOUT", "900"))
SLOW_FACTOR = 2


_stderr: dict = {}

#: Memory one worker may need at its peak: a Verilator C++ build of a large test design beside
#: the worker's own numpy / TFLite interpreter state.
WORKER_MEMORY = 4 * 1024**3


def pytest_xdist_auto_num_workers(config):
    memory = usable_memory_bytes()
    by_memory = max(1, memory // WORKER_MEMORY) if memory else usable_cpus()
    return min(usable_cpus(), by_memory)


def pytest_configure(config):
    # The watchdog writes past pytest's output capture (which would swallow the traceback of
    # a session it ends): to the terminal's stream if capture saved it, else to fd 2.
    capture = config.pluginmanager.getplugin("capturemanager")
    saved = getattr(getattr(getattr(capture, "_global_capturing", None), "err", None),
                    "targetfd_save", None)
    _stderr["fd"] = os.dup(saved if isinstance(saved, int) else sys.__stderr__.fileno())


@pytest.fixture(autouse=True)
def watchdog(request):
    limit = TIMEOUT_S * (SLOW_FACTOR if request.node.get_closest_marker("slow") else 1)
    # faulthandler's dump names no test (and a CI log may keep only its tail): a timer a
    # second earlier writes the test's id first.
    message = (f"\nwatchdog: {request.node.nodeid} still running after {limit:.0f} s; "
               "dumping the tracebacks and ending this session (or xdist worker)\n").encode()
    herald = threading.Timer(max(limit - 1.0, 0.0), os.write, (_stderr["fd"], message))
    herald.daemon = True
    herald.start()
    faulthandler.dump_traceback_later(limit, exit=True, file=_stderr["fd"])
    try:
        yield limit
    finally:
        faulthandler.cancel_dump_traceback_later()
        herald.cancel()


@pytest.fixture
def seed(request) -> int:
    """The test's seed: ``ACCEL_TEST_SEED`` if set, else a stable hash of its node id."""
    env = os.environ.get("ACCEL_TEST_SEED")
    value = int(env) if env else zlib.crc32(request.node.nodeid.encode()) & 0x7FFF_FFFF
    request.node.user_properties.append(("seed", value))
    return value


@pytest.fixture
def rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    seeds = [value for name, value in item.user_properties if name == "seed"]
    if report.failed and seeds:
        text = f"seed {seeds[0]} (rerun with ACCEL_TEST_SEED={seeds[0]})"
        report.sections.append(("seed", text))
    return report


@pytest.fixture
def build_dir(request, tmp_path) -> Path:
    keep = os.environ.get("ACCEL_KEEP_BUILDS")
    if not keep:
        path = tmp_path / "build"
    else:
        path = Path(keep) / re.sub(r"[^\w.-]+", "_", request.node.nodeid)
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ACCEL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"
