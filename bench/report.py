"""Turn measurements into the table, the target checks, and the JSON + markdown result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from . import interference

GIB = 1024**3


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def targets(result: dict) -> list[dict]:
    """The issue's targets, each with the measured value and whether it was met."""
    rows = {row["name"]: row for row in result["rows"]}
    checks: list[dict] = []

    def check(name: str, value: float, limit: float, ok: bool) -> None:
        checks.append({"target": name, "value": float(f"{value:.3g}"), "limit": limit, "met": ok})

    for row in result["rows"]:
        if row["concurrency"] == 1 and row["per_request"] == 1:
            check(f"{row['name']}: p50 / floor <= 1.5", row["x_floor"], 1.5, row["x_floor"] <= 1.5)
        if row["per_request"] == 50:
            check(f"{row['name']}: p50 / floor <= 1.3", row["x_floor"], 1.3, row["x_floor"] <= 1.3)
        need = 2.5 if row["per_request"] == 50 else 10.0
        check(
            f"{row['name']}: x faster than naive >= {need}",
            row["x_naive"],
            need,
            row["x_naive"] >= need,
        )
    single = rows.get("1024px, 1/request, c=1, base64")
    for row in result["rows"]:
        if row["concurrency"] == 20 and row["per_request"] == 1:
            share = row["of_floor_images_per_s"]
            check(f"{row['name']}: img/s / floor batch-50 img/s >= 0.7", share, 0.7, share >= 0.7)
            if single:
                spread = row["p99_ms"] / single["p50_ms"]
                check(f"{row['name']}: p99 / c=1 p50 <= 10", spread, 10, spread <= 10)
    errors = sum(row["errors"] for row in result["rows"]) + result["memory"]["soak_errors"]
    check("errors in all rows and the soak == 0", errors, 0, errors == 0)
    memory = result["memory"]
    peak_gib = memory["peak_rss_bytes"] / GIB
    check("peak RSS under load <= 1.5 GiB", peak_gib, 1.5, peak_gib <= 1.5)
    drift = memory["rss_drift"]
    check(
        f"RSS after {memory['soak_requests']} requests vs after warm-up: drift <= 10%",
        drift,
        0.10,
        abs(drift) <= 0.10,
    )
    diff = result["parity"]["max_abs_diff"]
    check("max |score - TensorFlow score| <= 1e-5", diff, 1e-5, diff <= 1e-5)
    return checks


def markdown(result: dict) -> str:
    info = result["machine"]
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores; {info['date']}; commit {info['commit']}; "
        f"load average at start {info['load_average_at_start']}, at end "
        f"{info.get('load_average_at_end')}; backend `{result['backend']}`.",
        "",
        "| workload | requests | errors | p50 ms | p95 ms | p99 ms | images/s "
        "| floor ms | p50 / floor | images/s / floor's | naive ms | x faster than naive |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        x_floor = f"{row['x_floor']:.2f}" if row["concurrency"] == 1 else "-"
        lines.append(
            f"| {row['name']} | {row['requests']} | {row['errors']} | {row['p50_ms']:.1f} "
            f"| {row['p95_ms']:.1f} | {row['p99_ms']:.1f} | {row['images_per_s']:.1f} "
            f"| {row['floor_ms']:.1f} | {x_floor} | {row['of_floor_images_per_s']:.2f} "
            f"| {row['naive_ms']:.0f} | {row['x_naive']:.1f} |"
        )
    forward = result["forward_ms"]
    memory = result["memory"]
    lines += [
        "",
        "Forward pass alone, median ms, batch 1 / 50: "
        + "; ".join(f"{name} {ms[0]:.1f} / {ms[1]:.1f}" for name, ms in forward.items())
        + ".",
        f"Server RSS: {memory['rss_after_warm_up_bytes'] / 2**20:.0f} MiB after warm-up, peak "
        f"{memory['peak_rss_bytes'] / 2**20:.0f} MiB, {memory['rss_after_soak_bytes'] / 2**20:.0f}"
        f" MiB after {memory['soak_requests']} more requests (drift {memory['rss_drift']:+.1%}).",
        f"Parity: max |score - TensorFlow| = {result['parity']['max_abs_diff']:.2g} over "
        f"{result['parity']['images']} images.",
        interference.markdown(result["interference"]) if "interference" in result else "",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for item in result["targets"]:
        lines.append(f"| {item['target']} | {item['value']:g} | {'yes' if item['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def write(result: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path, md_path = out_dir / f"bench-{stamp}.json", out_dir / f"bench-{stamp}.md"
    json_path.write_text(json.dumps(result, indent=1))
    md_path.write_text(markdown(result))
    return json_path, md_path
