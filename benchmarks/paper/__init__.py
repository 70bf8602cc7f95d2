"""The paper's experiments as reproducible benchmark tables (run with ``python -m benchmarks.paper.run``)."""
