"""The report's findings, its CSV files and its reproduce block: from synthetic runs and from the stored quick run."""

from pathlib import Path

import pandas as pd
import pytest
from test_report import CPU_ENV, H200_ENV, _m, collective_results, inference_results, make_run

from bench_lib.report.findings import findings_section
from bench_lib.report.load import load_spec, results_frame
from bench_lib.report.markdown import build_report
from bench_lib.report.reproduce import ABSOLUTE_PATH, REPO_ROOT, run_command, strip_machine_paths
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.store import RunData

QUICK_RUN = REPO_ROOT / "results" / "20261203T150855Z-all-quick-auto"


def _slower_case(batch: int) -> CaseResult:
    """fp32_compile at half the baseline's speed, with the profiler's top op as its evidence."""
    case = CaseSpec.make("inference", "digits_mlp_wide", "fp32_compile", "cpu", batch=batch)
    lat = 2e-4 * batch ** 0.7
    return CaseResult(case, "ok", _m(lat), {"accuracy": 0.97, "accuracy_delta": 0.0, "top_ops_clock": "CPU self time",
                                            "top_ops": [{"op": "aten::addmm", "share": 0.9, "self_us_per_call": 90.0}]})


def _findings(runs) -> str:
    return "\n".join(findings_section(results_frame(runs), runs, "glossary"))


def test_findings_state_the_front_and_the_losers_with_numbers(tmp_path):
    run = make_run(tmp_path, "r", CPU_ENV, inference=[*inference_results(), _slower_case(64)])
    text = _findings([run])
    line = next(x for x in text.splitlines() if "digits_mlp_wide · batch 64" in x)
    # int8_dynamic: 2.4x at no accuracy cost, on the front; the fp32 baseline is not a finding
    assert "front: `int8_dynamic` 2.40x [" in line and "+0.00 pts accuracy" in line
    assert "(within noise)" not in line  # its interval lies above 1
    losses = text.splitlines()[text.splitlines().index(line) + 1]
    assert losses.startswith("  - loses:")
    assert "`fp32_compile` slower: 0.500x [" in losses and "top op `aten::addmm` 90% of CPU self time" in losses
    # 30 points of accuracy lost: below the 99% floor, however fast
    assert "`l1_unstructured (sparsity=0.9)` below the quality floor: -30.00 pts accuracy, keeps 69.1%" in losses
    assert "**Failed**: 1 cases" in text and "**Skipped**: 1 cases" in text


def test_findings_name_a_user_model_and_its_own_quality_target(tmp_path):
    results = []
    for variant, speed, kept in (("fp32", 1.0, 1.0), ("int8_dynamic", 3.0, 0.95), ("structured", 1.5, 0.995)):
        case = CaseSpec.make("inference", "my_mlp", variant, "cpu", batch=8, model="py:my_pkg.models:build",
                             quality_target=0.97)
        results.append(CaseResult(case, "ok", _m(1e-3 / speed), {
            "quality_kept": kept, "quality_target": 0.97, "quality_metric": "top-1 accuracy"}))
    text = _findings([make_run(tmp_path, "r", CPU_ENV, inference=results)])
    assert "inference · cpu · my_mlp · batch 8" in text
    assert "front: `structured` 1.50x [" in text and "keeps 99.5% of the reference's top-1 accuracy" in text
    assert "`int8_dynamic` below the quality floor: keeps 95.0% of the reference's top-1 accuracy, keeps 95.0% " \
           "(floor 97%)" in text


def test_findings_hold_collectives_against_the_reference_of_their_machine(tmp_path):
    text = _findings([make_run(tmp_path, "r", H200_ENV, collectives=collective_results())])
    line = next(x for x in text.splitlines() if x.startswith("- **collectives · nccl · all_reduce"))
    # 1 GiB on the synthetic link: 300 GB/s x 1024/1025 = 299.7, against nccl-tests' 330.3 on 2 x H200
    assert "1.0 GiB busbw 300 GB/s [" in line and "vs 330 (91%)" in line and "1.0 KiB latency" in line
    assert not any(x.startswith("- **collectives · nccl · all_gather") for x in text.splitlines())  # no reference


