"""The history page: README.md and its self-contained index.html with the latest change points and, per
machine and suite, a trend plot of the cases that changed (the largest changes, at most ten), for the cases'
times and, where interleaved runs stored them, for the techniques' paired speedups over their baselines in the
same run (the relative series); a line where no case changed. Rendering only: every change is decided in
detect.py.

The page is one file (the plots embedded, inline CSS, `report.html`), so a CI job can publish the directory as
it is (gh-pages, an artifact); it links the report pages beside it that name its runs. Plots are written first
and the two pages last, atomically, so a reader never finds a README that points at a missing plot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps

from bench_lib.atomic import atomic_write_text
from bench_lib.history.detect import FALSE_ALARM_RATE, MIN_SEGMENT, Change
from bench_lib.history.series import History, Series
from bench_lib.report.html import write_page
from bench_lib.report.plots import _grid, _plain_log_y
from bench_lib.report.png import save_png
from bench_lib.report.render_compare import MARKS
from bench_lib.results.format import markdown_table
from bench_lib.results.store import safe_label

__all__ = ["Page", "changes_table", "changed_series", "trend_plot", "build_page"]

_MAX_TICKS = 20
_MAX_LINES = 10  # cases per plot: as many as tab10 tells apart; the largest changes
_LOG_ABOVE = 3.0  # a panel whose values span more than this factor gets a log y axis


@dataclass
class Page:
    """What was written, and the markdown of the change points (what the command prints)."""

    readme: Path
    index: Path
    summary: str
    plots: list[Path] = field(default_factory=list)


def _case_label(s: Series) -> str:
    return "-".join([s.case.variant, *(f"{k}{v}" for k, v in s.case.params)])


def _ratio(c: Change) -> str:
    return f"{c.ratio:.3f} [{c.low:.3f}, {c.high:.3f}]"


def _figure_series(h: History, relative: bool) -> tuple[Series, ...]:
    return h.relative if relative else h.series


def changes_table(histories: list[History], relative: bool = False) -> pd.DataFrame:
    """One row per case with a change, its latest change first; newest changes at the top.
    `relative`: the paired-speedup series (a slower technique is a speedup below 1 after/before)."""
    rows = []
    for h in histories:
        order = {c: i for i, c in enumerate(h.commits)}
        for s in _figure_series(h, relative):
            c = s.latest_change
            if c is None:
                continue
            good, bad = s.points[c.last_good].commit, s.points[c.first_bad].commit
            row = {"_at": order[bad], "_seen": len(h.commits),
                   "": MARKS["slower" if s.slower(c) else "faster"], "machine": h.machine,
                   "case": f"{s.case.suite}/{s.case.id}"}
            if relative:
                row["over baseline"] = s.baseline
            row |= {"change": c.kind, "last good": f"{good.label} {good.time[:10]}",
                    "first bad": f"{bad.label} {bad.time[:10]}",
                    ("speedup after/before [95% CI]" if relative else "after/before [95% CI]"): _ratio(c),
                    "z": f"{c.z:.1f}", "changes": str(len(s.changes))}
            rows.append(row)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    df["_age"] = df["_seen"] - df["_at"]
    return df.sort_values(["_age", "case"]).drop(columns=["_at", "_seen", "_age"])


def _size(s: Series) -> float:
    """How far the case's latest change moved it (log scale, either way)."""
    c = s.latest_change
    return abs(np.log(c.ratio)) if c else 0.0


def changed_series(h: History, suite: str, relative: bool = False) -> tuple[list[Series], int]:
    """The cases of a suite with a change, the largest latest change first, at most _MAX_LINES of them; and
    how many had one. Unchanged cases stay out of the plot: the reader came for what moved."""
    changed = sorted((s for s in _figure_series(h, relative) if s.case.suite == suite and s.changes),
                     key=lambda s: (-_size(s), s.case.id))
    return changed[:_MAX_LINES], len(changed)


