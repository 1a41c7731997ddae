"""Cases that did not measure, or measured noisily: skipped, failed and noisy tables over every suite."""

from __future__ import annotations

import pandas as pd

from bench_lib.report.frames.common import run_column

__all__ = ["skipped_table", "failed_table", "noisy_table"]


def _status_rows(df: pd.DataFrame, status: str) -> pd.DataFrame:
    if df.empty:
        return df
    sel = df[df["status"] == status]
    return pd.DataFrame({**run_column(df, sel), "case": sel["suite"] + "/" + sel["case_id"],
                         "reason": sel["reason"].map(_first_and_last_line)})


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
    return pd.DataFrame({**run_column(df, sel), "case": sel["suite"] + "/" + sel["case_id"],
                         "samples": sel["n"].astype(int),
                         "IQR / median": sel["spread"].map(lambda v: f"{v:.0%}"), "warning": sel["warnings"]})
