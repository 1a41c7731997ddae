"""LLM decode as served: model x technique x mode x phase (prefill, decode) x batch (cases in
bench_lib/suites/decode/suite.py).

    pytest benchmarks/test_decode.py -k "int8_weight_only and phasedecode"
"""

from bench_lib.pytest_plugin import measure_planned

SUITE = "decode"


def test_decode(planned_case, effbench_session, benchmark):
    measure_planned(planned_case, effbench_session, benchmark)
