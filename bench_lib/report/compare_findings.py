"""The findings of a comparison, first in its report: what a reader of BASE against NEW came for, each sentence
with its numbers and 95% intervals, generated from the verdicts (compare.py) and the common shift (shift.py).

In order: whether the two sides ran on the same machine and versions; a shift common to every case, named as one
(with what stored runs cannot tell about it); the cases that moved apart from it, or, without one, the cases that
changed; techniques that lost or gained ground against their same-run baseline; groups whose fastest technique
changed; cases newly failing.
"""

from __future__ import annotations

import math
from dataclasses import replace

from bench_lib.report.compare import Comparison, RatioEstimate, Verdict, baseline_of, classify
from bench_lib.report.shift import CommonShift, common_shift
from bench_lib.results.case import CaseSpec

__all__ = ["MAX_LISTED", "comparison_findings", "environment_line", "apart_from", "rank_changes"]

MAX_LISTED = 5  # cases named per finding; the tables below hold them all


def _ci(est: RatioEstimate | CommonShift) -> str:
    return f"{est.ratio:.3f} [{est.low:.3f}, {est.high:.3f}]"


def _name(case: CaseSpec) -> str:
    return f"`{case.suite}/{case.id}`"


def _listed(items: list[str]) -> str:
    more = len(items) - MAX_LISTED
    return "; ".join(items[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")


def _by_size(verdicts: list[Verdict]) -> list[Verdict]:
    return sorted(verdicts, key=lambda v: -abs(math.log(v.estimate.ratio)) if v.estimate else 0.0)


def apart_from(shift: CommonShift, verdicts: tuple[Verdict, ...]) -> list[Verdict]:
    """The cases that moved beyond the common factor: each case's estimate over the factor, judged by the rule
    of a case's own verdict (`classify`: beyond the bar and an interval that excludes 1). The factor's own
    interval, far narrower than a case's, is left out."""
    out = []
    for v in verdicts:
        if v.estimate is None:
            continue
        e, s = v.estimate, shift.ratio
        moved = classify(v.case, replace(e, ratio=e.ratio / s, low=e.low / s, high=e.high / s), shift.threshold)
        if moved.kind in ("slower", "faster"):
            out.append(moved)
    return _by_size(out)


def rank_changes(verdicts: tuple[Verdict, ...]) -> list[tuple[CaseSpec, Verdict, Verdict]]:
    """(the baseline, BASE's fastest, NEW's fastest) of every baseline and its techniques (`compare.baseline_of`:
    same suite, workload and device, the baseline's params) where the fastest on the two sides is not the same."""
    measured = {v.case: v for v in verdicts if v.estimate is not None}
    groups: dict[CaseSpec, list[Verdict]] = {}
    for case, v in measured.items():
        ref = baseline_of(case, set(measured))
        if ref is not None:
            groups.setdefault(ref, [measured[ref]]).append(v)
    out = []
    for ref, members in groups.items():
        before = min(members, key=lambda v: v.estimate.base)
        after = min(members, key=lambda v: v.estimate.new)
        if before is not after:
            out.append((ref, before, after))
    return out


def environment_line(differences: list[tuple[str, str, str]]) -> str:
    """Whether the two sides ran on the same machine and versions, and what differs."""
    if not differences:
        return "- Both sides ran on the same machine and versions (CPU, GPU, torch, CUDA, torchao)."
    named = ", ".join(f"{k} (`{b}` against `{n}`)" for k, b, n in differences)
    return (f"- **BASE and NEW differ in {named}**: a ratio between them mixes that difference with the code's, "
            "and moves every case they share together.")


def _shift_lines(shift: CommonShift | None, cmp: Comparison) -> list[str]:
    if shift is None:
        return []
    if shift.kind is None:
        return [f"- No shift common to the cases beyond {shift.threshold:.0%}: the median of the {shift.cases} "
                f"cases' NEW/BASE ratios is {_ci(shift)}."]
    verdicts = [v.kind for v in cmp.verdicts if v.estimate is not None]
    alone = f"{verdicts.count('within noise')} of them within noise alone, {verdicts.count(shift.kind)} {shift.kind}"
    return [f"- **A shift common to the cases: NEW is {shift.ratio:.3f}x [{shift.low:.3f}, {shift.high:.3f}] the "
            f"time of BASE ({shift.kind})**, the median of the {shift.cases} cases' NEW/BASE ratios with a 95% "
            f"interval over the cases and each case's own interval; {shift.same_way} of {shift.cases} cases "
            f"moved that way ({alone}). Stored runs cannot tell a shift of the machine's state between the runs "
            "(other load, clocks, heat, memory placement) from a change to a path that every case shares (the "
            "interpreter, torch, a common kernel, the harness): `effbench ab BASE_REV NEW_REV` measures the two "
            "revisions in paired, interleaved rounds on one machine, where the machine's state cancels."]


def _case_lines(shift: CommonShift | None, cmp: Comparison) -> list[str]:
    if shift is not None and shift.kind is not None:
        apart = apart_from(shift, cmp.verdicts)
        if not apart:
            return [f"- No case moved apart from the common shift beyond {cmp.threshold:.0%} (each case's "
                    "NEW/BASE over the common factor, judged as a case's verdict is)."]
        return [f"- {len(apart)} case(s) moved apart from the common shift (NEW/BASE over the factor [95% CI]): "
                + _listed([f"{_name(v.case)} {v.kind}, {_ci(v.estimate)}" for v in apart]) + "."]
    changed = _by_size([v for v in cmp.verdicts if v.kind in ("slower", "faster")])
    if not changed:
        return [f"- No case changed beyond its bar with an interval that excludes 1 ({len(cmp.verdicts)} cases)."]
    return [f"- {len(changed)} case(s) changed (NEW/BASE [95% CI]): "
            + _listed([f"{_name(v.case)} {v.kind}, {_ci(v.estimate)}" for v in changed]) + "."]


def _relative_lines(cmp: Comparison) -> list[str]:
    moved = _by_size([v for v in cmp.relative if v.kind in ("slower", "faster")])
    if not moved:
        return [f"- No technique moved against its same-run baseline ({len(cmp.relative)} judged)."] \
            if cmp.relative else []
    return [f"- {len(moved)} technique(s) moved against their same-run baseline, which the machine's state "
            "does not move (time over the baseline's, NEW/BASE [95% CI]; above 1 lost ground): "
            + _listed([f"{_name(v.case)} {'lost' if v.kind == 'slower' else 'gained'} ground, "
                       f"{1 / v.estimate.base:.2f}x to {1 / v.estimate.new:.2f}x over "
                       f"{v.baseline.variant if v.baseline else 'its baseline'}, {_ci(v.estimate)}"
                       for v in moved]) + "."]


def _rank_lines(cmp: Comparison) -> list[str]:
    swaps = rank_changes(cmp.verdicts)
    if not swaps:
        return []
    items = []
    for ref, before, after in swaps:
        overlap = before.estimate.low <= after.estimate.high and after.estimate.low <= before.estimate.high
        items.append(f"over {_name(ref)}, `{before.case.variant}` in BASE, `{after.case.variant}` in NEW (their "
                     f"NEW/BASE: {_ci(before.estimate)} and {_ci(after.estimate)}"
                     + ("; the intervals overlap: the swap may be noise)" if overlap else ")"))
    return [f"- The fastest technique changed for {len(swaps)} baseline(s): " + _listed(items) + "."]


def comparison_findings(cmp: Comparison, differences: list[tuple[str, str, str]]) -> list[str]:
    """The findings as markdown lines (a list of sentences), `differences` the environments' (field, BASE,
    NEW) that differ (`render_compare.environment_differences`)."""
    shift = common_shift([v.estimate for v in cmp.verdicts if v.estimate is not None], cmp.threshold)
    failed = [v for v in cmp.verdicts if v.kind == "failed"]
    lines = ["### Findings", "", environment_line(differences), *_shift_lines(shift, cmp), *_case_lines(shift, cmp),
             *_relative_lines(cmp), *_rank_lines(cmp)]
    if failed:
        lines.append(f"- {len(failed)} case(s) fail in NEW only: " + _listed([_name(v.case) for v in failed]) + ".")
    return [*lines, ""]
