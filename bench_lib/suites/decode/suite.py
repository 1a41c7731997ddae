"""The decode suite: LLM inference as it is served, prefill and decode apart.

Weight-only quantization exists to speed up decode, where each token reads every weight once
and the GPU waits on memory; a forward pass over a whole sequence (the inference suite) is the
wrong regime to judge it. Here a case is one phase of one served model:

- `prefill`: the prompts through the model into the KV cache and the first token chosen: time
  to first token (TTFT, MLPerf's name);
- `decode`: one step of greedy generation, a token for every row: time per output token (TPOT),
  decode tokens/s, and the bytes the step reads over its time, against the device's peak
  memory bandwidth (the roofline).

Techniques come from the inference suite's registry (same prepare and convert steps); `mode`
says how the model runs (eager, compiled blocks, or compiled and captured as CUDA graphs, as
gpt-fast serves), and each technique's speedup is over the baseline dtype in the same mode.
Quality is judged against the uncompressed reference served eagerly: greedy tokens agreeing
with its tokens, and held-out perplexity where the model is trained.

A user's checkpoint (`--model hf:DIR`, `user.py`) is served by the same engine with its own weights,
checked against transformers' forward on the same prompts (`hf.py`: logits' relative error and greedy
tokens, in every one of its results), and served beside it by transformers' own `generate()`
(mode `hf_generate`).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
from torch.nn import functional as F

from bench_lib.measure import memory
from bench_lib.measure.stats import Measurement
from bench_lib.measure.timers import MeasureConfig
from bench_lib.platform import DeviceKind, Platform, device_kind
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.roofline import compute_dtype
from bench_lib.suites.decode import user
from bench_lib.suites.decode.engine import Engine
from bench_lib.suites.decode.hf import (
    HF_MODE,
    HFGenerate,
    engine_logits,
    hf_greedy,
    hf_logits,
    hf_phase_work,
    hf_step_bytes,
    logit_errors,
    per_token,
)
from bench_lib.suites.decode.roofline import peak_bandwidth, phase_work, step_bytes
from bench_lib.suites.served import Served, ServedSuite, measure_window, sync, use_all_cores
from bench_lib.suites.served.size import layer_kinds, tensor_bytes
from bench_lib.techniques.inference import TECHNIQUES, skip_reason
from bench_lib.techniques.technique import Context, serving_dtype
from bench_lib.workloads.hf_llama import Checkpoint, load_hf_model
from bench_lib.workloads.llama import DECODE_WORKLOADS, Llama, LlamaLM
from bench_lib.workloads.user.spec import ModelSpec

__all__ = ["DecodeSuite", "DecodeGrid", "MATRIX", "PHASES"]

PHASES = ("prefill", "decode")
GEN_TOKENS = 128


@dataclass(frozen=True)
class DecodeGrid:
    """Workloads x techniques x modes x batches x prompt lengths; both phases of each."""

    workloads: tuple[str, ...]
    techniques: tuple[str, ...]
    modes: tuple[str, ...]
    batches: tuple[int, ...] = (1,)
    prompts: tuple[int, ...] = (128,)


_GPU_TECHNIQUES = ("bf16", "int8_weight_only", "int8_weight_only_inductor", "int4_weight_only", "fp8_weight_only",
                   "fp8_dynamic", "semi_structured_24", "int4_weight_only_24", "structured", "structured_heads")
# Under coordinate-descent tuning: the techniques whose kernels inductor writes (torchao's int8
# weight-only and 2:4 run aten and cuSPARSELt kernels that the setting cannot change).
_GPU_TUNED = ("bf16", "int8_weight_only_inductor", "int4_weight_only", "fp8_weight_only", "fp8_dynamic", "structured",
              "structured_heads")
# Named variants of the weight-only techniques on another kernel family, in the full profile (their
# kernels autotune on first use, which a quick run of the 8B shape cannot afford inside one device call);
# tuned like the others, for the rest of the step.
_GPU_VARIANTS = ("int4_weight_only_gemlite", "int8_weight_only_gemlite")
_CPU_TECHNIQUES = ("fp32", "int8_dynamic", "int8_dynamic_torchao", "int8_weight_only", "structured",
                   "structured_heads", "structured_int8")

# quick, CPU: the trained byte-level model at batch 1 (what `nox -s bench` can afford on 2 cores);
# full adds batch 8, the ~100M shape and compiled blocks. GPU: the 8B shape at batch 1 (the
# published figures' regime) on each technique's fastest path (graphs_tuned; minutes of a GPU, most
# of it compiling), bf16 eager beside it; full adds the untuned graph paths (torchao's
# int8 and 2:4 among them), batches, a long prompt, the 1B shape and the trained model's quality.
MATRIX: dict[tuple[str, DeviceKind], tuple[DecodeGrid, ...]] = {
    ("quick", "cpu"): (DecodeGrid(("llama_byte",), ("fp32", "int8_dynamic", "int8_weight_only", "structured",
                                                    "structured_heads", "structured_int8"), ("eager",)),),
    ("full", "cpu"): (
        DecodeGrid(("llama_byte", "llama_100m_random"), _CPU_TECHNIQUES, ("eager",), (1, 8)),
        DecodeGrid(("llama_byte", "llama_100m_random"), ("fp32", "int8_weight_only", "int8_weight_only_inductor"),
                   ("compile",), (1, 8)),
    ),
    ("quick", "cuda"): (
        DecodeGrid(("llama_8b_random",), _GPU_TUNED, ("graphs_tuned",)),
        DecodeGrid(("llama_8b_random",), ("bf16",), ("eager",)),
    ),
    ("full", "cuda"): (
        DecodeGrid(("llama_8b_random",), _GPU_TUNED + _GPU_VARIANTS, ("graphs_tuned",), (1, 8, 32), (128, 1024)),
        DecodeGrid(("llama_8b_random",), _GPU_TECHNIQUES, ("graphs",), (1, 8, 32), (128,)),
        DecodeGrid(("llama_8b_random",), ("bf16",), ("eager",), (1, 8, 32), (128,)),
        DecodeGrid(("llama_1b_random", "llama_byte"), _GPU_TUNED, ("graphs_tuned",), (1, 8, 32)),
    ),
}


def _perplexity(model: Llama, workload: LlamaLM, device: str) -> float:
    """Held-out next-byte perplexity over 32 windows of the training length, no cache."""
    windows = workload.eval_windows(32, workload.train_seq).to(device)
    model.setup_cache(None, workload.train_seq)
    pos = torch.arange(workload.train_seq, device=device)
    with torch.no_grad():
        losses = [F.cross_entropy(model(w[:, :-1], pos).float().flatten(0, 1), w[:, 1:].flatten(), reduction="sum")
                  for w in windows.split(8)]
    return math.exp(float(sum(losses)) / windows[:, 1:].numel())


def _phase_work(case: CaseSpec, model: Llama, prompts: torch.Tensor, gen: int) -> dict:
    """Each phase's work on the model run eagerly before the engine compiles it, with the engine's static
    cache: the prompt into the cache (its last position through the head), then one step."""
    batch, prompt = prompts.shape
    device = model.tok_embeddings.weight.device
    model.setup_cache(batch, prompt + gen)
    read = step_bytes(model)
    prompts, pos = prompts.to(device), torch.arange(prompt, device=device)
    calls = {"prefill": lambda: model(prompts, pos, last_only=True),
             "decode": lambda: model(prompts[:, -1:], pos[-1:] + 1)}
    return phase_work(calls, model, compute_dtype(case.variant, device_kind(case.device)),
                      read["weight_bytes_per_step"], read["kv_cache_bytes_per_step"])


def _agreement(tokens: torch.Tensor, reference: torch.Tensor) -> dict:
    """Greedy tokens against the reference's: the share of equal positions, and how many tokens
    each row generates before it first differs (greedy decoding diverges for good after that)."""
    same = tokens == reference
    prefix = torch.where(same.all(1), same.shape[1], (~same).int().argmax(1)).float()
    return {"greedy_token_agreement": float(same.float().mean()), "greedy_prefix_tokens": float(prefix.mean()),
            "generated_tokens": int(reference.shape[1])}


@dataclass
class _Served(Served):
    engine: Engine | HFGenerate


def _hf_decode(case: CaseSpec) -> bool:
    """A decode case of transformers' `generate()`: its calls are whole generations (`hf.per_token`)."""
    return case.param("mode") == HF_MODE and case.param("phase") == "decode"


