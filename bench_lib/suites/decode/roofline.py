"""How many bytes a decode step must read, and how fast the device can read them.

At batch 1 a decode step reads every weight once (and the whole static KV cache), so its time is
bounded below by bytes / peak memory bandwidth: the fraction of that peak a step achieves says how
much any technique can still buy, and whether a technique's speedup is the bytes it saves.
"""

from __future__ import annotations

from bench_lib.measure.datasheet import data_sheet
from bench_lib.suites.served.size import tensor_bytes
from bench_lib.workloads.llama import Llama

__all__ = ["peak_bandwidth", "step_bytes"]


def peak_bandwidth(device_name: str | None) -> tuple[float | None, str]:
    """(bytes/s, source) of the device's memory from its data sheet (`measure.datasheet`), or (None, why not)."""
    sheet = data_sheet(device_name)
    if sheet is None:
        return None, f"no data-sheet bandwidth known for {device_name or 'this CPU'}"
    return sheet.bandwidth_bytes_per_s, sheet.source


def step_bytes(model: Llama) -> dict[str, int]:
    """Bytes one decode step reads: every weight but the embedding table (a step gathers a row per
    token from it; a tied output head reads it whole and is counted as the head), and the whole
    static KV cache of every layer (attention reads all its positions, masked)."""
    state = model.state_dict()
    weights = sum(tensor_bytes(v) for k, v in state.items() if k != "tok_embeddings.weight")
    kv = sum(tensor_bytes([b.attention.cache.k, b.attention.cache.v]) for b in model.layers
             if b.attention.cache is not None)
    return {"weight_bytes_per_step": weights, "kv_cache_bytes_per_step": kv, "bytes_per_step": weights + kv}
