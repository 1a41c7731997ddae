"""The common case of a `py:` model as a Workload: a trained module and real inputs, optionally labels or a
quality function, so that a user's factory need not implement the whole interface (examples/my_model.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench_lib.workloads.base import Prunable, Workload, relative_error

__all__ = ["ModuleWorkload", "sequential_pairs"]

_PARAMETER_FREE = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity)


def sequential_pairs(model: nn.Module) -> list[Prunable]:
    """Linear -> (activations, dropout) -> Linear inside any nn.Sequential: the first one's output units can go."""
    pairs = []
    for seq in (m for m in model.modules() if isinstance(m, nn.Sequential)):
        last: nn.Linear | None = None
        for child in seq:
            if isinstance(child, nn.Linear):
                if last is not None and last.out_features == child.in_features:
                    pairs.append(Prunable(last, child))
                last = child
            elif not isinstance(child, _PARAMETER_FREE):
                last = None
    return pairs


@dataclass(frozen=True, eq=False)
class ModuleWorkload(Workload):
    """A trained fp32 module and its real data.

    `eval_inputs` are held-out rows whose outputs are judged against the reference's: with `labels`, top-1
    accuracy (the verdict: the served model keeps `quality_target` of the reference's accuracy), else top-1
    agreement with the reference; a `quality(out, ref)` function replaces both. `train_inputs` calibrate
    static quantization (default: the eval rows). Structured pruning cuts the pairs `prunable` names (default:
    consecutive Linears of an nn.Sequential) and does not fine-tune afterwards.
    """

    model: nn.Module
    eval_data: torch.Tensor
    train_data: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    quality_fn: Callable[[torch.Tensor, torch.Tensor], dict[str, Any]] | None = None
    prunable_fn: Callable[[nn.Module], list[Prunable]] = sequential_pairs
    quality_target: float = 0.99

    def reference(self) -> nn.Module:
        return copy.deepcopy(self.model).float().cpu().eval()

    def example_input(self, batch: int) -> torch.Tensor:
        x = self.eval_data
        return x.repeat(-(-batch // x.shape[0]), *[1] * (x.dim() - 1))[:batch].contiguous()

    def eval_inputs(self) -> torch.Tensor:
        return self.eval_data

    def train_inputs(self) -> torch.Tensor:
        return self.eval_data if self.train_data is None else self.train_data

    def quality(self, out: torch.Tensor, ref: torch.Tensor) -> dict[str, Any]:
        if self.quality_fn is not None:
            return self.quality_fn(out, ref)
        pred, ref_pred = out.argmax(-1), ref.argmax(-1)
        agreement = float((pred == ref_pred).float().mean())
        metrics: dict[str, Any] = {"output_rel_error": relative_error(out, ref), "agreement_with_reference": agreement}
        if self.labels is None:
            kept, what = agreement, "top-1 agreement with the reference (no labels)"
        else:
            accuracy = float((pred == self.labels).float().mean())
            ref_accuracy = float((ref_pred == self.labels).float().mean())
            metrics.update(accuracy=accuracy, reference_accuracy=ref_accuracy, accuracy_delta=accuracy - ref_accuracy,
                           accuracy_metric="top-1 accuracy on the held-out labels")
            kept, what = accuracy / max(ref_accuracy, 1e-12), "top-1 accuracy: accuracy / reference accuracy"
        return {**metrics, "quality_metric": what, "quality_kept": kept, "quality_target": self.quality_target,
                "quality_verdict": "pass" if kept >= self.quality_target else "fail"}

    def fine_tune(self, model: nn.Module) -> nn.Module:
        return model

    def prunable(self, model: nn.Module) -> list[Prunable]:
        return self.prunable_fn(model)
