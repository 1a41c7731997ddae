"""History and change points: synthetic histories with a known step, pure noise, a slow drift;
the ordering of stored runs; the relative series of stored paired speedups; `effbench history`
end to end and the one run spec."""

import math
from dataclasses import replace

import numpy as np
import pytest
from conftest import effbench
from page_check import check_page, decoded

from bench_lib.atomic import new_file_mode
from bench_lib.history.detect import detect_changes
from bench_lib.history.render import build_page, changed_series, trend_plot
from bench_lib.history.series import histories
from bench_lib.measure.stats import Measurement
from bench_lib.report.load import load_spec
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.store import RunWriter

OWN_SD = 0.01  # a run's own interval: 1% (log scale s.d.)


def history(n: int, noise_sd: float, seed: int, step_at: int | None = None, step: float = 1.0,
            drift_per_commit: float = 0.0) -> list[float]:
    rng = np.random.default_rng(seed)
    y = math.log(1e-3) + rng.normal(0, noise_sd, n) + np.arange(n) * math.log1p(drift_per_commit)
    if step_at is not None:
        y[step_at:] += math.log(step)
    return list(y)


def changes(y: list[float], own_sd: float = OWN_SD, threshold: float = 0.10):
    return detect_changes(y, [own_sd**2] * len(y), threshold)


def test_a_known_step_is_found_at_its_commit_with_its_size():
    exact = covered = 0
    for seed in range(20):
        [c] = changes(history(20, 0.03, seed, step_at=12, step=1.15))
        assert c.kind == "step" and c.slower and c.last_good <= 11 < 12 <= c.first_bad  # the range holds it
        exact += (c.last_good, c.first_bad) == (11, 12)
        covered += c.low < 1.15 < c.high
    assert exact >= 17 and covered >= 17  # a 95% interval


def test_a_speedup_is_a_step_too():
    [c] = changes(history(20, 0.03, 0, step_at=5, step=0.7))
    assert (c.kind, c.last_good, c.first_bad) == ("step", 4, 5) and not c.slower and c.high < 1


def test_pure_noise_has_no_change():
    flagged = sum(bool(changes(history(20, 0.05, seed))) for seed in range(100))
    assert flagged <= 1


def test_one_outlying_run_is_not_a_step():
    y = history(20, 0.02, 3)
    y[9] += math.log(2.5)  # one run in the machine's slow state
    assert changes(y) == []


def test_a_slow_drift_is_a_drift_not_a_step_blamed_on_one_commit():
    covered = 0
    for seed in range(10):
        cs = changes(history(30, 0.02, seed, drift_per_commit=0.012))
        assert [(c.kind, c.last_good, c.first_bad) for c in cs] == [("drift", 0, 29)], cs
        covered += cs[0].low < 1.012**29 < cs[0].high
    assert covered >= 8


def test_a_step_within_the_between_run_spread_is_not_reported():
    # The same 15% step, but runs of this history scatter by 12%: the spread measured over the
    # history itself must keep it quiet even though each run's own interval is narrow.
    quiet = [changes(history(20, 0.12, seed, step_at=10, step=1.15)) for seed in range(10)]
    assert sum(bool(c) for c in quiet) <= 1


def test_a_step_within_the_runs_own_intervals_is_not_reported():
    y = history(20, 0.01, 0, step_at=10, step=1.15)
    assert changes(y, own_sd=0.01) and changes(y, own_sd=0.15) == []


def test_a_step_smaller_than_the_threshold_is_not_reported():
    y = history(20, 0.005, 0, step_at=10, step=1.06)
    assert changes(y, threshold=0.10) == [] and changes(y, threshold=0.05)


def test_a_step_at_the_newest_commits_waits_for_a_third_commit():
    for newest in (19, 18):
        assert changes(history(20, 0.02, 1, step_at=newest, step=1.3)) == []
    [c] = changes(history(20, 0.02, 1, step_at=17, step=1.3))
    assert (c.last_good, c.first_bad) == (16, 17)


def test_two_slow_runs_in_a_row_are_not_a_step():
    y = history(20, 0.02, 4)
    y[8] += math.log(2.0)
    y[9] += math.log(1.6)  # an episode of the machine's slow state
    assert changes(y) == []


def test_two_steps_are_both_found():
    y = history(30, 0.02, 2, step_at=10, step=1.3)
    y[20:] = [v - math.log(1.3) for v in y[20:]]
    assert [(c.last_good, c.first_bad, c.slower) for c in changes(y)] == [(9, 10, True), (19, 20, False)]


# ---- stored runs ----

CASES = [CaseSpec.make("inference", "mlp", "fp32", "cpu", batch=64),
         CaseSpec.make("inference", "mlp", "int8_dynamic", "cpu", batch=64)]
ENV = {"cpu_model": "AMD EPYC", "cpu_count": 2, "torch": "2.13.0+cpu"}


