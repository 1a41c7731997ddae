"""The collectives suite's frame: latency and bandwidth per backend, op, dtype and size."""

from __future__ import annotations

import pandas as pd

from bench_lib.report.frames.common import ok_rows
from bench_lib.results.format import fmt_bytes, fmt_num, num, select_time_unit, whole

__all__ = ["collectives_table", "collectives_summary"]


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


def collectives_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per backend, op and dtype: the smallest message's latency (what a small all_reduce costs) and the largest
    message's busbw (what the link carries)."""
    col = ok_rows(df, "collectives").sort_values("param.size_bytes")
    rows = []
    keys = [k for k in ("run", "workload", "variant", "param.dtype") if k in col and (k != "run" or
                                                                                    col["run"].nunique() > 1)]
    for _, sub in col.groupby(keys, sort=True):
        small, large = sub.iloc[0], sub.iloc[-1]
        scale, unit = select_time_unit([small["median_s"]])
        rows.append({
            **({"run": small["run"]} if "run" in keys else {}),
            "backend": small["workload"], "op": small["variant"], "dtype": small.get("param.dtype", "-"),
            "ranks": whole(small.get("param.world_size")),
            "smallest size": fmt_bytes(small.get("param.size_bytes")),
            "its latency [95% CI]": f"{fmt_num(small['median_s'] / scale)} [{fmt_num(small['ci_low_s'] / scale)}, "
                                    f"{fmt_num(small['ci_high_s'] / scale)}] {unit}",
            "largest size": fmt_bytes(large.get("param.size_bytes")),
            "its busbw (GB/s)": num(large.get("busbw_GBps")),
        })
    return pd.DataFrame(rows)
