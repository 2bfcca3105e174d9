"""Benchmark suites, their runner (local pool or Ray), the table, statistics and the report."""
