"""Whether a GPU run had its devices to itself: other processes on them before and during the run.

As optimum-benchmark's device isolation does, NVML's list of compute processes on each GPU the run uses
is read at the start and then every few seconds from a thread of the run's process, and every process
that is neither this process nor one of its descendants (workers, ranks, probes) is recorded with when
it was seen. A run that shared a device says so in its results (`environment.device_isolation`,
`shared`): its timings, energy and peaks are not its own alone. A PID that NVML reports but this PID
namespace cannot see (a container's view of the host's processes) cannot be attributed: it is recorded
as not visible and leaves `shared` unknown rather than true.

`other_processes` is the logic on plain data (NVML's rows and the process table), so that it is tested
without a GPU; `IsolationMonitor` is the thread that feeds it from pynvml (nvidia-ml-py).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NvmlRow", "process_table", "descendants", "other_processes", "IsolationMonitor", "not_checked",
           "monitor_for"]

POLL_S = 5.0
_METHOD = "NVML compute processes on the run's GPUs (nvmlDeviceGetComputeRunningProcesses), at the start and " \
          "every {poll:.0f} s; this process and its descendants excluded"


@dataclass(frozen=True)
class NvmlRow:
    """One row of NVML's compute processes of a GPU."""

    gpu: int
    pid: int
    used_memory_bytes: int | None


def process_table(proc: Path = Path("/proc")) -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, name) of every process visible here, from /proc."""
    table = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        table[int(entry.name)] = (int(stat[stat.rindex(")") + 2:].split()[1]), name)
    return table


def descendants(root: int, table: dict[int, tuple[int, str]]) -> set[int]:
    """`root` and every process below it in `table`."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo += children.get(pid, [])
    return out


def other_processes(rows: list[NvmlRow], own: set[int], table: dict[int, tuple[int, str]]) -> list[dict]:
    """NVML's rows that are not the run's own processes: pid, name (None where the pid is not visible
    here), GPU, memory used, and whether this PID namespace sees the pid at all."""
    out = []
    for row in rows:
        if row.pid in own:
            continue
        visible = row.pid in table
        out.append({"pid": row.pid, "name": table[row.pid][1] if visible else None, "gpu": row.gpu,
                    "used_memory_bytes": row.used_memory_bytes, "visible": visible})
    return out


def not_checked(why: str) -> dict:
    """`environment.device_isolation` of a run whose devices were not checked."""
    return {"checked": False, "method": why, "shared": None, "other_processes": [], "checks": 0}


def _nvml_rows(gpus: list[int]) -> list[NvmlRow]:
    import pynvml

    rows = []
    for gpu in gpus:
        handle = pynvml.nvmlDeviceGetHandleByIndex(gpu)
        for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            used = getattr(p, "usedGpuMemory", None)
            rows.append(NvmlRow(gpu, int(p.pid), int(used) if isinstance(used, int) else None))
    return rows


def _visible_gpus(count: int) -> list[int]:
    """NVML's indices of the first `count` GPUs this process sees (CUDA_VISIBLE_DEVICES, as indices)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        picked = [v.strip() for v in visible.split(",") if v.strip()]
        if all(v.isdigit() for v in picked):
            return [int(v) for v in picked[:count]]
    return list(range(count))


@dataclass
class IsolationMonitor:
    """Polls NVML from a thread of the run's process; `record()` is what the results store."""

    gpus: list[int]
    poll_s: float = POLL_S
    _seen: dict[tuple[int, int], dict] = field(default_factory=dict)
    _checks: int = 0
    _error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float = 0.0

    @classmethod
    def for_devices(cls, cuda_devices: int) -> IsolationMonitor:
        return cls(_visible_gpus(cuda_devices))

    def check(self, rows: list[NvmlRow] | None = None) -> None:
        """One look: NVML's rows (read here unless given) against this process's tree."""
        try:
            rows = _nvml_rows(self.gpus) if rows is None else rows
        except Exception as e:  # noqa: BLE001 - no NVML (library, driver, permissions): recorded, the run goes on
            self._error = f"{type(e).__name__}: {e}"[:300]
            return
        table = process_table()
        now = time.monotonic() - self._started
        for other in other_processes(rows, descendants(os.getpid(), table), table):
            key = (other["gpu"], other["pid"])
            seen = self._seen.setdefault(key, {**other, "first_seen_s": now})
            seen.update(last_seen_s=now, used_memory_bytes=other["used_memory_bytes"])
        self._checks += 1

    def start(self) -> None:
        self._started = time.monotonic()
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as e:  # noqa: BLE001 - as in check()
            self._error = f"{type(e).__name__}: {e}"[:300]
            return
        self.check()
        self._thread = threading.Thread(target=self._loop, name="effbench-isolation", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 5)
            self.check()  # a last look at the end of the run

    def record(self) -> dict:
        """`environment.device_isolation`: shared true where a visible process of another run was on a GPU."""
        if self._error and not self._checks:
            return not_checked(f"NVML could not be read: {self._error}")
        others = sorted(self._seen.values(), key=lambda o: (o["first_seen_s"], o["pid"]))
        visible = [o for o in others if o["visible"]]
        shared = True if visible else (None if others else False)
        return {"checked": True, "method": _METHOD.format(poll=self.poll_s), "shared": shared,
                "other_processes": [dict(o) for o in others], "checks": self._checks}


def monitor_for(devices: list[str]) -> IsolationMonitor | None:
    """A started monitor of the GPUs among the run's devices ("cpu", "cuda", "cuda:1", ...); None
    where the run uses none."""
    indices = sorted({int(d.partition(":")[2] or 0) for d in devices if d.startswith("cuda")})
    if not indices:
        return None
    monitor = IsolationMonitor(_visible_gpus(max(indices) + 1))
    monitor.start()
    return monitor
