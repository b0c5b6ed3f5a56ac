"""The benchmark harness still runs end to end (tiny counts; the numbers are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.harness.server_process import REPO_ROOT

pytestmark = pytest.mark.slow  # the whole benchmark harness, minutes of load


def test_bench_quick_run_writes_results(tmp_path):
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--soak-requests", "5", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    [json_file] = tmp_path.glob("bench-*.json")
    [md_file] = tmp_path.glob("bench-*.md")
    result = json.loads(json_file.read_text())
    rows = result["rows"]
    assert len(rows) == 9
    assert {row["source"] for row in rows} == {"base64", "url"}
    assert {row["concurrency"] for row in rows} == {1, 10, 20}
    assert all(row["errors"] == 0 and row["images_per_s"] > 0 for row in rows), rows
    assert all(row["floor_ms"] > 0 and row["naive_ms"] > 0 for row in rows)
    assert result["parity"]["max_abs_diff"] <= 1e-5
    assert result["memory"]["peak_rss_bytes"] > 0 and result["memory"]["soak_errors"] == 0
    beside = result["interference"]
    assert beside["rounds"] == 2 and beside["health_checks"] > 0 and beside["small_p50_ms"] > 0
    assert "| workload |" in md_file.read_text() and "| workload |" in finished.stdout
