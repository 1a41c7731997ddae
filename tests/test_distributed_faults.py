"""A rank that dies, hangs, or cannot rendezvous ends as a failed result with its reason; every rank
process is reaped, and the cases after it still run."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bench_lib.execution.groups import measure_group
from bench_lib.execution.launcher import free_port, run_cases
from bench_lib.results.case import CaseSpec
from bench_lib.suites.distributed.collectives import CollectivesSuite


def _case(op: str) -> CaseSpec:
    return CaseSpec.make("collectives", "gloo_cpu", op, "cpu", dtype="float32", size_bytes=4096, world_size=2)


CASES = [_case("all_reduce"), _case("broadcast"), _case("all_to_all")]
FOUR = [_case("all_reduce"), _case("broadcast"), _case("all_gather"), _case("all_to_all")]


def _rank_children() -> list[int]:
    """Processes of ours running the rank entry point, alive or zombie (a zombie is an unreaped child)."""
    import os

    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"bench_lib.execution.rank" in cmdline:
            found.append(int(proc.name))
    return found


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setenv("EFFBENCH_DIST_TIMEOUT_S", "4")
    monkeypatch.delenv("EFFBENCH_FAULT", raising=False)


@pytest.mark.slow
def test_a_killed_rank_and_a_hung_rank_fail_their_cases_and_the_rest_run(fast, monkeypatch):
    monkeypatch.setenv("EFFBENCH_FAULT", "kill:1:broadcast,hang:1:all_gather")
    results = list(measure_group(CollectivesSuite(), FOUR, "quick"))
    assert [r.status for r in results] == ["ok", "failed", "failed", "ok"], [r.reason for r in results]
    assert "rank 1 died of SIGKILL" in results[1].reason
    assert "timed out after 4 s (hung?): rank 0 is in it; rank 1 is in it" in results[2].reason
    assert all("injected fault" in r.reason for r in results[1:3])  # the rank's own log travels with the reason
    assert _rank_children() == []


@pytest.mark.slow
def test_a_busy_port_is_retried(fast):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        tried = []

        def ports():
            for port in (busy, free_port()):
                tried.append(port)
                yield port

        [result] = run_cases(CASES[:1], "quick", 2, [6.0], ports=ports())
    assert result.status == "ok", result.reason
    assert result.metrics["wrong_elements"] == 0
    assert tried[0] == busy and len(tried) == 2
    assert _rank_children() == []


def test_with_every_try_busy_the_case_fails_without_hanging(fast):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        [result] = run_cases(CASES[:1], "quick", 2, [6.0], ports=[busy], port_tries=2)
    assert result.status == "failed"
    assert f"ports {busy} were busy (1 of 2 tries)" in result.reason  # the port list ran out after one try
    assert _rank_children() == []


@pytest.mark.slow
def test_ranks_that_cannot_start_fail_the_group_after_two_tries(fast, monkeypatch):
    monkeypatch.setenv("EFFBENCH_FAULT", "exit:1:size_bytes4096")  # every case: rank 1 exits before it
    results = list(measure_group(CollectivesSuite(), CASES, "quick"))
    assert [r.status for r in results] == ["failed"] * 3
    assert "rank 1 exited with status 3" in results[0].reason
    assert results[2].reason.startswith("not run: two launches in a row failed before any result")
    assert _rank_children() == []


@pytest.mark.slow
def test_a_fault_in_a_strategy_s_turn_fails_that_strategy_and_the_others_run(fast, monkeypatch):
    from bench_lib.suites.distributed.training import TrainingSuite

    monkeypatch.setenv("EFFBENCH_DIST_TIMEOUT_S", "60")
    monkeypatch.setenv("EFFBENCH_FAULT", "exit:1:-sync-backend")
    cases = [CaseSpec.make("training", "digits_mlp", v, "cpu", backend="gloo", world_size=2)
             for v in ("nocomm", "sync", "async_stale")]
    results = {r.case.variant: r for r in measure_group(TrainingSuite(), cases, "quick")}
    assert [results[v].status for v in ("nocomm", "sync", "async_stale")] == ["ok", "failed", "ok"], \
        {v: r.reason for v, r in results.items()}
    assert "rank 1 exited with status 3" in results["sync"].reason
    assert results["async_stale"].metrics["target_loss"] is None  # sync's baseline is gone with it
    assert _rank_children() == []
