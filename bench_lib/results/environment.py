"""What a result was measured on: enough to decide whether two results may be compared."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["capture", "machine_info", "commit_info", "comparability_key"]

_REPO = Path(__file__).resolve().parents[2]


def _git(*args: str, cwd: Path = _REPO) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def commit_info(cwd: Path = _REPO) -> dict:
    """pytest-benchmark's `commit_info` fields, for the code under test.

    EFFBENCH_COMMIT, where the launcher sets it, names the code: a lent GPU machine runs a copy
    of the working tree whose .git (if any) may still point at an older HEAD, which would
    label the results with that commit, "dirty".
    """
    given = os.environ.get("EFFBENCH_COMMIT")
    commit = _git("rev-parse", "HEAD", cwd=cwd)
    if given or commit is None:
        return {"id": given, "dirty": None, "project": "effbench", "branch": None,
                "error": ("commit given by EFFBENCH_COMMIT" if given else "not a git checkout")
                + (f"; the checkout's HEAD was {commit}" if commit else "")}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return {
        "id": commit,
        "time": _git("show", "-s", "--format=%cI", "HEAD", cwd=cwd),
        "author_time": _git("show", "-s", "--format=%aI", "HEAD", cwd=cwd),
        "dirty": bool(status),
        "project": "effbench",
        "branch": _git("rev-parse", "--abbrev-ref", "HEAD", cwd=cwd),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """pytest-benchmark's `machine_info` fields (its `cpu` block reduced to what we read)."""
    return {
        "node": socket.gethostname(),
        "processor": platform.processor(),
        "machine": platform.machine(),
        "python_compiler": platform.python_compiler(),
        "python_implementation": platform.python_implementation(),
        "python_implementation_version": platform.python_version(),
        "python_version": platform.python_version(),
        "python_build": list(platform.python_build()),
        "release": platform.release(),
        "system": platform.system(),
        "cpu": {"brand_raw": _cpu_model(), "count": os.cpu_count(), "arch": platform.machine()},
    }


def _torch_info() -> dict:
    import torch

    info: dict = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "quantized_engines": list(torch.backends.quantized.supported_engines),
        "num_threads": torch.get_num_threads(),
        "num_interop_threads": torch.get_num_interop_threads(),
        "gloo": torch.distributed.is_available() and torch.distributed.is_gloo_available(),
        "nccl": None,
        "gpus": [],
    }
    if torch.cuda.is_available():
        try:
            info["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        except (AttributeError, RuntimeError):
            pass
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info["gpus"].append({
                "name": p.name,
                "capability": f"{p.major}.{p.minor}",
                "memory_bytes": p.total_memory,
                "multiprocessors": p.multi_processor_count,
            })
        info["driver"] = _nvidia_driver()
    info["torchao"] = _distribution_version("torchao")
    return info


def _distribution_version(name: str) -> str | None:
    """Installed version without importing (torchao's import is slow and noisy)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def capture() -> dict:
    """The full environment stored with every run."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "captured_at": datetime.now(timezone.utc).isoformat(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "env": {k: os.environ[k] for k in sorted(os.environ)
                if k.startswith(("OMP_", "MKL_", "NCCL_", "CUDA_VISIBLE", "TORCH_", "GLOO_"))},
        **_torch_info(),
    }


def comparability_key(env: dict) -> dict:
    """The fields that must match for a timing comparison to mean what it says."""
    gpus = env.get("gpus") or []
    return {
        "cpu_model": env.get("cpu_model"),
        "cpu_count": env.get("cpu_count"),
        "gpu": gpus[0]["name"] if gpus else None,
        "gpu_count": len(gpus),
        "torch": env.get("torch"),
        "cuda": env.get("cuda"),
        "torchao": env.get("torchao"),
    }
