import math
import sys
import time
import types

import pytest

from bench_lib.measure.energy import (
    MIN_UPDATES,
    EnergyWindow,
    RaplCounter,
    counter_for,
    energy_metrics,
    run_for,
    sum_over_devices,
    window_from_sightings,
)


def steady(power_w: float, every_s: float, start: float, end: float, phase: float) -> list[tuple[float, float]]:
    """Sightings of a counter that adds power x every_s at every update (first update at `phase`)."""
    out = [(start, 1000.0)]
    t = start + phase
    while t <= end:
        out.append((t, out[-1][1] + power_w * every_s))
        t += every_s
    return out


def test_window_energy_is_mean_power_between_updates_times_window():
    # 300 W, updates every 100 ms, the window's edges 80 ms off the update grid: end minus start would
    # count 19 updates' energy for a 2.05 s window (7% short); the power between updates is exact.
    start, end = 10.0, 12.05
    w = window_from_sightings(steady(300.0, 0.1, start, end, phase=0.08), start, end, "fake")
    assert isinstance(w, EnergyWindow)
    assert w.power_w == pytest.approx(300.0)
    assert w.joules == pytest.approx(300.0 * 2.05)
    assert w.updates == 20 and w.warnings == ()


def test_too_short_window_is_not_measured_and_few_updates_warn():
    one = window_from_sightings(steady(300.0, 0.1, 0.0, 0.12, phase=0.05), 0.0, 0.12, "fake")
    assert isinstance(one, str) and "too short" in one
    few = window_from_sightings(steady(300.0, 0.1, 0.0, 0.35, phase=0.05), 0.0, 0.35, "fake")
    assert isinstance(few, EnergyWindow) and few.updates == 4 < MIN_UPDATES
    assert few.warnings and "only 4 energy counter updates" in few.warnings[0]


def test_counter_going_backwards_is_not_measured():
    sightings = [(0.0, 500.0), (0.1, 530.0), (0.2, 2.0), (0.3, 32.0)]
    result = window_from_sightings(sightings, 0.0, 0.3, "fake")
    assert isinstance(result, str) and "backwards" in result


def _domain(root, name, uj, max_uj, label="package-0"):
    d = root / name
    d.mkdir()
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def test_rapl_wraparound_keeps_the_sum_growing(tmp_path):
    pkg = _domain(tmp_path, "intel-rapl:0", 900_000, 999_999)
    _domain(tmp_path, "intel-rapl:0:0", 5, 999_999, label="core")  # a subdomain: inside the package, not added
    counter = counter_for("cpu", powercap=str(tmp_path))
    assert isinstance(counter, RaplCounter) and "intel-rapl:0:0" not in counter.source
    assert counter.read_j() == 0.0
    (pkg / "energy_uj").write_text("50000\n")  # wrapped: 100,000 uJ to the top, 50,000 after
    assert counter.read_j() == pytest.approx(0.15)
    (pkg / "energy_uj").write_text("250000\n")
    assert counter.read_j() == pytest.approx(0.35)


def test_cpu_without_powercap_says_why(tmp_path):
    reason = counter_for("cpu", powercap=str(tmp_path / "absent"))
    assert isinstance(reason, str) and "does not exist" in reason
    assert "no RAPL package domain" in counter_for("cpu", powercap=str(tmp_path))


class _NVMLError(Exception):
    pass


def _fake_pynvml(monkeypatch, handle_error=None):
    fake = types.SimpleNamespace(NVMLError=_NVMLError, nvmlInit=lambda: None, uuids=[],
                                 nvmlDeviceGetTotalEnergyConsumption=lambda handle: 123_456)

    def by_uuid(uuid):
        fake.uuids.append(uuid)
        if handle_error:
            raise handle_error
        return "handle"

    fake.nvmlDeviceGetHandleByUUID = by_uuid
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(uuid=f"uuid-{i}"))
    return fake


def test_nvml_counter_reads_millijoules_of_the_cuda_device_by_uuid(monkeypatch):
    fake = _fake_pynvml(monkeypatch)
    counter = counter_for("cuda:1")
    assert not isinstance(counter, str)
    assert fake.uuids == [b"GPU-uuid-1"] and counter.read_j() == pytest.approx(123.456)


