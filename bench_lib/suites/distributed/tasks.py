"""Training tasks for the data-parallel suite: a model, per-rank batches of real data, a held-out eval.

Both reuse bench_lib/workloads: the byte-level GPT and the standard library's sources it reads
(workloads/text.py), and scikit-learn's digits with the digits MLP (workloads/digits.py). Each rank
draws its own batches (seeded by rank), so data-parallel ranks see different data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from bench_lib.platform import DeviceKind, device_kind

__all__ = ["TrainTask", "GPTBytes", "DigitsTask", "TASKS", "task_for", "ConvergencePlan", "CONVERGENCE",
           "convergence_budget_s"]


class TrainTask(ABC):
    name: str
    batch: int  # samples per rank per step
    tokens_per_sample: int = 0  # 0: not a language model
    lr: float = 1e-3
    accuracy_metric: str = "top-1 class"  # what `evaluate`'s eval_accuracy counts

    def identity(self) -> dict[str, Any]:
        """What identifies the model and data in the results beyond the case (a user's model: `user_task.py`)."""
        return {}

    @abstractmethod
    def model(self, seed: int = 0) -> nn.Module:
        """The same initial weights on every rank (seeded: each seed its own weights)."""

    @abstractmethod
    def sample(self, gen: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One per-rank batch (inputs, targets)."""

    def batches(self, gen: torch.Generator, n: int, device: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The next n batches as `sample` draws them, copied to the device in one go ahead of the steps
        that read them, so that no step waits on the host's sampling or a copy."""
        drawn = [self.sample(gen, "cpu") for _ in range(n)]
        xs, ys = (torch.stack(part).to(device) for part in zip(*drawn, strict=True))
        return list(zip(xs.unbind(), ys.unbind(), strict=True))

    @abstractmethod
    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def eval_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Held-out data, never trained on."""

    def evaluate(self, model: nn.Module, device: str, autocast: bool) -> dict[str, float]:
        """Mean held-out loss and top-1 accuracy (next-byte accuracy for the LM)."""
        total, correct, count = 0.0, 0, 0
        model.eval()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            for x, y in self.eval_batches():
                x, y = x.to(device), y.to(device)
                logits = model(x).float()
                total += float(self.loss(logits, y)) * y.numel()
                correct += int((logits.argmax(-1) == y).sum())
                count += y.numel()
        model.train()
        return {"eval_loss": total / count, "eval_accuracy": correct / count}


@dataclass
class GPTBytes(TrainTask):
    """Next-byte prediction on the standard library's sources."""

    d: int = 128
    layers: int = 2
    heads: int = 4
    seq: int = 64
    batch: int = 8
    lr: float = 3e-3
    eval_seqs: int = 64
    name: str = "gpt_bytes"
    accuracy_metric: str = "next-byte top-1"

    @property
    def tokens_per_sample(self) -> int:
        return self.seq

    def model(self, seed: int = 0) -> nn.Module:
        from bench_lib.workloads.text import GPT

        torch.manual_seed(seed)
        return GPT(self.d, self.layers, self.heads, self.seq)

    def sample(self, gen: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        from bench_lib.workloads.text import stdlib_bytes

        train = stdlib_bytes()[0]
        starts = torch.randint(0, len(train) - self.seq - 1, (self.batch,), generator=gen)
        w = torch.stack([train[s:s + self.seq + 1] for s in starts.tolist()]).to(device, non_blocking=True)
        return w[:, :-1], w[:, 1:]

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))

    def eval_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        from bench_lib.workloads.text import stdlib_bytes

        held = stdlib_bytes()[1]
        stride = (len(held) - self.seq - 1) // self.eval_seqs
        w = torch.stack([held[i * stride:i * stride + self.seq + 1] for i in range(self.eval_seqs)])
        return [(w[i:i + 16, :-1], w[i:i + 16, 1:]) for i in range(0, len(w), 16)]


@dataclass
class DigitsTask(TrainTask):
    """The digits MLP of the inference suite, trained from scratch on 8x8 handwritten digits."""

    hidden: int = 256
    batch: int = 32
    lr: float = 1e-3
    name: str = "digits_mlp"

    def model(self, seed: int = 0) -> nn.Module:
        from bench_lib.workloads.digits import DigitsMLP

        return DigitsMLP(hidden=self.hidden, seed=seed).architecture()

    def sample(self, gen: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        from bench_lib.workloads.digits import digits_split

        data = digits_split()
        idx = torch.randint(0, data.x_train.shape[0], (self.batch,), generator=gen)
        return data.x_train[idx].to(device), data.y_train[idx].to(device)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), y)

    def eval_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        from bench_lib.workloads.digits import digits_split

        data = digits_split()
        return [(data.x_test, data.y_test)]


