"""Prints the H200 decode table of benchmarks/notes/decode-h200.md from the committed runs (from the repo root)."""

from __future__ import annotations

import json

RUNS = {
    "3": "results/20261201T140720Z-decode-quick-cuda/decode.json",
    "2a": "results/20261201T135611Z-decode-quick-cuda/decode.json",
    "2b": "results/20261201T140140Z-decode-quick-cuda/decode.json",
    "1": "benchmarks/notes/decode-h200-2026-12-01/run1-recompile-limit-hit.json",
}
# torchao's quantization README, H100, Llama-3.1-8B, batch-1 decode, compiled: speedup over bf16.
PUBLISHED = {"int8_weight_only": 1.57, "int8_weight_only_inductor": 1.57, "int4_weight_only": 1.90,
             "fp8_weight_only": 1.41, "fp8_dynamic": 1.22}
HEAD = ["run", "technique", "mode", "TTFT ms", "TPOT ms", "tokens/s", "GB/step", "TB/s", "of peak",
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
            rows[(p["variant"], p["mode"], p["phase"])] = (b, b["extra_info"].get("metrics", {}))
        for (variant, mode, phase), (b, m) in rows.items():
            if phase != "decode" or "tpot_median_s" not in m:
                continue
            pre = rows.get((variant, mode, "prefill"), (None, {}))[1]
            base = rows.get(("bf16", mode, "decode"), (None, {}))[1]
            cells = [run, variant, mode, f"{pre['ttft_median_s'] * 1e3:.2f}" if pre.get("ttft_median_s") else "-",
                     f"{m['tpot_median_s'] * 1e3:.2f}", f"{m['throughput_tokens_per_s']:.0f}",
                     f"{m['bytes_per_step'] / 1e9:.2f}", f"{m['achieved_bandwidth_bytes_per_s'] / 1e12:.2f}",
                     f"{m['bandwidth_fraction'] * 100:.0f}%", speedup(m, base, variant),
                     str(PUBLISHED.get(variant, "")), f"{m.get('energy_j_per_token') or 0:.2f}",
                     f"`{m['top_ops'][0]['op'][:40]}`" if m.get("top_ops") else "", str(len(b["stats"]["data"]))]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
