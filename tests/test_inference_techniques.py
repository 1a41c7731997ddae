"""The inference suite's pieces, on tiny models: no timing, no training beyond a few steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench_lib.platform import Platform
from bench_lib.results.case import CaseSpec
from bench_lib.suites.inference.suite import InferenceSuite
from bench_lib.suites.served.size import layer_kinds, model_size
from bench_lib.techniques.baselines import SERVED_BASELINES
from bench_lib.techniques.inference import TECHNIQUES, skip_reason
from bench_lib.techniques.modules import CsrLinear
from bench_lib.techniques.structured import remove_units
from bench_lib.techniques.technique import Context
from bench_lib.workloads import WORKLOADS
from bench_lib.workloads.digits import DigitsCNN, DigitsMLP
from bench_lib.workloads.text import ByteLM

TINY_LM = ByteLM(d=32, layers=1, heads=2, seq=16, steps=0, eval_seqs=5)


def _ctx(technique: str, workload, **params) -> Context:
    case = CaseSpec.make("inference", "tiny", technique, "cpu", batch=4, **params)
    return Context(case, workload, "cpu", torch.float32, 4)


@pytest.mark.parametrize("workload", [DigitsMLP(hidden=32), DigitsCNN(channels=4, hidden=16)])
def test_remove_units_makes_smaller_dense_layers_and_zero_fraction_changes_nothing(workload):
    model = workload.architecture().eval()
    x = torch.randn(3, 64)
    before = model(x)
    assert remove_units(workload.prunable(model), 0.0) == 0
    torch.testing.assert_close(model(x), before)
    params = sum(p.numel() for p in model.parameters())
    removed = remove_units(workload.prunable(model), 0.5)
    assert removed > 0 and sum(p.numel() for p in model.parameters()) < params * 0.6
    assert model(x).shape == (3, 10)
    for pair in workload.prunable(model):
        assert pair.producer.weight.shape[0] * pair.group == pair.consumer.weight.shape[1]


def test_remove_units_keeps_the_largest_units():
    producer, consumer = nn.Linear(2, 4), nn.Linear(4, 1)
    with torch.no_grad():
        producer.weight.copy_(torch.tensor([[1.0, 0], [9, 9], [0.1, 0], [5, 0]]))
        consumer.weight.copy_(torch.tensor([[10.0, 20, 30, 40]]))
    from bench_lib.workloads.base import Prunable

    remove_units([Prunable(producer, consumer)], 0.5)
    assert producer.weight[:, 0].tolist() == [9, 5] and consumer.weight.tolist() == [[20, 40]]


def test_lm_structured_cut_and_outputs_are_chunked_exactly():
    model = TINY_LM.reference()
    x = TINY_LM.eval_inputs()
    whole = model(x).detach()
    chunked = TINY_LM.outputs(model, x, 2, "cpu", torch.float32)  # 5 rows in chunks of 2: last one padded
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-5)
    remove_units(TINY_LM.prunable(model), 0.5)
    assert model.blocks[0].fc1.out_features == 64 and model(x).shape == whole.shape


def test_lm_quality_of_the_reference_itself():
    out = TINY_LM.outputs(TINY_LM.reference(), TINY_LM.eval_inputs(), 5, "cpu", torch.float32)
    q = TINY_LM.quality(out, out)
    assert q["agreement_with_reference"] == 1.0 and q["accuracy_delta"] == 0.0 and q["output_rel_error"] == 0.0
    assert q["perplexity"] == q["reference_perplexity"] > 1 and q["eval_tokens"] == 5 * 16


def test_calibration_batches_have_exactly_the_batch_rows():
    batches = TINY_LM.calibration_batches(3, rows=10)
    assert len(batches) == 3 and all(b.shape == (3, 16) for b in batches)


def test_csr_linear_computes_the_same_function():
    linear = nn.Linear(16, 8)
    with torch.no_grad():
        linear.weight[linear.weight.abs() < 0.1] = 0
    x = torch.randn(2, 3, 16)
    torch.testing.assert_close(CsrLinear(linear)(x), linear(x), rtol=1e-5, atol=1e-6)


def test_int8_dynamic_converts_every_linear_and_shrinks_the_model():
    model = DigitsMLP(hidden=64).architecture().eval()
    size = model_size(model)["serialized_bytes"]
    converted = TECHNIQUES["int8_dynamic"].convert(model, _ctx("int8_dynamic", DigitsMLP(hidden=64)))
    assert layer_kinds(converted) == {"DynamicQuantizedLinear[Tensor:qint8]": 3}
    assert model_size(converted)["serialized_bytes"] < size / 2


def test_l1_unstructured_zeroes_the_requested_fraction():
    model = DigitsMLP(hidden=64).architecture()
    TECHNIQUES["l1_unstructured"].prepare(model, _ctx("l1_unstructured", DigitsMLP(hidden=64), sparsity=0.9))
    assert model_size(model)["nonzero_weight_fraction"] == pytest.approx(0.1, abs=0.01)


def test_skip_reasons_name_device_capability_and_missing_support():
    assert "runs on cuda" in skip_reason(TECHNIQUES["fp8_dynamic"], "cpu")
    ampere = Platform(cuda_devices=1, cuda_capability=(8, 0), gloo=True, nccl=True)
    assert "8.9" in skip_reason(TECHNIQUES["fp8_dynamic"], "cuda", ampere)
    hopper = Platform(cuda_devices=1, cuda_capability=(9, 0), gloo=True, nccl=True)
    assert skip_reason(TECHNIQUES["fp8_dynamic"], "cuda", hopper) is None
    assert "torchao" in skip_reason(TECHNIQUES["semi_structured_24_int8"], "cuda", hopper)
    assert "deprecated" in TECHNIQUES["int8_dynamic"].note.lower()


def test_a_technique_on_a_package_that_is_not_installed_is_skipped_with_its_name(monkeypatch):
    hopper = Platform(cuda_devices=1, cuda_capability=(9, 0), gloo=True, nccl=True)
    technique = TECHNIQUES["int4_weight_only_gemlite"]
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert "pip install gemlite" in skip_reason(technique, "cuda", hopper)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    assert skip_reason(technique, "cuda", hopper) is None


def test_gemlite_groups_round_trip_within_half_a_step():
    from bench_lib.techniques.gemlite import quantize_groups

    w = torch.randn(16, 256) * torch.linspace(0.1, 3.0, 256)  # groups of different ranges
    q, scale, zero = quantize_groups(w, 4, 128)
    assert q.dtype == torch.uint8 and int(q.max()) <= 15 and scale.shape == zero.shape == (16, 2)
    back = (q.float().view(16, 2, 128) - zero[..., None]) * scale[..., None]
    assert float(((back.view(16, 256) - w).abs() / scale.repeat_interleave(128, 1)).max()) <= 0.5 + 1e-4


@pytest.mark.parametrize("profile,device", [("quick", "cpu"), ("full", "cpu"), ("quick", "cuda"), ("full", "cuda")])
def test_matrix_cases_are_unique_known_and_have_baselines(profile, device):
    cases = InferenceSuite().cases(profile, device, "all")
    assert len({c.id for c in cases}) == len(cases)
    assert {c.workload for c in cases} <= set(WORKLOADS) and {c.variant for c in cases} <= set(TECHNIQUES)
    for workload, batch in {(c.workload, c.param("batch")) for c in cases}:
        assert CaseSpec.make("inference", workload, SERVED_BASELINES[device], device, batch=batch) in cases


def test_quick_cpu_lists_every_technique_on_the_linear_heavy_mlp():
    cases = InferenceSuite().cases("quick", "cpu", "all")
    assert {c.variant for c in cases if c.workload == "digits_mlp_wide"} == set(TECHNIQUES)


def test_summary_table_speedup_against_the_device_baseline():
    from bench_lib.measure.stats import Measurement
    from bench_lib.report.inference_table import summary_frame
    from bench_lib.results.case import CaseResult

    def ok(variant: str, seconds: float) -> CaseResult:
        case = CaseSpec.make("inference", "w", variant, "cuda", batch=8)
        samples = tuple(seconds * (1 + 0.001 * i) for i in range(20))
        return CaseResult(case, "ok", Measurement(samples=samples, number_per_sample=1), {"accuracy": 0.9})

    skipped = CaseResult.skipped(CaseSpec.make("inference", "w", "fp8_dynamic", "cuda", batch=8), "needs 8.9")
    frame = summary_frame([ok("bf16", 2.0), ok("fp16", 1.0), skipped]).set_index("technique")
    assert frame.loc["bf16", "speedup"] == "1.00x" and frame.loc["fp16", "speedup"] == "2.00x"
    assert frame.loc["fp8_dynamic", "status"] == "skipped" and frame.loc["fp8_dynamic", "note"] == "needs 8.9"


def test_static_int8_freezes_its_own_compile_only():
    """Freezing must be on while PT2E's model compiles, and off for whatever compiles after it
    (left on, it froze the next case's fp32 model in the same A/B server)."""
    from bench_lib.suites.served.evidence import op_evidence

    workload = DigitsMLP(hidden=32)
    model = TECHNIQUES["int8_static_pt2e"].convert(workload.architecture().eval(), _ctx("int8_static_pt2e", workload))
    assert torch._inductor.config.freezing is False
    with torch.no_grad():
        ops = {o["op"] for o in op_evidence(lambda: model(workload.example_input(4)), "cpu").top_ops}
    assert "onednn::qlinear_pointwise" in ops  # prepacked int8 kernels: frozen


def test_compile_modes_are_modes_inductor_knows():
    """A technique's compile mode reaches `torch.compile` only on GPU: check it here, where a typo costs no GPU."""
    modes = {t.compile_mode for t in TECHNIQUES.values()} - {None}
    assert modes == {"reduce-overhead"}
    from torch._inductor import list_mode_options

    assert modes <= set(list_mode_options())


def test_op_evidence_has_no_kernel_clock_on_cpu():
    from bench_lib.suites.served.evidence import op_evidence

    model = DigitsMLP(hidden=32).architecture().eval()
    with torch.no_grad():
        evidence = op_evidence(lambda: model(DigitsMLP(hidden=32).example_input(4)), "cpu")
    assert evidence.kernel_s_per_call is None
    assert evidence.top_ops[0]["op"].startswith("aten::") and 0 < evidence.top_ops[0]["share"] <= 1


def test_a_cached_fine_tune_is_keyed_by_the_cut_weights():
    """Same weights, same key; a changed weight or layout (w1/w3 fused into w13) never reuses the cache."""
    from torch import nn

    from bench_lib.techniques.pruning import digest

    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    b = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    b.load_state_dict(a.state_dict())
    assert digest(a) == digest(b)
    with torch.no_grad():
        b[0].weight[0, 0] += 1e-3
    assert digest(a) != digest(b)
    renamed = nn.ModuleDict({"w13": a[0], "w2": a[1]})
    assert digest(renamed) != digest(a) and digest(a.to(torch.bfloat16)) != digest(b)
