"""`effbench project RUNS... --gpus 8,64,512`: scaling projection from measured collectives and training."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench_lib.atomic import atomic_write_text
from bench_lib.commands.errors import BadInput
from bench_lib.projection.project import Assumptions, project_collectives, project_runs
from bench_lib.projection.render import collectives_markdown, plot_efficiency, projection_markdown
from bench_lib.report.load import RUN_SPEC_HELP, load_spec
from bench_lib.report.reproduce import glossary_link
from bench_lib.results.store import ResultFormatError

NOTHING_TO_PROJECT = ("it needs collectives all_reduce results over at least two message sizes (and, to project "
                      "training, training results with `sync` and `nocomm` on the same backend)")


def _gpus(text: str) -> tuple[int, ...]:
    try:
        gpus = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gpus takes comma-separated integers, got {text!r}") from None
    if not gpus or min(gpus) < 1:
        raise argparse.ArgumentTypeError(f"--gpus must be positive, got {text!r}")
    return gpus


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("project", help="project step time and scaling efficiency to many GPUs")
    p.add_argument("runs", nargs="+", metavar="RUNS", help=RUN_SPEC_HELP)
    p.add_argument("--gpus", type=_gpus, default=(8, 64, 512), help="GPU counts (default 8,64,512)")
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--intra-bw", type=float, default=None, metavar="GBPS",
                   help="link bandwidth inside a node, GB/s (default: fitted from the run)")
    p.add_argument("--inter-bw", type=float, default=50.0, metavar="GBPS",
                   help="network bandwidth per GPU across nodes, GB/s (default 50: a 400 Gb/s NIC)")
    p.add_argument("--inter-latency", type=float, default=5.0, metavar="US", help="per inter-node hop (default 5)")
    p.add_argument("--out", type=Path, default=None, help="also write PROJECTION.md and a plot into this directory")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.gpus_per_node < 1 or args.inter_bw <= 0 or (args.intra_bw is not None and args.intra_bw <= 0):
        raise BadInput("--gpus-per-node, --intra-bw and --inter-bw must be positive")
    try:
        runs = [f for run in load_spec(*args.runs) for f in run.files]
    except ResultFormatError as e:
        raise BadInput(str(e)) from None
    a = Assumptions(args.gpus, args.gpus_per_node, args.intra_bw, args.inter_bw, args.inter_latency)
    projections = project_runs(runs, a)
    collectives = collectives_markdown(project_collectives(runs, a))
    if not projections and not collectives:
        raise BadInput(f"nothing to project in {' '.join(args.runs)}: {NOTHING_TO_PROJECT}")
    text = projection_markdown(projections, a) if projections else ""
    if collectives:
        text += ("\n" if text else "") + "## Collectives\n\n" + collectives
    print(text, end="")
    if args.out:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
            plot = plot_efficiency(projections, a, args.out / "projection_efficiency.png")
            body = text + (f"\n![scaling efficiency]({plot.name})\n" if plot else "")
            atomic_write_text(args.out / "PROJECTION.md",
                              f"# Scaling projection\n\nTerms: {glossary_link(args.out)}.\n\n" + body)
        except OSError as e:
            raise BadInput(f"cannot write to --out {args.out}: {e.strerror or e}") from None
    return 0
