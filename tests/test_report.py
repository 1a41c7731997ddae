"""The report from synthetic runs held in memory: every suite's section, plots, notes, absent metrics."""

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import effbench

from bench_lib.measure.stats import Measurement
from bench_lib.report.frames import inference_cost_table, inference_tradeoffs, pareto_front
from bench_lib.report.load import Run, results_frame
from bench_lib.report.markdown import build_report
from bench_lib.report.references import machine_tag
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.format import fmt_num, select_time_unit
from bench_lib.results.store import RunData, RunWriter

CPU_ENV = {"cpu_model": "AMD EPYC", "cpu_count": 2, "torch": "2.13.0+cpu", "python": "3.11.7", "gpus": []}
H200_ENV = {"cpu_model": "Intel Xeon", "cpu_count": 32, "torch": "2.11.0+cu130", "nccl": "2.28.9",
            "gpus": [{"name": "NVIDIA H200"}, {"name": "NVIDIA H200"}]}


def _m(median, n=12, spread=0.02):
    return Measurement(tuple(median * (1 + spread * ((i % 5) - 2) / 2) for i in range(n)))


def inference_results():
    out = []
    for batch in (1, 64):
        for variant, speed, delta, extra in (("fp32", 1.0, 0.0, {}), ("int8_dynamic", 2.4, 0.0, {}),
                                             ("l1_unstructured", 1.0, -0.003, {"sparsity": 0.5}),
                                             ("l1_unstructured", 1.01, -0.3, {"sparsity": 0.9})):
            case = CaseSpec.make("inference", "digits_mlp_wide", variant, "cpu", batch=batch, **extra)
            lat = 1e-4 * batch ** 0.7 / speed
            out.append(CaseResult(case, "ok", _m(lat), {
                "latency_median_s": lat, "throughput_samples_per_s": batch / lat, "peak_rss_bytes": 300 * 2**20,
                "serialized_bytes": (4 if variant == "int8_dynamic" else 16) * 2**20,
                "in_memory_bytes": 16 * 2**20, "accuracy": 0.97 + delta, "reference_accuracy": 0.97,
                "accuracy_delta": delta, "agreement_with_reference": 1 + delta, "conversion_s": 0.1,
                "technique_note": "a note"}))
    out.append(CaseResult.skipped(CaseSpec.make("inference", "digits_mlp_wide", "fp8", "cuda", batch=1),
                                  "no CUDA device on this host"))
    out.append(CaseResult.failed(CaseSpec.make("inference", "digits_mlp_wide", "int4", "cpu", batch=1),
                                 "worker exited with status 1\nTraceback ...\nRuntimeError: int4 needs mslk"))
    out.append(CaseResult(CaseSpec.make("inference", "digits_mlp", "fp32", "cpu", batch=1), "ok",
                          _m(1e-3, spread=0.6), {"accuracy": 0.97, "accuracy_delta": 0.0}))
    return out


def collective_results():
    out = []
    for backend in ("nccl", "gloo_cuda"):
        for op in ("all_reduce", "all_gather"):
            for size in (2**10, 2**20, 2**26, 2**30):
                bw = (300.0 if backend == "nccl" else 2.0) * size / (size + 2**20)
                lat = size / (bw * 1e9) + (12e-6 if backend == "nccl" else 300e-6)
                case = CaseSpec.make("collectives", backend, op, "cuda", dtype="float32", size_bytes=size,
                                     world_size=2)
                out.append(CaseResult(case, "ok", _m(lat), {"algbw_GBps": bw / 2, "busbw_GBps": bw,
                                                           "latency_median_s": lat, "latency_p99_s": lat * 1.3,
                                                           "wrong_elements": 0}))
    return out


def training_results():
    out = []
    for variant, step, reached in (("sync", 0.06, 4.0), ("local_sgd", 0.04, 2.5), ("nocomm", 0.035, None)):
        curve = [[i * step, i, 3.0 * 0.9 ** i] for i in range(0, 60, 5)]
        wall_step = step * 1.25 if variant == "local_sgd" else step  # the averaging steps, which the median misses
        metrics = {"step_time_median_s": step, "step_time_wall_s": wall_step, "samples_per_s": 128 / wall_step,
                   "exposed_comm_s": wall_step - 0.035, "peak_memory_bytes": 2**30, "loss_curve": curve,
                   "eval_loss": 0.5, "target_loss": 0.2, "time_to_target_s": reached}
        if variant == "nocomm":
            metrics["harness_overhead"] = 0.021
        if variant == "local_sgd":
            metrics |= {"speedup_over_sync": 1.2, "speedup_over_sync_by_stretch": [1.1, 1.25, 1.3, 1.15]}
        if variant != "nocomm":
            metrics["tokens_per_s"] = 512 * 128 / wall_step
        case = CaseSpec.make("training", "digits_mlp", variant, "cpu", backend="gloo", world_size=2)
        out.append(CaseResult(case, "ok", _m(step), metrics))
    return out


