"""Cases, results, the environment they carry, and the store that keeps them."""

from bench_lib.results.case import CaseResult, CaseSpec, SkipCase
from bench_lib.results.store import ResultFormatError, RunData, RunWriter, load_run

__all__ = ["CaseResult", "CaseSpec", "SkipCase", "ResultFormatError", "RunData", "RunWriter", "load_run"]
