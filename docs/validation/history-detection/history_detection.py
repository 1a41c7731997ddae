"""Does `effbench history` find a real slowdown at its commit, and stay quiet on identical code?
And does asv's step detection, run on the same histories, do better?

    python docs/validation/history-detection/history_detection.py [--runs DIR] [--histories 10] [--length 20]
        [--asv PATH_TO_ASV_PACKAGE] [--json OUT.json] [--synthetic 500]

The runs are those of rerun_validation.py (DIR/triples.json): back-to-back `effbench run --suite
inference --profile quick --device cpu` on the 2-core machine; A and A' of identical code, and S of
a revision in which TARGET does 25% more work. All A runs measured the same commit, so commit
order is synthetic: a history is a list of real runs, and position i is given commit `p{i:02d}`
with a commit time i minutes after a fixed origin, which is what `effbench history` orders by.

- quiet histories: `length` runs of A, A' and S: the first `length` in the order they were
  measured, then random subsets in random order (a permutation where the pool holds no more).
  S differs from A in TARGET alone, so every other case is identical code in all of them;
  TARGET is left out of the quiet count. The pool holds few more than `length` runs, so these
  histories share most of their runs: they are not independent;
- changed histories: A runs at positions 0..k-1 and S runs from position k on (k drawn from
  [length - S runs, A runs] and at most length - MIN_AFTER), each part a random subset in the
  order measured.

For each history both methods see the same numbers: effbench's `histories()` (runs' medians and
95% intervals, the between-run spread measured over the history), and asv's `detect_steps`
(weights 2 / interval width, as asv's publish gives them) with `detect_regressions` at asv's
default threshold of 5%. asv reports regressions (upward steps) only, so effbench's count of
false alarms is given for any change and for "slower" changes alike. asv is loaded from a
directory holding the `asv` package (pip install --target DIR asv); its own __init__ needs
dependencies the step detection does not, so only `asv.step_detect` is imported.

Each method also runs on the relative series of the same histories: every technique case's
paired speedup over its baseline in the same run, with its stored 95% interval, as interleaved
runs store them (`effbench history` charts them beside the times). A slowdown of TARGET is a drop
of its speedup: effbench's relative series say so (`Series.slower`); asv, which names upward steps
only, gets the time ratio technique/baseline (1 / speedup, weights 2 / its interval width).

`--synthetic N` adds both methods on N simulated histories of each kind (a 15% step, identical
code, a drift), with the noise of a machine that has slow states: 3% normal noise per run, and
one run in ten slowed by a factor drawn from 1.3-2.5; each run's own interval is +-4%.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import types
from pathlib import Path

import numpy as np
from scipy.stats import beta

from bench_lib.history.detect import detect_changes
from bench_lib.history.series import histories, stored_speedup
from bench_lib.report.load import Run, load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rerun-validation"))
from rerun_validation import KEEP, unpacked  # noqa: E402

TARGET = "digits_mlp_wide-int8_dynamic-batch64-cpu"
THRESHOLD = 0.10  # effbench's default, as `effbench history` uses it
ASV_THRESHOLD = 0.05  # asv publish's default regressions threshold
MIN_AFTER = 4
METHODS = ("effbench", "asv", "effbench relative", "asv relative")


def load_asv(path: Path) -> types.ModuleType:
    pkg = types.ModuleType("asv")
    pkg.__path__ = [str(path)]
    sys.modules["asv"] = pkg
    return importlib.import_module("asv.step_detect")


def pools(runs_dir: Path) -> tuple[list[Run], list[Run], list[Run]]:
    """(A runs, S runs, all runs) of every finished triple, each in the order measured. S runs are
    those of the newest triple's slow patch (an earlier patch that did not slow the figure is left out)."""
    triples = json.loads((runs_dir / "triples.json").read_text())
    patch = triples[-1].get("slow_patch")
    kinds: dict[str, str] = {}
    for t in triples:
        kinds.update({t[k]["run"]: "a" for k in ("a", "a2") if t[k]["exit"] == 0})
        if "slow" in t and t["slow"]["exit"] == 0 and t.get("slow_patch") == patch:
            kinds[t["slow"]["run"]] = "s"
    runs = sorted(load_spec(",".join(str(runs_dir / n) for n in kinds)), key=lambda r: r.name)  # names are times
    return [r for r in runs if kinds[r.name] == "a"], [r for r in runs if kinds[r.name] == "s"], runs


def as_history(runs: list[Run]) -> list[Run]:
    """The runs with synthetic commits p00, p01, ... in this order."""
    out = []
    for i, run in enumerate(runs):
        commit = {"id": f"p{i:02d}" + "0" * 37, "time": f"2026-12-01T00:{i:02d}:00+00:00", "dirty": False}
        out.append(Run(run.run_dir, [dataclasses.replace(f, commit=commit) for f in run.files]))
    return out


