"""Collectives: op x dtype x message size over Gloo (CPU, CUDA tensors) and NCCL (cases in
bench_lib/suites/distributed/collectives.py). One launch of all ranks serves a backend's whole selected sweep,
as under `effbench run`.

    pytest benchmarks/test_collectives.py -k "all_reduce and float32" --effbench-backend gloo
"""

from bench_lib.pytest_plugin import measure_planned

SUITE = "collectives"


def test_collectives(planned_case, effbench_session, benchmark):
    measure_planned(planned_case, effbench_session, benchmark)
