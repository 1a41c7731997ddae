"""The inference suite's frames: each case against its device's baseline, latency and cost tables."""

from __future__ import annotations

import math

import pandas as pd

from bench_lib.report.compare import ratio_of_sides
from bench_lib.report.frames.common import col, energy_cell, ok_rows, param_columns, peak_share_cell, technique_label
from bench_lib.results.format import fmt_bytes, fmt_num, num, select_time_unit
from bench_lib.techniques.baselines import baseline_variant

__all__ = ["inference_tradeoffs", "inference_long_tables", "inference_cost_table", "HOST_BOUND_BELOW",
           "host_bound_table"]


def inference_tradeoffs(df: pd.DataFrame) -> pd.DataFrame:
    """Each inference case against its device's baseline in the same run, workload and batch.

    The baseline is fp32 eager on CPU and bf16 eager on GPU (the suite's `baseline_variant`).
    Adds `technique` (variant plus its own params), `is_baseline`, `speedup` (baseline time over
    the case's: from paired rounds with their 95% interval where the run stored them, else the
    ratio of medians with a within-run bootstrap interval), and `accuracy_cost_pts`
    (percentage points lost against the uncompressed reference).
    """
    inf = ok_rows(df, "inference")
    if inf.empty:
        return inf
    extra = [c for c in param_columns(inf) if c != "param.batch"]
    inf["technique"] = inf.apply(lambda r: technique_label(r, extra), axis=1)
    inf["param.batch"] = inf["param.batch"].astype(int)
    inf["is_baseline"] = [v == baseline_variant("inference", d) for v, d in zip(inf["variant"], inf["device"],
                                                                                   strict=True)]
    keys = ["run", "workload", "device", "param.batch"]
    base = inf[inf["is_baseline"]].drop_duplicates(keys).set_index(keys)["samples"]
    paired = col(inf, "speedup_pairs")
    stored = {c: col(inf, c) for c in ("speedup", "speedup_ci95_low", "speedup_ci95_high")}
    speed, lo, hi = [], [], []
    for i, row in inf.iterrows():
        ref = base.get(tuple(row[k] for k in keys))
        if row["is_baseline"]:
            speed.append(1.0), lo.append(1.0), hi.append(1.0)
        elif pd.notna(paired[i]):  # from paired rounds, as `effbench run` stores them
            speed.append(stored["speedup"][i]), lo.append(stored["speedup_ci95_low"][i])
            hi.append(stored["speedup_ci95_high"][i])
        elif ref is None:
            speed.append(math.nan), lo.append(math.nan), hi.append(math.nan)
        else:
            est = ratio_of_sides([ref], [row["samples"]], resamples=500)
            speed.append(1 / est.ratio), lo.append(1 / est.high), hi.append(1 / est.low)
    inf["speedup"], inf["speedup_low"], inf["speedup_high"] = speed, lo, hi
    inf["accuracy_cost_pts"] = -100 * col(inf, "accuracy_delta")
    return inf


def _runs_label(df: pd.DataFrame) -> list[str]:
    return ["run"] if df["run"].nunique() > 1 else []


def _quality_cell(r: pd.Series) -> str:
    if num(r.get("quality_kept")) != "-":
        return f"{r['quality_kept']:.1%} of the reference's {r.get('quality_metric') or 'quality'}"
    if num(r.get("accuracy_delta")) != "-":
        return f"{r['accuracy']:.2%} ({100 * r['accuracy_delta']:+.2f} pts)"
    return "- (random weights)" if str(r.get("weights", "")).startswith("random") else "-"


