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
from bench_lib.commands.selection import add_selection_options, planned_cases
from bench_lib.execution.session import PlannedCase, RunSession, format_result_line, launch_groups
from bench_lib.profiles import interleave_plan
from bench_lib.suites import get_suite


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run benchmark cases and store their results")
    add_selection_options(p)
    p.add_argument("--out", default="results", type=Path, help="results root; a new run directory goes under it")
    p.add_argument("--processes", type=int, default=None, metavar="N",
                   help="processes that interleaved suites (inference) measure each case in, round by round "
                        "(default: the profile's, 3)")
    p.set_defaults(handler=handle)


def check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".effbench-probe-"):
            pass
    except OSError as e:
        raise BadInput(f"cannot write results under --out {root}: {e.strerror or e}") from None


def _by_suite(cases: list[PlannedCase]) -> list[tuple[str, list[PlannedCase]]]:
    out: dict[str, list[PlannedCase]] = {}
    for planned in cases:
        out.setdefault(planned.case.suite, []).append(planned)
    return list(out.items())


def handle(args: argparse.Namespace) -> int:
    cases = planned_cases(args)
    try:
        plan = interleave_plan(args.profile, args.processes)
    except ValueError as e:
        raise BadInput(str(e)) from None
    check_writable(args.out)
    meta = {"suite": args.suite, "device": args.device, "backend": args.backend, "keyword": args.keyword,
            "command": shlex.join(["effbench", *sys.argv[1:]]), "pid": os.getpid(),
            "interleave": {"processes": plan.processes, "rounds_per_process": plan.rounds_per_process}}
    session = RunSession.create(args.out, args.profile, meta)
    console = Console(stderr=True)
    failed = 0
    interrupted = False
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True)
    suites = _by_suite(cases)
    interleaved = {name for name, _ in suites if get_suite(name).INTERLEAVED}
    steps = sum(len(c) + (1 + plan.processes * plan.rounds_per_process) * sum(not p.skip_reason for p in c)
                if name in interleaved else len(c) for name, c in suites)

    def show(result) -> None:
        nonlocal failed
        failed += result.status == "failed"
        progress.console.print(format_result_line(result), markup=False, highlight=False, soft_wrap=True)

    def step(text: str, n: int) -> None:
        progress.update(task, description=text[:60], advance=n)

    with progress:
        task = progress.add_task("effbench", total=steps)
        try:
            for name, suite_cases in suites:
                if name in interleaved:
                    step(f"{name}: {plan.processes} processes", len(suite_cases))
                    for result in session.execute_interleaved(suite_cases, plan, step):
                        show(result)
                    continue
                for group in launch_groups(suite_cases):
                    step(group[0].case.id, 0)
                    for result in session.execute(group):
                        show(result)
                        progress.advance(task)
        except KeyboardInterrupt:
            interrupted = True
    ran = len(session.results)
    summary = f"{ran} of {len(cases)} cases done, {failed} failed"
    print(summary + (" (interrupted: finished results are kept)" if interrupted else ""), file=sys.stderr)
    print(session.run_dir)
    if interrupted:
        return 130
    return 1 if failed else 0
