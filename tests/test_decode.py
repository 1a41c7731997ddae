"""The decode suite: the Llama decoder and its cache, the serving engine, the roofline, and one case end to end."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from bench_lib.results.case import CaseSpec
from bench_lib.suites.decode import suite as decode_suite
from bench_lib.suites.decode.engine import Engine
from bench_lib.suites.decode.roofline import peak_bandwidth, step_bytes
from bench_lib.suites.decode.suite import DecodeSuite, _agreement
from bench_lib.techniques.structured import remove_units
from bench_lib.workloads.llama import Llama, LlamaLM, LlamaShape

TINY = LlamaShape(vocab=256, d=32, layers=2, heads=4, kv_heads=2, ffn=64, rope_theta=10_000.0)


def tiny_model(seed: int = 0) -> Llama:
    return LlamaLM(TINY, seed=seed).build("cpu", torch.float32)


def test_cached_prefill_and_steps_equal_the_full_forward():
    model, idx = tiny_model(), torch.randint(0, 256, (2, 12))
    model.setup_cache(None, 16)
    with torch.no_grad():
        full = model(idx, torch.arange(12))
        model.setup_cache(2, 16)
        head = model(idx[:, :8], torch.arange(8))
        steps = [model(idx[:, i:i + 1], torch.tensor([i])) for i in range(8, 12)]
    torch.testing.assert_close(head, full[:, :8], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(steps, 1), full[:, 8:], atol=1e-5, rtol=1e-5)


def test_attention_is_causal_and_grouped():
    """A later token cannot change an earlier position's logits; the kv heads are fewer than the heads."""
    model = tiny_model()
    model.setup_cache(None, 10)
    idx = torch.randint(0, 256, (1, 10))
    changed = idx.clone()
    changed[0, 7] = (idx[0, 7] + 1) % 256
    with torch.no_grad():
        a, b = model(idx, torch.arange(10)), model(changed, torch.arange(10))
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])
    assert model.layers[0].attention.wqkv.out_features == (4 + 2 * 2) * 8


def test_engine_generates_greedy_tokens_and_starts_over_after_gen_steps():
    model, prompts, gen = tiny_model(), torch.randint(0, 256, (2, 6)), 5
    engine = Engine(model, prompts, gen, "eager")
    tokens = engine.generate()
    seq = prompts.clone()  # the same greedy decode, recomputed over the whole sequence each time
    model.setup_cache(None, 6 + gen)
    with torch.no_grad():
        for _ in range(gen):
            seq = torch.cat([seq, model(seq, torch.arange(seq.shape[1]))[:, -1:].argmax(-1)], 1)
    assert torch.equal(tokens, seq[:, 6:])
    engine = Engine(tiny_model(), prompts, gen, "eager")
    for _ in range(3 * (gen - 1) + 1):  # the position never runs past the cache
        engine.step()
    assert int(engine.pos) == 6 + 1
    assert torch.equal(engine.generate(), tokens)


def test_graphs_mode_needs_cuda():
    with pytest.raises(ValueError, match="CUDA"):
        Engine(tiny_model(), torch.zeros(1, 4, dtype=torch.long), 2, "graphs")


@pytest.mark.slow
def test_many_compiled_models_in_one_process_all_compile():
    """Served models share Block.forward: past Dynamo's default of 8 versions they silently ran eager."""
    graphs = [Engine(tiny_model(), torch.randint(0, 256, (batch, 4)), 2, "compile").compiled_graphs
              for batch in (1, 2, 3, 4, 5)]
    assert all(g >= 2 for g in graphs), graphs


def test_greedy_agreement_counts_positions_and_prefixes():
    ref = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    out = torch.tensor([[1, 2, 9, 4], [5, 6, 7, 8]])
    got = _agreement(out, ref)
    assert got["greedy_token_agreement"] == pytest.approx(7 / 8)
    assert got["greedy_prefix_tokens"] == pytest.approx((2 + 4) / 2)


def test_structured_pruning_cuts_gate_and_up_projections_together():
    model = tiny_model()
    ffn = model.layers[0].feed_forward
    gate, up = ffn.w13.weight.chunk(2)
    keep = (gate.norm(dim=1) ** 2 + up.norm(dim=1) ** 2).sqrt().topk(32).indices.sort().values
    w13, w2 = torch.cat([gate[keep], up[keep]]).clone(), ffn.w2.weight[:, keep].clone()
    x = torch.randn(3, 1, TINY.d)
    removed = remove_units(LlamaLM(TINY).prunable(model), 0.5)
    assert removed == 2 * 32
    assert (ffn.w13.out_features, ffn.w2.in_features) == (64, 32)
    assert torch.equal(ffn.w13.weight, w13) and torch.equal(ffn.w2.weight, w2)
    assert ffn(x).shape == x.shape


