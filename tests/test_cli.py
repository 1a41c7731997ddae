"""The command contract: exit codes, one-line errors, the results directory as the last line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, effbench

from bench_lib.results.store import load_run


def _one_line_error(proc):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("args, expected", [
    (["run", "--suite", "bogus"], "unknown suite 'bogus'"),
    (["run", "--no-such-option"], "unrecognized arguments"),
    (["run", "--profile", "huge"], "invalid choice"),
    (["run", "-k", "int8 and ("], "bad -k expression"),
    (["list", "--suite", "bogus"], "unknown suite"),
    ([], "required"),
])
@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2(args, expected):
    assert expected in _one_line_error(effbench(*args))


@pytest.mark.slow
def test_unwritable_out_is_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = _one_line_error(effbench("run", "--suite", "inference", "--out", str(blocker / "sub")))
    assert "cannot write results" in line


@pytest.mark.slow
def test_list_shows_cases_and_skips(fake_suite_env):
    proc = effbench("list", "--suite", "fake", "--device", "cpu", env=fake_suite_env)
    assert proc.returncode == 0
    assert "test_fake[toy-ok-cpu]  [run]" in proc.stdout
    cuda = effbench("list", "--suite", "fake", "--device", "cuda", env=fake_suite_env)
    assert cuda.returncode == 0
    if "no CUDA device" in cuda.stdout:
        assert cuda.stdout.strip().endswith("0 to run, 8 skipped")


def test_python_m_bench_lib_is_the_cli():
    """The real interpreter start (the other tests' children fork from one that imported the CLI already): it
    prints nothing on stderr, or an error would not be one line."""
    proc = subprocess.run([sys.executable, "-m", "bench_lib", "--help"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0 and "run" in proc.stdout and "list" in proc.stdout
    assert proc.stderr == ""


@pytest.mark.slow
def test_tiny_inference_run_end_to_end(tmp_path):
    proc = effbench("run", "--suite", "inference", "--device", "cpu", "-k", "digits_mlp- and fp32 and batch1",
                    "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path and run_dir.is_dir()
    [run] = load_run(run_dir)
    [result] = run.results
    assert result.status == "ok" and result.measurement.n >= 10
    m = result.metrics
    assert m["accuracy"] > 0.9 and m["accuracy_delta"] == 0.0 and m["agreement_with_reference"] == 1.0
    assert m["serialized_bytes"] > 0 and m["peak_rss_bytes"] > 0 and m["throughput_samples_per_s"] > 0
    assert run.environment["torch"] and run.commit.get("project") == "effbench"
    doc = json.loads((run_dir / "inference.json").read_text())
    assert doc["benchmarks"][0]["stats"]["data"]


@pytest.mark.parametrize("command", ["run", "list"])
def test_a_keyword_that_selects_no_case_is_exit_2_and_leaves_no_run(command, fake_suite_env, tmp_path):
    out = ["--out", str(tmp_path / "results")] if command == "run" else []
    line = _one_line_error(effbench(command, "--suite", "fake", "-k", "no_case_is_named_like_this", *out,
                                    env=fake_suite_env))
    assert "-k 'no_case_is_named_like_this' selects no case" in line
    assert not (tmp_path / "results").exists()


def test_project_of_a_run_it_cannot_project_is_exit_2(tmp_path):
    from bench_lib.measure.stats import Measurement
    from bench_lib.results.case import CaseResult, CaseSpec
    from bench_lib.results.store import RunWriter

    case = CaseSpec.make("inference", "digits_mlp", "fp32", "cpu", batch=1)
    RunWriter(tmp_path / "run", "inference", {}, {}, {}, {}).add(CaseResult(case, "ok", Measurement((1e-3,) * 6)))
    line = _one_line_error(effbench("project", str(tmp_path / "run")))
    assert "nothing to project" in line and "all_reduce" in line
