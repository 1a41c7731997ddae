"""How much the GEMV that coordinate-descent tuning picks varies from one tuning to the next (issue 29,
item 5). The same kernel source (the 8B shape's RMSNorm + gate/up GEMV, as the decode step compiles
it) took 1.71 ms a step in one graph and 2.20 ms in another on one H200 (`fused_attention.py`), its
name being the only difference; inductor tunes each name anew. Here the function is compiled and
tuned afresh `REPEATS` times per setting (caches off), and each tuned kernel timed alone.

    PYTHONPATH=. python3 docs/validation/decode-step-breakdown/tuning_spread.py OUT.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

REPEATS = 4
SETTINGS = {
    "default (radius 1)": {},
    "check all directions, radius 2": {"coordinate_descent_check_all_directions": True,
                                        "coordinate_descent_search_radius": 2},
}


def norm_gemv(x: torch.Tensor, attn: torch.Tensor, norm: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    h = (x.float() + attn).float()
    h = (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5)).to(torch.bfloat16) * norm
    return h @ w.t()


def timed(fn, args, reps: int = 200) -> float:  # noqa: ANN001
    for _ in range(10):
        fn(*args)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(20):
            fn(*args)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps // 20):
        graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps * 1e3  # us a call


def main(out: Path) -> None:
    d, n = 4096, 2 * 14_336
    x = torch.randn(1, d, device="cuda", dtype=torch.bfloat16)
    args = (x, torch.randn(1, d, device="cuda"), torch.ones(d, device="cuda", dtype=torch.bfloat16),
            torch.randn(n, d, device="cuda", dtype=torch.bfloat16) * 0.02)
    rows = []
    for name, patch in SETTINGS.items():
        for repeat in range(REPEATS):
            torch._dynamo.reset()
            with torch._inductor.config.patch(coordinate_descent_tuning=True, force_disable_caches=True, **patch):
                fn = torch.compile(norm_gemv, dynamic=False)
                fn(*args)
                us = timed(fn, args)
            rows.append({"setting": name, "repeat": repeat, "us": us, "tb_s": n * d * 2 / (us * 1e-6) / 1e12})
            print(f"{name} #{repeat}: {us:.1f} us ({rows[-1]['tb_s']:.2f} TB/s)", flush=True)
        times = [r["us"] for r in rows if r["setting"] == name]
        print(f"{name}: median {statistics.median(times):.1f} us, min {min(times):.1f}, max {max(times):.1f}")
    out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows},
                              indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
