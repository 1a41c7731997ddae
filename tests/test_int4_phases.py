"""The int4 prefill path unpacks tinygemm's packed weight by reshape and permute: the order it assumes
is the one found on an H200 (docs/validation/quantized-prefill), checked here on the CPU by packing
with that order written out element by element, and on the GPU against torch's own packing."""

import pytest
import torch

from bench_lib.techniques.int4 import PREFILL_ROWS, TinyGemmInt4Linear, unpack_tinygemm


def _pack_by_formula(q: torch.Tensor) -> torch.Tensor:
    """tinygemm's order, one nibble at a time: packed nibble p = (a * 4 + b) * 8 + nibble of tile (i, j)
    holds row 8i + (a >> 2), column 128j + ((b * 4 + nibble % 4) * 4 + a % 4) * 2 + nibble // 4."""
    n, k = q.shape
    out = torch.zeros(n // 8, k // 128, 32, 4, dtype=torch.int64)
    for i in range(n // 8):
        for j in range(k // 128):
            for a in range(32):
                for b in range(4):
                    for nib in range(8):
                        r = a >> 2
                        c = ((b * 4 + nib % 4) * 4 + a % 4) * 2 + nib // 4
                        out[i, j, a, b] |= int(q[8 * i + r, 128 * j + c]) << (4 * nib)
    return torch.where(out >= 2**31, out - 2**32, out).to(torch.int32)


def test_unpack_inverts_tinygemm_order():
    q = torch.randint(0, 16, (16, 256), generator=torch.Generator().manual_seed(0), dtype=torch.int32)
    assert torch.equal(unpack_tinygemm(_pack_by_formula(q)), q)
    assert not torch.equal(unpack_tinygemm(_pack_by_formula(q.flip(1))), q)


def test_prefill_rows_dequantize_the_packed_weight():
    """At PREFILL_ROWS rows the layer multiplies by (q - 8) * scale + zero, per group of columns."""
    gen = torch.Generator().manual_seed(1)
    q = torch.randint(0, 16, (8, 256), generator=gen, dtype=torch.int32)
    scale = torch.rand(2, 8, generator=gen) * 0.1 + 0.01
    zero = torch.randn(2, 8, generator=gen) * 0.1
    layer = TinyGemmInt4Linear(_pack_by_formula(q), torch.stack([scale, zero], -1), 128, 8, 256, None)
    expected = (q.float() - 8) * scale.t().repeat_interleave(128, 1) + zero.t().repeat_interleave(128, 1)
    torch.testing.assert_close(layer.dequantized(torch.float32), expected)
    x = torch.randn(PREFILL_ROWS, 256, generator=gen)
    torch.testing.assert_close(layer(x), x @ expected.t(), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="tinygemm's packing runs on CUDA")
def test_unpack_matches_torch_packing_on_gpu():
    q = torch.randint(0, 16, (64, 512), device="cuda", dtype=torch.int32)
    packed = torch.ops.aten._convert_weight_to_int4pack((q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8), 8)
    assert torch.equal(unpack_tinygemm(packed), q)
    sz = torch.stack([torch.rand(4, 64, device="cuda") * 0.1, torch.randn(4, 64, device="cuda") * 0.1], -1)
    layer = TinyGemmInt4Linear(packed, sz.to(torch.bfloat16).contiguous(), 128, 64, 512, None)
    assert layer.use_triton(), "the Triton dequantizer should build and agree on an H100/H200"


def test_layer_kinds_name_the_prefill_path():
    from bench_lib.suites.served.size import layer_kinds

    layer = TinyGemmInt4Linear(torch.zeros(1, 2, 32, 4, dtype=torch.int32), torch.ones(2, 8, 2), 128, 8, 256, None)
    assert layer_kinds(torch.nn.Sequential(layer)) == {
        "TinyGemmInt4Linear[prefill: inductor-generated dequantization, then the dense GEMM]": 1}
