"""The interface every workload offers the inference suite.

A workload is a model architecture, its trained (or, for speed shapes, random) reference
weights, the real data it runs on, and how a served model's outputs are judged against
the reference's. Techniques and the suite see only this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Prunable", "Workload", "feed", "relative_error"]


@dataclass(frozen=True)
class Prunable:
    """A pair of layers whose hidden units can be removed together.

    `producer` (Linear or Conv2d) loses output units; `consumer` loses the matching inputs,
    `group` consecutive inputs per unit (the spatial positions of a channel after a flatten);
    a producer of `halves` > 1 stacks that many projections of the same units (a gated MLP's fused
    gate and up projections): unit i owns row i of every half, and units are ranked by the L2 norm
    of their rows in all halves together. `also` are further producers of the same units kept as separate
    layers (a gated MLP's gate projection beside its up projection): each loses the same rows, and their
    rows count in the ranking too.
    """

    producer: nn.Module
    consumer: nn.Module
    group: int = 1
    halves: int = 1
    also: tuple[nn.Module, ...] = ()


def feed(x: torch.Tensor, device: str, dtype: torch.dtype) -> torch.Tensor:
    """Move an input to the served model: floating inputs take its dtype, token ids stay integers."""
    return x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| over all outputs, in float32."""
    out, ref = out.float(), ref.float()
    return float(torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref).clamp_min(1e-30))


class Workload(ABC):
    """Reference model + data + quality metrics; one instance per registry entry."""

    @property
    def trained_weights(self) -> bool:
        """False for speed shapes: random weights, whose quality figures only measure change."""
        return True

    def identity(self) -> dict[str, Any]:
        """What identifies the model in its results beyond the case (a user's checkpoint: architecture, config
        hash, parameter count, dtype, the path given, library versions); built-in workloads need nothing."""
        return {}

    @abstractmethod
    def reference(self) -> nn.Module:
        """The uncompressed fp32 model on the CPU, in eval mode (trained weights cached on disk)."""

    @abstractmethod
    def example_input(self, batch: int) -> torch.Tensor:
        """Real data of `batch` rows (images or token sequences): what the timed call runs on."""

    @abstractmethod
    def eval_inputs(self) -> torch.Tensor:
        """Held-out real inputs whose outputs are judged by `quality`."""

    @abstractmethod
    def train_inputs(self) -> torch.Tensor:
        """Training inputs: calibration data for static quantization."""

    @abstractmethod
    def quality(self, out: torch.Tensor, ref: torch.Tensor) -> dict[str, Any]:
        """Metrics of the served model's eval outputs against the reference's (and the labels)."""

    @abstractmethod
    def fine_tune(self, model: nn.Module) -> nn.Module:
        """A short recovery training on the training data after a structural change (no-op if random)."""

    @abstractmethod
    def prunable(self, model: nn.Module) -> list[Prunable]:
        """The layer pairs whose hidden units structured pruning may remove."""

    def outputs(self, model: nn.Module, inputs: torch.Tensor, batch: int, device: str,
                dtype: torch.dtype) -> torch.Tensor:
        """Run `model` over `inputs` in chunks of exactly `batch` rows (the last one padded).

        The served model only ever sees the shape it was timed at, so static-shape exports
        and compiled graphs are judged without a recompile or a shape-guard failure.
        """
        n = inputs.shape[0]
        chunks = []
        with torch.no_grad():
            for start in range(0, n, batch):
                x = inputs[start:start + batch]
                if x.shape[0] < batch:
                    x = torch.cat([x, inputs[: batch - x.shape[0]]])
                chunks.append(model(feed(x, device, dtype)).float().cpu())
        return torch.cat(chunks)[:n]

    def calibration_batches(self, batch: int, rows: int) -> list[torch.Tensor]:
        """Training inputs in chunks of exactly `batch` rows, at least `rows` rows in all."""
        x = self.train_inputs()
        x = x.repeat(-(-max(rows, batch) // x.shape[0]), *[1] * (x.dim() - 1))
        return [x[start:start + batch] for start in range(0, max(rows, batch) - batch + 1, batch)]
