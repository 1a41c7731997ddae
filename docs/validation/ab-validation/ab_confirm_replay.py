"""Replay stored A/B jobs under the fresh-server confirmation, before paying for new jobs.

    python docs/validation/ab-validation/ab_confirm_replay.py JOB_DIR

Reads every job's `ab.json` in JOB_DIR (jobs made before confirmation existed: each case's pairs
all come from one generation of servers). For every case whose pairs first said slower or faster,
it plays the confirmation with "fresh servers" borrowed from each other job of the same kind (A/A
or slowed): that job's pairs of the same case, measured in other processes, are appended one by
one (at most 12) to the pairs up to the first directional verdict, and `verdict.confirmed` judges
after each. It prints, per case and kind, how often the direction was confirmed and how many fresh
pairs that took. A replay, not a measurement: the borrowed pairs met other machine states than the
job they are appended to.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from bench_lib.ab.verdict import ABRule, confirmed, judge

MAX_FRESH = 12


def load(job_dir: Path) -> list[tuple[str, str, dict]]:
    jobs = []
    for path in sorted(job_dir.glob("*.json")):
        doc = json.loads(path.read_text())["effbench_ab"]
        kind = "A/A" if doc["base"]["commit"] == doc["new"]["commit"] else "slowed"
        jobs.append((path.stem, kind, {c["name"]: c for c in doc["cases"]}))
    return jobs


def first_direction(case: dict, rule: ABRule) -> int | None:
    """Pairs at which the case's verdict first said slower or faster (as before confirmation)."""
    pairs = list(zip(case["base_rounds_s"], case["new_rounds_s"], map(tuple, case["servers"]), strict=True))
    for k in range(1, len(pairs) + 1):
        b, n, s = zip(*pairs[:k], strict=True)
        if judge(case["name"], list(b), list(n), rule, list(s)).verdict in ("slower", "faster"):
            return k
    return None


def replay(case: dict, upto: int, donor: dict, rule: ABRule, offset: int) -> tuple[str, int]:
    base, new = case["base_rounds_s"][:upto], case["new_rounds_s"][:upto]
    servers, fresh = [tuple(s) for s in case["servers"][:upto]], []
    for j in range(min(MAX_FRESH, donor["pairs"])):
        base.append(donor["base_rounds_s"][j])
        new.append(donor["new_rounds_s"][j])
        servers.append((donor["servers"][j][0] + offset, donor["servers"][j][1] + offset))
        fresh.append(new[-1] / base[-1])
        v = confirmed(judge(case["name"], base, new, rule, servers), fresh, rule)
        if v.decided:
            return v.verdict, j + 1
    return "unconfirmed", min(MAX_FRESH, donor["pairs"])


def main() -> int:
    rule = ABRule()
    jobs = load(Path(sys.argv[1]))
    outcomes: Counter = Counter()
    fresh_pairs: dict[tuple, list[int]] = {}
    for job, kind, cases in jobs:
        for name, case in cases.items():
            upto = first_direction(case, rule)
            if upto is None:
                continue
            offset = 1 + max(max(s) for s in case["servers"])
            for other, other_kind, donors in jobs:
                donor = donors.get(name)
                if other == job or other_kind != kind or not donor or not donor["pairs"]:
                    continue
                verdict, used = replay(case, upto, donor, rule, offset)
                key = (kind, name, job, f"{case['verdict']} at {upto} pairs", verdict)
                outcomes[key] += 1
                fresh_pairs.setdefault(key, []).append(used)
    print("| kind | case | job | first direction | after fresh servers | donors | fresh pairs (min-max) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for key, n in sorted(outcomes.items()):
        used = fresh_pairs[key]
        print(f"| {' | '.join(key)} | {n} | {min(used)}-{max(used)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
