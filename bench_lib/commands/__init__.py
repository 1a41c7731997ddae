"""One module per subcommand, each with `add_parser(subparsers)` that sets `handler`."""

from bench_lib.commands import list_cmd, run_cmd

COMMANDS = [run_cmd, list_cmd]
