"""Inference of served models: technique x workload x batch."""
