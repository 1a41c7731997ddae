"""The report's tables: pandas frames derived from `results_frame`, and their markdown.

Derivation (speedups, Pareto fronts, per-suite summaries) is kept apart from rendering:
`results.format.markdown_table` is the only place that turns a frame into text, and each table
uses one unit for all its cells (`select_time_unit`), so columns can be read down.
"""

from __future__ import annotations

import math

import pandas as pd

from bench_lib.report.compare import baseline_variant, ratio_of_sides
from bench_lib.results.format import fmt_bytes, fmt_num, num, select_time_unit, whole

__all__ = [
    "param_columns",
    "ok_rows",
    "inference_tradeoffs",
    "pareto_front",
    "inference_latency_table",
    "inference_cost_table",
    "collectives_table",
    "training_table",
    "convergence_rows",
    "convergence_table",
    "energy_notes",
    "skipped_table",
    "failed_table",
    "noisy_table",
    "host_bound_table",
    "roofline_tokens_per_s",
    "latest_per_case",
    "decode_tradeoffs",
    "decode_rows",
    "decode_table",
    "decode_shortfalls",
]

def param_columns(df: pd.DataFrame) -> list[str]:
    return sorted(c for c in df.columns if c.startswith("param.") and df[c].notna().any())


def ok_rows(df: pd.DataFrame, suite: str) -> pd.DataFrame:
    if df.empty or "suite" not in df:
        return df
    return df[(df["suite"] == suite) & (df["status"] == "ok")].copy()


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df else pd.Series([math.nan] * len(df), index=df.index)


def _technique_label(row: pd.Series, extra: list[str]) -> str:
    parts = [f"{c.removeprefix('param.')}={row[c]:g}" if isinstance(row[c], float) else
             f"{c.removeprefix('param.')}={row[c]}" for c in extra if pd.notna(row.get(c))]
    return row["variant"] + (f" ({', '.join(parts)})" if parts else "")


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
    inf["technique"] = inf.apply(lambda r: _technique_label(r, extra), axis=1)
    inf["param.batch"] = inf["param.batch"].astype(int)
    inf["is_baseline"] = [v == baseline_variant("inference", d) for v, d in zip(inf["variant"], inf["device"],
                                                                                   strict=True)]
    keys = ["run", "workload", "device", "param.batch"]
    base = inf[inf["is_baseline"]].drop_duplicates(keys).set_index(keys)["samples"]
    paired = _col(inf, "speedup_pairs")
    stored = {c: _col(inf, c) for c in ("speedup", "speedup_ci95_low", "speedup_ci95_high")}
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
    inf["accuracy_cost_pts"] = -100 * _col(inf, "accuracy_delta")
    return inf


def pareto_front(cost: list[float], gain: list[float]) -> list[bool]:
    """Points no other point beats on both axes (lower cost, higher gain)."""
    out = []
    for i, (c, g) in enumerate(zip(cost, gain, strict=True)):
        dominated = any(c2 <= c and g2 >= g and (c2 < c or g2 > g)
                        for j, (c2, g2) in enumerate(zip(cost, gain, strict=True)) if j != i)
        out.append(not dominated)
    return out


def _runs_label(df: pd.DataFrame) -> list[str]:
    return ["run"] if df["run"].nunique() > 1 else []


