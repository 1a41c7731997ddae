"""The one measurement engine: what `effbench run`, `effbench ab` and `pytest benchmarks/` go through.

- `run`: measure a plan, suite by suite (`execute_plan`): the one loop of `effbench run` and the pytest plugin;
- `session`: plan the cases, write each result as soon as it exists;
- `schedule`: the round scheduler, with its two policies: fixed interleaved blocks (`run`), adaptive budgeted
  pairs (`ab`);
- `interleaved`: `effbench run`'s rounds of an interleaved suite over several processes, and their figures;
- `pool`: long-lived measuring servers (`server`) of one side of the code, and a pool of them;
- `isolated` + `worker`: a one-shot process for a group of cases;
- `launcher` + `rank`: one process per rank for the distributed suites (also the torchrun entry).
"""
