"""The inference suite's speedup and quality table, from stored results.

    python -m bench_lib.report.inference_table RUN_DIR

Speedups are against the device's baseline (fp32 eager on CPU, bf16 eager on GPU) of the
same workload and batch. Runs of `effbench run` store them from paired rounds (technique and
baseline back to back in one process, over several processes) with a 95% interval; a speedup
whose interval holds 1 is marked `~` (within noise). Older files, without paired rounds, get
the ratio of the two medians, marked `~` where the two cases' intervals overlap.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bench_lib.report.frames.common import USER_MODEL_PARAMS
from bench_lib.results.case import CaseResult
from bench_lib.results.store import ResultFormatError, load_run
from bench_lib.techniques.baselines import baseline_variant

__all__ = ["summary_frame", "main"]

def _label(result: CaseResult) -> str:
    extra = [f"{k}={v}" for k, v in result.case.params if k != "batch" and k not in USER_MODEL_PARAMS]
    return result.case.variant + (f" ({', '.join(extra)})" if extra else "")


def summary_frame(results: list[CaseResult]) -> pd.DataFrame:
    """One row per inference case: time, speedup vs baseline, conversion and compile time, quality."""
    base = {}
    for r in results:
        device = r.case.device.split(":")[0]
        if (r.status == "ok" and r.case.variant == baseline_variant("inference", device)
                and not dict(r.case.params).keys() - {"batch"}):
            base[(r.case.workload, device, r.case.param("batch"))] = r.measurement
    rows = []
    for r in results:
        device = r.case.device.split(":")[0]
        row = {"workload": r.case.workload, "device": device, "batch": r.case.param("batch"), "technique": _label(r)}
        if r.status != "ok":
            rows.append({**row, "status": r.status, "note": r.reason.splitlines()[0][:90]})
            continue
        m, x = r.measurement, r.metrics
        ref = base.get((r.case.workload, device, r.case.param("batch")))
        speedup = ""
        if "speedup" in x:
            lo, hi = x["speedup_ci95_low"], x["speedup_ci95_high"]
            speedup = f"{x['speedup']:.2f}x [{lo:.2f}, {hi:.2f}]" + ("~" if lo <= 1 <= hi else "")
        elif ref is not None:
            lo, hi = m.ci95
            rlo, rhi = ref.ci95
            within = lo <= rhi and rlo <= hi and r.case.variant != baseline_variant("inference", device)
            speedup = f"{ref.median / m.median:.2f}x" + ("~" if within else "")
        ppl = x.get("perplexity")
        rows.append({
            **row, "status": "ok", "median_ms": round(m.median * 1e3, 3), "speedup": speedup,
            "convert_s": round(x.get("prepare_s", 0) + x.get("convert_s", 0), 1),
            "first_call_s": round(x.get("first_call_s", 0), 1),
            "accuracy": round(x["accuracy"], 4) if "accuracy" in x else None,
            "acc_delta": round(x["accuracy_delta"], 4) if "accuracy_delta" in x else None,
            "agreement": round(x["agreement_with_reference"], 4) if "agreement_with_reference" in x else None,
            "ppl": f"{ppl:.2f}/{x['reference_perplexity']:.2f}" if ppl is not None else "",
            "size_MB": round(x["serialized_bytes"] / 2**20, 2) if x.get("serialized_bytes") else None,
            "gpu_busy": f"{x['gpu_busy_fraction']:.0%}" if "gpu_busy_fraction" in x else "",
            "top_op": (x.get("top_ops") or [{}])[0].get("op", "")[:40],
        })
    return pd.DataFrame(rows)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench_lib.report.inference_table RUN_DIR", file=sys.stderr)
        return 2
    try:
        runs = load_run(Path(argv[0]))
    except (ResultFormatError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = [r for run in runs if run.suite == "inference" for r in run.results]
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 250):
        print(summary_frame(results).astype(object).fillna("").to_string(index=False))
    print("speedup: baseline time / case time (fp32 eager on CPU, bf16 eager on GPU), same workload and batch, "
          "from paired rounds with its 95% interval where the run has them; ~: within noise (the interval holds 1, "
          "or, without paired rounds, the two cases' 95% CIs overlap). ppl: case/reference perplexity.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
