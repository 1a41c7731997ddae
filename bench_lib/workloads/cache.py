"""Trained reference weights, cached on disk so that each case process need not retrain.

Weights are saved as a plain state_dict and loaded with `weights_only=True`: never
unpickled objects. The key covers everything that changes the weights.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from bench_lib.atomic import atomic_write_bytes

__all__ = ["cache_dir", "cached_state_dict"]


def cache_dir() -> Path:
    return Path(os.environ.get("EFFBENCH_CACHE", Path.home() / ".cache" / "effbench"))


def cached_state_dict(key: dict, train: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Load the state_dict for `key`, or train it, store it atomically, and return it."""
    full_key = {**key, "torch": torch.__version__.split("+")[0]}
    digest = hashlib.sha256(json.dumps(full_key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{key.get('name', 'model')}-{digest}.pt"
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a corrupt cache entry is retrained, not fatal
            path.unlink(missing_ok=True)
    state = train()
    buf = io.BytesIO()
    torch.save(state, buf)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass  # an unwritable cache costs time, not correctness
    return state
