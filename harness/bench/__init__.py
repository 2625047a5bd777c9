"""Benchmarks: the MLflow-free measurement core, reports, and comparison with budgets."""
