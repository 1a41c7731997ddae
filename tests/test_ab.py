"""Paired A/B verdicts and the interleaved schedule, with fakes; one end-to-end job per exit code."""

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, alive, effbench

from bench_lib.ab.job import CaseTrial, is_suspect, run_trials
from bench_lib.ab.verdict import ABRule, confirmed, judge
from bench_lib.measure.stats import Measurement
from bench_lib.results.case import CaseResult, CaseSpec

RULE = ABRule(threshold=0.05, min_pairs=8)


def test_identical_sides_are_within_noise():
    base = [1.0, 1.2, 0.9, 2.5, 1.1, 1.0, 0.95, 1.3, 1.05, 1.0]  # the machine's slow states...
    v = judge("c", base, list(base), RULE)  # ...hit both sides of every pair
    assert v.verdict == "within noise" and v.ratio == 1.0


def test_a_ten_percent_slowdown_is_caught_despite_between_pair_noise():
    rng = random.Random(1)
    base = [rng.choice([1.0, 1.3, 2.5]) * rng.uniform(0.99, 1.01) for _ in range(12)]
    new = [b * 1.10 * rng.uniform(0.98, 1.02) for b in base]
    assert judge("c", base, new, RULE).verdict == "slower"
    assert judge("c", new, base, RULE).verdict == "faster"


def test_a_change_below_the_threshold_is_not_a_regression():
    base = [1.0 + 0.001 * i for i in range(20)]
    v = judge("c", base, [b * 1.03 for b in base], RULE)
    assert v.verdict == "within noise" and v.ci_low > 1.0  # significant, but smaller than the threshold


def test_too_few_pairs_or_scattered_pairs_are_undecided():
    assert judge("c", [1.0] * 5, [1.2] * 5, RULE).verdict == "undecided"
    scattered_new = [1.0, 1.3, 0.8, 1.25, 0.85, 1.2, 0.9, 1.3]
    assert judge("c", [1.0] * 8, scattered_new, RULE).verdict == "undecided"


def test_rule_validates_itself():
    with pytest.raises(ValueError):
        ABRule(threshold=5)
    with pytest.raises(ValueError):
        ABRule(min_pairs=3)


