"""History of stored runs: trends per case and the commits where they changed."""
