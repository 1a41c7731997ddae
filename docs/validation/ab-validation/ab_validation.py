"""Validate `effbench ab` on this machine: false alarms on A/A jobs, detection of a real 10% slowdown.

    python docs/validation/ab-validation/ab_validation.py --jobs 20 --budget 8 [--kinds aa,slow] [-k EXPR] [--out DIR]

A/A jobs compare HEAD with HEAD. Slow jobs compare HEAD with a revision made here from HEAD in
which one case really does more work: its timed call runs the model on a batch `--extra` larger
(the batch's first rows appended again), so the case's time grows by about that fraction; the
ratio each job measures for it is reported, so the size of the slowdown is checked by timing, not
assumed. Jobs alternate A/A and slow, so that both meet the same machine states. Jobs append to
`--out`, so that the count can grow over several sessions; each job records the commit it ran.
With EFFBENCH_VAL_KEEP=DIR, each job's full ab.json is copied there as it finishes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_lib.atomic import atomic_write_text

STUDY = Path(__file__).resolve().parent
REPO = STUDY.parents[2]
TARGET_FILE = "bench_lib/suites/inference/suite.py"
# The timed call of an A/B round (InferenceSuite.timed_call, which ServedSuite.measure_round times).
ORIGINAL = "return lambda: served.model(served.x)"


def commit_patch(original: str, patched: str, message: str) -> str:
    """Commit, in a throw-away worktree, HEAD with `original` replaced by `patched` in TARGET_FILE;
    return the commit id."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), "HEAD"], cwd=REPO, check=True,
                       capture_output=True)
        try:
            path = tree / TARGET_FILE
            text = path.read_text()
            if original not in text:
                raise SystemExit(f"cannot find the code to patch in {TARGET_FILE}: {original}")
            path.write_text(text.replace(original, patched))
            git = ["git", "-c", "user.email=ab@effbench", "-c", "user.name=ab-validation"]
            subprocess.run([*git, "commit", "-qam", message], cwd=tree, check=True, capture_output=True)
            return subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, check=True, capture_output=True,
                                  text=True).stdout.strip()
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)


def slow_revision(target: str, extra: float) -> str:
    """HEAD plus extra work in one case's A/B rounds (its timed call runs on a larger batch)."""
    patched = (f"x = served.x if case.id != {target!r} else "
               f"torch.cat([served.x, served.x[:int(-(-served.x.shape[0] * {extra} // 1))]])\n"
               "        return lambda: served.model(x)")
    return commit_patch(ORIGINAL, patched, f"ab validation: {extra:.0%} more work in {target}")


