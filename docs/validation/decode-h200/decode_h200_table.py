"""Prints the H200 decode table of docs/validation/decode-h200/README.md from the committed runs.

Run from the repository root.
"""

from __future__ import annotations

import json

RUNS = {
    # This session's second visit: decode attention as matmuls, w1/w3 fused (commit 0779e82).
    "5": "results/20261201T162820Z-decode-quick-cuda/decode.json",
    "4": "results/20261201T161912Z-decode-quick-cuda/decode.json",
    "4b": "results/20261201T163236Z-decode-full-cuda/decode.json",
    "4c": "results/20261201T162923Z-decode-full-cuda/decode.json",
    # The first visit (commits 88463421 to 752c8eac).
    "3": "results/20261201T140720Z-decode-quick-cuda/decode.json",
    "2a": "results/20261201T135611Z-decode-quick-cuda/decode.json",
    "2b": "results/20261201T140140Z-decode-quick-cuda/decode.json",
    "1": "docs/validation/decode-h200/run1-recompile-limit-hit.json",
}
# torchao's quantization README, H100, Llama-3.1-8B, batch-1 decode, compiled: speedup over bf16.
PUBLISHED = {"int8_weight_only": 1.57, "int8_weight_only_inductor": 1.57, "int4_weight_only": 1.90,
             "fp8_weight_only": 1.41, "fp8_dynamic": 1.22}
HEAD = ["run", "workload", "technique", "mode", "batch", "TTFT ms", "TPOT ms", "tokens/s", "GB/step", "TB/s", "of peak",
        "speedup (decode)", "torchao README", "J/token", "top kernel (decode)", "rounds"]


def speedup(m: dict, base: dict, variant: str) -> str:
    if "speedup" in m:
        return f"{m['speedup']:.2f}x [{m['speedup_ci95_low']:.2f}, {m['speedup_ci95_high']:.2f}]"
    if variant != "bf16" and base.get("tpot_median_s"):
        return f"{base['tpot_median_s'] / m['tpot_median_s']:.2f}x (medians)"  # interrupted before its rounds
    return "-"


def main() -> None:
    print("| " + " | ".join(HEAD) + " |")
    print("|" + "---|" * len(HEAD))
    for run, path in RUNS.items():
        rows = {}
        for b in json.load(open(path))["benchmarks"]:
            p = b["params"]
            key = (p["workload"], p["variant"], p["mode"], p["batch"])
            rows[(*key, p["phase"])] = (b, b["extra_info"].get("metrics", {}))
        for (workload, variant, mode, batch, phase), (b, m) in rows.items():
            if phase != "decode" or "tpot_median_s" not in m:
                continue
            pre = rows.get((workload, variant, mode, batch, "prefill"), (None, {}))[1]
            base = rows.get((workload, "bf16", mode, batch, "decode"), (None, {}))[1]
            ttft = f"{pre['ttft_median_s'] * 1e3:.2f}" if pre.get("ttft_median_s") else "-"
            cells = [run, workload, variant, mode, str(batch), ttft,
                     f"{m['tpot_median_s'] * 1e3:.2f}", f"{m['throughput_tokens_per_s']:.0f}",
                     f"{m['bytes_per_step'] / 1e9:.2f}", f"{m['achieved_bandwidth_bytes_per_s'] / 1e12:.2f}",
                     f"{m['bandwidth_fraction'] * 100:.0f}%", speedup(m, base, variant),
                     str(PUBLISHED.get(variant, "")), f"{m.get('energy_j_per_token') or 0:.2f}",
                     f"`{m['top_ops'][0]['op'][:40]}`" if m.get("top_ops") else "", str(len(b["stats"]["data"]))]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
