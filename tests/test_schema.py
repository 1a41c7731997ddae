"""The result files' schema: every reader refuses a corrupted file with one line that names the file
and the bad field's path (exit 2, never a traceback, never a silent read); every result file the
project has stored still reads; the published JSON Schema is current and accepts what the store writes."""

import copy
import json
import math
from pathlib import Path

import jsonschema
import pytest

from bench_lib.cli import main
from bench_lib.measure.stats import Measurement
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.record import record_of
from bench_lib.results.schema import PUBLISHED, json_schema_text
from bench_lib.results.store import ResultFormatError, RunWriter, load_run, load_run_file, result_of

REPO = Path(__file__).resolve().parents[1]
FP32, INT8 = (CaseSpec.make("inference", "mlp", v, "cpu", batch=64) for v in ("fp32", "int8_dynamic"))
SAMPLES = tuple(10e-3 * (1 + 0.01 * (i % 7 - 3)) for i in range(30))
UNITS = tuple(i % 3 for i in range(30))
ENV = {"cpu_model": "AMD EPYC", "cpu_count": 2, "torch": "2.13.0+cpu", "captured_at": "2026-11-20T10:00:00+00:00"}


def write_run(path: Path) -> Path:
    """An interleaved run's file: two measured cases over three processes, the technique with its
    paired speedup, and a skipped case."""
    w = RunWriter(path, "inference", {"profile": "quick"}, {"node": "x"}, {"id": "abc123", "dirty": False}, ENV)
    w.add(CaseResult(FP32, "ok", Measurement(SAMPLES, unit_of_sample=UNITS), {"accuracy": 0.97}))
    speedup = {"speedup": 2.0, "speedup_ci95_low": 1.9, "speedup_ci95_high": 2.1, "speedup_pairs": 30,
               "speedup_processes": 3, "speedup_baseline": FP32.id}
    w.add(CaseResult(INT8, "ok", Measurement(tuple(s / 2 for s in SAMPLES), unit_of_sample=UNITS),
                     {"accuracy": 0.96, **speedup}))
    w.add(CaseResult.skipped(CaseSpec.make("inference", "mlp", "fp8", "cpu", batch=64), "no fp8 on this CPU"))
    return w.path


DELETE = object()

# (where in the file, what to put there, the line's text after the file's name)
CORRUPTIONS = {
    "metrics is a list": (("benchmarks", 1, "extra_info", "metrics"), [0.96, 2.0],
                          "benchmarks[1].extra_info.metrics: expected an object, got a list"),
    "string median": (("benchmarks", 0, "stats", "median"), "0.01",
                      "benchmarks[0].stats.median: expected a number, got a string"),
    "string summary median": (("benchmarks", 1, "extra_info", "summary", "median"), "0.005",
                              "benchmarks[1].extra_info.summary.median: expected a number, got a string"),
    "unknown schema version": (("effbench", "schema_version"), 0,
                               "effbench.schema_version: unknown schema version 0 (this effbench reads version 1)"),
    "newer schema version": (("effbench", "schema_version"), 2,
                             "effbench.schema_version: unknown schema version 2 (this effbench reads version 1)"),
    "negative sample": (("benchmarks", 0, "stats", "data", 3), -1e-3,
                        "benchmarks[0].stats.data[3]: expected a number >= 0, got -0.001"),
    "NaN sample": (("benchmarks", 1, "stats", "data", 0), math.nan,
                   "benchmarks[1].stats.data[0]: expected a finite number, got nan"),
    "infinite wall time": (("benchmarks", 1, "extra_info", "wall_s"), math.inf,
                           "benchmarks[1].extra_info.wall_s: expected a finite number, got inf"),
    "missing samples": (("benchmarks", 0, "stats", "data"), DELETE, "benchmarks[0].stats.data: missing"),
    "missing outcomes": (("effbench", "outcomes"), DELETE, "effbench.outcomes: missing"),
    "unknown status": (("effbench", "outcomes", 2, "status"), "done",
                       "effbench.outcomes[2].status: expected 'ok', 'skipped' or 'failed', got 'done'"),
    "list parameter": (("benchmarks", 0, "params", "batch"), [64],
                       "benchmarks[0].params.batch: expected a string, a finite number or a boolean, got a list"),
    "float iterations": (("benchmarks", 0, "stats", "iterations"), 1.5,
                         "benchmarks[0].stats.iterations: expected an integer, got a number"),
    "labels short of samples": (("benchmarks", 0, "extra_info", "process_of_sample"), [0, 1, 2],
                                "benchmarks[0]: extra_info.process_of_sample has 3 labels for 30 samples in "
                                "stats.data"),
}


