"""The work of one call: FLOPs counted by torch's own counter, and the bytes a call must move.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode` over one eager call. The counter sees the aten
ops it has formulas for (matmuls, convolutions, attention); a quantized or custom kernel it cannot see
(torch.ao's packed int8 linear, a tensor subclass's own op) counts nothing, so each weighted layer's
FLOPs are also derived from its shapes (2 x rows x in x out for a Linear, 2 x outputs x in/groups x kernel
for a convolution), and where the counter saw less inside a layer than its shapes imply, the shapes'
figure is taken and the count says so. Training's count covers forward and backward (the counter
sees the backward's ops, about twice the forward's).

Bytes: the weights as the technique stores them (packed, quantized: what a call must read), the KV cache
where a call reads it, and the activations entering and leaving each weighted layer (each written by one
kernel and read by the next when nothing fuses them): a lower bound of a call's traffic, not a trace.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["CallCount", "count_call", "weighted_layers", "work", "not_counted"]

COUNTER = "torch.utils.flop_counter.FlopCounterMode"


def _heads_of_query(query_shape: torch.Size, kv_shape: torch.Size) -> tuple[int, ...]:
    """A key's or value's shape with the query's heads: grouped-query attention reads each KV head for
    several query heads, and does the query's count of products."""
    return (kv_shape[0], query_shape[1], *kv_shape[2:])


def _sdpa_flops(query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size, *args: object,
                out_shape: object = None, **kwargs: object) -> int:
    return flop_counter.sdpa_flop_count(query_shape, _heads_of_query(query_shape, key_shape),
                                        _heads_of_query(query_shape, value_shape))


def _sdpa_backward_flops(grad_out_shape: torch.Size, query_shape: torch.Size, key_shape: torch.Size,
                         value_shape: torch.Size, *args: object, out_shape: object = None, **kwargs: object) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, _heads_of_query(query_shape, key_shape),
                                                 _heads_of_query(query_shape, value_shape))


_aten = torch.ops.aten
#: torch's attention formulas before 2.12 assert that key and value have the query's heads, so a GQA
#: model's call (Llama-3: 8 KV heads for 32 query heads) could not be counted, and torch has none for the
#: CPU's fused attention (its attention counted nothing); these count both, on any torch.
GQA_FORMULAS: dict = {
    **{op: _sdpa_flops for op in (_aten._scaled_dot_product_efficient_attention,
                                  _aten._scaled_dot_product_flash_attention,
                                  _aten._scaled_dot_product_cudnn_attention,
                                  _aten._scaled_dot_product_flash_attention_for_cpu)},
    **{op: _sdpa_backward_flops for op in (_aten._scaled_dot_product_efficient_attention_backward,
                                           _aten._scaled_dot_product_flash_attention_backward,
                                           _aten._scaled_dot_product_cudnn_attention_backward,
                                           _aten._scaled_dot_product_flash_attention_for_cpu_backward)},
}


def weighted_layers(module: nn.Module) -> dict[str, nn.Module]:
    """The layers whose FLOPs their shapes give: Linear-like (int in_features and out_features:
    nn.Linear and its quantized forms) and convolutions."""
    return {name: m for name, m in module.named_modules()
            if isinstance(m, nn.modules.conv._ConvNd)
            or (isinstance(getattr(m, "in_features", None), int) and isinstance(getattr(m, "out_features", None), int))}


def _tensors(obj: object) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors(o)]
    return []


def _bytes(obj: object) -> int:
    return sum(t.numel() * t.element_size() for t in _tensors(obj))


def _shape_flops(layer: nn.Module, inputs: tuple, output: object) -> float:
    if isinstance(layer, nn.modules.conv._ConvNd):
        out = _tensors(output)
        kernel = math.prod(layer.kernel_size)
        return 2.0 * out[0].numel() * layer.in_channels // layer.groups * kernel if out else 0.0
    x = _tensors(inputs)
    return 2.0 * x[0].numel() * layer.out_features if x else 0.0


@dataclass
class CallCount:
    """One call's FLOPs (counted, with the shapes' figure where the counter saw less in a layer),
    its weighted layers, those whose FLOPs came from shapes, and the bytes of their activations."""

    flops: float = 0.0
    counted: float = 0.0
    layers: int = 0
    derived_layers: list[str] = field(default_factory=list)
    activation_bytes: int = 0

    @property
    def counted_by(self) -> str:
        if not self.derived_layers:
            return f"counted ({COUNTER})"
        return (f"counted ({COUNTER}), {len(self.derived_layers)} of {self.layers} weighted layers from their "
                f"shapes (kernels the counter cannot see)")


def count_call(fn: Callable[[], object], module: nn.Module) -> CallCount:
    """Count one call of `fn`, which runs `module` eagerly (a compiled module's `_orig_mod`: the counter
    sees eager ops only)."""
    count = CallCount()
    counter = FlopCounterMode(display=False, custom_mapping=GQA_FORMULAS)
    before: dict[str, float] = {}
    derived: dict[str, tuple[float, float]] = {}  # layer -> (counted inside it, from its shapes)

    def pre(name: str) -> Callable:
        def hook(layer: nn.Module, inputs: tuple) -> None:
            before[name] = counter.get_total_flops()
        return hook

    def post(name: str) -> Callable:
        def hook(layer: nn.Module, inputs: tuple, output: object) -> None:
            inside = counter.get_total_flops() - before.pop(name, 0)
            seen = derived.get(name, (0.0, 0.0))
            derived[name] = (seen[0] + inside, seen[1] + _shape_flops(layer, inputs, output))
            count.activation_bytes += _bytes(inputs) + _bytes(output)
        return hook

    layers = weighted_layers(module)
    handles = [h for name, layer in layers.items() for h in (layer.register_forward_pre_hook(pre(name)),
                                                             layer.register_forward_hook(post(name)))]
    try:
        with counter:
            fn()
    finally:
        for h in handles:
            h.remove()
    count.counted = float(counter.get_total_flops())
    count.layers = len(layers)
    count.flops = count.counted
    for name, (inside, shapes) in derived.items():
        if inside < 0.99 * shapes:  # the counter missed (some of) this layer's kernel
            count.flops += shapes - inside
            count.derived_layers.append(name)
    return count


def work(count: CallCount, compute_dtype: str, bytes_parts: dict[str, int], per: str = "call",
         note: str = "") -> dict:
    """`metrics["work"]` of a case: what `results/roofline.py` turns into its roofline."""
    parts = {k: int(v) for k, v in bytes_parts.items() if v}
    return {
        "per": per,
        "flops_per_call": count.flops,
        "flops_counted_by": count.counted_by + (f"; {note}" if note else ""),
        "bytes_per_call": float(sum(parts.values())),
        "bytes_counted_by": " + ".join(parts) + " (see bytes_parts; activations: inputs and outputs of the "
                                                 "weighted layers)" if "activations" in parts else " + ".join(parts),
        "bytes_parts": parts,
        "compute_dtype": compute_dtype,
    }


def not_counted(error: BaseException, compute_dtype: str) -> dict:
    """`metrics["work"]` where counting failed: the case keeps its other figures, its roofline says why."""
    return {"per": "call", "flops_per_call": None, "bytes_per_call": None, "compute_dtype": compute_dtype,
            "flops_counted_by": f"not counted: {type(error).__name__}: {str(error).splitlines()[0][:200]}"}
