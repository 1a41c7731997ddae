"""One module per subcommand, each with `add_parser(subparsers)` that sets `handler`."""

from bench_lib.commands import ab_cmd, compare_cmd, history_cmd, list_cmd, project_cmd, report_cmd, run_cmd

COMMANDS = [run_cmd, list_cmd, report_cmd, compare_cmd, ab_cmd, project_cmd, history_cmd]
