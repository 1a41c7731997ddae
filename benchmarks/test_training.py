"""Data-parallel training: strategy x workload x backend (cases in bench_lib/distributed/training.py).
Under pytest each case is its own launch, so exposed communication and the equal-wall comparison,
which need `nocomm` and `sync` from the same launch, are filled in by `effbench run` only.

    pytest benchmarks/test_training.py -k "digits_mlp" --effbench-backend gloo
"""

from bench_lib.pytest_plugin import measure_planned

SUITE = "training"


def test_training(planned_case, effbench_session, benchmark):
    measure_planned(planned_case, effbench_session, benchmark)
