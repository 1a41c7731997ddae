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
from bench_lib.report.findings import findings_section
from bench_lib.report.frames import (
    HOST_BOUND_BELOW,
    UNPAIRED_MARK,
    collectives_summary,
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
    inference_long_tables,
    inference_tradeoffs,
    latest_per_case,
    noisy_table,
    ok_rows,
    skipped_table,
    training_table,
)
from bench_lib.report.load import Run, environment_frame, results_frame
from bench_lib.report.references import machine_tag, references_for
from bench_lib.report.reproduce import (
    glossary_link,
    report_argv,
    reproduce_section,
    run_path,
    strip_machine_paths,
    write_manifest,
)
from bench_lib.report.roofline_plot import roofline_section
from bench_lib.report.run_comparison import comparison_section
from bench_lib.report.user_models import run_file_section, user_models_section
from bench_lib.results.format import fmt_bytes, fmt_num, markdown_table
from bench_lib.techniques.baselines import SERVED_BASELINES
from bench_lib.techniques.inference import TECHNIQUES

__all__ = ["Report", "build_report", "write_csv"]

# The columns of the short tables; the folded tables beside them hold every column.
DECODE_SHORT = ("technique", "mode", "batch", "prompt", "decode tokens/s", "decode speedup [95% CI]",
                "perplexity (ref)", "run")
TRAINING_SHORT = ("run", "model", "backend", "ranks", "strategy", "samples/s", "speedup over sync [95% CI]",
                  "eval loss", "time to target (s)")

DEPRECATION_NOTE = (
    "`int8_dynamic` uses `torch.ao.quantization.quantize_dynamic`, which is **deprecated** in `torch.ao` in favour "
    "of torchao (`torchao.quantization`); it is measured because it is still the fastest int8 path on AVX2-only "
    "CPUs, where torchao's int8 GEMM (`torch._int_mm`) runs a slow kernel (the case's top ops show it).")


@dataclass
class Report:
    """What was written: the README, the plots and the CSV files."""

    readme: Path
    plots: list[Path] = field(default_factory=list)
    csv: list[Path] = field(default_factory=list)


def _img(path: Path | None, out: Path, alt: str) -> str:
    return f"![{alt}]({path.relative_to(out).as_posix()})\n" if path else ""


def _inference(df: pd.DataFrame, out: Path, drawn: list[Path]) -> list[str]:
    trade = inference_tradeoffs(df)
    if trade.empty:
        return []
    parts = ["## Inference\n",
             "One table per device and workload, one row per technique and batch. Latency of one batch: median "
             "[95% CI]; in runs of `effbench run` each figure is the median of short rounds interleaved over the "
             "whole run in random order and over several processes, and its interval treats the process as a "
             "random effect, so that it is meant to hold a rerun's median. Speedup is the baseline's time (fp32 "
             "eager on CPU, bf16 eager on GPU) over the technique's, same run, workload and batch: from paired "
             "rounds (technique and baseline back to back in one process, in random order, in every process) with "
             "the 95% interval of the median paired ratio, the process a random effect (files without paired "
             "rounds: the ratio of medians with a within-run bootstrap interval). Quality is on the workload's "
             "held-out real data, against the uncompressed reference.\n"]
    for title, table in inference_long_tables(trade):
        parts += [f"### {title}\n", markdown_table(table), ""]
    for fn, name, alt in ((_tradeoff_plots, "inference_tradeoff", "speedup vs quality cost"),
                          (plots.latency_vs_batch, "inference_latency.png", "latency vs batch size"),
                          (_inference_energy_plot, "inference_energy.png", "tokens per joule")):
        for path in _as_list(fn(trade, out / name)):
            drawn.append(path)
            parts.append(_img(path, out, alt))
    cost = inference_cost_table(trade)
    parts += _folded(f"Every inference figure: speed, quality, size, memory ({len(cost)} rows)",
                     ["Agreement is the share of predictions equal to the reference's; RSS added is the peak "
                      "resident memory while the case ran over the process's before it was built.\n",
                      markdown_table(cost)])
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


def _as_list(drawn: Path | list[Path] | None) -> list[Path]:
    return drawn if isinstance(drawn, list) else [drawn] if drawn else []


def _tradeoff_plots(trade: pd.DataFrame, stem: Path) -> list[Path]:
    """One speed/quality Pareto plot per device: points of different devices share no baseline."""
    return [p for device, sub in trade.groupby("device", sort=True)
            if (p := plots.speedup_vs_accuracy(sub, stem.with_name(f"{stem.name}_{device}.png")))]


def _folded(summary: str, body: list[str]) -> list[str]:
    """A detail table folded under its summary line (GFM renders markdown inside `<details>`)."""
    return ["<details>", f"<summary>{summary}</summary>", "", *body, "", "</details>", ""]


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
    short = [c for c in table.columns if c in DECODE_SHORT or c.startswith(("TTFT", "TPOT"))]
    for (workload, device), sub in table.groupby(["workload", "device"], sort=True):
        parts += [f"### {workload} on {device}\n", markdown_table(sub[[c for c in short
                                                                     if c not in ("workload", "device")]]), ""]
    parts += _folded(f"Every decode figure: tails, bandwidth, roofline, agreement, energy ({len(table)} rows)",
                     [markdown_table(table)])
    path = plots.decode_tokens_vs_batch(trade, out / "decode_throughput.png")
    if path:
        drawn.append(path)
        parts.append(_img(path, out, "decode tokens/s vs batch size, with the bandwidth roofline where it binds"))
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
    # A technique's description in the words of the code that writes the report (an older result's stored note
    # can carry wording since retired); a technique no longer registered keeps the note its result stored.
    described = {name: t.note for name, t in TECHNIQUES.items()} if column == "technique_note" else {}
    return [f"{title}:\n"] + [f"- `{v}`: {described.get(v, n)}" for v, n in pairs] + [""]


