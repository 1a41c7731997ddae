"""The inference suite: technique x workload x batch size, speed and accuracy in one case.

Each case trains (or loads from cache) the uncompressed reference, applies the technique,
times the served model, and judges its predictions on held-out real data against the
reference's, so a speed figure never travels without its quality figure.
"""

from __future__ import annotations

import copy
import gc
import os
import time
from dataclasses import asdict

import torch

from bench_lib.inference.size import model_size
from bench_lib.inference.techniques import TECHNIQUES, skip_reason
from bench_lib.measure import memory
from bench_lib.measure.timers import blocked_autorange, timer_for
from bench_lib.platform import Platform
from bench_lib.profiles import measure_config
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.suites import Suite
from bench_lib.workloads.digits import DigitsMLP, digits_split

__all__ = ["InferenceSuite", "WORKLOADS"]

WORKLOADS = {
    "digits_mlp": DigitsMLP(hidden=256, epochs=30),
    # Linear-heavy: the 2048x2048 layer holds 96% of the weights, so GEMMs dominate.
    "digits_mlp_wide": DigitsMLP(hidden=2048, epochs=8),
}
BATCHES = {"quick": (1, 64), "full": (1, 8, 64, 256)}


def _classify(model: torch.nn.Module, x: torch.Tensor, device: str) -> torch.Tensor:
    with torch.inference_mode():
        return model(x.to(device)).argmax(dim=1).cpu()


class InferenceSuite(Suite):
    NAME = "inference"
    DEFAULT_TIMEOUT_S = 900.0

    def cases(self, profile: str, device: str, backend: str) -> list[CaseSpec]:
        out = []
        for workload in WORKLOADS:
            for technique in TECHNIQUES.values():
                grid = technique.params or {"": (None,)}
                for key, values in grid.items():
                    for value in values:
                        extra = {key: value} if key else {}
                        for batch in BATCHES[profile]:
                            out.append(CaseSpec.make(self.NAME, workload, technique.name, device,
                                                     batch=batch, **extra))
        return out

    def skip_reason(self, case: CaseSpec, platform: Platform) -> str | None:
        return super().skip_reason(case, platform) or skip_reason(TECHNIQUES[case.variant], case.device)

    def execute(self, case: CaseSpec, profile: str) -> CaseResult:
        threads = len(os.sched_getaffinity(0))
        torch.set_num_threads(threads)
        device = case.device
        workload, technique = WORKLOADS[case.workload], TECHNIQUES[case.variant]
        data = digits_split()

        reference = workload.trained()
        ref_pred = _classify(reference, data.x_test, "cpu")

        started = time.perf_counter()
        model = technique.apply(copy.deepcopy(reference), case).to(device)
        conversion_s = time.perf_counter() - started
        del reference
        gc.collect()

        x = workload.example_input(int(case.param("batch"))).to(device)
        memory.reset_cuda_peak(device)
        rss_reset = memory.reset_peak_rss()
        rss_before = memory.current_rss_bytes()
        cfg = measure_config(profile)
        timer = timer_for(device)
        with torch.inference_mode():
            measurement = blocked_autorange(lambda: model(x), timer, cfg)
        peak = memory.peak_rss_bytes()

        pred = _classify(model, data.x_test, device)
        accuracy = float((pred == data.y_test).float().mean())
        ref_accuracy = float((ref_pred == data.y_test).float().mean())
        batch = int(case.param("batch"))
        metrics = {
            "latency_median_s": measurement.median,
            "latency_p90_s": measurement.p90,
            "latency_p99_s": measurement.p99,
            "throughput_samples_per_s": batch / measurement.median,
            "peak_rss_bytes": peak,
            "rss_before_bytes": rss_before,
            "peak_rss_scope": "timed loop" if rss_reset else "process lifetime",
            **memory.cuda_peak(device),
            **model_size(model),
            "conversion_s": conversion_s,
            "accuracy": accuracy,
            "reference_accuracy": ref_accuracy,
            "accuracy_delta": accuracy - ref_accuracy,
            "agreement_with_reference": float((pred == ref_pred).float().mean()),
            "eval_samples": int(data.y_test.numel()),
            "torch_threads": threads,
            "technique_note": technique.note,
        }
        return CaseResult(case, "ok", measurement, metrics, timer=timer.name,
                          measure_config=asdict(cfg), wall_s=time.perf_counter() - started)
