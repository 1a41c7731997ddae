"""The report's decode section from synthetic decode results: table values, roofline, plot, shortfall notes."""

import math

import pytest
from test_report import H200_ENV, _m, make_run

from bench_lib.report import plots
from bench_lib.report.frames import (
    decode_shortfalls,
    decode_table,
    decode_tradeoffs,
    latest_per_case,
    roofline_tokens_per_s,
)
from bench_lib.report.load import results_frame
from bench_lib.report.markdown import build_report
from bench_lib.results.case import CaseResult, CaseSpec
from bench_lib.techniques.inference import TECHNIQUES as REGISTRY

PEAK = 4.8e12
# variant: (TPOT at batch 1, bytes per step at batch 1, stored paired speedup or None)
TECHNIQUES = {"bf16": (1 / 240, 16e9, None), "int8_weight_only": (1 / 360, 8.5e9, (1.5, 1.4, 1.6)),
              "fp8_weight_only": (1 / 120, 8.5e9, None)}


def decode_results(batches=(1, 8), techniques=TECHNIQUES, tpot_scale=1.0):
    out = []
    for batch in batches:
        for variant, (tpot, bytes_1, paired) in techniques.items():
            tpot *= tpot_scale * (1 + 0.1 * (batch - 1) / 7)  # batch 8: 10% slower a step
            step_bytes = bytes_1 + 0.5e9 * (batch - 1) / 7      # the KV cache grows with the batch
            common = {"weights": "random (speed shape: quality = change against the reference only)",
                      "bytes_per_step": step_bytes, "peak_bandwidth_bytes_per_s": PEAK,
                      "peak_bandwidth_source": "data sheet", "greedy_token_agreement": 1.0 if variant == "bf16"
                      else 0.25, "greedy_prefix_tokens": 128.0 if variant == "bf16" else 12.0,
                      "technique_note": f"{variant} note"}
            spec = {"batch": batch, "prompt": 128, "gen": 128, "mode": "graphs"}
            ttft = 0.02 * batch * (2 if variant == "fp8_weight_only" else 1)
            out.append(CaseResult(CaseSpec.make("decode", "llama_tiny", variant, "cuda", phase="prefill", **spec),
                                  "ok", _m(ttft), {**common, "ttft_median_s": ttft, "latency_median_s": ttft}))
            decode = {**common, "tpot_median_s": tpot, "latency_median_s": tpot,
                      "throughput_tokens_per_s": batch / tpot, "tpot_step_p50_s": tpot,
                      "tpot_step_p90_s": tpot * 1.1, "tpot_step_p99_s": tpot * 1.5,
                      "achieved_bandwidth_bytes_per_s": step_bytes / tpot,
                      "bandwidth_fraction": step_bytes / tpot / PEAK, "energy_j_per_token": 2.5,
                      "top_ops": [{"op": f"{variant}_gemv_kernel", "self_us_per_call": 1500.0, "share": 0.62,
                                   "count_per_call": 32.0}], "top_ops_clock": "device self time"}
            if paired:
                decode |= dict(zip(("speedup", "speedup_ci95_low", "speedup_ci95_high"), paired, strict=True))
            out.append(CaseResult(CaseSpec.make("decode", "llama_tiny", variant, "cuda", phase="decode", **spec),
                                  "ok", _m(tpot), decode))
    return out


def test_roofline_is_batch_times_peak_over_bytes():
    assert roofline_tokens_per_s(1, 4.8e12, 16e9) == pytest.approx(300.0)
    assert roofline_tokens_per_s(8, 4.8e12, 16e9) == pytest.approx(2400.0)
    assert math.isnan(roofline_tokens_per_s(1, None, 16e9)) and math.isnan(roofline_tokens_per_s(1, 4.8e12, 0))


def test_decode_table_joins_the_phases_and_reads_down(tmp_path):
    trade = decode_tradeoffs(results_frame([make_run(tmp_path, "r", H200_ENV, decode=decode_results())]))
    assert trade.loc[trade["variant"] == "bf16", "roofline_tokens_per_s"].iloc[0] == pytest.approx(300.0)
    table, unit = decode_table(trade)
    assert unit == "ms"
    assert list(table.columns) == [
        "workload", "device", "technique", "mode", "batch", "prompt", "TTFT (ms)", "TPOT (ms)",
        "step p90 / p99 (ms)", "decode tokens/s", "bandwidth GB/s (of peak)", "roofline tokens/s",
        "decode speedup [95% CI]", "greedy agreement (prefix tokens)", "energy/token (J)", "weights"]
    assert len(table) == 6                                       # 3 techniques x 2 batches, prefill joined
    first = table.iloc[0]                                        # the baseline leads its batch
    assert (first["technique"], first["batch"], first["TTFT (ms)"], first["TPOT (ms)"]) == ("bf16", 1, "20.0", "4.17")
    assert first["step p90 / p99 (ms)"] == "4.58 / 6.25"
    assert first["decode tokens/s"] == "240.0" and first["roofline tokens/s"] == "300"
    assert first["bandwidth GB/s (of peak)"] == "3,840 (80%)"
    assert first["decode speedup [95% CI]"] == "1 (bf16: baseline)" and first["weights"] == "random"
    assert first["greedy agreement (prefix tokens)"] == "100.0% (128)"
    int8 = table[(table["technique"] == "int8_weight_only") & (table["batch"] == 1)].iloc[0]
    assert int8["decode speedup [95% CI]"] == "1.50x [1.40, 1.60]"    # the stored paired figure
    assert int8["roofline tokens/s"] == "565"                         # 4.8e12 / 8.5e9, its own bytes
    fp8 = trade[(trade["variant"] == "fp8_weight_only") & (trade["param.phase"] == "decode")
                & (trade["param.batch"] == 8)].iloc[0]
    assert fp8["speedup"] == pytest.approx(0.5, rel=1e-6) and not fp8["speedup_paired"]
    assert table[table["technique"] == "fp8_weight_only"]["decode speedup [95% CI]"].str.endswith("*").all()


