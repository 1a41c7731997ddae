"""The projection as markdown (tables with their assumptions) and a plot of efficiency against GPU count."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench_lib.projection.project import Assumptions, CollectiveProjection, Projection
from bench_lib.results.format import fmt_bytes, markdown_table

__all__ = ["projection_markdown", "collectives_markdown", "plot_efficiency"]


def _fmt_ms(x: float) -> str:
    return f"{x * 1e3:.2f}"


def projection_markdown(projections: list[Projection], a: Assumptions) -> str:
    if not projections:
        return ("No projection: the runs need collectives all_reduce results over at least two message sizes "
                "and training results with `sync` and `nocomm` on the same backend.\n")
    lines = []
    for p in projections:
        f = p.fit
        lines += [
            f"### {p.workload} over {p.backend} ({p.device}), measured on {p.measured_n} ranks",
            "",
            f"Link model fitted to the measured all_reduce sweep: alpha = {f.alpha_s * 1e6:.1f} us per ring step, "
            f"bandwidth = {f.bandwidth_Bps / 1e9:.2f} GB/s per link; fit error over {f.points} sizes: median "
            f"{f.median_abs_error:.1%}, max {f.max_abs_error:.1%}. Measured `sync` exposed communication: "
            f"{p.sync_exposure:.2f}x the modelled all_reduce (below 1: overlap with backward; above 1: costs beyond "
            "the link model, e.g. core contention), kept at every scale.",
            "",
            f"Assumptions: intra-node bandwidth {p.links.intra_bw_Bps / 1e9:.2f} GB/s "
            f"({'given' if a.intra_bw_GBps else 'fitted'}), inter-node {a.inter_bw_GBps:.1f} GB/s per GPU, "
            f"{a.inter_latency_us:.1f} us per inter-node hop, {a.gpus_per_node} GPUs per node, ring inside a node and "
            "hierarchical across nodes, weak scaling (compute per step as measured).",
            "",
        ]
        table = []
        for r in p.rows:
            row = {"strategy": r["strategy"], "measured step ms": _fmt_ms(r["measured_step_s"]),
                   f"model @{p.measured_n} ms": _fmt_ms(r["predicted_measured_step_s"]),
                   "model error": "calibrated" if r["calibrated"] else f"{r['validation_error']:+.1%}"}
            for g in a.gpus:
                row[f"step ms @{g}"] = _fmt_ms(r[f"step_s@{g}"])
                row[f"efficiency @{g}"] = f"{r[f'efficiency@{g}']:.0%}"
            table.append(row)
        lines += [markdown_table(pd.DataFrame(table)), ""]
    lines.append("Efficiency = compute-only step (`nocomm`) / projected step. 'calibrated': the model takes this "
                 "strategy's measured step as input, so its error at the measured size is zero by construction; the "
                 "other strategies' errors are genuine predictions of what was measured.")
    return "\n".join(lines) + "\n"


def collectives_markdown(projections: list[CollectiveProjection]) -> str:
    """Per transport and op: measured and modelled busbw at the measured rank count, projected beside it."""
    lines = []
    for p in projections:
        f = p.fit
        lines += [f"### {p.op} over {p.transport}, measured on {p.measured_n} ranks: bus bandwidth (GB/s)", "",
                  f"Ring model fitted to the sweep: alpha = {f.alpha_s * 1e6:.2f} us per ring step, "
                  f"{f.bandwidth_Bps / 1e9:.1f} GB/s per link; fit error median {f.median_abs_error:.1%}, max "
                  f"{f.max_abs_error:.1%} over {f.points} sizes. Projected at "
                  f"{', '.join(map(str, p.gpus)) or 'no other rank count'} ranks on the same links inside one "
                  "node (a ring adds latency steps with every rank; the per-link bandwidth is kept).", ""]
        table = []
        for r in p.rows:
            row = {"size": fmt_bytes(r["size_bytes"]), f"measured @{p.measured_n} (us)": f"{r['measured_s'] * 1e6:.1f}",
                   f"busbw @{p.measured_n}": f"{r['busbw_Bps'] / 1e9:.2f}",
                   f"model @{p.measured_n}": f"{r['model_busbw_Bps'] / 1e9:.2f} "
                                            f"({r['model_busbw_Bps'] / r['busbw_Bps'] - 1:+.0%})"}
            for g in p.gpus:
                row[f"projected busbw @{g}"] = f"{r[f'busbw_Bps@{g}'] / 1e9:.2f}"
            table.append(row)
        lines += [markdown_table(pd.DataFrame(table)), ""]
    return "\n".join(lines) + ("\n" if lines else "")


def plot_efficiency(projections: list[Projection], a: Assumptions, path: Path) -> Path | None:
    if not projections:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(projections), figsize=(6 * len(projections), 4.2), squeeze=False)
    for ax, p in zip(axes[0], projections, strict=True):
        for r in p.rows:
            ax.plot(a.gpus, [100 * r[f"efficiency@{g}"] for g in a.gpus], marker="o", label=r["strategy"])
        ax.set_xscale("log", base=2)
        ax.set_xticks(a.gpus, [str(g) for g in a.gpus])
        ax.set_ylim(0, 105)
        ax.set_xlabel("GPUs")
        ax.set_ylabel("scaling efficiency (%)")
        ax.set_title(f"{p.workload}, {p.backend}: projected from {p.measured_n} ranks")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
