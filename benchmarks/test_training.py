"""Data-parallel training: strategy x workload x backend (cases in bench_lib/suites/distributed/training.py).
Under pytest each case is launched on its own (twice, as `effbench run` launches a group), so exposed
communication, the equal-wall comparison, the speedup over sync from paired stretches and the harness's
overhead, which need `nocomm`, `sync` and `reference` in the same launches, and the turns the strategies
take in stretches, are `effbench run`'s only.

    pytest benchmarks/test_training.py -k "digits_mlp" --effbench-backend gloo
"""

from bench_lib.pytest_plugin import measure_planned

SUITE = "training"


def test_training(planned_case, effbench_session, benchmark):
    measure_planned(planned_case, effbench_session, benchmark)
