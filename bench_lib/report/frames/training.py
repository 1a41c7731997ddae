"""The training suite's frames: the throughput cases (pace, speedup over sync, losses) and the convergence cases."""

from __future__ import annotations

import math

import pandas as pd

from bench_lib.report.frames.common import energy_cell, ok_rows, param_columns, peak_share_cell, technique_label
from bench_lib.results.format import fmt_bytes, fmt_num, num, select_time_unit, whole

__all__ = ["CONVERGENCE_COLUMN", "convergence_rows", "convergence_table", "training_table"]

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
            "strategy": technique_label(r, extra),
            f"wall per step ({unit})": fmt_num(pace / scale),
            f"step time ({unit}) [95% CI]": f"{fmt_num(r['median_s'] / scale)} [{fmt_num(r['ci_low_s'] / scale)}, "
                                            f"{fmt_num(r['ci_high_s'] / scale)}]",
            f"p90 step ({unit})": num(r.get("step_time_p90_s", math.nan) / scale),
            "samples/s": num(r.get("samples_per_s"), "{:,.0f}"),
            "tokens/s": num(r.get("tokens_per_s"), "{:,.0f}"),
            "tokens/s per device": num(r.get("tokens_per_s_per_device"), "{:,.0f}"),
            "MFU [data sheet]": peak_share_cell(r, ("flops",)),
            f"exposed comm ({unit})": num(exposed / scale if num(exposed) != "-" else math.nan),
            # A negative exposed time means the no-communication run was the slower one: noise.
            "comm share of step": num(share, "{:.0%}") + (" (below 0: noise)" if share < 0 else ""),
            "speedup over sync [95% CI]": _speedup_over_sync(r),
            "harness overhead": num(r.get("harness_overhead"), "{:+.1%}"),
            "peak memory": fmt_bytes(r.get("peak_memory_bytes")),
            "energy/step (J)": energy_cell(r, "energy_j_per_step"),
            "tokens/J": energy_cell(r, "energy_j_per_token", invert=True),
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