def test_missing_nvml_device_or_library_says_why(monkeypatch):
    _fake_pynvml(monkeypatch, handle_error=_NVMLError("Not Supported"))
    reason = counter_for("cuda")
    assert isinstance(reason, str) and "cuda:0" in reason and "Not Supported" in reason
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert "not installed" in counter_for("cuda:0")


class RampCounter:
    """A counter that, like NVML, moves in steps: every_s seconds' worth of power_w at a time."""

    source = "ramp"

    def __init__(self, power_w: float, every_s: float):
        self.power_w, self.every_s, self.t0 = power_w, every_s, time.perf_counter()

    def read_j(self) -> float:
        return math.floor((time.perf_counter() - self.t0) / self.every_s) * self.every_s * self.power_w


def test_run_for_calls_back_to_back_and_measures_the_stepping_counter():
    calls, result = run_for(lambda: time.sleep(0.001), RampCounter(250.0, 0.02), window_s=0.3)
    assert isinstance(result, EnergyWindow)
    assert 0.3 <= result.seconds < 0.4 and calls >= 50
    assert result.power_w == pytest.approx(250.0, rel=0.1)
    assert result.updates >= MIN_UPDATES


def test_ranks_sharing_a_gpu_count_its_energy_once():
    gpu0 = EnergyWindow(100.0, 1.0, 12, 0.9, "nvml")
    gpu0_again, gpu1 = EnergyWindow(102.0, 1.01, 11, 0.9, "nvml"), EnergyWindow(80.0, 1.0, 12, 0.9, "nvml")
    one_gpu = sum_over_devices([gpu0, gpu0_again], [2, 2])
    assert one_gpu.joules == pytest.approx(101.0) and one_gpu.updates == 11 and one_gpu.seconds == 1.01
    assert "1 device(s) of 2 rank(s)" in one_gpu.source
    assert sum_over_devices([gpu0, gpu1], [1, 1]).joules == pytest.approx(180.0)


def test_metrics_per_unit_of_work_or_the_reason():
    w = EnergyWindow(200.0, 2.0, 20, 1.9, "nvml")
    m = energy_metrics(w, {"call": 100, "sample": 800, "token": 0})
    assert m["energy_j_per_call"] == 2.0 and m["energy_j_per_sample"] == 0.25 and "energy_j_per_token" not in m
    assert m["power_mean_w"] == 100.0 and m["energy_counter_updates"] == 20 and m["energy_warnings"] == []
    assert energy_metrics("no RAPL here", {"call": 1}) == {"energy_not_measured": "no RAPL here"}


def test_training_energy_is_gathered_over_ranks(tmp_path):
    import torch.distributed as dist

    from bench_lib.suites.distributed.base import RankContext
    from bench_lib.suites.distributed.training.energy_sums import energy_over_ranks

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ctx = RankContext(0, 1, 0, 1, "gloo", "cpu")
        m = energy_over_ranks(EnergyWindow(50.0, 0.5, 6, 0.4, "fake"), ctx, {"step": 40, "sample": 1280})
        assert m["energy_j_per_step"] == pytest.approx(1.25) and m["energy_j_per_rank"] == [50.0]
        assert m["power_mean_w"] == pytest.approx(100.0) and m["energy_warnings"]
        assert energy_over_ranks("no RAPL", ctx, {"step": 40}) == {"energy_not_measured": "no RAPL"}
    finally:
        dist.destroy_process_group()


