"""The report's opening section: what the results say, generated from them, one line per comparison.

A comparison is one suite, device and workload (and batch, serving mode, prompt): every technique against the
device's baseline of the same run. A technique is on the **front** when it keeps the quality floor, is not slower
than the baseline, and no other such technique is both faster and better in quality (the speed/quality Pareto
front, by point estimates; each speedup is stated with its 95% interval so that a reader sees where the front is
within noise). A technique **loses** when its whole speedup interval lies below 1 (slower than the baseline) or it
keeps less than the quality floor of the reference's quality; the line gives the evidence the result carries (its
top kernel, bandwidth, GPU busy time). Collectives are held against the reference figures of the same kind of
machine; training compares every strategy with sync, on throughput and on time to sync's target loss. Cautions
name what changes how to read all of it: noise, one process, skipped and failed cases, different machines,
versions or commits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench_lib.report.frames import (
    HOST_BOUND_BELOW,
    convergence_rows,
    decode_tradeoffs,
    inference_tradeoffs,
    latest_per_case,
    ok_rows,
    pareto_front,
)
from bench_lib.report.load import Run
from bench_lib.report.references import references_for
from bench_lib.results.environment import comparability_key
from bench_lib.results.format import fmt_bytes, fmt_num, num, whole

__all__ = ["QUALITY_FLOOR", "Quality", "quality_of", "front_indices", "findings_section"]

# MLPerf's convention, and user models' default `quality_target`: a compressed model must keep 99% of the
# reference's quality. A user's case carries its own target, which wins.
QUALITY_FLOOR = 0.99


@dataclass(frozen=True)
class Quality:
    """A case's quality against the uncompressed reference: the share it keeps, the floor, and how to say it."""

    kept: float
    floor: float
    text: str

    @property
    def passes(self) -> bool:
        return self.kept >= self.floor


def _finite(value: object) -> bool:
    return num(value) != "-"


def quality_of(r: pd.Series) -> Quality | None:
    """The user's verdict where the case carries one; else accuracy, else perplexity, against the reference's;
    None where the case measures no quality (random weights)."""
    if _finite(r.get("quality_kept")):
        floor = r["quality_target"] if _finite(r.get("quality_target")) else QUALITY_FLOOR
        return Quality(r["quality_kept"], floor, f"keeps {r['quality_kept']:.1%} of the reference's "
                                                 f"{r.get('quality_metric') or 'quality'}")
    if str(r.get("weights") or "").startswith("random"):  # speed shapes: their accuracy is chance, not quality
        return None
    if _finite(r.get("accuracy")) and _finite(r.get("accuracy_delta")):
        ref = r["accuracy"] - r["accuracy_delta"]
        if ref > 0:
            return Quality(r["accuracy"] / ref, QUALITY_FLOOR, f"{100 * r['accuracy_delta']:+.2f} pts accuracy")
    if _finite(r.get("perplexity")) and _finite(r.get("reference_perplexity")) and r["perplexity"] > 0:
        return Quality(r["reference_perplexity"] / r["perplexity"], QUALITY_FLOOR,
                       f"perplexity {r['perplexity']:.3g} (reference {r['reference_perplexity']:.3g})")
    return None


def _speedup(r: pd.Series) -> str:
    return f"{fmt_num(r['speedup'])}x [{fmt_num(r['speedup_low'])}, {fmt_num(r['speedup_high'])}]"


OP_NAME_CHARS = 60  # a kernel's name beyond this (templated CUDA kernels run to hundreds) is cut


def _share(v: float) -> str:
    return f"{v:.0%}" if v >= 0.1 else f"{v:.1%}"


def _why_slower(r: pd.Series) -> str:
    """The evidence a slower case carries: host-bound GPU time, bandwidth reached, its top kernel."""
    out = []
    if _finite(r.get("gpu_busy_fraction")) and r["gpu_busy_fraction"] < HOST_BOUND_BELOW:
        out.append(f"host-bound: GPU busy {r['gpu_busy_fraction']:.0%} of a call")
    if _finite(r.get("bandwidth_fraction")):
        base = r.get("baseline_bandwidth_fraction")
        out.append(f"{_share(r['bandwidth_fraction'])} of peak bandwidth"
                   + (f" vs the baseline's {_share(base)}" if _finite(base) else ""))
    top = r.get("top_ops")
    if isinstance(top, list) and top and isinstance(top[0], dict) and _finite(top[0].get("share")):
        op = str(top[0].get("op"))
        op = op if len(op) <= OP_NAME_CHARS else op[:OP_NAME_CHARS] + "..."
        out.append(f"top op `{op}` {top[0]['share']:.0%} of {r.get('top_ops_clock') or 'self time'}")
    return f" ({'; '.join(out)})" if out else ""