def inference_long_tables(trade: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Per device and workload (and run, where there are several): one row per technique and batch with
    latency, speedup, quality and size, fastest first within a batch; one time unit per table."""
    out = []
    for key, sub in trade.groupby([*_runs_label(trade), "device", "workload"], sort=True):
        *run, device, workload = key
        scale, unit = select_time_unit(sub["ci_low_s"])
        sub = sub.sort_values(["param.batch", "is_baseline", "speedup"], ascending=[True, False, False])
        table = pd.DataFrame({
            "batch": sub["param.batch"], "technique": sub["technique"],
            f"latency ({unit}) [95% CI]": [f"{fmt_num(m / scale)} [{fmt_num(lo / scale)}, {fmt_num(hi / scale)}]"
                                           for m, lo, hi in zip(sub["median_s"], sub["ci_low_s"], sub["ci_high_s"],
                                                                strict=True)],
            "speedup [95% CI]": [_speedup_cell(r) for _, r in sub.iterrows()],
            "quality vs reference": [_quality_cell(r) for _, r in sub.iterrows()],
            "of peak: compute · memory": [peak_share_cell(r) for _, r in sub.iterrows()],
            "serialized": [fmt_bytes(v) for v in col(sub, "serialized_bytes")]})
        table = table.loc[:, (table != "-").any(axis=0)]
        out.append((" · ".join([*run, f"{workload} on {device}"]), table))
    return out


def _speedup_cell(r: pd.Series) -> str:
    if r["is_baseline"]:
        return f"1 ({r['variant']}: baseline)"
    if not math.isfinite(r["speedup"]):
        return "-"
    return f"{fmt_num(r['speedup'])}x [{fmt_num(r['speedup_low'])}, {fmt_num(r['speedup_high'])}]"


def inference_cost_table(trade: pd.DataFrame) -> pd.DataFrame:
    """Per case: speed, accuracy against the reference, size and memory."""
    rows = []
    for _, r in trade.sort_values(["workload", "param.batch", "technique"]).iterrows():
        rows.append({
            **({"run": r["run"]} if trade["run"].nunique() > 1 else {}),
            "workload": r["workload"] + (" (random weights)" if str(r.get("weights", "")).startswith("random")
                                         else ""),
            "technique": r["technique"], "batch": r["param.batch"],
            "speedup vs baseline [95% CI]": _speedup_cell(r),
            "throughput (samples/s)": num(r.get("throughput_samples_per_s"), "{:,.0f}"),
            "accuracy": num(r.get("accuracy"), "{:.2%}"),
            "vs reference (pts)": num(100 * r["accuracy_delta"] if "accuracy_delta" in r else math.nan, "{:+.2f}"),
            "agreement": num(r.get("agreement_with_reference"), "{:.1%}"),
            "serialized": fmt_bytes(r.get("serialized_bytes")),
            "in memory": fmt_bytes(r.get("in_memory_bytes")),
            "RSS added": fmt_bytes(r.get("rss_added_bytes")),
            "peak CUDA": fmt_bytes(r.get("cuda_max_allocated_bytes")),
            "GPU busy": num(r.get("gpu_busy_fraction"), "{:.0%}"),
            "energy/sample (J)": energy_cell(r, "energy_j_per_sample"),
            "tokens/J": energy_cell(r, "energy_j_per_token", invert=True),
            "power (W)": num(r.get("power_mean_w"), "{:.0f}"),
            "perplexity (ref)": (f"{r['perplexity']:.3g} ({r['reference_perplexity']:.3g})"
                                 if num(r.get("perplexity")) != "-" and num(r.get("reference_perplexity")) != "-"
                                 else "-"),
            "conversion (s)": num(r.get("convert_s", r.get("conversion_s")), "{:.2f}"),
            "first call (s)": num(r.get("first_call_s"), "{:.2f}"),
        })
    table = pd.DataFrame(rows)
    return table.loc[:, (table != "-").any(axis=0)]


HOST_BOUND_BELOW = 0.5


def host_bound_table(trade: pd.DataFrame) -> pd.DataFrame:
    """GPU cases whose kernels fill less than HOST_BOUND_BELOW of a call: their latency is the host's."""
    if "gpu_busy_fraction" not in trade:
        return pd.DataFrame()
    sel = trade[trade["gpu_busy_fraction"] < HOST_BOUND_BELOW].sort_values("gpu_busy_fraction")
    return pd.DataFrame({"case": sel["case_id"], "latency": [f"{fmt_num(m * 1e3)} ms" for m in sel["median_s"]],
                         "kernel time": [f"{fmt_num(k * 1e3)} ms" for k in sel["gpu_kernel_s_per_call"]],
                         "GPU busy": sel["gpu_busy_fraction"].map(lambda v: f"{v:.0%}")})
