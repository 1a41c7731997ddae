"""Launch one case in its own process, optimum-benchmark style, with JSON in and out.

A fresh process per case gives each its own peak-memory figure and contains crashes; its
own process group (new session) lets a timeout or Ctrl-C kill it and every child it
spawned (ranks of a distributed case) at once, so nothing is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.store import ResultFormatError, result_of

__all__ = ["run_isolated", "kill_group"]

_TAIL = 1500


def _signal_group(pgid: int, sig: int) -> bool:
    """Send sig to the group; False when no member is left."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def kill_group(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    """SIGTERM the whole process group, give it grace_s, then SIGKILL; reap the leader."""
    deadline = time.monotonic() + grace_s
    if _signal_group(proc.pid, signal.SIGTERM):
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader so that a zombie does not count as alive
            if not _signal_group(proc.pid, 0):
                break
            time.sleep(0.05)
        _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _describe_exit(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (killed: out of memory?)" if -code == signal.SIGKILL else ""
        return f"worker died of {name}{hint}"
    return f"worker exited with status {code}"


def _read_records(path: Path) -> list[CaseResult]:
    """Complete lines only: a line torn by a crash is dropped, its case then counts as missing."""
    results = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                results.append(result_of(json.loads(line), path))
            except (ValueError, ResultFormatError):
                continue
    return results


def run_isolated(cases: list[CaseSpec], profile: str, timeout_s: float, env: dict | None = None
                 ) -> list[CaseResult]:
    """Run a group of cases in one new process; every case ends as a CaseResult, never an exception.

    KeyboardInterrupt is the one exception let through, after the process group is killed.
    """
    with tempfile.TemporaryDirectory(prefix="effbench-") as tmp:
        spec, out, log = Path(tmp, "request.json"), Path(tmp, "results.jsonl"), Path(tmp, "log.txt")
        spec.write_text(json.dumps({"cases": [c.as_params() for c in cases], "profile": profile}))
        started = time.perf_counter()
        problem = None
        with open(log, "wb") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench_lib.execution.worker", str(spec), str(out)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, **(env or {})},
            )
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                problem = f"timed out after {timeout_s:.0f} s; killed"
            except BaseException:
                kill_group(proc)
                raise
            # Reap the whole group: a timed-out worker, or grandchildren a clean exit left behind.
            kill_group(proc, grace_s=3.0 if problem else 0.0)
        wall = time.perf_counter() - started
        results = {r.case: r for r in _read_records(out)}
        if problem is None and len(results) < len(cases):
            tail = log.read_text(errors="replace")[-_TAIL:].strip()
            problem = f"{_describe_exit(code)} before answering. Output tail:\n{tail}"
        return [results.get(c) or CaseResult.failed(c, problem or "no result", wall) for c in cases]
