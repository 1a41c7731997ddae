"""`effbench report RUNS... [--out DIR]`: README.md with tables and PNG plots of stored runs, and the same report
as one self-contained index.html beside it."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench_lib.commands.errors import BadInput
from bench_lib.report.html import write_page
from bench_lib.report.load import RUN_SPEC_HELP, load_spec
from bench_lib.report.markdown import build_report
from bench_lib.results.store import ResultFormatError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a markdown report with tables and plots of stored runs")
    p.add_argument("runs", nargs="+", metavar="RUNS", help=RUN_SPEC_HELP)
    p.add_argument("--out", type=Path, default=None,
                   help="report directory (default: reports/<name of the first run>)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        runs = load_spec(*args.runs)
    except ResultFormatError as e:
        raise BadInput(str(e)) from None
    out = args.out or Path("reports") / runs[0].name
    try:
        out.mkdir(parents=True, exist_ok=True)
        report = build_report(runs, out)
        write_page(report.readme)
    except OSError as e:
        raise BadInput(f"cannot write the report under --out {out}: {e.strerror or e}") from None
    print(report.readme)
    return 0
