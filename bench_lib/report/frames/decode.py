"""The decode suite's frames: one row per served model (both phases joined), speedups, the roofline,
and a sentence for each case slower than its baseline."""

from __future__ import annotations

import math

import pandas as pd

from bench_lib.report.compare import ratio_of_sides
from bench_lib.report.frames.common import col, energy_cell, ok_rows, param_columns, peak_share_cell, technique_label
from bench_lib.results.format import fmt_num, num, select_time_unit
from bench_lib.techniques.baselines import baseline_variant

__all__ = ["DECODE_PHASE_PARAMS", "UNPAIRED_MARK", "roofline_tokens_per_s", "decode_tradeoffs", "decode_rows",
           "decode_table", "decode_shortfalls"]

DECODE_PHASE_PARAMS = ("param.batch", "param.prompt", "param.gen", "param.mode", "param.phase")
_MODE_ORDER = {"eager": 0, "compile": 1, "graphs": 2, "graphs_tuned": 3}
UNPAIRED_MARK = "*"


def roofline_tokens_per_s(batch: float, peak_bandwidth_bytes_per_s: float, bytes_per_step: float) -> float:
    """The decode tokens/s that memory bandwidth allows: a step emits `batch` tokens and must read
    `bytes_per_step` (weights and KV cache), at best at the device's peak; NaN where either is unknown."""
    values = (batch, peak_bandwidth_bytes_per_s, bytes_per_step)
    if any(num(v) == "-" for v in values) or bytes_per_step <= 0:
        return math.nan
    return float(batch * peak_bandwidth_bytes_per_s / bytes_per_step)


def decode_tradeoffs(df: pd.DataFrame) -> pd.DataFrame:
    """Each successful decode-suite result against its baseline (bf16 on GPU, fp32 on CPU) in the same
    run, workload, device, mode, phase, batch, prompt and generated length.

    Adds `technique` (variant plus its own params, e.g. sparsity), `is_baseline`, `speedup`,
    `speedup_low`, `speedup_high` (the paired speedup the run stored with its 95% interval; where it
    stored none, the ratio of medians with a within-run bootstrap interval, and `speedup_paired` False)
    `baseline_bandwidth_fraction` (the baseline's share of peak bandwidth, for the shortfall notes) and
    `roofline_tokens_per_s` (batch x peak bandwidth / the case's own bytes per step).
    """
    dec = ok_rows(df, "decode")
    if dec.empty:
        return dec
    extra = [c for c in param_columns(dec) if c not in DECODE_PHASE_PARAMS]
    dec["technique"] = dec.apply(lambda r: technique_label(r, extra), axis=1)
    for c in ("param.batch", "param.prompt", "param.gen"):
        dec[c] = dec[c].astype(int)
    dec["is_baseline"] = [v == baseline_variant("decode", d) for v, d in zip(dec["variant"], dec["device"],
                                                                               strict=True)]
    keys = ["run", "workload", "device", *DECODE_PHASE_PARAMS]
    baselines = dec[dec["is_baseline"]].drop_duplicates(keys).set_index(keys)
    base = baselines["samples"]
    dec["baseline_bandwidth_fraction"] = [
        baselines["bandwidth_fraction"].get(tuple(row[k] for k in keys), math.nan)
        if "bandwidth_fraction" in baselines else math.nan for _, row in dec.iterrows()]
    stored = {c: col(dec, c) for c in ("speedup", "speedup_ci95_low", "speedup_ci95_high")}
    speed, lo, hi, paired = [], [], [], []
    for i, row in dec.iterrows():
        ref = base.get(tuple(row[k] for k in keys))
        if row["is_baseline"]:
            speed.append(1.0), lo.append(1.0), hi.append(1.0), paired.append(True)
        elif num(stored["speedup"][i]) != "-":
            speed.append(stored["speedup"][i]), lo.append(stored["speedup_ci95_low"][i])
            hi.append(stored["speedup_ci95_high"][i]), paired.append(True)
        elif ref is None:
            speed.append(math.nan), lo.append(math.nan), hi.append(math.nan), paired.append(False)
        else:
            est = ratio_of_sides([ref], [row["samples"]], resamples=500)
            speed.append(1 / est.ratio), lo.append(1 / est.high), hi.append(1 / est.low), paired.append(False)
    dec["speedup"], dec["speedup_low"], dec["speedup_high"], dec["speedup_paired"] = speed, lo, hi, paired
    dec["roofline_tokens_per_s"] = [roofline_tokens_per_s(b, p, s) for b, p, s in zip(
        dec["param.batch"], col(dec, "peak_bandwidth_bytes_per_s"), col(dec, "bytes_per_step"), strict=True)]
    return dec


def _decode_speedup_cell(r: pd.Series | None) -> str:
    if r is None:
        return "-"
    if r["is_baseline"]:
        return f"1 ({r['variant']}: baseline)"
    if not math.isfinite(r["speedup"]):
        return "-"
    mark = "" if r["speedup_paired"] else UNPAIRED_MARK
    return f"{fmt_num(r['speedup'])}x [{fmt_num(r['speedup_low'])}, {fmt_num(r['speedup_high'])}]{mark}"


def _run_stamp(run: str) -> str:
    """A run directory's name up to its first dash: its UTC start time for runs of `effbench run`."""
    return run.split("-")[0]


