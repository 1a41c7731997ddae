"""The history page: README.md and a static index.html with the latest change points and one
trend plot per machine and suite, for the cases' times and, where interleaved runs stored them,
for the techniques' paired speedups over their baselines in the same run (the relative series).
Rendering only: every change is decided in detect.py.

The page is plain files (PNG plots beside the HTML, inline CSS, no JavaScript), so a CI job
can publish the directory as it is (gh-pages, an artifact). Plots are written first and the
two pages last, atomically, so a reader never finds a page that points at a missing plot.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps

from bench_lib.atomic import atomic_write_text
from bench_lib.history.detect import FALSE_ALARM_RATE, MIN_SEGMENT, Change
from bench_lib.history.series import History, Series
from bench_lib.report.plots import _grid, _plain_log_y, _save
from bench_lib.report.render_compare import MARKS
from bench_lib.results.format import markdown_table
from bench_lib.results.store import safe_label

__all__ = ["Page", "changes_table", "trend_plot", "build_page"]

_MAX_TICKS = 20
_MAX_LINES = 10  # cases per panel: more than tab10 can tell apart get a panel of their own
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


def _panels(series: list[Series]) -> list[tuple[str, list[Series]]]:
    """Per workload, in chunks of at most _MAX_LINES cases."""
    out = []
    for workload in sorted({s.case.workload for s in series}):
        cases = [s for s in series if s.case.workload == workload]
        chunks = [cases[i:i + _MAX_LINES] for i in range(0, len(cases), _MAX_LINES)]
        out += [(workload if len(chunks) == 1 else f"{workload} ({i + 1}/{len(chunks)})", chunk)
                for i, chunk in enumerate(chunks)]
    return out


def trend_plot(h: History, suite: str, path: Path, relative: bool = False) -> Path | None:
    """Per workload, each case's figure relative to its median over the history (log), with its
    95% interval as a band and a dashed line at each change, commits on the x axis. `relative`:
    the techniques' paired speedups over their baselines (a slowdown is a drop)."""
    panels = _panels([s for s in _figure_series(h, relative) if s.case.suite == suite])
    if not panels:
        return None
    what = ("each technique's same-run speedup over its baseline, relative to its median over the history"
            if relative else "each case's time relative to its median over the history")
    fig, axes = _grid(len(panels), f"{suite} on {h.machine}\n{what}", 7.0, 4.2)
    x_of = {c: i for i, c in enumerate(h.commits)}
    step = max(1, -(-len(h.commits) // _MAX_TICKS))
    palette = colormaps["tab10"]
    for ax, (title, cases) in zip(axes, panels, strict=True):
        span = []
        for i, s in enumerate(cases):
            x = [x_of[p.commit] for p in s.points]
            ref = float(np.median([p.value for p in s.points]))
            y = [p.value / ref for p in s.points]
            lo, hi = zip(*(p.band for p in s.points), strict=True)
            color = palette(i)
            label = _case_label(s) + (f" (x{ref:.2f})" if relative else "")
            ax.plot(x, y, marker="o", markersize=3, color=color, label=label)
            ax.fill_between(x, np.divide(lo, ref), np.divide(hi, ref), color=color, alpha=0.15, linewidth=0)
            span += [min(lo) / ref, max(hi) / ref]
            for c in s.changes:
                at = x_of[s.points[c.first_bad].commit] - (0.5 if c.kind == "step" else 0)
                ax.axvline(at, color=color, linestyle="--", linewidth=1)
                ax.annotate(f"x{c.ratio:.2f}", (at, 1), color=color, fontsize=8, rotation=90, va="bottom")
        ticks = list(range(0, len(h.commits), step))
        ax.set_xticks(ticks, [h.commits[t].label[:12] for t in ticks], rotation=60, ha="right", fontsize=7)
        ax.set_xlim(-0.5, len(h.commits) - 0.5)
        ax.set_title(title)
        ax.set_xlabel("commit (oldest left)")
        if max(span) / min(span) > _LOG_ABOVE:
            _plain_log_y(ax)
        ax.set_ylabel(("speedup" if relative else "time") + " / its median over the history"
                      + (" (log)" if ax.get_yscale() == "log" else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


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


def _inline_html(markdown: str) -> str:
    """The little inline markdown these lines use (**bold**, `code`) as escaped HTML."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(markdown))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em}"
        "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        "th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3}")


def _html_table(table: pd.DataFrame) -> str:
    return table.to_html(index=False, escape=True, border=0) if not table.empty else "<p><i>(no change)</i></p>"


def _html(histories: list[History], tables: tuple[pd.DataFrame, pd.DataFrame], plots: list[tuple[str, Path]],
          threshold: float) -> str:
    esc = html.escape
    items = "".join(f"<li>{_inline_html(line)}</li>" for line in _machines(histories))
    figures = "".join(f'<h3>{esc(title)}</h3><img src="{esc(p.name)}" alt="{esc(title)}">' for title, p in plots)
    legend = _inline_html(_legend(threshold))
    relative = (f"<h2>{_RELATIVE_TITLE}</h2>{_html_table(tables[1])}<p>{_inline_html(_RELATIVE_LEGEND)}</p>"
                if any(h.relative for h in histories) else "")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>effbench history</title>'
            f"<style>{_CSS}</style></head><body><h1>effbench history</h1><h2>Latest change points</h2>"
            f"<ul>{items}</ul>{_html_table(tables[0])}<p>{legend}</p>{relative}"
            f"<h2>Trends</h2>{figures}</body></html>\n")


def build_page(histories: list[History], out: Path, threshold: float) -> Page:
    """Draw the trend plots, then write README.md and index.html into `out`."""
    tables = (changes_table(histories), changes_table(histories, relative=True))
    plots: list[tuple[str, Path]] = []
    for i, h in enumerate(histories):
        for suite in sorted({s.case.suite for s in h.series}):
            for relative, kind, what in ((False, "", ""), (True, "-speedups", ", same-run speedups")):
                path = trend_plot(h, suite, out / f"history-{i}-{safe_label(h.machine)}-{suite}{kind}.png", relative)
                if path:
                    plots.append((f"{suite} on {h.machine}{what}", path))
    summary = _summary(histories, tables, threshold)
    images = "".join(f"### {title}\n\n![{title}]({p.name})\n\n" for title, p in plots)
    readme, index = out / "README.md", out / "index.html"
    atomic_write_text(readme, f"# effbench history\n\n{summary}\n## Trends\n\n{images}")
    atomic_write_text(index, _html(histories, tables, plots, threshold))
    return Page(readme, index, summary, [p for _, p in plots])
