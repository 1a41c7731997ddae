import json
import os

import pytest

from bench_lib.measure.stats import Measurement
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.store import ResultFormatError, RunWriter, load_run, new_run_dir

CASE = CaseSpec.make("inference", "digits_mlp", "int8_dynamic", "cpu", batch=64)


def _writer(tmp_path):
    return RunWriter(tmp_path, "inference", {"profile": "quick"}, {"node": "x"}, {"id": "abc", "dirty": False},
                     {"torch": "2.13.0"})


def _ok(case=CASE):
    return CaseResult(case, "ok", Measurement((1e-3, 2e-3, 3e-3, 4e-3, 5e-3)), {"accuracy": 0.97}, timer="perf_counter")


def test_round_trip_keeps_samples_metrics_and_non_measured_outcomes(tmp_path):
    w = _writer(tmp_path)
    w.add(_ok())
    w.add(CaseResult.skipped(CaseSpec.make("inference", "m", "fp8", "cuda"), "no GPU"))
    w.add(CaseResult.failed(CaseSpec.make("inference", "m", "int4", "cuda"), "CUDA out of memory"))
    [run] = load_run(tmp_path)
    by_status = {r.status: r for r in run.results}
    assert by_status["ok"].case == CASE
    assert by_status["ok"].measurement.samples == (1e-3, 2e-3, 3e-3, 4e-3, 5e-3)
    assert by_status["ok"].metrics == {"accuracy": 0.97}
    assert by_status["skipped"].reason == "no GPU"
    assert by_status["failed"].reason == "CUDA out of memory"


def test_file_follows_pytest_benchmark_layout(tmp_path):
    w = _writer(tmp_path)
    w.add(_ok())
    doc = json.loads(w.path.read_text())
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= doc.keys()
    [b] = doc["benchmarks"]
    assert b["name"] == "test_inference[digits_mlp-int8_dynamic-batch64-cpu]"
    assert b["params"]["batch"] == 64 and b["group"] == "inference/digits_mlp"
    assert b["stats"]["data"] == [1e-3, 2e-3, 3e-3, 4e-3, 5e-3]
    assert doc["effbench"]["schema_version"] == 1


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    w = _writer(tmp_path)
    w.add(_ok())
    before = w.path.read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        w.add(_ok(CaseSpec.make("inference", "digits_mlp", "fp32", "cpu", batch=1)))
    assert w.path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["inference.json"]  # no temporary left behind


@pytest.mark.parametrize("content, message", [
    ("not json", ": not valid JSON"),
    (b"\xff\xfe", ": not valid JSON"),
    ('{"hello": 1}', ": not an effbench result file"),
    ('[1, 2]', ": not a result file: expected an object, got a list"),
    ('{"effbench": {"schema_version": 99}, "benchmarks": []}', ": effbench.schema_version: unknown schema version 99"),
    ('{"effbench": {"schema_version": "1"}}', ": effbench.schema_version: expected an integer, got a string"),
])
def test_foreign_or_malformed_files_raise_a_clear_error(tmp_path, content, message):
    path = tmp_path / "a.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ResultFormatError) as e:
        load_run(tmp_path)
    assert str(e.value).startswith(f"{path}{message}") and "\n" not in str(e.value)


def test_missing_and_empty_paths(tmp_path):
    with pytest.raises(ResultFormatError, match="no such"):
        load_run(tmp_path / "nope")
    with pytest.raises(ResultFormatError, match="no result files"):
        load_run(tmp_path)


def test_new_run_dir_never_reuses_a_directory(tmp_path):
    a, b = new_run_dir(tmp_path, "x"), new_run_dir(tmp_path, "x")
    assert a != b and a.is_dir() and b.is_dir()


def test_case_spec_is_hashable_identity_and_round_trips():
    same = CaseSpec.make("inference", "digits_mlp", "int8_dynamic", "cpu", batch=64)
    assert same == CASE and hash(same) == hash(CASE)
    assert CaseSpec.from_params(CASE.as_params()) == CASE
    with pytest.raises(ValueError, match="reserved"):
        CaseSpec("inference", "w", "v", "cpu", (("suite", "x"),))


def test_results_need_a_measurement_or_a_reason():
    with pytest.raises(ValueError):
        CaseResult(CASE, "ok")
    with pytest.raises(ValueError):
        CaseResult(CASE, "failed")
