"""`effbench list`: the cases a run would take, and which it would skip, with reasons."""

from __future__ import annotations

import argparse

from bench_lib.commands.runfile import add_config_option, with_run_file
from bench_lib.commands.selection import add_selection_options, planned_cases


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the cases a run would take")
    add_selection_options(p)
    add_config_option(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    with_run_file(args)
    cases = planned_cases(args)
    for planned in cases:
        status = f"skip: {planned.skip_reason}" if planned.skip_reason else "run"
        print(f"{planned.case.name}  [{status}]")
    runs = sum(1 for c in cases if not c.skip_reason)
    print(f"{len(cases)} cases: {runs} to run, {len(cases) - runs} skipped")
    return 0
