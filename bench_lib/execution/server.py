"""A long-lived measuring process for one side of an A/B job (importing torch is paid once).

Run as a script, not as a module: `python .../bench_lib/execution/server.py` with PYTHONPATH set to
the code under test, so that `bench_lib` below is that side's code (a git worktree of BASE or
NEW), while this file comes from the harness. It relies only on APIs every revision has:
`get_suite`, `CaseSpec.from_params`, `Suite.execute` (or `Suite.measure_round` where the revision
has it), `record_of`.

Protocol: one JSON request per stdin line, {"case": params, "profile": name}; one JSON result
record per line on the protocol channel (the original stdout). `effbench run`, whose servers run
the current code, may add "op": "characterize" to ask for `Suite.characterize` (the case's
metrics: memory, quality, evidence) instead of a round, or send {"op": "visit", "cases": [params,
...]} for `Suite.measure_visit`, answered by one line {"results": [record, ...]}. Anything the code under test
prints goes to stderr, so it cannot corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # library prints now land on stderr
    from bench_lib.results.case import CaseResult, CaseSpec, SkipCase
    try:
        from bench_lib.results.record import record_of
    except ImportError:  # a revision from before record.py: its store made the records
        from bench_lib.results.store import record_of
    from bench_lib.suites import failure_text, get_suite

    try:
        from bench_lib.execution.groups import measure_round
    except ImportError:  # a revision from before the one engine: its suites measured a round themselves

        def measure_round(suite, case, profile):
            return getattr(suite, "measure_round", suite.execute)(case, profile)

    channel.write(json.dumps({"ready": True, "bench_lib": os.path.dirname(sys.modules["bench_lib"].__file__)}) + "\n")
    channel.flush()
    suites: dict = {}  # one instance per suite, so that a suite can keep prepared cases between rounds
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "visit":
            cases = [CaseSpec.from_params(c) for c in request["cases"]]
            try:
                suite = suites.get(cases[0].suite) or suites.setdefault(cases[0].suite, get_suite(cases[0].suite))
                results = suite.measure_visit(cases, request["profile"])
            except Exception as e:  # noqa: BLE001 - a failing visit fails its cases, the server lives on
                results = [CaseResult.failed(c, failure_text(e)) for c in cases]
            channel.write(json.dumps({"results": [record_of(r) for r in results]}) + "\n")
            channel.flush()
            continue
        case = CaseSpec.from_params(request["case"])
        try:
            suite = suites.get(case.suite) or suites.setdefault(case.suite, get_suite(case.suite))
            if request.get("op") == "characterize":
                result = suite.characterize(case, request["profile"])
            else:
                result = measure_round(suite, case, request["profile"])
        except SkipCase as e:
            result = CaseResult.skipped(case, str(e) or "skipped")
        except Exception as e:  # noqa: BLE001 - a failing round is reported, the server lives on
            result = CaseResult.failed(case, failure_text(e))
        channel.write(json.dumps(record_of(result)) + "\n")
        channel.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
