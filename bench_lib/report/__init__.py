"""Reports, comparisons and regression verdicts from stored results (load -> tables/plots -> markdown)."""
