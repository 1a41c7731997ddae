"""Data-parallel training: strategy x workload x backend (cases in bench_lib/distributed/training.py).
Under pytest each case is its own launch, so exposed communication, the equal-wall comparison and the
harness's overhead, which need `nocomm`, `sync` and `reference` from the same launch, and the turns the
strategies take in stretches, are `effbench run`'s only.

    pytest benchmarks/test_training.py -k "digits_mlp" --effbench-backend gloo
"""

from bench_lib.pytest_plugin import measure_planned

SUITE = "training"


def test_training(planned_case, effbench_session, benchmark):
    measure_planned(planned_case, effbench_session, benchmark)
