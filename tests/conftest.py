from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cli_fork import run_cli

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


@pytest.fixture(autouse=True)
def no_peaks_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs in tests leave out the peaks probe (seconds each; tests/test_limits.py tests it)."""
    monkeypatch.setenv("EFFBENCH_PEAKS", "off")


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama checkpoint with its tokenizer (tests/tiny_hf.py), read-only to the tests that share it."""
    from tiny_hf import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-llama")


def user_module(directory: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> Path:
    """A user's module of factories, importable from the working directory as the CLI's user would have it."""
    (directory / f"{name}.py").write_text(source)
    monkeypatch.chdir(directory)
    monkeypatch.syspath_prepend(str(directory))
    return directory


@pytest.fixture
def fake_suite_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Register tests/fake_suite.py as suite `fake`, here and in every worker process."""
    monkeypatch.setenv("EFFBENCH_SUITES", "fake=fake_suite:FakeSuite")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(TESTS))
    return dict(os.environ)


def effbench(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
             cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in a child process (forked from one that imported the CLI: tests/cli_fork.py)."""
    return run_cli(list(args), cwd, env, timeout)


def alive(pid: int) -> bool:
    """Whether a process still runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