Flags = dict[str, list[tuple[int, int, bool]]]


def effbench_flags(runs: list[Run]) -> tuple[Flags, Flags]:
    """Per flagged case, of its times and of its stored speedups: its changes as (last good,
    first bad, slower)."""
    [h] = histories(as_history(runs), THRESHOLD)
    times, relative = ({s.case.id: [(c.last_good, c.first_bad, s.slower(c)) for c in s.changes]
                        for s in series if s.changes} for series in (h.series, h.relative))
    return times, relative


def _asv(y: list[float], w: list[float | None], step_detect: types.ModuleType) -> list[tuple[int, int, bool]]:
    _, _, jumps = step_detect.detect_regressions(step_detect.detect_steps(y, w), ASV_THRESHOLD)
    return [(before, after, True) for before, after, *_ in jumps or []]


def asv_flags(runs: list[Run], step_detect: types.ModuleType) -> tuple[Flags, Flags]:
    """Per case with a regression, of its times and of its time ratio over its baseline (1 /
    stored speedup): (last good, first bad, True) as asv's detect_regressions names them."""
    cases = sorted(set.intersection(*({c for c, res in r.results.items() if res.status == "ok"} for r in runs)),
                   key=lambda c: c.id)
    times, relative = {}, {}
    for case in cases:
        ms = [r.results[case].measurement for r in runs]
        w = [2 / (m.ci95[1] - m.ci95[0]) if m.ci95[1] > m.ci95[0] else None for m in ms]
        if jumps := _asv([m.median for m in ms], w, step_detect):
            times[case.id] = jumps
        paired = [stored_speedup(r.results[case].metrics) for r in runs]
        if all(paired):
            w = [2 / (1 / lo - 1 / hi) if hi > lo else None for _, lo, hi in paired]
            if jumps := _asv([1 / sp for sp, _, _ in paired], w, step_detect):
                relative[case.id] = jumps
    return times, relative


