"""`effbench history RUNS... [--out DIR] [--threshold PCT]`: trends per case over stored runs and the
commits where they changed, as markdown, PNG plots and a static HTML page; for the cases' times and for
the techniques' paired speedups over their baselines in the same run, where the runs stored them.

Exit 0, or 2 on bad input. A change in the history is news, not a verdict on the newest commit:
that is `effbench compare` and `effbench ab`'s job, so history never fails a build.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench_lib.commands.errors import BadInput
from bench_lib.history.render import build_page
from bench_lib.history.series import histories
from bench_lib.report.compare import DEFAULT_THRESHOLD
from bench_lib.report.load import RUN_SPEC_HELP, load_spec
from bench_lib.results.store import ResultFormatError

DEFAULT_OUT = Path("reports") / "history"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="trends per case over stored runs, and the commits where they changed")
    p.add_argument("runs", nargs="+", metavar="RUNS", help=RUN_SPEC_HELP)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"directory for README.md, index.html and the plots (default {DEFAULT_OUT})")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD * 100, metavar="PCT",
                   help=f"smallest change in %% that counts (default {DEFAULT_THRESHOLD * 100:g}%%)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not 0 < args.threshold < 1000:
        raise BadInput(f"--threshold must be a percentage between 0 and 1000, got {args.threshold:g}")
    try:
        found = histories(load_spec(*args.runs), args.threshold / 100)
    except ResultFormatError as e:
        raise BadInput(str(e)) from None
    if not found:
        raise BadInput(f"no measured case in {' '.join(args.runs)}: nothing to chart")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        page = build_page(found, args.out, args.threshold / 100)
    except OSError as e:
        raise BadInput(f"cannot write the history under --out {args.out}: {e.strerror or e}") from None
    print(page.summary, end="")
    print(page.index)
    return 0
