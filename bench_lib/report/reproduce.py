"""What a report needs to be reproduced and published: the commands relative to the repository, the code and
machines of every run, one command that regenerates the report, and no path of the machine that wrote it.

A run is stored under `results/<run>` wherever it was measured (a GPU machine writes to its own disk and the run
directory is copied in later), so the report names a run by that path, and a recorded `--out` that pointed
elsewhere is dropped from the command: `effbench run` writes under `results/` by default.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pandas as pd

from bench_lib.atomic import atomic_write_text
from bench_lib.report.load import Run
from bench_lib.results.format import markdown_table

__all__ = ["REPO_ROOT", "ABSOLUTE_PATH", "MANIFEST", "run_path", "run_specs", "run_command", "relative_to",
           "strip_machine_paths", "glossary_link", "report_argv", "report_command", "write_manifest",
           "reproduce_section"]

REPO_ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = REPO_ROOT / "docs" / "glossary.md"

# An absolute POSIX path of at least two components (also after a scheme such as `hf:`), not a URL's
# (`https://host/a/b`) nor the tail of a relative path (`docs/a/b`); the kernel's own trees (/sys, /proc, /dev)
# are the same on every Linux machine and say where a counter was looked for, so they stay.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])/(?!/|sys/|proc/|dev/)(?:[\w.+@-]+/)+[\w.+@-]*")


def run_path(run: Run) -> str:
    """Where the run is stored, relative to the repository: `results/<run>` unless it lies elsewhere inside it."""
    try:
        return run.run_dir.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return f"results/{run.name}"


def run_command(run: Run) -> str:
    """The command the run was started with, without a machine's `--out` (see the module's docstring)."""
    text = run.files[0].run_meta.get("command", "") if run.files else ""
    try:
        words = shlex.split(text)
    except ValueError:
        return strip_machine_paths(text)
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == "--out":
            skip = True
        elif not word.startswith("--out="):
            out.append(word)
    return strip_machine_paths(shlex.join(out))


def _shorten(match: re.Match) -> str:
    path = Path(match.group(0))
    try:
        return path.relative_to(REPO_ROOT).as_posix() or "."
    except ValueError:
        pass
    parts = path.parts
    for anchor in ("site-packages", "dist-packages", "results", "reports"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + (anchor.endswith("packages")):])
    return ".../" + "/".join(parts[-2:])


def strip_machine_paths(text: str) -> str:
    """Every absolute path made relative: to the repository where it lies inside it, to site-packages for an
    installed library's file, else its last two components after an ellipsis."""
    return ABSOLUTE_PATH.sub(_shorten, text)


def relative_to(target: Path, out: Path) -> str | None:
    """`target` as a link from the report directory `out`, or None when `out` lies outside the repository."""
    try:
        out.resolve().relative_to(REPO_ROOT)
    except ValueError:
        return None
    return Path(os.path.relpath(target, out.resolve())).as_posix()


def glossary_link(out: Path) -> str:
    link = relative_to(GLOSSARY, out)
    return f"[glossary]({link})" if link else "the glossary, `docs/glossary.md` in the effbench repository"


def run_specs(run: Run) -> list[str]:
    """The run as `effbench report` takes it: its directory, or the files it was given where the directory holds
    more suites than the report shows."""
    where = run_path(run)
    stored = {p.name for p in run.run_dir.glob("*.json")}
    given = sorted(f.path.name for f in run.files)
    return [where] if not stored or set(given) == stored else [f"{where}/{name}" for name in given]


def report_argv(runs: list[Run]) -> list[str]:
    return ["report", *[spec for run in runs for spec in run_specs(run)]]


def _out_path(out: Path) -> str:
    try:
        return out.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return f"reports/{out.name}"


def report_command(runs: list[Run], out: Path) -> str:
    """The one command that writes this report again, from the repository root."""
    return shlex.join(["effbench", *report_argv(runs), "--out", _out_path(out)])


MANIFEST = "report.toml"


def write_manifest(out: Path, argv: list[str]) -> Path:
    """`out/report.toml`: the effbench arguments that write this directory (`--out` is the directory itself), read
    by `nox -s reports` to regenerate every published report from the runs it names."""
    text = (f"# Written by `effbench {argv[0]}`. From the repository root, `effbench ARGV --out {_out_path(out)}` "
            "writes this directory\n# again; `nox -s reports` does so for every directory of reports/ that has "
            "this file.\n"
            f"argv = {json.dumps(argv)}\n")
    path = out / MANIFEST
    atomic_write_text(path, text)
    return path


def reproduce_section(runs: list[Run], out: Path, csv_files: list[Path]) -> list[str]:
    """Per run: where it is stored, how it was measured, its code and machine; then the report's own command."""
    rows = []
    for run in runs:
        env, commit = run.environment, run.commit or {}
        gpus = [g.get("name", "?") for g in env.get("gpus") or [] if isinstance(g, dict)]
        rows.append({
            "run": f"`{run_path(run)}`",
            "command": f"`{run_command(run)}`",
            "commit": str(commit.get("id") or "?")[:10] + ("+dirty" if commit.get("dirty") else ""),
            "machine": f"{env.get('cpu_model') or '?'} ({env.get('cpu_count') or '?'} cores)"
                       + (f", {len(gpus)} x {gpus[0]}" if gpus else ""),
            "versions": ", ".join(f"{k} {env[k]}" for k in ("python", "torch", "cuda", "torchao", "transformers")
                                  if env.get(k)),
        })
    data = ", ".join(f"[{p.name}]({p.name})" for p in csv_files)
    return ["## Reproduce\n",
            "Each run, from the repository root at its commit (`git checkout COMMIT`), on the same kind of machine; "
            "its results go under `results/`:\n",
            markdown_table(pd.DataFrame(rows)), "",
            "This report, from those stored runs:\n", "```sh", report_command(runs, out), "```", "",
            *([f"Every result as one CSV per suite (one row per case, every metric): {data}.\n"] if data else [])]