def test_decode_attention_matches_sdpa_over_the_cache():
    """The one-query path (batched matmuls over each KV group) gives SDPA's result, masked positions
    and grouped heads included."""
    from bench_lib.workloads.llama import _decode_attention

    torch.manual_seed(0)
    q, k, v = torch.randn(2, 8, 1, 16), torch.randn(2, 2, 10, 16), torch.randn(2, 2, 10, 16)
    mask = torch.arange(10)[None, :] <= 6
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    torch.testing.assert_close(_decode_attention(q, k, v, mask), want)
    v2 = v.clone()
    v2[:, :, 7:] = 1e4  # positions the mask hides cannot move the output
    torch.testing.assert_close(_decode_attention(q, k, v2, mask), want)


def test_step_bytes_count_weights_but_the_embedding_and_the_whole_cache():
    model = tiny_model()
    model.setup_cache(3, 20)
    got = step_bytes(model)
    params = sum(p.numel() for p in model.parameters()) - 256 * 32
    assert got["weight_bytes_per_step"] == 4 * params  # fp32; caches and rotary tables are not in the state dict
    assert got["kv_cache_bytes_per_step"] == 2 * 2 * 3 * 2 * 20 * 8 * 4  # layers, k+v, batch, kv heads, seq, hd
    assert got["bytes_per_step"] == got["weight_bytes_per_step"] + got["kv_cache_bytes_per_step"]


@pytest.mark.parametrize(("name", "expected", "source"), [
    ("NVIDIA H200", 4.8e12, "NVIDIA H200 data sheet: 4.8 TB/s"),
    ("NVIDIA H100 80GB HBM3", 3.35e12, "NVIDIA H100 SXM data sheet: 3.35 TB/s"),  # SXM: neither NVL nor PCIe
    ("NVIDIA H100 PCIe", 2.0e12, "NVIDIA H100 PCIe data sheet: 2.0 TB/s"),
    (None, None, "no data-sheet bandwidth known for this CPU"),
    ("Tesla T4", None, "no data-sheet bandwidth known for Tesla T4"),
])
def test_peak_bandwidth_from_the_device_name(name, expected, source):
    """The figure and the source it is stored with name the same device, or say why there is none."""
    value, why = peak_bandwidth(name)
    assert value == expected
    assert why.startswith(source)


def test_baseline_is_the_same_phase_and_mode_in_the_baseline_dtype():
    suite = DecodeSuite()
    case = CaseSpec.make("decode", "llama_byte", "structured", "cuda", batch=1, prompt=128, gen=128,
                         mode="graphs_tuned", phase="decode", sparsity=0.5)
    assert suite.baseline_of(case) == CaseSpec.make("decode", "llama_byte", "bf16", "cuda", batch=1, prompt=128,
                                                    gen=128, mode="graphs_tuned", phase="decode")
    assert suite.baseline_of(suite.baseline_of(case)) is None


def test_decode_figures_follow_the_per_token_time():
    suite = DecodeSuite()
    case = CaseSpec.make("decode", "llama_byte", "bf16", "cuda", batch=4, prompt=128, gen=128, mode="graphs",
                         phase="decode")
    got = suite.rescale_metrics(case, {"bytes_per_step": 2e9, "peak_bandwidth_bytes_per_s": 4e12}, 1e-3, 2e-3, 3e-3)
    assert got["tpot_median_s"] == 1e-3 and got["throughput_tokens_per_s"] == pytest.approx(4000)
    assert got["achieved_bandwidth_bytes_per_s"] == pytest.approx(2e12)
    assert got["bandwidth_fraction"] == pytest.approx(0.5)
    prefill = CaseSpec.make("decode", "llama_byte", "bf16", "cuda", batch=4, prompt=128, gen=128, mode="graphs",
                            phase="prefill")
    got = suite.rescale_metrics(prefill, {"bytes_per_step": 2e9}, 1e-2, 2e-2, 3e-2)
    assert got["ttft_median_s"] == 1e-2 and got["throughput_tokens_per_s"] == pytest.approx(4 * 128 / 1e-2)
    assert "bandwidth_fraction" not in got


def test_quick_cpu_cases_have_both_phases_and_their_baselines():
    suite = DecodeSuite()
    cases = suite.cases("quick", "cpu", "all")
    assert {c.param("phase") for c in cases} == {"prefill", "decode"}
    assert {"fp32", "int8_dynamic", "structured"} <= {c.variant for c in cases}
    assert all(suite.baseline_of(c) in cases for c in cases if c.variant != "fp32")
    assert all(c.workload == "llama_byte" for c in cases)


