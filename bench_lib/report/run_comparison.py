"""The comparison section of a report of runs from two machines, two versions, or two runs (`effbench report
RUN_A RUN_B`): the same findings `effbench compare` opens with, for the cases both sides measured; where the
sides share no case (another device), which technique wins over its own baseline on each side.

The sides are the runs' machines (`comparability_key`'s hardware) where there are two of them, else the two
runs themselves; a report of one run, or of three or more machines, has no comparison section (for
those, `effbench compare BASE NEW` takes any two sets of runs).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench_lib.measure.paired import PairedRatio
from bench_lib.report.compare import DEFAULT_THRESHOLD, baseline_of, compare_runs
from bench_lib.report.compare_findings import MAX_LISTED, comparison_findings, environment_line
from bench_lib.report.load import Run
from bench_lib.report.render_compare import environment_differences
from bench_lib.results.case import CaseSpec
from bench_lib.results.environment import comparability_key

_HARDWARE = ("cpu_model", "cpu_count", "gpu", "gpu_count")

__all__ = ["sides", "Winner", "winners", "comparison_section"]


def sides(runs: list[Run]) -> tuple[list[Run], list[Run]] | None:
    """The runs as two sides (in the order given): by machine where the runs come from two, else two runs of one
    machine; None otherwise, and None where the sides share no suite (a decode run beside a training run is two
    reports in one, not a comparison). Versions do not split a machine's runs (a suite run without torchao records
    none): the findings name every difference of versions between the sides."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        key = comparability_key(run.environment)
        groups.setdefault(tuple(key[k] for k in _HARDWARE), []).append(run)
    if len(groups) == 2:
        split = tuple(groups.values())
    elif len(runs) == 2:
        split = ([runs[0]], [runs[1]])
    else:
        return None
    first, second = ({case.suite for run in side for case in run.results} for side in split)
    return (split[0], split[1]) if first & second else None


@dataclass(frozen=True)
class Winner:
    """The technique with the largest stored paired speedup over its same-run baseline (`baseline`: its variant)."""

    case: CaseSpec
    speedup: PairedRatio
    baseline: str


def winners(side: list[Run]) -> dict[tuple, Winner]:
    """Per baseline (its suite, workload and params, whatever the device: `compare.baseline_of`), the technique
    with the largest stored speedup over it; the newest run's, where several runs of a side measured the case."""
    best: dict[tuple, Winner] = {}
    for run in side:
        results = run.results
        for case, result in results.items():
            s = PairedRatio.from_metrics(result.metrics) if result.status == "ok" else None
            ref = baseline_of(case, set(results)) if s is not None else None
            if ref is None:
                continue
            place = (ref.suite, ref.workload, ref.params)
            if place not in best or s.ratio > best[place].speedup.ratio:
                best[place] = Winner(case, s, ref.variant)
    return best


def _winner(w: Winner) -> str:
    s = w.speedup
    return f"`{w.case.variant}` on {w.case.device}, {s.ratio:.2f}x [{s.low:.2f}, {s.high:.2f}] over {w.baseline}"


def _winner_lines(base: list[Run], new: list[Run]) -> list[str]:
    a, b = winners(base), winners(new)
    shared = sorted(a.keys() & b.keys(), key=str)
    if not shared:
        return []
    differ = [k for k in shared if a[k].case.variant != b[k].case.variant]
    same = len(shared) - len(differ)
    items = [f"{k[1]} ({', '.join(f'{p} {v}' for p, v in k[2]) or 'default'}): {_winner(a[k])} in BASE, "
             f"{_winner(b[k])} in NEW" for k in differ]
    more = len(items) - MAX_LISTED
    head = (f"- The technique with the largest same-run speedup is the same on both sides in {same} of "
            f"{len(shared)} workloads and batches")
    if not items:
        return [head + "."]
    return [head + "; it differs in " + "; ".join(items[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
            + ". Each side's speedup is over its own baseline (fp32 on CPU, bf16 on GPU)."]


def _names(side: list[Run]) -> str:
    return ", ".join(f"`{r.name}`" for r in side)


def comparison_section(runs: list[Run], threshold: float = DEFAULT_THRESHOLD) -> list[str]:
    """The section's markdown lines, or none where the runs do not make two sides."""
    split = sides(runs)
    if split is None:
        return []
    base, new = split
    lines = ["## Comparison of the runs", "", f"BASE: {_names(base)}; NEW: {_names(new)}.", ""]
    cmp = compare_runs([r.results for r in base], [r.results for r in new], threshold,
                       [r.environment for r in base], [r.environment for r in new])
    differences = environment_differences(cmp.base_envs, cmp.new_envs)
    if any(v.estimate is not None for v in cmp.verdicts):
        lines += comparison_findings(cmp, differences)[2:-1]
    else:  # other devices: what wins over each side's own baseline is what compares
        lines += [environment_line(differences), "- No case was measured on both sides alike.",
                  *_winner_lines(base, new)]
    return [*lines, "", "Every case's verdict: `effbench compare BASE NEW` of these runs.", ""]
