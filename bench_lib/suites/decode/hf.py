"""transformers beside effbench's engine: the mapping check, and `generate()` as a serving mode.

The mapping check runs transformers' own forward and greedy `generate()` on the checkpoint and the
prompts that effbench's engine serves, in the same dtype on the same device: the logits' max
relative error (max |ours - theirs| over max |theirs|, every position of every prompt), the share
of positions with the same top token, and the greedy tokens compared with the engine's
(`suite._agreement`).

`hf_generate` serves the checkpoint with transformers' documented fast path: `generate()` with
`cache_implementation="static"`, which transformers compiles itself on an accelerator (its decode
steps through `torch.compile` with its `CompileConfig` defaults, mode "reduce-overhead": CUDA graphs;
on a CPU it compiles nothing unless told to, and the mode runs as transformers gives it). The
prefill call is `generate(max_new_tokens=1)`: time to first token as a user of `generate()` sees it.
A decode step cannot be called apart from `generate()`, so the decode call is one whole generation
of `gen` tokens and its time per output token is (generation - time to first token) / (gen - 1)
(`per_token`), the time to first token measured when the model is served: the fastest of a few calls,
so that noise in it cannot make a generation look shorter than its own prefill (every generation
holds one); where that underestimates the prefill, TPOT is over by the difference / (gen - 1).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace

import torch
from torch import nn

from bench_lib.measure.stats import Measurement
from bench_lib.suites.decode.roofline import phase_work
from bench_lib.suites.served.size import tensor_bytes
from bench_lib.workloads.llama import Llama

__all__ = ["HF_MODE", "HFGenerate", "compare_logits", "engine_logits", "hf_logits", "logit_errors", "hf_greedy",
           "per_token", "hf_step_bytes", "hf_phase_work"]

HF_MODE = "hf_generate"
_TTFT_CALLS = 5


def _generation_config(model: nn.Module, new_tokens: int, **extra: object) -> object:
    """Greedy decoding of exactly `new_tokens` tokens: no end-of-sequence stop (a random or
    unlucky model may emit it), so that every call does the same work. The stop goes from the
    served model's own generation config: `generate()` fills a passed config's unset fields from it."""
    model.generation_config.eos_token_id = None
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = 0  # never written: no row finishes early
    config = copy.deepcopy(model.generation_config)
    config.update(do_sample=False, max_new_tokens=new_tokens, temperature=None, top_p=None, top_k=None, **extra)
    return config


def hf_greedy(model: nn.Module, prompts: torch.Tensor, gen: int) -> torch.Tensor:
    """transformers' greedy tokens (batch, gen) after the prompts, on the host (its default cache)."""
    prompts = prompts.to(model.device)
    with torch.no_grad():
        out = model.generate(prompts, attention_mask=torch.ones_like(prompts),
                             generation_config=_generation_config(model, gen))
    return out[:, prompts.shape[1]:].cpu()


def engine_logits(ours: Llama, prompts: torch.Tensor) -> torch.Tensor:
    """effbench's engine's logits of every prompt position (no cache), in fp32."""
    device = ours.tok_embeddings.weight.device
    prompts = prompts.to(device)
    ours.setup_cache(None, prompts.shape[1])
    with torch.no_grad():
        return ours(prompts, torch.arange(prompts.shape[1], device=device)).float()


def hf_logits(theirs: nn.Module, prompts: torch.Tensor) -> torch.Tensor:
    """transformers' logits of every prompt position, in fp32."""
    with torch.no_grad():
        return theirs(prompts.to(theirs.device)).logits.float()


def logit_errors(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """The max relative error of `a` against `b`, max |a - b| / max |b|, and the share of positions whose
    top token is the same. The latter reads the same inputs at every position, so a near tie that flips
    one greedy token (and the rest of a greedy generation after it, as bf16's rounding can on random
    weights) counts once."""
    b = b.to(a.device)
    return {"logits_max_rel_error": float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)),
            "argmax_agreement": float((a.argmax(-1) == b.argmax(-1)).float().mean())}


def compare_logits(ours: Llama, theirs: nn.Module, prompts: torch.Tensor) -> dict[str, float]:
    """Both models' logits of every prompt position (`logit_errors` of ours against theirs)."""
    return logit_errors(engine_logits(ours, prompts), hf_logits(theirs, prompts))


