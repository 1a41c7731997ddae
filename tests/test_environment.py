import importlib.metadata
import os
import platform
import socket
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import torch

from bench_lib.results import environment


def _cpuinfo_model() -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)


def test_capture_reads_this_process_s_versions_devices_and_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("EFFBENCH_UNRELATED", "x")
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)  # a value this process did not start with: read live
    try:
        env = environment.capture()
        assert env["num_threads"] == torch.get_num_threads() != threads
    finally:
        torch.set_num_threads(threads)
    assert env["python"] == platform.python_version()
    assert env["torch"] == torch.__version__
    assert env["cuda"] == torch.version.cuda
    assert env["cpu_count"] == os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        assert env["cpu_affinity"] == len(os.sched_getaffinity(0))
    assert env["cpu_model"] == (_cpuinfo_model() or platform.processor() or "unknown")
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert [g["name"] for g in env["gpus"]] == [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if not torch.cuda.is_available():
        assert env["nccl"] is None and env["gpus"] == []
    try:
        assert env["torchao"] == importlib.metadata.version("torchao")
    except importlib.metadata.PackageNotFoundError:
        assert env["torchao"] is None
    # Only the variables that change how torch runs are kept, with their values.
    assert env["env"]["OMP_NUM_THREADS"] == "3"
    assert "EFFBENCH_UNRELATED" not in env["env"]
    assert abs(datetime.fromisoformat(env["captured_at"]) - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_machine_info_has_pytest_benchmark_fields_of_this_machine():
    info = environment.machine_info()
    assert info["node"] == socket.gethostname()
    assert info["system"] == platform.system()
    assert info["machine"] == info["cpu"]["arch"] == platform.machine()
    assert info["python_version"] == platform.python_version()
    assert info["cpu"]["count"] == os.cpu_count()
    assert info["cpu"]["brand_raw"] == environment.capture()["cpu_model"]


def test_commit_info_sees_a_dirty_tree(tmp_path, monkeypatch):
    monkeypatch.delenv("EFFBENCH_COMMIT", raising=False)

    def git(*a):
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x")
    clean = environment.commit_info(tmp_path)
    assert clean["dirty"] is False and len(clean["id"]) == 40
    (tmp_path / "f").write_text("2")
    assert environment.commit_info(tmp_path)["dirty"] is True
    # A copied tree whose .git lags behind the code (a lent GPU machine): the launcher's commit wins.
    monkeypatch.setenv("EFFBENCH_COMMIT", "f" * 40)
    given = environment.commit_info(tmp_path)
    assert given["id"] == "f" * 40 and clean["id"] in given["error"]


def test_commit_info_outside_git(tmp_path, monkeypatch):
    monkeypatch.delenv("EFFBENCH_COMMIT", raising=False)
    assert environment.commit_info(tmp_path)["id"] is None


def test_comparability_key_tells_machines_apart():
    a = {"cpu_model": "AMD EPYC", "cpu_count": 2, "gpus": [], "torch": "2.13.0"}
    b = {**a, "gpus": [{"name": "NVIDIA H100"}]}
    assert environment.comparability_key(a) != environment.comparability_key(b)
    assert environment.comparability_key(a) != environment.comparability_key({**a, "torch": "2.14.0"})
    # When a run was captured, and how many threads it used, do not make it another machine.
    same = {**a, "captured_at": "2026-01-01T00:00:00+00:00", "num_threads": 7}
    assert environment.comparability_key(same) == environment.comparability_key(a)
