"""The bf16 decode step of the 8B shape with its attention as effbench's modules and as the fused Triton
kernels of `fused_attention_kernel.py` (issue 29, item 5). One process, one model, the variants
alternated (A B A B) on the same machine state; Dynamo is reset before each so that the patched
attention is traced anew (inductor's tuned kernels stay cached on disk, so a variant's second round
reuses its first round's tuning).

Per variant and round: the TPOT (median of every step of a generation, CUDA events) and the step's
kernels (`torch.profiler` over 3 steps: device time and count a step, every kernel); the greedy tokens
of the variants against each other; the copy bandwidth measured in the same process.

    PYTHONPATH=. python3 docs/validation/decode-step-breakdown/fused_attention.py OUT.json
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from bench_lib.measure.peaks import copy_bandwidth
from bench_lib.suites.decode.engine import Engine
from bench_lib.suites.decode.roofline import step_bytes
from bench_lib.workloads import llama
from bench_lib.workloads.llama import DECODE_WORKLOADS

sys.path.insert(0, str(Path(__file__).parent))
from fused_attention_kernel import _kernels, decode_attention  # noqa: E402

MODULES = llama.Attention.forward


def fused(self, x, cos, sin, mask, pos):  # noqa: ANN001, ANN202 - the kernels at one position, compiled
    if x.shape[1] != 1 or not torch.compiler.is_compiling():
        return MODULES(self, x, cos, sin, mask, pos)
    y = decode_attention(KERNELS, self.wqkv(x), cos, sin, self.cache.k, self.cache.v, pos, self.heads)
    return self.wo(y)


KERNELS = _kernels()
VARIANTS = {"modules": MODULES, "fused": fused}


def kernels(engine: Engine, steps: int = 3) -> dict[str, dict[str, float]]:
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            engine.step()
        torch.cuda.synchronize()
    table: dict[str, dict[str, float]] = defaultdict(lambda: {"us": 0.0, "count": 0.0})
    for e in prof.key_averages():
        if e.device_type == DeviceType.CUDA and e.self_device_time_total > 0:
            table[e.key[:90]]["us"] += e.self_device_time_total / steps
            table[e.key[:90]]["count"] += e.count / steps
    return dict(sorted(table.items(), key=lambda kv: -kv[1]["us"]))


def main(out: Path) -> None:
    workload = DECODE_WORKLOADS["llama_8b_random"]
    model = workload.build("cuda", torch.bfloat16)
    prompts = workload.prompts(1, 128)
    copy, _ = copy_bandwidth("cuda")
    rows, tokens = [], {}
    for round_ in range(2):
        for name, forward in VARIANTS.items():
            llama.Attention.forward = forward
            torch._dynamo.reset()
            engine = Engine(model, prompts, 128, "graphs_tuned")
            tokens[name] = engine.generate()
            tpots = [statistics.median(engine.step_times()) for _ in range(5)]
            table = kernels(engine)
            read = step_bytes(model)["bytes_per_step"]
            tpot = statistics.median(tpots)
            rows.append({"variant": name, "round": round_, "tpot_ms": tpot * 1e3,
                         "tpot_ms_each": [t * 1e3 for t in tpots],
                         "of_copy": read / tpot / copy, "kernel_us": sum(k["us"] for k in table.values()),
                         "kernels_per_step": sum(k["count"] for k in table.values()), "setup_s": engine.setup_s,
                         "kernels": table})
            print(f"{name} round {round_}: TPOT {tpot * 1e3:.3f} ms ({read / tpot / 1e12:.2f} TB/s, "
                  f"{read / tpot / copy:.1%} of copy {copy / 1e12:.2f} TB/s); kernels {rows[-1]['kernel_us']:.0f} us "
                  f"in {rows[-1]['kernels_per_step']:.0f} launches a step; setup {engine.setup_s:.1f} s", flush=True)
            for kname, k in list(table.items())[:14]:
                print(f"    {k['us']:8.1f} us  x{k['count']:<4.0f} {kname}")
            del engine
            torch.cuda.empty_cache()
    same = (tokens["fused"] == tokens["modules"]).float().mean().item()
    print(f"greedy tokens, fused against modules: {same:.1%} equal")
    out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                               "copy_bytes_per_s": copy, "rows": rows, "token_agreement": same}, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
