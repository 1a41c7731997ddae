"""The isolated worker: measures one case and always answers with a JSON record.

Usage: python -m bench_lib.runners.worker CASE_JSON RESULT_JSON

It writes a result record to RESULT_JSON in every outcome it survives (measured, skipped,
or failed with the traceback); the parent turns a silent death (OOM kill, segfault) into a
failed result from the exit status. Nothing is pickled.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from bench_lib.atomic import atomic_write_text
from bench_lib.results.case import CaseResult, CaseSpec, SkipCase
from bench_lib.results.store import record_of
from bench_lib.suites import get_suite


def _failure_text(exc: BaseException) -> str:
    """The error line first (what a table shows), then the traceback for the log."""
    head = f"{type(exc).__name__}: {exc}".strip()
    return head.splitlines()[0][:500] + "\n" + traceback.format_exc()[-4000:]


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    request = json.loads(spec_path.read_text())
    case = CaseSpec.from_params(request["case"])
    profile = request["profile"]
    started = time.perf_counter()
    try:
        result = get_suite(case.suite).execute(case, profile)
    except SkipCase as e:
        result = CaseResult.skipped(case, str(e) or "skipped")
    except Exception as e:  # noqa: BLE001 - any failure of a case becomes its failed result
        result = CaseResult.failed(case, _failure_text(e), time.perf_counter() - started)
    atomic_write_text(out_path, json.dumps(record_of(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