def run_job(kind: str, base: str, new: str, args: argparse.Namespace, out: Path) -> dict:
    cmd = [sys.executable, "-m", "bench_lib", "ab", base, new, "--suite", "inference", "--profile", "quick",
           "--device", "cpu", "--budget", str(args.budget), "--out", str(out)]
    if args.k:
        cmd += ["-k", args.k]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode not in (0, 1):
        return {"kind": kind, "exit": proc.returncode, "wall_s": wall, "error": proc.stderr.strip()[-500:]}
    job_dir = Path(proc.stdout.strip().splitlines()[-1])
    cases = json.loads((job_dir / "ab.json").read_text())["effbench_ab"]["cases"]
    if os.environ.get("EFFBENCH_VAL_KEEP"):
        shutil.copy(job_dir / "ab.json", Path(os.environ["EFFBENCH_VAL_KEEP"]) / f"{job_dir.name}.json")
    return {"kind": kind, "exit": proc.returncode, "wall_s": wall, "job": job_dir.name,
            "verdicts": {c["name"]: [c["verdict"], c["ratio"], c["pairs"]] for c in cases}}


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """Exact 95% interval of a rate seen k times in n trials (how little 20 jobs can prove)."""
    from scipy.stats import beta

    lo = float(beta.ppf(0.025, k, n - k + 1)) if k else 0.0
    hi = float(beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
    return lo, hi


def _rate(k: int, n: int) -> str:
    if not n:
        return "n/a"
    lo, hi = clopper_pearson(k, n)
    return f"{k} of {n} (95% CI {lo:.0%} to {hi:.0%})"


def summarize(jobs: list[dict], target_name: str) -> str:
    aa = [j for j in jobs if j["kind"] == "aa" and "verdicts" in j]
    slow = [j for j in jobs if j["kind"] == "slow" and "verdicts" in j]
    aa_flagged = [j for j in aa if any(v[0] in ("slower", "failed") for v in j["verdicts"].values())]
    aa_cases = sum(len(j["verdicts"]) for j in aa)
    aa_case_flags = sum(v[0] == "slower" for j in aa for v in j["verdicts"].values())
    caught = [j for j in slow if j["verdicts"].get(target_name, [""])[0] == "slower"]
    ratios = sorted(j["verdicts"][target_name][1] for j in slow if j["verdicts"].get(target_name, [None, None])[1])
    others = sum(v[0] == "slower" for j in slow for n, v in j["verdicts"].items() if n != target_name)
    undecided = sum(v[0] == "undecided" for j in aa + slow for v in j["verdicts"].values())
    walls = sorted(j["wall_s"] for j in jobs)
    lines = [
        "| measure | value |", "| --- | --- |",
        f"| A/A jobs judged slower (any case) | {_rate(len(aa_flagged), len(aa))} |",
        f"| A/A cases judged slower | {aa_case_flags} of {aa_cases} |",
        f"| A/A cases judged faster (no failure, but as wrong) | "
        f"{sum(v[0] == 'faster' for j in aa for v in j['verdicts'].values())} of {aa_cases} |",
        f"| slow jobs where the slowed case was caught | {_rate(len(caught), len(slow))} |",
        "| measured NEW/BASE ratio of the slowed case (min, median, max over jobs) | "
        + (f"{ratios[0]:.3f}, {ratios[len(ratios) // 2]:.3f}, {ratios[-1]:.3f} |" if ratios else "n/a |"),
        f"| other cases judged slower in slow jobs | {others} |",
        f"| case verdicts left undecided (all jobs) | {undecided} |",
        f"| job wall time (min, median, max) | {walls[0]:.0f} s, {walls[len(walls) // 2]:.0f} s, {walls[-1]:.0f} s |"
        if walls else "| job wall time | n/a |",
        f"| A/A jobs that exited 0 | {sum(j['exit'] == 0 for j in aa)} of {len(aa)} |",
        f"| slow jobs that exited 1 | {sum(j['exit'] == 1 for j in slow)} of {len(slow)} |",
        f"| jobs that errored | {sum('error' in j for j in jobs)} |",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=20, help="rounds of --kinds (default: 20 A/A and 20 slow jobs)")
    p.add_argument("--kinds", default="aa,slow", choices=["aa,slow", "slow", "aa"],
                   help="the jobs of a round, in order (default aa,slow: alternating, so both meet the same "
                        "machine states)")
    p.add_argument("--budget", type=float, default=8.0, help="minutes per job")
    p.add_argument("--target", default="digits_mlp_wide-int8_dynamic-batch64-cpu", help="case id that NEW slows down")
    p.add_argument("--extra", type=float, default=0.10,
                   help="how much larger the target case's batch is in NEW (default 0.10: 64 rows become 71)")
    p.add_argument("-k", default=None, help="restrict the suite (default: the whole quick inference suite)")
    p.add_argument("--out", type=Path, default=STUDY / "ab-validation.json")
    p.add_argument("--summarize", action="store_true", help="only print the summary of the jobs in --out")
    args = p.parse_args()
    if args.summarize:
        print(summarize(json.loads(args.out.read_text())["jobs"], f"test_inference[{args.target}]"))
        return 0
    slow = slow_revision(args.target, args.extra)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout.strip()
    jobs: list[dict] = json.loads(args.out.read_text())["jobs"] if args.out.exists() else []
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(args.jobs):
            for kind in args.kinds.split(","):
                new = slow if kind == "slow" else "HEAD"
                job = run_job(kind, "HEAD", new, args, Path(scratch))
                job |= {"head": head, "new_commit": slow if kind == "slow" else head, "extra": args.extra}
                jobs.append(job)
                print(json.dumps({k: job[k] for k in ("kind", "exit", "wall_s")} | {"i": i}), flush=True)
                atomic_write_text(args.out, json.dumps({"args": vars(args) | {"out": str(args.out)},
                                                        "jobs": jobs}, indent=1, default=str))
    print(summarize(jobs, f"test_inference[{args.target}]"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
