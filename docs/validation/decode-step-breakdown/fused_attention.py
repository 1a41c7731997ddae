"""The bf16 decode step of the 8B shape under three attentions (issue 29, item 5): `view`, effbench's
(the one-position attention output reshaped for the output projection without a transpose);
`transpose`, the same modules as before that change; `fused`, FlashDecoding-style Triton kernels
(`fused_attention_kernel.py`: rotation, cache write and attention of a block of positions, then a
merge). One process, one model, the variants alternated (A B C A B C) on the same machine state.

Per variant and round: the TPOT (median of every step of a generation, CUDA events) and the step's
kernels (`torch.profiler` over 3 steps: device time and count a step, every kernel); the greedy tokens
of the two variants against each other; the copy bandwidth measured in the same process.

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
from bench_lib.workloads.llama import DECODE_WORKLOADS, _decode_attention, _rope

sys.path.insert(0, str(Path(__file__).parent))
from fused_attention_kernel import _kernels, decode_attention  # noqa: E402

VIEW = llama.Attention.forward


def transpose(self, x, cos, sin, mask, pos):  # noqa: ANN001, ANN202 - effbench's forward before `view`
    b, t, _ = x.shape
    q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
    q, k, v = self.wqkv(x).split([q_size, kv_size, kv_size], dim=-1)
    q = _rope(q.view(b, t, self.heads, self.head_dim), cos, sin).transpose(1, 2)
    k = _rope(k.view(b, t, self.kv_heads, self.head_dim), cos, sin).transpose(1, 2)
    v = v.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
    k, v = self.cache.update(pos, k, v)
    y = _decode_attention(q, k, v, mask) if t == 1 and torch.compiler.is_compiling() else \
        torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    return self.wo(y.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


def fused(self, x, cos, sin, mask, pos):  # noqa: ANN001, ANN202 - the kernels at one position, compiled
    if x.shape[1] != 1 or not torch.compiler.is_compiling():
        return VIEW(self, x, cos, sin, mask, pos)
    y = decode_attention(KERNELS, self.wqkv(x), cos, sin, self.cache.k, self.cache.v, pos, self.heads)
    return self.wo(y)


KERNELS = _kernels()
VARIANTS = {"view": VIEW, "transpose": transpose, "fused": fused}


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
    same = {name: (tokens[name] == tokens["transpose"]).float().mean().item() for name in VARIANTS}
    print(f"greedy tokens against `transpose`'s: {same}")
    out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                               "copy_bytes_per_s": copy, "rows": rows, "token_agreement": same}, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
