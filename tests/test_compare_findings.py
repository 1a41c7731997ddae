"""The findings that open a comparison: a shift common to every case named as one (with its factor and
interval, what stored runs cannot tell, and `effbench ab`), the cases apart from it, rank changes of the
techniques, and whether the two sides differ in machine or versions."""

import json
import math

import pytest
from conftest import REPO, effbench

from bench_lib.report.compare import RatioEstimate, Verdict, compare_runs
from bench_lib.report.compare_findings import apart_from, rank_changes
from bench_lib.report.load import load_spec
from bench_lib.report.render_compare import render_comparison
from bench_lib.report.shift import common_shift
from bench_lib.results.case import CaseSpec

STORED = REPO / "results" / "20261203T150855Z-all-quick-auto" / "decode.json"  # 12 decode cases, 3 processes


def scaled_copy(src, dst, factor):
    """The stored run's file with every sample multiplied by `factor`, as a run of slower code would store it."""
    doc = json.loads(src.read_text())
    for entry in doc["benchmarks"]:
        entry["stats"]["data"] = [x * factor for x in entry["stats"]["data"]]
    dst.mkdir(parents=True)
    (dst / src.name).write_text(json.dumps(doc))
    return dst


def comparison(base, new, threshold=0.10):
    b, n = load_spec(str(base)), load_spec(str(new))
    cmp = compare_runs([r.results for r in b], [r.results for r in n], threshold,
                       [r.environment for r in b], [r.environment for r in n])
    return cmp, render_comparison(cmp, ["BASE"], ["NEW"], ["b"], ["n"])


def test_every_case_25_percent_slower_is_named_as_one_shift(tmp_path):
    cmp, text = comparison(STORED, scaled_copy(STORED, tmp_path / "slow", 1.25))
    kinds = [v.kind for v in cmp.verdicts]
    assert len(kinds) == 12 and kinds.count("slower") <= 1  # alone, each case is (nearly all) within noise
    shift = common_shift([v.estimate for v in cmp.verdicts if v.estimate], cmp.threshold)
    assert shift.kind == "slower" and shift.low < 1.25 < shift.high and shift.low > 1 and shift.same_way == 12
    findings = text.split("### Findings")[1].split("\n\n")[1]
    assert f"NEW is 1.250x [{shift.low:.3f}, {shift.high:.3f}] the time of BASE (slower)" in findings
    assert "cannot tell a shift of the machine's state" in findings and "`effbench ab" in findings
    assert "No case moved apart from the common shift" in findings


def test_a_run_against_itself_names_no_shift(tmp_path):
    _, text = comparison(STORED, STORED)
    assert "No shift common to the cases beyond 10%: the median of the 12 cases' NEW/BASE ratios is 1.000 [" in text
    assert "same machine and versions" in text


@pytest.mark.slow
def test_compare_exit_code_is_the_verdicts_not_the_shift(tmp_path):
    proc = effbench("compare", str(STORED), str(scaled_copy(STORED, tmp_path / "slow", 1.25)))
    assert proc.returncode == 0 and "A shift common to the cases" in proc.stdout, proc.stdout + proc.stderr


def estimate(ratio, half=1.6):
    return RatioEstimate(ratio, ratio / half, ratio * half, 1.0, ratio, 3, 3)


def verdict(variant, ratio, base=1.0, workload="mlp", kind="within noise"):
    case = CaseSpec.make("inference", workload, variant, "cpu", batch=8)
    return Verdict(case, kind, RatioEstimate(ratio, ratio / 1.05, ratio * 1.05, base, base * ratio, 3, 3))


def test_the_common_factor_of_noisy_cases_and_the_case_apart_from_it():
    rng = [math.exp(x) for x in (0.02, -0.03, 0.01, 0.04, -0.01, 0.0, 0.03, -0.02, 0.01, -0.04, 0.02)]
    estimates = [estimate(1.25 * r) for r in rng]
    shift = common_shift(estimates, 0.10)
    assert all(e.low < 1 for e in estimates)  # each case alone: its interval holds 1
    assert shift.kind == "slower" and shift.low < 1.25 < shift.high and shift.high / shift.low < 1.6
    verdicts = tuple(verdict(f"t{i}", e.ratio) for i, e in enumerate(estimates)) + (verdict("odd", 2.5),)
    assert [v.case.variant for v in apart_from(common_shift([v.estimate for v in verdicts], 0.10), verdicts)] \
        == ["odd"]
    assert common_shift(estimates[:2], 0.10) is None  # two cases are no common shift
    assert common_shift([estimate(1.0 + d / 100) for d in (-3, 2, 0, 1, -1)], 0.10).kind is None


def test_a_change_of_the_fastest_technique_is_a_rank_change():
    same = (verdict("fp32", 1.0, base=10.0), verdict("int8", 1.0, base=5.0))
    assert rank_changes(same) == []
    swapped = (verdict("fp32", 0.4, base=10.0), verdict("int8", 1.0, base=5.0), verdict("fp32", 1.0, 1.0, "other"))
    [(ref, before, after)] = rank_changes(swapped)
    assert (ref.variant, before.case.variant, after.case.variant) == ("fp32", "int8", "fp32")


def test_different_versions_are_a_finding(tmp_path):
    doc = json.loads(STORED.read_text())
    doc["effbench"]["environment"]["torch"] = "2.11.0+cpu"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / STORED.name).write_text(json.dumps(doc))
    _, text = comparison(STORED, tmp_path / "other")
    findings = text.split("### Findings")[1]
    assert "**BASE and NEW differ in torch (`2.13.0+cpu` against `2.11.0+cpu`)**" in findings
