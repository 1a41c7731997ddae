"""`effbench compare BASE NEW [--threshold PCT] [--out FILE]`: regression verdicts between stored runs.

With --out, the markdown is also written as a self-contained page beside it (`report.html.page_path`).

Exit 0 when nothing regressed, 1 when a case is slower or newly failing, 2 on bad input.
This is the only place where verdicts become an exit status.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench_lib.atomic import atomic_write_text
from bench_lib.commands.errors import BadInput
from bench_lib.report.compare import DEFAULT_THRESHOLD, compare_runs
from bench_lib.report.html import write_page
from bench_lib.report.load import RUN_SPEC_HELP, Run, load_spec
from bench_lib.report.render_compare import render_comparison
from bench_lib.results.store import ResultFormatError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare two sets of runs: ratios, 95%% intervals, verdicts")
    for side in ("BASE", "NEW"):
        p.add_argument(side.lower(), metavar=side,
                       help=RUN_SPEC_HELP + " (several runs: between-run noise is measured)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD * 100, metavar="PCT",
                   help=f"smallest change in %% that counts (default {DEFAULT_THRESHOLD * 100:g}%%)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="write the markdown here, not to stdout, and the same as a self-contained page beside it "
                        "(index.html beside a README.md, NAME.html beside NAME.md)")
    p.set_defaults(handler=handle)


def _commit(run: Run) -> str:
    c = run.commit
    return str(c.get("id") or "?")[:10] + ("+dirty" if c.get("dirty") else "")


def handle(args: argparse.Namespace) -> int:
    if not 0 < args.threshold < 1000:
        raise BadInput(f"--threshold must be a percentage between 0 and 1000, got {args.threshold:g}")
    try:
        base, new = load_spec(args.base), load_spec(args.new)
    except ResultFormatError as e:
        raise BadInput(str(e)) from None
    cmp = compare_runs([r.results for r in base], [r.results for r in new], args.threshold / 100,
                       [r.environment for r in base], [r.environment for r in new])
    if not any(v.estimate or v.kind == "failed" for v in cmp.verdicts):
        raise BadInput("BASE and NEW have no measured case in common: nothing to compare")
    text = render_comparison(cmp, [r.name for r in base], [r.name for r in new],
                             [_commit(r) for r in base], [_commit(r) for r in new])
    if args.out:
        try:
            atomic_write_text(args.out, text)
            write_page(args.out, "effbench compare")
        except OSError as e:
            raise BadInput(f"cannot write --out {args.out}: {e.strerror or e}") from None
    else:
        print(text, end="")
    return 1 if cmp.regressions else 0
