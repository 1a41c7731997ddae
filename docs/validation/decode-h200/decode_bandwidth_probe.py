"""Where a bf16 decode step of the 8B shape loses its bandwidth (issue 18, target 70% of peak).

Builds `llama_8b_random` once and serves it with the engine in several variants, each after a Dynamo
reset: the suite's `graphs` and `graphs_tuned` modes and inductor's max-autotune on the model as it is
(w1 and w3 fused into `w13`, compiled one-token attention as batched matmuls), then the two changes
taken back (`sdpa`: SDPA's flash kernel; `split`: w1 and w3 as two GEMMs, which lasts for the variants
after it). The table of docs/validation/decode-h200/README.md was printed by the probe of commit 17b299c,
which added the changes to the model of that time instead. For each: ms per token (CUDA events over
whole generations) and the step's device time by kernel class (profiler). Also a streaming read of
16 GB, the bandwidth a kernel can reach on this board. Prints one JSON line per variant; run on the
GPU machine:

    python docs/validation/decode-h200/decode_bandwidth_probe.py [variant ...]
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from bench_lib.suites.decode.engine import Engine
from bench_lib.suites.decode.roofline import step_bytes
from bench_lib.workloads import llama
from bench_lib.workloads.llama import DECODE_WORKLOADS

PEAK = 4.8e12


def sdpa_attention(q, k, v, mask):
    """The one-token attention before this probe: SDPA's flash kernel, tiled for 64 query rows."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.shape[1] != k.shape[1])


def split_w13(model: llama.Llama) -> None:
    """The gate and up projections as two GEMMs again (w1, w3), as before the model fused them."""
    for block in model.layers:
        ff = block.feed_forward
        ff.w1, ff.w3 = (torch.nn.Parameter(w, requires_grad=False) for w in ff.w13.weight.chunk(2))
        del ff.w13

        def forward(x, ff=ff):
            return ff.w2(F.silu(F.linear(x, ff.w1)) * F.linear(x, ff.w3))

        ff.forward = forward


def streaming_read(gb: float = 16.0) -> float:
    x = torch.empty(int(gb * 1e9 / 2), dtype=torch.bfloat16, device="cuda").normal_()
    for _ in range(3):
        x.sum()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(10):
        start.record()
        x.sum()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return x.numel() * 2 / statistics.median(times)


def kernel_classes(engine: Engine, steps: int = 20) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            engine.step()
        torch.cuda.synchronize()
    classes: dict[str, float] = {}
    for e in prof.key_averages():
        if e.device_type.name != "CUDA" or e.self_device_time_total <= 0:
            continue
        n = e.key.lower()
        cls = ("attention" if "sdpa" in n or "flash" in n or "fmha" in n
               else "gemm" if any(s in n for s in ("gemm", "nvjet", "_mm", "mm_", "cutlass", "gemv", "splitk"))
               else "other")
        classes[cls] = classes.get(cls, 0.0) + e.self_device_time_total / steps / 1e3  # ms per step
        classes["kernels"] = classes.get("kernels", 0) + e.count / steps
    return {k: round(v, 4) for k, v in classes.items()}


def run(variant: str, model: llama.Llama, prompts: torch.Tensor) -> dict:
    torch._dynamo.reset()
    mode = "graphs_tuned" if "tuned" in variant else "graphs"
    patches = contextlib.ExitStack()
    if "sdpa" in variant:
        patches.enter_context(_patched(llama, "_decode_attention", sdpa_attention))
    if "autotune" in variant:
        patches.enter_context(torch._inductor.config.patch(max_autotune=True,
                                                           max_autotune_gemm_backends="ATEN,TRITON"))
    started = time.perf_counter()
    with patches:
        engine = Engine(model, prompts, gen=128, mode=mode)
    setup = time.perf_counter() - started
    nbytes = step_bytes(model)["bytes_per_step"]
    per_token = [statistics.median(engine.step_times()) for _ in range(5)]
    tpot = statistics.median(per_token)
    out = {"variant": variant, "setup_s": round(setup, 1), "tpot_ms": round(tpot * 1e3, 4),
           "tpot_ms_per_generation": [round(t * 1e3, 4) for t in per_token],
           "tb_per_s": round(nbytes / tpot / 1e12, 3), "of_peak": round(nbytes / tpot / PEAK, 4),
           "ms_by_kernel_class": kernel_classes(engine)}
    del engine
    torch.cuda.empty_cache()
    return out


@contextlib.contextmanager
def _patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def main(variants: list[str]) -> None:
    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(),
                      "streaming_read_tb_per_s": round(streaming_read() / 1e12, 3)}), flush=True)
    torch.cuda.empty_cache()
    lm = DECODE_WORKLOADS["llama_8b_random"]
    model = lm.build("cuda", torch.bfloat16)
    prompts = lm.prompts(1, 128)
    for variant in variants:
        if variant == "split":
            split_w13(model)
            continue
        try:
            print(json.dumps(run(variant, model, prompts)), flush=True)
        except Exception as e:  # noqa: BLE001 - a probe: say which variant failed and go on
            print(json.dumps({"variant": variant, "error": f"{type(e).__name__}: {str(e)[:300]}"}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["graphs_autotune", "graphs_tuned", "graphs", "graphs_tuned_sdpa", "split",
                          "graphs_tuned_split", "graphs_tuned_sdpa_split", "graphs_sdpa_split"])