def make_run(tmp_path: Path, name: str, env: dict, **suites) -> Run:
    files = []
    for suite, results in suites.items():
        files.append(RunData(tmp_path / name / f"{suite}.json", suite, {"command": "effbench run"}, env,
                             {"id": "abc", "dirty": False}, results))
    return Run(tmp_path / name, files)


def test_full_report_has_every_section_and_readable_plots(tmp_path):
    runs = [make_run(tmp_path, "cpu-run", CPU_ENV, inference=inference_results(), training=training_results()),
            make_run(tmp_path, "gpu-run", H200_ENV, collectives=collective_results())]
    out = tmp_path / "report"
    report = build_report(runs, out)
    text = report.readme.read_text()
    for heading in ("## Inference", "## Collectives", "## Training", "## Environment", "## Notes"):
        assert heading in text
    assert "deprecated" in text and "torchao" in text
    assert "RuntimeError: int4 needs mslk" in text and "no CUDA device on this host" in text
    assert "very noisy" in text                      # the 60%-spread case is flagged
    assert "not reached" in text                     # time_to_target null
    assert "| 50.0 | 39.8 [" in text                  # local SGD: wall per step beside the median step (ms)
    assert "+2.1%" in text                           # nocomm's harness overhead over the bare loop
    assert "1.20 [range 1.10-1.30]" in text          # speedup over sync of an older run: its range over the stretches
    paired = [replace(r, metrics={**r.metrics, "speedup": 1.31, "speedup_ci95_low": 1.22, "speedup_ci95_high": 1.4,
                                  "speedup_pairs": 8}) if r.case.variant == "local_sgd" else r
              for r in training_results()]
    paired_report = build_report([make_run(tmp_path, "paired", CPU_ENV, training=paired)], tmp_path / "paired-report")
    assert "1.31 [1.22, 1.40]" in paired_report.readme.read_text()  # from paired stretches, with its 95% interval
    assert "nccl-tests 2.19.6" in text               # reference figures for the H200 machine
    assert "Different machines or versions" in text
    names = {p.name for p in report.plots}
    assert {"inference_latency.png", "inference_tradeoff_cpu.png", "collectives_busbw.png",
            "collectives_latency.png", "training_loss.png", "training_throughput.png"} <= names
    for p in report.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({p.name})" in text


def test_sections_appear_only_with_data(tmp_path):
    report = build_report([make_run(tmp_path, "r", CPU_ENV, training=training_results())], tmp_path / "out")
    text = report.readme.read_text()
    assert "## Training" in text and "## Inference" not in text and "## Collectives" not in text
    assert {p.name for p in report.plots} == {"training_loss.png", "training_throughput.png"}


def test_speedups_are_against_fp32_of_the_same_batch(tmp_path):
    df = results_frame([make_run(tmp_path, "r", CPU_ENV, inference=inference_results())])
    trade = inference_tradeoffs(df)
    int8 = trade[(trade["variant"] == "int8_dynamic") & (trade["param.batch"] == 64)].iloc[0]
    assert int8["speedup"] == pytest.approx(2.4, rel=1e-6)
    assert int8["speedup_low"] <= 2.4 <= int8["speedup_high"]
    assert "l1_unstructured (sparsity=0.9)" in set(trade["technique"])


def test_random_weight_shapes_are_labelled_in_the_cost_table(tmp_path):
    results = inference_results()
    shape = CaseSpec.make("inference", "byte_gpt_d2048_random", "fp32", "cpu", batch=8)
    results.append(CaseResult(shape, "ok", _m(2e-3), {"weights": "random (speed shape: quality = change only)"}))
    trade = inference_tradeoffs(results_frame([make_run(tmp_path, "r", CPU_ENV, inference=results)]))
    workloads = set(inference_cost_table(trade)["workload"])
    assert workloads == {"digits_mlp_wide", "digits_mlp", "byte_gpt_d2048_random (random weights)"}