# (profile, device kind) -> task name -> (task, steps). Quick: seconds per strategy on 2 CPU cores. Full on
# CUDA: a ~114M-parameter GPT (16 layers, d=768, 512-byte context; bf16 autocast, fused AdamW) for data-center
# GPUs; full on CPU: a GPT that one core per rank trains in minutes.
TASKS: dict[tuple[str, DeviceKind], dict[str, tuple[TrainTask, int]]] = {
    ("quick", "cpu"): {"gpt_bytes": (GPTBytes(d=64), 40), "digits_mlp": (DigitsTask(), 120)},
    ("quick", "cuda"): {"gpt_bytes": (GPTBytes(d=64), 40), "digits_mlp": (DigitsTask(), 120)},
    ("full", "cpu"): {"gpt_bytes": (GPTBytes(d=128, layers=4, heads=4, seq=128), 200),
                      "digits_mlp": (DigitsTask(), 1000)},
    ("full", "cuda"): {"gpt_bytes": (GPTBytes(d=768, layers=16, heads=12, seq=512, batch=8, lr=6e-4), 300),
                       "digits_mlp": (DigitsTask(), 1000)},
}


def task_for(profile: str, device: str, workload: str) -> tuple[TrainTask, int]:
    return TASKS[(profile, device_kind(device))][workload]


@dataclass(frozen=True)
class ConvergencePlan:
    """A convergence case's runs: each strategy trains `seeds` times for `budget_s` of wall time, its held-out
    loss evaluated at time 0 and at `checkpoints` equal fractions of the budget."""

    budget_s: float
    checkpoints: int = 8
    seeds: int = 3

    def __post_init__(self) -> None:
        if self.budget_s <= 0 or self.checkpoints < 1 or self.seeds < 1:
            raise ValueError(f"need budget_s > 0, checkpoints >= 1, seeds >= 1, got {self}")

    def checkpoint_times(self) -> list[float]:
        """Time 0, then the budget cut into `checkpoints` equal parts: the same for every strategy and seed."""
        return [self.budget_s * k / self.checkpoints for k in range(self.checkpoints + 1)]


# (profile, device kind) -> task name -> plan (the task is TASKS's). Quick: the digits MLP only, 1 s a run,
# so that 6 strategies x 3 seeds add about 20 s to the quick suite on 2 CPU cores (about 1,000 steps a run
# there). Full: long enough for the held-out loss to flatten: on CUDA 90 s a run of the ~114M GPT (some
# thousands of sync steps on data-center GPUs), on the CPU a minute of the small GPT.
CONVERGENCE: dict[tuple[str, DeviceKind], dict[str, ConvergencePlan]] = {
    ("quick", "cpu"): {"digits_mlp": ConvergencePlan(1.0, checkpoints=5)},
    ("quick", "cuda"): {"digits_mlp": ConvergencePlan(1.0, checkpoints=5)},
    ("full", "cpu"): {"gpt_bytes": ConvergencePlan(60.0), "digits_mlp": ConvergencePlan(8.0)},
    ("full", "cuda"): {"gpt_bytes": ConvergencePlan(90.0, checkpoints=10), "digits_mlp": ConvergencePlan(5.0)},
}
# Overrides every plan's budget (seconds a run): a GPU session with little time left, or a longer CPU study.
BUDGET_ENV = "EFFBENCH_CONVERGENCE_BUDGET_S"


def convergence_budget_s(plan: ConvergencePlan) -> float:
    import os

    return float(os.environ.get(BUDGET_ENV) or plan.budget_s)
