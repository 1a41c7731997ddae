"""The report's sections on a user's own benchmark: the run file it was started from, verbatim, and the user's
models: what identifies each, and each compressed model's quality verdict against its reference."""

from __future__ import annotations

import pandas as pd

from bench_lib.report.frames.common import col
from bench_lib.report.load import Run
from bench_lib.results.format import markdown_table

__all__ = ["run_file_section", "user_models_section"]


def run_file_section(runs: list[Run]) -> list[str]:
    """The run files (`effbench run --config`) the runs were started from, verbatim."""
    parts = []
    for run in runs:
        run_file = run.files[0].run_meta.get("run_file") if run.files else None
        if isinstance(run_file, dict) and isinstance(run_file.get("text"), str):
            parts += [f"Run `{run.name}`, from `{run_file.get('path', '')}`:\n", "```toml",
                      run_file["text"].rstrip("\n"), "```", ""]
    return ["## Run file\n", *parts] if parts else []


def _identity(rows: pd.DataFrame, field: str) -> pd.Series:
    """A model's identity field: `model_<field>` (inference, training), else the decode suite's
    `checkpoint_<field>`."""
    return col(rows, f"model_{field}").combine_first(col(rows, f"checkpoint_{field}"))


def _text(values: pd.Series, fmt: str = "{}") -> pd.Series:
    return values.map(lambda v: "-" if v is None or (isinstance(v, float) and pd.isna(v)) else fmt.format(v))


def user_models_section(df: pd.DataFrame) -> list[str]:
    """Each user's model as given, what identifies it, and the verdict of every measured case: does it keep
    `quality_target` of the reference's quality (`quality_kept`)."""
    if df.empty or "param.model" not in df:
        return []
    rows = df[(df["status"] == "ok") & df["param.model"].notna()]
    if rows.empty:
        return []
    first = rows.drop_duplicates("param.model")
    identity = pd.DataFrame({
        "model": first["workload"], "given as": first["param.model"],
        "architecture": _text(_identity(first, "architecture")),
        "parameters": _text(_identity(first, "parameters"), "{:,.0f}"),
        "checkpoint dtype": _text(col(first, "model_checkpoint_dtype").combine_first(col(first, "checkpoint_dtype"))),
        "config.json sha256": _text(_identity(first, "config_sha256").map(lambda v: v[:12] if isinstance(v, str)
                                                                          else v), "{}..."),
        "transformers": _text(col(first, "transformers_version")),
        "eval text": _text(col(first, "eval_text_source"))})
    judged = rows[col(rows, "quality_verdict").notna()]
    verdicts = pd.DataFrame({
        "model": judged["workload"], "suite": judged["suite"], "technique": judged["variant"],
        "batch": _text(col(judged, "param.batch"), "{:.0f}"), "quality": _text(col(judged, "quality_metric")),
        "kept": _text(col(judged, "quality_kept"), "{:.2%}"),
        "target": _text(col(judged, "quality_target"), "{:.0%}"),
        "verdict": _text(col(judged, "quality_verdict"))}).sort_values(["model", "suite", "technique"])
    quality = ["Quality kept against the uncompressed reference, MLPerf-style: a case passes when it keeps the "
               "target share of the reference's quality.\n", markdown_table(verdicts), ""] if len(judged) else []
    return ["## Your models\n", markdown_table(identity), "", *quality, *_mapping_section(rows)]


def _mapping_section(rows: pd.DataFrame) -> list[str]:
    """The check of each checkpoint that effbench's engine serves: its logits and greedy tokens against
    transformers' own forward on the same device and dtype (and, below fp32, each against transformers' fp32)."""
    if "hf_mapping_logits_max_rel_error" not in rows:
        return []
    checked = rows[rows["hf_mapping_logits_max_rel_error"].notna()]
    checked = checked.drop_duplicates(["workload", "device", "hf_mapping_dtype"])
    if checked.empty:
        return []
    table = pd.DataFrame({
        "model": checked["workload"], "device": checked["device"], "dtype": checked["hf_mapping_dtype"],
        "logits max rel. error vs transformers": _text(checked["hf_mapping_logits_max_rel_error"], "{:.2e}"),
        "same top-1 (prompt positions)": _text(checked["hf_mapping_argmax_agreement"], "{:.1%}"),
        "greedy tokens identical before the first difference": _text(
            col(checked, "hf_mapping_greedy_prefix_tokens"), "{:.0f}"),
        "effbench vs fp32": _text(col(checked, "hf_mapping_ours_vs_fp32_logits_max_rel_error"), "{:.2e}"),
        "transformers vs fp32": _text(col(checked, "hf_mapping_theirs_vs_fp32_logits_max_rel_error"), "{:.2e}")})
    return ["Each checkpoint in effbench's serving engine against transformers' own forward on the same prompts, "
            "device and dtype (below fp32, each also against transformers' fp32 forward: the mapping is right when "
            "effbench's error is of the size of transformers' own).\n", markdown_table(table), ""]
