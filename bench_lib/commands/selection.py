"""Options shared by `run`, `list` and `ab`: which cases, on what. An empty selection is bad input for all three."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bench_lib.commands.errors import BadInput
from bench_lib.execution.session import PlannedCase, expand_suites, keyword_selector, plan
from bench_lib.profiles import PROFILES
from bench_lib.results.case import CaseSpec, Scalar
from bench_lib.suites import BACKENDS, suite_names

if TYPE_CHECKING:
    from bench_lib.workloads.user.spec import ModelSpec

DEVICES = ("auto", "cpu", "cuda")


#: The selection's defaults; `effbench run --config FILE` fills in the options not given on the command line first.
DEFAULTS: dict[str, object] = {"suite": "all", "profile": "quick", "device": "auto", "backend": "all", "keyword": None,
                               "models": None, "eval_text": None, "batches": None, "quality_target": None}


def add_selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", help=f"one of {', '.join([*suite_names(), 'all'])}, or several joined by commas "
                                   "(default: all)")
    p.add_argument("--profile", choices=list(PROFILES), help="how much to measure (default: quick)")
    p.add_argument("--device", choices=DEVICES, help="auto: cuda where visible, else cpu (default: auto)")
    p.add_argument("--backend", choices=BACKENDS, help="distributed backend filter (default: all)")
    p.add_argument("-k", dest="keyword", metavar="EXPR",
                   help="pytest-style expression over case ids, e.g. 'int8 and not prune'")
    p.add_argument("--model", dest="models", action="append", metavar="SPEC",
                   help="your own model instead of the built-in ones (repeatable): hf:DIR, a local transformers "
                        "checkpoint (safetensors), or py:package.module:factory, a callable returning a Workload")
    p.add_argument("--eval-text", metavar="FILE",
                   help="UTF-8 text that a user's language model is judged on (default: text shipped with Python)")
    p.add_argument("--batches", type=_batches, metavar="N,N",
                   help="batch sizes of a user's model's cases (default: the suite's)")
    p.add_argument("--quality-target", type=float, metavar="FRACTION",
                   help="the share of the reference's quality a user's compressed model must keep to pass "
                        "(default: 0.99)")
    p.set_defaults(**DEFAULTS)


def _batches(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected batch sizes like 1,8, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive, got {text!r}")
    return sizes


def resolve_models(texts: list[str] | None) -> tuple[ModelSpec, ...]:
    """The `--model` specs, checked before anything runs (`resolve_model`)."""
    if not texts:
        return ()
    from bench_lib.workloads.user.spec import resolve_models as resolve  # imports torch: only when a model is given

    try:
        return resolve(texts)
    except ValueError as e:
        raise BadInput(str(e)) from None


def model_params(args: argparse.Namespace) -> dict[str, Scalar]:
    """The params every case of a user's model carries (`workloads.user.MODEL_PARAMS`)."""
    params: dict[str, Scalar] = {}
    if args.eval_text is not None:
        path = Path(args.eval_text).expanduser().resolve()
        try:
            if not path.read_text(encoding="utf-8").strip():
                raise BadInput(f"--eval-text {args.eval_text}: the file holds no text")
        except (OSError, UnicodeDecodeError) as e:
            raise BadInput(f"--eval-text {args.eval_text}: {getattr(e, 'strerror', None) or e}") from None
        params["eval_text"] = str(path)
    if args.quality_target is not None:
        if not 0 < args.quality_target <= 1:
            raise BadInput(f"--quality-target must be a fraction in (0, 1], got {args.quality_target}")
        params["quality_target"] = float(args.quality_target)
    return params


def selected_suites(text: str) -> list[str]:
    """`--suite`: one name, `all`, or names joined by commas."""
    names: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part not in (*suite_names(), "all"):
            raise BadInput(f"unknown suite {part!r}; choose from {', '.join([*suite_names(), 'all'])}")
        names += expand_suites(part)
    if not names:
        raise BadInput("--suite names no suite")
    return list(dict.fromkeys(names))


def planned_cases(args: argparse.Namespace) -> list[PlannedCase]:
    for option, value, allowed in (("profile", args.profile, PROFILES), ("backend", args.backend, BACKENDS)):
        if value not in allowed:
            raise BadInput(f"unknown {option} {value!r}; choose from {', '.join(allowed)}")
    suites = selected_suites(args.suite)
    devices = getattr(args, "devices", None) or [args.device]
    bad = [d for d in devices if d not in DEVICES]
    if bad:
        raise BadInput(f"unknown device {bad[0]!r}; choose from {', '.join(DEVICES)}")
    models = resolve_models(args.models)
    params = model_params(args)
    if (params or args.batches) and not models:
        raise BadInput("--eval-text, --batches and --quality-target apply to a user's model: give one with --model")
    cases: dict[CaseSpec, PlannedCase] = {}
    try:
        select = keyword_selector(args.keyword)
        for device in devices:
            for planned in plan(suites, args.profile, device, args.backend, models=models, model_params=params,
                                batches=tuple(args.batches or ())):
                cases.setdefault(planned.case, planned)
    except ValueError as e:
        raise BadInput(str(e)) from None
    techniques = getattr(args, "techniques", None)  # a run file's
    if techniques:
        unmatched = sorted(set(techniques) - {c.variant for c in cases})
        if unmatched:
            raise BadInput(f"technique {unmatched[0]!r} names no case of --suite {args.suite}; `effbench list` "
                           "shows them")
    cases = {c: p for c, p in cases.items() if (not techniques or c.variant in techniques) and select(c)}
    if not cases:
        what = f"-k {args.keyword!r} selects no case" if args.keyword else "no case selected"
        raise BadInput(f"{what} of --suite {args.suite} (profile {args.profile}, backend {args.backend}); "
                       "`effbench list` shows them")
    return list(cases.values())
