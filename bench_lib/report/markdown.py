"""The report: README.md with tables and PNG plots for one or more runs.

`build_report` derives, draws and renders; it writes the plots first and README.md last,
atomically, so a reader never finds a README that points at missing plots. A section
appears only when its suite has data; absent metrics leave their columns out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench_lib.atomic import atomic_write_text
from bench_lib.platform import device_kind
from bench_lib.projection.project import Assumptions, project_runs
from bench_lib.projection.render import plot_efficiency, projection_markdown
from bench_lib.report import plots
from bench_lib.report.frames import (
    HOST_BOUND_BELOW,
    UNPAIRED_MARK,
    collectives_table,
    convergence_rows,
    convergence_table,
    decode_shortfalls,
    decode_table,
    decode_tradeoffs,
    energy_notes,
    failed_table,
    host_bound_table,
    inference_cost_table,
    inference_latency_table,
    inference_tradeoffs,
    latest_per_case,
    noisy_table,
    ok_rows,
    skipped_table,
    training_table,
)
from bench_lib.report.load import Run, environment_frame, results_frame
from bench_lib.report.references import machine_tag, references_for
from bench_lib.report.roofline_plot import roofline_section
from bench_lib.report.run_comparison import comparison_section
from bench_lib.report.user_models import run_file_section, user_models_section
from bench_lib.results.format import fmt_bytes, fmt_num, markdown_table
from bench_lib.techniques.baselines import SERVED_BASELINES

__all__ = ["Report", "build_report"]

DEPRECATION_NOTE = (
    "`int8_dynamic` uses `torch.ao.quantization.quantize_dynamic`, which is **deprecated** in `torch.ao` in favour "
    "of torchao (`torchao.quantization`); it is measured because it is still the fastest int8 path on AVX2-only "
    "CPUs, where torchao's int8 GEMM (`torch._int_mm`) runs a slow kernel (the case's top ops show it).")


@dataclass
class Report:
    """What was written: the README and the plots."""

    readme: Path
    plots: list[Path] = field(default_factory=list)


def _img(path: Path | None, out: Path, alt: str) -> str:
    return f"![{alt}]({path.relative_to(out).as_posix()})\n" if path else ""


def _inference(df: pd.DataFrame, out: Path, drawn: list[Path]) -> list[str]:
    trade = inference_tradeoffs(df)
    if trade.empty:
        return []
    lat, unit = inference_latency_table(trade)
    parts = ["## Inference\n",
             "Latency of one batch: median [95% CI] in " + unit + ", one column per technique "
             "(technique params in brackets). In runs of `effbench run` each figure is the median of short "
             "rounds interleaved over the whole run in random order and over several processes, and its interval "
             "treats the process as a random effect, so that it is meant to hold a rerun's median.\n",
             markdown_table(lat), ""]
    for fn, name, alt in ((plots.latency_vs_batch, "inference_latency.png", "latency vs batch size"),
                          (plots.throughput_vs_batch, "inference_throughput.png", "throughput vs batch size"),
                          (plots.speedup_vs_accuracy, "inference_tradeoff.png", "speedup vs accuracy cost"),
                          (_inference_energy_plot, "inference_energy.png", "tokens per joule")):
        path = fn(trade, out / name)
        if path:
            drawn.append(path)
            parts.append(_img(path, out, alt))
    parts += ["Speed against accuracy, size and memory. Speedup is the baseline's time (fp32 eager on CPU, bf16 "
              "eager on GPU) over the technique's, same run, workload and batch: from paired rounds (technique and "
              "baseline back to back in one process, in random order, in every process) with the 95% interval of "
              "the median paired ratio, the process a random effect (files without paired rounds: the ratio of "
              "medians with a within-run bootstrap interval); accuracy is on the workload's held-out "
              "real data, against the uncompressed reference; agreement is the share of predictions equal to "
              "the reference's; RSS added is the peak resident memory while the case ran over the process's "
              "before it was built.\n", markdown_table(inference_cost_table(trade)), ""]
    parts += _energy_section(trade, "an energy window of its own (at least 2 s of back-to-back calls)")
    host_bound = host_bound_table(trade)
    if not host_bound.empty:
        parts += [f"**Host-bound GPU cases ({len(host_bound)})**: their kernels fill less than "
                  f"{HOST_BOUND_BELOW:.0%} of a call (GPU busy = kernel time per call, from the profiler, over the "
                  "median latency), so the figure is the host's launch and dispatch speed, not the technique's "
                  "cost: it can move between processes and runs far beyond its interval. Compare such cases by "
                  "kernel time, or serve them with CUDA graphs (`bf16_cudagraphs`).\n", markdown_table(host_bound), ""]
    if "int8_dynamic" in set(trade["variant"]):
        parts += [f"> **Note:** {DEPRECATION_NOTE}\n"]
    return parts + _variant_notes(trade, "technique_note", "Techniques")


def _decode(df: pd.DataFrame, out: Path, drawn: list[Path]) -> list[str]:
    trade = decode_tradeoffs(df)
    if trade.empty:
        return []
    trade, superseded = latest_per_case(trade)
    table, unit = decode_table(trade)
    devices = set(trade["device"].map(device_kind))
    baseline = " and ".join(f"{SERVED_BASELINES[d]} on {'GPU' if d == 'cuda' else 'CPU'}" for d in ("cuda", "cpu")
                            if d in devices)
    parts = ["## Decode (LLM serving)\n",
             "One row per workload, technique, serving mode, batch and prompt length: the two phases of one "
             f"served model. TTFT is the median time of prefill (the whole prompt through the first token), "
             "TPOT the median time per output token of decode; each is the median of rounds interleaved over "
             f"the run. Step p90 / p99 are the tails of single decode steps. All times in {unit}. Decode "
             "tokens/s is batch / TPOT. Bandwidth is the bytes a decode step must read (every weight but the "
             "embedding table, and the whole static KV cache) over TPOT, with its share of the device's "
             "data-sheet peak; roofline tokens/s is batch x peak / those bytes, the most that any kernel reading "
             f"them could reach. Decode speedup is the baseline's TPOT ({baseline}, same run, mode, batch and "
             "prompt) over the technique's, from paired rounds with the 95% interval of the median paired ratio"
             f"; {UNPAIRED_MARK} marks a ratio of medians with a within-run bootstrap interval, where the run "
             "stored no paired rounds. Greedy agreement is the share of generated tokens equal to those of the "
             "uncompressed reference served eagerly, with the tokens generated before the first difference; "
             "with random weights (`weights: random`) logits are near ties, so agreement measures how much the "
             "numerics move, not quality. Perplexity (held-out, against the reference's) needs the trained "
             "model.\n"]
    if superseded:
        parts.append(f"Several runs measured the same cases: each row shows the newest run's successful result "
                     f"(run directories are named by their UTC start time), and {superseded} older result(s) "
                     "are left out; a case that failed in a newer run keeps its older successful result here, "
                     "and the failure is listed under Notes. Each speedup is against the baseline of its own "
                     "run.\n")
    parts += [markdown_table(table), ""]
    path = plots.decode_tokens_vs_batch(trade, out / "decode_throughput.png")
    if path:
        drawn.append(path)
        parts.append(_img(path, out, "decode tokens/s vs batch size, with the bandwidth roofline"))
    short = decode_shortfalls(trade)
    if short:
        parts += [f"**Slower than the baseline at decode ({len(short)})**, with the profiler's top kernel as "
                  "the evidence:\n", *[f"- {s}" for s in short], ""]
    parts += _energy_section(trade, "an energy window of its own (at least 2 s of back-to-back calls)")
    return parts + _variant_notes(trade, "technique_note", "Techniques")


def _inference_energy_plot(trade: pd.DataFrame, path: Path) -> Path | None:
    def label(r: pd.Series) -> str:
        return r["technique"].replace(" (", "\n(") + f"\nbatch {r['param.batch']}"

    return plots.work_per_joule(trade, path, "Inference energy efficiency (higher is better)", label)


def _energy_section(frame: pd.DataFrame, window: str) -> list[str]:
    """How energy was measured, and why some cases carry none."""
    notes = energy_notes(frame)
    if "energy_source" not in frame and not notes:
        return []
    return ["Energy is read from the device's cumulative energy counter (NVML's total energy on NVIDIA GPUs, "
            f"RAPL on CPUs) over {window}: the whole device, idle power included; power is the mean over that "
            "window. Never estimated from TDP: where no counter can be read, the case says why.\n",
            *[f"- {note}" for note in notes], ""]


def _variant_notes(frame: pd.DataFrame, column: str, title: str) -> list[str]:
    """What each technique or strategy is, as its suite describes it."""
    notes = frame.dropna(subset=[column]) if column in frame else frame.iloc[0:0]
    if notes.empty:
        return []
    pairs = notes.drop_duplicates("variant")[["variant", column]].values
    return [f"{title}:\n"] + [f"- `{v}`: {n}" for v, n in pairs] + [""]


def _collectives(df: pd.DataFrame, runs: list[Run], out: Path, drawn: list[Path]) -> list[str]:
    col = ok_rows(df, "collectives")
    if col.empty:
        return []
    table, unit = collectives_table(df)
    refs = [r for run in runs if run.name in set(col["run"]) for r in references_for(run.environment)]
    refs = list(dict.fromkeys(refs))
    parts = ["## Collectives\n",
             "busbw follows nccl-tests (algbw x 2(n-1)/n for all_reduce); latency is per iteration, median "
             f"[95% CI] in {unit}.\n", markdown_table(table), ""]
    for metric, name in (("busbw", "collectives_busbw.png"), ("latency", "collectives_latency.png")):
        path = plots.collective_vs_size(col, out / name, metric, refs)
        if path:
            drawn.append(path)
            parts.append(_img(path, out, f"collective {metric} vs message size"))
    if refs:
        ref = pd.DataFrame([{"machine": r.machine, "backend": r.backend, "op": r.op, "ranks": r.world_size,
                             "size": fmt_bytes(r.size_bytes),
                             "latency (us)": fmt_num(r.latency_s * 1e6) if r.latency_s else "-",
                             "busbw (GB/s)": f"{r.busbw_GBps:.2f}" if r.busbw_GBps else "-",
                             "source": r.source} for r in refs])
        parts += ["Reference figures measured on the same kind of machine (`bench_lib/report/references.py`, "
                  "one run each: what a good tool reaches there, not exact targets):\n", markdown_table(ref), ""]
    else:
        parts += ["No reference figures: this machine is none of the anchor machines.\n"]
    return parts


def _training(df: pd.DataFrame, out: Path, drawn: list[Path]) -> list[str]:
    every = ok_rows(df, "training")
    if every.empty:
        return []
    tr = convergence_rows(every, convergence=False)
    parts = ["## Training\n"]
    if not tr.empty:
        parts += _throughput_text(df)
    conv = convergence_table(df)
    if not conv.empty:
        parts += ["### Convergence\n",
                  "Each strategy trains for the same wall-clock budget once per seed (the seed sets the initial "
                  "weights and the data order, the same for every strategy), the strategies of a seed taking turns "
                  "checkpoint by checkpoint; the held-out loss is evaluated off the clock at the same checkpoint "
                  "times for every strategy and seed (a periodic strategy's replicas averaged first, on a copy). "
                  "Held-out loss at budget is the loss at the last checkpoint, i.e. at equal wall time. The target "
                  "is the largest of sync's held-out losses at its last checkpoint over seeds (every sync seed "
                  "reached it); time to target is when a seed's held-out loss first fell to it, interpolated "
                  "between checkpoints, and is a number only if every seed reached it. Both are the mean over "
                  "seeds with its 95% Student t interval over seeds (3 seeds: t = 4.30).\n",
                  markdown_table(conv), ""]
    for fn, frame, name, alt in (
            (plots.loss_vs_wall, every, "training_loss.png", "loss vs wall-clock time"),
            (plots.training_throughput, tr, "training_throughput.png", "throughput per strategy"),
            (_training_energy_plot, tr, "training_energy.png", "tokens per joule per strategy")):
        path = fn(frame, out / name) if not frame.empty else None
        if path:
            drawn.append(path)
            parts.append(_img(path, out, alt))
    parts += _energy_section(tr, "a window of its own after each run's timed stretches (at least 2 s of further "
                                 "steps at the run's pace: a stretch is shorter than the counter's update interval), "
                                 "summed over the GPUs of all ranks (a GPU that several ranks share counted once)")
    return parts + _variant_notes(every, "strategy_note", "Strategies")


def _throughput_text(df: pd.DataFrame) -> list[str]:
    table, unit = training_table(df)
    return [
             f"Wall per step is the wall time of the timed steps over their count ({unit}); throughput, exposed "
             "communication (wall per step minus nocomm's) and time to target come from the wall clock, so a "
             "periodic strategy's averaging steps count. Beside it, the distribution of single steps: median "
             "[95% CI] and p90, each step ending when its last rank ends it. Time to target is the wall-clock "
             "time until the training loss first reached the target. The strategies take turns in stretches of their "
             "steps, in two launches; the step time's 95% interval has the stretch as its unit and the run's "
             "machine-state spread added; the speedup over sync is the median of sync's wall per step over the "
             "strategy's in stretches of the same turn, with its 95% interval over those pairs (older runs: the "
             "ratio of wall per step, with its range over the stretches). Harness overhead (on nocomm's row) is "
             "nocomm's wall per step over that of `reference`, the bare training loop on the same model, optimizer "
             "and batches, run in the same launch.\n", markdown_table(table), ""]


def _training_energy_plot(tr: pd.DataFrame, path: Path) -> Path | None:
    return plots.work_per_joule(tr, path, "Training energy efficiency per strategy (higher is better)",
                                lambda r: f"{r['variant']}\n{r.get('param.backend', '')}")


def _projection(runs: list[Run], out: Path, drawn: list[Path]) -> list[str]:
    """Scaling projection (effbench project, default assumptions) where collectives and training exist."""
    a = Assumptions()
    projections = project_runs([f for run in runs for f in run.files], a)
    if not projections:
        return []
    plot = plot_efficiency(projections, a, out / "projection_efficiency.png")
    drawn.append(plot)
    return ["## Scaling projection\n",
            "From the measured all_reduce sweep and training steps, with `effbench project`'s default assumptions "
            "(rerun it with `--intra-bw`, `--inter-bw`, `--gpus-per-node` for your cluster).\n",
            projection_markdown(projections, a), _img(plot, out, "projected scaling efficiency")]


def _environment(runs: list[Run]) -> list[str]:
    env = environment_frame(runs)
    parts = ["## Environment\n", markdown_table(env), ""]
    tags = {run.name: machine_tag(run.environment) for run in runs}
    if len({tuple(sorted(r.environment.get(k) or "" for k in ("cpu_model", "torch"))) for r in runs}) > 1:
        parts.append("> **Different machines or versions between runs:** compare their figures with care.\n")
    known = [f"`{name}`: {tag}" for name, tag in tags.items() if tag]
    if known:
        parts.append("Anchor machine recognised: " + ", ".join(known) + ".\n")
    return parts


def _notes(df: pd.DataFrame) -> list[str]:
    parts = ["## Notes\n"]
    skipped, failed, noisy = skipped_table(df), failed_table(df), noisy_table(df)
    parts += [f"**Failed cases ({len(failed)})**, with their errors:\n", markdown_table(failed), ""]
    parts += [f"**Skipped cases ({len(skipped)})**, with the reasons:\n", markdown_table(skipped), ""]
    parts += [f"**Noisy cases ({len(noisy)})**: IQR above 10% of the median, or too few samples for a 95% "
              "interval; read their figures as rough.\n", markdown_table(noisy), ""]
    parts += ["A difference between two figures here is real only when it exceeds the noise. On a shared or "
              "small machine the median of the same code can move several times over between runs of one process "
              "(docs/validation/compare-rates), which intervals from one process's samples do not cover; interleaved "
              "multi-process figures (docs/validation/rerun-validation) come much closer, but a machine state "
              "that lasts a whole run still moves them. Use `effbench compare` with several runs a side, or "
              "`effbench ab`, for verdicts.\n"]
    return parts


def _summary(df: pd.DataFrame, runs: list[Run]) -> list[str]:
    if df.empty:
        return ["# effbench report\n", "These runs hold no results.\n"]
    counts = df.groupby(["suite", "status"]).size().unstack(fill_value=0)
    for status in ("ok", "skipped", "failed"):
        if status not in counts:
            counts[status] = 0
    counts = counts[["ok", "skipped", "failed"]].reset_index()
    run_list = [f"- `{run.name}` ({', '.join(sorted(f.suite for f in run.files))}): "
                f"{run.files[0].run_meta.get('command', '')}" for run in runs]
    return ["# effbench report\n", "Runs:\n", *run_list, "", markdown_table(counts.astype(str)), ""]


def build_report(runs: list[Run], out: Path) -> Report:
    """Write out/README.md and its plots for the given runs."""
    df = results_frame(runs)
    drawn: list[Path] = []
    parts = _summary(df, runs)
    parts += comparison_section(runs)
    parts += run_file_section(runs)
    parts += user_models_section(df)
    parts += _inference(df, out, drawn)
    parts += _decode(df, out, drawn)
    parts += _collectives(df, runs, out, drawn)
    parts += _training(df, out, drawn)
    parts += roofline_section(runs, out, drawn)
    parts += _projection(runs, out, drawn)
    parts += _environment(runs)
    parts += _notes(df)
    readme = out / "README.md"
    atomic_write_text(readme, "\n".join(parts).rstrip() + "\n")
    return Report(readme, drawn)