def corrupt(doc: dict, where: tuple, value: object) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = where
    node = doc
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("good"))


def reader_args(reader: str, good: Path, bad: Path, out: Path) -> list[str]:
    return {"report": ["report", str(bad.parent), "--out", str(out)],
            "compare": ["compare", str(good.parent), str(bad.parent)],
            "history": ["history", str(good.parent), str(bad.parent), "--out", str(out)],
            "project": ["project", str(bad.parent)]}[reader]


@pytest.mark.parametrize("reader", ["report", "compare", "history", "project"])
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_corrupted_file_exits_2_with_one_line_naming_the_file_and_field(good, tmp_path, capsys, reader,
                                                                          corruption):
    where, value, message = CORRUPTIONS[corruption]
    bad = tmp_path / "bad" / "inference.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(corrupt(json.loads(good.read_text()), where, value)))
    out = tmp_path / "out"
    code = main(reader_args(reader, good, bad, out))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.splitlines() == [f"effbench: error: {bad}: {message}"]
    assert not out.exists()  # nothing half-written


def test_the_good_file_reads_in_every_reader(good, tmp_path, capsys):
    """The corruption test's baseline: without the corruption, each reader goes past the load."""
    assert main(["compare", str(good.parent), str(good.parent)]) == 0
    assert main(["history", str(good.parent), "--out", str(tmp_path / "history")]) == 0
    capsys.readouterr()


def test_stored_sampling_units_read_as_units_of_their_kind(good, tmp_path):
    [run] = load_run(good)
    m = {r.case: r for r in run.results}[INT8].measurement
    assert m.unit_of_sample == UNITS and m.unit_kind == "process"
    doc = json.loads(good.read_text())
    assert doc["benchmarks"][1]["extra_info"]["process_of_sample"] == list(UNITS)  # the key files always had
    older = tmp_path / "older" / "inference.json"  # written before the unit's kind was stored
    older.parent.mkdir()
    older.write_text(json.dumps(corrupt(doc, ("benchmarks", 1, "extra_info", "process_kind"), DELETE)))
    assert {r.case: r for r in load_run_file(older).results}[INT8].measurement.unit_kind == "process"


def test_worker_records_are_read_through_the_schema():
    one_unit = CaseResult(FP32, "ok", Measurement(SAMPLES, unit_of_sample=(0,) * 30))  # its unit spread is NaN
    record = json.loads(json.dumps(record_of(one_unit)))
    assert result_of(record, "<worker>").measurement == one_unit.measurement
    record["entry"]["extra_info"]["metrics"] = []
    with pytest.raises(ResultFormatError, match=r"^<worker>: entry\.extra_info\.metrics: expected an object"):
        result_of(record, "<worker>")
    skipped = record_of(CaseResult.skipped(FP32, "no GPU"))
    skipped["outcome"]["wall_s"] = -1.0
    with pytest.raises(ResultFormatError, match=r"^<worker>: outcome\.wall_s: expected a number >= 0"):
        result_of(skipped, "<worker>")


def stored_result_files() -> list[Path]:
    return sorted(p for root in ("results", "reports") for p in (REPO / root).rglob("*.json"))


@pytest.mark.skipif(not stored_result_files(), reason="no result files stored in this checkout")
def test_every_stored_result_file_still_reads():
    """Files written over the format's life (before the unit kind, the machine-state spread, ...)."""
    files = stored_result_files()
    refused = []
    for path in files:
        try:
            load_run_file(path)
        except ResultFormatError as e:
            refused.append(str(e))
    assert not refused, f"{len(refused)} of {len(files)} stored files refused:\n" + "\n".join(refused)


def test_published_schema_is_current():
    assert (REPO / PUBLISHED).read_text() == json_schema_text(), (
        f"{PUBLISHED} is stale: run `python -m bench_lib.results.schema` from the repository's root")


def test_published_schema_accepts_what_the_store_writes_and_refuses_corruptions(good):
    validator = jsonschema.Draft202012Validator(json.loads((REPO / PUBLISHED).read_text()))
    doc = json.loads(good.read_text())
    validator.validate(doc)
    for name in ("metrics is a list", "string median", "unknown schema version", "negative sample",
                 "missing samples", "unknown status", "list parameter"):
        where, value, _ = CORRUPTIONS[name]
        assert not validator.is_valid(corrupt(doc, where, value)), name