def inference_latency_table(trade: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Median latency [95% CI] per technique (columns) and workload/batch (rows), one unit."""
    scale, unit = select_time_unit(trade["ci_low_s"])
    cells = zip(trade["median_s"], trade["ci_low_s"], trade["ci_high_s"], strict=True)
    trade = trade.assign(cell=[f"{fmt_num(m / scale)} [{fmt_num(lo / scale)}, {fmt_num(hi / scale)}]"
                               for m, lo, hi in cells])
    rows = [*_runs_label(trade), "workload", "device", "param.batch"]
    table = trade.pivot_table(index=rows, columns="technique", values="cell", aggfunc="first").reset_index()
    table.columns.name = None
    return table.rename(columns={"param.batch": "batch"}).fillna("-"), unit


ROUGH_ENERGY_MARK = "~"


def _energy(r: pd.Series, key: str, invert: bool = False) -> str:
    """Joules per unit of work (or units of work per joule), marked ROUGH_ENERGY_MARK when the
    counter moved too few times in the window (`energy_warnings`)."""
    value = r.get(key)
    if num(value) == "-" or value <= 0:
        return "-"
    rough = isinstance(r.get("energy_warnings"), list) and bool(r["energy_warnings"])
    return (ROUGH_ENERGY_MARK if rough else "") + (num(1 / value, "{:,.0f}") if invert else fmt_num(value))


def energy_notes(frame: pd.DataFrame) -> list[str]:
    """Why cases carry no energy (each distinct reason, with its count), and which figures are rough."""
    out = []
    if "energy_not_measured" in frame:
        for reason, n in frame["energy_not_measured"].dropna().value_counts().items():
            out.append(f"energy not measured in {n} case(s): {reason}")
    if "energy_warnings" in frame:
        rough = frame[frame["energy_warnings"].map(lambda w: isinstance(w, list) and bool(w))]
        if not rough.empty:
            out.append(f"{ROUGH_ENERGY_MARK}: rough, in {len(rough)} case(s), e.g. {rough.iloc[0]['case_id']}: "
                       f"{rough.iloc[0]['energy_warnings'][0]}")
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
            "energy/sample (J)": _energy(r, "energy_j_per_sample"),
            "tokens/J": _energy(r, "energy_j_per_token", invert=True),
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


def collectives_table(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per backend, op, dtype and size: latency (one unit), p99, algbw and busbw, wrong elements."""
    col = ok_rows(df, "collectives")
    scale, unit = select_time_unit(col["median_s"])
    col = col.sort_values(["workload", "variant", "param.dtype", "param.size_bytes"])
    rows = [{
        **({"run": r["run"]} if col["run"].nunique() > 1 else {}),
        "backend": r["workload"], "op": r["variant"], "dtype": r.get("param.dtype", "-"),
        "ranks": whole(r.get("param.world_size")), "size": fmt_bytes(r.get("param.size_bytes")),
        f"latency median ({unit})": f"{fmt_num(r['median_s'] / scale)} [{fmt_num(r['ci_low_s'] / scale)}, "
                                    f"{fmt_num(r['ci_high_s'] / scale)}]",
        f"p99 ({unit})": num(r.get("latency_p99_s", r["p99_s"]) / scale),
        "algbw (GB/s)": num(r.get("algbw_GBps")),
        "busbw (GB/s)": num(r.get("busbw_GBps")),
        "wrong": num(r.get("wrong_elements"), "{:.0f}"),
    } for _, r in col.iterrows()]
    return pd.DataFrame(rows), unit


CONVERGENCE_COLUMN = "param.convergence_seeds"  # present on the training suite's convergence cases


def convergence_rows(tr: pd.DataFrame, convergence: bool = True) -> pd.DataFrame:
    """The training rows of convergence cases (or, with False, the throughput cases)."""
    marked = tr[CONVERGENCE_COLUMN].notna() if CONVERGENCE_COLUMN in tr else pd.Series(False, index=tr.index)
    return tr[marked if convergence else ~marked]


def _mean_ci(r: pd.Series, mean: str, low: str, high: str, fmt: str) -> str:
    if num(r.get(mean)) == "-":
        return "-"
    value = fmt.format(r[mean])
    if num(r.get(low)) == "-":
        return value + " [one seed]"
    return f"{value} [{fmt.format(r[low])}, {fmt.format(r[high])}]"


def _time_to_target_cell(r: pd.Series) -> str:
    """Mean [95% t CI] over seeds when every seed reached the target; else how many did."""
    if num(r.get("convergence_target_loss")) == "-":
        return "- (no sync: no target)"
    seeds, reached = int(r.get("convergence_seeds") or 0), int(r.get("time_to_target_reached") or 0)
    if reached < seeds:
        return f"not reached ({reached} of {seeds} seeds did)"
    return _mean_ci(r, "time_to_target_mean_s", "time_to_target_ci95_low_s", "time_to_target_ci95_high_s", "{:.3g}")


def convergence_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model, backend and strategy of the convergence cases: seeds, held-out loss at the wall-clock budget
    and time to sync's target, each the mean over seeds with its 95% t interval over seeds."""
    conv = convergence_rows(ok_rows(df, "training"))
    rows = []
    for _, r in conv.sort_values(["workload", "param.backend", "variant"]).iterrows():
        rows.append({
            **({"run": r["run"]} if conv["run"].nunique() > 1 else {}),
            "model": r["workload"], "backend": r.get("param.backend", "-"), "ranks": whole(r.get("param.world_size")),
            "strategy": r["variant"], "seeds": whole(r.get("convergence_seeds")),
            "budget (s)": num(r.get("param.budget_s"), "{:g}"),
            "steps (per seed)": "/".join(str(s) for s in r["steps_by_seed"]) if isinstance(
                r.get("steps_by_seed"), list) else "-",
            "held-out loss at budget [95% CI]": _mean_ci(r, "eval_loss_at_budget", "eval_loss_at_budget_ci95_low",
                                                         "eval_loss_at_budget_ci95_high", "{:.4g}"),
            "target loss": num(r.get("convergence_target_loss"), "{:.4g}"),
            "time to target (s) [95% CI]": _time_to_target_cell(r),
        })
    return pd.DataFrame(rows)


def training_table(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per model, backend and strategy: wall-clock pace and throughput beside the step-time distribution,
    exposed comm, memory, loss (the throughput cases; `convergence_table` has the others)."""
    tr = convergence_rows(ok_rows(df, "training"), convergence=False)
    scale, unit = select_time_unit(tr["median_s"])
    extra = [c for c in param_columns(tr) if c not in ("param.backend", "param.world_size")]
    rows = []
    for _, r in tr.sort_values(["workload", "param.backend", "variant"]).iterrows():
        # Results stored before the wall-clock pace have only the median step.
        pace = r.get("step_time_wall_s") if num(r.get("step_time_wall_s")) != "-" else r["median_s"]
        exposed = r.get("exposed_comm_s")
        share = exposed / pace if num(exposed) != "-" and pace > 0 else math.nan
        ttt = r.get("time_to_target_s")
        rows.append({
            **({"run": r["run"]} if tr["run"].nunique() > 1 else {}),
            "model": r["workload"], "backend": r.get("param.backend", "-"), "ranks": whole(r.get("param.world_size")),
            "strategy": _technique_label(r, extra),
            f"wall per step ({unit})": fmt_num(pace / scale),
            f"step time ({unit}) [95% CI]": f"{fmt_num(r['median_s'] / scale)} [{fmt_num(r['ci_low_s'] / scale)}, "
                                            f"{fmt_num(r['ci_high_s'] / scale)}]",
            f"p90 step ({unit})": num(r.get("step_time_p90_s", math.nan) / scale),
            "samples/s": num(r.get("samples_per_s"), "{:,.0f}"),
            "tokens/s": num(r.get("tokens_per_s"), "{:,.0f}"),
            f"exposed comm ({unit})": num(exposed / scale if num(exposed) != "-" else math.nan),
            # A negative exposed time means the no-communication run was the slower one: noise.
            "comm share of step": num(share, "{:.0%}") + (" (below 0: noise)" if share < 0 else ""),
            "speedup over sync [95% CI]": _speedup_over_sync(r),
            "harness overhead": num(r.get("harness_overhead"), "{:+.1%}"),
            "peak memory": fmt_bytes(r.get("peak_memory_bytes")),
            "energy/step (J)": _energy(r, "energy_j_per_step"),
            "tokens/J": _energy(r, "energy_j_per_token", invert=True),
            "power (W)": num(r.get("power_mean_w"), "{:.0f}"),
            "eval loss": num(r.get("eval_loss"), "{:.4g}"),
            "eval accuracy": num(r.get("eval_accuracy"), "{:.2%}"),
            "loss at sync's wall time": num(r.get("loss_at_equal_wall"), "{:.4g}"),
            "target loss": num(r.get("target_loss"), "{:.4g}"),
            "time to target (s)": (num(ttt, "{:.2f}") if num(ttt) != "-" else
                                   ("not reached" if num(r.get("target_loss")) != "-" else "-")),
        })
    table = pd.DataFrame(rows)
    return (table.loc[:, (table != "-").any(axis=0)] if not table.empty else table), unit


def _speedup_over_sync(r: pd.Series) -> str:
    """The speedup over sync from paired stretches with its 95% interval, as `effbench run` stores it;
    for older results, sync's wall per step over this strategy's with the range over the stretches
    (marked "range")."""
    if r["variant"] == "sync":
        return "-"
    if num(r.get("speedup")) != "-" and num(r.get("speedup_pairs")) != "-":
        return f"{r['speedup']:.2f} [{r['speedup_ci95_low']:.2f}, {r['speedup_ci95_high']:.2f}]"
    speedup, by_stretch = r.get("speedup_over_sync"), r.get("speedup_over_sync_by_stretch")
    if num(speedup) == "-":
        return "-"
    spread = (f" [range {min(by_stretch):.2f}-{max(by_stretch):.2f}]" if isinstance(by_stretch, list) and by_stretch
              else "")
    return f"{speedup:.2f}{spread}"


def _status_rows(df: pd.DataFrame, status: str) -> pd.DataFrame:
    if df.empty:
        return df
    sel = df[df["status"] == status]
    return pd.DataFrame({**_run_column(df, sel), "case": sel["suite"] + "/" + sel["case_id"],
                         "reason": sel["reason"].map(_first_and_last_line)})


def _run_column(df: pd.DataFrame, sel: pd.DataFrame) -> dict:
    """The run of each row, where the report holds several (the same case can fail in one, pass in another)."""
    return {"run": sel["run"]} if "run" in df and df["run"].nunique() > 1 else {}


def _first_and_last_line(text: object) -> str:
    """The context (first line) and, under a traceback, the exception itself (last line)."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()] or ["-"]
    return (lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}")[:400]


def skipped_table(df: pd.DataFrame) -> pd.DataFrame:
    return _status_rows(df, "skipped")


def failed_table(df: pd.DataFrame) -> pd.DataFrame:
    """Failed cases with the last line of their error (the exception, under a traceback)."""
    return _status_rows(df, "failed")


def noisy_table(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty or "warnings" not in df:
        return pd.DataFrame()
    sel = df[(df["status"] == "ok") & df["warnings"].fillna("").astype(bool)]
    return pd.DataFrame({**_run_column(df, sel), "case": sel["suite"] + "/" + sel["case_id"],
                         "samples": sel["n"].astype(int),
                         "IQR / median": sel["spread"].map(lambda v: f"{v:.0%}"), "warning": sel["warnings"]})


# Decode (LLM serving): one row per workload, technique, mode, batch and prompt, both phases joined.

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


def latest_per_case(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The newest run's row of each case (run directories are named by their UTC start time, so the
    name that sorts last is the newest), and how many older rows were left out."""
    if frame.empty:
        return frame, 0
    newest = frame.sort_values("run").drop_duplicates(["suite", "case_id"], keep="last")
    return newest.loc[frame.index.intersection(newest.index)], len(frame) - len(newest)


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
    dec["technique"] = dec.apply(lambda r: _technique_label(r, extra), axis=1)
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
    stored = {c: _col(dec, c) for c in ("speedup", "speedup_ci95_low", "speedup_ci95_high")}
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
        dec["param.batch"], _col(dec, "peak_bandwidth_bytes_per_s"), _col(dec, "bytes_per_step"), strict=True)]
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
    times = pd.concat([_col(trade, "ttft_median_s"), _col(trade, "tpot_median_s")]).dropna()
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
            "decode speedup [95% CI]": _decode_speedup_cell(dec),
            "greedy agreement (prefix tokens)": (
                f"{quality['greedy_token_agreement']:.1%} ({num(quality.get('greedy_prefix_tokens'), '{:.0f}')})"
                if num(quality.get("greedy_token_agreement")) != "-" else "-"),
            "perplexity (ref)": (f"{ppl:.3g} ({ref_ppl:.3g})" if num(ppl) != "-" and num(ref_ppl) != "-"
                                 else num(ppl, "{:.3g}")),
            "energy/token (J)": _energy(d, "energy_j_per_token") if dec is not None else "-",
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
