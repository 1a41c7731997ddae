"""Data-parallel training: strategy x workload x backend (cases in bench_lib/suites/distributed/training.py).
The selected cases are launched in the same groups as `effbench run` launches them, so exposed communication,
the equal-wall comparison and the speedup over sync, which need `nocomm`, `sync` and `reference` in the same
launches, are there when the selection holds them.

    pytest benchmarks/test_training.py -k "digits_mlp" --effbench-backend gloo
"""

from bench_lib.pytest_plugin import measure_planned

SUITE = "training"


def test_training(planned_case, effbench_session, benchmark):
    measure_planned(planned_case, effbench_session, benchmark)