def test_host_bound_gpu_cases_are_flagged_with_their_kernel_time(tmp_path):
    """A GPU case whose kernels fill under half its latency is named as host-bound; a GEMM-bound one is not."""
    results = []
    for variant, latency, kernel in (("bf16", 0.9e-3, 0.1e-3), ("bf16_cudagraphs", 0.2e-3, 0.15e-3)):
        case = CaseSpec.make("inference", "byte_gpt", variant, "cuda", batch=8)
        results.append(CaseResult(case, "ok", _m(latency), {"gpu_kernel_s_per_call": kernel,
                                                             "gpu_busy_fraction": kernel / latency}))
    text = build_report([make_run(tmp_path, "gpu", H200_ENV, inference=results)], tmp_path / "out").readme.read_text()
    section = text.split("**Host-bound GPU cases (1)**")[1].split("\n\n")[1]
    assert "byte_gpt-bf16-batch8-cuda" in section and "11%" in section
    assert "bf16_cudagraphs" not in section
    cpu_only = build_report([make_run(tmp_path, "cpu", CPU_ENV, inference=inference_results())], tmp_path / "o2")
    assert "Host-bound" not in cpu_only.readme.read_text()


def test_pareto_front_and_units():
    # (cost, gain): (0, 1) and (0, 2.4) and (0.3, 1.0) and (30, 1.01)
    assert pareto_front([0, 0, 0.3, 30], [1.0, 2.4, 1.0, 1.01]) == [False, True, False, False]
    assert pareto_front([0, 1], [1.0, 3.0]) == [True, True]
    assert select_time_unit([2e-3, 3e-3, 0.5]) == (1e-3, "ms")
    assert select_time_unit([5e-7]) == (1e-9, "ns")
    assert [fmt_num(v) for v in (0.0123456, 4.567, 789.4, 34012.0)] == ["0.0123", "4.57", "789", "34,012"]


def test_machine_tags():
    assert machine_tag(CPU_ENV) == "2-core CPU"
    assert machine_tag(H200_ENV) == "2x H200"
    assert machine_tag({"cpu_model": "Apple M3", "cpu_count": 8}) is None


@pytest.mark.slow
def test_report_cli_writes_readme_and_rejects_bad_input(tmp_path):
    w = RunWriter(tmp_path / "run", "inference", {"profile": "quick"}, {}, {"id": "abc"}, CPU_ENV)
    for r in inference_results():
        w.add(r)
    proc = effbench("report", str(tmp_path / "run"), "--out", str(tmp_path / "rep"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rep" / "README.md").is_file() and len(list((tmp_path / "rep").glob("*.png"))) >= 2
    assert (tmp_path / "rep" / "inference.csv").is_file()
    bad = effbench("report", str(tmp_path / "missing"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "no such" in bad.stderr


def test_a_run_with_nothing_measured_still_reports_its_skips_and_failures(tmp_path):
    results = [CaseResult.skipped(CaseSpec.make("collectives", "nccl", "all_reduce", "cuda", dtype="float32",
                                                size_bytes=1024, world_size=2), "NCCL needs CUDA tensors"),
               CaseResult.failed(CaseSpec.make("training", "gpt_bytes", "sync", "cpu", backend="gloo", world_size=2),
                                 "rank 1 exited with status 1")]
    report = build_report([make_run(tmp_path, "r", CPU_ENV, mixed=results)], tmp_path / "out")
    text = report.readme.read_text()
    assert report.plots == [] and "## Collectives" not in text and "## Training" not in text
    assert "**Failed cases (1)**" in text and "rank 1 exited with status 1" in text
    assert "NCCL needs CUDA tensors" in text


def test_plots_are_written_as_palette_pngs(tmp_path):
    """A report embeds every plot in its page: a palette PNG is about a third of matplotlib's RGBA one."""
    from matplotlib.figure import Figure

    from bench_lib.report.png import save_png

    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    for k in range(5):
        ax.plot(range(50), [k * x ** 0.5 for x in range(50)], label=f"series {k}")
    ax.legend()
    path = save_png(fig, tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.read_bytes()[25] == 3  # IHDR colour type 3: indexed (palette)