def front_indices(group: pd.DataFrame, quality: dict) -> list:
    """Indices of the non-baseline techniques of one comparison on the speed/quality front among those that keep
    the floor and are not slower than the baseline (`quality`: each index's `quality_of`), fastest first."""
    keep = [i for i in group.index if (quality[i] is None or quality[i].passes)
            and math.isfinite(group.at[i, "speedup"]) and not group.at[i, "speedup_high"] < 1]
    on_front = pareto_front([-(quality[i].kept if quality[i] else 1.0) for i in keep],
                            [group.at[i, "speedup"] for i in keep])
    front = [i for i, on in zip(keep, on_front, strict=True) if on]
    return sorted((i for i in front if not group.at[i, "is_baseline"]), key=lambda i: -group.at[i, "speedup"])


def _kept(q: Quality) -> str:
    """The share kept, with the digits that tell it from the floor (98.96% is below 99%, though it rounds to it)."""
    return next(text for text in (f"{q.kept:.1%}", f"{q.kept:.2%}", f"{q.kept:.4%}")
                if text != f"{q.floor:.1%}")


def _comparison_line(title: str, group: pd.DataFrame) -> list[str]:
    """One comparison: its front, how many more beat the baseline, and its losers with their reasons."""
    base, others = group[group["is_baseline"]], group[~group["is_baseline"]]
    if base.empty or others.empty or group["speedup"].isna().all():
        return []
    quality = {i: quality_of(r) for i, r in group.iterrows()}
    front = front_indices(group, quality)

    def stated(i: int) -> str:
        q = quality[i]
        noise = " (within noise)" if not group.at[i, "speedup_low"] > 1 else ""
        return f"`{group.at[i, 'technique']}` {_speedup(group.loc[i])}{noise}" + (f", {q.text}" if q else "")

    head = f"- **{title}** (vs {base['technique'].iloc[0]}): "
    if front:
        head += "front: " + "; ".join(stated(i) for i in front)
        faster = others[(others["speedup_low"] > 1) & ~others.index.isin(front)]
        if not faster.empty:
            head += f"; {len(faster)} more faster than the baseline, off the front"
    else:
        head += "nothing beats the baseline"
    head += "" if quality[base.index[0]] else " (no quality measured: random weights)"
    losers = []
    for i, r in others.sort_values("speedup").iterrows():
        if quality[i] is not None and not quality[i].passes:
            losers.append(f"`{r['technique']}` below the quality floor: {quality[i].text}, keeps "
                          f"{_kept(quality[i])} (floor {quality[i].floor:.0%}), at {_speedup(r)}")
        elif r["speedup_high"] < 1:
            losers.append(f"`{r['technique']}` slower: {_speedup(r)}{_why_slower(r)}")
    return [head + "."] + ([f"  - loses: {'; '.join(losers)}."] if losers else [])


def _several(df: pd.DataFrame) -> list[str]:
    return ["run"] if df["run"].nunique() > 1 else []


def _inference_lines(df: pd.DataFrame) -> list[str]:
    trade = inference_tradeoffs(df)
    if trade.empty:
        return []
    out = []
    for key, group in trade.groupby([*_several(trade), "device", "workload", "param.batch"], sort=True):
        *run, device, workload, batch = key
        out += _comparison_line(" · ".join(["inference", *run, device, workload, f"batch {batch}"]), group)
    return out


def _decode_lines(df: pd.DataFrame) -> list[str]:
    trade = decode_tradeoffs(df)
    if trade.empty:
        return []
    trade, _ = latest_per_case(trade)
    out = []
    # Both phases of a served model, each against its baseline: decode's time per token, and prefill's time to
    # first token (where a weight-only technique pays for its dequantization).
    phases = trade.assign(phase_order=trade["param.phase"].map({"decode": 0, "prefill": 1}))
    for key, group in phases.groupby(["phase_order", "param.phase", "device", "workload", "param.mode",
                                      "param.batch", "param.prompt"], sort=True):
        _, phase, device, workload, mode, batch, prompt = key
        # Decode's quality is the served model's, measured once per model on its own case: carry it over.
        quality_cols = [c for c in ("perplexity", "reference_perplexity", "quality_kept", "quality_target",
                                    "quality_metric") if c in trade]
        quality = trade[(trade["device"] == device) & (trade["workload"] == workload)].dropna(
            subset=quality_cols[:1]).drop_duplicates("technique").set_index("technique")[quality_cols] \
            if quality_cols else pd.DataFrame()
        group = group.copy()
        for c in quality_cols:
            group[c] = group[c].fillna(group["technique"].map(quality[c]) if c in quality else math.nan)
        out += _comparison_line(f"{phase} · {device} · {workload} · {mode} · batch {batch} · prompt {prompt}", group)
    return out