def test_one_case_end_to_end_judged_against_the_eager_reference(monkeypatch):
    monkeypatch.setitem(decode_suite.DECODE_WORKLOADS, "tiny", LlamaLM(TINY))
    suite = DecodeSuite()
    base = CaseSpec.make("decode", "tiny", "fp32", "cpu", batch=2, prompt=8, gen=6, mode="eager", phase="decode")
    int8 = CaseSpec.make("decode", "tiny", "int8_dynamic", "cpu", batch=2, prompt=8, gen=6, mode="eager",
                         phase="decode")
    got, q = suite.execute(base, "quick"), suite.execute(int8, "quick")
    assert got.status == q.status == "ok"
    m = got.metrics
    assert m["greedy_token_agreement"] == 1.0 and m["greedy_prefix_tokens"] == 6
    assert m["tpot_median_s"] == got.measurement.median
    assert m["tpot_step_p50_s"] <= m["tpot_step_p99_s"]
    assert m["weights"].startswith("random")
    assert q.metrics["bytes_per_step"] < m["bytes_per_step"]
    assert 0 <= q.metrics["greedy_token_agreement"] <= 1
    assert "perplexity" not in m  # random weights: no perplexity to speak of


def test_trained_byte_model_perplexity_is_better_than_uniform(monkeypatch, tmp_path):
    monkeypatch.setenv("EFFBENCH_CACHE", str(tmp_path))
    workload = LlamaLM(TINY, steps=20, train_seq=32, train_batch=8)
    trained = decode_suite._perplexity(workload.build("cpu", torch.float32), workload, "cpu")
    untrained = decode_suite._perplexity(LlamaLM(TINY).build("cpu", torch.float32), workload, "cpu")
    assert 1 < trained < untrained
    assert untrained == pytest.approx(256, rel=0.2)  # random weights: about uniform over bytes


def test_head_pruning_equals_silencing_the_removed_groups_and_shrinks_the_cache():
    from bench_lib.workloads.llama import remove_kv_groups

    model, idx = tiny_model(), torch.randint(0, 256, (2, 10))
    silenced = tiny_model()
    attn = model.layers[0].attention
    q, k, v = attn.wqkv.weight.detach().split([4 * 8, 2 * 8, 2 * 8])
    norms = torch.stack([t.view(2, -1, 32).flatten(1).norm(dim=1) for t in (q, k, v)]).norm(dim=0)
    dropped = int(norms.argmin())  # the kv group whose query heads 2*g, 2*g+1 go
    with torch.no_grad():
        silenced.layers[0].attention.wo.weight[:, dropped * 16:(dropped + 1) * 16] = 0
    assert remove_kv_groups(attn, 0.5) == 1
    assert (attn.heads, attn.kv_heads, attn.wqkv.out_features, attn.wo.in_features) == (2, 1, 32, 16)
    for m in (model, silenced):
        m.setup_cache(2, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(idx, torch.arange(10)), silenced(idx, torch.arange(10)), atol=1e-5, rtol=1e-5)
    assert model.layers[0].attention.cache.k.shape[1] == 1 and model.layers[1].attention.cache.k.shape[1] == 2


def test_head_pruning_is_skipped_before_running_where_a_workload_has_no_grouped_heads():
    from bench_lib.platform import detect
    from bench_lib.suites.inference.suite import InferenceSuite

    suite, platform = InferenceSuite(), detect()
    mlp = CaseSpec.make("inference", "digits_mlp_wide", "structured_heads", "cpu", batch=64, sparsity=0.5)
    assert "needs a workload with remove_heads" in suite.skip_reason(mlp, platform)
    llama = CaseSpec.make("decode", "llama_byte", "structured_heads", "cpu", batch=1, prompt=128, gen=128,
                          mode="eager", phase="decode", sparsity=0.5)
    assert DecodeSuite().skip_reason(llama, platform) is None


def test_a_head_that_does_not_compile_is_served_eagerly_and_said_so(monkeypatch):
    """torch 2.11's Dynamo refused torchao's quantized output heads; the engine must not fail the case."""
    real = torch.compile

    def refuse_the_head(fn=None, **kwargs):
        if getattr(fn, "__name__", "") == "logits":
            def broken(*args):
                raise RuntimeError("Polyfill handler does not have a traceable function")
            return broken
        return real(fn, **kwargs)

    monkeypatch.setattr(torch, "compile", refuse_the_head)
    model = tiny_model()
    engine = Engine(model, torch.randint(0, 256, (1, 4)), 3, "compile")
    assert engine.head.startswith("eager: torch.compile failed: RuntimeError")
    assert engine.generate().shape == (1, 3)


def test_only_compiled_decode_takes_the_matmul_attention(monkeypatch):
    """Compiled, one-token attention is the fused matmul path; eager keeps SDPA's single op (faster there)."""
    from bench_lib.workloads import llama

    calls = []
    original = llama._decode_attention
    monkeypatch.setattr(llama, "_decode_attention", lambda *a: calls.append(1) or original(*a))
    model = tiny_model()
    model.setup_cache(1, 8)
    tok, pos = torch.zeros(1, 1, dtype=torch.long), torch.tensor([3])
    with torch.no_grad():
        want = model(tok, pos)
        assert calls == []
        got = torch.compile(model, backend="eager", fullgraph=True)(tok, pos)
    assert calls and torch.allclose(got, want, atol=1e-5)
