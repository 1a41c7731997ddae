"""False-alarm and detection rates of `effbench compare` on repeated runs of the same code.

Usage: python docs/validation/compare-rates/compare_rates.py RUNS_DIR [--draws N]

RUNS_DIR holds run directories of identical code (e.g. made by repeating
`effbench run --suite inference -k "digits_mlp_wide and batch64"`). For k = 1 run a side,
every ordered pair of runs is compared; for k = 2 and 3, `--draws` random disjoint splits.
- false alarm: an A/A comparison judged "slower" (per case, per relative speedup, per job);
- detection: NEW's samples of one case scaled by 1.10 or 1.25 (each case in turn), caught
  when that case, or its speedup against the same-run baseline, is judged "slower".
It calls the same pure functions the command uses (bench_lib.report.compare).
"""

from __future__ import annotations

import argparse
import itertools
import random
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench_lib.report.compare import compare_runs
from bench_lib.report.load import load_spec
from bench_lib.results.case import CaseResult, CaseSpec

RunResults = dict[CaseSpec, CaseResult]
FACTORS = (1.10, 1.25)


def scaled(run: RunResults, case: CaseSpec, factor: float) -> RunResults:
    out = dict(run)
    r = run[case]
    out[case] = replace(r, measurement=replace(r.measurement, samples=tuple(s * factor for s in r.measurement.samples)))
    return out


def splits(n: int, k: int, draws: int, rng: random.Random) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    if k == 1:
        return [((i,), (j,)) for i, j in itertools.permutations(range(n), 2)]
    out = []
    for _ in range(draws):
        idx = rng.sample(range(n), 2 * k)
        out.append((tuple(idx[:k]), tuple(idx[k:])))
    return out


def measure(runs: list[RunResults], k: int, draws: int, threshold: float) -> dict:
    rng = random.Random(k)
    cases = sorted({c for r in runs for c in r if r[c].status == "ok"}, key=lambda c: c.id)
    stats: dict = defaultdict(list)
    for b_idx, n_idx in splits(len(runs), k, draws, rng):
        base, new = [runs[i] for i in b_idx], [runs[i] for i in n_idx]
        aa = compare_runs(base, new, threshold)
        stats["job_fa"].append(bool(aa.regressions))
        stats["job_fa_abs"].append(any(v.kind == "slower" for v in aa.verdicts))
        for v in aa.verdicts:
            stats[("case_fa", v.case.id)].append(v.kind == "slower")
            stats[("ratio", v.case.id)].append(v.estimate.ratio if v.estimate else np.nan)
        for v in aa.relative:
            stats[("rel_fa", v.case.id)].append(v.kind == "slower")
            stats[("rel_ratio", v.case.id)].append(v.estimate.ratio)
        for case in cases:
            for f in FACTORS:
                hit = compare_runs(base, [scaled(r, case, f) for r in new], threshold)
                abs_hit = any(v.case == case and v.kind == "slower" for v in hit.verdicts)
                rel_hit = any(v.case == case and v.kind == "slower" for v in hit.relative)
                stats[("det_abs", case.id, f)].append(abs_hit)
                stats[("det_any", case.id, f)].append(abs_hit or rel_hit)
    return stats


def pct(values: list[bool]) -> str:
    return f"{100 * np.mean(values):.1f}% ({sum(values)}/{len(values)})"


def report(stats: dict, k: int) -> str:
    lines = [f"### {k} run{'s' if k > 1 else ''} a side ({len(stats['job_fa'])} comparisons)", "",
             f"- job false alarm (exit 1 on identical code): **{pct(stats['job_fa'])}**; from per-case time "
             f"verdicts alone: {pct(stats['job_fa_abs'])}", "",
             "| case | A/A false alarm (time) | A/A false alarm (vs fp32) | A/A ratio p5 / p50 / p95 | "
             "detect +10% (time / time or vs fp32) | detect +25% (time / time or vs fp32) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for key in sorted(k for k in stats if isinstance(k, tuple) and k[0] == "case_fa"):
        cid = key[1]
        ratios = np.array(stats[("ratio", cid)], dtype=float)
        rel = stats.get(("rel_fa", cid))
        dets = [f"{pct(stats[('det_abs', cid, f)])} / {pct(stats[('det_any', cid, f)])}" for f in FACTORS]
        lines.append(f"| {cid} | {pct(stats[key])} | {pct(rel) if rel else '-'} | "
                     f"{' / '.join(f'{q:.3f}' for q in np.nanquantile(ratios, [0.05, 0.5, 0.95]))} | "
                     f"{dets[0]} | {dets[1]} |")
    rel_keys = sorted(k for k in stats if isinstance(k, tuple) and k[0] == "rel_ratio")
    if rel_keys:
        lines += ["", "A/A time ratio against the same-run fp32 (NEW/BASE), p5 / p50 / p95: " + "; ".join(
            f"{k[1].split('-')[1]}{'-' + k[1].split('-')[3] if 'sparsity' in k[1] else ''}: "
            + " / ".join(f"{q:.3f}" for q in np.quantile(stats[k], [0.05, 0.5, 0.95])) for k in rel_keys)]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs_dir", type=Path)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--threshold", type=float, default=0.10)
    ap.add_argument("--ks", default="1,2,3")
    args = ap.parse_args()
    runs = [r.results for r in load_spec(str(args.runs_dir))]
    print(f"{len(runs)} runs from {args.runs_dir}, threshold {args.threshold:.0%}\n")
    for k in (int(x) for x in args.ks.split(",")):
        if 2 * k <= len(runs):
            print(report(measure(runs, k, args.draws, args.threshold), k))


if __name__ == "__main__":
    main()