def write_run(path, commit: str, hour: int, factor=1.0, jitter=1.0, env=ENV, dirty=False, speedup=None):
    """A run of commit `commit` at 2026-11-20 `hour`:00; the int8 case `factor` slower. With
    `speedup`, the int8 case stores it as an interleaved run does (paired, over fp32, +-4%)."""
    time = f"2026-11-20T{hour:02d}:00:00+00:00"
    w = RunWriter(path, "inference", {"profile": "quick"}, {"node": "x"},
                  {"id": commit, "time": time, "dirty": dirty}, {**env, "captured_at": time})
    for i, case in enumerate(CASES):
        base = 10e-3 * (0.5 if i else 1.0) * jitter * (factor if i else 1.0)
        samples = tuple(base * (1 + 0.005 * (k % 7 - 3)) for k in range(30))
        metrics = {} if not (i and speedup) else {
            "speedup": speedup, "speedup_ci95_low": speedup / 1.04, "speedup_ci95_high": speedup * 1.04,
            "speedup_pairs": 12, "speedup_processes": 3, "speedup_baseline": CASES[0].id}
        w.add(CaseResult(case, "ok", Measurement(samples), metrics))
    return path


def stored_history(root, n=12, step_at=7, factor=1.25):
    """n commits, one run each, written in shuffled name order; int8 slower from commit step_at on."""
    rng = np.random.default_rng(0)
    for i in rng.permutation(n):
        write_run(root / f"run-{rng.integers(1e6):06d}", f"c{i:02d}" + "0" * 38, i,
                  factor if i >= step_at else 1.0, float(np.exp(rng.normal(0, 0.02))))
    return root


