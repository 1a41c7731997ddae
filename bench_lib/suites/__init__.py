"""The suites: what a case is and how one is measured (`base.Suite`), and the built-in suites,
each in a package of its own (inference, decode, distributed: collectives and training); inference
and decode serve models through one base (`served.ServedSuite`)."""

from bench_lib.suites.base import BACKENDS, SUITES, Suite, failure_text, get_suite, suite_names

__all__ = ["Suite", "SUITES", "BACKENDS", "get_suite", "suite_names", "failure_text"]
