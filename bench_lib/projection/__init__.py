"""`effbench project`: scaling projections from measured collectives and training runs."""
