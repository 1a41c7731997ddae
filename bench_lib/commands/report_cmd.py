"""`effbench report RUN_DIR... [--out DIR]`: README.md with tables and PNG plots of stored runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench_lib.commands.errors import BadInput
from bench_lib.report.load import group_runs
from bench_lib.report.markdown import build_report
from bench_lib.results.store import ResultFormatError, load_runs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a markdown report with tables and plots of stored runs")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories or result files")
    p.add_argument("--out", type=Path, default=None,
                   help="report directory (default: reports/<name of the first run>)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        runs = group_runs(load_runs(args.runs))
    except ResultFormatError as e:
        raise BadInput(str(e)) from None
    out = args.out or Path("reports") / runs[0].name
    try:
        out.mkdir(parents=True, exist_ok=True)
        report = build_report(runs, out)
    except OSError as e:
        raise BadInput(f"cannot write the report under --out {out}: {e.strerror or e}") from None
    print(report.readme)
    return 0
