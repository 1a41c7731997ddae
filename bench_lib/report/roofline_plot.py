"""The roofline of a run: every case's arithmetic intensity against the FLOP/s it reached, under the roofs.

One panel per run and device (`results/roofline.py` stores each case's block, `environment.peaks` the
device's peaks). Two roofs per compute dtype of the panel's cases: the one measured in the same run
(solid: the copy's bandwidth up to the GEMM's FLOP/s) and the data sheet's (dashed), where known. A
mark's height under its roof is the share of the machine the case used; left of the ridge a case is
bound by memory, right of it by compute. The section also carries, per run, a caution where another
process shared its GPUs (`environment.device_isolation.shared`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from bench_lib.report.load import Run
from bench_lib.report.png import save_png
from bench_lib.results.format import fmt_num

__all__ = ["roofline_points", "roofline_plot", "roofline_section", "isolation_cautions"]

_MARKERS = {"inference": "o", "decode": "s", "training": "^"}


def roofline_points(run: Run) -> dict[str, list[dict]]:
    """The run's cases with a roofline, per device key: label, suite, dtype, intensity, achieved FLOP/s."""
    out: dict[str, list[dict]] = {}
    for case, result in run.results.items():
        block = result.metrics.get("roofline") if result.status == "ok" else None
        if not block or not block.get("intensity_flops_per_byte") or not block.get("achieved_flops_per_s"):
            continue
        label = "-".join(str(p) for p in (case.workload, case.variant, case.param("phase"),
                                           f"b{case.param('batch')}" if case.param("batch") else None,
                                           f"s{case.param('sparsity')}" if case.param("sparsity") else None,
                                           "convergence" if case.param("convergence_seeds") else None) if p)
        out.setdefault(block["peaks_device"], []).append({
            "label": label, "suite": case.suite, "dtype": block.get("compute_dtype"),
            "intensity": block["intensity_flops_per_byte"], "flops": block["achieved_flops_per_s"]})
    return out


def _roofs(peaks: dict, dtypes: list[str]) -> list[tuple[str, str, float, float]]:
    """(dtype, "measured" | "data sheet", FLOP/s, bytes/s) of each roof the device's peaks know."""
    memory, compute = peaks.get("memory") or {}, peaks.get("compute") or {}
    roofs = []
    for dtype in dtypes:
        row = compute.get(dtype) or {}
        for kind, flops, bw in (("measured", row.get("measured_ops_per_s"), memory.get("measured_bytes_per_s")),
                                ("data sheet", row.get("data_sheet_ops_per_s"), memory.get("data_sheet_bytes_per_s"))):
            if flops and bw:
                roofs.append((dtype, kind, float(flops), float(bw)))
    return roofs


def _rate(value: float) -> str:
    """A rate with its SI prefix: 80.5 G, 4.8 T."""
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if value >= scale:
            return f"{fmt_num(value / scale)} {prefix}"
    return f"{fmt_num(value)} "


_LABEL_PT = 6.0


def _label(ax: object, points: list[dict], panel_in: np.ndarray) -> None:
    """Each mark's label beside it, none over another: a label that would cover one placed before it (their
    columns overlapping, their lines closer than a line's height) takes the nearest free line above or below
    inside the panel, with a thin line back to its mark; a label that would leave the panel on the right goes
    to the left of its mark. Sizes in axes fractions, from the panel's size (the layout trims it a little)."""
    to_axes = ax.transScale + ax.transLimits
    line_h = _LABEL_PT * 1.25 / 72 / (panel_in[1] * 0.8)
    char_w = _LABEL_PT * 0.52 / 72 / (panel_in[0] * 0.85)
    placed: list[tuple[float, float, float]] = []  # (left, right, middle line) of each label
    for p in sorted(points, key=lambda q: (q["flops"], q["intensity"])):
        px, py = to_axes.transform((p["intensity"], p["flops"]))
        width = len(p["label"]) * char_w
        left = px + 0.01 if px + 0.01 + width <= 1 else px - 0.01 - width
        column = [b for a, r, b in placed if a < left + width and left < r]
        # Candidate lines: its own, and just above or below each label of its column (a hair past a line's
        # height, whatever the rounding); the nearest free one inside the panel, else the first free above all.
        lines = [py, *(b + s * line_h * 1.01 for b in column for s in (1, -1))]
        free = [y for y in lines if all(abs(b - y) >= line_h for b in column)]
        inside = [y for y in free if line_h / 2 <= y <= 1 - line_h / 2]
        y = min(inside or [max(free)], key=lambda c: abs(c - py))
        placed.append((left, left + width, y))
        ax.annotate(p["label"], (p["intensity"], p["flops"]), xytext=(left, y), textcoords="axes fraction",
                    fontsize=_LABEL_PT, alpha=0.8, va="center",
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "alpha": 0.5} if abs(y - py) > line_h / 2 else None)


