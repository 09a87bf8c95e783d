"""Runs hostile CLI cases in one process under a 1 GB address-space limit.

``python -m tests.hostile.worker CASES.json RESULTS.json``: each case is ``{"id", "argv",
"timeout"}``; every case runs through click's ``CliRunner`` (in this process, so the imports are
paid once) with a ``SIGALRM`` deadline, and its exit code, stdout, stderr, seconds and any
escaped exception are written to RESULTS.json. The caller sets ``RLIMIT_AS`` (see
:func:`tests.hostile.harness.run_cases`), so a case that tries to allocate more than the limit
fails here with ``MemoryError`` and is reported, not swapped.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import traceback


class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` swallows it."""


def _alarm(signum, frame):
    raise CaseTimeout()


def main() -> None:
    from click.testing import CliRunner

    from accel.cli import main as accel_main

    cases = json.loads(open(sys.argv[1]).read())
    signal.signal(signal.SIGALRM, _alarm)
    results = []
    for case in cases:
        start = time.monotonic()
        record = {"id": case["id"]}
        signal.alarm(int(case.get("timeout", 20)))
        try:
            r = CliRunner().invoke(accel_main, case["argv"], catch_exceptions=True)
            record.update(exit_code=r.exit_code, stdout=r.stdout[-2000:],
                          stderr=r.stderr[-4000:])
            if r.exception is not None and not isinstance(r.exception, SystemExit):
                record["exception"] = "".join(traceback.format_exception(
                    type(r.exception), r.exception, r.exception.__traceback__))[-3000:]
        except CaseTimeout:
            record.update(exit_code=None, stdout="", stderr="", timeout=True)
        finally:
            signal.alarm(0)
        record["seconds"] = time.monotonic() - start
        results.append(record)
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
