pytest_plugins = ["bench_lib.pytest_plugin"]