def _collective_lines(df: pd.DataFrame, runs: list[Run]) -> list[str]:
    """Each measured collective at a size where the same kind of machine has a reference figure: busbw (its
    interval from the latency's, busbw being size over time) or latency, against the reference's."""
    col = ok_rows(df, "collectives")
    if col.empty or "param.size_bytes" not in col:
        return []
    out = []
    for run in runs:
        refs = references_for(run.environment)
        mine = col[col["run"] == run.name]
        keys = [k for k in ("workload", "variant", "param.dtype", "param.world_size") if k in mine]
        for key, group in mine.groupby(keys, sort=True):
            backend, op, world = key[0], key[1], key[-1]
            items = []
            for ref in refs:
                if (ref.backend, ref.op, ref.world_size) != (backend, op, int(world)):
                    continue
                hit = group[group["param.size_bytes"] == ref.size_bytes]
                if hit.empty:
                    continue
                r = hit.iloc[0]
                if ref.busbw_GBps and _finite(r.get("busbw_GBps")):
                    lo, hi = (r["busbw_GBps"] * r["median_s"] / t for t in (r["ci_high_s"], r["ci_low_s"]))
                    items.append(f"{fmt_bytes(ref.size_bytes)} busbw {fmt_num(r['busbw_GBps'])} GB/s "
                                 f"[{fmt_num(lo)}, {fmt_num(hi)}] vs {fmt_num(ref.busbw_GBps)} "
                                 f"({r['busbw_GBps'] / ref.busbw_GBps:.0%})")
                elif ref.latency_s:
                    items.append(f"{fmt_bytes(ref.size_bytes)} latency {fmt_num(r['median_s'] * 1e6)} us "
                                 f"[{fmt_num(r['ci_low_s'] * 1e6)}, {fmt_num(r['ci_high_s'] * 1e6)}] vs "
                                 f"{fmt_num(ref.latency_s * 1e6)} us")
            if items:
                out.append(f"- **collectives · {_key_text(key)} ranks** (against the reference of this kind of "
                           f"machine, {refs[0].machine}): " + "; ".join(items) + ".")
    return out


def _sync_speedup(r: pd.Series) -> tuple[float, float, float] | None:
    """A strategy's throughput over sync's with its 95% interval (paired stretches), or its range over the
    stretches (older results)."""
    if _finite(r.get("speedup")) and _finite(r.get("speedup_pairs")):
        return r["speedup"], r["speedup_ci95_low"], r["speedup_ci95_high"]
    by = r.get("speedup_over_sync_by_stretch")
    if _finite(r.get("speedup_over_sync")) and isinstance(by, list) and by:
        return r["speedup_over_sync"], min(by), max(by)
    return None


def _key_text(key: tuple) -> str:
    return " · ".join(whole(k) if isinstance(k, float) else str(k) for k in key)


def _training_lines(df: pd.DataFrame) -> list[str]:
    every = ok_rows(df, "training")
    if every.empty:
        return []
    out = []
    keys = [*_several(every), "device", "workload", "param.backend", "param.world_size"]
    keys = [k for k in keys if k in every]
    for key, group in convergence_rows(every, convergence=False).groupby(keys, sort=True):
        faster, slower, within = [], [], []
        for _, r in group.sort_values("variant").iterrows():
            s = _sync_speedup(r)
            if r["variant"] in ("sync", "reference") or s is None:
                continue
            text = f"`{r['variant']}` {fmt_num(s[0])}x [{fmt_num(s[1])}, {fmt_num(s[2])}]" + (
                " (no communication: the upper bound)" if r["variant"] == "nocomm" else "")
            (faster if s[1] > 1 else slower if s[2] < 1 else within).append(text)
        parts = [f"{name}: {', '.join(items)}" for name, items in (("faster", faster), ("slower", slower),
                                                                  ("within noise", within)) if items]
        if parts:
            out.append(f"- **training · {_key_text(key)} ranks** (throughput over sync, wall clock): "
                       + "; ".join(parts) + ".")
    for key, group in convergence_rows(every).groupby(keys, sort=True):
        out += _convergence_line(key, group)
    return out


