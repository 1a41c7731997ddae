"""scikit-learn's handwritten digits (1797 8x8 images, shipped inside the package) and classifiers of them.

Real data with no download: the accuracy cost of a compression technique is measured on
held-out digits against the uncompressed model, trained here deterministically and cached.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from bench_lib.workloads.base import Prunable, Workload, relative_error
from bench_lib.workloads.cache import cached_state_dict

__all__ = ["DigitsSplit", "digits_split", "DigitsClassifier", "DigitsMLP", "DigitsCNN"]


@dataclass(frozen=True)
class DigitsSplit:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _split_from_sklearn() -> dict[str, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x / 16.0, y, test_size=0.2, stratify=y, random_state=0)
    return {"x_train": torch.tensor(xtr, dtype=torch.float32), "y_train": torch.tensor(ytr),
            "x_test": torch.tensor(xte, dtype=torch.float32), "y_test": torch.tensor(yte)}


@lru_cache(maxsize=1)
def digits_split() -> DigitsSplit:
    """Stratified 80/20 split, fixed seed, pixels scaled to [0, 1]; cached (importing sklearn costs 2 s)."""
    t = cached_state_dict({"name": "digits_split", "test_size": 0.2, "seed": 0}, _split_from_sklearn)
    return DigitsSplit(t["x_train"], t["y_train"].long(), t["x_test"], t["y_test"].long())


def train_classifier(model: nn.Module, data: DigitsSplit, epochs: int, seed: int, lr: float = 1e-3,
                     batch: int = 32) -> nn.Module:
    """Adam with a seeded shuffle: the same weights on every run of the same torch, on the model's device."""
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = x_train.shape[0]
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).to(device)
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@dataclass(frozen=True)
class DigitsClassifier(Workload):
    """A classifier of the 8x8 digits (flattened to 64 pixels); subclasses give the architecture."""

    epochs: int = 30
    seed: int = 0
    fine_tune_epochs: int = 5

    @property
    @abstractmethod
    def cache_name(self) -> str:
        """Names the trained weights in the cache: changes with anything that changes them."""

    @abstractmethod
    def architecture(self) -> nn.Module: ...

    def reference(self) -> nn.Module:
        data = digits_split()
        key = {"name": self.cache_name, "epochs": self.epochs, "seed": self.seed}
        state = cached_state_dict(key, lambda: train_classifier(self.architecture(), data, self.epochs,
                                                                self.seed).state_dict())
        model = self.architecture()
        model.load_state_dict(state)
        return model.eval()

    def example_input(self, batch: int) -> torch.Tensor:
        """Real test images, tiled up to the batch size: realistic values, fixed content."""
        x = digits_split().x_test
        reps = -(-batch // x.shape[0])
        return x.repeat(reps, 1)[:batch].contiguous()

    def eval_inputs(self) -> torch.Tensor:
        return digits_split().x_test

    def train_inputs(self) -> torch.Tensor:
        return digits_split().x_train

    def quality(self, out: torch.Tensor, ref: torch.Tensor) -> dict[str, Any]:
        y = digits_split().y_test
        pred, ref_pred = out.argmax(dim=1), ref.argmax(dim=1)
        accuracy = float((pred == y).float().mean())
        ref_accuracy = float((ref_pred == y).float().mean())
        return {"accuracy": accuracy, "reference_accuracy": ref_accuracy, "accuracy_delta": accuracy - ref_accuracy,
                "agreement_with_reference": float((pred == ref_pred).float().mean()),
                "output_rel_error": relative_error(out, ref), "eval_samples": int(y.numel())}

    def fine_tune(self, model: nn.Module) -> nn.Module:
        """Adam at the reference's learning rate for a few epochs (5 recover structured 50%)."""
        return train_classifier(model, digits_split(), self.fine_tune_epochs, self.seed + 1)


@dataclass(frozen=True)
class DigitsMLP(DigitsClassifier):
    """64 -> hidden -> hidden -> 10 with ReLU; `hidden` sets how linear-heavy it is."""

    hidden: int = 256

    @property
    def cache_name(self) -> str:
        return f"digits_mlp_h{self.hidden}"

    def architecture(self) -> nn.Module:
        torch.manual_seed(self.seed)
        h = self.hidden
        return nn.Sequential(nn.Linear(64, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 10))

    def prunable(self, model: nn.Module) -> list[Prunable]:
        return [Prunable(model[0], model[2]), Prunable(model[2], model[4])]


@dataclass(frozen=True)
class DigitsCNN(DigitsClassifier):
    """Two 3x3 convolutions on the 8x8 image, a 2x2 max-pool, then two linear layers."""

    channels: int = 16
    hidden: int = 128

    @property
    def cache_name(self) -> str:
        return f"digits_cnn_c{self.channels}_h{self.hidden}"

    def architecture(self) -> nn.Module:
        torch.manual_seed(self.seed)
        c, h = self.channels, self.hidden
        return nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(2 * c * 16, h), nn.ReLU(), nn.Linear(h, 10),
        )

    def prunable(self, model: nn.Module) -> list[Prunable]:
        # After the 2x2 pool each channel of the second convolution is 4x4 = 16 flattened inputs.
        return [Prunable(model[1], model[3]), Prunable(model[3], model[7], group=16), Prunable(model[7], model[9])]
