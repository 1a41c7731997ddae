"""Launch one process per rank, stream rank 0's results, and turn any rank fault into failed results.

The ranks are children of the worker process and stay in its process group, so the runner's
own timeout (or Ctrl-C) still kills them all. Inside that, this launcher keeps a tighter watch:

- the rendezvous port is picked by binding to port 0, and if rank 0 finds it taken by the
  time it listens (EADDRINUSE), the launch is retried on a new port, a bounded number of times;
- rank 0 appends one JSON record per case to a file; a case that does not answer within its
  timeout is a hang, and a rank that exits non-zero is a crash: either way every rank is killed
  and reaped, the case becomes a failed result naming the rank, its exit and its log tail, and
  the remaining cases are relaunched on fresh ranks, so one fault costs one case.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.store import result_of

__all__ = ["PORT_BUSY_EXIT", "LaunchFailure", "PortBusy", "free_port", "launch_ranks", "run_cases"]

# Rank 0 exits with this status when the rendezvous port is taken (errno EADDRINUSE on Linux).
PORT_BUSY_EXIT = 98
TEARDOWN_S = 30.0
STARTUP_S = 90.0  # allowance for importing torch and the rendezvous, until a rank starts the first case
PORT_TRIES = 4
_POLL_S = 0.05
_TAIL = 1200


class LaunchFailure(Exception):
    """A rank crashed or hung; `done` results arrived before it. `active`: the last case (index in the
    launch) a rank said it started, where that is known; a suite whose cases take turns (training)
    announces each turn, so that the fault is laid at the case that was running."""

    def __init__(self, reason: str, done: int, active: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.done, self.active = reason, done, active


class PortBusy(LaunchFailure):
    """Rank 0 could not listen on the rendezvous port."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just called free. Another process may take it before rank 0 binds: that
    race is why a busy port is retried rather than trusted."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def describe_exit(code: int) -> str:
    if code < 0:
        return f"died of {signal.Signals(-code).name}"
    return f"exited with status {code}"


@dataclass
class _Ranks:
    """The rank processes of one launch and their logs."""

    procs: list[subprocess.Popen]
    logs: list[Path]
    logfiles: list = field(default_factory=list)

    def tail(self, rank: int) -> str:
        text = self.logs[rank].read_text(errors="replace") if self.logs[rank].exists() else ""
        return text[-_TAIL:].strip() or "(no output)"

    def started(self, rank: int) -> int:
        """The last case index this rank logged as started (rank.py's "case N start"), -1 if none."""
        text = self.logs[rank].read_text(errors="replace") if self.logs[rank].exists() else ""
        found = re.findall(r"\] case (\d+) start:", text)
        return int(found[-1]) if found else -1

    def active(self) -> int | None:
        """The last case any rank logged as started, None if none did."""
        last = max(self.started(r) for r in range(len(self.procs)))
        return last if last >= 0 else None

    def reap(self, grace_s: float = 2.0) -> None:
        """SIGTERM every live rank, SIGKILL what is left after grace_s, and wait for each."""
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + grace_s
        for p in self.procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self.logfiles:
            f.close()


