"""effbench: what efficiency techniques buy ML engineers, measured honestly and reproducibly."""

__version__ = "0.1.0"
