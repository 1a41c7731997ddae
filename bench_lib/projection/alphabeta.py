"""The latency-bandwidth (alpha-beta) model of a collective, fitted to a measured size sweep.

For a ring algorithm over n ranks a collective takes `steps(n)` latency hops and moves
`factor(n) * S` bytes through each rank's link (nccl-tests' bus-bandwidth factors), so

    t(S, n) = steps(n) * alpha + factor(n) * S / B.

Fitting alpha and B on the measured n gives the model at any n on the same links.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

__all__ = ["RING", "Fit", "fit_alpha_beta"]

# op -> (latency steps of a ring over n ranks, bytes through each link per message byte)
RING = {
    "all_reduce": (lambda n: 2 * (n - 1), lambda n: 2 * (n - 1) / n),
    "all_gather": (lambda n: n - 1, lambda n: (n - 1) / n),
    "reduce_scatter": (lambda n: n - 1, lambda n: (n - 1) / n),
    "all_to_all": (lambda n: n - 1, lambda n: (n - 1) / n),
    "broadcast": (lambda n: n - 1, lambda n: 1.0),
}


@dataclass(frozen=True)
class Fit:
    """alpha: seconds per ring step; bandwidth: bytes/s through one link; errors on the sweep."""

    op: str
    alpha_s: float
    bandwidth_Bps: float
    median_abs_error: float
    max_abs_error: float
    points: int

    def predict(self, size_bytes: float, n: int) -> float:
        steps, factor = RING[self.op]
        return steps(n) * self.alpha_s + factor(n) * size_bytes / self.bandwidth_Bps


def fit_alpha_beta(op: str, sizes: list[float], times: list[float], n: int) -> Fit:
    """Non-negative least squares on relative error, so small and large messages weigh alike."""
    if op not in RING:
        raise ValueError(f"no ring model for {op!r}; known: {', '.join(RING)}")
    s, t = np.asarray(sizes, float), np.asarray(times, float)
    if s.size < 2:
        raise ValueError(f"{op}: need at least two message sizes to fit, got {s.size}")
    steps, factor = RING[op]
    design = np.stack([np.full_like(s, steps(n)) / t, factor(n) * s / t], axis=1)
    (alpha, inv_bw), _ = nnls(design, np.ones_like(t))
    if inv_bw <= 0:
        raise ValueError(f"{op}: the sweep shows no bandwidth term (time does not grow with size)")
    fit = Fit(op, float(alpha), float(1 / inv_bw), 0.0, 0.0, int(s.size))
    errors = np.abs(np.array([fit.predict(x, n) for x in s]) / t - 1)
    return Fit(op, fit.alpha_s, fit.bandwidth_Bps, float(np.median(errors)), float(errors.max()), int(s.size))