def test_report_shows_tokens_per_joule_and_why_cpu_cases_have_none(tmp_path):
    from test_report import CPU_ENV, H200_ENV, _m, make_run, training_results

    from bench_lib.report.markdown import build_report
    from bench_lib.results.case import CaseResult, CaseSpec

    gpu = []
    for variant, latency, j_per_token, warnings in (("bf16", 1e-3, 3e-4, []),
                                                    ("bf16_cudagraphs", 2e-4, 4e-5, ["only 4 energy counter updates"])):
        gpu.append(CaseResult(CaseSpec.make("inference", "byte_gpt", variant, "cuda", batch=8), "ok", _m(latency), {
            "energy_j_per_sample": j_per_token * 512, "energy_j_per_token": j_per_token, "power_mean_w": 140.0,
            "energy_source": "nvml", "energy_warnings": warnings}))
    trained = [CaseResult(r.case, r.status, r.measurement, {**r.metrics, "energy_j_per_step": 2.0,
                                                            "energy_j_per_sample": 0.1, "energy_warnings": []})
               for r in training_results()]
    cpu = [CaseResult(CaseSpec.make("inference", "digits_mlp", "fp32", "cpu", batch=1), "ok", _m(1e-4),
                      {"energy_not_measured": "no RAPL: /sys/class/powercap does not exist"})]
    runs = [make_run(tmp_path, "gpu", H200_ENV, inference=gpu, training=trained),
            make_run(tmp_path, "cpu", CPU_ENV, inference=cpu)]
    report = build_report(runs, tmp_path / "out")
    text = report.readme.read_text()
    assert {"inference_energy.png", "training_energy.png"} <= {p.name for p in report.plots}
    assert "| 3,333 |" in text and "| ~25,000 |" in text  # tokens per joule; rough where few updates
    assert "energy not measured in 1 case(s): no RAPL: /sys/class/powercap does not exist" in text
    assert "energy/step (J)" in text


def test_compare_shows_energy_where_both_sides_have_it():
    from test_report import _m

    from bench_lib.report.compare import compare_runs
    from bench_lib.report.render_compare import render_comparison
    from bench_lib.results.case import CaseResult, CaseSpec

    gpu, cpu = (CaseSpec.make("inference", "byte_gpt", v, d, batch=8) for v, d in (("bf16", "cuda"), ("fp32", "cpu")))

    def run(j):
        return {gpu: CaseResult(gpu, "ok", _m(1e-3), {"energy_j_per_sample": j}),
                cpu: CaseResult(cpu, "ok", _m(1e-3), {"energy_not_measured": "no RAPL"})}

    cmp = compare_runs([run(0.02)], [run(0.025), run(0.03)])
    assert [c.case for c in cmp.energy] == [gpu] and cmp.energy[0].ratio == pytest.approx(1.375)
    text = render_comparison(cmp, ["b"], ["n1", "n2"], ["c"], ["c", "c"])
    assert "| inference/byte_gpt-bf16-batch8-cuda | 0.0200 | 0.0275 | 1.375 | 1/2 |" in text


def test_a_training_run_s_energy_has_a_window_of_its_own(tmp_path):
    """Timed stretches are shorter than the counter's update interval: the energy comes from a window of
    at least the asked seconds at the run's pace, after the timed figures, which it leaves alone."""
    import torch.distributed as dist

    from bench_lib.results.case import CaseSpec
    from bench_lib.suites.distributed.base import RankContext
    from bench_lib.suites.distributed.tasks import task_for
    from bench_lib.suites.distributed.train_runs import MemoryShare
    from bench_lib.suites.distributed.training.turns import build_run

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ctx = RankContext(0, 1, 0, 1, "gloo", "cpu")
        task, _ = task_for("quick", "cpu", "digits_mlp")
        case = CaseSpec.make("training", "digits_mlp", "sync", "cpu", backend="gloo", world_size=1)
        run = build_run(case, task, 30, ctx, MemoryShare(False, 0))
        run.stretch(30)
        ends, pace = list(run.ends), run.pace(30).per_step_s  # the warm-up steps left out
        run.counter = RampCounter(250.0, 0.01)
        started = time.perf_counter()
        window, steps = run.energy_window(0.3)
        elapsed = time.perf_counter() - started
        # The window is sized in steps at the timed pace (not in seconds, which a loaded machine stretches or
        # shrinks), and its seconds are its own: inside the call, never the timed stretches'.
        assert isinstance(window, EnergyWindow) and 0 < window.seconds <= elapsed
        assert window.power_w == pytest.approx(250.0, rel=0.15)
        assert steps == pytest.approx(0.3 / pace, rel=0.01, abs=1)
        assert run.ends == ends  # the timed figures are read before, and stay as they were
        run.counter = "no RAPL here"
        assert run.energy_window(0.3) == ("no RAPL here", 0)
    finally:
        dist.destroy_process_group()
