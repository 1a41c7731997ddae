"""The training suite's timing beside its references: a markdown table per result file.

    python docs/validation/training-harness-h200/training_overhead.py RESULT.json... [--bare BARE.jsonl]

Per strategy: wall per step (what throughput comes from), the median step, tokens/s, exposed
communication, and, where stored, the harness's overhead over the in-launch bare loop (`reference`)
and the per-stretch speedup over sync. --bare adds the shared anchors' bare loop
(shared/anchors/scripts/bare_ddp_gpt.py's JSON lines: step_ms per backend and mode), run in the same
call, as a yardstick from outside effbench.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_lib.results.store import load_run


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1e3:.2f}" if isinstance(seconds, (int, float)) else "-"


def table(path: Path) -> list[str]:
    lines = [f"### {path}", "",
             "| case | ranks | wall per step (ms) | median step (ms) | tokens/s | exposed comm (ms) | harness overhead "
             "| speedup over sync [per stretch] |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in load_run(path):
        for r in run.results:
            if r.status != "ok":
                lines.append(f"| {r.case.id} | {r.status}: {r.reason.splitlines()[0][:80] if r.reason else ''} |")
                continue
            m = r.metrics
            per_stretch = m.get("speedup_over_sync_by_stretch") or []
            speedup = (f"{m['speedup_over_sync']:.3f} [{', '.join(f'{s:.2f}' for s in per_stretch)}]"
                       if m.get("speedup_over_sync") else "-")
            overhead = f"{m['harness_overhead']:+.1%}" if m.get("harness_overhead") is not None else "-"
            lines.append(f"| {r.case.workload} {r.case.variant} | {m.get('world_size', '-')} "
                         f"| {_ms(m.get('step_time_wall_s'))} | {_ms(r.measurement.median)} "
                         f"| {m.get('tokens_per_s') or 0:,.0f} | {_ms(m.get('exposed_comm_s'))} | {overhead} "
                         f"| {speedup} |")
    return [*lines, ""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("--bare", type=Path, action="append", default=[])
    args = p.parse_args()
    out = [line for path in args.results for line in table(path)]
    for bare in args.bare:
        out += [f"### {bare.name} (bare loop, outside effbench)", ""]
        out += [f"- {d.get('backend')} {d.get('mode')}: {d.get('step_ms', float('nan')):.2f} ms/step"
                for d in map(json.loads, bare.read_text().splitlines()) if d.get("step_ms")]
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
