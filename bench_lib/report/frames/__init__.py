"""The report's tables: pandas frames derived from `results_frame`, one module per suite.

Derivation (speedups, Pareto fronts, per-suite summaries) is kept apart from rendering:
`results.format.markdown_table` is the only place that turns a frame into text, and each table
uses one unit for all its cells (`select_time_unit`), so columns can be read down.
"""

from bench_lib.report.frames.collectives import collectives_summary, collectives_table
from bench_lib.report.frames.common import energy_notes, latest_per_case, ok_rows, param_columns, pareto_front
from bench_lib.report.frames.decode import (
    UNPAIRED_MARK,
    decode_rows,
    decode_shortfalls,
    decode_table,
    decode_tradeoffs,
    roofline_tokens_per_s,
)
from bench_lib.report.frames.inference import (
    HOST_BOUND_BELOW,
    host_bound_table,
    inference_cost_table,
    inference_long_tables,
    inference_tradeoffs,
)
from bench_lib.report.frames.status import failed_table, noisy_table, skipped_table
from bench_lib.report.frames.training import convergence_rows, convergence_table, training_table

__all__ = [
    "param_columns",
    "ok_rows",
    "inference_tradeoffs",
    "pareto_front",
    "inference_long_tables",
    "inference_cost_table",
    "HOST_BOUND_BELOW",
    "host_bound_table",
    "collectives_table",
    "collectives_summary",
    "training_table",
    "convergence_rows",
    "convergence_table",
    "energy_notes",
    "skipped_table",
    "failed_table",
    "noisy_table",
    "roofline_tokens_per_s",
    "latest_per_case",
    "UNPAIRED_MARK",
    "decode_tradeoffs",
    "decode_rows",
    "decode_table",
    "decode_shortfalls",
]