def test_no_line_of_a_report_holds_a_machine_path_and_the_csv_is_beside_it(tmp_path):
    results = [*inference_results(), CaseResult.failed(
        CaseSpec.make("inference", "digits_mlp", "int4", "cpu", batch=8),
        f"worker failed loading {tmp_path}/weights.pt\nTraceback ...\n"
        "OSError: cannot open /opt/venv/lib/python3.11/site-packages/torch/x.py")]
    run_dir = tmp_path / "20261201T000000Z-inference-quick-cpu"
    run = make_run(tmp_path, run_dir.name, CPU_ENV, inference=results)
    run.files = [RunData(f.path, f.suite, {"command": f"effbench run --suite inference --out {tmp_path}/res"},
                         f.environment, f.commit, f.results) for f in run.files]
    report = build_report([run], tmp_path / "report")
    text = report.readme.read_text()
    assert str(tmp_path) not in text and "/opt/venv" not in text
    assert [line for line in text.splitlines() if ABSOLUTE_PATH.search(line)] == []
    assert "torch/x.py" in text  # the failing library file, relative to site-packages
    assert "`effbench run --suite inference`" in text  # the run's command without the machine's --out
    assert f"effbench report results/{run_dir.name} --out reports/report" in text
    assert str(tmp_path) not in (tmp_path / "report" / "inference.csv").read_text()
    csv = pd.read_csv(tmp_path / "report" / "inference.csv")
    assert report.csv == [tmp_path / "report" / "inference.csv"] and "(inference.csv)" in text
    assert len(csv) == len(results) and {"case_id", "status", "median_s", "accuracy"} <= set(csv.columns)


def test_machine_paths_are_made_relative():
    assert run_command(make_run(Path("/x"), "r", CPU_ENV, inference=[])) == "effbench run"
    assert strip_machine_paths(f"{REPO_ROOT}/results/r/a.json") == "results/r/a.json"
    assert strip_machine_paths("hf:/root/ckpts/tiny and https://host/a/b") == "hf:.../ckpts/tiny and https://host/a/b"
    assert strip_machine_paths("no RAPL: /sys/class/powercap does not exist") == \
           "no RAPL: /sys/class/powercap does not exist"


@pytest.mark.skipif(not QUICK_RUN.is_dir(), reason="the stored quick run is not in this checkout")
def test_findings_of_the_stored_quick_run_fit_one_screen_and_name_every_front_and_loser():
    runs = load_spec(str(QUICK_RUN))
    lines = findings_section(results_frame(runs), runs, "glossary")
    assert len("\n".join(lines).splitlines()) <= 40
    text = "\n".join(lines)
    for stated in ("`structured_int8 (sparsity=0.5)` 11.1x [8.43, 14.7], +0.00 pts accuracy",
                   "`structured (sparsity=0.5)` 1.69x [1.33, 2.14], +1.39 pts accuracy",
                   "`int8_dynamic` slower: 0.425x [0.409, 0.460]",
                   "`l1_unstructured_csr (sparsity=0.5)` slower: 0.496x [0.430, 0.579]",
                   "`l1_unstructured_csr (sparsity=0.9)` below the quality floor",
                   "`structured_heads (sparsity=0.5)` below the quality floor: perplexity 7.46",
                   "slower: `sync_powersgd` 0.778x [0.712, 0.952]",
                   "`local_sgd` 0.356 s [0.296, 0.416]"):
        assert stated in text


def test_every_published_report_names_stored_runs_and_links_the_glossary():
    """`nox -s reports` can write each directory of reports/ again: its report.toml names runs that are stored."""
    import tomllib

    dirs = sorted(p for p in (REPO_ROOT / "reports").iterdir() if p.is_dir())
    assert dirs
    for d in dirs:
        argv = tomllib.loads((d / "report.toml").read_text())["argv"]
        options = {i + 1 for i, a in enumerate(argv) if a.startswith("--")}  # an option's value is no run
        specs = [a for i, a in enumerate(argv) if i and not a.startswith("--") and i not in options]
        assert argv[0] in ("report", "project", "history") and specs, d
        assert all((REPO_ROOT / s).exists() for s in specs), d
        if argv[0] == "report":
            assert "(../../docs/glossary.md)" in (d / "README.md").read_text(), d


def test_findings_hold_each_phase_of_a_served_model_against_its_baseline():
    """Prefill's time to first token is where weight-only quantization pays for its dequantization (one H200)."""
    runs = load_spec(str(REPO_ROOT / "results" / "20261203T181436Z-decode-quick-cuda"))
    lines = "\n".join(findings_section(results_frame(runs), runs, "glossary")).splitlines()
    prefill = next(i for i, x in enumerate(lines) if x.startswith("- **prefill · cuda · llama_8b_random"))
    assert "front: `structured (sparsity=0.5)` 1.39x" in lines[prefill]
    assert "`int4_weight_only` slower: 0.514x [0.514, 0.514] (top op `dequant_tiles`" in lines[prefill + 1]
    decode = next(i for i, x in enumerate(lines) if x.startswith("- **decode · cuda · llama_8b_random"))
    assert decode < prefill and "front: `int4_weight_only` 1.45x [1.45, 1.46]" in lines[decode]
