"""scikit-learn's handwritten digits (1797 8x8 images, shipped inside the package) and MLPs trained on them.

Real data with no download: the accuracy cost of a compression technique is measured on
held-out digits against the uncompressed model, trained here deterministically and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from bench_lib.workloads.cache import cached_state_dict

__all__ = ["DigitsSplit", "digits_split", "DigitsMLP"]


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
    """Adam with a seeded shuffle: the same weights on every run of the same torch."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = data.x_train.shape[0]
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@dataclass(frozen=True)
class DigitsMLP:
    """64 -> hidden -> hidden -> 10 with ReLU; `hidden` sets how linear-heavy it is."""

    hidden: int = 256
    epochs: int = 30
    seed: int = 0

    @property
    def name(self) -> str:
        return f"digits_mlp_h{self.hidden}"

    def architecture(self) -> nn.Module:
        torch.manual_seed(self.seed)
        h = self.hidden
        return nn.Sequential(nn.Linear(64, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 10))

    def trained(self) -> nn.Module:
        data = digits_split()
        key = {"name": self.name, "hidden": self.hidden, "epochs": self.epochs, "seed": self.seed}
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
