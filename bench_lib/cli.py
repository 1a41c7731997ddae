"""The `effbench` command. Every bad input ends as one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from bench_lib.commands import COMMANDS
from bench_lib.commands.errors import BadInput

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus an error; we want the error alone, as one line."""

    def error(self, message: str):  # type: ignore[override]
        raise BadInput(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="effbench", description="Measure what efficiency techniques buy, honestly.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM (CI cancelling a job, `timeout`, kill) ends a command as Ctrl-C does: finished results
    # kept, worker processes and temporary worktrees removed, exit 130.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where inherited as ignored (a background job)
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args))
    except BadInput as e:
        print(f"effbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("effbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
