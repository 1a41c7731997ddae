"""`effbench run`: measure the selected cases; the last line of stdout is the results directory."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench_lib.commands.errors import BadInput
from bench_lib.commands.runfile import add_config_option, with_run_file
from bench_lib.commands.selection import add_selection_options, planned_cases
from bench_lib.execution.run import execute_plan, plan_meta, plan_steps
from bench_lib.execution.session import RunSession, format_result_line
from bench_lib.profiles import interleave_plan


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run benchmark cases and store their results")
    add_selection_options(p)
    p.add_argument("--out", type=Path,
                   help="results root; a new run directory goes under it (default: results)")
    p.add_argument("--processes", type=int, default=None, metavar="N",
                   help="processes that interleaved suites (inference) measure each case in, round by round "
                        "(default: the profile's, 3)")
    add_config_option(p)
    p.set_defaults(handler=handle)


def check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".effbench-probe-"):
            pass
    except OSError as e:
        raise BadInput(f"cannot write results under --out {root}: {e.strerror or e}") from None


def handle(args: argparse.Namespace) -> int:
    run_file = with_run_file(args)
    cases = planned_cases(args)
    try:
        plan = interleave_plan(args.profile, args.processes,
                               gpu=any(p.case.device.startswith("cuda") and not p.skip_reason for p in cases))
    except ValueError as e:
        raise BadInput(str(e)) from None
    check_writable(args.out)
    meta = {"suite": args.suite, "device": args.device, "backend": args.backend, "keyword": args.keyword,
            "command": shlex.join(["effbench", *sys.argv[1:]]), "pid": os.getpid(), **plan_meta(plan),
            **({"devices": args.devices} if getattr(args, "devices", None) else {}),
            **({"models": list(args.models)} if args.models else {}),
            **({"run_file": run_file.meta()} if run_file else {})}
    session = RunSession.create(args.out, args.profile, meta)
    console = Console(stderr=True)
    failed = 0
    interrupted = False
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True)

    def show(result) -> None:
        nonlocal failed
        failed += result.status == "failed"
        progress.console.print(format_result_line(result), markup=False, highlight=False, soft_wrap=True)

    def step(text: str, n: int) -> None:
        progress.update(task, description=text[:60], advance=n)

    with progress:
        task = progress.add_task("effbench", total=plan_steps(cases, plan))
        try:
            execute_plan(session, cases, plan, show, step)
        except KeyboardInterrupt:
            interrupted = True
    ran = len(session.results)
    summary = f"{ran} of {len(cases)} cases done, {failed} failed"
    print(summary + (" (interrupted: finished results are kept)" if interrupted else ""), file=sys.stderr)
    print(session.run_dir)
    if interrupted:
        return 130
    return 1 if failed else 0
