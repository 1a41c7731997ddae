"""Markdown of a Comparison, fit for a terminal, a PR comment or `$GITHUB_STEP_SUMMARY`.

Rendering only: every verdict is decided in compare.py, the findings that open it in compare_findings.py.
Marks as in asv: `+` slower, `-` faster, `~` within noise, `!` newly failing, `x` not comparable.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from bench_lib.report.compare import Comparison, EnergyChange, Verdict
from bench_lib.report.compare_findings import comparison_findings
from bench_lib.results.environment import comparability_key
from bench_lib.results.format import fmt_num, markdown_table, select_time_unit

__all__ = ["MARKS", "render_comparison", "environment_differences"]

MARKS = {"slower": "+", "faster": "-", "within noise": "~", "failed": "!", "not comparable": "x"}


def environment_differences(base_envs: tuple[dict, ...], new_envs: tuple[dict, ...]) -> list[tuple[str, str, str]]:
    """(field, BASE values, NEW values) for every comparability field that differs."""
    def values(envs: tuple[dict, ...], key: str) -> str:
        return ", ".join(sorted({str(comparability_key(e).get(key)) for e in envs})) or "?"

    keys = comparability_key({}).keys()
    return [(k, values(base_envs, k), values(new_envs, k)) for k in keys
            if values(base_envs, k) != values(new_envs, k)]


def _ci(v: Verdict) -> str:
    e = v.estimate
    return f"{e.ratio:.3f} [{e.low:.3f}, {e.high:.3f}]" if e else "-"


def _case_rows(verdicts: tuple[Verdict, ...]) -> tuple[pd.DataFrame, str]:
    medians = [x for v in verdicts if v.estimate for x in (v.estimate.base, v.estimate.new)]
    scale, unit = select_time_unit(medians)
    rows = [{"": MARKS[v.kind], "case": f"{v.case.suite}/{v.case.id}", "verdict": v.kind,
             f"BASE ({unit})": fmt_num(v.estimate.base / scale) if v.estimate else "-",
             f"NEW ({unit})": fmt_num(v.estimate.new / scale) if v.estimate else "-",
             "NEW/BASE [95% CI]": _ci(v), "bar": f"{v.bar:.0%}" if v.estimate else "-",
             "runs B/N": f"{v.estimate.base_runs}/{v.estimate.new_runs}" if v.estimate else "-",
             "note": v.note or ""} for v in verdicts]
    return pd.DataFrame(rows), unit


def _relative_rows(verdicts: tuple[Verdict, ...]) -> pd.DataFrame:
    rows = [{"": MARKS[v.kind], "technique": f"{v.case.suite}/{v.case.id}",
             "baseline": v.baseline.variant if v.baseline else "-", "verdict": v.kind,
             "BASE speedup": f"{1 / v.estimate.base:.3f}x", "NEW speedup": f"{1 / v.estimate.new:.3f}x",
             "time ratio NEW/BASE [95% CI]": _ci(v), "bar": f"{v.bar:.0%}", "note": v.note or ""}
            for v in verdicts if v.estimate]
    return pd.DataFrame(rows)


def _energy_rows(changes: tuple[EnergyChange, ...]) -> pd.DataFrame:
    return pd.DataFrame([{"case": f"{c.case.suite}/{c.case.id}", "BASE (J/sample)": fmt_num(c.base_j),
                          "NEW (J/sample)": fmt_num(c.new_j), "NEW/BASE": f"{c.ratio:.3f}",
                          "runs B/N": f"{c.base_runs}/{c.new_runs}"} for c in changes])


def _run_list(label: str, names: list[str], commits: list[str]) -> str:
    items = ", ".join(f"`{n}` ({c})" for n, c in zip(names, commits, strict=True))
    return f"- **{label}**: {len(names)} run{'s' if len(names) != 1 else ''}: {items}"


def render_comparison(cmp: Comparison, base_names: list[str], new_names: list[str], base_commits: list[str],
                      new_commits: list[str]) -> str:
    counts = Counter(v.kind for v in cmp.verdicts)
    regressions = cmp.regressions
    head = (f"**REGRESSION: {len(regressions)} verdict(s) slower or newly failing**" if regressions
            else "**No regression**")
    lines = ["## effbench compare", "", head + f" (threshold {cmp.threshold:.0%}).", "",
             _run_list("BASE", base_names, base_commits), _run_list("NEW", new_names, new_commits), ""]
    diffs = environment_differences(cmp.base_envs, cmp.new_envs)
    lines += comparison_findings(cmp, diffs)
    if diffs:
        lines += ["> [!WARNING]", "> **Different machines or versions: timing ratios mix the code change with the "
                  "environment change.**"]
        lines += [f"> - {k}: BASE `{b}` vs NEW `{n}`" for k, b, n in diffs] + [""]
    else:
        key = comparability_key(cmp.base_envs[0]) if cmp.base_envs else {}
        lines += ["Same machine and versions on both sides: " + ", ".join(f"{k} `{v}`" for k, v in key.items()
                                                                          if v not in (None, 0)) + ".", ""]
    few = min(len(base_names), len(new_names))
    judged = [v for v in (*cmp.verdicts, *cmp.relative) if v.estimate is not None]
    single = sorted({v.case.id for v in judged if v.estimate.single_run})
    if few < 2 and len(single) < len({v.case.id for v in judged}):
        lines += ["> [!NOTE]", "> One run on a side, each measured in several processes: every process is a unit "
                  "of the intervals (the `runs B/N` column counts them), so they hold the spread between processes; "
                  "a machine state that lasted a whole run is not in them (docs/validation/rerun-validation).", ""]
    if few < 2 and single:
        named = ", ".join(f"`{c}`" for c in single[:3]) + (f" and {len(single) - 3} more" if len(single) > 3 else "")
        lines += ["> [!CAUTION]", f"> One run of one process on a side for {len(single)} case(s) ({named}): **the "
                  "spread between runs is unknown** there, and on a noisy machine it dominates "
                  "(docs/validation/compare-rates). Their bar for a verdict is raised to the single-run floor; pass "
                  "several runs a side (`BASE1,BASE2,...` or a directory of runs) for intervals that include it.", ""]
    if few >= 2:
        lines += [f"Intervals are hierarchical bootstraps over runs, then samples ({len(base_names)} BASE and "
                  f"{len(new_names)} NEW runs): they include the spread between runs.", ""]
    lines += ["Verdicts: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in MARKS) + ".", ""]
    table, unit = _case_rows(cmp.verdicts)
    lines += [f"### Per case (median of run medians, {unit})", "", markdown_table(table), ""]
    rel = _relative_rows(cmp.relative)
    if not rel.empty:
        lines += ["### Relative to the same-run baseline",
                  "", "A technique's time over its baseline's (fp32 on CPU, bf16 on GPU, sync for training) in the "
                  "same run cancels most of the machine's state; a ratio above 1 means the technique lost ground "
                  "against its baseline.", "",
                  markdown_table(rel), ""]
    if cmp.energy:
        lines += ["### Energy per sample (cases both sides measured it for)", "",
                  "The median over each side's runs, from the device's energy counter; shown, not judged: a run "
                  "holds one energy figure per case, so there is no interval to judge a change by. NEW/BASE > 1 "
                  "costs more energy.", "", markdown_table(_energy_rows(cmp.energy)), ""]
    lines += ["Legend: `+` slower (beyond the bar, interval above 1), `-` faster, `~` within noise (`~` with a note: "
              "beyond the bar but not significant, or significant but small), `!` failed in NEW only, `x` not "
              "comparable (missing, skipped, or failed on a side). NEW/BASE > 1 is slower. A `~` does not prove "
              "there was no change: it may be hidden in the noise."]
    return "\n".join(lines) + "\n"
