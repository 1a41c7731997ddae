"""`effbench compare` end to end on stored files: exit codes, environment warnings, one-line errors."""

import json

import pytest
from conftest import effbench
from page_check import check_page

from bench_lib.measure.stats import Measurement
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.store import RunWriter

CASES = [CaseSpec.make("inference", "mlp", "fp32", "cpu", batch=64),
         CaseSpec.make("inference", "mlp", "int8_dynamic", "cpu", batch=64)]
SAMPLES = tuple(10e-3 * (1 + 0.01 * (i % 7 - 3)) for i in range(30))
ENV = {"cpu_model": "AMD EPYC", "cpu_count": 2, "torch": "2.13.0+cpu", "torchao": "0.18.0"}


def write_run(path, factor=1.0, env=ENV, slow_case=None):
    w = RunWriter(path, "inference", {"profile": "quick"}, {"node": "x"}, {"id": "abc123", "dirty": False}, env)
    for i, case in enumerate(CASES):
        f = factor if slow_case in (None, case) else 1.0
        samples = tuple(s * (0.5 if i else 1.0) * f for s in SAMPLES)
        w.add(CaseResult(case, "ok", Measurement(samples), {"accuracy": 0.97}))
    return path


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "base")


def _one_line_error(proc):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_a_run_against_itself_exits_0(run):
    proc = effbench("compare", str(run), str(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "**No regression**" in proc.stdout
    assert "between runs is unknown" in proc.stdout


def test_a_copy_25_percent_slower_exits_1_and_names_the_cases(run, tmp_path):
    slow = write_run(tmp_path / "slow", factor=1.25)
    proc = effbench("compare", str(run), str(slow))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REGRESSION" in proc.stdout
    assert proc.stdout.count("| + | inference/mlp-") == 2


def test_several_runs_a_side_and_out_file(run, tmp_path):
    base2 = write_run(tmp_path / "base2", factor=1.02)
    new_dir = tmp_path / "new_runs"
    write_run(new_dir / "r1", factor=1.01)
    write_run(new_dir / "r2", factor=0.99)
    out = tmp_path / "summary.md"
    proc = effbench("compare", f"{run},{base2}", str(new_dir), "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = out.read_text()
    assert "2 BASE and 2 NEW runs" in text and "between runs is unknown" not in text
    assert "### Relative to the same-run baseline" in text
    page = check_page((tmp_path / "summary.html").read_text(), text)  # the same, as a page beside it
    assert page.tables == 2 and page.images == []


def test_a_different_machine_is_said_loudly(run, tmp_path):
    other = write_run(tmp_path / "other", env={**ENV, "torch": "2.11.0+cu130", "cpu_model": "Intel Xeon"})
    proc = effbench("compare", str(run), str(other))
    assert proc.returncode == 0
    assert "Different machines or versions" in proc.stdout
    assert "torch: BASE `2.13.0+cpu` vs NEW `2.11.0+cu130`" in proc.stdout


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"benchmarks": [], "machine_info": {}}), "not an effbench result file"),
])
def test_foreign_or_malformed_files_exit_2_with_one_line(run, tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert message in _one_line_error(effbench("compare", str(run), str(bad)))


def test_runs_with_no_case_in_common_exit_2(run, tmp_path):
    w = RunWriter(tmp_path / "other", "training", {}, {}, {"id": "abc"}, ENV)
    w.add(CaseResult(CaseSpec.make("training", "mlp", "sync", "cpu", backend="gloo"), "ok", Measurement(SAMPLES)))
    assert "no measured case in common" in _one_line_error(effbench("compare", str(run), str(tmp_path / "other")))


@pytest.mark.slow
def test_missing_path_and_bad_threshold_exit_2(run, tmp_path):
    assert "no such results" in _one_line_error(effbench("compare", str(run), str(tmp_path / "nope")))
    assert "--threshold" in _one_line_error(effbench("compare", str(run), str(run), "--threshold", "-5"))
