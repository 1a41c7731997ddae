"""Options shared by `run`, `list` and `ab`: which cases, on what. An empty selection is bad input for all three."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench_lib.commands.errors import BadInput
from bench_lib.execution.session import PlannedCase, expand_suites, plan
from bench_lib.profiles import PROFILES
from bench_lib.suites import BACKENDS, suite_names
from bench_lib.workloads.user.spec import ModelSpec, check_model, parse_model

DEVICES = ("auto", "cpu", "cuda")


def add_selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default="all", help=f"one of {', '.join([*suite_names(), 'all'])} (default: all)")
    p.add_argument("--profile", default="quick", choices=list(PROFILES), help="how much to measure (default: quick)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto: cuda where visible, else cpu")
    p.add_argument("--backend", default="all", choices=BACKENDS, help="distributed backend filter (default: all)")
    p.add_argument("-k", dest="keyword", default=None, metavar="EXPR",
                   help="pytest-style expression over case ids, e.g. 'int8 and not prune'")
    p.add_argument("--model", dest="models", action="append", default=None, metavar="SPEC",
                   help="your own model instead of the built-in ones (repeatable): hf:DIR, a local transformers "
                        "checkpoint (safetensors), or py:package.module:factory, a callable returning a Workload")
    p.add_argument("--eval-text", default=None, type=Path, metavar="FILE",
                   help="UTF-8 text that a user's language model is judged on (default: text shipped with Python)")


def importable_from_cwd() -> None:
    """A `py:` model's module is imported from the directory effbench was started in, here and in every
    process the run starts (they inherit PYTHONPATH)."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if cwd not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [cwd, *paths]))


def resolve_models(texts: list[str] | None) -> tuple[ModelSpec, ...]:
    """The `--model` specs, checked before anything runs; an `hf:` path is made absolute, since the run's
    processes need not start in this directory."""
    specs = []
    for text in texts or ():
        try:
            spec = parse_model(text)
            if spec.kind == "hf":
                spec = parse_model(f"hf:{spec.target}")
            else:
                importable_from_cwd()
            check_model(spec)
        except ValueError as e:
            raise BadInput(str(e)) from None
        specs.append(spec)
    return tuple(dict.fromkeys(specs))


def model_params(args: argparse.Namespace) -> dict[str, str]:
    """The params every case of a user's model carries (`workloads.user.MODEL_PARAMS`)."""
    eval_text = getattr(args, "eval_text", None)
    if eval_text is None:
        return {}
    path = Path(eval_text).expanduser().resolve()
    try:
        if not path.read_text(encoding="utf-8").strip():
            raise BadInput(f"--eval-text {eval_text}: the file holds no text")
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"--eval-text {eval_text}: {getattr(e, 'strerror', None) or e}") from None
    return {"eval_text": str(path)}


def planned_cases(args: argparse.Namespace) -> list[PlannedCase]:
    if args.suite not in (*suite_names(), "all"):
        raise BadInput(f"unknown suite {args.suite!r}; choose from {', '.join([*suite_names(), 'all'])}")
    models = resolve_models(getattr(args, "models", None))
    params = model_params(args)
    if params and not models:
        raise BadInput("--eval-text judges a user's model: give one with --model")
    try:
        cases = plan(expand_suites(args.suite), args.profile, args.device, args.backend, args.keyword,
                     models=models, model_params=params)
    except ValueError as e:
        raise BadInput(str(e)) from None
    if not cases:
        what = f"-k {args.keyword!r} selects no case" if args.keyword else "no case selected"
        raise BadInput(f"{what} of --suite {args.suite} (profile {args.profile}, backend {args.backend}); "
                       "`effbench list` shows them")
    return cases
