"""Inference: technique x workload x batch size (cases in bench_lib/suites/inference/suite.py). The selected
cases are measured together, in interleaved rounds over several processes, as `effbench run` measures them.

    pytest benchmarks/test_inference.py -k "int8 and batch64"
"""

from bench_lib.pytest_plugin import measure_planned

SUITE = "inference"


def test_inference(planned_case, effbench_session, benchmark):
    measure_planned(planned_case, effbench_session, benchmark)
