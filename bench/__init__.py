"""Benchmark harness: `make bench` / `python -m bench --help` (see the README's Performance)."""
