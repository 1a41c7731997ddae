"""What the suites of served models (inference, decode) share: the kept model, its rounds and visits,
its measuring window (`base.py`), the kernels it spends its time in (`evidence.py`) and its size
(`size.py`)."""

from bench_lib.suites.served.base import Served, ServedSuite, Window, measure_window, sync, use_all_cores

__all__ = ["Served", "ServedSuite", "Window", "measure_window", "sync", "use_all_cores"]