def test_shortfall_sentence_names_the_top_kernel(tmp_path):
    trade = decode_tradeoffs(results_frame([make_run(tmp_path, "r", H200_ENV, decode=decode_results((1,)))]))
    notes = decode_shortfalls(trade)
    assert len(notes) == 1                                       # fp8 only: int8 is faster, bf16 the baseline
    assert notes[0].startswith("`fp8_weight_only` (llama_tiny on cuda, graphs, batch 1, prompt 128) decodes at 0.5")
    assert "`fp8_weight_only_gemv_kernel`, 62% of the step's device self time" in notes[0]
    assert "against the baseline's 80%" in notes[0]


def test_newest_run_wins_per_case(tmp_path):
    old = make_run(tmp_path, "20261201T100000Z-decode", H200_ENV, decode=decode_results((1,), tpot_scale=2.0))
    failed = CaseResult.failed(CaseSpec.make("decode", "llama_tiny", "int4_weight_only", "cuda", batch=1, prompt=128,
                                             gen=128, mode="graphs", phase="decode"), "RuntimeError: no kernel")
    new = make_run(tmp_path, "20261201T110000Z-decode", H200_ENV, decode=[*decode_results((1,)), failed])
    trade, dropped = latest_per_case(decode_tradeoffs(results_frame([new, old])))
    assert dropped == 6 and set(trade["run"]) == {"20261201T110000Z-decode"}
    text = build_report([old, new], tmp_path / "out").readme.read_text()
    assert "6 older result(s) are left out" in text
    assert "| llama_tiny | cuda | bf16 | graphs | 1 | 128 | 20.0 | 4.17 |" in text      # not the older 8.33
    assert "| 20261201T110000Z-decode | decode/llama_tiny-int4_weight_only-" in text        # which run failed it


def test_report_has_the_decode_section_plot_and_failures(tmp_path):
    results = decode_results()
    results.append(CaseResult.failed(CaseSpec.make("decode", "llama_tiny", "int4_weight_only", "cuda", batch=1,
                                                   prompt=128, gen=128, mode="graphs", phase="decode"),
                                     "worker exited\nTraceback ...\nRuntimeError: int4 needs mslk"))
    results.append(CaseResult.skipped(CaseSpec.make("decode", "llama_tiny", "int4_weight_only_24", "cuda", batch=1,
                                                    prompt=128, gen=128, mode="graphs", phase="decode"),
                                      "no int4 with 2:4 sparsity"))
    report = build_report([make_run(tmp_path, "r", H200_ENV, decode=results)], tmp_path / "out")
    text = report.readme.read_text()
    assert "## Decode (LLM serving)" in text and "## Inference" not in text
    assert "**Slower than the baseline at decode (2)**" in text       # fp8 at batch 1 and 8
    assert "RuntimeError: int4 needs mslk" in text and "no int4 with 2:4 sparsity" in text
    # a registered technique is described in today's words, not its stored note's
    assert f"- `int8_weight_only`: {REGISTRY['int8_weight_only'].note}" in text
    (plot,) = [p for p in report.plots if p.name == "decode_throughput.png"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "](decode_throughput.png)" in text


def test_plot_with_batch_one_only_draws_points_and_the_roofline(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path: figures.append(fig) or path)
    trade = decode_tradeoffs(results_frame([make_run(tmp_path, "r", H200_ENV, decode=decode_results((1,)))]))
    assert plots.decode_tokens_vs_batch(trade, tmp_path / "d.png") == tmp_path / "d.png"
    (ax,) = [a for a in figures[0].axes if a.get_visible()]
    measured = [line for line in ax.lines if line.get_label().endswith(" / graphs")]
    assert len(measured) == 3 and all(line.get_linestyle() == "None" for line in measured)
    assert {round(float(line.get_ydata()[0])) for line in measured} == {240, 360, 120}
    roof = [c for c in ax.collections if c.get_label().startswith("roofline")]
    assert len(roof) == 1 and roof[0].get_segments()[0][0][1] == pytest.approx(300.0)
    assert "roofline 300 tokens/s" in [t.get_text() for t in ax.texts]
    two = decode_tradeoffs(results_frame([make_run(tmp_path, "r2", H200_ENV, decode=decode_results())]))
    plots.decode_tokens_vs_batch(two, tmp_path / "d2.png")
    lines = [line for line in figures[1].axes[0].lines if line.get_label().endswith(" / graphs")]
    assert all(line.get_linestyle() == "-" for line in lines)
