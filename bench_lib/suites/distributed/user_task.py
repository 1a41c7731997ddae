"""A user's causal LM (`--model hf:DIR` or `py:package.module:factory`) as a training task of the training suite.

Every rank process builds the task from the case alone: the case carries the spec as given (`params["model"]`)
and the run's eval text (`params["eval_text"]`), the launcher hands the case's params to the ranks, and each rank
loads the model itself (`workloads.user.workload_of`). The model trains as it is, from the checkpoint's (or the
factory's) weights: every rank starts from the same weights and every seed too (a seed changes the data order).

The data is the eval text the inference suite judges the model on (Python's `pydoc_data` topics, or the user's
`--eval-text`), read by the model's own tokenizer: a checkpoint trains on windows drawn at random from the first
90% of the text (each rank its own, seeded by rank as the built-in tasks are) and is evaluated on fixed windows
of the held-out last 10%, never trained on. The loss is next-token cross-entropy on the model's logits.

A `py:` factory's Workload trains when it is a causal LM over token ids: `train_inputs()` and `eval_inputs()`
give int64 rows of token ids (rows x tokens, at least 2 tokens), and `reference()` maps a (batch, tokens) tensor
of ids to (batch, tokens, vocabulary) logits whose vocabulary covers the ids. It trains on random rows of
`train_inputs()` and is evaluated on `eval_inputs()`, each row's tokens predicting the next. Any other Workload
(an image classifier, an MLP over features) skips its cases with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from bench_lib.platform import device_kind
from bench_lib.results.case import CaseSpec, SkipCase
from bench_lib.suites.distributed.tasks import TrainTask, task_for
from bench_lib.workloads.base import Workload

__all__ = ["CausalLMTask", "USER_PLAN", "task_of_case", "causal_lm_task"]

# profile -> (steps, sequences per rank per step). Quick: a few steps, for a CPU run of a small checkpoint;
# full: enough steps for the loss curves and the time to sync's loss to say something.
USER_PLAN = {"quick": (16, 4), "full": (200, 8)}
# AdamW's learning rate: transformers' `TrainingArguments` default, the usual fine-tuning rate of a trained model.
USER_LR = 5e-5
EVAL_SEQS = 16  # held-out windows of a checkpoint's text
EVAL_BATCH = 8


@dataclass
class CausalLMTask(TrainTask):
    """Next-token prediction for a user's causal LM. `train` is a 1-D stream of token ids (windows of seq + 1
    drawn at random starts) or rows of ids (rows drawn at random); `held` holds the held-out rows."""

    name: str
    workload: Workload
    train: torch.Tensor
    held: torch.Tensor
    batch: int
    lr: float = USER_LR
    accuracy_metric: str = "next-token top-1"
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def seq(self) -> int:
        return self.held.shape[1] - 1

    @property
    def tokens_per_sample(self) -> int:
        return self.seq

    def model(self, seed: int = 0) -> nn.Module:
        """The user's model as given, in training mode (a fresh copy each call): the same on every rank and seed."""
        return self.workload.reference().train()

    def sample(self, gen: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        if self.train.dim() == 1:
            starts = torch.randint(0, len(self.train) - self.seq, (self.batch,), generator=gen)
            w = torch.stack([self.train[s:s + self.seq + 1] for s in starts.tolist()])
        else:
            w = self.train[torch.randint(0, self.train.shape[0], (self.batch,), generator=gen)]
        w = w.to(device, non_blocking=True)
        return w[:, :-1], w[:, 1:]

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))

    def eval_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(w[:, :-1], w[:, 1:]) for w in self.held.split(EVAL_BATCH)]

    def identity(self) -> dict[str, Any]:
        return {**self.workload.identity(), **self.facts}