def _collectives(df: pd.DataFrame, runs: list[Run], out: Path, drawn: list[Path]) -> list[str]:
    col = ok_rows(df, "collectives")
    if col.empty:
        return []
    table, unit = collectives_table(df)
    refs = [r for run in runs if run.name in set(col["run"]) for r in references_for(run.environment)]
    refs = list(dict.fromkeys(refs))
    parts = ["## Collectives\n",
             "busbw follows nccl-tests (algbw x 2(n-1)/n for all_reduce); latency is per iteration, median "
             "[95% CI]. Per backend, op and dtype: the smallest message's latency and the largest's busbw.\n",
             markdown_table(collectives_summary(df)), ""]
    for metric, name in (("busbw", "collectives_busbw.png"), ("latency", "collectives_latency.png")):
        path = plots.collective_vs_size(col, out / name, metric, refs)
        if path:
            drawn.append(path)
            parts.append(_img(path, out, f"collective {metric} vs message size"))
    parts += _folded(f"Every collective figure, latency in {unit} ({len(table)} rows)", [markdown_table(table)])
    if refs:
        ref = pd.DataFrame([{"machine": r.machine, "backend": r.backend, "op": r.op, "ranks": r.world_size,
                             "size": fmt_bytes(r.size_bytes),
                             "latency (us)": fmt_num(r.latency_s * 1e6) if r.latency_s else "-",
                             "busbw (GB/s)": f"{r.busbw_GBps:.2f}" if r.busbw_GBps else "-",
                             "source": r.source} for r in refs])
        parts += ["Reference figures measured on the same kind of machine (`bench_lib/report/references.py`, "
                  "one run each: what a good tool reaches there, not exact targets):\n", markdown_table(ref), ""]
    else:
        parts += ["No reference figures: none were measured on this kind of machine.\n"]
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
             "and batches, run in the same launch.\n",
             markdown_table(table[[c for c in table.columns if c in TRAINING_SHORT or c.startswith("wall per step")]]),
             "", *_folded(f"Every training figure: step distribution, communication, memory, loss ({len(table)} rows)",
                          [markdown_table(table)])]


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
    parts = ["## Environment\n", *_folded(f"What each run ran on ({len(env)} runs)", [markdown_table(env)])]
    tags = {run.name: machine_tag(run.environment) for run in runs}
    if len({tuple(sorted(r.environment.get(k) or "" for k in ("cpu_model", "torch"))) for r in runs}) > 1:
        parts.append("> **Different machines or versions between runs:** compare their figures with care.\n")
    known = [f"`{name}`: {tag}" for name, tag in tags.items() if tag]
    if known:
        parts.append("Machines with reference figures (`bench_lib/report/references.py`): " + ", ".join(known)
                     + ".\n")
    return parts


def _notes(df: pd.DataFrame) -> list[str]:
    parts = ["## Notes\n"]
    skipped, failed, noisy = skipped_table(df), failed_table(df), noisy_table(df)
    parts += [f"**Failed cases ({len(failed)})**, with their errors:\n", markdown_table(failed), ""]
    parts += _folded(f"Skipped cases ({len(skipped)}), with the reasons", [markdown_table(skipped)])
    parts += _folded(f"Noisy cases ({len(noisy)}): IQR above 10% of the median, or too few samples for a "
                     "95% interval; read their figures as rough", [markdown_table(noisy)])
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
    run_list = [f"- `{run_path(run)}` ({', '.join(sorted(f.suite for f in run.files))})" for run in runs]
    return ["# effbench report\n", "Runs (how each was measured: Reproduce, at the end):\n", *run_list, "",
            markdown_table(counts.astype(str)), ""]


def write_csv(df: pd.DataFrame, out: Path) -> list[Path]:
    """Every result of every suite beside the report, one CSV per suite: one row per case, every metric (lists,
    such as the samples, as their JSON-like text), machine paths made relative."""
    written = []
    for suite, rows in df.groupby("suite", sort=True):
        rows = rows.dropna(axis=1, how="all")
        text = [c for c in rows.columns if rows[c].map(lambda v: isinstance(v, str)).any()]
        rows = rows.assign(**{c: rows[c].map(lambda v: strip_machine_paths(v) if isinstance(v, str) else v)
                              for c in text})
        path = out / f"{suite}.csv"
        atomic_write_text(path, rows.to_csv(index=False))
        written.append(path)
    return written


def build_report(runs: list[Run], out: Path) -> Report:
    """Write out/README.md, its plots and one CSV per suite for the given runs."""
    df = results_frame(runs)
    drawn: list[Path] = []
    csv_files = write_csv(df, out) if not df.empty else []
    parts = _summary(df, runs)
    parts += findings_section(df, runs, glossary_link(out))
    parts += comparison_section(runs)
    parts += run_file_section(runs)
    parts += user_models_section(df)
    parts += _inference(df, out, drawn)
    parts += _decode(df, out, drawn)
    parts += _collectives(df, runs, out, drawn)
    parts += _training(df, out, drawn)
    parts += roofline_section(runs, out, drawn)
    parts += _projection(runs, out, drawn)
    parts += _notes(df)
    parts += reproduce_section(runs, out, csv_files)
    parts += _environment(runs)
    readme = out / "README.md"
    atomic_write_text(readme, strip_machine_paths("\n".join(parts).rstrip() + "\n"))
    write_manifest(out, report_argv(runs))
    return Report(readme, drawn, csv_files)
