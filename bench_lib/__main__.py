"""`python -m bench_lib` is `effbench`."""

import sys

from bench_lib.cli import main

sys.exit(main())
