"""How big a model is: on disk (serialized state_dict) and in memory (its tensors' storage)."""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import nn

__all__ = ["model_size", "layer_kinds", "tensor_bytes"]


def tensor_bytes(obj: Any) -> int:
    """Bytes of the data a tensor holds: packed, sparse and subclass (torchao) tensors included."""
    if isinstance(obj, (tuple, list)):
        return sum(tensor_bytes(o) for o in obj)
    if not isinstance(obj, torch.Tensor):
        return 0
    if type(obj) is not torch.Tensor and hasattr(obj, "__tensor_flatten__"):
        names, _ = obj.__tensor_flatten__()
        return sum(tensor_bytes(getattr(obj, n)) for n in names)
    if obj.layout == torch.sparse_csr:
        return tensor_bytes([obj.crow_indices(), obj.col_indices(), obj.values()])
    if obj.layout == torch.sparse_coo:
        obj = obj.coalesce()
        return tensor_bytes([obj.indices(), obj.values()])
    return obj.element_size() * obj.numel()


def _nonzero_fraction(model: nn.Module) -> float | None:
    # Plain dense weights only: quantized tensor subclasses do not implement count_nonzero.
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))
               and type(m.weight.data) is torch.Tensor and m.weight.layout == torch.strided]
    total = sum(w.numel() for w in weights)
    return sum(int(torch.count_nonzero(w)) for w in weights) / total if total else None


def model_size(model: nn.Module) -> dict[str, Any]:
    """Serialized bytes of the state_dict, in-memory bytes of its tensors, nonzero weight fraction."""
    state = model.state_dict()
    buf = io.BytesIO()
    try:
        torch.save(state, buf)
        serialized: dict[str, Any] = {"serialized_bytes": buf.getbuffer().nbytes}
    except Exception as e:  # noqa: BLE001 - some tensor subclasses cannot be saved: a finding, not a crash
        serialized = {"serialized_bytes": None, "serialize_error": f"{type(e).__name__}: {e}"[:300]}
    return {
        **serialized,
        "in_memory_bytes": sum(tensor_bytes(v) for v in state.values()),
        "nonzero_weight_fraction": _nonzero_fraction(model),
    }


def layer_kinds(model: nn.Module) -> dict[str, int]:
    """How many layers (modules with a weight) of each kind, weight type and dtype the served model holds.

    E.g. `Linear[Float8Tensor:bfloat16]: 6, Linear[Tensor:bfloat16]: 1`: shows which layers a
    technique converted and which it left alone (shapes its kernel refuses).
    """
    kinds: dict[str, int] = {}
    for m in model.modules():
        if hasattr(m, "prefill_path"):  # a layer with a kernel per phase says which serves prefill
            kind = f"{m._get_name()}[prefill: {m.prefill_path}]"
            kinds[kind] = kinds.get(kind, 0) + 1
            continue
        weight = getattr(m, "weight", None)
        if callable(weight) and not isinstance(weight, torch.Tensor):
            weight = weight()  # torch.ao's packed quantized modules expose weight()
        if not isinstance(weight, torch.Tensor):
            continue
        layout = "" if weight.layout == torch.strided else f",{str(weight.layout).removeprefix('torch.')}"
        kind = f"{m._get_name()}[{type(weight.data).__name__}:{str(weight.dtype).removeprefix('torch.')}{layout}]"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds
