"""Sessions: `nox -s bench` (the main job), `nox -s tests`, `nox -s lint`, `nox -s compare -- BASE NEW`,
`nox -s ab -- BASE NEW`, `nox -s history -- RUNS...`, `nox -s reports [-- DIR...]`."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox
import tomllib
from nox.command import CommandFailed

PYPROJECT = nox.project.load_toml("pyproject.toml")
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"


def _install(session: nox.Session, *groups: str, extras: str = "") -> None:
    """The pinned CPU torch first (from the machine's disk), then the package (with `extras`), then groups."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "cpu"))
    session.install("-e", f".[{extras}]" if extras else ".")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (with the hf extra: the tests of users' checkpoints need transformers)."""
    _install(session, "test", extras="hf")
    session.run("pytest", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The main job: every suite, quick profile, device auto; results under results/, report under reports/."""
    _install(session)
    args = session.posargs or ["--suite", "all", "--profile", "quick", "--device", "auto"]
    # `effbench run` prints its run directory as the last line of stdout (progress goes to
    # stderr), also when cases failed: report those results, then fail the session.
    stdout = Path(session.create_tmp()) / "effbench-run.out"
    failure = None
    with stdout.open("w") as out:
        try:
            session.run("effbench", "run", *args, stdout=out, stderr=None)
        except CommandFailed as e:
            failure = e
    lines = stdout.read_text().strip().splitlines()
    if not lines:
        raise failure or CommandFailed("effbench run printed no results directory")
    run_dir = Path(lines[-1])
    session.run("effbench", "report", str(run_dir), "--out", str(Path("reports") / run_dir.name))
    if failure:
        session.error(f"effbench run: {failure.reason}: some cases failed; their errors are in the report")


@nox.session
def reports(session: nox.Session) -> None:
    """Every published report under reports/ (or the directories given) written again from the runs it names: each
    directory's report.toml holds the effbench arguments; the directory is emptied first, so nothing stale stays."""
    _install(session)
    dirs = [Path(d) for d in session.posargs] or sorted(p.parent for p in Path("reports").glob("*/report.toml"))
    for d in dirs:
        argv = tomllib.loads((d / "report.toml").read_text())["argv"]
        for stale in d.iterdir():
            if stale.name != "report.toml":
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        session.run("effbench", *argv, "--out", str(d))


def _base_new(session: nox.Session, command: str, options: str) -> None:
    """A session that passes BASE NEW and options through to `effbench COMMAND`."""
    _install(session)
    if len(session.posargs) < 2:
        session.error(f"usage: nox -s {command} -- BASE NEW {options}")
    session.run("effbench", command, *session.posargs)


@nox.session(default=False)
def compare(session: nox.Session) -> None:
    """Regression verdicts between stored runs: nox -s compare -- BASE NEW [--threshold PCT] [--out FILE]."""
    _base_new(session, "compare", "[--threshold PCT] [--out FILE]")


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff, and the import-linter contract that packages import downward only (pyproject.toml)."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.install("--no-deps", "-e", ".")  # lint-imports builds the graph of the installed package
    session.run("ruff", "check", ".")
    session.run("lint-imports")


@nox.session(default=False)
def ab(session: nox.Session) -> None:
    """Paired, interleaved A/B job: nox -s ab -- BASE NEW [effbench ab options]."""
    _base_new(session, "ab", "[--suite ... -k ... --budget MINUTES]")


@nox.session(default=False)
def history(session: nox.Session) -> None:
    """Trends per case and the commits where they changed: nox -s history -- RUNS... [--out DIR] (default results)."""
    _install(session)
    session.run("effbench", "history", *(session.posargs or ["results"]))