def _fake_measure(slow_case: str, factor: float, log: list):
    states = [1.0, 2.5, 1.3]  # the machine's speed state changes between pairs, not within one

    def measure(side, case, generation=0):
        state = states[(len(log) // 2) % len(states)]
        log.append((case.id, side))
        t = state * 1e-3 * (factor if side == "new" and case.variant == slow_case else 1.0)
        return CaseResult(case, "ok", Measurement((t,) * 6))

    return measure


def test_schedule_pairs_rounds_in_random_order_and_stops_when_decided():
    cases = [CaseSpec.make("fake", "toy", v) for v in ("a", "b")]
    log = []
    trials = run_trials([CaseTrial(c) for c in cases], _fake_measure("b", 1.2, log), RULE, budget_s=60, seed=0)
    verdicts = {t.case.variant: t.verdict.verdict for t in trials}
    assert verdicts == {"a": "within noise", "b": "slower"}
    a, b = trials
    assert len(a.base) == len(a.new) == RULE.min_pairs  # decided at the first chance, then left alone
    # b's pairs said slower at the same chance; the verdict stood once min_pairs // 2 fresh pairs agreed.
    assert len(b.base) == len(b.new) == RULE.min_pairs + RULE.min_pairs // 2
    for t in trials:
        assert set(t.order) == {"base", "new"}  # both orders occurred
    # Each pair is back to back: the two rounds of one case are adjacent in the log.
    assert all(log[i][0] == log[i + 1][0] and log[i][1] != log[i + 1][1] for i in range(0, len(log), 2))


def test_budget_bounds_the_job_and_leaves_cases_undecided():
    now = [0.0]

    def clock():
        now[0] += 1.0
        return now[0]

    cases = [CaseSpec.make("fake", "toy", "a")]
    [trial] = run_trials([CaseTrial(c) for c in cases], _fake_measure("none", 1.0, []), RULE, budget_s=4, clock=clock)
    assert trial.verdict.verdict == "undecided" and 0 < len(trial.base) < RULE.min_pairs


@pytest.mark.parametrize("extra,b_verdict", [(0, "undecided"), (2, "slower")])
def test_a_suspect_case_gets_the_pairs_that_decide_it(monkeypatch, extra, b_verdict):
    """Two cases with scattered pairs: `a` unchanged (median ratio 1.0), `b` 10% slower. In the same
    budget, `b` is judged slower only when suspects get extra pairs; without them it ends undecided."""
    import bench_lib.execution.schedule as schedule

    monkeypatch.setattr(schedule, "SUSPECT_EXTRA_PAIRS", extra)
    ratios = {"a": [1.2, 0.8, 1.0, 1.15, 0.85, 1.0], "b": [1.3, 0.9, 1.1, 1.25, 0.95, 1.1]}
    seen = {"a": 0, "b": 0}

    def measure(side, case, generation=0):
        t = 1e-3
        if side == "new":
            t *= ratios[case.variant][seen[case.variant] % 6]
            seen[case.variant] += 1
        return CaseResult(case, "ok", Measurement((t,) * 6))

    now = [0.0]

    def clock():
        now[0] += 0.5
        return now[0]

    cases = [CaseSpec.make("fake", "toy", v) for v in ("a", "b")]
    a, b = run_trials([CaseTrial(c) for c in cases], measure, RULE, budget_s=50, seed=0, clock=clock)
    assert a.verdict.verdict == "undecided" and not is_suspect(a, RULE)
    assert b.verdict.verdict == b_verdict
    if extra:
        assert len(b.base) > len(a.base)


def test_a_direction_stands_only_once_fresh_servers_agree():
    slower = judge("c", [1.0] * 12, [1.08] * 12, RULE)
    assert slower.verdict == "slower"
    assert confirmed(slower, [1.08] * 3, RULE).unconfirmed == "slower"  # too few fresh pairs yet
    assert confirmed(slower, [1.08] * 3, RULE).verdict == "undecided"
    assert confirmed(slower, [1.0, 1.01, 1.02, 1.0], RULE).verdict == "undecided"  # fresh servers disagree
    assert confirmed(slower, [1.06, 1.09, 1.07, 1.1], RULE) == slower
    faster = judge("c", [1.08] * 12, [1.0] * 12, RULE)
    assert confirmed(faster, [1.02, 0.97, 1.0, 0.99], RULE).unconfirmed == "faster"
    assert confirmed(faster, [0.93, 0.92, 0.94, 0.93], RULE) == faster
    within = judge("c", [1.0] * 12, [1.0] * 12, RULE)
    assert confirmed(within, [], RULE) == within  # only directions need confirming


@pytest.mark.parametrize("fresh_factor,verdict", [(1.0, "undecided"), (1.10, "slower")])
def test_fresh_servers_tell_a_process_bias_from_a_change(fresh_factor, verdict):
    """NEW's first servers all run the case 10% slow (a bias three processes can share); fresh servers
    run it as fast as BASE (a bias: never confirmed, and the two generations' disagreement keeps the
    interval wide) or 10% slow too (a change: confirmed)."""
    seen, now = [], [0.0]

    def clock():
        now[0] += 0.5
        return now[0]

    def measure(side, case, generation=0):
        seen.append(generation)
        factor = (1.10 if generation == 0 else fresh_factor) if side == "new" else 1.0
        return CaseResult(case, "ok", Measurement((1e-3 * factor,) * 6), {"ab_server": 3 * generation})

    [trial] = run_trials([CaseTrial(CaseSpec.make("fake", "toy", "a"))], measure, RULE, budget_s=30, seed=0,
                         clock=clock)
    assert trial.verdict.verdict == verdict
    assert trial.generations[:RULE.min_pairs] == [0] * RULE.min_pairs  # slower after min pairs...
    fresh = trial.generations[RULE.min_pairs:]
    assert len(fresh) >= RULE.min_pairs // 2 and set(fresh) == {1}  # ...then only fresh servers
    assert set(seen) == {0, 1}


def _slow_python(tmp_path: Path) -> str:
    """An 'interpreter' side whose fake cases run 25% slower: a real process, a real environment."""
    script = tmp_path / "python-slow"
    script.write_text(f"#!/bin/sh\nFAKE_SCALE=1.25 exec {sys.executable} \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.mark.slow
def test_ab_end_to_end_exit_codes(fake_suite_env, tmp_path):
    same = effbench("ab", "HEAD", "HEAD", "--suite", "fake", "-k", "toy-ok", "--budget", "2", "--seed", "1",
                    "--out", str(tmp_path / "aa"), env=fake_suite_env)
    assert same.returncode == 0, same.stderr
    assert "within noise" in same.stdout
    slow = effbench("ab", sys.executable, _slow_python(tmp_path), "--suite", "fake", "-k", "toy-ok", "--device",
                    "cpu", "--budget", "2", "--seed", "1", "--out", str(tmp_path / "ab"), env=fake_suite_env)
    assert slow.returncode == 1, slow.stderr
    assert "| + | `toy-ok-cpu` | slower" in slow.stdout
    run_dir = Path(slow.stdout.strip().splitlines()[-1])
    doc = json.loads((run_dir / "ab.json").read_text())["effbench_ab"]
    assert doc["cases"][0]["verdict"] == "slower" and doc["cases"][0]["ratio"] == pytest.approx(1.25)
    assert (run_dir / "base" / "fake.json").exists() and (run_dir / "new" / "fake.json").exists()
    # Rounds are drawn from three servers a side (the default): all served, on each side; after the
    # first slower verdict, from three fresh ones (servers 3-5), which confirmed it.
    case = doc["cases"][0]
    generations = case["server_generation"]
    assert generations == sorted(generations) and set(generations) == {0, 1}
    first = [s for s, g in zip(case["servers"], generations, strict=True) if g == 0]
    fresh = [s for s, g in zip(case["servers"], generations, strict=True) if g == 1]
    assert {b for b, _ in first} == {0, 1, 2} and {n for _, n in first} == {0, 1, 2}
    assert len(fresh) >= 4 and {s for pair in fresh for s in pair} <= {3, 4, 5}


@pytest.mark.slow
def test_ab_bad_sides_are_exit_2(fake_suite_env, tmp_path):
    proc = effbench("ab", "no-such-rev", "HEAD", "--suite", "fake", "--out", str(tmp_path), env=fake_suite_env)
    assert proc.returncode == 2 and "neither a git revision" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_worktree_side_runs_that_revisions_code(fake_suite_env, tmp_path):
    from contextlib import ExitStack

    from bench_lib.execution.pool import SideServer, resolve_side

    with ExitStack() as stack:
        side = resolve_side("base", "HEAD", stack, sys.executable)
        server = SideServer(side, env=fake_suite_env)
        stack.callback(server.close)
        result = server.measure(CaseSpec.make("fake", "toy", "ok", "cpu"), "quick", timeout_s=120)
        assert result.status == "ok"
        assert Path(server.loaded_from).resolve().is_relative_to(side.code_dir.resolve())
        worktree = side.code_dir
    assert not os.path.exists(worktree)


def _two_server_pairs(slowdown: float, new_server0_bias: float):
    """24 pairs over two servers a side; NEW's server 0 (biased) happened to draw 21 of them."""
    rng = random.Random(3)
    base, new, servers = [], [], []
    for i in range(24):
        b, n = i % 2, 0 if i % 8 else 1
        t = rng.choice([1.0, 1.3]) * rng.uniform(0.99, 1.01)
        base.append(t)
        new.append(t * slowdown * (new_server0_bias if n == 0 else 1.0) * rng.uniform(0.99, 1.01))
        servers.append((b, n))
    return base, new, servers


def test_one_biased_process_cannot_decide_a_regression():
    base, new, servers = _two_server_pairs(slowdown=1.0, new_server0_bias=1.4)
    assert judge("c", base, new, RULE).verdict == "slower"  # blind to servers: a false alarm
    v = judge("c", base, new, RULE, servers)
    assert v.verdict == "undecided"  # the server-1 pairs say otherwise
    assert v.server_spread == pytest.approx(1.4, abs=0.04)  # and the summary says how far the servers disagree


def _three_server_pairs(slowdown: float, base_bias: tuple, new_bias: tuple, seed: int = 5):
    """24 pairs over three servers a side (the default), every combination drawn."""
    rng = random.Random(seed)
    base, new, servers = [], [], []
    for i in range(24):
        b, n = i % 3, (i // 3) % 3
        t = rng.choice([1.0, 1.3]) * rng.uniform(0.995, 1.005)
        base.append(t * base_bias[b])
        new.append(t * slowdown * new_bias[n] * rng.uniform(0.995, 1.005))
        servers.append((b, n))
    return base, new, servers


def test_a_slowdown_seen_by_every_server_is_still_caught():
    base, new, servers = _three_server_pairs(1.10, (1.0, 1.01, 0.99), (0.99, 1.0, 1.01))
    v = judge("c", base, new, RULE, servers)
    assert v.verdict == "slower" and v.ci_low > 1.05
    assert v.server_spread < 1.04


def test_three_processes_a_side_that_disagree_cannot_decide_a_small_difference():
    """NEW's three processes ran 2%, 6% and 10% slow, BASE's -2%, 0 and 2%: a 6% gap in the medians,
    but with processes this far apart it could be three unlucky draws (as compiled cases showed)."""
    base, new, servers = _three_server_pairs(1.0, (0.98, 1.0, 1.02), (1.02, 1.06, 1.10))
    assert judge("c", base, new, RULE).verdict == "slower"  # the pairs alone: a regression
    v = judge("c", base, new, RULE, servers)
    assert v.verdict == "undecided" and v.ci_low < 1.0


@pytest.mark.slow
def test_sigterm_keeps_finished_pairs_and_leaves_no_process_or_worktree(fake_suite_env, tmp_path):
    pidfile = tmp_path / "pids"
    worktrees_before = subprocess.run(["git", "worktree", "list"], cwd=REPO, capture_output=True, text=True).stdout
    proc = subprocess.Popen([sys.executable, "-m", "bench_lib", "ab", "HEAD", "HEAD", "--suite", "fake", "-k",
                             "toy-ok", "--min-pairs", "100000", "--budget", "5", "--out", str(tmp_path / "ab")],
                            cwd=REPO, env={**fake_suite_env, "FAKE_PIDFILE": str(pidfile)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (pidfile.exists() and len(pidfile.read_text().split()) >= 12):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    doc = json.loads((Path(out.strip().splitlines()[-1]) / "ab.json").read_text())["effbench_ab"]
    assert doc["interrupted"] and doc["cases"][0]["pairs"] >= 5
    servers = {int(p) for p in pidfile.read_text().split()}
    time.sleep(0.2)
    assert not any(alive(pid) for pid in servers)
    assert subprocess.run(["git", "worktree", "list"], cwd=REPO, capture_output=True,
                          text=True).stdout == worktrees_before


def test_energy_is_measured_once_a_side_where_a_counter_exists_and_shown_not_judged():
    from bench_lib.ab.job import measure_energy
    from bench_lib.ab.report import summary_markdown

    cases = [CaseSpec.make("fake", "toy", v, device=d) for v, d in (("a", "cuda"), ("b", "cpu"), ("c", "cuda"))]
    trials = [CaseTrial(c, base=[1e-3] * 4, new=[1e-3] * 4) for c in cases]
    trials[2].base, trials[2].new = [], []  # no pairs: nothing to show energy beside
    asked = []

    def characterize(side, case, generation):
        asked.append((case.variant, side))
        return CaseResult(case, "ok", Measurement((1e-3,) * 5), {"energy_j_per_sample": 2.0 if side == "new" else 1.0})

    measure_energy(trials, characterize, lambda case: case.device == "cuda")
    assert asked == [("a", "base"), ("a", "new")]
    assert trials[0].energy_j_per_sample == {"base": 1.0, "new": 2.0} and not trials[1].energy_j_per_sample
    meta = {"base": {"spec": "A"}, "new": {"spec": "B"}, "budget_s": 60, "elapsed_s": 30}
    for t in trials:
        t.verdict = None
    text = summary_markdown(trials, RULE, meta)
    assert "| `toy-a-cuda` | 1 | 2 | 2.000 |" in text and "shown, not judged" in text
    trials[0].energy_j_per_sample.clear()
    assert "J/sample" not in summary_markdown(trials, RULE, meta)
