"""A local transformers checkpoint as a Workload: read from its safetensors files, nothing fetched from a hub.

The model class follows the config's architecture (a causal LM, a sequence classifier, else the bare encoder),
wrapped so that a call takes token ids and returns one tensor (`Outputs`), which is all the techniques and the
suite need. The data is real text (`corpus`) read by the checkpoint's own tokenizer. Quality is judged against
the fp32 reference the MLPerf way: the served model must keep a fraction (`quality_target`, 0.99 by default) of
the reference's quality: for a causal LM, reference perplexity / perplexity on held-out text.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from bench_lib.workloads.base import Prunable, Workload, relative_error
from bench_lib.workloads.user.corpus import HELD_OUT_FRACTION, corpus, token_windows
from bench_lib.workloads.user.spec import ModelSpec

__all__ = ["Task", "task_of", "Outputs", "HFModel", "hf_workload", "load_config", "checkpoint_tensors"]

Task = Literal["causal-lm", "sequence-classification", "feature-extraction"]
DEFAULT_QUALITY_TARGET = 0.99


def _quiet_transformers() -> None:
    """No progress bars or advice in a measuring process's output."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def task_of(architectures: list[str] | None) -> Task:
    """What the checkpoint's architecture does: its config's first `architectures` entry decides."""
    arch = (architectures or [""])[0]
    if arch.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal-lm"
    if arch.endswith("ForSequenceClassification"):
        return "sequence-classification"
    return "feature-extraction"


@lru_cache(maxsize=8)
def load_config(path: str) -> Any:
    from transformers import AutoConfig

    _quiet_transformers()
    return AutoConfig.from_pretrained(path, local_files_only=True)


@lru_cache(maxsize=8)
def checkpoint_tensors(path: str) -> tuple[int, tuple[str, ...]]:
    """(element count, dtypes) of the tensors in the checkpoint's safetensors files, read from their headers."""
    from safetensors import safe_open

    count, dtypes = 0, set()
    for file in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                piece = f.get_slice(key)
                count += math.prod(piece.get_shape())
                dtypes.add(str(piece.get_dtype()))
    return count, tuple(sorted(dtypes))


@lru_cache(maxsize=8)
def _token_ids(path: str, eval_text: str | None) -> tuple[list[int], list[int]]:
    """(training, held-out) token ids of the text, split on characters before tokenizing."""
    from transformers import AutoTokenizer

    _quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    text = corpus(eval_text).text
    cut = int(len(text) * (1 - HELD_OUT_FRACTION))
    encode = lambda part: tokenizer(part, add_special_tokens=False)["input_ids"]  # noqa: E731
    return encode(text[:cut]), encode(text[cut:])


class Outputs(nn.Module):
    """A transformers model called with token ids, returning its logits (or its last hidden state)."""

    def __init__(self, model: nn.Module, task: Task) -> None:
        super().__init__()
        self.model, self.task = model, task

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.task == "causal-lm":
            return self.model(input_ids=ids, use_cache=False).logits
        out = self.model(input_ids=ids)
        return out.logits if self.task == "sequence-classification" else out.last_hidden_state


