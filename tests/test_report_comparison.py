"""`effbench report RUN_A RUN_B`: the comparison section of a report of two runs or two machines."""

from bench_lib.measure.stats import Measurement
from bench_lib.report.load import load_spec
from bench_lib.report.run_comparison import comparison_section, sides
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.results.store import RunWriter

ENV = {"cpu_model": "AMD EPYC", "cpu_count": 2, "torch": "2.13.0+cpu"}


def write_run(path, device="cpu", env=ENV, factor=1.0, winner="int8_dynamic"):
    """The device's baseline (fp32 on CPU, bf16 on GPU) and two techniques at batch 8; `winner` with the larger
    stored speedup over the baseline."""
    w = RunWriter(path, "inference", {"profile": "quick"}, {}, {"id": "abc", "dirty": False}, env)
    for variant, speedup in (("fp32" if device == "cpu" else "bf16", None), ("int8_dynamic", 1.5), ("structured", 1.2)):
        speedup = 2.0 if variant == winner else speedup
        case = CaseSpec.make("inference", "mlp", variant, device, batch=8)
        samples = tuple(factor * 1e-3 / (speedup or 1) * (1 + 0.01 * (k % 5 - 2)) for k in range(30))
        metrics = {} if speedup is None else {"speedup": speedup, "speedup_ci95_low": speedup / 1.05,
                                               "speedup_ci95_high": speedup * 1.05}
        w.add(CaseResult(case, "ok", Measurement(samples), metrics))
    return path


def test_two_runs_of_one_machine_are_compared_case_by_case(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", factor=1.5, winner="structured")
    text = "\n".join(comparison_section(load_spec(str(a), str(b))))
    assert "BASE: `a`; NEW: `b`." in text and "Both sides ran on the same machine and versions" in text
    assert "2 case(s) changed (NEW/BASE [95% CI]): `inference/mlp-int8_dynamic-batch8-cpu` slower, 2.000" in text
    assert "over `inference/mlp-fp32-batch8-cpu`, `int8_dynamic` in BASE, `structured` in NEW" in text


def test_two_machines_are_compared_by_their_winning_techniques(tmp_path):
    runs = [write_run(tmp_path / "cpu1"), write_run(tmp_path / "cpu2"),
            write_run(tmp_path / "gpu", "cuda", {**ENV, "cpu_model": "Xeon", "gpus": [{"name": "H100"}]},
                      winner="structured")]
    loaded = load_spec(*map(str, runs))
    base, new = sides(loaded)
    assert [r.name for r in base] == ["cpu1", "cpu2"] and [r.name for r in new] == ["gpu"]
    text = "\n".join(comparison_section(loaded))
    assert "**BASE and NEW differ in cpu_model (`AMD EPYC` against `Xeon`)" in text
    assert "No case was measured on both sides alike." in text
    assert ("`int8_dynamic` on cpu, 2.00x [1.90, 2.10] over fp32 in BASE, `structured` on cuda, 2.00x [1.90, 2.10] "
            "over bf16 in NEW") in text


def test_one_run_has_no_comparison(tmp_path):
    assert comparison_section(load_spec(str(write_run(tmp_path / "a")))) == []


def test_runs_of_different_suites_are_not_compared(tmp_path):
    a = write_run(tmp_path / "a")
    w = RunWriter(tmp_path / "t", "training", {"profile": "quick"}, {}, {"id": "abc", "dirty": False}, ENV)
    w.add(CaseResult(CaseSpec.make("training", "mlp", "sync", "cpu", world_size=2), "ok",
                     Measurement(tuple(1e-3 * (1 + 0.01 * k) for k in range(10))), {}))
    assert comparison_section(load_spec(str(a), str(tmp_path / "t"))) == []
