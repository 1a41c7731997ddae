"""Quantized prefill kernels at the Llama-3-8B linear shapes (one H200): which path serves M >= 16 rows.

Part 1 finds the order in which `aten._convert_weight_to_int4pack` (tinygemm, inner_k_tiles 8) stores
the nibbles of an [N, K] int4 matrix, so that the packed weight can be unpacked by indexing alone
(no second copy of the weights), and checks the unpacked, dequantized weight against tinygemm's own
product with an identity matrix. Part 2 times 8 layers of the 8B linears (wqkv 6144x4096,
wo 4096x4096, w13 28672x4096, w2 4096x14336) at M rows for each candidate path, CUDA events around
20 replays after warm-up, median. Prints one JSON line per path.

    python docs/validation/quantized-prefill/probe.py [M ...]
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

torch.manual_seed(0)
dev = "cuda"
SHAPES = [(6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336)]
LAYERS = 8
GROUP = 128


def pack(q: torch.Tensor) -> torch.Tensor:
    """torchao's tinygemm packing of int values 0..15, [N, K] -> [N/8, K/128, 32, 4] int32."""
    q8 = (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8)
    return torch.ops.aten._convert_weight_to_int4pack(q8.contiguous(), 8)


def nibbles(packed: torch.Tensor) -> torch.Tensor:
    shifts = torch.arange(0, 32, 4, device=packed.device, dtype=torch.int32)
    return ((packed.reshape(-1, 1) >> shifts) & 15).reshape(-1)


def discover(n: int, k: int) -> torch.Tensor:
    """For each nibble of the packed tensor (int32 order, low nibble first), the flat index n*K+k it holds."""
    idx = torch.arange(n * k, device=dev, dtype=torch.int64).reshape(n, k)
    where = torch.zeros(n * k, dtype=torch.int64, device=dev)
    digit = 0
    while (1 << (4 * digit)) < n * k:
        q = ((idx >> (4 * digit)) & 15).to(torch.int32)
        where |= nibbles(pack(q)).to(torch.int64) << (4 * digit)
        digit += 1
    return where


