"""Peak memory of the measuring process.

Each case runs in its own process, so the process-wide peak RSS is the case's peak (the
imports included, which is why the RSS before the case is recorded beside it).
"""

from __future__ import annotations

import resource

__all__ = ["current_rss_bytes", "peak_rss_bytes", "reset_peak_rss", "reset_cuda_peak", "cuda_peak"]


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize()


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so the next peak covers one phase only.

    Returns False where the kernel does not allow it; the peak then covers the process life.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """VmHWM (resettable) where /proc has it, else ru_maxrss (process life, KiB on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_cuda_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def cuda_peak(device: str) -> dict[str, int]:
    if not device.startswith("cuda"):
        return {}
    import torch

    torch.cuda.synchronize()
    return {
        "cuda_max_allocated_bytes": torch.cuda.max_memory_allocated(),
        "cuda_max_reserved_bytes": torch.cuda.max_memory_reserved(),
    }
