"""The alpha-beta fit and the scaling projection, on synthetic runs with known answers."""

from pathlib import Path

import pytest
from conftest import effbench

from bench_lib.measure.stats import Measurement
from bench_lib.projection.alphabeta import fit_alpha_beta
from bench_lib.projection.project import Assumptions, project_runs
from bench_lib.projection.scaling import Links, allreduce_time
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.store import RunData, RunWriter

ALPHA, BW = 50e-6, 1.5e9  # per ring step, bytes/s per link
SIZES = [4096 * 4**i for i in range(6)]


def _ok(case, seconds, **metrics):
    return CaseResult(case, "ok", Measurement((seconds,) * 6), metrics)


def _runs(sync_s=0.060, nocomm_s=0.035, local_s=0.040, grad_bytes=25e6):
    results = []
    for s in SIZES:
        t = 2 * ALPHA + s / BW  # 2 ranks: 2 steps, factor 1
        results.append(_ok(CaseSpec.make("collectives", "gloo_cpu", "all_reduce", "cpu", dtype="float32",
                                         size_bytes=s, world_size=2), t))
    for strategy, step in (("nocomm", nocomm_s), ("sync", sync_s), ("local_sgd", local_s)):
        extra = {"sync_every": 8} if strategy == "local_sgd" else {}
        case = CaseSpec.make("training", "digits_mlp", strategy, "cpu", backend="gloo", world_size=2, **extra)
        results.append(_ok(case, step, grad_bytes=grad_bytes))
    return [RunData(Path("x.json"), "mixed", {}, {}, {}, results)]


def test_fit_recovers_alpha_and_bandwidth():
    fit = fit_alpha_beta("all_reduce", SIZES, [2 * ALPHA + s / BW for s in SIZES], n=2)
    assert fit.alpha_s == pytest.approx(ALPHA, rel=1e-6)
    assert fit.bandwidth_Bps == pytest.approx(BW, rel=1e-6)
    assert fit.max_abs_error < 1e-9


def test_fit_rejects_a_sweep_without_bandwidth_term():
    with pytest.raises(ValueError):
        fit_alpha_beta("all_reduce", [1, 2, 3], [1.0, 1.0, 1.0], n=2)


def test_hierarchical_allreduce_is_slower_across_nodes_and_ring_factor_holds():
    links = Links(ALPHA, BW, 5e-6, 50e9, gpus_per_node=8)
    one_node = allreduce_time(1e9, 8, links)
    assert one_node == pytest.approx(14 * ALPHA + 2 * 7 / 8 * 1e9 / BW)
    assert allreduce_time(1e9, 64, links) > one_node
    assert allreduce_time(1e9, 1, links) == 0.0


def test_projection_validates_on_the_measured_run_and_degrades_with_scale():
    [p] = project_runs(_runs(), Assumptions(gpus=(8, 64, 512)))
    rows = {r["strategy"]: r for r in p.rows}
    assert rows["sync"]["validation_error"] == pytest.approx(0.0, abs=1e-9)  # calibrated
    assert rows["nocomm"]["efficiency@512"] == pytest.approx(1.0)
    # local SGD predicted at 2 ranks: compute + all_reduce(25 MB) / 8
    expected = 0.035 + (2 * ALPHA + 25e6 / BW) / 8
    assert rows["local_sgd"]["predicted_measured_step_s"] == pytest.approx(expected)
    assert rows["local_sgd"]["validation_error"] == pytest.approx(expected / 0.040 - 1)
    effs = [rows["sync"][f"efficiency@{g}"] for g in (8, 64, 512)]
    assert effs == sorted(effs, reverse=True) and effs[0] < 1.0
    assert rows["local_sgd"]["efficiency@64"] > rows["sync"]["efficiency@64"]


def test_projection_reads_the_wall_clock_pace_and_leaves_out_the_bare_loop():
    [run] = _runs()
    local = next(r for r in run.results if r.case.variant == "local_sgd")
    local.metrics["step_time_wall_s"] = 0.050  # its averaging steps, which the median (0.040) leaves out
    bare = CaseSpec.make("training", "digits_mlp", "reference", "cpu", backend="gloo", world_size=2)
    run.results.append(_ok(bare, 0.034))
    [p] = project_runs([run], Assumptions(gpus=(8,)))
    rows = {r["strategy"]: r for r in p.rows}
    assert rows["local_sgd"]["measured_step_s"] == 0.050 and "reference" not in rows


@pytest.mark.slow
def test_project_command_prints_table_and_plot(tmp_path):
    run_dir = tmp_path / "run"
    w = RunWriter(run_dir, "mixed", {}, {}, {}, {})
    for r in _runs()[0].results:
        w.add(r)
    proc = effbench("project", str(run_dir), "--gpus", "8,64,512", "--out", str(tmp_path / "rep"))
    assert proc.returncode == 0, proc.stderr
    assert "efficiency @512" in proc.stdout and "fit error" in proc.stdout
    assert (tmp_path / "rep" / "projection_efficiency.png").stat().st_size > 1000
    bad = effbench("project", str(tmp_path / "missing"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_report_has_the_projection_section_and_plot(tmp_path):
    run_dir = tmp_path / "run"
    w = RunWriter(run_dir, "mixed", {}, {}, {}, {})
    for r in _runs()[0].results:
        w.add(r)
    proc = effbench("report", str(run_dir), "--out", str(tmp_path / "rep"))
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "rep" / "README.md").read_text()
    assert "## Scaling projection" in text and "efficiency @512" in text
    assert "](projection_efficiency.png)" in text and (tmp_path / "rep" / "projection_efficiency.png").exists()


def test_collectives_project_bus_bandwidth_inside_a_node():
    """The ring model fitted on 2 ranks predicts each size's busbw at 4 and 8 (more latency steps, the same
    per-link bandwidth); rank counts beyond one node are left out rather than guessed."""
    from bench_lib.projection.project import project_collectives

    [p] = project_collectives(_runs(), Assumptions(gpus=(4, 8, 64), gpus_per_node=8))
    assert (p.transport, p.op, p.measured_n, p.gpus) == ("gloo_cpu", "all_reduce", 2, (4, 8))
    for row in p.rows:
        s = row["size_bytes"]
        assert row["busbw_Bps"] == pytest.approx(s / (2 * ALPHA + s / BW))  # factor 1 at 2 ranks
        assert row["model_busbw_Bps"] == pytest.approx(row["busbw_Bps"], rel=1e-6)
        assert row["busbw_Bps@4"] == pytest.approx(1.5 * s / (6 * ALPHA + 1.5 * s / BW), rel=1e-6)
        assert row["busbw_Bps@8"] < row["busbw_Bps@4"] < BW and "busbw_Bps@64" not in row
    assert p.rows[-1]["busbw_Bps@8"] > 0.85 * BW > 10 * p.rows[0]["busbw_Bps@8"]  # bandwidth-bound vs latency-bound


def test_project_command_projects_collectives_alone(tmp_path):
    run_dir = tmp_path / "run"
    w = RunWriter(run_dir, "collectives", {}, {}, {}, {})
    for r in _runs()[0].results:
        if r.case.suite == "collectives":
            w.add(r)
    proc = effbench("project", str(run_dir), "--gpus", "4,8")
    assert proc.returncode == 0, proc.stderr
    assert "No projection" not in proc.stdout and "## Collectives" in proc.stdout
    assert "projected busbw @8" in proc.stdout and "measured on 2 ranks" in proc.stdout
