"""Models and the real data they run on; every data set ships inside an installed package.

One registry: the suite names workloads by these keys and sees only the `Workload` interface.
"""

from bench_lib.workloads.base import Prunable, Workload
from bench_lib.workloads.digits import DigitsCNN, DigitsMLP
from bench_lib.workloads.text import ByteLM

__all__ = ["WORKLOADS", "Prunable", "Workload"]

WORKLOADS: dict[str, Workload] = {
    "digits_mlp": DigitsMLP(hidden=256, epochs=30),
    # Linear-heavy: the 2048x2048 layer holds 96% of the weights, so GEMMs dominate.
    "digits_mlp_wide": DigitsMLP(hidden=2048, epochs=8),
    "digits_cnn": DigitsCNN(channels=16, hidden=128, epochs=10),
    # Trained for a few seconds on the stdlib's sources: perplexity and top-1 agreement.
    "byte_gpt": ByteLM(),
    # Random weights, same architecture: a GEMM-bound speed shape for GPUs (8 x 512 tokens = 4096 rows).
    "byte_gpt_d2048_random": ByteLM(d=2048, layers=4, heads=16, seq=512, steps=0, eval_seqs=16),
}
