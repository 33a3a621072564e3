"""Benchmarks (not tests): `.venv/bin/python -m benchmarks.step_cost`."""