def trend_plot(h: History, suite: str, path: Path, relative: bool = False) -> Path | None:
    """The cases of a suite that changed (`changed_series`), each relative to its median over the history
    (log where they span more than _LOG_ABOVE), with its 95% interval as a band and a dashed line at each
    change, commits on the x axis; None where no case changed. `relative`: the techniques' paired speedups
    over their baselines (a slowdown is a drop)."""
    cases, changed = changed_series(h, suite, relative)
    if not cases:
        return None
    what = ("same-run speedup over its baseline" if relative else "time") + " / its median over the history"
    shown = f"the {len(cases)} largest of {changed} changes" if changed > len(cases) else \
        f"{changed} case{'s' if changed > 1 else ''} with a change"
    fig, [ax] = _grid(1, f"{suite} on {h.machine}: {shown}", 11.0, 4.8)
    x_of = {c: i for i, c in enumerate(h.commits)}
    step = max(1, -(-len(h.commits) // _MAX_TICKS))
    palette = colormaps["tab10"]
    span = []
    for i, s in enumerate(cases):
        x = [x_of[p.commit] for p in s.points]
        ref = float(np.median([p.value for p in s.points]))
        lo, hi = zip(*(p.band for p in s.points), strict=True)
        color = palette(i)
        c = s.latest_change
        label = f"{s.case.id}: x{c.ratio:.2f} {c.kind}" + (f" (speedup x{ref:.2f})" if relative else "")
        ax.plot(x, [p.value / ref for p in s.points], marker="o", markersize=3, color=color, label=label)
        ax.fill_between(x, np.divide(lo, ref), np.divide(hi, ref), color=color, alpha=0.15, linewidth=0)
        span += [min(lo) / ref, max(hi) / ref]
        for change in s.changes:
            ax.axvline(x_of[s.points[change.first_bad].commit] - (0.5 if change.kind == "step" else 0),
                       color=color, linestyle="--", linewidth=1)
    ticks = list(range(0, len(h.commits), step))
    ax.set_xticks(ticks, [h.commits[t].label[:12] for t in ticks], rotation=60, ha="right", fontsize=7)
    ax.set_xlim(-0.5, len(h.commits) - 0.5)
    ax.set_xlabel("commit (oldest left); dashed: a change, between its last good and first bad commit")
    if max(span) / min(span) > _LOG_ABOVE:
        _plain_log_y(ax)
    ax.set_ylabel(what + (" (log)" if ax.get_yscale() == "log" else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    return save_png(fig, path)


def _legend(threshold: float) -> str:
    return (f"A **step** is reported where a split of a case's history beats the noise at a false-alarm rate of "
            f"{FALSE_ALARM_RATE:g} per case (Bonferroni over the splits tried), each side holds at least "
            f"{MIN_SEGMENT} commits and the change exceeds {threshold:.0%}. The noise of a commit is the larger "
            "of what its runs' own 95% intervals allow and the spread between runs measured over the history "
            "itself. `last good` and `first bad` bound where the step plausibly lies (adjacent when certain); "
            "where a straight line fits as well it is a **drift** instead, from the `last good` to the "
            "`first bad` commit of the stretch. "
            "`after/before` is the figure's ratio (time: > 1 is slower) with its 95% interval. `+` slower, "
            "`-` faster. A case without a change may still hide one smaller than its noise.")


_RELATIVE_LEGEND = ("Same-run speedups: a technique's paired speedup over its baseline in the same run, with its "
                    "stored 95% interval, as a history of its own, searched by the same rule. The run's machine "
                    "state, which moves whole runs together, cancels from it, so it shows a technique's own change "
                    "where its time cannot. `speedup after/before` below 1 is a drop of the speedup: the "
                    "technique became slower against its baseline (`+`). A change of the baseline itself moves "
                    "every technique over it the other way.")


def _machines(histories: list[History]) -> list[str]:
    """One markdown line per machine: what its history holds."""
    lines = []
    for h in histories:
        first, last = h.commits[0], h.commits[-1]
        relative = (f"; {len(h.relative)} same-run speedups, {sum(1 for s in h.relative if s.changes)} with a change"
                    if h.relative else "")
        lines.append(f"**{h.machine}**: {len(h.series)} cases, {h.runs} runs over {len(h.commits)} commits "
                     f"(`{first.label}` {first.time[:10]} to `{last.label}` {last.time[:10]}); "
                     f"{sum(1 for s in h.series if s.changes)} with a change{relative}")
    return lines


_RELATIVE_TITLE = "Latest change points of the same-run speedups"


def _summary(histories: list[History], tables: tuple[pd.DataFrame, pd.DataFrame], threshold: float) -> str:
    table, relative = tables
    lines = ["## Latest change points", "", *(f"- {line}" for line in _machines(histories))]
    lines += ["", markdown_table(table), "", _legend(threshold), ""]
    if any(h.relative for h in histories):
        lines += [f"## {_RELATIVE_TITLE}", "", markdown_table(relative), "", _RELATIVE_LEGEND, ""]
    return "\n".join(lines)


def _trends(histories: list[History], out: Path) -> tuple[list[str], list[Path]]:
    """The trend section's markdown, a plot per machine and suite where a case changed, a line where none did."""
    lines, drawn = ["## Trends", ""], []
    for i, h in enumerate(histories):
        for suite in sorted({s.case.suite for s in h.series}):
            for relative, kind, what in ((False, "", ""), (True, "-speedups", ", same-run speedups")):
                series = [s for s in _figure_series(h, relative) if s.case.suite == suite]
                if not series:
                    continue
                title = f"{suite} on {h.machine}{what}"
                path = trend_plot(h, suite, out / f"history-{i}-{safe_label(h.machine)}-{suite}{kind}.png", relative)
                if path:
                    drawn.append(path)
                    lines += [f"### {title}", "", f"![{title}]({path.name})", ""]
                elif len(h.commits) == 1:
                    lines += [f"- {title}: one commit so far, {len(series)} cases; a change needs {MIN_SEGMENT} "
                              "commits on each side of it."]
                else:
                    lines += [f"- {title}: no change in {len(series)} cases over {len(h.commits)} commits."]
        lines.append("")
    return lines, drawn


def _report_links(histories: list[History], out: Path) -> list[str]:
    """Links to the report pages beside the history's directory (`effbench report` writes reports/<run>/ by
    default, the history reports/history/) whose report names a run of the history."""
    runs = {r for h in histories for s in (*h.series, *h.relative) for p in s.points for r in p.runs}
    here = out.resolve()
    links = []
    for page in sorted(out.resolve().parent.glob("*/index.html")):
        readme = page.with_name("README.md")
        if page.parent == here or not readme.is_file():
            continue
        text = readme.read_text(errors="replace")
        if any(run in text for run in runs):
            links.append(f"- [{page.parent.name}](../{page.parent.name}/index.html)")
    return ["## Reports of these runs", "", *links, ""] if links else []


def build_page(histories: list[History], out: Path, threshold: float) -> Page:
    """Draw the trend plots, then write README.md and its self-contained index.html into `out`."""
    tables = (changes_table(histories), changes_table(histories, relative=True))
    summary = _summary(histories, tables, threshold)
    trends, plots = _trends(histories, out)
    readme = out / "README.md"
    atomic_write_text(readme, "\n".join(["# effbench history", "", summary, *trends, *_report_links(histories, out)]))
    return Page(readme, write_page(readme, "effbench history"), summary, plots)
