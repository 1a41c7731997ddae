import subprocess

from bench_lib.results import environment


def test_capture_has_versions_devices_and_threads():
    env = environment.capture()
    for key in ("python", "torch", "cuda", "nccl", "cpu_model", "cpu_count", "num_threads", "gpus", "mkldnn",
                "cpu_capability", "captured_at"):
        assert key in env
    assert env["torch"].split(".")[0].isdigit()
    assert isinstance(env["gpus"], list)


def test_machine_info_has_pytest_benchmark_fields():
    info = environment.machine_info()
    assert {"node", "machine", "python_version", "system", "cpu"} <= info.keys()


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
