"""Distributed suites: a launcher of one process per rank, collectives, data-parallel training strategies."""
