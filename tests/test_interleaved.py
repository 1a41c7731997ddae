"""Interleaved, multi-process measurement: the schedule, paired speedups, intervals over processes."""

import json
import random

import numpy as np
import pytest
from conftest import alive, effbench

from bench_lib.execution.interleaved import CaseRounds, paired_speedup
from bench_lib.execution.schedule import Unit, fixed_blocks, run_blocks, units_of
from bench_lib.measure.stats import Measurement, median_ci, process_ci
from bench_lib.report.compare import compare_runs
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.store import load_run


def _case(variant: str, batch: int = 1) -> CaseSpec:
    return CaseSpec.make("inference", "toy", variant, "cpu", batch=batch)


def test_a_unit_holds_a_baseline_and_its_techniques_of_the_same_batch():
    cases = [_case("fp32"), _case("int8"), _case("fp32", 8), _case("int8", 8), _case("alone", 4)]
    units = units_of(cases, lambda c: None if c.variant == "fp32" else _case("fp32", c.param("batch")))
    assert {u.cases for u in units} == {(_case("fp32"), _case("int8")), (_case("fp32", 8), _case("int8", 8)),
                                        (_case("alone", 4),)}
    assert {u.baseline for u in units} == {_case("fp32"), _case("fp32", 8), None}


def test_every_block_visits_each_unit_in_each_process_once_in_a_new_order():
    units = [Unit((_case(f"v{i}"),)) for i in range(6)]
    visits, ends = [], []
    run_blocks(random.Random(1), fixed_blocks(units, processes=3, rounds=4), visits.append,
               on_block=lambda done: ends.append(len(visits)))
    assert ends == [18, 36, 54, 72]  # four blocks, then the policy ends the run
    blocks = [visits[i * 18:(i + 1) * 18] for i in range(4)]
    for block in blocks:
        assert sorted((u.cases[0].variant, p) for u, p in block) == sorted((f"v{i}", p) for i in range(6)
                                                                            for p in range(3))
    assert len({tuple((u.cases[0].variant, p) for u, p in b) for b in blocks}) == 4  # not one fixed order


def _rounds(samples, processes, visits):
    r = CaseRounds(CaseResult.failed(_case("x"), "unused"))
    r.samples, r.processes, r.visits = list(samples), list(processes), list(visits)
    return r


def test_paired_rounds_cancel_a_process_bias_that_unpaired_figures_carry():
    bias = {0: 1.0, 1: 1.3, 2: 0.8}
    procs = [p for _ in range(4) for p in range(3)]
    base = _rounds([2e-3 * bias[p] for p in procs], procs, range(12))
    fast = _rounds([1e-3 * bias[p] * (1 + 0.01 * (i % 2)) for i, p in enumerate(procs)], procs, range(12))
    sp = paired_speedup(fast, base)
    assert sp.pairs == 12 and sp.units == 3 and sp.unit_kind == "process"
    assert 1.97 < sp.low <= sp.ratio <= sp.high < 2.01
    unpaired = Measurement(tuple(fast.samples), unit_of_sample=tuple(procs))
    lo, hi = unpaired.ci95
    assert hi / lo > 1.4  # the bias between processes, which pairing cancelled


def test_rounds_of_other_visits_are_never_paired():
    base = _rounds([1e-3, 1e-3], [0, 0], [0, 1])
    case = _rounds([1e-3, 1e-3], [1, 1], [5, 6])
    assert paired_speedup(case, base) is None


def test_the_interval_widens_to_the_processes_disagreement_and_never_narrows():
    rng = np.random.default_rng(0)
    tight = rng.normal(1.0, 0.01, 30)
    agree = Measurement(tuple(tight), unit_of_sample=tuple(i % 3 for i in range(30)))
    assert agree.ci95[0] <= median_ci(tight)[0] and agree.ci95[1] >= median_ci(tight)[1]  # never narrower
    biased = tight * np.array([1.0, 1.2, 0.85] * 10)
    m = Measurement(tuple(biased), unit_of_sample=tuple(i % 3 for i in range(30)))
    lo, hi = m.ci95
    w_lo, w_hi = median_ci(biased)
    assert lo < w_lo and hi > w_hi
    assert lo < min(m.per_unit_median.values()) and hi > max(m.per_unit_median.values())
    assert hi - lo > 5 * (agree.ci95[1] - agree.ci95[0])  # processes that disagree widen it far more
    assert any("processes disagree" in w for w in m.warnings)
    assert not any("processes disagree" in w for w in agree.warnings)
    assert process_ci(biased, np.zeros(30)) == (0.0, float("inf"))  # one process: no between-process interval


