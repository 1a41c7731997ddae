"""`effbench ab`: a paired, interleaved, adaptive A/B job of two revisions or interpreters, and its verdicts."""
