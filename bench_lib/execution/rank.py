"""The rank entry point: the same code under effbench's launcher and under torchrun.

Under effbench's launcher (one process per rank, RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT set):

    python -m bench_lib.execution.rank --request REQUEST.json --records RECORDS.jsonl

Under torchrun, on one machine or several (rank 0 writes a results directory, as `effbench run`):

    torchrun --standalone --nproc-per-node 2 -m bench_lib.execution.rank --suite collectives --backend gloo
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 --rdzv-id job1 \\
        -m bench_lib.execution.rank --suite training --backend nccl --profile full

Fault injection for tests: EFFBENCH_FAULT="ACTION:RANK:TEXT[,...]" makes rank RANK kill itself (kill),
exit with status 3 (exit) or sleep for an hour (hang) just before each case whose id contains TEXT.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench_lib.execution.launcher import PORT_BUSY_EXIT
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.record import record_of
from bench_lib.suites import get_suite
from bench_lib.suites.distributed.base import DistributedSuite, RankContext

__all__ = ["main", "init_rank", "announce", "start_case"]


def _log(ctx_rank: int, text: str) -> None:
    print(f"[effbench rank {ctx_rank} pid {os.getpid()}] {text}", file=sys.stderr, flush=True)


def announce(rank: int, index: int, case: CaseSpec) -> None:
    """Log that this rank works on case `index` of its launch now: the launcher reads the last such line to
    tell a hang's case, and to lay a fault at the case that was running when cases take turns."""
    _log(rank, f"case {index} start: {case.id}")


def start_case(rank: int, index: int, case: CaseSpec) -> None:
    """`RankContext.on_case`: announce the case, then fire any fault injected for it."""
    announce(rank, index, case)
    inject_fault(case, rank)


def inject_fault(case: CaseSpec, rank: int) -> None:
    for spec in filter(None, os.environ.get("EFFBENCH_FAULT", "").split(",")):
        action, fault_rank, text = spec.split(":", 2)
        if int(fault_rank) == rank and text in case.id:
            _fault(action, case, rank)


def _fault(action: str, case: CaseSpec, rank: int) -> None:
    _log(rank, f"injected fault {action} before {case.id}")
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "exit":
        os._exit(3)
    elif action == "hang":
        time.sleep(3600)


def init_rank(backend: str, device_kind: str, timeout_s: float) -> RankContext:
    """Join the process group from the environment (env://, as torchrun sets it). A busy rendezvous port
    on rank 0 exits with PORT_BUSY_EXIT so that the launcher retries on another port."""
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    device = "cpu"
    kwargs = {}
    if device_kind == "cuda":
        index = local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        device = f"cuda:{index}"
        if backend == "nccl":
            kwargs["device_id"] = torch.device(device)
    else:
        # Ranks share the cores: one rank per core avoids oversubscription (2 ranks x 2 threads on 2 cores).
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // local_world))
    try:
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
    except dist.DistNetworkError as e:
        if "EADDRINUSE" in str(e) or "address already in use" in str(e):
            _log(rank, f"rendezvous port busy: {str(e).splitlines()[0]}")
            sys.exit(PORT_BUSY_EXIT)
        raise
    return RankContext(rank, world, local_rank, local_world, backend, device, on_case=partial(start_case, rank))


def run(suite: DistributedSuite, cases: list[CaseSpec], profile: str, emit: Callable[[CaseResult], None]) -> None:
    """Every rank runs every case; rank 0 emits. An exception ends the process (non-zero): ranks that
    disagree about a case cannot go on, so the launcher fails the case and relaunches the rest."""
    import torch.distributed as dist

    # Longer than the launcher's watch, so that a hang is reported by the launcher as a hang.
    timeout = 2 * max(suite.timeout_s(c, profile) for c in cases) + 30
    ctx = init_rank(suite.backend_of(cases[0]), "cuda" if cases[0].device.startswith("cuda") else "cpu", timeout)
    _log(ctx.rank, f"joined: {ctx}")
    try:
        ctx.on_case(0, cases[0])
        for i, result in enumerate(suite.run_on_rank(cases, profile, ctx)):
            if ctx.rank == 0:
                emit(result)
            _log(ctx.rank, f"case {i} done: {cases[i].id} ({result.status})")
            if i + 1 < len(cases):
                ctx.on_case(i + 1, cases[i + 1])
    finally:
        dist.destroy_process_group()


def _launched(args: argparse.Namespace) -> None:
    request = json.loads(Path(args.request).read_text())
    cases = [CaseSpec.from_params(c) for c in request["cases"]]
    suite = get_suite(cases[0].suite)
    with open(args.records, "a") as out:

        def emit(result: CaseResult) -> None:
            out.write(json.dumps(record_of(result)) + "\n")
            out.flush()
            os.fsync(out.fileno())

        run(suite, cases, request["profile"], emit)


def _under_torchrun(args: argparse.Namespace) -> None:
    """Plan as `effbench run` does, for this job's world size; rank 0 stores the results."""
    from bench_lib.execution.session import RunSession, plan

    os.environ.setdefault("EFFBENCH_WORLD_SIZE", os.environ["WORLD_SIZE"])
    planned = plan([args.suite], args.profile, args.device, args.backend, args.keyword)
    if not planned:
        raise SystemExit("no case selected")
    session = None
    if int(os.environ["RANK"]) == 0:
        session = RunSession.create(Path(args.out), args.profile, {
            "suite": args.suite, "device": args.device, "backend": args.backend, "keyword": args.keyword,
            "command": "torchrun ... -m bench_lib.execution.rank " + " ".join(sys.argv[1:]),
            "launcher": "torchrun"})
        for p in planned:
            if p.skip_reason:
                session.record(CaseResult.skipped(p.case, p.skip_reason))
    runnable = [p.case for p in planned if not p.skip_reason]
    suite = get_suite(args.suite)
    assert isinstance(suite, DistributedSuite)
    backends = sorted({suite.backend_of(c) for c in runnable})
    if len(backends) > 1:
        raise SystemExit(f"one backend per torchrun job: these cases need {' and '.join(backends)}; "
                         "pass --backend gloo or --backend nccl")
    if runnable:
        run(suite, runnable, args.profile, session.record if session else (lambda _: None))
    if session is not None:
        print(session.run_dir, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench_lib.execution.rank", description=__doc__.splitlines()[0])
    p.add_argument("--request", help="(effbench's launcher) the request JSON")
    p.add_argument("--records", help="(effbench's launcher) where rank 0 appends one JSON record per case")
    p.add_argument("--suite", choices=("collectives", "training"), default="collectives")
    p.add_argument("--profile", choices=("quick", "full"), default="quick")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--backend", choices=("gloo", "nccl", "all"), default="all")
    p.add_argument("-k", dest="keyword", default=None)
    p.add_argument("--out", default="results", help="results root (rank 0 creates a run directory under it)")
    args = p.parse_args(argv)
    if args.request:
        _launched(args)
    else:
        _under_torchrun(args)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Every record is written and fsynced, the process group destroyed: skip the interpreter's teardown
    # of torch (slow, and paid by every launch).
    os._exit(code)
