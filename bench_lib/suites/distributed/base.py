"""What the distributed suites share: backends, world size, skip rules, and the launch per group.

A distributed suite's cases run on every rank at once: `run_on_rank` is the code each rank
executes (under effbench's launcher, `execution/launcher.py`, or under torchrun), yielding one
result per case; only rank 0's results are stored. Cases that share a backend and world size
share one launch.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field

from bench_lib.platform import Platform
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.suites import Suite

__all__ = ["RankContext", "DistributedSuite", "backends_for", "default_world_size", "nccl_skip_reason"]

# backend workload name -> (torch.distributed backend, tensor device)
TRANSPORTS = {"gloo_cpu": ("gloo", "cpu"), "gloo_cuda": ("gloo", "cuda"), "nccl": ("nccl", "cuda")}


@dataclass(frozen=True)
class RankContext:
    """Who this process is in the group, and where its tensors live."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    backend: str
    device: str  # "cpu" or "cuda:<i>"
    #: Called as a rank starts case `index` of its launch: the launcher that started the ranks reads it to lay
    #: a hang or crash at the case that was running, also when a suite's cases take turns (training).
    on_case: Callable[[int, CaseSpec], None] = field(default=lambda index, case: None, compare=False, repr=False)

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def meta_device(self) -> str:
        """Where bookkeeping collectives (max of timings, sums of counts) run: the CPU on Gloo, which
        supports every dtype and op there, the GPU on NCCL, which has no CPU path."""
        return self.device if self.backend == "nccl" else "cpu"


def backends_for(device: str, backend: str) -> list[tuple[str, str]]:
    """(backend, device) pairs a run covers. NCCL is always listed (skipped where it cannot run), so a
    CPU run says why it measured no NCCL rather than hiding it."""
    gloo = [("gloo", device)]
    nccl = [("nccl", "cuda")]
    return {"gloo": gloo, "nccl": nccl, "all": gloo + nccl}[backend]


def default_world_size(device: str, platform: Platform | None = None) -> int:
    """EFFBENCH_WORLD_SIZE, else one rank per GPU (at least 2) on CUDA, else 2 on CPU."""
    if os.environ.get("EFFBENCH_WORLD_SIZE"):
        return int(os.environ["EFFBENCH_WORLD_SIZE"])
    if device.startswith("cuda") and platform is not None:
        return max(platform.cuda_devices, 2)
    return 2


def nccl_skip_reason(world_size: int, platform: Platform) -> str | None:
    """NCCL needs a GPU per rank of this node (torchrun's LOCAL_WORLD_SIZE; all ranks under effbench's launcher)."""
    if not platform.nccl:
        return "this torch build has no NCCL"
    here = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    if platform.cuda_devices < here:
        return (f"NCCL needs one GPU per rank: {platform.cuda_devices} visible for {here} ranks on this machine "
                "(NCCL refuses two ranks on one GPU: 'Duplicate GPU detected')")
    return None


class DistributedSuite(Suite):
    """A suite whose cases run on world_size ranks launched together."""

    TIMEOUT_S = {"quick": 120.0, "full": 1200.0}

    def timeout_s(self, case: CaseSpec, profile: str) -> float:
        """Per case (a hang costs this much); EFFBENCH_DIST_TIMEOUT_S overrides (the fault tests use seconds)."""
        return float(os.environ.get("EFFBENCH_DIST_TIMEOUT_S", self.TIMEOUT_S[profile]))

    @staticmethod
    def backend_of(case: CaseSpec) -> str:
        return str(case.param("backend"))

    def skip_reason(self, case: CaseSpec, platform: Platform) -> str | None:
        if self.backend_of(case) == "nccl":
            if not platform.cuda_devices:
                return "NCCL needs CUDA tensors: no CUDA device visible on this machine"
            return nccl_skip_reason(int(case.param("world_size")), platform)
        if not platform.gloo:
            return "this torch build has no Gloo"
        return super().skip_reason(case, platform)

    def launch_key(self, case: CaseSpec) -> Hashable:
        return (self.backend_of(case), case.device, case.param("world_size"))

    def launch_timeouts(self, cases: list[CaseSpec], profile: str) -> list[float]:
        """How long the launcher waits for each case's result after the one before it."""
        return [self.timeout_s(c, profile) for c in cases]

    def execute(self, case: CaseSpec, profile: str) -> CaseResult:
        raise TypeError(f"{case.id} runs on {case.param('world_size')} ranks at once: bench_lib.execution launches "
                        "them, and each runs run_on_rank")

    @abstractmethod
    def run_on_rank(self, cases: list[CaseSpec], profile: str, ctx: RankContext) -> Iterator[CaseResult]:
        """Run on every rank of an initialized process group; yield one result per case, in order."""