def _checkpoint_task(workload: Any, name: str, batch: int) -> CausalLMTask:
    """A transformers checkpoint (`workloads.user.hf.HFModel`): its text's token stream, windows of the
    inference suite's length (at most the model's context)."""
    from bench_lib.workloads.user.corpus import HELD_OUT_FRACTION, token_windows

    if workload.task != "causal-lm":
        arch = (getattr(workload.config, "architectures", None) or [workload.config.model_type])[0]
        raise SkipCase(f"{arch} is a {workload.task} model: the training suite trains causal LMs "
                       "(next-token loss on the text)")
    train_ids, held_ids = workload.token_ids()
    seq = workload.eval_inputs().shape[1]
    train = torch.tensor(train_ids, dtype=torch.long)
    if len(train) < seq + 1:
        raise ValueError(f"the text's first {1 - HELD_OUT_FRACTION:.0%} gives {len(train)} tokens; "
                         f"a training window needs {seq + 1}")
    held = token_windows(held_ids, EVAL_SEQS, seq)
    return CausalLMTask(name, workload, train, held, batch, facts={
        "train_text": f"first {1 - HELD_OUT_FRACTION:.0%} of the eval text, windows at random starts; held-out "
                      f"loss on {EVAL_SEQS} windows of its last {HELD_OUT_FRACTION:.0%}",
        "train_tokens": len(train), "train_seq_tokens": seq})


def _rows_task(workload: Workload, name: str, source: str, batch: int) -> CausalLMTask:
    """A factory's Workload that is a causal LM over rows of token ids (the module docstring says what that
    needs); SkipCase naming what is not so."""
    train, held = workload.train_inputs(), workload.eval_inputs()
    for what, rows in (("train_inputs()", train), ("eval_inputs()", held)):
        if rows.dtype not in (torch.int64, torch.int32) or rows.dim() != 2 or rows.shape[1] < 2:
            raise SkipCase(f"{source}: the training suite trains a causal LM over token ids, and {what} gives "
                           f"{rows.dtype} of shape {tuple(rows.shape)}, not int64 rows of at least 2 token ids")
    with torch.no_grad():
        out = workload.reference()(held[:1, :-1].long())
    vocab = out.shape[-1] if isinstance(out, torch.Tensor) and out.dim() == 3 else 0
    if vocab <= int(max(train.max(), held.max())) or out.shape[:2] != (1, held.shape[1] - 1):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SkipCase(f"{source}: the training suite trains a causal LM, and its model maps ids of shape "
                       f"(1, {held.shape[1] - 1}) to {shape}, not next-token logits (1, {held.shape[1] - 1}, "
                       "vocabulary) over the ids")
    return CausalLMTask(name, workload, train.long(), held.long(), batch, facts={
        "model_source": source, "train_text": "the factory's train_inputs() rows; held-out loss on its eval_inputs()",
        "train_tokens": int(train.numel()), "train_seq_tokens": held.shape[1] - 1})


def causal_lm_task(case: CaseSpec, profile: str) -> tuple[CausalLMTask, int]:
    """The case's user's model as a training task, and the profile's steps. Raises SkipCase for a model the suite
    cannot train, and whatever loading the model raises (a factory's own error, an unreadable checkpoint)."""
    from bench_lib.workloads.user import model_spec, workload_of
    from bench_lib.workloads.user.hf import HFModel

    spec = model_spec(case)
    assert spec is not None, f"{case.id} is not a user's model's case"
    steps, batch = USER_PLAN[profile]
    workload = workload_of(case)
    if isinstance(workload, HFModel):
        return _checkpoint_task(workload, spec.name, batch), steps
    return _rows_task(workload, spec.name, spec.text, batch), steps


@lru_cache(maxsize=8)
def _cached(case: CaseSpec, profile: str) -> tuple[CausalLMTask, int]:
    return causal_lm_task(case, profile)


def task_of_case(profile: str, device: str, case: CaseSpec) -> tuple[TrainTask, int]:
    """The training task a case trains and the profile's steps: a built-in task by workload name, else the
    user's model the case names (built once per process for the same model, text and profile)."""
    if case.param("model") is None:
        return task_for(profile, device, case.workload)
    model_only = CaseSpec.make(case.suite, case.workload, "", device_kind(device),
                               **{k: v for k, v in case.params if k in ("model", "eval_text")})
    return _cached(model_only, profile)