def roofline_plot(runs: list[Run], path: Path) -> Path | None:
    """Log-log intensity (FLOP/byte) vs achieved FLOP/s, one mark per case, both roofs per dtype drawn;
    None when no case has a roofline."""
    panels = [(run, device, points) for run in runs for device, points in sorted(roofline_points(run).items())]
    if not panels:
        return None
    cols = min(len(panels), 2)
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(7.5 * cols, 5.6 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Roofline: achieved FLOP/s vs arithmetic intensity\n(solid: peaks measured in the run; "
                 "dashed: data sheet)", fontsize=11, fontweight="bold")
    colors = colormaps["tab10"]
    for ax, (run, device, points) in zip(axes, panels, strict=False):
        peaks = (run.environment.get("peaks") or {}).get(device) or {}
        dtypes = sorted({p["dtype"] for p in points if p["dtype"]})
        xs = np.array([p["intensity"] for p in points])
        roofs = _roofs(peaks, dtypes)
        lo = min([xs.min() / 4, *[f / bw / 8 for _, _, f, bw in roofs]])
        hi = max([xs.max() * 4, *[f / bw * 8 for _, _, f, bw in roofs]])
        grid = np.geomspace(lo, hi, 200)
        for dtype, kind, flops, bw in roofs:
            style = "-" if kind == "measured" else "--"
            ax.plot(grid, np.minimum(flops, grid * bw), style, color=colors(dtypes.index(dtype) % 10), alpha=0.8,
                    linewidth=1.6, label=f"{dtype} roof, {kind}: {_rate(flops)}FLOP/s, {_rate(bw)}B/s")
        for suite in sorted({p["suite"] for p in points}):
            for dtype in dtypes:
                mine = [p for p in points if p["suite"] == suite and p["dtype"] == dtype]
                if mine:
                    ax.scatter([p["intensity"] for p in mine], [p["flops"] for p in mine], s=36, zorder=3,
                               marker=_MARKERS.get(suite, "D"), color=colors(dtypes.index(dtype) % 10),
                               edgecolor="black", linewidth=0.5, label=f"{suite} cases ({dtype})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.autoscale_view()
        _label(ax, points, fig.get_size_inches() / (cols, rows))
        if not roofs:
            ax.text(0.02, 0.02, "no roof: no peaks measured for this device in this run", transform=ax.transAxes,
                    fontsize=8)
        elif not any(kind == "data sheet" for _, kind, _, _ in roofs):
            ax.text(0.98, 0.02, "data-sheet roof: not known for this device", transform=ax.transAxes, fontsize=8,
                    ha="right", va="bottom")  # the legend takes the top left
        ax.set_xlabel("arithmetic intensity (FLOP per byte moved, log)")
        ax.set_ylabel("achieved FLOP/s (log)")
        ax.set_title(f"{run.name}: {device} ({peaks.get('name') or 'peaks not measured'})", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=6.5, loc="best")
    return save_png(fig, path)


def isolation_cautions(runs: list[Run]) -> list[str]:
    """A caution line per run whose GPUs another process used (`environment.device_isolation.shared`)."""
    lines = []
    for run in runs:
        iso = run.environment.get("device_isolation") or {}
        if iso.get("shared"):
            others = ", ".join(f"pid {o['pid']} ({o.get('name') or '?'}) on GPU {o['gpu']}"
                               for o in iso.get("other_processes", []) if o.get("visible", True))
            lines.append(f"> **Caution**: run `{run.name}` shared its GPU with other processes ({others}): its "
                         "timings, energy and peaks are not its own alone.\n")
    return lines


def roofline_section(runs: list[Run], out: Path, drawn: list[Path]) -> list[str]:
    """The report's roofline section: the plot and the cautions (empty when no case has a roofline)."""
    path = roofline_plot(runs, out / "roofline.png")
    if path is None:
        return isolation_cautions(runs)
    drawn.append(path)
    return ["## Roofline\n",
            "Each case's FLOPs per call (counted by torch's FlopCounterMode; from layer shapes where it cannot see a "
            "kernel) over the bytes it must move (stored weights, KV cache, layer activations), against the FLOP/s "
            "it reached. Solid roofs: the peaks measured in the same run (a streaming copy, a dense GEMM per dtype); "
            "dashed: the data sheet's, where effbench knows the device. Fractions of each peak are in every "
            "result's `metrics.roofline`.\n",
            *isolation_cautions(runs),
            f"![roofline]({path.relative_to(out).as_posix()})\n"]
