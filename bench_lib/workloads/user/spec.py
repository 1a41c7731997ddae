"""What a user names as their model, `hf:PATH` or `py:package.module:factory`, and the checks made before anything runs.

Parsing is pure; `check_model` reads the checkpoint directory (or imports the module) so that a spec that cannot
work is refused with one line while nothing has been measured yet.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["ModelSpec", "parse_model", "check_model", "resolve_model", "resolve_models", "import_factory",
           "HF_EXTRA", "TOKENIZER_FILES"]

HF_EXTRA = "install the hf extra: pip install 'effbench[hf]'"
#: A tokenizer needs one of these beside config.json (a fast tokenizer's JSON, or a slow one's vocabulary).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model")
_FACTORY = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


@dataclass(frozen=True)
class ModelSpec:
    """A user's model as given on the command line (or in a run file)."""

    text: str  # as given, "hf:PATH" or "py:pkg.mod:factory"
    kind: Literal["hf", "py"]
    target: str  # absolute path, or "pkg.mod:factory"
    name: str  # case-id-safe name (a directory's basename, or the factory's name)


def _safe(name: str) -> str:
    """A name that a case id (and `-k`) can carry: letters, digits, `_` and `.` only."""
    return re.sub(r"[^A-Za-z0-9_.]+", "_", name).strip("_") or "model"


def parse_model(text: str) -> ModelSpec:
    """`hf:PATH` (a local checkpoint directory) or `py:package.module:factory`; ValueError (one line) otherwise."""
    kind, sep, rest = text.partition(":")
    if sep and kind == "hf" and rest.strip():
        path = os.path.abspath(os.path.expanduser(rest))
        return ModelSpec(text, "hf", path, _safe(Path(path).name))
    if sep and kind == "py" and _FACTORY.match(rest):
        return ModelSpec(text, "py", rest, _safe(rest.rpartition(":")[2]))
    raise ValueError(f"--model {text!r}: expected hf:PATH (a local transformers checkpoint directory) or "
                     "py:package.module:factory")


def _architectures(spec: ModelSpec, config: dict) -> None:
    """The config's model type (and architecture classes, where named) must be known to this transformers."""
    if importlib.util.find_spec("transformers") is None:
        raise ValueError(f"--model {spec.text}: transformers is not installed; {HF_EXTRA}")
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise ValueError(f"--model {spec.text}: config.json's model_type {model_type!r} is not an architecture "
                         f"transformers {transformers.__version__} knows")
    unknown = [a for a in config.get("architectures") or [] if not hasattr(transformers, str(a))]
    if unknown:
        raise ValueError(f"--model {spec.text}: config.json names architecture {unknown[0]!r}, which transformers "
                         f"{transformers.__version__} does not have")


def _check_hf(spec: ModelSpec) -> None:
    root = Path(spec.target)
    if not root.is_dir():
        raise ValueError(f"--model {spec.text}: no such directory {root}")
    if not os.access(root, os.R_OK | os.X_OK):
        raise ValueError(f"--model {spec.text}: directory {root} is not readable")
    config_path = root / "config.json"
    if not config_path.is_file():
        raise ValueError(f"--model {spec.text}: {root} has no config.json (not a transformers checkpoint)")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"--model {spec.text}: cannot read {config_path}: {e}") from None
    if not isinstance(config, dict):
        raise ValueError(f"--model {spec.text}: {config_path} is not a JSON object")
    _architectures(spec, config)
    if not any((root / name).is_file() for name in TOKENIZER_FILES):
        raise ValueError(f"--model {spec.text}: no tokenizer files in {root} (one of {', '.join(TOKENIZER_FILES)})")
    if not any(root.glob("*.safetensors")):
        raise ValueError(f"--model {spec.text}: no safetensors weights in {root} (effbench reads *.safetensors "
                         "only, never pickled .bin files)")


def import_factory(spec: ModelSpec) -> object:
    """The factory a `py:` spec names, imported (ValueError, one line, when it cannot be)."""
    module_name, _, attr = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's module's, reported in one line
        raise ValueError(f"--model {spec.text}: cannot import {module_name}: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")) from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise ValueError(f"--model {spec.text}: module {module_name} has no attribute {attr!r}")
    if not callable(factory):
        raise ValueError(f"--model {spec.text}: {module_name}.{attr} is not callable")
    return factory


def check_model(spec: ModelSpec) -> None:
    """Refuse a spec that cannot work, before anything runs: ValueError with one line."""
    if spec.kind == "hf":
        _check_hf(spec)
    else:
        import_factory(spec)


def _importable_from_cwd() -> None:
    """A `py:` model's module is imported from the directory effbench was started in, here and in every
    process the run starts (they inherit PYTHONPATH)."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if cwd not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [cwd, *paths]))


def resolve_model(text: str) -> ModelSpec:
    """A `--model` spec as a run uses it, checked before anything runs (ValueError, one line). An `hf:` path is
    made absolute (its text too), since the run's processes need not start in this directory; a `py:` module
    is imported from this directory, in this process and the run's."""
    spec = parse_model(text)
    if spec.kind == "hf":
        spec = parse_model(f"hf:{spec.target}")
    else:
        _importable_from_cwd()
    check_model(spec)
    return spec


def resolve_models(texts: list[str] | tuple[str, ...]) -> tuple[ModelSpec, ...]:
    """Every `--model` spec resolved (`resolve_model`), the same one given twice counted once. Two models of one
    name are refused (ValueError, one line): a case id carries the model's name, not its path."""
    specs = tuple(dict.fromkeys(resolve_model(text) for text in texts))
    named: dict[str, ModelSpec] = {}
    for spec in specs:
        if spec.name in named:
            raise ValueError(f"--model {named[spec.name].text} and --model {spec.text} are both named "
                             f"{spec.name!r}, and a case id carries the name: rename a directory (or link it "
                             "under another name)")
        named[spec.name] = spec
    return specs
