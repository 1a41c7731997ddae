"""How many bytes a decode step must read, and how fast the device can read them.

At batch 1 a decode step reads every weight once (and the whole static KV cache), so its time is
bounded below by bytes / peak memory bandwidth: the fraction of that peak a step achieves says how
much any technique can still buy, and whether a technique's speedup is the bytes it saves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bench_lib.measure.datasheet import data_sheet
from bench_lib.measure.flops import count_call, not_counted, work
from bench_lib.suites.served.size import tensor_bytes
from bench_lib.workloads.llama import Llama

__all__ = ["peak_bandwidth", "step_bytes", "phase_work"]


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


def phase_work(calls: dict[str, Callable[[], object]], model: nn.Module, dtype: str, weight_bytes: int,
               kv_bytes: int) -> dict:
    """`work_<phase>` of each phase's call (`measure.flops`), run eagerly: its FLOPs counted, and the bytes it
    moves: the weights a call reads, the whole static KV cache (each call's attention reads every position,
    masked) and, for the prefill, the activations of its layers."""
    out = {}
    for phase, call in calls.items():
        try:
            with torch.no_grad():
                count = count_call(call, model)
        except Exception as e:  # noqa: BLE001 - a kernel the counter breaks on: the case keeps its other figures
            out[f"work_{phase}"] = not_counted(e, dtype)
            continue
        out[f"work_{phase}"] = work(count, dtype, {
            "weights": weight_bytes, "kv_cache": kv_bytes,
            "activations": count.activation_bytes if phase == "prefill" else 0})
    return out
