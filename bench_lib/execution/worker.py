"""The isolated worker: measures a group of cases and answers with one JSON line per case.

Usage: python -m bench_lib.execution.worker REQUEST_JSON RESULTS_JSONL

Each result is appended and flushed as soon as it exists, so the parent keeps every case
finished before a crash or a timeout; the cases with no line become failed results there.
Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench_lib.execution.groups import measure_group
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.record import record_of
from bench_lib.suites import failure_text, get_suite


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text())
    cases = [CaseSpec.from_params(c) for c in request["cases"]]
    done = 0
    with open(argv[1], "a") as out:

        def emit(result: CaseResult) -> None:
            out.write(json.dumps(record_of(result)) + "\n")
            out.flush()
            os.fsync(out.fileno())

        try:
            for result in measure_group(get_suite(cases[0].suite), cases, request["profile"]):
                emit(result)
                done += 1
        except Exception as e:  # noqa: BLE001 - a broken group fails its remaining cases, with the error
            error = failure_text(e)
            for case in cases[done:]:
                emit(CaseResult.failed(case, error))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
