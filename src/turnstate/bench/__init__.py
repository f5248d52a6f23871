"""Benchmarks: each compares variants on one server in one run, and reports ratios."""