def _spawn(argv: list[str], world_size: int, port: int, tmp: Path, env: dict[str, str] | None) -> _Ranks:
    ranks = _Ranks([], [])
    for rank in range(world_size):
        log = tmp / f"rank{rank}.log"
        f = open(log, "wb")
        rank_env = {**os.environ, **(env or {}), "RANK": str(rank), "LOCAL_RANK": str(rank),
                    "WORLD_SIZE": str(world_size), "LOCAL_WORLD_SIZE": str(world_size),
                    "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "PYTHONUNBUFFERED": "1"}
        ranks.procs.append(subprocess.Popen([sys.executable, *argv], stdin=subprocess.DEVNULL, stdout=f,
                                            stderr=subprocess.STDOUT, env=rank_env))
        ranks.logs.append(log)
        ranks.logfiles.append(f)
    return ranks


class _RecordTail:
    """Complete lines appended to rank 0's records file since the last read."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.partial = path, 0, b""

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        return [json.loads(line) for line in lines if line.strip()]


def launch_ranks(request: dict, world_size: int, case_timeouts: list[float], port: int,
                 env: dict[str, str] | None = None) -> Iterator[dict]:
    """Run `python -m bench_lib.execution.rank` on world_size ranks; yield rank 0's records.

    Raises PortBusy or LaunchFailure (with the count of records yielded); every rank is reaped
    before this generator ends, however it ends.
    """
    with tempfile.TemporaryDirectory(prefix="effbench-ranks-") as tmp_name:
        tmp = Path(tmp_name)
        req, records = tmp / "request.json", tmp / "records.jsonl"
        req.write_text(json.dumps(request))
        ranks = _spawn(["-m", "bench_lib.execution.rank", "--request", str(req), "--records", str(records)],
                       world_size, port, tmp, env)
        tail = _RecordTail(records)
        done, joined = 0, False
        try:
            deadline = time.monotonic() + STARTUP_S  # until a rank starts the first case
            while True:
                if not joined and any(ranks.started(r) >= 0 for r in range(world_size)):
                    joined, deadline = True, time.monotonic() + case_timeouts[0]
                for record in tail.read():
                    yield record
                    done += 1
                    joined = True
                    deadline = time.monotonic() + (case_timeouts[done] if done < len(case_timeouts) else TEARDOWN_S)
                codes = [p.poll() for p in ranks.procs]
                if all(c == 0 for c in codes):
                    for record in tail.read():
                        yield record
                        done += 1
                    if done < len(case_timeouts):
                        raise LaunchFailure(f"ranks exited after {done} of {len(case_timeouts)} cases", done)
                    return
                first = {r for r, c in enumerate(codes) if c not in (None, 0)}
                if first:
                    time.sleep(0.3)  # a peer's error follows within moments: report the cause first
                    for record in tail.read():
                        yield record
                        done += 1
                    codes = [p.poll() for p in ranks.procs]
                    bad = sorted(((r, c) for r, c in enumerate(codes) if c not in (None, 0)),
                                 key=lambda rc: (rc[0] not in first, rc[1] >= 0, rc[0]))
                    rank, code = bad[0]
                    if rank == 0 and code == PORT_BUSY_EXIT and done == 0:
                        raise PortBusy(f"rendezvous port {port} is busy", 0)
                    exits = "; ".join(f"rank {r} {describe_exit(c)}" for r, c in bad)
                    raise LaunchFailure(f"{exits}. Rank {rank}'s log tail:\n{ranks.tail(rank)}", done,
                                        ranks.active())
                if time.monotonic() > deadline:
                    if done == len(case_timeouts):
                        return  # every case answered, then a rank stuck in teardown: reaped below
                    where = "; ".join(f"rank {r} {'is in it' if ranks.started(r) >= done else 'never started it'}"
                                      for r in range(world_size))
                    tails = "\n".join(f"rank {r}: ...{ranks.tail(r)[-300:]}" for r in range(world_size))
                    waited = f"{case_timeouts[done]:.0f} s" if joined else f"{STARTUP_S:.0f} s of start-up"
                    raise LaunchFailure(f"timed out after {waited} (hung?): {where}; every rank "
                                        f"killed. Log tails:\n{tails}", done, ranks.active())
                time.sleep(_POLL_S)
        finally:
            ranks.reap()


def _launch_with_port_retry(request: dict, world_size: int, case_timeouts: list[float],
                            ports: Iterator[int], tries: int, env: dict[str, str] | None) -> Iterator[dict]:
    busy = []
    for _ in range(tries):
        port = next(ports, None)
        if port is None:
            break
        try:
            yield from launch_ranks(request, world_size, case_timeouts, port, env)
            return
        except PortBusy:
            busy.append(port)
    raise LaunchFailure(f"rendezvous failed: ports {', '.join(map(str, busy)) or '(none left)'} were busy "
                        f"({len(busy)} of {tries} tries)", 0)


def run_cases(cases: list[CaseSpec], profile: str, world_size: int, timeouts: list[float],
              ports: Iterable[int] | None = None, port_tries: int = PORT_TRIES,
              env: dict[str, str] | None = None) -> Iterator[CaseResult]:
    """One result per case. A fault fails the case it hit (the one a rank last started, if it had not
    answered yet; else the first unanswered), then the rest are relaunched."""
    port_iter = iter(ports) if ports is not None else iter(free_port, None)
    pending = list(zip(cases, timeouts, strict=True))
    barren, reason = 0, ""  # barren: launches in a row that failed before their first result
    while pending:
        if barren == 2:  # the ranks cannot start at all: fail the rest now rather than after every timeout
            for case, _ in pending:
                yield CaseResult.failed(case, f"not run: two launches in a row failed before any result; "
                                              f"the last one: {reason}")
            return
        todo = list(pending)
        request = {"cases": [c.as_params() for c, _ in todo], "profile": profile}
        started = time.perf_counter()
        try:
            for record in _launch_with_port_retry(request, world_size, [t for _, t in todo], port_iter, port_tries,
                                                  env):
                result = result_of(record, Path("<rank 0>"))
                yield result
                pending = [p for p in pending if p[0] != result.case]
                started = time.perf_counter()
        except LaunchFailure as e:
            if not pending:
                return  # every case answered; a rank failed afterwards (at teardown): the results stand
            active = todo[e.active] if e.active is not None and e.active < len(todo) else None
            hit = active if active in pending else pending[0]
            pending.remove(hit)
            yield CaseResult.failed(hit[0], e.reason, time.perf_counter() - started)
            barren, reason = (barren + 1 if e.done == 0 else 0), e.reason