def _convergence_line(key: tuple, group: pd.DataFrame) -> list[str]:
    """Time to sync's target held-out loss per strategy, mean over seeds with its 95% t interval, and the verdict
    against sync: faster or slower only where the two intervals do not overlap."""
    sync = group[group["variant"] == "sync"]
    if sync.empty or not _finite(sync["time_to_target_mean_s"].iloc[0] if "time_to_target_mean_s" in sync else None):
        return []
    s = sync.iloc[0]
    s_lo, s_hi = s.get("time_to_target_ci95_low_s"), s.get("time_to_target_ci95_high_s")

    def interval(r: pd.Series) -> str:
        return (f"{r['time_to_target_mean_s']:.3g} s [{r['time_to_target_ci95_low_s']:.3g}, "
                f"{r['time_to_target_ci95_high_s']:.3g}]" if _finite(r.get("time_to_target_ci95_low_s"))
                else f"{r['time_to_target_mean_s']:.3g} s")

    items = [f"sync {interval(s)}"]
    for _, r in group[group["variant"] != "sync"].sort_values("variant").iterrows():
        seeds, reached = int(r.get("convergence_seeds") or 0), int(r.get("time_to_target_reached") or 0)
        if reached < seeds or not _finite(r.get("time_to_target_mean_s")):
            items.append(f"`{r['variant']}` not reached ({reached} of {seeds} seeds)")
            continue
        lo, hi = r.get("time_to_target_ci95_low_s"), r.get("time_to_target_ci95_high_s")
        verdict = ("faster" if _finite(hi) and _finite(s_lo) and hi < s_lo else
                   "slower" if _finite(lo) and _finite(s_hi) and lo > s_hi else "no difference shown")
        items.append(f"`{r['variant']}` {interval(r)}, {verdict}")
    seeds = int(s.get("convergence_seeds") or 0)
    return [f"- **convergence · {_key_text(key)} ranks** (time to sync's held-out loss "
            f"{s['convergence_target_loss']:.4g}, mean over {seeds} seeds [95% CI]): " + "; ".join(items) + "."]


def _reason_counts(rows: pd.DataFrame) -> str:
    first = rows["reason"].map(lambda t: str(t).strip().splitlines()[0].split(" (")[0] if str(t).strip() else "-")
    counts = (rows["suite"] + ": " + first).value_counts()
    shown = [f"{n} {text}" for text, n in counts.head(2).items()]
    return "; ".join(shown) + (f"; {len(counts) - 2} other reasons" if len(counts) > 2 else "")


def _cautions(df: pd.DataFrame, runs: list[Run]) -> list[str]:
    out = []
    ok = df[df["status"] == "ok"] if not df.empty else df
    timed = ok.dropna(subset=["median_s"]) if "median_s" in ok else ok.iloc[0:0]
    if not timed.empty:
        warned = timed["warnings"].fillna("")
        noisy, very = warned.astype(bool).sum(), warned.str.startswith("very noisy").sum()
        width = ((timed["ci_high_s"] - timed["ci_low_s"]) / timed["median_s"]).median()
        out.append(f"- **Noise**: {noisy} of {len(timed)} timed cases are noisy (IQR above 10% of the median, or "
                   f"too few samples), {very} of them very noisy (above 25%); the median case's 95% interval spans "
                   f"{width:.0%} of its median. A difference inside an interval is not shown.")
    single = [run.name for run in runs if run.files and
              (run.files[0].run_meta.get("interleave") or {}).get("processes") == 1]
    if single:
        out.append(f"- **One process**: {', '.join(f'`{n}`' for n in single)} measured in one process each: "
                   "an interval holds that process's samples, not what a rerun in a fresh process would measure.")
    for status in ("failed", "skipped"):
        rows = df[df["status"] == status] if not df.empty else df
        if not rows.empty:
            out.append(f"- **{status.capitalize()}**: {len(rows)} cases ({_reason_counts(rows)}); see Notes.")
    keys = {run.name: comparability_key(run.environment) for run in runs}
    machines = {(k["cpu_model"], k["cpu_count"], k["gpu"], k["gpu_count"]) for k in keys.values()}
    versions = {(run.environment.get("torch"), run.environment.get("cuda")) for run in runs}
    commits = {str((run.commit or {}).get("id") or "?")[:10] for run in runs}
    if len(runs) > 1 and (len(machines) > 1 or len(versions) > 1 or len(commits) > 1):
        out.append(f"- **Different runs**: {len(runs)} runs on {len(machines)} machine(s), {len(versions)} torch/CUDA "
                   f"version(s), {len(commits)} commit(s) (see Reproduce): compare their figures with care.")
    return out


def findings_section(df: pd.DataFrame, runs: list[Run], glossary: str) -> list[str]:
    """The findings, as markdown lines: comparisons first, then cautions; `glossary` links the terms."""
    if df.empty:
        return []
    lines = [*_inference_lines(df), *_decode_lines(df), *_collective_lines(df, runs), *_training_lines(df)]
    cautions = _cautions(df, runs)
    if not lines and not cautions:
        return []
    return ["## Findings\n",
            "Generated from the results below. Speedup: the baseline's time over the technique's, with its 95% "
            "interval ([low, high]); **front**: no technique that keeps the quality floor "
            f"({QUALITY_FLOOR:.0%} of the reference's quality, or a user model's own target) is both faster and "
            f"better; **loses**: its whole interval is below 1, or it misses the floor. Terms: {glossary}.\n",
            *lines, *([""] if lines else []), *cautions, ""]
