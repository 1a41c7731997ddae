"""The one error type the CLI maps to exit status 2."""


class BadInput(Exception):
    """Bad options, unknown suites, unreadable or foreign inputs, unwritable outputs."""
