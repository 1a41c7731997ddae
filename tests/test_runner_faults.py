"""Every way a case can go wrong ends as a stored result, and leaves no process behind."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, alive, effbench

from bench_lib.execution.isolated import run_isolated
from bench_lib.results.case import CaseSpec
from bench_lib.results.store import load_run


@pytest.mark.parametrize("behaviour, status, reason", [
    ("ok", "ok", ""),
    ("raise", "failed", "MemoryError: CUDA out of memory"),
    ("skip", "skipped", "needs hardware this host lacks"),
    ("crash", "failed", "worker died of SIGSEGV before answering"),
    ("oom", "failed", "SIGKILL (killed: out of memory?)"),
    ("hang", "failed", "timed out after 3 s"),
])
def test_each_outcome_becomes_a_result(fake_suite_env, behaviour, status, reason):
    [result] = run_isolated([CaseSpec.make("fake", "toy", behaviour)], "quick", timeout_s=3)
    assert result.status == status
    assert reason in result.reason


@pytest.mark.slow
def test_a_hung_case_is_killed_with_its_children(fake_suite_env, tmp_path, monkeypatch):
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("FAKE_PIDFILE", str(pidfile))
    [result] = run_isolated([CaseSpec.make("fake", "toy", "spawn_and_hang")], "quick", timeout_s=4)
    assert result.status == "failed" and "timed out" in result.reason
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2
    time.sleep(0.2)
    assert not any(alive(p) for p in pids)


@pytest.mark.slow
def test_run_goes_on_after_failures_and_exits_1(fake_suite_env, tmp_path):
    env = {**fake_suite_env, "FAKE_TIMEOUT_S": "3"}
    proc = effbench("run", "--suite", "fake", "--device", "cpu", "-k", "not spawn and not slow", "--out",
                    str(tmp_path), env=env)
    assert proc.returncode == 1, proc.stderr
    [run] = load_run(Path(proc.stdout.strip().splitlines()[-1]))
    statuses = sorted(r.status for r in run.results)
    assert statuses == ["failed"] * 4 + ["ok", "skipped"]


@pytest.mark.slow
def test_ctrl_c_keeps_finished_results_and_leaves_no_process(fake_suite_env, tmp_path):
    pidfile = tmp_path / "pids"
    env = {**fake_suite_env, "FAKE_PIDFILE": str(pidfile), "FAKE_TIMEOUT_S": "60", "FAKE_SLOW_S": "600"}
    proc = subprocess.Popen([sys.executable, "-m", "bench_lib", "run", "--suite", "fake", "--device", "cpu",
                             "-k", "ok", "--out", str(tmp_path / "r")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until the slow case's worker has started
        if pidfile.exists() and len(pidfile.read_text().split()) >= 2:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    [run] = load_run(Path(out.strip().splitlines()[-1]))
    assert [r.case.variant for r in run.results] == ["ok"]
    time.sleep(0.2)
    assert not any(alive(int(p)) for p in pidfile.read_text().split())


def test_a_group_keeps_what_finished_before_its_process_died(fake_suite_env):
    ok, crash, raises = (CaseSpec.make("fake", "toy", b) for b in ("ok", "crash", "raise"))
    ok2 = CaseSpec.make("fake", "toy2", "ok")
    statuses = [r.status for r in run_isolated([ok, raises, ok2], "quick", timeout_s=30)]
    assert statuses == ["ok", "failed", "ok"]
    results = run_isolated([ok, crash, ok2], "quick", timeout_s=30)
    assert [r.status for r in results] == ["ok", "failed", "failed"]
    assert "SIGSEGV" in results[2].reason
