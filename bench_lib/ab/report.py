"""What an A/B job leaves behind: both sides as ordinary runs, the verdicts as JSON and markdown."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench_lib.ab.job import CaseTrial
from bench_lib.ab.verdict import ABRule
from bench_lib.atomic import atomic_write_text
from bench_lib.execution.session import RunSession
from bench_lib.measure.stats import Measurement
from bench_lib.results.case import CaseResult

__all__ = ["outcome", "store_sides", "summary_markdown", "write_verdicts"]

MARKS = {"slower": "+", "faster": "-", "within noise": "~", "undecided": "?", "failed": "!", "skipped": "s",
         "base failed": "*"}


def outcome(trial: CaseTrial) -> str:
    """The verdict word for a case: failures and skips first, then the paired statistics."""
    if trial.skipped_reason:
        return "skipped"
    if trial.failed:
        return "failed" if "new" in trial.failed_sides else "base failed"
    return trial.verdict.verdict if trial.verdict else "undecided"


def _side_result(trial: CaseTrial, side: str) -> CaseResult:
    rounds = trial.base if side == "base" else trial.new
    last = trial.last.get(side)
    if rounds:
        metrics = {**(last.metrics if last else {}), "ab_side": side, "ab_rounds": len(rounds)}
        return CaseResult(trial.case, "ok", Measurement(tuple(rounds)), metrics, timer="ab round median")
    if last is not None and last.status != "ok":
        return last
    return CaseResult.failed(trial.case, "; ".join(trial.failures) or "no round finished within the budget")


def store_sides(run_dir: Path, trials: list[CaseTrial], profile: str, meta: dict, sides: dict[str, dict]) -> None:
    """run_dir/base and run_dir/new are ordinary runs (samples are per-round medians), tagged by side."""
    for side in ("base", "new"):
        session = RunSession(run_dir / side, profile, {**meta, "ab_side": side, "ab": sides, "run_id": run_dir.name})
        for trial in trials:
            session.record(_side_result(trial, side))


def write_verdicts(run_dir: Path, trials: list[CaseTrial], rule: ABRule, meta: dict) -> None:
    rows = []
    for t in trials:
        v = t.verdict
        rows.append({"case": t.case.as_params(), "name": t.case.name, "verdict": outcome(t),
                     "ratio": v.ratio if v and v.pairs else None, "ci95": [v.ci_low, v.ci_high] if v and v.pairs
                     else None, "pairs": len(t.base), "base_rounds_s": t.base, "new_rounds_s": t.new,
                     "first_side": t.order, "servers": t.servers, "server_generation": t.generations,
                     "server_spread": v.server_spread if v else None,
                     "unconfirmed": v.unconfirmed if v else None, "failures": t.failures,
                     "skip_reason": t.skipped_reason, "energy_j_per_sample": t.energy_j_per_sample or None})
    doc = {"effbench_ab": {"schema_version": 1, "rule": {"threshold": rule.threshold, "min_pairs": rule.min_pairs},
                           **meta, "cases": rows}}
    text = json.dumps(doc, indent=1, default=lambda x: None if isinstance(x, float) and not math.isfinite(x) else x)
    atomic_write_text(run_dir / "ab.json", text)


def _ms(x: float) -> str:
    return f"{x * 1e3:.3f}" if x and math.isfinite(x) else "n/a"


def _energy_lines(trials: list[CaseTrial]) -> list[str]:
    """Energy per sample on both sides, where the device's counter measured both: shown, not judged."""
    both = [t for t in trials if {"base", "new"} <= t.energy_j_per_sample.keys()]
    if not both:
        return []
    lines = ["", "Energy per sample (one window of >= 2 s per side after the pairs, from the device's energy "
             "counter): shown, not judged, since one window a side has no interval.", "",
             "| case | BASE J/sample | NEW J/sample | NEW/BASE |", "| --- | --- | --- | --- |"]
    for t in sorted(both, key=lambda t: t.case.id):
        b, n = t.energy_j_per_sample["base"], t.energy_j_per_sample["new"]
        lines.append(f"| `{t.case.id}` | {b:.4g} | {n:.4g} | {n / b:.3f} |")
    return lines


def summary_markdown(trials: list[CaseTrial], rule: ABRule, meta: dict) -> str:
    """A job summary for a CI page: one row a case, worst first, with a legend."""
    order = {"slower": 0, "failed": 1, "undecided": 2, "faster": 3, "base failed": 4, "within noise": 5, "skipped": 6}
    lines = [
        f"## effbench A/B: `{meta['base']['spec']}` (BASE) vs `{meta['new']['spec']}` (NEW)",
        "",
        f"Paired, interleaved rounds in random order; threshold {rule.threshold:.0%}; budget "
        f"{meta['budget_s'] / 60:.1f} min, spent {meta['elapsed_s'] / 60:.1f} min"
        + (" (**interrupted**: verdicts from the pairs finished before it)." if meta.get("interrupted") else "."),
        "",
        "| | case | verdict | NEW/BASE (median of pairs) | 95% CI | pairs | servers differ | BASE ms | NEW ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in sorted(trials, key=lambda t: (order[outcome(t)], t.case.id)):
        word, v = outcome(t), t.verdict
        has = v is not None and v.pairs > 0
        ratio = f"{v.ratio:.3f}" if has else "n/a"
        ci = f"{v.ci_low:.3f} to {v.ci_high:.3f}" if has else "n/a"
        spread = f"{v.server_spread - 1:.1%}" if has and math.isfinite(v.server_spread) else "n/a"
        base = _ms(Measurement(tuple(t.base)).median) if t.base else "n/a"
        new = _ms(Measurement(tuple(t.new)).median) if t.new else "n/a"
        note = t.skipped_reason or (t.failures[-1] if t.failures else "") or (
            f"{v.unconfirmed} in its first servers, not yet in fresh ones" if v and v.unconfirmed else "")
        lines.append(f"| {MARKS[word]} | `{t.case.id}` | {word}{': ' + note if note and word != 'within noise' else ''}"
                     f" | {ratio} | {ci} | {len(t.base)} | {spread} | {base} | {new} |")
    lines += _energy_lines(trials)
    lines += [
        "",
        f"Legend: `+` slower (regression: median ratio above {1 + rule.threshold:.2f} and its 95% interval above "
        f"{1 + rule.threshold / 2:.3f}), `-` faster, `~` within noise (the interval lies inside the threshold band), "
        "`?` undecided (budget spent before the interval was narrow enough), `!` failing on NEW, "
        "`*` failing on BASE only, `s` skipped. "
        "Each pair is one round of each side back to back; a round's figure is the median of its samples; each "
        "round runs in one of the side's servers, drawn at random, and the interval counts the spread between "
        "servers, so that no single process's bias decides. `servers differ`: the largest gap between two "
        "servers of one side running the same code (their median paired ratios); where it exceeds the "
        "threshold, a process's luck is as large as the change to be judged, and the verdict stays undecided "
        "unless the change is larger still. A case whose pairs first say slower or faster is measured again in "
        f"fresh servers (new processes): the verdict stands once their median ratio, over at least "
        f"{rule.min_pairs // 2} pairs, lies past half the threshold in the same direction.",
    ]
    return "\n".join(lines) + "\n"
