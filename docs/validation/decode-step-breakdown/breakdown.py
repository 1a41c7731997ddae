"""Where a bf16 decode step of the 8B shape loses against the copy bandwidth (issue 29, item 5).

Reads a stored decode result (`effbench run --suite decode --device cuda`) and splits the step's time
into the weight-reading GEMV kernels, the other kernels and the host's gaps between kernels, from what
the result already holds: the device self time of its top kernels per call (`top_ops`, from the
profiler's trace of a few steps), the kernels' total (`gpu_kernel_s_per_call`), the TPOT, and the peaks
of the same run. Each top kernel is matched to the weights it reads by its name and count per step
(inductor names a fused kernel by the ops in it: `mm` with `silu` is the down projection after SwiGLU;
with `mean`/`rsqrt` a GEMM fused with the RMSNorm before it) and its shape, so its own bandwidth is
its weights' bytes over its time.

    PYTHONPATH=. python3 docs/validation/decode-step-breakdown/breakdown.py results/RUN/decode.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench_lib.workloads.llama import DECODE_WORKLOADS

CASE = "llama_8b_random-bf16-batch1-gen128-modegraphs_tuned-phasedecode-prompt128-cuda"


def weight_families(bytes_per: int = 2) -> dict[str, int]:
    """Bytes of each family of weights that a decode step of the 8B shape reads once, per layer."""
    s = DECODE_WORKLOADS["llama_8b_random"].shape
    kv = s.kv_heads * s.head_dim
    return {"w13 (gate+up)": 2 * s.ffn * s.d * bytes_per, "w2 (down)": s.ffn * s.d * bytes_per,
            "wqkv": (s.heads * s.head_dim + 2 * kv) * s.d * bytes_per, "wo": s.heads * s.head_dim * s.d * bytes_per,
            "head": s.vocab * s.d * bytes_per, "layers": s.layers}


def family_of(op: str, count: float, sizes: dict[str, int]) -> tuple[str, int] | None:
    """The weights a top kernel reads in one step (name, bytes), or None for a kernel that reads none."""
    layers = sizes["layers"]
    if "mm" not in op.split("_") and "mm" not in op:
        return None
    if "silu" in op:
        return "w2 (down)", layers * sizes["w2 (down)"]
    if "rsqrt" in op and count == layers + 1:  # the attention norm's GEMM in every layer, and the final norm's head
        return "wqkv + head", layers * sizes["wqkv"] + sizes["head"]
    if "rsqrt" in op and count == layers:
        return "w13 (gate+up)", layers * sizes["w13 (gate+up)"]
    if op.startswith("triton_red_fused_mm_t_transpose") and count == layers:
        return "wo", layers * sizes["wo"]
    return None


def main(path: Path) -> None:
    doc = json.loads(path.read_text())
    outcome = next(o for o in doc["effbench"]["outcomes"] if CASE in o["name"])
    m = outcome["metrics"]
    peaks = next(iter(doc["effbench"]["environment"]["peaks"].values()))
    copy = peaks["memory"]["measured_bytes_per_s"]
    tpot, kernels, step_bytes = m["tpot_median_s"], m["gpu_kernel_s_per_call"], m["bytes_per_step"]
    sizes = weight_families()
    print(f"{path.parent.name}: TPOT {tpot * 1e3:.3f} ms, {step_bytes / 1e9:.2f} GB a step: "
          f"{step_bytes / tpot / 1e12:.2f} TB/s, {step_bytes / tpot / copy:.1%} of the copy measured in the run "
          f"({copy / 1e12:.2f} TB/s)")
    gemv_s = gemv_bytes = 0.0
    print("| kernel | reads | calls a step | us a step | TB/s | of copy |")
    print("| --- | --- | --- | --- | --- | --- |")
    for top in m["top_ops"]:
        family = family_of(top["op"], top["count_per_call"], sizes)
        us = top["self_us_per_call"]
        if family is None:
            print(f"| `{top['op'][:60]}` | (no weights) | {top['count_per_call']:.0f} | {us:.0f} | | |")
            continue
        name, nbytes = family
        gemv_s, gemv_bytes = gemv_s + us * 1e-6, gemv_bytes + nbytes
        print(f"| `{top['op'][:60]}` | {name}, {nbytes / 1e9:.2f} GB | {top['count_per_call']:.0f} | {us:.0f} | "
              f"{nbytes / (us * 1e-6) / 1e12:.2f} | {nbytes / (us * 1e-6) / copy:.1%} |")
    rest = kernels - gemv_s
    print(f"GEMV kernels: {gemv_s * 1e3:.3f} ms for {gemv_bytes / 1e9:.2f} GB, {gemv_bytes / gemv_s / 1e12:.2f} TB/s "
          f"({gemv_bytes / gemv_s / copy:.1%} of copy); other kernels: {rest * 1e3:.3f} ms "
          f"({rest / tpot:.1%} of the step); host gaps: {(tpot - kernels) * 1e3:.3f} ms "
          f"({(tpot - kernels) / tpot:.1%})")
    print(f"85% of copy needs a step of {step_bytes / (0.85 * copy) * 1e3:.3f} ms: "
          f"{(tpot - step_bytes / (0.85 * copy)) * 1e3:.3f} ms less; if only the GEMVs ran, at their pace: "
          f"{step_bytes / (gemv_s * step_bytes / gemv_bytes) / copy:.1%} of copy")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        main(Path(arg))
