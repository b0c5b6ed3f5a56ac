"""Benchmark harness: `make bench` / `python -m bench --help` (bench/README.md)."""
