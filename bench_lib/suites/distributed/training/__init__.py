"""The training suite (`suite.py`): its plan and case matrix (`plan.py`), its turns on the ranks (`turns.py`),
loss curves (`losses.py`), energy over the ranks (`energy_sums.py`), and its launches merged (`merge.py`)."""

from bench_lib.suites.distributed.training.merge import convergence_results
from bench_lib.suites.distributed.training.plan import (
    CONVERGENCE_PARAM,
    LAUNCHES,
    MAX_EXTENSION,
    REFERENCE,
    STRETCHES,
    SYNC_EVERY,
    extended_steps,
    is_convergence,
    launch_plan,
)
from bench_lib.suites.distributed.training.suite import TrainingSuite
from bench_lib.suites.distributed.training.turns import take_turns

__all__ = ["TrainingSuite", "SYNC_EVERY", "STRETCHES", "LAUNCHES", "MAX_EXTENSION", "REFERENCE", "CONVERGENCE_PARAM",
           "extended_steps", "take_turns", "launch_plan", "is_convergence", "convergence_results"]
