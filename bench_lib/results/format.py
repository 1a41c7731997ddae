"""How figures are written as text: one time unit per table, three significant digits, sizes in
binary units, and frames of formatted cells as markdown tables. Shared by the report, the
projection and the history page."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["select_time_unit", "fmt_num", "fmt_bytes", "num", "whole", "markdown_table"]

_TIME_UNITS = [(1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")]


def select_time_unit(seconds: pd.Series | list[float]) -> tuple[float, str]:
    """The largest unit in which the typical (median) value is >= 1 (one unit per table)."""
    values = [v for v in seconds if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
    typical = float(np.median(values)) if values else 1.0
    for scale, unit in _TIME_UNITS:
        if typical >= scale:
            return scale, unit
    return _TIME_UNITS[-1]


def fmt_num(value: float) -> str:
    """Three significant digits, never exponent notation: 0.0123, 4.56, 789, 12,345."""
    if not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}"


def fmt_bytes(n: object) -> str:
    if not isinstance(n, (int, float)) or not math.isfinite(n):
        return "-"
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def num(value: object, fmt: str | None = None) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        return "-"
    return fmt.format(value) if fmt else fmt_num(value)


def whole(value: object) -> str:
    """Params come back as floats when another suite's rows lack them (NaN); show them whole."""
    return num(value, "{:.0f}")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of a frame whose cells are already formatted."""
    if df.empty:
        return "_(none)_"
    cols = [str(c) for c in df.columns]

    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
