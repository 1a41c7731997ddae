"""Cases and their results.

A CaseSpec is the identity of a measurement: frozen and hashable, so that results are
matched across runs (compare, report) by it alone. A CaseResult is what one case produced:
measured, skipped with a reason, or failed with an error. Nothing else exists: a case that
ran is never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bench_lib.measure.stats import Measurement

__all__ = ["Scalar", "CaseSpec", "CaseResult", "Status", "SkipCase", "NOT_IN_ID"]

Scalar = str | int | float | bool
Status = Literal["ok", "skipped", "failed"]
_IDENTITY = ("suite", "workload", "variant", "device")
#: Params a case keeps but its id leaves out: a user's model as given (`hf:/abs/path`, whose name is already the
#: workload) and their text file's path. An id is what `-k` matches and what tables, logs and histories show: a
#: path would make it long and tie it to one machine's directories. The params themselves stay whole.
NOT_IN_ID = ("model", "eval_text")


class SkipCase(Exception):
    """Raised inside a case that the platform cannot run; the message is the reason."""


@dataclass(frozen=True)
class CaseSpec:
    """What is measured: suite, workload, variant (technique, strategy or op), device, params."""

    suite: str
    workload: str
    variant: str
    device: str = "cpu"
    params: tuple[tuple[str, Scalar], ...] = ()

    def __post_init__(self) -> None:
        for key, value in self.params:
            if key in _IDENTITY:
                raise ValueError(f"param name {key!r} is reserved")
            if not isinstance(value, (str, int, float, bool)):
                raise ValueError(f"param {key!r} must be a scalar, got {type(value).__name__}")
        if list(self.params) != sorted(self.params):
            object.__setattr__(self, "params", tuple(sorted(self.params)))

    @classmethod
    def make(cls, suite: str, workload: str, variant: str, device: str = "cpu", **params: Scalar) -> CaseSpec:
        return cls(suite, workload, variant, device, tuple(sorted(params.items())))

    def param(self, key: str, default: Any = None) -> Any:
        return dict(self.params).get(key, default)

    @property
    def id(self) -> str:
        """pytest-style id, what `-k` matches: e.g. `digits_mlp-int8_dynamic-batch64-cpu` (`NOT_IN_ID` left out)."""
        parts = [self.workload, self.variant, *(f"{k}{v}" for k, v in self.params if k not in NOT_IN_ID), self.device]
        return "-".join(parts)

    @property
    def name(self) -> str:
        return f"test_{self.suite}[{self.id}]"

    @property
    def fullname(self) -> str:
        return f"benchmarks/test_{self.suite}.py::{self.name}"

    @property
    def group(self) -> str:
        return f"{self.suite}/{self.workload}"

    def as_params(self) -> dict[str, Scalar]:
        """The flat `params` of pytest-benchmark's JSON; `from_params` inverts it."""
        return {"suite": self.suite, "workload": self.workload, "variant": self.variant,
                "device": self.device, **dict(self.params)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CaseSpec:
        missing = [k for k in _IDENTITY if not isinstance(params.get(k), str)]
        if missing:
            raise ValueError(f"params lack {', '.join(missing)}")
        rest = {k: v for k, v in params.items() if k not in _IDENTITY}
        return cls.make(params["suite"], params["workload"], params["variant"], params["device"], **rest)


@dataclass(frozen=True, eq=False)
class CaseResult:
    """One case's outcome. `metrics` holds JSON-safe figures beside the primary timing."""

    case: CaseSpec
    status: Status
    measurement: Measurement | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    timer: str = ""
    measure_config: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def __post_init__(self) -> None:
        if self.status == "ok" and self.measurement is None:
            raise ValueError(f"{self.case.id}: an ok result needs a measurement")
        if self.status != "ok" and not self.reason:
            raise ValueError(f"{self.case.id}: a {self.status} result needs a reason")

    @classmethod
    def skipped(cls, case: CaseSpec, reason: str) -> CaseResult:
        return cls(case, "skipped", reason=reason)

    @classmethod
    def failed(cls, case: CaseSpec, error: str, wall_s: float = 0.0) -> CaseResult:
        return cls(case, "failed", reason=error, wall_s=wall_s)