def _free(device: str) -> None:
    gc.collect()
    if device_kind(device) == "cuda":
        torch.cuda.empty_cache()


class DecodeSuite(ServedSuite):
    NAME = "decode"
    DEFAULT_TIMEOUT_S = 900.0

    def __init__(self) -> None:
        super().__init__()
        self._references: dict[tuple, dict] = {}

    def cases(self, profile: str, device: str, backend: str, models: tuple[ModelSpec, ...] = ()) -> list[CaseSpec]:
        """The built-in workloads' cases; with `models`, those of the user's checkpoints only (`user.py`)."""
        grids = MATRIX[(profile, device_kind(device))]
        extra = {name: {key: values[0] for key, values in t.params.items()} for name, t in TECHNIQUES.items()}
        if models:
            return user.user_cases(self.NAME, grids, device, self.baseline(device), models, PHASES, GEN_TOKENS, extra)
        out = []
        for grid in grids:
            for workload in grid.workloads:
                for name in grid.techniques:
                    for mode in grid.modes:
                        for batch in grid.batches:
                            for prompt in grid.prompts:
                                for phase in PHASES:
                                    out.append(CaseSpec.make(self.NAME, workload, name, device, batch=batch,
                                                             prompt=prompt, gen=GEN_TOKENS, mode=mode, phase=phase,
                                                             **extra[name]))
        return out

    def workload(self, case: CaseSpec) -> LlamaLM:
        """The case's workload: a built-in shape, or a user's checkpoint served by effbench's engine."""
        checkpoint = user.checkpoint_of(case)
        return DECODE_WORKLOADS[case.workload] if checkpoint is None else checkpoint.llama()

    def skip_reason(self, case: CaseSpec, platform: Platform) -> str | None:
        if str(case.param("mode")).startswith("graphs") and device_kind(case.device) != "cuda":
            return "CUDA graphs need a CUDA device"
        reason = super().skip_reason(case, platform)
        checkpoint = user.checkpoint_of(case)
        if reason is None and checkpoint is not None:
            reason = user.engine_skip_reason(case, checkpoint)
        if reason is None and case.param("mode") != HF_MODE:
            reason = skip_reason(TECHNIQUES[case.variant], case.device, platform, self.workload(case))
        return reason

    def rescale_metrics(self, case: CaseSpec, metrics: dict, median: float, p90: float, p99: float) -> dict:
        batch, prompt = int(case.param("batch")), int(case.param("prompt"))
        out = {"latency_median_s": median, "latency_p90_s": p90, "latency_p99_s": p99}
        if "gpu_kernel_s_per_call" in metrics:
            out["gpu_busy_fraction"] = metrics["gpu_kernel_s_per_call"] / median
        if case.param("phase") == "prefill":
            return {**out, "ttft_median_s": median, "throughput_tokens_per_s": batch * prompt / median}
        out.update(tpot_median_s=median, throughput_tokens_per_s=batch / median)
        if metrics.get("bytes_per_step"):
            achieved = metrics["bytes_per_step"] / median
            out["achieved_bandwidth_bytes_per_s"] = achieved
            if metrics.get("peak_bandwidth_bytes_per_s"):
                out["bandwidth_fraction"] = achieved / metrics["peak_bandwidth_bytes_per_s"]
        return out

    # --- building --------------------------------------------------------------------------------

    def served_key(self, case: CaseSpec) -> CaseSpec:
        """Both phases of a served model share it."""
        return CaseSpec(case.suite, case.workload, case.variant, case.device,
                        tuple(p for p in case.params if p[0] != "phase"))

    def _reference(self, case: CaseSpec) -> dict:
        """The uncompressed reference, served eagerly in the baseline dtype: its greedy tokens and
        perplexity, computed once per workload, device, batch and prompt in this process. A user's
        checkpoint's reference is effbench's engine with its weights, checked against transformers'
        forward and greedy tokens (`mapping`); where the engine cannot serve it, transformers' greedy
        tokens are the reference."""
        device, batch, prompt = case.device, int(case.param("batch")), int(case.param("prompt"))
        key = (case.workload, case.param("model"), device, batch, prompt, int(case.param("gen")))
        if key not in self._references:
            dtype = serving_dtype(TECHNIQUES[self.baseline(device)], device)
            checkpoint = user.checkpoint_of(case)
            if checkpoint is not None and checkpoint.engine_reason:
                hf = load_hf_model(checkpoint.path, device, dtype)
                self._references[key] = {"tokens": hf_greedy(hf, checkpoint.prompts(batch, prompt), key[-1]),
                                         "perplexity": None, "mapping": {}}
                del hf
            else:
                workload = self.workload(case)
                model = workload.build(device, dtype)
                ppl = _perplexity(model, workload, device) if workload.trained_weights else None
                prompts = workload.prompts(batch, prompt)
                mapping = {} if checkpoint is None else self._mapping(model, checkpoint, prompts, key[-1], dtype)
                tokens = Engine(model, prompts, key[-1], "eager").generate()
                if mapping:
                    mapping.update({f"hf_mapping_{k}": v for k, v in _agreement(tokens, mapping.pop("tokens")).items()})
                self._references[key] = {"tokens": tokens, "perplexity": ppl, "mapping": mapping}
                del model
            _free(device)
        return self._references[key]

    @staticmethod
    def _mapping(model: Llama, checkpoint: Checkpoint, prompts: torch.Tensor, gen: int, dtype: torch.dtype) -> dict:
        """transformers' forward and greedy tokens on the same checkpoint, prompts, dtype and device. Below
        fp32, both implementations round differently, and on near-tied logits (random weights) a greedy
        token flips; so each is also judged against transformers' fp32 forward (`ours_vs_fp32_*`,
        `theirs_vs_fp32_*`): the engine's mapping is right when its error is of the size of transformers' own."""
        device = str(model.tok_embeddings.weight.device)
        ours = engine_logits(model, prompts)
        hf = load_hf_model(checkpoint.path, device, dtype)
        theirs = hf_logits(hf, prompts)
        out = {f"hf_mapping_{k}": v for k, v in logit_errors(ours, theirs).items()}
        tokens = hf_greedy(hf, prompts, gen)
        del hf
        _free(device)
        if dtype != torch.float32:
            try:  # twice the served model's bytes beside it: a device that serves it need not hold this too
                truth = hf_logits(load_hf_model(checkpoint.path, device, torch.float32), prompts)
            except torch.OutOfMemoryError as e:
                out["hf_mapping_fp32_not_checked"] = f"out of memory for the fp32 model: {str(e).splitlines()[0]}"
            else:
                for who, logits in (("ours", ours), ("theirs", theirs)):
                    out.update({f"hf_mapping_{who}_vs_fp32_{k}": v for k, v in logit_errors(logits, truth).items()})
            _free(device)
        return {**out, "hf_mapping_dtype": str(dtype).removeprefix("torch."), "tokens": tokens}

    def serve(self, case: CaseSpec, judge: bool) -> _Served:
        """The technique applied, the engine set up (compiled, captured); with `judge`, its quality
        against the reference (built first, then freed: an 8B model is served one copy at a time)."""
        if case.param("mode") == HF_MODE:
            return self._serve_generate(case, judge)
        threads = use_all_cores()
        device, batch = case.device, int(case.param("batch"))
        workload, technique = self.workload(case), TECHNIQUES[case.variant]
        reference = self._reference(case) if judge else None
        dtype = serving_dtype(technique, device)
        rss_before = memory.current_rss_bytes()
        started = time.perf_counter()
        model = workload.build(device, torch.float32 if workload.trained_weights else dtype)
        ctx = Context(case, workload, device, dtype, batch)  # type: ignore[arg-type] - LlamaLM offers what steps use
        if technique.prepare:
            model = technique.prepare(model, ctx)
        model = model.to(dtype).eval()
        if technique.convert:
            model = technique.convert(model, ctx)
        sync(device)
        converted = time.perf_counter()
        facts: dict = {"convert_s": converted - started, "rss_before_build_bytes": rss_before,
                       "in_memory_bytes": sum(tensor_bytes(v) for v in model.state_dict().values()),
                       "layer_kinds": layer_kinds(model), "serving_dtype": str(dtype).removeprefix("torch."),
                       **workload.describe()}
        if judge and reference and reference["perplexity"] is not None:
            facts.update(perplexity=_perplexity(model, workload, device), reference_perplexity=reference["perplexity"])
        prompts = workload.prompts(batch, int(case.param("prompt")))
        facts.update(_phase_work(case, model, prompts, int(case.param("gen"))))
        engine = Engine(model, prompts, int(case.param("gen")), str(case.param("mode")))
        facts.update(setup_s=engine.setup_s, compiled_graphs=engine.compiled_graphs, output_head=engine.head,
                     **step_bytes(model))
        if judge and reference:
            facts.update(_agreement(engine.generate(), reference["tokens"]), **reference["mapping"])
        return _Served(threads=threads, started=started, facts=facts, engine=engine)

    def _serve_generate(self, case: CaseSpec, judge: bool) -> _Served:
        """A user's checkpoint served by transformers' own `generate()` (`hf.HFGenerate`)."""
        threads = use_all_cores()
        checkpoint = user.checkpoint_of(case)
        if checkpoint is None:
            raise ValueError(f"{case.id}: {HF_MODE} serves a user's checkpoint only (--model hf:DIR)")
        device, batch, prompt, gen = case.device, int(case.param("batch")), int(case.param("prompt")), \
            int(case.param("gen"))
        reference = self._reference(case) if judge else None
        dtype = serving_dtype(TECHNIQUES[case.variant], device)
        rss_before = memory.current_rss_bytes()
        started = time.perf_counter()
        model = load_hf_model(checkpoint.path, device, dtype)
        sync(device)
        facts: dict = {"convert_s": time.perf_counter() - started, "rss_before_build_bytes": rss_before,
                       "in_memory_bytes": sum(tensor_bytes(v) for v in model.state_dict().values()),
                       "layer_kinds": layer_kinds(model), "serving_dtype": str(dtype).removeprefix("torch."),
                       "effbench_engine": f"not mapped: {checkpoint.engine_reason}; served by transformers only"
                       if checkpoint.engine_reason else "mapped (see the engine's cases)",
                       "weights": f"checkpoint {checkpoint.path}", **checkpoint.identity()}
        prompts = checkpoint.prompts(batch, prompt)
        facts.update(hf_phase_work(model, prompts, gen, compute_dtype(case.variant, device_kind(device))))
        served = HFGenerate(model, prompts, gen)
        facts.update(served.facts(), **hf_step_bytes(model, batch, prompt + gen))
        if judge and reference:
            facts.update(_agreement(served.tokens(), reference["tokens"]), **reference["mapping"])
        return _Served(threads=threads, started=started, facts=facts, engine=served)

    def timed_call(self, served: _Served, case: CaseSpec) -> Callable[[], object]:
        engine = served.engine
        if isinstance(engine, HFGenerate):
            return engine.prefill if case.param("phase") == "prefill" else engine.generation
        return engine.prefill if case.param("phase") == "prefill" else engine.step

    # --- measuring -------------------------------------------------------------------------------

    def _per_token(self, result: CaseResult) -> CaseResult:
        """A round of `generate()`'s decode case as time per output token (`hf.per_token`)."""
        case = result.case
        if result.status != "ok" or result.measurement is None or not _hf_decode(case):
            return result
        engine = self.kept(case).engine
        assert isinstance(engine, HFGenerate)
        m = per_token(result.measurement, engine.ttft_s, int(case.param("gen")))
        return replace(result, measurement=m, metrics={**result.metrics, "latency_median_s": m.median})

    def measure_round(self, case: CaseSpec, profile: str) -> CaseResult:
        return self._per_token(super().measure_round(case, profile))

    def measure_visit(self, cases: list[CaseSpec], profile: str) -> list[CaseResult]:
        return [self._per_token(r) for r in super().measure_visit(cases, profile)]

    def measure_served(self, served: _Served, case: CaseSpec, cfg: MeasureConfig) -> CaseResult:
        device, batch, prompt, gen = case.device, int(case.param("batch")), int(case.param("prompt")), \
            int(case.param("gen"))
        decode = case.param("phase") == "decode"
        engine = served.engine
        tokens_per_call = (batch * gen if _hf_decode(case) else batch) if decode else batch * prompt
        window = measure_window(self.timed_call(served, case), device, cfg, {"call": 1, "token": tokens_per_call})
        steps = None
        if decode and isinstance(engine, Engine):
            with torch.no_grad():
                steps = Measurement(tuple(engine.step_times()))
        m = window.measurement
        peak, source = peak_bandwidth(torch.cuda.get_device_name() if device_kind(device) == "cuda" else None)
        phase_work = {f"work_{p}" for p in PHASES}
        metrics = {
            **{k: v for k, v in served.facts.items() if k not in phase_work},
            **({"work": served.facts[f"work_{case.param('phase')}"]} if f"work_{case.param('phase')}" in served.facts
               else {}),
            "phase": case.param("phase"),
            "peak_bandwidth_bytes_per_s": peak, "peak_bandwidth_source": source,
            **({"tpot_step_p50_s": steps.median, "tpot_step_p90_s": steps.p90, "tpot_step_p99_s": steps.p99}
               if steps else {}),
            **self.served_metrics(case, served, window),
        }
        if _hf_decode(case):  # its calls were whole generations: figures per output token, kernels per generation
            assert isinstance(engine, HFGenerate)
            m = per_token(m, engine.ttft_s, gen)
            if "gpu_kernel_s_per_call" in metrics:
                metrics["gpu_kernel_s_per_generation"] = metrics.pop("gpu_kernel_s_per_call")
                metrics.pop("gpu_busy_fraction", None)
        metrics.update(self.rescale_metrics(case, metrics, m.median, m.p90, m.p99))
        return CaseResult(case, "ok", m, metrics, timer=window.timer, measure_config=asdict(cfg),
                          wall_s=time.perf_counter() - served.started)
