"""A user's transformers checkpoint in the decode suite: the weights mapped onto effbench's engine and
checked against transformers' own forward, `generate()` as a serving mode, the user's cases.

Tiny random checkpoints of each family are written with `save_pretrained` inside the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch

from bench_lib.measure.stats import Measurement
from bench_lib.results.case import CaseSpec
from bench_lib.suites.decode.engine import Engine
from bench_lib.suites.decode.hf import HF_MODE, HFGenerate, compare_logits, hf_greedy, per_token
from bench_lib.suites.decode.suite import MATRIX, PHASES, DecodeSuite
from bench_lib.suites.decode.user import user_cases
from bench_lib.workloads.hf_llama import Checkpoint, load_hf_model, sliding_window_reason, unsupported_reason
from bench_lib.workloads.llama import DECODE_WORKLOADS, RopeScaling, remove_kv_groups, rope_frequencies

transformers = pytest.importorskip("transformers")
LlamaConfig, MistralConfig, Qwen2Config = transformers.LlamaConfig, transformers.MistralConfig, transformers.Qwen2Config

GEN = 64
_DIMS = {"vocab_size": 101, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
         "initializer_range": 0.1}
_LLAMA3 = {"rope_type": "llama3", "rope_theta": 500_000.0, "factor": 8.0, "low_freq_factor": 1.0,
           "high_freq_factor": 4.0, "original_max_position_embeddings": 2048}

# Each family as its users meet it: Llama untied and (3.2-style) tied with llama3 rope scaling (head_dim 16:
# frequencies kept, blended and divided), Mistral with a sliding window longer than the sequence and a head_dim
# that is not hidden / heads (as Mistral-Nemo's), Qwen2 with its q/k/v biases (random, not transformers' zeros)
# and tied embeddings, Llama's attention_bias (q, k, v and o); one saved in shards.
FAMILIES = {
    "llama": (transformers.LlamaForCausalLM,
              LlamaConfig(**_DIMS, rope_parameters={"rope_type": "default", "rope_theta": 1e4})),
    "llama3_tied": (transformers.LlamaForCausalLM,
                    LlamaConfig(**{**_DIMS, "max_position_embeddings": 8192}, rope_parameters=_LLAMA3,
                                tie_word_embeddings=True)),
    "mistral_head_dim": (transformers.MistralForCausalLM, MistralConfig(**_DIMS, sliding_window=4096, head_dim=32)),
    "llama_attention_bias": (transformers.LlamaForCausalLM, LlamaConfig(**_DIMS, attention_bias=True)),
    "qwen2_tied": (transformers.Qwen2ForCausalLM, Qwen2Config(**_DIMS, tie_word_embeddings=True)),
}


# Loads in transformers, but effbench's engine has no MLP biases: served by transformers only.
MLP_BIAS = (transformers.LlamaForCausalLM, LlamaConfig(**_DIMS, mlp_bias=True))


def save_checkpoint(tmp_path, family: str, shard: str = "50GB") -> str:
    cls, config = MLP_BIAS if family == "mlp_bias" else FAMILIES[family]
    torch.manual_seed(0)
    model = cls(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or name.endswith("norm.weight"):  # random, so that a lost one shows
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if name.endswith("norm.weight") else 0.0))
    path = tmp_path / family
    model.save_pretrained(path, max_shard_size=shard)
    return str(path)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_checkpoint_maps_onto_the_engine_as_transformers_computes_it(tmp_path, family):
    """fp32 on the CPU: logits within 1e-4 (relative to their max) and 64 greedy tokens identical."""
    path = save_checkpoint(tmp_path, family, shard="40KB" if family == "llama" else "50GB")
    checkpoint = Checkpoint(path, family)
    assert checkpoint.engine_reason is None
    workload = checkpoint.llama()
    model = workload.build("cpu", torch.float32)
    hf = load_hf_model(path, "cpu", torch.float32)
    prompts = checkpoint.prompts(2, 16)
    logits = compare_logits(model, hf, prompts)
    error = logits["logits_max_rel_error"]
    ours, theirs = Engine(model, prompts, GEN, "eager").generate(), hf_greedy(hf, prompts, GEN)
    print(f"{family}: logits max relative error {error:.2e}, greedy tokens identical {int((ours == theirs).sum())}"
          f"/{ours.numel()}")
    assert error <= 1e-4 and logits["argmax_agreement"] == 1.0
    assert torch.equal(ours, theirs)
    assert ours.shape == (2, GEN) and len(set(ours.flatten().tolist())) > 1


def test_a_lost_bias_or_scaling_shows_in_the_check(tmp_path):
    """The check can fail: Qwen2 without its q/k/v biases, Llama 3 without its rope scaling."""
    for family, drop in (("qwen2_tied", "qkv_bias"), ("llama3_tied", "rope_scaling")):
        checkpoint = Checkpoint(save_checkpoint(tmp_path, family), family)
        model = checkpoint.llama().build("cpu", torch.float32)
        hf = load_hf_model(checkpoint.path, "cpu", torch.float32)
        if drop == "qkv_bias":
            for block in model.layers:
                block.attention.wqkv.bias.data.zero_()
        else:
            model.shape = replace(model.shape, rope_scaling=None)
        assert compare_logits(model, hf, checkpoint.prompts(1, 48))["logits_max_rel_error"] > 1e-3, family


def test_below_fp32_both_implementations_are_judged_against_transformers_fp32(tmp_path):
    """bf16: the engine's and transformers' logits each against transformers' fp32 forward, so that a
    mapping is judged by rounding of transformers' own size, not by where two roundings part."""
    checkpoint = Checkpoint(save_checkpoint(tmp_path, "llama"), "llama")
    model = checkpoint.llama().build("cpu", torch.bfloat16)
    mapping = DecodeSuite._mapping(model, checkpoint, checkpoint.prompts(1, 16), 4, torch.bfloat16)
    assert mapping["hf_mapping_dtype"] == "bfloat16" and mapping["tokens"].shape == (1, 4)
    ours, theirs = mapping["hf_mapping_ours_vs_fp32_logits_max_rel_error"], \
        mapping["hf_mapping_theirs_vs_fp32_logits_max_rel_error"]
    assert 0 < ours < 0.05 and 0 < theirs < 0.05  # bf16 rounding: neither exact nor far
    fp32 = DecodeSuite._mapping(checkpoint.llama().build("cpu", torch.float32), checkpoint,
                                checkpoint.prompts(1, 16), 4, torch.float32)
    assert not any("vs_fp32" in key for key in fp32)  # in fp32 the check is ours against theirs alone


