"""The two sides of an A/B job: which code, under which Python, in a long-lived server.

A side is a git revision (checked out into a temporary worktree, run by this Python) or a
Python interpreter (another environment, running this checkout's code).
"""

from __future__ import annotations

import json
import os
import random
import selectors
import shutil
import subprocess
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from bench_lib.execution.isolated import kill_group
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.store import result_of

__all__ = ["Side", "resolve_side", "SideServer", "SidePool", "SideError"]

REPO = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).resolve().with_name("server.py")


class SideError(Exception):
    """A side that cannot be resolved or started; the message is one line."""


@dataclass(frozen=True)
class Side:
    label: str  # "base" or "new"
    spec: str  # what the user typed
    python: str
    code_dir: Path
    commit: str | None

    def describe(self) -> dict:
        return {"label": self.label, "spec": self.spec, "python": self.python, "code_dir": str(self.code_dir),
                "commit": self.commit}


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


def resolve_side(label: str, spec: str, stack: ExitStack, python: str) -> Side:
    """A Python interpreter path, or a git revision checked out into a worktree removed on exit."""
    path = Path(spec)
    if path.is_file() and os.access(path, os.X_OK):
        return Side(label, spec, str(path), REPO, _git("rev-parse", "HEAD").stdout.strip() or None)
    commit = _git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}").stdout.strip()
    if not commit:
        raise SideError(f"{label} {spec!r} is neither a git revision of {REPO} nor an executable Python")
    tmp = Path(tempfile.mkdtemp(prefix=f"effbench-ab-{label}-"))
    worktree = tmp / "tree"
    made = _git("worktree", "add", "--detach", str(worktree), commit)
    if made.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SideError(f"cannot check out {spec!r}: {made.stderr.strip().splitlines()[-1]}")

    def remove() -> None:
        _git("worktree", "remove", "--force", str(worktree))
        shutil.rmtree(tmp, ignore_errors=True)
        _git("worktree", "prune")

    stack.callback(remove)
    return Side(label, spec, python, worktree, commit)


class SideServer:
    """One side's long-lived server process; `measure` asks it for one round of one case."""

    def __init__(self, side: Side, env: dict[str, str] | None = None, start_timeout_s: float = 120.0):
        self.side = side
        base_env = {**os.environ, **(env or {})}
        # The side's code first, so that `import bench_lib` in the server is that side's package.
        paths = [str(side.code_dir), *filter(None, base_env.get("PYTHONPATH", "").split(os.pathsep))]
        self._env = {**base_env, "PYTHONPATH": os.pathsep.join(paths)}
        self.loaded_from: str | None = None
        self._start_timeout = start_timeout_s
        self._proc: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile()

    def _start(self) -> None:
        self._proc = subprocess.Popen([self.side.python, str(SERVER)], cwd=self.side.code_dir, env=self._env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                      text=True, start_new_session=True)
        hello = self._readline(self._start_timeout)
        if hello is None or not json.loads(hello).get("ready"):
            self.close()
            raise SideError(f"{self.side.label} server did not start: {self._stderr_tail()}")
        self.loaded_from = json.loads(hello)["bench_lib"]

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def _readline(self, timeout_s: float) -> str | None:
        assert self._proc is not None and self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout_s):
                return None
        line = self._proc.stdout.readline()
        return line or None

    def _ask(self, request: dict, timeout_s: float) -> dict | str:
        """One request, its answer; a dead or hung server gives the reason instead, and is
        restarted next time."""
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            line = None
        else:
            line = self._readline(timeout_s)
        if line is None:
            reason = (f"{self.side.label} server timed out after {timeout_s:.0f} s" if self._proc.poll() is None
                      else f"{self.side.label} server died: {self._stderr_tail()}")
            self.close()
            return reason
        return json.loads(line)

    def measure(self, case: CaseSpec, profile: str, timeout_s: float, op: str = "round") -> CaseResult:
        """One round (or, with op="characterize", the case's metrics)."""
        answer = self._ask({"case": case.as_params(), "profile": profile, **({} if op == "round" else {"op": op})},
                           timeout_s)
        if isinstance(answer, str):
            return CaseResult.failed(case, answer)
        return result_of(answer, Path(f"<{self.side.label} server>"))

    def measure_visit(self, cases: list[CaseSpec], profile: str, timeout_s: float) -> list[CaseResult]:
        """A round of each case, their timing interleaved (`Suite.measure_visit`)."""
        answer = self._ask({"op": "visit", "cases": [c.as_params() for c in cases], "profile": profile}, timeout_s)
        if isinstance(answer, str):
            return [CaseResult.failed(c, answer) for c in cases]
        origin = Path(f"<{self.side.label} server>")
        return [result_of(record, origin) for record in answer["results"]]

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.stdin:
                self._proc.stdin.close()
            kill_group(self._proc, grace_s=2.0)
            self._proc = None


class SidePool:
    """Several servers of one side; each round goes to one of them, drawn at random.

    One long-lived process has a bias of its own that lasts its life (what it prepared before a
    case, where its buffers landed): a case can run slower in one server than in another,
    pair after pair, which pairing cannot cancel (docs/validation/ab-validation). Drawing
    each round's process from a pool turns that bias into spread between pairs, which the
    interval of the median ratio then sees. Three processes can still share a bias by chance, so
    a case whose verdict needs confirming is measured in a fresh generation of servers (new
    processes, new biases), started when first asked for; server numbers run on across
    generations (generation g's servers are g * size ... g * size + size - 1).
    """

    def __init__(self, side: Side, size: int, seed: int | None, env: dict[str, str] | None = None):
        if size < 1:
            raise ValueError(f"a side needs at least one server, got {size}")
        self.size = size
        self._new_server = lambda: SideServer(side, env)
        self.generations: list[list[SideServer]] = [[self._new_server() for _ in range(size)]]
        self._rng = random.Random(seed)

    @property
    def loaded_from(self) -> str | None:
        return next((s.loaded_from for g in self.generations for s in g if s.loaded_from), None)

    def measure(self, case: CaseSpec, profile: str, timeout_s: float, generation: int = 0,
                op: str = "round") -> CaseResult:
        while len(self.generations) <= generation:
            self.generations.append([self._new_server() for _ in range(self.size)])
        index = self._rng.randrange(self.size)
        result = self.generations[generation][index].measure(case, profile, timeout_s, op)
        return replace(result, metrics={**result.metrics, "ab_server": generation * self.size + index})

    def close(self) -> None:
        for generation in self.generations:
            for server in generation:
                server.close()
