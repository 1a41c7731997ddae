"""What the per-suite frames share: the rows of a suite, its parameter columns, labels, energy cells."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench_lib.results.format import fmt_num, num

__all__ = ["USER_MODEL_PARAMS", "param_columns", "ok_rows", "col", "technique_label", "pareto_front", "latest_per_case",
           "run_column", "ROUGH_ENERGY_MARK", "energy_cell", "energy_notes"]


# A user's model's params (bench_lib.workloads.user.MODEL_PARAMS, and the spec) name the workload, which the
# `workload` column shows already: they are not the technique's.
USER_MODEL_PARAMS = ("model", "eval_text", "quality_target")


def param_columns(df: pd.DataFrame) -> list[str]:
    """The technique's parameter columns that hold a value."""
    return sorted(c for c in df.columns if c.startswith("param.") and df[c].notna().any()
                  and c.removeprefix("param.") not in USER_MODEL_PARAMS)


def ok_rows(df: pd.DataFrame, suite: str) -> pd.DataFrame:
    if df.empty or "suite" not in df:
        return df
    return df[(df["suite"] == suite) & (df["status"] == "ok")].copy()


def col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df else pd.Series([math.nan] * len(df), index=df.index)


def technique_label(row: pd.Series, extra: list[str]) -> str:
    parts = [f"{c.removeprefix('param.')}={row[c]:g}" if isinstance(row[c], float) else
             f"{c.removeprefix('param.')}={row[c]}" for c in extra if pd.notna(row.get(c))]
    return row["variant"] + (f" ({', '.join(parts)})" if parts else "")


def pareto_front(cost: list[float], gain: list[float]) -> list[bool]:
    """Points no other point beats on both axes (lower cost, higher gain)."""
    out = []
    for i, (c, g) in enumerate(zip(cost, gain, strict=True)):
        dominated = any(c2 <= c and g2 >= g and (c2 < c or g2 > g)
                        for j, (c2, g2) in enumerate(zip(cost, gain, strict=True)) if j != i)
        out.append(not dominated)
    return out


def latest_per_case(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The newest run's row of each case (run directories are named by their UTC start time, so the
    name that sorts last is the newest), and how many older rows were left out."""
    if frame.empty:
        return frame, 0
    newest = frame.sort_values("run").drop_duplicates(["suite", "case_id"], keep="last")
    return newest.loc[frame.index.intersection(newest.index)], len(frame) - len(newest)


def run_column(df: pd.DataFrame, sel: pd.DataFrame) -> dict:
    """The run of each row, where the report holds several (the same case can fail in one, pass in another)."""
    return {"run": sel["run"]} if "run" in df and df["run"].nunique() > 1 else {}


ROUGH_ENERGY_MARK = "~"


def _share(value: object) -> str:
    """A share of a peak: one decimal of a percent, two significant digits below 1% (a small model's MFU
    would read 0.0%)."""
    if not isinstance(value, (int, float)):
        return "N/A"
    if value == 0 or abs(value) >= 0.01:
        return f"{value:.1%}"
    return np.format_float_positional(100 * value, precision=2, unique=True, fractional=False, trim="-") + "%"


def peak_share_cell(r: pd.Series, kinds: tuple[str, ...] = ("flops", "bytes")) -> str:
    """A case's share of the peaks measured in its run (`metrics.roofline`: compute, then memory
    bandwidth), with the data sheet's in brackets where effbench knows the device; N/A where a peak
    is not known, never a guess."""
    roof = r.get("roofline")
    if not isinstance(roof, dict):
        return "-"
    measured = " · ".join(_share(roof.get(f"{k}_fraction_measured")) for k in kinds)
    sheet = [roof.get(f"{k}_fraction_data_sheet") for k in kinds]
    return measured + (f" [sheet {' · '.join(_share(v) for v in sheet)}]" if any(v is not None for v in sheet) else "")


def energy_cell(r: pd.Series, key: str, invert: bool = False) -> str:
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
