"""A user's own model as a workload: `hf:DIR` (a local transformers checkpoint) or `py:package.module:factory`.

A case of a user's model carries the spec as given in `params["model"]` (and its workload is the spec's name), so
any process, a worker, a measuring server or an A/B side, resolves the same model from the case alone
(`workload_of`); the model is built once per process and kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench_lib.results.case import CaseSpec
from bench_lib.workloads.base import Workload
from bench_lib.workloads.user.spec import ModelSpec, check_model, import_factory, parse_model

__all__ = ["ModelSpec", "parse_model", "check_model", "model_spec", "workload_of", "user_workload", "MODEL_PARAMS"]

#: The case params that shape a user's model's workload besides the spec (every process must see them).
MODEL_PARAMS = ("eval_text", "quality_target")
_BUILT: dict[tuple, Workload] = {}


def model_spec(case: CaseSpec) -> ModelSpec | None:
    """The user's model a case measures; None for a built-in workload."""
    text = case.param("model")
    return None if text is None else parse_model(str(text))


def user_workload(spec: ModelSpec, **options: Any) -> Workload:
    """The user's model as a Workload, built once per process for the same spec and options.

    `hf:`: a transformers checkpoint read from local safetensors files (`workloads.user.hf`); `py:`: what the
    factory returns, called with no arguments. A factory that raises or returns something else raises here, at
    run time, so that its cases fail with the reason and the others go on.
    """
    key = (spec.text, tuple(sorted(options.items())))
    if key not in _BUILT:
        if spec.kind == "hf":
            from bench_lib.workloads.user.hf import hf_workload

            _BUILT[key] = hf_workload(spec, **options)
        else:
            made = import_factory(spec)()
            if not isinstance(made, Workload):
                raise TypeError(f"{spec.target} returned {type(made).__name__}, not a bench_lib Workload")
            _BUILT[key] = made
    return _BUILT[key]


def workload_of(case: CaseSpec, builtin: Mapping[str, Workload] | None = None) -> Workload:
    """The workload a case measures: the built-in registry's (`builtin`, default `WORKLOADS`) when the case has
    no "model" param, else the user's model (built once per process and cached)."""
    spec = model_spec(case)
    if spec is None:
        if builtin is None:
            from bench_lib.workloads import WORKLOADS as builtin
        return builtin[case.workload]
    options = {k: case.param(k) for k in MODEL_PARAMS if case.param(k) is not None}
    return user_workload(spec, **options)