def relative_history(root, n=20, step_at: int | None = 14, factor=1.2, seed=3):
    """n commits, one run each, whose whole-run shifts (13% s.d., the 2-core box's) swamp the int8
    case's `factor` slowdown from commit step_at on; its paired speedup (2% between runs) drops
    by as much."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        slow = factor if step_at is not None and i >= step_at else 1.0
        write_run(root / f"run-{i:02d}", f"c{i:02d}" + "0" * 38, i, slow, float(np.exp(rng.normal(0, 0.13))),
                  speedup=2.0 / slow * float(np.exp(rng.normal(0, 0.02))))
    return root


def test_a_drop_of_a_stored_speedup_is_found_at_its_commit(tmp_path):
    [h] = histories(load_spec(str(relative_history(tmp_path / "runs"))), 0.1)
    [s] = h.relative
    assert (s.case, s.figure, s.baseline) == (CASES[1], "speedup", CASES[0].id)
    [c] = s.changes
    assert (c.kind, c.last_good, c.first_bad) == ("step", 13, 14) and s.slower(c) and not c.slower
    assert c.low < 1 / 1.2 * 1.05 and c.high > 1 / 1.2 * 0.95 and c.high < 0.9  # its size, beyond 10%
    out = tmp_path / "page"
    proc = effbench("history", str(tmp_path / "runs"), "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    relative = proc.stdout.split("same-run speedups")[-1]
    rows = [line for line in relative.splitlines() if line.startswith("| + |")]
    assert len(rows) == 1 and "mlp-int8_dynamic-batch64-cpu | mlp-fp32-batch64-cpu | step" in rows[0], proc.stdout
    assert "| c1300000 2026-11-20 | c1400000 2026-11-20 | 0.8" in rows[0]
    [png] = out.glob("*-speedups.png")
    assert f"]({png.name})" in (out / "README.md").read_text()
    parts = check_page((out / "index.html").read_text(), (out / "README.md").read_text())
    assert png.read_bytes() in [decoded(src) for src in parts.images]


def test_a_stored_speedup_of_identical_code_is_not_flagged(tmp_path):
    for seed in range(3):
        [h] = histories(load_spec(str(relative_history(tmp_path / f"runs{seed}", step_at=None, seed=seed))), 0.1)
        assert [s.changes for s in h.relative] == [()]


def test_results_without_speedups_give_no_relative_series(tmp_path):
    [h] = histories(load_spec(str(stored_history(tmp_path / "runs"))), 0.1)
    assert h.relative == () and len(h.series) == 2
    write_run(tmp_path / "runs" / "odd", "c99" + "0" * 38, 20, speedup=math.nan)  # a speedup that is no number
    [h] = histories(load_spec(str(tmp_path / "runs")), 0.1)
    assert h.relative == ()


def test_runs_are_ordered_by_commit_time_and_grouped_by_commit_and_machine(tmp_path):
    write_run(tmp_path / "b", "bbb", 2)
    write_run(tmp_path / "a", "aaa", 1)
    write_run(tmp_path / "a2", "aaa", 1)                # same commit: one point of two runs
    write_run(tmp_path / "d", "bbb", 3, dirty=True)     # a dirty tree is code of its own
    write_run(tmp_path / "g", "aaa", 1, env={**ENV, "cpu_model": "Intel Xeon", "torch": "2.11"})
    [amd, intel] = histories(load_spec(str(tmp_path)), 0.1)
    assert [c.label for c in amd.commits] == ["aaa", "bbb", "bbb+dirty (d)"]
    assert [len(p.runs) for p in amd.series[0].points] == [2, 1, 1]
    assert intel.machine == "Intel Xeon (2 cores)" and len(intel.commits) == 1


def test_history_command_names_the_commit_of_the_step(tmp_path):
    runs = stored_history(tmp_path / "runs")
    out = tmp_path / "page"
    proc = effbench("history", str(runs), "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| + |")]
    assert len(rows) == 1 and "mlp-int8_dynamic-batch64-cpu" in rows[0], proc.stdout
    assert "| step | c0600000 2026-11-20 | c0700000 2026-11-20 | 1.2" in rows[0]
    page = (out / "index.html").read_text()
    assert (out / "index.html").stat().st_mode & 0o777 == new_file_mode()  # a web server may read it
    assert "c0700000" in page
    pngs = sorted(out.glob("*.png"))  # the one case that changed, drawn; the unchanged fp32 case is not
    assert len(pngs) == 1 and f"]({pngs[0].name})" in (out / "README.md").read_text()
    parts = check_page(page, (out / "README.md").read_text())
    assert [decoded(src) for src in parts.images] == [pngs[0].read_bytes()]
    assert "- inference on AMD EPYC (2 cores), same-run speedups" not in page  # no relative series stored


def test_one_commit_draws_no_trend_and_says_why(tmp_path):
    write_run(tmp_path / "runs" / "only", "c00" + "0" * 38, 1)
    out = tmp_path / "page"
    page = build_page(histories(load_spec(str(tmp_path / "runs")), 0.1), out, 0.1)
    assert page.plots == [] and list(out.glob("*.png")) == []
    assert "- inference on AMD EPYC (2 cores): one commit so far, 2 cases" in page.readme.read_text()
    check_page(page.index.read_text(), page.readme.read_text())


def test_a_trend_plot_holds_the_largest_changes_only(tmp_path):
    [h] = histories(load_spec(str(stored_history(tmp_path / "runs"))), 0.1)
    int8 = next(s for s in h.series if s.case.variant == "int8_dynamic")
    bigger = [replace(int8, case=CaseSpec.make("inference", "mlp", f"t{i:02d}", "cpu", batch=64),
                      changes=(replace(int8.changes[-1], ratio=1.3 + i / 100),)) for i in range(12)]
    grown = replace(h, series=(*h.series, *bigger))
    shown, changed = changed_series(grown, "inference")
    assert changed == 13 and [s.case.variant for s in shown] == [f"t{i:02d}" for i in range(11, 1, -1)]
    assert trend_plot(grown, "inference", tmp_path / "t.png") == tmp_path / "t.png"
    assert changed_series(grown, "decode") == ([], 0) and trend_plot(grown, "decode", tmp_path / "d.png") is None


def test_the_page_links_the_report_pages_of_its_runs(tmp_path):
    runs = stored_history(tmp_path / "runs", n=4)
    name = sorted(p.name for p in runs.iterdir())[0]
    (tmp_path / "reports" / name).mkdir(parents=True)
    (tmp_path / "reports" / name / "README.md").write_text(f"# report\n\n- `{name}`\n")
    (tmp_path / "reports" / name / "index.html").write_text("<html></html>")
    (tmp_path / "reports" / "other").mkdir()
    (tmp_path / "reports" / "other" / "README.md").write_text("# a report of other runs\n")
    (tmp_path / "reports" / "other" / "index.html").write_text("<html></html>")
    page = build_page(histories(load_spec(str(runs)), 0.1), tmp_path / "reports" / "history", 0.1)
    assert f'<a href="../{name}/index.html">{name}</a>' in page.index.read_text()
    assert "other" not in page.readme.read_text()


def _one_line_error(proc) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.slow
def test_history_bad_input_is_one_line_and_exit_2(tmp_path):
    runs = stored_history(tmp_path / "runs", n=4)
    assert "no such results file" in _one_line_error(effbench("history", str(tmp_path / "nope")))
    assert "no run named" in _one_line_error(effbench("history", ","))
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "cannot write" in _one_line_error(effbench("history", str(runs), "--out", str(blocker)))
    assert "--threshold" in _one_line_error(effbench("history", str(runs), "--threshold", "0"))


@pytest.mark.slow
@pytest.mark.parametrize("command", ["report", "project"])
def test_every_reader_takes_the_same_run_spec(tmp_path, command):
    runs = stored_history(tmp_path / "runs", n=3)
    first, *rest = sorted(runs.iterdir())
    for spec in ([str(runs)], [f"{first},{rest[0]}"], [str(first), str(rest[1] / "inference.json")]):
        proc = effbench(command, *spec, "--out", str(tmp_path / "out"))
        if command == "project":  # inference runs, read, with nothing to project in them: exit 2, says so
            assert proc.returncode == 2 and "nothing to project" in proc.stderr, (spec, proc.stderr)
        else:
            assert proc.returncode == 0, (spec, proc.stderr)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["history", "compare", "report", "project"])
def test_help_of_every_reader(command):
    proc = effbench(command, "--help")
    assert proc.returncode == 0 and "comma-separated" in proc.stdout, proc.stderr
