"""`effbench ab BASE NEW`: paired, interleaved A/B runs that hold on noisy machines.

Exit 0 when nothing regressed, 1 when a case is slower or newly failing, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from bench_lib.ab.job import CaseTrial, measure_energy, run_trials
from bench_lib.ab.report import outcome, store_sides, summary_markdown, write_verdicts
from bench_lib.ab.verdict import ABRule
from bench_lib.atomic import atomic_write_text
from bench_lib.commands.errors import BadInput
from bench_lib.commands.run_cmd import check_writable
from bench_lib.commands.selection import add_selection_options, planned_cases
from bench_lib.execution.pool import SideError, SidePool, resolve_side
from bench_lib.measure import energy
from bench_lib.results.store import new_run_dir, safe_label
from bench_lib.suites import get_suite

REGRESSIONS = ("slower", "failed")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ab", help="paired, interleaved A/B comparison of two revisions or interpreters")
    p.add_argument("base", metavar="BASE", help="git revision or Python interpreter of the baseline")
    p.add_argument("new", metavar="NEW", help="git revision or Python interpreter under test")
    add_selection_options(p)
    p.add_argument("--budget", type=float, default=10.0, metavar="MINUTES", help="time budget (default 10)")
    p.add_argument("--threshold", type=float, default=5.0, metavar="PCT",
                   help="smallest change that counts as a regression, percent (default 5)")
    p.add_argument("--min-pairs", type=int, default=8, help="pairs before a verdict (default 8)")
    p.add_argument("--servers-per-side", type=int, default=3, metavar="N",
                   help="measuring processes per side, each round drawn from them at random (default 3)")
    p.add_argument("--seed", type=int, default=None, help="seed of the random order (default: fresh)")
    p.add_argument("--out", default="results", type=Path, help="results root; a new job directory goes under it")
    p.add_argument("--summary", type=Path, default=None,
                   help="also append the markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY)")
    p.set_defaults(handler=handle, suite="inference")


def _progress(block: int, trials: list[CaseTrial]) -> None:
    counts: dict[str, int] = {}
    for t in trials:
        word = outcome(t)
        counts[word] = counts.get(word, 0) + 1
    print(f"block {block}: " + ", ".join(f"{n} {w}" for w, n in sorted(counts.items())), file=sys.stderr, flush=True)


def _has_energy_counter(case) -> bool:
    """Whether an energy window is worth asking for: an interleaved suite (its `characterize` measures
    one case, not a whole run) on a device whose energy counter can be read."""
    return get_suite(case.suite).INTERLEAVED and not isinstance(energy.counter_for(case.device), str)


def handle(args: argparse.Namespace) -> int:
    try:
        rule = ABRule(threshold=args.threshold / 100, min_pairs=args.min_pairs)
    except ValueError as e:
        raise BadInput(str(e)) from None
    if args.budget <= 0:
        raise BadInput(f"--budget must be positive minutes, got {args.budget}")
    planned = [p for p in planned_cases(args) if not p.skip_reason]
    if not planned:
        raise BadInput("no runnable case selected")
    check_writable(args.out)
    started = time.monotonic()
    with ExitStack() as stack:
        try:
            sides = {label: resolve_side(label, spec, stack, sys.executable)
                     for label, spec in (("base", args.base), ("new", args.new))}
        except SideError as e:
            raise BadInput(str(e)) from None
        if args.servers_per_side < 1:
            raise BadInput(f"--servers-per-side must be >= 1, got {args.servers_per_side}")
        servers = {label: SidePool(side, args.servers_per_side, None if args.seed is None else args.seed + i)
                   for i, (label, side) in enumerate(sides.items())}
        for server in servers.values():
            stack.callback(server.close)

        def measure(side: str, case, generation: int):
            timeout_s = get_suite(case.suite).timeout_s(case, args.profile)
            return servers[side].measure(case, args.profile, timeout_s, generation)

        def characterize(side: str, case, generation: int):
            timeout_s = get_suite(case.suite).timeout_s(case, args.profile)
            return servers[side].measure(case, args.profile, timeout_s, generation, op="characterize")

        trials = [CaseTrial(p.case) for p in planned]
        interrupted = False
        try:
            run_trials(trials, measure, rule, args.budget * 60, args.seed, _progress)
        except SideError as e:
            raise BadInput(str(e)) from None
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: servers and worktrees go with the stack, pairs stay
            interrupted = True
        if not interrupted:
            try:
                measure_energy(trials, characterize, _has_energy_counter)
            except KeyboardInterrupt:
                interrupted = True
        meta = {"base": {**sides["base"].describe(), "bench_lib": servers["base"].loaded_from},
                "new": {**sides["new"].describe(), "bench_lib": servers["new"].loaded_from},
                "budget_s": args.budget * 60, "elapsed_s": time.monotonic() - started, "seed": args.seed,
                "servers_per_side": args.servers_per_side, "interrupted": interrupted,
                "suite": args.suite, "profile": args.profile, "keyword": args.keyword}
    run_dir = new_run_dir(args.out, safe_label(f"ab-{args.suite}-{args.profile}"))
    store_sides(run_dir, trials, args.profile, {"suite": args.suite, "command": "effbench ab"},
                {k: meta[k] for k in ("base", "new")})
    write_verdicts(run_dir, trials, rule, meta)
    summary = summary_markdown(trials, rule, meta)
    atomic_write_text(run_dir / "ab-summary.md", summary)
    if args.summary:
        with open(args.summary, "a") as f:
            f.write(summary)
    print(summary)
    print(run_dir)
    if interrupted:
        print("effbench: interrupted (the pairs finished before it are kept)", file=sys.stderr)
        return 130
    return 1 if any(outcome(t) in REGRESSIONS for t in trials) else 0
