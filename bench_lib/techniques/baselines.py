"""The variant each suite's cases are measured against, within the same run, per device kind."""

from __future__ import annotations

from bench_lib.platform import DeviceKind, device_kind

__all__ = ["SERVED_BASELINES", "BASELINES", "baseline_variant"]

#: Served models (inference, decode): the uncompressed model, eager, in the device's usual serving
#: dtype: fp32 on CPU, bf16 on GPU.
SERVED_BASELINES: dict[DeviceKind, str] = {"cpu": "fp32", "cuda": "bf16"}
BASELINES: dict[str, dict[DeviceKind, str]] = {"inference": SERVED_BASELINES, "decode": SERVED_BASELINES,
                                               "training": {"cpu": "sync", "cuda": "sync"}}


def baseline_variant(suite: str, device: str) -> str | None:
    """The variant a suite's cases are measured against on this device (None: no baseline)."""
    return BASELINES.get(suite, {}).get(device_kind(device))