def test_an_fp32_model_the_device_cannot_hold_leaves_the_mapping_checked_in_its_own_dtype(tmp_path, monkeypatch):
    import bench_lib.suites.decode.suite as decode_suite

    checkpoint = Checkpoint(save_checkpoint(tmp_path, "llama"), "llama")
    model = checkpoint.llama().build("cpu", torch.bfloat16)

    def load(path, device, dtype):
        if dtype == torch.float32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 32.00 GiB")
        return load_hf_model(path, device, dtype)

    monkeypatch.setattr(decode_suite, "load_hf_model", load)
    mapping = DecodeSuite._mapping(model, checkpoint, checkpoint.prompts(1, 16), 4, torch.bfloat16)
    assert mapping["hf_mapping_logits_max_rel_error"] < 0.05 and not any("vs_fp32" in k for k in mapping)
    assert mapping["hf_mapping_fp32_not_checked"].startswith("out of memory for the fp32 model: CUDA out of memory")


def test_identity_of_the_checkpoint(tmp_path):
    checkpoint = Checkpoint(save_checkpoint(tmp_path, "qwen2_tied"), "qwen2_tied")
    identity = checkpoint.identity()
    hf = load_hf_model(checkpoint.path, "cpu", torch.float32)
    assert identity["checkpoint_architecture"] == "Qwen2ForCausalLM"
    assert identity["checkpoint_parameters"] == sum(p.numel() for p in hf.parameters())  # tied: counted once
    assert len(identity["checkpoint_config_sha256"]) == 64 and identity["transformers_version"]
    assert identity["checkpoint_dtype"] == "float32"