def test_compare_treats_the_processes_of_one_run_as_units():
    def run(scale: float, seed: int) -> dict:
        rng = np.random.default_rng(seed)
        samples = [scale * (1 + 0.05 * (i % 3)) * rng.normal(1e-3, 1e-5) for i in range(12)]
        m = Measurement(tuple(samples), unit_of_sample=tuple(i % 3 for i in range(12)))
        return {_case("fp32"): CaseResult(_case("fp32"), "ok", m)}

    same = compare_runs([run(1.0, 1)], [run(1.0, 2)], threshold=0.10)
    [v] = same.verdicts
    assert v.kind == "within noise" and not v.estimate.single_run and v.bar == 0.10
    slower = compare_runs([run(1.0, 1)], [run(1.3, 2)], threshold=0.10)
    assert slower.verdicts[0].kind == "slower"


@pytest.mark.slow
def test_run_interleaves_processes_stores_paired_speedups_and_survives_failing_rounds(fake_suite_env, tmp_path):
    env = {**fake_suite_env, "EFFBENCH_SUITES": "rounds=fake_suite:FakeRoundSuite", "FAKE_TIMEOUT_S": "2"}
    proc = effbench("run", "--suite", "rounds", "--processes", "2", "--out", str(tmp_path), env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr  # the broken and hung cases failed, the rest were measured
    [data] = load_run(proc.stdout.strip().splitlines()[-1])
    by = {r.case.variant: r for r in data.results}
    assert {v: r.status for v, r in by.items()} == {"base": "ok", "fast": "ok", "broken": "failed", "hang": "failed"}
    assert "always fails" in by["broken"].reason and "timed out" in by["hang"].reason
    fast = by["fast"]
    assert fast.measurement.n == 2 * 4 and sorted(set(fast.measurement.unit_of_sample)) == [0, 1]
    assert fast.metrics["speedup"] == pytest.approx(2.0, rel=0.03)
    assert fast.metrics["speedup_baseline"] == by["base"].case.id and fast.metrics["answer"] == 42
    doc = json.loads(data.path.read_text())
    entry = next(b for b in doc["benchmarks"] if b["params"]["variant"] == "fast")
    assert len(entry["stats"]["data"]) == len(entry["extra_info"]["process_of_sample"]) == 8
    assert set(entry["extra_info"]["summary"]["per_process_median"]) == {"0", "1"}
    assert doc["effbench"]["run"]["interleave"] == {"processes": 2, "rounds_per_process": 4}
    pids = {by["base"].metrics["process"]}
    assert not any(alive(p) for p in pids)  # the servers are gone


@pytest.mark.slow
def test_processes_must_be_positive():
    proc = effbench("run", "--suite", "inference", "--processes", "0")
    assert proc.returncode == 2 and "--processes must be >= 1" in proc.stderr and "Traceback" not in proc.stderr


def test_launches_pool_their_samples_and_a_failed_launch_fails_the_case():
    from bench_lib.suites.base import merge_launches
    from bench_lib.suites.distributed.collectives import CollectivesSuite

    case = CaseSpec.make("collectives", "gloo_cpu", "all_reduce", "cpu", dtype="float32", size_bytes=4096,
                         world_size=2)
    metrics = {"bytes": 4096, "bus_factor": 1.0, "algbw_GBps": 0.0, "busbw_GBps": 0.0}
    fast = CaseResult(case, "ok", Measurement((1e-4, 1.1e-4, 0.9e-4, 1e-4)), metrics)
    slow = CaseResult(case, "ok", Measurement((2e-4, 2.1e-4, 1.9e-4, 2e-4)), metrics)
    merged = merge_launches(CollectivesSuite(), [fast, slow])
    m = merged.measurement
    assert m.n == 8 and m.unit_of_sample == (0, 0, 0, 0, 1, 1, 1, 1)
    assert m.ci95[0] < 1e-4 and m.ci95[1] > 2e-4  # two launches that disagree: the interval says so
    assert merged.metrics["busbw_GBps"] == pytest.approx(4096 / m.median / 1e9)
    assert merged.metrics["launches"]["median_s"] == [pytest.approx(1e-4), pytest.approx(2e-4)]
    broken = merge_launches(CollectivesSuite(), [fast, CaseResult.failed(case, "rank 1 died")])
    assert broken.status == "failed" and broken.reason == "launch 2 of 2: rank 1 died"


def test_a_machine_state_that_wanders_over_the_run_widens_every_interval():
    from bench_lib.measure.stats import state_sd

    rng = np.random.default_rng(2)
    steady = [(t, float(rng.normal(0, 0.01))) for t in range(120)]
    wandering = [(t, float(rng.normal(0, 0.01)) + (0.15 if 40 <= t < 80 else 0.0)) for t in range(120)]
    assert state_sd(steady) < 0.02 and state_sd(wandering) > 0.06
    samples = tuple(1e-3 * (1 + 0.01 * (i % 5)) for i in range(12))
    plain = Measurement(samples, unit_of_sample=tuple(i % 3 for i in range(12)))
    widened = Measurement(samples, unit_of_sample=tuple(i % 3 for i in range(12)), state_sd=state_sd(wandering))
    assert widened.ci95[0] < plain.ci95[0] and widened.ci95[1] > plain.ci95[1]
    assert widened.ci95[1] / widened.median > np.exp(1.9 * state_sd(wandering))


def test_compare_judges_a_technique_by_its_stored_paired_speedups():
    def run(speedup: float, lo: float, hi: float) -> dict:
        fp32, int8 = _case("fp32"), _case("int8")
        m = Measurement((1e-3,) * 6, unit_of_sample=(0, 0, 1, 1, 2, 2))
        paired = {"speedup": speedup, "speedup_ci95_low": lo, "speedup_ci95_high": hi, "speedup_processes": 3}
        return {fp32: CaseResult(fp32, "ok", m), int8: CaseResult(int8, "ok", m, paired)}

    slower = compare_runs([run(2.5, 2.35, 2.7)], [run(2.0, 1.9, 2.1)], threshold=0.10)
    [v] = slower.relative
    assert v.kind == "slower" and v.estimate.ratio == pytest.approx(1.25) and 1.1 < v.estimate.low < 1.25
    same = compare_runs([run(2.5, 2.35, 2.7)], [run(2.45, 2.3, 2.6)], threshold=0.10)
    assert same.relative[0].kind == "within noise"


def test_compare_widens_a_one_run_verdict_by_both_runs_machine_states():
    def run(scale: float, state: float) -> dict:
        samples = tuple(scale * 1e-3 * (1 + 0.002 * i) for i in range(12))
        m = Measurement(samples, unit_of_sample=tuple(i % 3 for i in range(12)), state_sd=state)
        return {_case("fp32"): CaseResult(_case("fp32"), "ok", m)}

    assert compare_runs([run(1.0, 0.0)], [run(1.2, 0.0)], threshold=0.10).verdicts[0].kind == "slower"
    wandering = compare_runs([run(1.0, 0.1)], [run(1.2, 0.1)], threshold=0.10).verdicts[0]
    assert wandering.kind == "within noise" and wandering.estimate.low < 1.0


def test_run_report_and_compare_print_the_same_figure_for_a_case(tmp_path):
    """A case measured in three processes that disagree: the median of all rounds (1.151 ms) is not the
    median of the processes' medians (1.2 ms); `run`'s line, `report`'s table and `compare`'s sides all
    show the first, the one the interval is built around, and the interval holds it."""
    from bench_lib.execution.session import format_result_line
    from bench_lib.report.load import load_spec, results_frame
    from bench_lib.results.store import RunWriter

    rounds = [1.0, 1.0, 1.5, 1.5] + [1.1] * 4 + [1.2] * 4
    samples = tuple(1e-3 * (x + 1e-4 * i) for i, x in enumerate(rounds))
    m = Measurement(samples, unit_of_sample=(0,) * 4 + (1,) * 4 + (2,) * 4)
    assert m.median == pytest.approx(1.1505e-3, rel=1e-3)
    assert np.median(list(m.per_unit_median.values())) == pytest.approx(1.2e-3, rel=1e-2)
    assert m.ci95[0] < m.median < m.ci95[1]
    for side in ("base", "new"):
        RunWriter(tmp_path / side, "inference", {}, {}, {}, {}).add(CaseResult(_case("fp32"), "ok", m))
    [base], [new] = load_spec(str(tmp_path / "base")), load_spec(str(tmp_path / "new"))
    assert "median 1.151 ms" in format_result_line(base.results[_case("fp32")])
    assert results_frame([base])["median_s"].iloc[0] == pytest.approx(m.median)
    [v] = compare_runs([base.results], [new.results]).verdicts
    assert v.estimate.base == v.estimate.new == pytest.approx(m.median)
    assert v.estimate.ratio == pytest.approx(1.0) and v.estimate.low <= 1.0 <= v.estimate.high


def test_a_gpu_run_defaults_to_one_process_with_the_same_rounds():
    """Each interleaved process keeps every case's model: on one GPU, one process holds them (three
    processes ran out of an H200's memory on the 8B shape); --processes still decides when given."""
    from bench_lib.profiles import INTERLEAVE, interleave_plan

    quick = INTERLEAVE["quick"]
    assert interleave_plan("quick", gpu=True).processes == 1
    assert interleave_plan("quick", gpu=True).rounds_per_process == quick.processes * quick.rounds_per_process
    assert interleave_plan("quick") == quick
    assert interleave_plan("quick", 2, gpu=True).processes == 2
