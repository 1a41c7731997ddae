"""The decode suite's cases of a user's checkpoint (`--model hf:DIR`).

A Llama, Mistral or Qwen2-family checkpoint gets the techniques and modes of the built-in Llama
shapes in the profile's grids (each combination once), served by effbench's engine with the
checkpoint's weights, and beside them transformers' own `generate()` (`hf.HF_MODE`) in the baseline
dtype at the same batches and prompt lengths. Any other checkpoint gets the `generate()` cases only,
and says why (`Checkpoint.engine_reason`, in its results). A `py:` model has no decode cases (the
suite serves causal LMs from their weights; a factory's Workload has none to map).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING

from bench_lib.results.case import CaseSpec
from bench_lib.suites.decode.hf import HF_MODE
from bench_lib.workloads.hf_llama import Checkpoint, sliding_window_reason

if TYPE_CHECKING:
    from bench_lib.suites.decode.suite import DecodeGrid
    from bench_lib.workloads.user.spec import ModelSpec

__all__ = ["user_cases", "checkpoint_of", "engine_skip_reason"]


@cache
def _checkpoint(path: str, name: str) -> Checkpoint:
    return Checkpoint(path, name)


def checkpoint_of(case: CaseSpec) -> Checkpoint | None:
    """The checkpoint a case of a user's model serves; None for a built-in workload."""
    text = case.param("model")
    if text is None:
        return None
    from bench_lib.workloads.user.spec import parse_model

    spec = parse_model(str(text))
    return _checkpoint(spec.target, spec.name)


def _engine_reason(checkpoint: Checkpoint) -> str | None:
    """Why effbench's engine cannot serve the checkpoint, a config it cannot read included."""
    try:
        return checkpoint.engine_reason
    except Exception as e:  # noqa: BLE001 - an unreadable config is a reason; the generate() cases fail with it
        return f"its config cannot be read: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def user_cases(suite: str, grids: Iterable[DecodeGrid], device: str, baseline: str, models: Iterable[ModelSpec],
               phases: tuple[str, ...], gen: int, extra: dict[str, dict]) -> list[CaseSpec]:
    """Every decode case of the user's `hf:` models: the grids' (technique, mode, batch, prompt)
    combinations where effbench's engine serves the checkpoint, and `generate()` at each batch and
    prompt length in the baseline dtype. `extra` holds each technique's own params."""
    combos: dict[tuple[str, str, int, int], None] = {}
    for grid in grids:
        for name in grid.techniques:
            for mode in grid.modes:
                for batch in grid.batches:
                    for prompt in grid.prompts:
                        combos[(name, mode, batch, prompt)] = None
    shapes = dict.fromkeys((batch, prompt) for _, _, batch, prompt in combos)
    out = []
    for spec in models:
        if spec.kind != "hf":
            continue
        served = [] if _engine_reason(_checkpoint(spec.target, spec.name)) else list(combos)
        served += [(baseline, HF_MODE, batch, prompt) for batch, prompt in shapes]
        for name, mode, batch, prompt in served:
            for phase in phases:
                out.append(CaseSpec.make(suite, spec.name, name, device, batch=batch, prompt=prompt, gen=gen,
                                         mode=mode, phase=phase, model=spec.text, **extra.get(name, {})))
    return out


def engine_skip_reason(case: CaseSpec, checkpoint: Checkpoint) -> str | None:
    """Why effbench's engine cannot serve this case of the checkpoint: a sliding window shorter than
    its sequence (`generate()` cases run, as transformers serves them)."""
    if case.param("mode") == HF_MODE:
        return None
    return _engine_reason(checkpoint) or sliding_window_reason(
        checkpoint.config, int(case.param("prompt")) + int(case.param("gen")))