def test_prompts_come_through_the_checkpoints_tokenizer(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from bench_lib.workloads.text import stdlib_bytes

    path = save_checkpoint(tmp_path, "mistral_head_dim")
    text = bytes(stdlib_bytes()[0][:20_000].tolist()).decode("utf-8", "replace")
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel()
    tokenizer.train_from_iterator([text], tokenizers.trainers.BpeTrainer(vocab_size=101))
    tokenizer.save(f"{path}/tokenizer.json")
    checkpoint = Checkpoint(path, "m")
    prompts = checkpoint.prompts(2, 32)
    held_out = bytes(stdlib_bytes()[1][:16 * 2 * 32].tolist()).decode("utf-8", "replace")
    assert prompts[0].tolist() == tokenizer.encode(held_out).ids[:32]
    assert checkpoint.identity()["prompt_tokens"] == "tokenizer.json"


@pytest.mark.parametrize("config, words", [
    (LlamaConfig(**_DIMS, rope_parameters={"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0,
                                           "original_max_position_embeddings": 128}), "rope type 'yarn'"),
    (LlamaConfig(**_DIMS, mlp_bias=True), "mlp_bias"),
    (LlamaConfig(**_DIMS, hidden_act="gelu"), "activation"),
    (LlamaConfig(**_DIMS, architectures=["GPTNeoXForCausalLM"]), "GPTNeoXForCausalLM"),
])
def test_what_the_engine_cannot_serve_has_a_reason(config, words):
    if config.architectures is None:
        config.architectures = ["LlamaForCausalLM"]
    reason = unsupported_reason(config)
    assert reason and words in reason


def test_sliding_window_is_a_reason_only_past_the_window():
    mistral = MistralConfig(**_DIMS, sliding_window=32)
    assert sliding_window_reason(mistral, 32) is None
    assert "sliding-window" in sliding_window_reason(mistral, 33)
    assert sliding_window_reason(Qwen2Config(**_DIMS, sliding_window=8), 1000) is None  # use_sliding_window off
    assert sliding_window_reason(MistralConfig(**_DIMS, sliding_window=None), 10_000) is None


def test_head_pruning_keeps_the_biases_of_the_kept_groups(tmp_path):
    model = Checkpoint(save_checkpoint(tmp_path, "qwen2_tied"), "q").llama().build("cpu", torch.float32)
    attention = model.layers[0].attention
    assert remove_kv_groups(attention, 0.5) == 1
    assert attention.wqkv.bias.shape == (attention.wqkv.out_features,)
    model.setup_cache(None, 8)
    with torch.no_grad():
        assert torch.isfinite(model(torch.arange(8)[None], torch.arange(8))).all()


def test_built_in_shapes_keep_their_repr_and_frequencies():
    """Cache keys of trained shapes are `repr(shape)`: the checkpoint fields stay out of it."""
    shape = DECODE_WORKLOADS["llama_byte"].shape
    assert repr(shape) == ("LlamaShape(vocab=256, d=128, layers=4, heads=4, kv_heads=2, ffn=384, "
                           "rope_theta=10000.0, tied=False, norm_eps=1e-05)")
    unscaled = 1.0 / 10_000.0 ** (torch.arange(0, 32, 2).float() / 32)
    assert torch.equal(rope_frequencies(shape, torch.device("cpu")), unscaled)
    scaled = rope_frequencies(replace(shape, rope_scaling=RopeScaling("linear", 4.0)), torch.device("cpu"))
    torch.testing.assert_close(scaled, unscaled / 4)


def test_generate_mode_times_transformers_and_gives_its_greedy_tokens(tmp_path):
    path = save_checkpoint(tmp_path, "mistral_head_dim")
    hf = load_hf_model(path, "cpu", torch.float32)
    prompts = Checkpoint(path, "m").prompts(1, 16)
    served = HFGenerate(hf, prompts, 8)
    assert torch.equal(served.tokens(), hf_greedy(hf, prompts, 8))
    assert 0 < served.ttft_s and served.facts()["hf_generate_compiled"] is False  # CPU: transformers compiles not
    m = per_token(Measurement((1.0, 1.7)), 0.3, 8)
    assert m.samples == pytest.approx((0.1, 0.2))


def test_a_generation_shorter_than_its_prefill_gives_no_time_per_token():
    with pytest.raises(ValueError, match="1 of 2 generations"):
        per_token(Measurement((0.2, 1.7)), 0.3, 8)


@dataclass(frozen=True)
class _Spec:  # `workloads.user.spec.ModelSpec`'s fields
    text: str
    kind: str
    target: str
    name: str


def test_user_cases_take_the_builtin_grid_and_add_generate(tmp_path):
    supported = _Spec("hf:" + save_checkpoint(tmp_path, "llama"), "hf", str(tmp_path / "llama"), "llama")
    (tmp_path / "neox").mkdir()
    LlamaConfig(**_DIMS, architectures=["GPTNeoXForCausalLM"]).save_pretrained(tmp_path / "neox")
    other = _Spec("hf:" + str(tmp_path / "neox"), "hf", str(tmp_path / "neox"), "neox")
    factory = _Spec("py:pkg.mod:make", "py", "pkg.mod:make", "make")
    cases = DecodeSuite().cases("quick", "cpu", "all", (supported, other, factory))
    builtin = DecodeSuite().cases("quick", "cpu", "all")
    mine = [c for c in cases if c.workload == "llama"]
    assert {(c.variant, c.param("mode")) for c in mine} == {(c.variant, c.param("mode")) for c in builtin} | {
        ("fp32", HF_MODE)}
    assert all(c.param("model") == supported.text for c in mine)
    assert {(c.variant, c.param("mode"), c.param("phase")) for c in cases if c.workload == "neox"} == {
        ("fp32", HF_MODE, phase) for phase in PHASES}
    assert not [c for c in cases if c.workload == "make"]
    grids = MATRIX[("full", "cuda")]
    full = user_cases("decode", grids, "cuda", "bf16", (supported,), PHASES, 128, {})
    assert len({c for c in full}) == len(full)  # each combination once, though grids repeat techniques
    assert {(c.param("batch"), c.param("prompt")) for c in full if c.param("mode") == HF_MODE} == {
        (b, p) for g in grids for b in g.batches for p in g.prompts}


@pytest.mark.slow
def test_a_user_case_end_to_end_carries_the_mapping_and_identity(tmp_path):
    """A user's case served by effbench's engine, characterized as an interleaved run's first process does
    (one round of timing), and a checkpoint the engine cannot serve, by transformers' generate() against
    its own eager greedy tokens. Runs where `workloads.user.spec` (the `--model` plumbing) is present."""
    pytest.importorskip("bench_lib.workloads.user.spec")
    suite = DecodeSuite()
    for family, modes in (("qwen2_tied", ("eager",)), ("mlp_bias", (HF_MODE,))):
        params = {"batch": 1, "prompt": 16, "gen": 16, "model": f"hf:{save_checkpoint(tmp_path, family)}"}
        for mode in modes:
            case = CaseSpec.make("decode", family, "fp32", "cpu", mode=mode, phase="decode", **params)
            result = suite.characterize(case, "quick")
            assert result.status == "ok", result.reason
            metrics = result.metrics
            assert metrics["greedy_prefix_tokens"] == 16 and metrics["tpot_median_s"] > 0
            assert metrics["checkpoint_architecture"] == ("Qwen2ForCausalLM" if family == "qwen2_tied"
                                                          else "LlamaForCausalLM")
            if family == "qwen2_tied":
                assert metrics["hf_mapping_logits_max_rel_error"] <= 1e-4
                assert metrics["hf_mapping_argmax_agreement"] == 1 and metrics["hf_mapping_greedy_prefix_tokens"] == 16
            else:
                assert "hf_mapping_logits_max_rel_error" not in metrics
                assert metrics["effbench_engine"].startswith("not mapped: mlp_bias")
                # transformers' path has its roofline too: a decode step does ~2 FLOPs a parameter (not the embedding's)
                step = metrics["work"]
                assert step["flops_counted_by"].startswith("counted") and step["bytes_per_call"] > 0
                assert 0.5 < step["flops_per_call"] / (2 * metrics["checkpoint_parameters"]) < 1.5
                # The interleaved rounds' figure is per output token too (a whole generation is ~16 of them).
                (visit,) = suite.measure_visit([case], "quick")
                assert 0.2 < visit.measurement.median / metrics["tpot_median_s"] < params["gen"] / 2


def test_the_report_shows_each_checkpoints_mapping_once_with_the_fp32_errors():
    import pandas as pd

    from bench_lib.report.user_models import user_models_section

    base = {"status": "ok", "param.model": "hf:/x/ck", "workload": "ck", "suite": "decode", "device": "cuda",
            "hf_mapping_logits_max_rel_error": 0.064, "hf_mapping_argmax_agreement": 0.867,
            "hf_mapping_dtype": "bfloat16", "hf_mapping_greedy_prefix_tokens": 4.0,
            "hf_mapping_ours_vs_fp32_logits_max_rel_error": 0.011,
            "hf_mapping_theirs_vs_fp32_logits_max_rel_error": 0.012}
    text = "\n".join(user_models_section(pd.DataFrame([{**base, "variant": "bf16"},
                                                       {**base, "variant": "int4_weight_only"}])))
    assert text.count("| ck | cuda | bfloat16 | 6.40e-02 | 86.7% | 4 | 1.10e-02 | 1.20e-02 |") == 1
