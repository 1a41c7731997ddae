"""How often `effbench compare` names a shift common to every case, on stored A/A' pairs of identical code.

Usage: PYTHONPATH=$PWD python docs/validation/common-shift/common_shift_rates.py [RUNS_DIR]

RUNS_DIR (default: rerun-validation's `rerun-runs/`, unpacked from its runs.tar.xz) holds `triples.json`, whose
entries name an A run and an A' run of the same code measured back to back ("a", "a2"). For every pair it prints
the common factor A'/A with its interval as `compare` computes it (`report/shift.py`), and whether it is named;
then the same pair with every sample of A' scaled by 1.25, which every case shares (as a shared path's slowdown,
or a machine-state shift, would make it).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from bench_lib.report.compare import DEFAULT_THRESHOLD, compare_runs
from bench_lib.report.load import load_spec
from bench_lib.report.shift import common_shift

STUDY = Path(__file__).resolve().parent
DEFAULT = STUDY.parent / "rerun-validation" / "runs" / "rerun-runs"
FACTOR = 1.25


def results(run_dir: Path, factor: float = 1.0) -> dict:
    out = {}
    for case, r in load_spec(str(run_dir))[0].results.items():
        m = r.measurement
        out[case] = r if m is None else replace(r, measurement=replace(m, samples=tuple(s * factor for s in m.samples)))
    return out


def shift_of(a: Path, b: Path, factor: float):
    cmp = compare_runs([results(a)], [results(b, factor)], DEFAULT_THRESHOLD)
    within = sum(v.kind == "within noise" for v in cmp.verdicts if v.estimate)
    return common_shift([v.estimate for v in cmp.verdicts if v.estimate], DEFAULT_THRESHOLD), within


def main() -> None:
    keep = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not (keep / "triples.json").exists():
        raise SystemExit(f"{keep}: no triples.json (tar xf docs/validation/rerun-validation/runs.tar.xz there)")
    pairs = [(keep / t["a"]["run"], keep / t["a2"]["run"]) for t in json.loads((keep / "triples.json").read_text())
             if not (t["a"]["exit"] or t["a2"]["exit"])]
    named = {1.0: 0, FACTOR: 0}
    print("| pair (A, A') | A'/A common factor [95% CI] | named | A' x1.25: factor [95% CI] | named | cases within "
          "noise alone |")
    print("| --- | --- | --- | --- | --- | --- |")
    for a, b in pairs:
        (aa, _), (slow, within) = shift_of(a, b, 1.0), shift_of(a, b, FACTOR)
        named[1.0] += aa.kind is not None
        named[FACTOR] += slow.kind is not None
        print(f"| {a.name}, {b.name} | {aa.ratio:.3f} [{aa.low:.3f}, {aa.high:.3f}] | {aa.kind or '-'} | "
              f"{slow.ratio:.3f} [{slow.low:.3f}, {slow.high:.3f}] | {slow.kind or '-'} | {within} of {slow.cases} |")
    n = len(pairs)
    print(f"\nA/A' pairs with a named shift: {named[1.0]} of {n}; with A' x{FACTOR}: {named[FACTOR]} of {n}")


if __name__ == "__main__":
    main()
