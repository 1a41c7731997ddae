"""Sessions: `nox -s bench` (the main job), `nox -s tests`, `nox -s lint`."""

from __future__ import annotations

import nox

PYPROJECT = nox.project.load_toml("pyproject.toml")
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"


def _install(session: nox.Session, *groups: str) -> None:
    """The pinned CPU torch first (from the machine's disk), then the package, then extras."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "cpu"))
    session.install("-e", ".")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The main job: every suite, quick profile, device auto; results under results/."""
    _install(session)
    args = session.posargs or ["--suite", "all", "--profile", "quick", "--device", "auto"]
    session.run("effbench", "run", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint with ruff."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")


@nox.session(default=False)
def ab(session: nox.Session) -> None:
    """Paired, interleaved A/B job: nox -s ab -- BASE NEW [effbench ab options]."""
    _install(session)
    if len(session.posargs) < 2:
        session.error("usage: nox -s ab -- BASE NEW [--suite ... -k ... --budget MINUTES]")
    session.run("effbench", "ab", *session.posargs)