@dataclass(frozen=True)
class HFModel(Workload):
    """A local checkpoint directory (`path`), as the user named it (`source`)."""

    path: str
    source: str
    eval_text: str | None = None
    quality_target: float = DEFAULT_QUALITY_TARGET
    seq: int = 128  # tokens per sequence, at most the model's context
    eval_seqs: int = 8
    train_seqs: int = 32  # calibration and recovery training
    fine_tune_steps: int = 20
    fine_tune_batch: int = 4
    lr: float = 1e-5

    @property
    def config(self) -> Any:
        return load_config(self.path)

    @property
    def task(self) -> Task:
        return task_of(getattr(self.config, "architectures", None))

    def _seq(self) -> int:
        limit = getattr(self.config, "max_position_embeddings", None) or getattr(self.config, "n_positions", None)
        return min(self.seq, limit or self.seq)

    def token_ids(self) -> tuple[list[int], list[int]]:
        """(training, held-out) token ids of the whole text as the checkpoint's tokenizer reads it: the first
        part and the held-out last `HELD_OUT_FRACTION`, cut on characters before tokenizing."""
        return _token_ids(self.path, self.eval_text)

    def _windows(self, held_out: bool) -> torch.Tensor:
        train, held = _token_ids(self.path, self.eval_text)
        try:
            return token_windows(held if held_out else train, self.eval_seqs if held_out else self.train_seqs,
                                 self._seq())
        except ValueError as e:
            part = f"held-out last {HELD_OUT_FRACTION:.0%}" if held_out else f"first {1 - HELD_OUT_FRACTION:.0%}"
            raise ValueError(f"{corpus(self.eval_text).source} is too short: in its {part}, {e}") from None

    def reference(self) -> nn.Module:
        import transformers

        _quiet_transformers()
        auto = {"causal-lm": transformers.AutoModelForCausalLM,
                "sequence-classification": transformers.AutoModelForSequenceClassification,
                "feature-extraction": transformers.AutoModel}[self.task]
        model = auto.from_pretrained(self.path, local_files_only=True, use_safetensors=True, dtype=torch.float32)
        return Outputs(model, self.task).eval()

    def example_input(self, batch: int) -> torch.Tensor:
        x = self._windows(held_out=True)[:, :-1]
        return x.repeat(-(-batch // x.shape[0]), 1)[:batch].contiguous()

    def eval_inputs(self) -> torch.Tensor:
        return self._windows(held_out=True)[:, :-1].contiguous()

    def train_inputs(self) -> torch.Tensor:
        return self._windows(held_out=False)[:, :-1].contiguous()

    def _verdict(self, kept: float, metric: str) -> dict[str, Any]:
        return {"quality_metric": metric, "quality_kept": kept, "quality_target": self.quality_target,
                "quality_verdict": "pass" if kept >= self.quality_target else "fail"}

    def quality(self, out: torch.Tensor, ref: torch.Tensor) -> dict[str, Any]:
        """Causal LM: held-out perplexity, next-token accuracy and top-1 agreement with the reference; a
        classifier: top-1 agreement; an encoder: mean cosine similarity of its hidden states. Each with
        the verdict: does the served model keep `quality_target` of the reference's quality."""
        common = {"output_rel_error": relative_error(out, ref), "eval_tokens": int(self.eval_inputs().numel())}
        if self.task == "feature-extraction":
            cosine = float(F.cosine_similarity(out.float(), ref.float(), dim=-1).mean())
            return {**common, "cosine_with_reference": cosine,
                    **self._verdict(cosine, "mean cosine similarity of the last hidden states with the reference's")}
        pred, ref_pred = out.argmax(-1), ref.argmax(-1)
        agreement = float((pred == ref_pred).float().mean())
        if self.task == "sequence-classification":
            return {**common, "agreement_with_reference": agreement,
                    **self._verdict(agreement, "top-1 class agreement with the reference (no labels)")}
        y = self._windows(held_out=True)[:, 1:]

        def ppl(logits: torch.Tensor) -> float:
            return math.exp(float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))))

        perplexity, reference_perplexity = ppl(out), ppl(ref)
        accuracy, ref_accuracy = float((pred == y).float().mean()), float((ref_pred == y).float().mean())
        return {**common, "perplexity": perplexity, "reference_perplexity": reference_perplexity,
                "accuracy": accuracy, "reference_accuracy": ref_accuracy, "accuracy_delta": accuracy - ref_accuracy,
                "agreement_with_reference": agreement,
                "accuracy_metric": "next-token top-1 accuracy; agreement = top-1 next-token agreement",
                **self._verdict(reference_perplexity / perplexity,
                                "held-out perplexity: reference perplexity / perplexity")}

    def fine_tune(self, model: nn.Module) -> nn.Module:
        """A causal LM's short recovery after a structural cut: AdamW on the training windows in order (a
        classifier or an encoder has no labels here and is left as cut)."""
        if self.task != "causal-lm" or not self.fine_tune_steps:
            return model
        device = next(model.parameters()).device
        x = self._windows(held_out=False).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=0.0)
        model.train()
        for step in range(self.fine_tune_steps):
            rows = torch.arange(step * self.fine_tune_batch, (step + 1) * self.fine_tune_batch) % x.shape[0]
            window = x[rows.to(device)]
            logits = model(window[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return model.eval()

    def prunable(self, model: nn.Module) -> list[Prunable]:
        """The MLP hidden units of every block whose MLP is a pair (or a gated triple) of Linears under the
        usual names: gate/up/down (Llama, Mistral, Qwen2, ...), fc1/fc2 (OPT, Phi, ...), dense_h_to_4h/
        dense_4h_to_h (GPT-NeoX). Others (GPT-2's Conv1D, BERT's split modules) have none: structured skips."""
        pairs = []
        for module in model.modules():
            named = {name: getattr(module, name, None) for name in
                     ("gate_proj", "up_proj", "down_proj", "fc1", "fc2", "dense_h_to_4h", "dense_4h_to_h")}
            linear = {k for k, v in named.items() if isinstance(v, nn.Linear)}
            if {"gate_proj", "up_proj", "down_proj"} <= linear:
                pairs.append(Prunable(named["up_proj"], named["down_proj"], also=(named["gate_proj"],)))
            elif {"up_proj", "down_proj"} <= linear:
                pairs.append(Prunable(named["up_proj"], named["down_proj"]))
            elif {"fc1", "fc2"} <= linear:
                pairs.append(Prunable(named["fc1"], named["fc2"]))
            elif {"dense_h_to_4h", "dense_4h_to_h"} <= linear:
                pairs.append(Prunable(named["dense_h_to_4h"], named["dense_4h_to_h"]))
        return pairs

    def identity(self) -> dict[str, Any]:
        import transformers

        config = self.config
        parameters, dtypes = checkpoint_tensors(self.path)
        text = corpus(self.eval_text)
        return {"model_source": self.source, "model_path": self.path,
                "model_architecture": (getattr(config, "architectures", None) or [config.model_type])[0],
                "model_type": config.model_type, "model_task": self.task,
                "model_config_sha256": hashlib.sha256((Path(self.path) / "config.json").read_bytes()).hexdigest(),
                "model_parameters": parameters, "model_checkpoint_dtype": ",".join(dtypes),
                "model_reference_dtype": "float32", "transformers_version": transformers.__version__,
                "eval_text_source": text.source, "eval_text_sha256": text.sha256, "eval_seq_tokens": self._seq()}


def hf_workload(spec: ModelSpec, eval_text: str | None = None,
                quality_target: float = DEFAULT_QUALITY_TARGET) -> HFModel:
    return HFModel(spec.target, spec.text, eval_text, float(quality_target))
