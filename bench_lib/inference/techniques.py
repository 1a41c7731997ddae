"""Compression techniques, each a function from a trained model to the model that is served.

One registry, one signature: the suite never special-cases a technique. A technique that
cannot run here raises SkipCase with the reason; it never falls back to a slower path under
its own name.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from bench_lib.results.case import CaseSpec

__all__ = ["Technique", "TECHNIQUES", "skip_reason"]

Apply = Callable[[nn.Module, CaseSpec], nn.Module]


@dataclass(frozen=True)
class Technique:
    name: str
    apply: Apply
    devices: tuple[str, ...] = ("cpu", "cuda")
    note: str = ""
    params: dict[str, tuple] = field(default_factory=dict)


def _fp32(model: nn.Module, case: CaseSpec) -> nn.Module:
    return model


def _int8_dynamic(model: nn.Module, case: CaseSpec) -> nn.Module:
    """The user's example: `torch.ao.quantization.quantize_dynamic` on every Linear (fbgemm/x86)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def _l1_unstructured(model: nn.Module, case: CaseSpec) -> nn.Module:
    """The user's example: `prune.l1_unstructured` on every Linear weight, made permanent.

    The weights stay dense tensors with zeros in them, so no kernel runs faster: that is
    what this case shows.
    """
    from torch.nn.utils import prune

    amount = float(case.param("sparsity"))
    for module in model.modules():
        if isinstance(module, nn.Linear):
            prune.l1_unstructured(module, name="weight", amount=amount)
            prune.remove(module, "weight")
    return model


TECHNIQUES: dict[str, Technique] = {
    t.name: t
    for t in [
        Technique("fp32", _fp32, note="uncompressed reference, eager"),
        Technique("int8_dynamic", _int8_dynamic, devices=("cpu",),
                  note="torch.ao.quantization.quantize_dynamic: deprecated in favour of torchao, "
                       "still the fastest int8 path on AVX2 CPUs"),
        Technique("l1_unstructured", _l1_unstructured, note="torch.nn.utils.prune, dense kernels",
                  params={"sparsity": (0.5, 0.9)}),
    ]
}


def skip_reason(technique: Technique, device: str) -> str | None:
    if device not in technique.devices:
        return f"{technique.name} has no {device} kernel in torch (runs on {', '.join(technique.devices)})"
    return None