def simulated(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Log figures of a simulated history: a 15% step at 2n/3, nothing, or 1.5% per commit."""
    y = np.log(1e-3) + rng.normal(0, 0.03, n)
    slow = rng.random(n) < 0.1
    y[slow] += np.log(rng.uniform(1.3, 2.5, slow.sum()))
    if kind == "step":
        y[2 * n // 3:] += np.log(1.15)
    elif kind == "drift":
        y += np.arange(n) * np.log(1.015)
    return y


def synthetic(count: int, n: int, step_detect: types.ModuleType | None) -> None:
    own = (0.04 / 1.96) ** 2
    rng = np.random.default_rng(7)
    k = 2 * n // 3
    tallies: dict[str, dict[str, int]] = {}
    for kind in ("step", "quiet", "drift"):
        for _ in range(count):
            y = simulated(kind, n, rng)
            flags = {"effbench": [(c.kind, c.last_good, c.first_bad, c.slower)
                                  for c in detect_changes(y, [own] * n, THRESHOLD)]}
            if step_detect:
                _, _, jumps = step_detect.detect_regressions(step_detect.detect_steps(list(np.exp(y)), [1.0] * n),
                                                             ASV_THRESHOLD)
                flags["asv"] = [("step", b, a, True) for b, a, *_ in jumps or []]
            for m, fl in flags.items():
                t = tallies.setdefault(m, {})
                if kind == "step":
                    t["exact"] = t.get("exact", 0) + any(f == ("step", k - 1, k, True) for f in fl)
                elif kind == "quiet":
                    t["quiet"] = t.get("quiet", 0) + bool(fl)
                else:
                    t["blamed"] = t.get("blamed", 0) + any(f[0] == "step" for f in fl)
                    t["drift"] = t.get("drift", 0) + any(f[0] == "drift" for f in fl)
    print(f"\nsimulated histories of {n} commits, {count} of each kind:")
    print("| method | 15% step found at its commit | identical code: any change flagged | drift: blamed on a "
          "commit as a step | drift: reported as a drift |")
    print("| --- | --- | --- | --- | --- |")
    for m, t in tallies.items():
        print(f"| {m} | {rate(t['exact'], count)} | {rate(t['quiet'], count)} | {rate(t['blamed'], count)} "
              f"| {rate(t.get('drift', 0), count) if m == 'effbench' else 'n/a'} |")


def rate(k: int, n: int) -> str:
    lo = beta.ppf(0.025, k, n - k + 1) if k else 0.0
    hi = beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return f"{k} of {n} ({k / n:.0%}, 95% CI {lo:.0%}-{hi:.0%})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=KEEP)
    p.add_argument("--histories", type=int, default=10)
    p.add_argument("--length", type=int, default=20)
    p.add_argument("--asv", type=Path, default=None, help="directory of the asv package (its step_detect.py)")
    p.add_argument("--json", type=Path, default=None, help="write every history's flags here")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="also N simulated histories of each kind")
    args = p.parse_args()
    a_pool, s_pool, every = pools(unpacked(args.runs))
    n = args.length
    first_bad = (max(n - len(s_pool), MIN_AFTER), min(len(a_pool), n - MIN_AFTER))
    if len(every) < n or first_bad[0] > first_bad[1]:
        raise SystemExit(f"too few runs for histories of {n}: {len(a_pool)} A and {len(s_pool)} S")
    step_detect = load_asv(args.asv) if args.asv else None
    rng = np.random.default_rng(20261201)
    log: list[dict] = []
    for i in range(args.histories):
        quiet = every[:n] if i == 0 else [every[j] for j in rng.choice(len(every), n, replace=False)]
        k = int(rng.integers(first_bad[0], first_bad[1] + 1))
        before = sorted(rng.choice(len(a_pool), k, replace=False))
        after = sorted(rng.choice(len(s_pool), n - k, replace=False))
        changed = [a_pool[j] for j in before] + [s_pool[j] for j in after]
        for kind, runs in (("quiet", quiet), ("changed", changed)):
            entry = {"kind": kind, "history": i, "first_bad": k if kind == "changed" else None,
                     "runs": [r.name for r in runs]}
            entry["effbench"], entry["effbench relative"] = effbench_flags(runs)
            if step_detect:
                entry["asv"], entry["asv relative"] = asv_flags(runs, step_detect)
            if kind == "quiet":  # TARGET is changed code in the S runs of a quiet history
                for method in METHODS:
                    entry.get(method, {}).pop(TARGET, None)
            log.append(entry)
    if args.json:
        args.json.write_text(json.dumps(log, indent=1))
    medians = [[r.results[c].measurement.median for r in pool for c in r.results if c.id == TARGET]
               for pool in (a_pool, s_pool)]
    speedups = [[r.results[c].metrics["speedup"] for r in pool for c in r.results if c.id == TARGET]
                for pool in (a_pool, s_pool)]
    summarize(log, len(a_pool), len(s_pool), n, float(np.median(medians[1]) / np.median(medians[0])))
    print(f"TARGET's stored speedup S/A: {np.median(speedups[1]) / np.median(speedups[0]):.3f}; between-run s.d. "
          f"(log) over the A runs: time {np.std(np.log(medians[0]), ddof=1):.1%}, "
          f"speedup {np.std(np.log(speedups[0]), ddof=1):.1%}")
    if args.synthetic:
        synthetic(args.synthetic, n, step_detect)


def summarize(log: list[dict], a_runs: int, s_runs: int, n: int, slowdown: float) -> None:
    print(f"pools: {a_runs} A runs, {s_runs} S runs; histories of {n} runs; TARGET {TARGET} "
          f"({TARGET} measured S/A: {slowdown:.3f}, median of S run medians over median of A run medians)")
    print(f"first bad position of the changed histories: {sorted(e['first_bad'] for e in log if e['first_bad'])}")
    methods = [m for m in METHODS if m in log[0]]
    print("| method | changed case found at its commit (exact) | range holds it | other cases flagged "
          "(changed histories) | quiet histories with any case flagged | ... with a case flagged slower |")
    print("| --- | --- | --- | --- | --- | --- |")
    for m in methods:
        changed = [e for e in log if e["kind"] == "changed"]
        quiet = [e for e in log if e["kind"] == "quiet"]
        exact = held = others = 0
        for e in changed:
            k, flags = e["first_bad"], e[m].get(TARGET, [])
            exact += any(g == k - 1 and b == k and slower for g, b, slower in flags)
            held += any(g <= k - 1 and b >= k and slower for g, b, slower in flags)
            others += any(c != TARGET for c in e[m])
        any_flag = sum(bool(e[m]) for e in quiet)
        slower = sum(any(s for fl in e[m].values() for *_, s in fl) for e in quiet)
        print(f"| {m} | {rate(exact, len(changed))} | {rate(held, len(changed))} | {rate(others, len(changed))} "
              f"| {rate(any_flag, len(quiet))} | {rate(slower, len(quiet))} |")
    for m in methods:
        seen: dict[str, int] = {}
        for e in log:
            for case in e[m]:
                if e["kind"] == "quiet" or case != TARGET:
                    seen[case] = seen.get(case, 0) + 1
        print(f"{m} false flags by case: " + (", ".join(f"{c} x{k}" for c, k in sorted(seen.items())) or "none"))


if __name__ == "__main__":
    main()
