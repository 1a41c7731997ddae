"""The report's PNG plots, drawn with matplotlib's object API (no pyplot state, no display).

Each function takes a derived frame and a path, writes one PNG and returns its path, or
None when there is nothing to draw. Every plot stands without the text: a title, axis
labels with units, a legend, log axes where the data spans decades.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from bench_lib.report.frames import roofline_tokens_per_s
from bench_lib.report.png import save_png
from bench_lib.report.references import Reference
from bench_lib.results.format import fmt_bytes, fmt_num, select_time_unit

__all__ = [
    "latency_vs_batch",
    "speedup_vs_accuracy",
    "work_per_joule",
    "collective_vs_size",
    "loss_vs_wall",
    "training_throughput",
    "decode_tokens_vs_batch",
]

def _grid(n: int, title: str, width: float = 6.0, height: float = 4.2, columns: int = 2) -> tuple[Figure, list[Axes]]:
    cols = min(n, columns)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=13, fontweight="bold")
    return fig, axes[:n]


def _spans_decades(values: pd.Series, decades: float = 1.0) -> bool:
    v = values[values > 0]
    return not v.empty and math.log10(v.max() / v.min()) >= decades


def _plain_log_y(ax: Axes, suffix: str = "") -> None:
    """Log y with plain tick labels (0.5, 2, 300), not powers of ten: easier to read off."""
    ax.set_yscale("log")
    fmt = FuncFormatter(lambda y, _pos: f"{y:g}{suffix}")
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _pos: f"{y:g}{suffix}" if _leading_digit(y) in (2, 5) else ""))


def _leading_digit(y: float) -> int:
    return round(y / 10 ** math.floor(math.log10(y))) if y > 0 else 0


def _size_axis(ax: Axes) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(lambda x, _pos: fmt_bytes(x).replace(".0 ", " "))


def _panels(frame: pd.DataFrame, by: list[str]) -> list[tuple[str, pd.DataFrame]]:
    return [(" / ".join(str(k) for k in (key if isinstance(key, tuple) else (key,))), sub)
            for key, sub in frame.groupby(by, sort=True)]


def _batch_plot(trade: pd.DataFrame, path: Path, title: str, ylabel: str,
                value: Callable[[pd.DataFrame], tuple[pd.Series, pd.Series, pd.Series]]) -> Path | None:
    if trade.empty or trade["param.batch"].nunique() < 1:
        return None
    panels = _panels(trade, ["workload", "device"])
    fig, axes = _grid(len(panels), title)
    for ax, (name, sub) in zip(axes, panels, strict=True):
        for label, line in sub.groupby(["technique", "run"] if trade["run"].nunique() > 1 else ["technique"]):
            line = line.sort_values("param.batch")
            y, lo, hi = value(line)
            ax.errorbar(line["param.batch"], y, yerr=[y - lo, hi - y], marker="o", capsize=3,
                        label=" / ".join(map(str, label)))
        ax.set_title(name)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
        ax.set_xlabel("batch size (samples, log2)")
        ax.set_ylabel(ylabel)
        _plain_log_y(ax)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, title="technique")
    return save_png(fig, path)


def latency_vs_batch(trade: pd.DataFrame, path: Path) -> Path | None:
    scale, unit = select_time_unit(trade["ci_low_s"]) if not trade.empty else (1.0, "s")
    return _batch_plot(trade, path, "Inference latency per batch (median, 95% CI)", f"latency per batch ({unit}, log)",
                       lambda f: (f["median_s"] / scale, f["ci_low_s"] / scale, f["ci_high_s"] / scale))


def speedup_vs_accuracy(trade: pd.DataFrame, path: Path) -> Path | None:
    """Speed against quality for one device: a panel per workload and batch, one row per technique with its
    speedup over the baseline and 95% interval, its quality change in the label; ringed: on the speed/quality
    front; red: below the quality floor. Rows, not a scatter: most techniques cost no accuracy at all, and a
    scatter stacks them on one vertical line."""
    from bench_lib.report.findings import front_indices, quality_of

    trade = trade.dropna(subset=["speedup"])
    if trade.empty:
        return None
    panels = _panels(trade, [*(["run"] if trade["run"].nunique() > 1 else []), "workload", "param.batch"])
    rows = [len(sub) + 2 for _, sub in panels]  # a panel's height follows its techniques
    fig = Figure(figsize=(9.0, 0.27 * sum(rows) + 0.8), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": rows}).ravel().tolist()
    fig.suptitle(f"Speedup over the baseline and quality, {trade['device'].iloc[0]} (95% CI)\nring: on the "
                 "speed/quality front; orange: slower than the baseline; red: below the quality floor",
                 fontsize=11, fontweight="bold")
    for ax, (name, sub) in zip(axes, panels, strict=True):
        sub = sub.sort_values("speedup")
        quality = {i: quality_of(r) for i, r in sub.iterrows()}
        front = set(front_indices(sub, quality))
        ys = range(len(sub))
        for y, (i, r) in zip(ys, sub.iterrows(), strict=True):
            bad = quality[i] is not None and not quality[i].passes
            color = ("tab:red" if bad else "black" if r["is_baseline"] else
                     "tab:orange" if r["speedup_high"] < 1 else "tab:blue")
            ax.errorbar(r["speedup"], y, xerr=[[r["speedup"] - r["speedup_low"]], [r["speedup_high"] - r["speedup"]]],
                        marker="o", color=color, capsize=3, linestyle="none")
            if i in front:
                ax.scatter(r["speedup"], y, s=180, facecolors="none", edgecolors="black", linewidths=1.2, zorder=3)
        labels = [r["technique"] + ("  (baseline)" if r["is_baseline"] else "" if quality[i] is None else
                                    f"  ({quality[i].text.replace(' accuracy', '')})") for i, r in sub.iterrows()]
        ax.set_yticks(list(ys), labels, fontsize=8)
        ax.axvline(1.0, color="black", linewidth=0.8)
        *where, batch = name.split(" / ")
        ax.set_title(f"{' / '.join(where)}, batch {batch}", fontsize=10)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}x"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _pos: f"{x:g}x" if _leading_digit(x) in (2, 5) else ""))
        ax.set_ylim(-0.7, len(sub) - 0.3)
        ax.grid(True, axis="x", which="both", alpha=0.3)
    axes[-1].set_xlabel("speedup over the baseline, same batch (log; right = faster)")
    return save_png(fig, path)


def work_per_joule(frame: pd.DataFrame, path: Path, title: str, label: Callable[[pd.Series], str]) -> Path | None:
    """Tokens per joule (samples per joule where a workload has no tokens), one bar per row, one
    panel per workload, device and run; None when no row carries energy."""
    token, sample = (frame.get(f"energy_j_per_{unit}", pd.Series(math.nan, index=frame.index))
                     for unit in ("token", "sample"))
    frame = frame.assign(_unit=token.notna().map({True: "tokens", False: "samples"}),
                         _per_j=1 / token.fillna(sample)).dropna(subset=["_per_j"])
    if frame.empty:
        return None
    panels = _panels(frame, ["workload", "device", *(["run"] if frame["run"].nunique() > 1 else [])])
    fig, axes = _grid(len(panels), title)
    for ax, (name, sub) in zip(axes, panels, strict=True):
        rough = sub["energy_warnings"].map(lambda w: isinstance(w, list) and bool(w)) if "energy_warnings" in sub \
            else pd.Series(False, index=sub.index)
        ax.bar(range(len(sub)), sub["_per_j"], color=[f"C{i % 10}" for i in range(len(sub))],
               hatch=["//" if r else "" for r in rough])
        ax.set_xticks(range(len(sub)), [label(r) + ("\n(rough)" if f else "") for (_, r), f in
                                        zip(sub.iterrows(), rough, strict=True)], fontsize=8)
        ax.set_title(name)
        ax.set_ylabel(f"{sub['_unit'].iloc[0]} per joule" + (" (log)" if _spans_decades(sub["_per_j"]) else ""))
        if _spans_decades(sub["_per_j"]):
            _plain_log_y(ax)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    return save_png(fig, path)


def collective_vs_size(col: pd.DataFrame, path: Path, metric: str, refs: list[Reference]) -> Path | None:
    """busbw or latency against message size, one panel per op, one line per backend and dtype."""
    if col.empty:
        return None
    if metric == "busbw":
        col = col.dropna(subset=["busbw_GBps"]) if "busbw_GBps" in col else col.iloc[0:0]
        if col.empty:
            return None
        scale, ylabel, title = 1.0, "bus bandwidth (GB/s, log)", "Collective bus bandwidth vs message size"
    else:
        scale, unit = select_time_unit(col["median_s"])
        ylabel, title = f"latency median ({unit}, log)", "Collective latency vs message size (median, 95% CI)"
    panels = _panels(col, ["variant"])
    fig, axes = _grid(len(panels), title)
    for ax, (op, sub) in zip(axes, panels, strict=True):
        keys = ["workload", "param.dtype", *(["run"] if col["run"].nunique() > 1 else [])]
        keys = [k for k in keys if k in sub]
        for label, line in sub.groupby(keys):
            line = line.sort_values("param.size_bytes")
            if metric == "busbw":
                ax.plot(line["param.size_bytes"], line["busbw_GBps"], marker="o", label=" / ".join(map(str, label)))
            else:
                y = line["median_s"] / scale
                ax.errorbar(line["param.size_bytes"], y, yerr=[y - line["ci_low_s"] / scale,
                                                              line["ci_high_s"] / scale - y],
                            marker="o", capsize=3, label=" / ".join(map(str, label)))
        for ref in refs:
            value = ref.busbw_GBps if metric == "busbw" else (ref.latency_s / scale if ref.latency_s else None)
            if ref.op == op and value is not None and ref.backend in set(sub["workload"]):
                ax.plot(ref.size_bytes, value, marker="x", color="black", markersize=9, linestyle="none")
        if any(r.op == op for r in refs):
            ax.plot([], [], marker="x", color="black", linestyle="none", label="reference (same kind of machine)")
        ax.set_title(f"{op} ({int(sub['param.world_size'].max()) if 'param.world_size' in sub else '?'} ranks)")
        _size_axis(ax)
        ax.set_xlabel("message size (log2)")
        ax.set_ylabel(ylabel)
        _plain_log_y(ax)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, title="backend / dtype")
    return save_png(fig, path)


def loss_vs_wall(tr: pd.DataFrame, path: Path) -> Path | None:
    """Loss against wall-clock seconds. With convergence cases: per strategy the median over seeds of the
    held-out loss at the shared checkpoints, a band from the lowest to the highest seed, and sync's target.
    Otherwise (runs without them) the training-loss curves, smoothed by a trailing mean."""
    from bench_lib.report.frames import convergence_rows

    conv = convergence_rows(tr)
    if "eval_loss_band" in conv:
        conv = conv[conv["eval_loss_band"].map(lambda b: isinstance(b, list) and len(b) > 0)]
        if not conv.empty:
            return _held_out_bands(conv, path)
    tr = convergence_rows(tr, convergence=False)
    if "loss_curve" not in tr:
        return None
    tr = tr[tr["loss_curve"].map(lambda c: isinstance(c, list) and len(c) > 0)]
    if tr.empty:
        return None
    panels = _panels(tr, ["workload", "device"])
    fig, axes = _grid(len(panels), f"Training loss vs wall-clock time (trailing mean of {SMOOTH_WINDOW} points)")
    for ax, (name, sub) in zip(axes, panels, strict=True):
        for _, r in sub.sort_values(["variant"]).iterrows():
            curve = pd.DataFrame(r["loss_curve"], columns=["wall_s", "step", "loss"])
            label = f"{r['variant']} / {r.get('param.backend', '?')}" + (
                f" / {r['run']}" if tr["run"].nunique() > 1 else "")
            ax.plot(curve["wall_s"], curve["loss"].rolling(SMOOTH_WINDOW, min_periods=1).mean(), label=label)
            target = r.get("target_loss")
            if isinstance(target, (int, float)) and math.isfinite(target):
                ax.axhline(target, color="grey", linestyle=":", linewidth=1)
        _loss_axes(ax, name, pd.Series([p[2] for c in sub["loss_curve"] for p in c]), "training loss")
        ax.legend(fontsize=8, title="strategy / backend (dotted: target)")
    return save_png(fig, path)


SMOOTH_WINDOW = 8  # logged points in the trailing mean of a training-loss curve


def _loss_axes(ax: Axes, title: str, losses: pd.Series, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("wall-clock time (s)")
    log = _spans_decades(losses)
    ax.set_ylabel(ylabel + (" (log)" if log else ""))
    if log:
        _plain_log_y(ax)
    ax.grid(True, alpha=0.3)


def _held_out_bands(conv: pd.DataFrame, path: Path) -> Path:
    """One panel per workload, device and backend: each strategy's median held-out loss over seeds, its
    min-max band, and the target (dotted)."""
    conv = conv.assign(panel_backend=conv.get("param.backend", "?"))
    panels = _panels(conv, ["workload", "device", "panel_backend"])
    fig, axes = _grid(len(panels), "Held-out loss vs wall time, over seeds")
    for ax, (name, sub) in zip(axes, panels, strict=True):
        for i, (_, r) in enumerate(sub.sort_values(["variant"]).iterrows()):
            band = pd.DataFrame(r["eval_loss_band"], columns=["t", "median", "low", "high"])
            label = f"{r['variant']} ({int(r.get('convergence_seeds') or 0)} seeds)" + (
                f" / {r['run']}" if conv["run"].nunique() > 1 else "")
            color = f"C{i % 10}"
            ax.plot(band["t"], band["median"], color=color, marker=".", label=label)
            ax.fill_between(band["t"], band["low"], band["high"], color=color, alpha=0.15, linewidth=0)
        targets = sub["convergence_target_loss"].dropna() if "convergence_target_loss" in sub else pd.Series([])
        if not targets.empty:
            ax.axhline(float(targets.iloc[0]), color="grey", linestyle=":", linewidth=1)
        losses = pd.Series([v for b in sub["eval_loss_band"] for row in b for v in row[1:]])
        _loss_axes(ax, name, losses, "held-out loss")
        ax.legend(fontsize=8, title="strategy: seed median, min-max band\n(dotted: target)")
    return save_png(fig, path)


def training_throughput(tr: pd.DataFrame, path: Path) -> Path | None:
    """Samples per second per strategy, from the wall clock of the timed steps (no interval: one wall
    time per run; the step-time distribution is in the table)."""
    if "samples_per_s" not in tr:
        return None
    tr = tr.dropna(subset=["samples_per_s"])
    if tr.empty:
        return None
    panels = _panels(tr, ["workload", "device"])
    fig, axes = _grid(len(panels), "Training throughput per strategy (wall clock)")
    for ax, (name, sub) in zip(axes, panels, strict=True):
        sub = sub.sort_values(["param.backend", "variant"] if "param.backend" in sub else ["variant"])
        labels = [f"{r['variant']}\n{r.get('param.backend', '')}" for _, r in sub.iterrows()]
        ax.bar(range(len(sub)), sub["samples_per_s"], color=[f"C{i % 10}" for i in range(len(sub))])
        ax.set_xticks(range(len(sub)), labels, fontsize=8)
        ax.set_title(name)
        ax.set_xlabel("strategy / backend")
        ax.set_ylabel("throughput (samples/s)")
        ax.grid(True, axis="y", alpha=0.3)
    return save_png(fig, path)


def decode_tokens_vs_batch(trade: pd.DataFrame, path: Path) -> Path | None:
    """Decode tokens/s against batch size, one line per technique and mode, one panel per workload and
    device (and prompt, where there are several), under the bandwidth roofline where it binds: batch x peak
    bandwidth / the baseline's bytes per step (black), with each technique's own ceiling as a bar in its colour.

    A series with one batch size is drawn as points, not lines, and the series are spread a little
    sideways around their batch size so that points at the same batch do not hide each other."""
    dec = trade[trade["param.phase"] == "decode"] if "param.phase" in trade else trade.iloc[0:0]
    if "throughput_tokens_per_s" not in dec:
        return None
    dec = dec.dropna(subset=["throughput_tokens_per_s"])
    if dec.empty:
        return None
    by = ["workload", "device", *(["param.prompt"] if dec["param.prompt"].nunique() > 1 else [])]
    panels = _panels(dec, by)
    fig, axes = _grid(len(panels), "Decode tokens/s vs batch size (roofline where it binds)", 8.0, 5.6, columns=1)
    series = sorted(dec[["technique", "param.mode"]].drop_duplicates().itertuples(index=False, name=None))
    palette = colormaps["tab10" if len(series) <= 10 else "tab20"]
    colors = {s: palette(i % palette.N) for i, s in enumerate(series)}
    spread = 1.0 / max(len(series), 1)  # log2 units: the series of one batch fill +-0.5 of a doubling
    dodge = {s: 2 ** ((i - (len(series) - 1) / 2) * spread) for i, s in enumerate(series)}
    for ax, (name, sub) in zip(axes, panels, strict=True):
        batches = sorted(sub["param.batch"].unique())
        ceilings_drawn = False
        for (technique, mode), line in sub.groupby(["technique", "param.mode"], sort=True):
            line = line.sort_values("param.batch")
            x = line["param.batch"] * dodge[(technique, mode)]
            style = "-" if line["param.batch"].nunique() > 1 else "none"
            ax.plot(x, line["throughput_tokens_per_s"], marker="o", linestyle=style,
                    color=colors[(technique, mode)], label=f"{technique} / {mode}")
            if "roofline_tokens_per_s" in line:
                binds = line["throughput_tokens_per_s"] >= ROOFLINE_BINDS_FROM * line["roofline_tokens_per_s"]
                if binds.any():
                    ax.plot(x[binds], line["roofline_tokens_per_s"][binds], marker="_", markersize=12,
                            markeredgewidth=2, linestyle="none", color=colors[(technique, mode)], alpha=0.8)
                    ceilings_drawn = True
        _draw_roofline(ax, sub, batches)
        if ceilings_drawn:
            ax.plot([], [], marker="_", markersize=12, markeredgewidth=2, linestyle="none", color="grey",
                    label="its ceiling: batch x peak / its own bytes per step")
        ax.set_title(name)
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [f"{b:g}" for b in batches])
        ax.minorticks_off()
        ax.set_xlim(batches[0] / 2 ** 0.8, batches[-1] * 2 ** 0.8)
        ax.set_xlabel("batch size (sequences decoded together, log2)")
        if _spans_decades(pd.Series(ax.dataLim.intervaly)):  # the measured points and the rooflines drawn
            ax.set_ylabel("decode tokens/s (log)")
            _plain_log_y(ax)
        else:
            ax.set_ylabel("decode tokens/s")
            ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, title="technique / mode", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    return save_png(fig, path)


ROOFLINE_BINDS_FROM = 0.25  # share of the roofline the fastest case must reach for the roofline to be drawn


def _draw_roofline(ax: Axes, sub: pd.DataFrame, batches: list) -> None:
    """The baseline's roofline, batch x peak / its bytes per step, labelled with the peak's source, at the batch
    sizes where it binds (the fastest case reaches ROOFLINE_BINDS_FROM of it); elsewhere it would only stretch
    the axis decades above every measured point, so a line says it was left out."""
    base = sub[sub["is_baseline"]] if "is_baseline" in sub else sub.iloc[0:0]
    base = base.dropna(subset=[c for c in ("bytes_per_step", "peak_bandwidth_bytes_per_s") if c in base])
    if base.empty or "bytes_per_step" not in base or "peak_bandwidth_bytes_per_s" not in base:
        ax.text(0.02, 0.02, "no roofline: no data-sheet peak bandwidth for this device", transform=ax.transAxes,
                fontsize=8, va="bottom")
        return
    per_batch = base.groupby("param.batch").first()
    best = sub.groupby("param.batch")["throughput_tokens_per_s"].max()
    roof = {b: roofline_tokens_per_s(b, per_batch.loc[b, "peak_bandwidth_bytes_per_s"],
                                     per_batch.loc[b, "bytes_per_step"]) for b in batches if b in per_batch.index}
    xs = [b for b, y in roof.items() if best.get(b, 0) >= ROOFLINE_BINDS_FROM * y]
    far = [b for b in roof if b not in xs]
    if far:
        share = max(best.get(b, 0) / roof[b] for b in far)
        ax.text(0.02, 0.02, f"roofline not drawn at batch {', '.join(f'{b:g}' for b in far)}: the fastest case "
                f"reaches {share:.1%} of it or less (not bandwidth-bound)", transform=ax.transAxes, fontsize=8,
                va="bottom")
    if not xs:
        return
    ys = [roof[b] for b in xs]
    peak = per_batch["peak_bandwidth_bytes_per_s"].iloc[0]
    label = (f"roofline: batch x {fmt_num(peak / 1e12)} TB/s peak / {per_batch['variant'].iloc[0]} bytes per step "
             f"({fmt_bytes(float(per_batch.loc[xs[0], 'bytes_per_step']))} at batch {xs[0]:g})")
    if len(xs) > 1:
        ax.plot(xs, ys, linestyle="--", color="black", linewidth=1.2, label=label)
    else:  # one batch size: a bar across the spread of its points, not a line
        ax.hlines(ys, [x / 2 ** 0.4 for x in xs], [x * 2 ** 0.4 for x in xs], color="black", linewidth=2,
                  linestyle="--", label=label)
    for x, y in zip(xs, ys, strict=True):
        ax.annotate(f"roofline {y:,.0f} tokens/s", (x, y), textcoords="offset points", xytext=(-4, 4),
                    fontsize=8, ha="right")
