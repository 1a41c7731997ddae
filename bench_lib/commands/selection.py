"""Options shared by `run`, `list` and `ab`: which cases, on what. An empty selection is bad input for all three."""

from __future__ import annotations

import argparse

from bench_lib.commands.errors import BadInput
from bench_lib.execution.session import PlannedCase, expand_suites, plan
from bench_lib.profiles import PROFILES
from bench_lib.suites import BACKENDS, suite_names

DEVICES = ("auto", "cpu", "cuda")


def add_selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default="all", help=f"one of {', '.join([*suite_names(), 'all'])} (default: all)")
    p.add_argument("--profile", default="quick", choices=list(PROFILES), help="how much to measure (default: quick)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto: cuda where visible, else cpu")
    p.add_argument("--backend", default="all", choices=BACKENDS, help="distributed backend filter (default: all)")
    p.add_argument("-k", dest="keyword", default=None, metavar="EXPR",
                   help="pytest-style expression over case ids, e.g. 'int8 and not prune'")


def planned_cases(args: argparse.Namespace) -> list[PlannedCase]:
    if args.suite not in (*suite_names(), "all"):
        raise BadInput(f"unknown suite {args.suite!r}; choose from {', '.join([*suite_names(), 'all'])}")
    try:
        cases = plan(expand_suites(args.suite), args.profile, args.device, args.backend, args.keyword)
    except ValueError as e:
        raise BadInput(str(e)) from None
    if not cases:
        what = f"-k {args.keyword!r} selects no case" if args.keyword else "no case selected"
        raise BadInput(f"{what} of --suite {args.suite} (profile {args.profile}, backend {args.backend}); "
                       "`effbench list` shows them")
    return cases