def part1() -> dict:
    out = {}
    n, k = 16, 256
    where = discover(n, k)
    out["bijection"] = bool(torch.sort(where).values.eq(torch.arange(n * k, device=dev)).all())
    # tile-local order: is the packed order of each (n/8, k/128) tile the same permutation?
    tiles = where.reshape(n // 8, k // 128, 1024)
    rows, cols = tiles // k, tiles % k
    base_r = rows - (torch.arange(n // 8, device=dev) * 8)[:, None, None]
    base_c = cols - (torch.arange(k // 128, device=dev) * 128)[None, :, None]
    local = base_r * 128 + base_c
    out["tile_periodic"] = bool((local == local[0, 0]).all())
    perm = local[0, 0]  # packed nibble j of a tile holds local element perm[j] (r*128 + c)
    # a bit permutation? each of the 10 bits of the packed position maps to one bit of the local index
    bits = []
    for b in range(10):
        j = torch.tensor([1 << b], device=dev)
        bits.append(int(perm[j]))
    out["bit_images"] = bits
    recon = torch.zeros(1024, dtype=torch.int64, device=dev)
    for b in range(10):
        recon |= ((torch.arange(1024, device=dev) >> b) & 1) * bits[b]
    out["bit_permutation"] = bool((recon == perm).all()) and all(bin(x).count("1") == 1 for x in bits)
    torch.save(perm.cpu(), "/tmp/perm.pt")
    # check against tinygemm at a real shape
    N, K = 256, 512
    q = torch.randint(0, 16, (N, K), device=dev, dtype=torch.int32)
    scale = torch.rand(N, K // GROUP, device=dev, dtype=torch.bfloat16) * 0.02 + 0.01
    zero = torch.randn(N, K // GROUP, device=dev, dtype=torch.bfloat16) * 0.01
    sz = torch.stack([scale.t(), zero.t()], dim=-1).contiguous()  # [K/g, N, 2]
    packed = pack(q)
    ref = torch.ops.aten._weight_int4pack_mm(torch.eye(K, device=dev, dtype=torch.bfloat16), packed, GROUP, sz).t()
    mine = dequant_gather(packed, sz, perm.to(dev), N, K)
    out["dequant_max_abs_err"] = float((mine.float() - ref.float()).abs().max())
    out["dequant_ref_max"] = float(ref.float().abs().max())
    from bench_lib.techniques.int4 import unpack_tinygemm

    out["effbench_unpack_agrees"] = bool((unpack_tinygemm(packed) == q).all())
    return out, perm.to(dev)


def unpack_gather(packed: torch.Tensor, inv: torch.Tensor, n: int, k: int) -> torch.Tensor:
    shifts = torch.arange(0, 32, 4, device=packed.device, dtype=torch.int32)
    nib = ((packed.reshape(n // 8, k // 128, 128, 1) >> shifts) & 15).reshape(n // 8, k // 128, 1024)
    local = nib[..., inv]  # local element e = r*128 + c comes from packed nibble inv[e]
    return local.reshape(n // 8, k // 128, 8, 128).permute(0, 2, 1, 3).reshape(n, k)


def dequant_gather(packed, sz, perm, n, k):
    inv = torch.argsort(perm)
    q = unpack_gather(packed, inv, n, k).to(torch.bfloat16)
    scale = sz[..., 0].t().repeat_interleave(GROUP, dim=1)
    zero = sz[..., 1].t().repeat_interleave(GROUP, dim=1)
    return (q - 8) * scale + zero


def timed(fn, x, reps=20):
    for _ in range(3):
        fn(x)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn(x)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def part2(ms: list[int]) -> None:
    """8 layers of the 8B linears through effbench's own layer modules, each compiled as the decode
    engine compiles them (inductor defaults; `max_autotune` tries Triton GEMM templates too)."""
    from torchao.quantization import quantize_

    from bench_lib.techniques.int4 import TinyGemmInt4Linear
    from bench_lib.techniques.modules import Int8WeightOnlyLinear
    from bench_lib.techniques.quantization import int4_config

    def linear(n: int, k: int) -> torch.nn.Linear:
        m = torch.nn.Linear(k, n, bias=False, device=dev, dtype=torch.bfloat16)
        torch.nn.init.normal_(m.weight, std=0.02)
        return m

    def int4(m: torch.nn.Linear) -> torch.nn.Module:
        quantize_(m, int4_config())
        w = m.weight
        return TinyGemmInt4Linear(w.qdata, w.scale_and_zero, w.block_size[-1], w.shape[0], w.shape[1], None)

    makers = {"bf16": lambda m: m, "int8_weight_only_inductor": Int8WeightOnlyLinear, "int4_weight_only": int4}
    for m_rows in ms:
        x = torch.randn(m_rows, 4096, device=dev, dtype=torch.bfloat16)
        x14 = torch.randn(m_rows, 14336, device=dev, dtype=torch.bfloat16)
        for kind, make in makers.items():
            layers = [(make(linear(n, k)), k) for _ in range(LAYERS) for n, k in SHAPES]

            def run(x, layers=layers, x14=x14):
                return [layer(x if k == 4096 else x14) for layer, k in layers]  # every output kept

            for mode in ("compile", "max_autotune"):
                rec = {"M": m_rows, "path": kind, "mode": mode}
                try:
                    torch._dynamo.reset()
                    t0 = time.perf_counter()
                    with torch._inductor.config.patch(max_autotune_gemm=mode == "max_autotune"), torch.no_grad():
                        fn = torch.compile(run, dynamic=False)
                        fn(x)
                        torch.cuda.synchronize()
                        rec["compile_s"] = round(time.perf_counter() - t0, 1)
                        rec["ms"] = round(timed(fn, x), 4)
                    flops = sum(2 * m_rows * n * k for n, k in SHAPES) * LAYERS
                    rec["TFLOPs"] = round(flops / rec["ms"] / 1e9, 1)
                except Exception as e:  # noqa: BLE001
                    rec["err"] = f"{type(e).__name__}: {str(e)[:300]}"
                print(json.dumps(rec), flush=True)
            del layers
            torch.cuda.empty_cache()


if __name__ == "__main__":
    ms = [int(a) for a in sys.argv[1:]] or [128, 1024]
    info, _ = part1()
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, **info}), flush=True)
    part2(ms)
