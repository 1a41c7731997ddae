"""`python -m bench_lib ARGS` in a child process of its own, without the child's imports.

Importing the CLI (its commands import torch, scipy, matplotlib and pandas) takes most of the seconds of a short
command, and the tests run many. Children here fork from a multiprocessing forkserver that imported `bench_lib.cli`
once: each child still is a process of its own, with the environment, working directory, `sys.argv`, exit status
and stdout/stderr files that `python -m bench_lib ARGS` would have, so the tests see what a user would. Two
things differ: what importing the CLI prints would go to the server's stderr, and `atexit` handlers do not run at
the child's end (multiprocessing ends its children with `os._exit`; effbench registers none). The test of the
interpreter's start itself (`python -m bench_lib` is the CLI, tests/test_cli.py) runs the real command.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["run_cli"]

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["bench_lib.cli"])


def _child(args: list[str], env: dict[str, str], cwd: str, stdout: str, stderr: str) -> None:
    """In the forked child: become `python -m bench_lib ARGS` started in `cwd` with `env`, writing to the files."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.path[:0] = [cwd, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    for fd, path in ((1, stdout), (2, stderr)):
        f = os.open(path, os.O_WRONLY)
        os.dup2(f, fd)
        os.close(f)
    sys.argv = ["-m", *args]
    runpy.run_module("bench_lib", run_name="__main__", alter_sys=True)  # exits with main()'s status


def run_cli(args: list[str], cwd: Path, env: Mapping[str, str] | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess:
    """As `subprocess.run([sys.executable, "-m", "bench_lib", *args], capture_output=True, text=True, ...)`;
    `subprocess.TimeoutExpired` after `timeout` seconds, the child killed."""
    env = dict(os.environ if env is None else env)
    with tempfile.TemporaryDirectory(prefix="effbench-cli-") as tmp:
        out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
        out.touch()
        err.touch()
        child = _CONTEXT.Process(target=_child, args=(list(args), env, str(cwd), str(out), str(err)))
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired([sys.executable, "-m", "bench_lib", *args], timeout,
                                            out.read_text(), err.read_text())
        return subprocess.CompletedProcess([sys.executable, "-m", "bench_lib", *args], child.exitcode,
                                           out.read_text(), err.read_text())