def hf_step_bytes(model: nn.Module, batch: int, seq: int) -> dict[str, int]:
    """Bytes a decode step of transformers' model reads, as `roofline.step_bytes` counts them: every
    weight but the embedding table (a tied head counts as the head), and a static cache of `seq`
    positions of every layer."""
    config = model.config
    weights = sum(tensor_bytes(p) for name, p in model.named_parameters() if "embed_tokens" not in name)
    if getattr(config, "tie_word_embeddings", False):
        weights += tensor_bytes(model.get_input_embeddings().weight)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv = 2 * config.num_hidden_layers * batch * config.num_key_value_heads * head_dim * seq * model.dtype.itemsize
    return {"weight_bytes_per_step": weights, "kv_cache_bytes_per_step": kv, "bytes_per_step": weights + kv}


def hf_phase_work(model: nn.Module, prompts: torch.Tensor, gen: int, dtype: str) -> dict:
    """Each phase's work on transformers' model run eagerly, before `generate()` compiles it: the prompt
    through the model into a cache (prefill), then one token after it (a decode step, the unit of time per
    output token); bytes as `hf_step_bytes` counts them."""
    batch, prompt = prompts.shape
    prompts = prompts.to(model.device)
    read = hf_step_bytes(model, batch, prompt + gen)
    state: dict = {}

    def prefill() -> None:
        state["out"] = model(prompts, use_cache=True, logits_to_keep=1)

    def step() -> None:
        model(prompts[:, -1:], past_key_values=state["out"].past_key_values, use_cache=True)

    return phase_work({"prefill": prefill, "decode": step}, model, dtype, read["weight_bytes_per_step"],
                      read["kv_cache_bytes_per_step"])


@dataclass
class HFGenerate:
    """transformers' `generate()` on static-cache fast path, over fixed prompts."""

    model: nn.Module
    prompts: torch.Tensor
    gen: int

    def __post_init__(self) -> None:
        self.prompts = self.prompts.to(self.model.device)
        self.mask = torch.ones_like(self.prompts)
        seq = self.prompts.shape[1] + self.gen
        # One cache size for both calls, so that neither reallocates for the other nor recompiles.
        self._first = _generation_config(self.model, 1, cache_implementation="static", max_cache_len=seq)
        self._all = _generation_config(self.model, self.gen, cache_implementation="static", max_cache_len=seq)
        started = time.perf_counter()
        for _ in range(2):  # compiles (on an accelerator) and warms up, apart from the timed calls
            self.prefill()
            self.tokens()
        self._sync()
        self.setup_s = time.perf_counter() - started
        self.compiled = hasattr(self.model, "_compiled_call")
        self.ttft_s = min(self._timed(self.prefill) for _ in range(_TTFT_CALLS))

    def _sync(self) -> None:
        if self.prompts.is_cuda:
            torch.cuda.synchronize()

    def _timed(self, fn: object) -> float:
        self._sync()
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        self._sync()
        return time.perf_counter() - started

    @torch.no_grad()
    def prefill(self) -> None:
        """Time to first token: `generate()` of one token."""
        self.model.generate(self.prompts, attention_mask=self.mask, generation_config=self._first)

    @torch.no_grad()
    def generation(self) -> torch.Tensor:
        """One whole generation of `gen` tokens (the decode phase's timed call)."""
        return self.model.generate(self.prompts, attention_mask=self.mask, generation_config=self._all)

    def tokens(self) -> torch.Tensor:
        """The generated tokens (batch, gen), on the host."""
        return self.generation()[:, self.prompts.shape[1]:].cpu()

    def facts(self) -> dict:
        return {"hf_generate_setup_s": self.setup_s, "hf_generate_ttft_min_s": self.ttft_s,
                "hf_generate_compiled": self.compiled,
                "hf_generate_path": "generate(cache_implementation='static'), "
                + ("decode steps compiled by transformers (CompileConfig defaults)" if self.compiled
                   else "not compiled (transformers compiles generate on accelerators only)")}


def per_token(m: Measurement, ttft_s: float, gen: int) -> Measurement:
    """A decode measurement of whole generations as time per output token: (t - ttft) / (gen - 1).
    Where a whole generation took less than the prefill measured apart (a tiny model on a loaded
    machine), no figure per token is left: the round fails with the reason rather than report 0."""
    shorter = [s for s in m.samples if s <= ttft_s]
    if shorter:
        raise ValueError(f"{len(shorter)} of {len(m.samples)} generations of {gen} tokens took at most the "
                         f"{ttft_s * 1e3:.3f} ms measured for their prefill alone: no time per token is left")
    return replace(m, samples=tuple((s - ttft_s) / (gen - 1) for s in m.samples))
