"""Loss curves of the throughput cases: rank 0's logged training losses, smoothed, read at a time or a target."""

from __future__ import annotations

__all__ = ["LOSS_POINTS", "LOSS_WINDOW", "smoothed", "time_to", "loss_at"]

LOSS_POINTS = 40  # about this many loss-curve points per run
LOSS_WINDOW = 8


def smoothed(curve: list[list[float]], window: int = LOSS_WINDOW) -> list[tuple[float, float]]:
    """(wall_s, trailing mean of the last `window` logged losses) per logged point."""
    out = []
    for i, (wall, _, _) in enumerate(curve):
        recent = [loss for _, _, loss in curve[max(0, i - window + 1):i + 1]]
        out.append((wall, sum(recent) / len(recent)))
    return out


def time_to(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((wall for wall, loss in curve if loss <= target), None)


def loss_at(curve: list[tuple[float, float]], wall_s: float) -> float | None:
    """The smoothed loss at wall_s, or None if the run ended before it."""
    if not curve or curve[-1][0] < wall_s * 0.98:
        return None
    return [loss for wall, loss in curve if wall <= wall_s][-1]
