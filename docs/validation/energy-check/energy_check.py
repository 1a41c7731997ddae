"""Checks the NVML energy meter against issue 19's targets on one GPU; run on the GPU machine:

    PYTHONPATH=$PWD python docs/validation/energy-check/energy_check.py --out energy-check.json

1. A bf16 GEMM loop (8192^3, after WARM_S of the same loop so that clocks and power are steady)
   for GEMM_S under `EnergyMeter`, while `nvidia-smi --query-gpu=power.draw -lms 100` samples
   the board's power in a subprocess: the meter's joules against the mean sampled power x the
   window (target: within 10%). Also the counter's update interval seen by the meter.
2. The inference suite's characterization (what `effbench run` records per case, its energy
   window included) twice back to back on each case: joules per token of the two (target: within 10%).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import time

import torch

from bench_lib.measure.energy import EnergyMeter, EnergyWindow, counter_for
from bench_lib.results.case import CaseSpec
from bench_lib.suites.inference.suite import InferenceSuite

WARM_S, GEMM_S, N = 1.0, 4.0, 8192
CASES = (("byte_gpt_d2048_random", "bf16"), ("byte_gpt_d2048_random", "bf16_compile"), ("byte_gpt", "bf16"))
SMI_FIELDS = ("power.draw.instant", "power.draw")  # instant where this nvidia-smi has it, else the 1 s average


def _smi(field: str) -> subprocess.Popen:
    return subprocess.Popen(["nvidia-smi", "-i", "0", f"--query-gpu=timestamp,{field}", "--format=csv,noheader,nounits",
                             "-lms", "100"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _smi_samples(out: str) -> list[tuple[float, float]]:
    """(unix time, watts) from nvidia-smi's csv lines; lines that are not samples are skipped."""
    samples = []
    for line in out.splitlines():
        try:
            stamp, watts = (p.strip() for p in line.split(","))
            t = datetime.datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp()
            samples.append((t, float(watts)))
        except ValueError:
            continue
    return samples


def gemm_check() -> dict:
    counter = counter_for("cuda:0")
    if isinstance(counter, str):
        return {"not_measured": counter}
    a = torch.randn(N, N, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(N, N, device="cuda", dtype=torch.bfloat16)

    def loop(seconds: float) -> int:
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(10):
                a @ b
            torch.cuda.synchronize()
            calls += 10
        return calls

    for field in SMI_FIELDS:
        smi = _smi(field)
        time.sleep(0.5)
        if smi.poll() is None:
            break
    loop(WARM_S)
    t0 = time.time()
    with EnergyMeter(counter) as meter:
        calls = loop(GEMM_S)
    t1 = time.time()
    time.sleep(0.3)
    smi.terminate()
    samples = [(t, w) for t, w in _smi_samples(smi.communicate()[0]) if t0 <= t <= t1]
    w = meter.result
    assert isinstance(w, EnergyWindow), w
    smi_w = sum(x for _, x in samples) / len(samples) if samples else math.nan
    return {"window_s": w.seconds, "gemms": calls, "tflops": 2 * N**3 * calls / w.seconds / 1e12,
            "nvml_joules": w.joules, "nvml_power_w": w.power_w, "nvml_updates": w.updates,
            "nvml_update_interval_s": w.span_s / (w.updates - 1), "smi_field": field,
            "smi_samples": len(samples), "smi_mean_power_w": smi_w, "smi_joules": smi_w * w.seconds,
            "nvml_over_smi": w.joules / (smi_w * w.seconds), "source": w.source}


def repeat_check() -> list[dict]:
    suite, out = InferenceSuite(), []
    for workload, technique in CASES:
        case = CaseSpec.make("inference", workload, technique, "cuda", batch=8)
        runs = [suite.characterize(case, "quick").metrics for _ in range(2)]
        keys = ("energy_j_per_token", "power_mean_w", "energy_counter_updates", "energy_window_s",
                "latency_median_s", "energy_warnings", "energy_not_measured")
        j = [r.get("energy_j_per_token") for r in runs]
        out.append({"case": case.id, "runs": [{k: r[k] for k in keys if k in r} for r in runs],
                    "second_over_first": j[1] / j[0] if all(j) else None})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    args = p.parse_args()
    result = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "gemm": gemm_check()}
    print(json.dumps(result["gemm"], indent=1), flush=True)
    result["repeat"] = repeat_check()
    print(json.dumps(result["repeat"], indent=1), flush=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
