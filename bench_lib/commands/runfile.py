"""`effbench run --config bench.toml`: a user's benchmark as a file kept beside their code.

The file names what a command line would (models, suites, techniques, batch sizes, devices, profile, processes,
eval text, ...); a flag given on the command line overrides the file's value. The file's text is stored verbatim
in the run's results (the run meta's `run_file`), and `effbench report` shows it.

    models = ["hf:./checkpoints/my-llama", "py:my_models.bench:build"]
    suites = ["inference"]
    techniques = ["fp32", "int8_dynamic", "structured"]
    batches = [1, 8]
    devices = ["cpu"]
    profile = "quick"
    processes = 2
    eval_text = "data/held_out.txt"
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_lib.commands.errors import BadInput
from bench_lib.commands.selection import DEFAULTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the tomli dependency of Python 3.10
    import tomli as tomllib

__all__ = ["RunFile", "load_run_file", "add_config_option", "with_run_file", "KEYS"]


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _ints(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


# key -> (argparse dest, check, what the check wants)
KEYS: dict[str, tuple[str, Any, str]] = {
    "models": ("models", _strings, "a list of strings (hf:DIR or py:package.module:factory)"),
    "suites": ("suite", lambda v: isinstance(v, str) or _strings(v), "a suite name or a list of them"),
    "techniques": ("techniques", _strings, "a list of technique names"),
    "batches": ("batches", _ints, "a list of integers"),
    "devices": ("devices", lambda v: _strings(v) and v, "a list of devices (auto, cpu, cuda)"),
    "profile": ("profile", lambda v: isinstance(v, str), "a string"),
    "processes": ("processes", lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "eval_text": ("eval_text", lambda v: isinstance(v, str), "a path"),
    "quality_target": ("quality_target", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
                       "a number (fraction of the reference's quality, e.g. 0.99)"),
    "keyword": ("keyword", lambda v: isinstance(v, str), "a -k expression"),
    "backend": ("backend", lambda v: isinstance(v, str), "a string"),
    "out": ("out", lambda v: isinstance(v, str), "a path"),
}
_PATHS = ("eval_text", "out")  # relative to the file's directory


@dataclass(frozen=True)
class RunFile:
    path: Path
    text: str  # verbatim, as stored with the results
    values: dict[str, Any]  # argparse dest -> value

    def meta(self) -> dict[str, str]:
        return {"path": str(self.path), "text": self.text}

    def apply(self, args: argparse.Namespace, given: set[str]) -> None:
        """Fill in the file's values for the options not given on the command line (`given`: their dests)."""
        for dest, value in self.values.items():
            if dest not in given:
                setattr(args, dest, value)


def load_run_file(path: Path) -> RunFile:
    """Read and check a run file: BadInput (one line) when it is missing, malformed or names unknown keys."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"--config {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"--config {path}: not valid TOML: {e}") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise BadInput(f"--config {path}: unknown key {unknown[0]!r}; known: {', '.join(KEYS)}")
    values = {}
    for key, value in data.items():
        dest, check, wanted = KEYS[key]
        if not check(value):
            raise BadInput(f"--config {path}: {key} must be {wanted}")
        if key in _PATHS:
            value = str(path.parent / Path(value).expanduser())  # an absolute path stays as it is
        elif key == "models":
            value = [_relative_model(v, path.parent) for v in value]
        elif key == "suites":
            value = value if isinstance(value, str) else ",".join(value)
        values[dest] = value
    return RunFile(path.resolve(), text, values)


def _relative_model(text: str, root: Path) -> str:
    """An `hf:` path in a run file is relative to the file's directory, as its other paths."""
    kind, sep, rest = text.partition(":")
    return f"hf:{root / Path(rest).expanduser()}" if kind == "hf" and sep and rest else text


def add_config_option(p: argparse.ArgumentParser) -> None:
    """`--config FILE`; the options a run file may set start unset, so that `with_run_file` sees which were given."""
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="a run file (TOML: models, suites, techniques, batches, devices, profile, processes, "
                        "eval_text, ...); flags given here override it, and `run` stores its text with the results")
    p.set_defaults(**{dest: None for dest, _, _ in KEYS.values()})


def with_run_file(args: argparse.Namespace) -> RunFile | None:
    """The options as the command line gives them, else as the run file does, else their defaults."""
    given = {dest for dest, _, _ in KEYS.values() if getattr(args, dest, None) is not None}
    if args.device is not None:
        given.add("devices")  # --device overrides the file's devices
    run_file = load_run_file(args.config) if args.config is not None else None
    if run_file is not None:
        run_file.apply(args, given)
    for dest, value in {**DEFAULTS, "out": "results"}.items():
        if getattr(args, dest, None) is None:
            setattr(args, dest, value)
    args.out = Path(args.out)
    return run_file
