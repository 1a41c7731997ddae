"""How many bytes a decode step must read, and how fast the device can read them.

At batch 1 a decode step reads every weight once (and the whole static KV cache), so its time is
bounded below by bytes / peak memory bandwidth: the fraction of that peak a step achieves says how
much any technique can still buy, and whether a technique's speedup is the bytes it saves.
"""

from __future__ import annotations

from bench_lib.suites.served.size import tensor_bytes
from bench_lib.workloads.llama import Llama

__all__ = ["PEAK_BANDWIDTH", "peak_bandwidth", "step_bytes"]

# Vendor data sheets, bytes/s (HBM); matched as substrings of torch.cuda.get_device_name, first match wins.
PEAK_BANDWIDTH: tuple[tuple[str, float, str], ...] = (
    ("H200", 4.8e12, "NVIDIA H200 data sheet: 4.8 TB/s HBM3e"),
    ("H100 NVL", 3.9e12, "NVIDIA H100 NVL data sheet: 3.9 TB/s"),
    ("H100 PCIe", 2.0e12, "NVIDIA H100 PCIe data sheet: 2.0 TB/s"),
    ("H100", 3.35e12, "NVIDIA H100 SXM data sheet: 3.35 TB/s HBM3"),
    ("A100-SXM4-80GB", 2.039e12, "NVIDIA A100 80GB SXM data sheet: 2.039 TB/s"),
    ("A100-SXM4-40GB", 1.555e12, "NVIDIA A100 40GB data sheet: 1.555 TB/s"),
)


def peak_bandwidth(device_name: str | None) -> tuple[float | None, str]:
    """(bytes/s, source) of the device's memory, or (None, why not)."""
    for key, value, source in PEAK_BANDWIDTH:
        if device_name and key in device_name:
            return value, source
    return None, f"no data-sheet bandwidth known for {device_name or 'this CPU'}"


def step_bytes(model: Llama) -> dict[str, int]:
    """Bytes one decode step reads: every weight but the embedding table (a step gathers a row per
    token from it; a tied output head reads it whole and is counted as the head), and the whole
    static KV cache of every layer (attention reads all its positions, masked)."""
    state = model.state_dict()
    weights = sum(tensor_bytes(v) for k, v in state.items() if k != "tok_embeddings.weight")
    kv = sum(tensor_bytes([b.attention.cache.k, b.attention.cache.v]) for b in model.layers
             if b.attention.cache is not None)
    return {"weight_bytes_per_step": weights, "kv_cache_bytes_per_step": kv, "bytes_per_step": weights + kv}
