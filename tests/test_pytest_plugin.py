"""The pytest plugin: `pytest benchmarks/... -k X` measures and stores what `effbench run -k X` does."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import effbench

from bench_lib.results.store import load_run

SELECT = "base or fast or broken"  # a baseline, a technique twice as fast, a case whose rounds fail

BENCH_MODULE = '''
from bench_lib.pytest_plugin import measure_planned

SUITE = "rounds"


def test_rounds(planned_case, effbench_session, benchmark):
    measure_planned(planned_case, effbench_session, benchmark)
'''


@pytest.fixture
def rounds_env(fake_suite_env):
    return {**fake_suite_env, "EFFBENCH_SUITES": "rounds=fake_suite:FakeRoundSuite", "FAKE_TIMEOUT_S": "3"}


def _pytest(where: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """`pytest` over a benchmarks-like directory, as a user runs it."""
    (where / "conftest.py").write_text('pytest_plugins = ["bench_lib.pytest_plugin"]\n')
    (where / "test_rounds.py").write_text(BENCH_MODULE)
    return subprocess.run([sys.executable, "-m", "pytest", str(where), "-p", "no:cacheprovider", "-q",
                           "--rootdir", str(where), *args], capture_output=True, text=True, cwd=where, env=env,
                          timeout=300)


def _stored(run_dir: Path) -> tuple[dict, dict]:
    [data] = load_run(run_dir)
    doc = json.loads(data.path.read_text())
    return {r.case.id: r for r in data.results}, doc["effbench"]["run"]


def test_pytest_stores_the_same_interleaved_figures_as_effbench_run(rounds_env, tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    under_pytest = _pytest(bench, rounds_env, "-k", SELECT, "--effbench-device", "cpu", "--effbench-processes", "2",
                           "--effbench-out", str(tmp_path / "pytest"), "--benchmark-disable")
    assert under_pytest.returncode == 1, under_pytest.stdout + under_pytest.stderr  # the broken case fails
    assert "1 failed, 2 passed, 1 deselected" in under_pytest.stdout, under_pytest.stdout
    [pytest_dir] = (tmp_path / "pytest").iterdir()
    cli = effbench("run", "--suite", "rounds", "--device", "cpu", "-k", SELECT, "--processes", "2",
                   "--out", str(tmp_path / "cli"), env=rounds_env, timeout=300)
    assert cli.returncode == 1, cli.stderr

    mine, mine_run = _stored(pytest_dir)
    theirs, their_run = _stored(Path(cli.stdout.strip().splitlines()[-1]))
    assert mine.keys() == theirs.keys() and len(mine) == 3
    assert {k: r.status for k, r in mine.items()} == {k: r.status for k, r in theirs.items()}
    assert mine_run["interleave"] == their_run["interleave"] == {"processes": 2, "rounds_per_process": 4}
    for case_id, ours in mine.items():
        cli_result = theirs[case_id]
        if ours.status != "ok":
            assert "always fails" in ours.reason and "always fails" in cli_result.reason
            continue
        m, c = ours.measurement, cli_result.measurement
        assert m.n == c.n == 2 * 4 and set(m.unit_of_sample) == set(c.unit_of_sample) == {0, 1}
        assert ours.metrics.keys() == cli_result.metrics.keys()
        mi, ci = ours.metrics["interleaved"], cli_result.metrics["interleaved"]
        assert mi.keys() == ci.keys()
        same = ("processes", "rounds", "rounds_per_process", "visit", "failed_rounds")
        assert [mi[k] for k in same] == [ci[k] for k in same]
    fast = next(r for r in mine.values() if r.case.variant == "fast")
    assert fast.metrics["speedup"] == pytest.approx(2.0, rel=0.03) and fast.metrics["speedup_processes"] == 2
    assert fast.metrics["speedup_pairs"] == theirs[fast.case.id].metrics["speedup_pairs"] == 8


def test_bad_processes_stop_pytest_with_a_usage_error(rounds_env, tmp_path):
    proc = _pytest(tmp_path, rounds_env, "--effbench-processes", "0", "--effbench-out", str(tmp_path / "out"))
    assert proc.returncode == 4 and "--effbench-processes must be >= 1" in proc.stderr
    assert not (tmp_path / "out").exists()
