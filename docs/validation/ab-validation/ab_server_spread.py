"""How far apart one side's server processes put identical code, per case, over many A/B jobs.

    python docs/validation/ab-validation/ab_server_spread.py JOB_JSON_OR_DIR [...]

Reads the `ab.json` of each job (the full record: every pair's ratio and its servers) and, for
every case, the server spread of each job (`bench_lib.ab.verdict.server_spread`: the largest
quotient of two servers' median paired ratios on one side). Only A/A jobs count (BASE and NEW at
one commit), so that every difference between servers is a process's own bias or luck. A case
whose spread often exceeds the A/B threshold cannot be judged at that threshold by one job.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench_lib.ab.verdict import server_spread
from bench_lib.results.format import markdown_table


def aa_rows(paths: list[Path]) -> pd.DataFrame:
    rows = []
    for path in paths:
        doc = json.loads(path.read_text())["effbench_ab"]
        if doc["base"]["commit"] != doc["new"]["commit"]:
            continue
        for case in doc["cases"]:
            if len(case["base_rounds_s"]) < 2:
                continue
            ratios = np.asarray(case["new_rounds_s"]) / np.asarray(case["base_rounds_s"])
            rows.append({"job": path.stem, "case": case["case"]["id"] if "id" in case["case"] else case["name"],
                         "pairs": len(ratios), "spread": server_spread(ratios, [tuple(s) for s in case["servers"]]),
                         "verdict": case["verdict"]})
    return pd.DataFrame(rows)


def table(df: pd.DataFrame, threshold: float = 0.05) -> str:
    df = df[df.spread.map(math.isfinite)]
    g = df.groupby("case")
    out = pd.DataFrame({
        "A/A jobs": g.size(),
        "median spread": g.spread.median().map(lambda s: f"{s - 1:.1%}"),
        "p90 spread": g.spread.quantile(0.9).map(lambda s: f"{s - 1:.1%}"),
        "max spread": g.spread.max().map(lambda s: f"{s - 1:.1%}"),
        f"jobs over {threshold:.0%}": g.spread.apply(lambda s: f"{int((s > 1 + threshold).sum())} of {len(s)}"),
        "undecided": g.verdict.apply(lambda v: int((v == "undecided").sum())),
        "order": g.spread.max(),
    }).sort_values("order", ascending=False).drop(columns="order")
    return markdown_table(out.reset_index())


def main() -> int:
    paths = [p for arg in map(Path, sys.argv[1:]) for p in (sorted(arg.glob("*.json")) if arg.is_dir() else [arg])]
    if not paths:
        print("usage: ab_server_spread.py JOB_JSON_OR_DIR [...]", file=sys.stderr)
        return 2
    df = aa_rows(paths)
    print(f"{df.job.nunique()} A/A jobs\n")
    print(table(df))
    return 0


if __name__ == "__main__":
    sys.exit(main())
