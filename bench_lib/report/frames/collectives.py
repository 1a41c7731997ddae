"""The collectives suite's frame: latency and bandwidth per backend, op, dtype and size."""

from __future__ import annotations

import pandas as pd

from bench_lib.report.frames.common import ok_rows
from bench_lib.results.format import fmt_bytes, fmt_num, num, select_time_unit, whole

__all__ = ["collectives_table"]


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
