"""What this host can run: read once in the parent, used to skip cases with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

__all__ = ["Platform", "DeviceKind", "detect", "device_kind"]

DeviceKind = Literal["cpu", "cuda"]


def device_kind(device: str) -> DeviceKind:
    """cuda for any CUDA device ("cuda", "cuda:1"), else cpu: the key of what differs by device
    (a suite's case matrix, its baseline)."""
    return "cuda" if device.startswith("cuda") else "cpu"


@dataclass(frozen=True)
class Platform:
    cuda_devices: int
    cuda_capability: tuple[int, int] | None
    gloo: bool
    nccl: bool

    def resolve_device(self, device: str) -> str:
        """`auto` is cuda where a GPU is visible, else cpu."""
        if device == "auto":
            return "cuda" if self.cuda_devices else "cpu"
        return device

    def device_skip_reason(self, device: str) -> str | None:
        if device.startswith("cuda") and not self.cuda_devices:
            return "no CUDA device visible on this machine"
        return None


@lru_cache(maxsize=1)
def detect() -> Platform:
    import torch
    import torch.distributed as dist

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cap = torch.cuda.get_device_capability(0) if n else None
    avail = dist.is_available()
    return Platform(n, cap, avail and dist.is_gloo_available(), avail and dist.is_nccl_available())