def decode_rows(trade: pd.DataFrame) -> list[tuple[pd.Series | None, pd.Series | None]]:
    """(prefill row, decode row) per workload, device, technique, mode, batch, prompt and generated
    length, in table order: mode, batch, prompt, then the baseline first."""
    keys = ["workload", "device", "technique", "param.mode", "param.batch", "param.prompt", "param.gen"]
    out = []
    for _, group in trade.groupby(keys, sort=False):
        phases = {p: g.iloc[0] for p, g in group.groupby("param.phase")}
        out.append((phases.get("prefill"), phases.get("decode")))

    def order(pair: tuple[pd.Series | None, pd.Series | None]) -> tuple:
        r = pair[1] if pair[1] is not None else pair[0]
        return (r["workload"], r["device"], _MODE_ORDER.get(r["param.mode"], 9), str(r["param.mode"]),
                r["param.batch"], r["param.prompt"], not r["is_baseline"], r["technique"])

    return sorted(out, key=order)


def decode_table(trade: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The serving view: time to first token, time per output token with its per-step tails, decode
    tokens/s against the bandwidth roofline, speedup over the baseline, quality. One time unit."""
    times = pd.concat([col(trade, "ttft_median_s"), col(trade, "tpot_median_s")]).dropna()
    scale, unit = select_time_unit(times)
    several_runs = trade["run"].nunique() > 1
    rows = []
    for pre, dec in decode_rows(trade):
        r = dec if dec is not None else pre
        d = dec if dec is not None else pd.Series(dtype=object)
        quality = dec if dec is not None and num(dec.get("greedy_token_agreement")) != "-" else r
        bw, frac = d.get("achieved_bandwidth_bytes_per_s"), d.get("bandwidth_fraction")
        p90, p99 = d.get("tpot_step_p90_s"), d.get("tpot_step_p99_s")
        ppl, ref_ppl = quality.get("perplexity"), quality.get("reference_perplexity")
        rows.append({
            **({"run": ", ".join(dict.fromkeys(_run_stamp(x["run"]) for x in (pre, dec) if x is not None))}
               if several_runs else {}),
            "workload": r["workload"], "device": r["device"], "technique": r["technique"],
            "mode": r["param.mode"], "batch": r["param.batch"], "prompt": r["param.prompt"],
            f"TTFT ({unit})": num(pre["ttft_median_s"] / scale) if pre is not None else "-",
            f"TPOT ({unit})": num(d.get("tpot_median_s", math.nan) / scale),
            f"step p90 / p99 ({unit})": (f"{fmt_num(p90 / scale)} / {fmt_num(p99 / scale)}"
                                         if num(p90) != "-" and num(p99) != "-" else "-"),
            "decode tokens/s": num(d.get("throughput_tokens_per_s"), "{:,.1f}"),
            "bandwidth GB/s (of peak)": (num(bw / 1e9 if num(bw) != "-" else math.nan)
                                         + (f" ({frac:.0%})" if num(frac) != "-" else "")),
            "roofline tokens/s": num(d.get("roofline_tokens_per_s"), "{:,.0f}"),
            "prefill of peak: compute · memory": peak_share_cell(pre) if pre is not None else "-",
            "decode of peak: compute · memory": peak_share_cell(d),
            "decode speedup [95% CI]": _decode_speedup_cell(dec),
            "greedy agreement (prefix tokens)": (
                f"{quality['greedy_token_agreement']:.1%} ({num(quality.get('greedy_prefix_tokens'), '{:.0f}')})"
                if num(quality.get("greedy_token_agreement")) != "-" else "-"),
            "perplexity (ref)": (f"{ppl:.3g} ({ref_ppl:.3g})" if num(ppl) != "-" and num(ref_ppl) != "-"
                                 else num(ppl, "{:.3g}")),
            "energy/token (J)": energy_cell(d, "energy_j_per_token") if dec is not None else "-",
            "weights": str(r.get("weights") or "-").split(" ")[0],
        })
    table = pd.DataFrame(rows)
    if table.empty:
        return table, unit
    keep = {"workload", "technique", "mode", "batch", "prompt"}
    return table.loc[:, [c for c in table.columns if c in keep or (table[c] != "-").any()]], unit


def decode_shortfalls(trade: pd.DataFrame) -> list[str]:
    """A sentence per decode case slower than its baseline: the speedup, the bandwidth it reached
    against the baseline's, and its top kernel (the profiler's first op) as the evidence."""
    out = []
    for _, dec in decode_rows(trade):
        if dec is None or dec["is_baseline"] or not (dec["speedup"] < 1):
            continue
        where = (f"{dec['workload']} on {dec['device']}, {dec['param.mode']}, batch {dec['param.batch']}, "
                 f"prompt {dec['param.prompt']}")
        text = (f"`{dec['technique']}` ({where}) decodes at {_decode_speedup_cell(dec)} the speed of "
                f"{baseline_variant('decode', dec['device'])}")
        frac = dec.get("bandwidth_fraction")
        if num(frac) != "-":
            base_frac = dec.get("baseline_bandwidth_fraction")
            text += f", reaching {frac:.0%} of peak memory bandwidth" + (
                f" against the baseline's {base_frac:.0%}" if num(base_frac) != "-" else "")
        top = dec.get("top_ops")
        if isinstance(top, list) and top and isinstance(top[0], dict):
            op = top[0]
            clock = dec.get("top_ops_clock") or "self time"
            calls = f" over {num(op.get('count_per_call'), '{:.0f}')} calls" if num(op.get("count_per_call")) != "-" \
                else ""
            text += (f"; its top kernel is `{op.get('op')}`, {num(op.get('share'), '{:.0%}')} of the step's "
                     f"{clock} under the profiler ({num(op.get('self_us_per_call'))} us a step{calls})")
        else:
            text += "; the result carries no profiler evidence"
        out.append(text + ".")
    return out
