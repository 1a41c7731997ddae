"""Techniques and strategies that suites measure: quantization and pruning for inference,
the synchronous and asynchronous data-parallel strategies for training."""
