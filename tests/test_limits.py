"""Every figure beside the machine's limit: the run's measured peaks, each case's work and roofline, MFU,
exposed communication, and the device-isolation record (issue 29)."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.nn import functional as F

from bench_lib.execution.isolation import IsolationMonitor, NvmlRow, descendants, not_checked, other_processes
from bench_lib.execution.run_peaks import run_devices
from bench_lib.measure.datasheet import data_sheet
from bench_lib.measure.flops import count_call, work
from bench_lib.measure.peaks import measure_device
from bench_lib.measure.stats import Measurement
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.roofline import compute_dtype, roofline_block
from bench_lib.results.store import RunWriter, load_run_file


def test_cpu_peaks_probe_is_quick_positive_and_says_the_data_sheet_is_not_known():
    started = time.perf_counter()
    peaks = measure_device("cpu", ["float32", "int8"], budget_s=0.05)
    assert time.perf_counter() - started < 10
    assert peaks["memory"]["measured_bytes_per_s"] > 1e8  # any machine copies faster than 100 MB/s
    for dtype in ("float32", "int8"):
        assert peaks["compute"][dtype]["measured_ops_per_s"] > 1e8
        assert peaks["compute"][dtype]["data_sheet_ops_per_s"] is None
        assert peaks["compute"][dtype]["data_sheet"].startswith("not known")
    assert peaks["memory"]["data_sheet"].startswith("not known")


@pytest.mark.parametrize(("name", "bandwidth", "bf16", "fp8"), [
    ("NVIDIA H200", 4.8e12, 989e12, 1979e12),
    ("NVIDIA H100 80GB HBM3", 3.35e12, 989e12, 1979e12),
    ("NVIDIA H100 PCIe", 2.0e12, None, None),  # bandwidth only: its compute peaks are not in the table
])
def test_data_sheet_figures_by_device_name(name, bandwidth, bf16, fp8):
    sheet = data_sheet(name)
    assert sheet.bandwidth_bytes_per_s == bandwidth
    assert sheet.dense_ops_per_s.get("bfloat16") == bf16 and sheet.dense_ops_per_s.get("float8") == fp8
    assert data_sheet("Tesla T4") is None and data_sheet(None) is None


def test_flops_of_a_linear_are_2mnk_counted_or_from_shapes_when_the_counter_is_blind():
    m, k, n = 8, 64, 32
    layer, x = nn.Linear(k, n), torch.randn(m, k)
    with torch.no_grad():
        counted = count_call(lambda: layer(x), layer)
    assert counted.flops == 2 * m * n * k and not counted.derived_layers
    quantized = torch.ao.quantization.quantize_dynamic(nn.Sequential(layer), {nn.Linear}, dtype=torch.qint8)
    with torch.no_grad():
        derived = count_call(lambda: quantized(x), quantized)
    assert derived.counted == 0  # the packed int8 kernel is invisible to the counter
    assert derived.flops == 2 * m * n * k and derived.derived_layers == ["0"]
    assert "1 of 1 weighted layers from their shapes" in derived.counted_by
    assert derived.activation_bytes == (m * k + m * n) * 4


def test_training_step_count_covers_forward_and_backward():
    layer, x = nn.Linear(16, 8), torch.randn(4, 16, requires_grad=True)
    step = count_call(lambda: layer(x).sum().backward(), layer)
    assert step.flops == 3 * 2 * 4 * 16 * 8  # forward, input gradient, weight gradient


def test_attention_with_fewer_kv_heads_counts_as_the_query_heads_do_forward_and_backward():
    """torch's counter saw no CPU attention and refused grouped-query shapes before 2.12 (the H200's Llama-3)."""
    from bench_lib.measure.flops import GQA_FORMULAS

    batch, heads, kv_heads, seq, dim = 1, 8, 2, 16, 32
    q = torch.randn(batch, heads, seq, dim, requires_grad=True)
    k, v = (torch.randn(batch, kv_heads, seq, dim, requires_grad=True) for _ in range(2))
    step = count_call(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True).sum().backward(), nn.Identity())
    forward = 2 * (2 * batch * heads * seq * seq * dim)  # scores and the weighted sum
    assert step.flops == forward + 5 * forward // 2  # the backward recomputes the scores: 5 products
    gpu_kernel = GQA_FORMULAS[torch.ops.aten._scaled_dot_product_efficient_attention]  # on torch < 2.12: raises
    assert gpu_kernel(q.shape, k.shape, v.shape) == forward


def _peaks(data_sheet_flops: float | None = None) -> dict:
    return {"cpu": {"device": "cpu", "memory": {"measured_bytes_per_s": 1e10, "method": "copy",
                                                "data_sheet_bytes_per_s": None, "data_sheet": "not known: x"},
                    "compute": {"float32": {"measured_ops_per_s": 1e11, "method": "matmul",
                                            "data_sheet_ops_per_s": data_sheet_flops,
                                            "data_sheet": "sheet" if data_sheet_flops else "not known: no sheet"}}}}


def test_roofline_fractions_and_mfu_not_known_without_a_data_sheet():
    w = {"per": "step", "flops_per_call": 1e9, "bytes_per_call": 1e8, "compute_dtype": "float32"}
    block = roofline_block(w, 0.1, "cpu", _peaks())
    assert block["achieved_flops_per_s"] == pytest.approx(1e10)
    assert block["flops_fraction_measured"] == pytest.approx(0.1)  # MFU against the measured peak
    assert block["flops_fraction_data_sheet"] is None  # N/A: the data sheet is not known
    assert block["intensity_flops_per_byte"] == pytest.approx(10)
    assert "not known: no sheet" in block["notes"]
    above = roofline_block(w, 0.001, "cpu", _peaks(5e11))  # 1e12 FLOP/s: above both peaks
    assert above["flops_fraction_data_sheet"] == pytest.approx(2.0)
    assert any("above 100% of the data-sheet compute peak" in n for n in above["notes"])
    assert any("above 100% of the measured compute peak" in n for n in above["notes"])


def test_compute_dtype_of_techniques():
    assert compute_dtype("int8_dynamic", "cpu") == "int8"
    assert compute_dtype("int8_weight_only", "cuda") == "bfloat16"
    assert compute_dtype("fp8_dynamic", "cuda") == "float8"
    assert compute_dtype("fp16_compile", "cuda") == "float16"
    assert compute_dtype("sync", "cpu") == "float32"


def test_run_probes_the_devices_and_dtypes_of_its_roofline_cases():
    cases = [CaseSpec.make("inference", "w", "fp32", "cpu", batch=1),
             CaseSpec.make("inference", "w", "int8_dynamic", "cpu", batch=1),
             CaseSpec.make("collectives", "gloo_cpu", "all_reduce", "cpu")]
    assert run_devices(cases) == {"cpu": ["float32", "int8"]}
    assert run_devices(cases[2:]) == {}


def test_the_store_joins_work_and_peaks_into_a_roofline_that_reads_back(tmp_path):
    case = CaseSpec.make("inference", "w", "fp32", "cpu", batch=1)
    layer, x = nn.Linear(32, 32), torch.randn(4, 32)
    with torch.no_grad():
        count = count_call(lambda: layer(x), layer)
    metrics = {"work": work(count, "float32", {"weights": 32 * 33 * 4, "activations": count.activation_bytes})}
    result = CaseResult(case, "ok", Measurement((0.001, 0.002, 0.003)), metrics)
    env = {"peaks": _peaks(), "device_isolation": not_checked("no GPU among the run's cases")}
    writer = RunWriter(tmp_path, "inference", {}, {}, {}, env)
    writer.add(result)
    data = load_run_file(writer.path)
    block = data.results[0].metrics["roofline"]
    assert block["flops_per_call"] == 2 * 4 * 32 * 32
    assert block["seconds_per_call"] == pytest.approx(0.002)
    assert block["flops_fraction_measured"] == pytest.approx(2 * 4 * 32 * 32 / 0.002 / 1e11)
    assert data.environment["peaks"]["cpu"]["compute"]["float32"]["measured_ops_per_s"] == 1e11
    assert data.environment["device_isolation"]["checked"] is False
    stored = json.loads(writer.path.read_text())
    stored["benchmarks"][0]["extra_info"]["metrics"]["roofline"]["seconds_per_call"] = "fast"
    writer.path.write_text(json.dumps(stored))
    with pytest.raises(Exception, match="roofline.seconds_per_call"):
        load_run_file(writer.path)


_TABLE = {1: (0, "init"), 100: (1, "effbench"), 101: (100, "worker"), 102: (101, "rank"), 200: (1, "vllm")}


def test_nvml_rows_of_the_runs_own_process_tree_are_not_others():
    own = descendants(100, _TABLE)
    assert own == {100, 101, 102}
    rows = [NvmlRow(0, 101, 1 << 30), NvmlRow(0, 102, 1 << 30), NvmlRow(0, 200, 2 << 30), NvmlRow(1, 999, None)]
    others = other_processes(rows, own, _TABLE)
    assert [(o["pid"], o["name"], o["gpu"], o["visible"]) for o in others] == [(200, "vllm", 0, True),
                                                                               (999, None, 1, False)]


def test_isolation_record_says_shared_only_for_a_visible_other_process():
    monitor = IsolationMonitor([0])
    monitor.check(rows=[])
    assert monitor.record()["shared"] is False
    monitor.check(rows=[NvmlRow(0, 2**22 + 12345, None)])  # no such pid here: unattributed
    assert monitor.record()["shared"] is None
    monitor.check(rows=[NvmlRow(0, 1, 1024)])  # pid 1 is visible and not this process's descendant
    record = monitor.record()
    assert record["shared"] is True and record["checks"] == 3
    assert {o["pid"] for o in record["other_processes"]} == {1, 2**22 + 12345}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_rank(rank: int, port: int, out: dict) -> None:
    import torch.distributed as dist

    from bench_lib.techniques.strategies import make_strategy

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(256, 256) for _ in range(4)])
    strategy = make_strategy("sync", model, 1, "cpu")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    steps = []
    for _ in range(12):
        started = time.perf_counter()
        strategy.forward_module()(torch.randn(32, 256)).sum().backward()
        opt.step()
        opt.zero_grad()
        steps.append(time.perf_counter() - started)
    out[rank] = {**strategy.comm_figures(), "step_s": sorted(steps)[len(steps) // 2]}
    dist.destroy_process_group()


@pytest.mark.slow
def test_exposed_communication_of_ddp_on_two_gloo_ranks():
    """DDP's own timers: communication per step, the part not overlapped with backward, within the step."""
    ctx = mp.get_context("fork")
    with ctx.Manager() as manager:
        out = manager.dict()
        port = _free_port()
        procs = [ctx.Process(target=_ddp_rank, args=(r, port, out)) for r in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        figures = dict(out)
    assert all(p.exitcode == 0 for p in procs) and set(figures) == {0, 1}
    for f in figures.values():
        assert f["comm_s_per_step"] > 0
        assert 0 <= f["exposed_comm_measured_s"] <= f["comm_s_per_step"]
        assert f["exposed_comm_measured_s"] <= f["step_s"]
        assert "DDP runtime stats" in f["comm_measured_by"]


def test_report_cells_give_the_share_of_each_peak_and_na_where_unknown():
    import pandas as pd

    from bench_lib.report.frames.common import peak_share_cell

    cpu = pd.Series({"roofline": {"flops_fraction_measured": 0.0587, "bytes_fraction_measured": 0.0082,
                                  "flops_fraction_data_sheet": None, "bytes_fraction_data_sheet": None}})
    gpu = pd.Series({"roofline": {"flops_fraction_measured": 0.41, "bytes_fraction_measured": None,
                                  "flops_fraction_data_sheet": 0.33, "bytes_fraction_data_sheet": None}})
    assert peak_share_cell(cpu) == "5.9% · 0.82%"  # below 1%: two significant digits
    tiny_model = pd.Series({"roofline": {"flops_fraction_measured": 0.000137, "flops_fraction_data_sheet": 1.2e-7}})
    assert peak_share_cell(tiny_model, ("flops",)) == "0.014% [sheet 0.000012%]"  # not "0.0%"
    assert peak_share_cell(gpu) == "41.0% · N/A [sheet 33.0% · N/A]"
    assert peak_share_cell(gpu, ("flops",)) == "41.0% [sheet 33.0%]"
    assert peak_share_cell(pd.Series({"median_s": 1.0})) == "-"


def test_roofline_labels_of_marks_in_one_spot_stack_apart_and_keep_their_text():
    import numpy as np
    from matplotlib.figure import Figure

    from bench_lib.report.roofline_plot import _label

    fig = Figure(figsize=(7.5, 6.2))
    ax = fig.subplots()
    points = [{"label": f"case-{i}", "intensity": 10.0, "flops": 1e12 * (1 + i * 1e-3)} for i in range(12)]
    points.append({"label": "far-away", "intensity": 1000.0, "flops": 1e12})
    ax.scatter([p["intensity"] for p in points], [p["flops"] for p in points])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.autoscale_view()
    _label(ax, points, np.array([7.5, 6.2]))
    placed = {t.get_text(): t.xyann for t in ax.texts}
    assert set(placed) == {p["label"] for p in points}
    rows = sorted(y for name, (_, y) in placed.items() if name.startswith("case-"))
    assert float(np.diff(rows).min()) > 0.02  # a text line apart, not on top of each other
    assert placed["far-away"][1] == pytest.approx(min(rows), abs=1e-3)  # another column: not pushed up
