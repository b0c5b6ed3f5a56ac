"""A/B latency of two servers on this machine, measured in one run: `make bench-compare`.

    python -m bench.compare [--baseline REF] [--candidate REF] [--baseline-set NAME=VALUE] ...

The baseline is the server of git REF (checked out into a temporary worktree, run with this
venv), the candidate the server of this checkout, or of another REF. Both run at once, but only
one is loaded at a time, and the workloads alternate between them for `--rounds` rounds, so a
machine that gets busier or quieter during the run affects both alike. Reported: 1 x 1024 px
p50, 50 x 1024 px p50 and the images/s of 20 concurrent 1-image clients, per server (median over
rounds) and as candidate / baseline ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from . import images
from .harness.server_process import REPO_ROOT, ServerProcess
from .load import predict_body, run_load

# (name, images per request, concurrency, requests per round)
WORKLOADS = (
    ("1 x 1024px, c=1, p50 ms", 1, 1, 30),
    ("50 x 1024px, c=1, p50 ms", 50, 1, 3),
    ("1 x 1024px, c=20, images/s", 1, 20, 200),
)


def parse_settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        settings[name.lower()] = value
    return settings


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A temporary worktree of `ref` (the same models/ and tests/ as that commit had)."""
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as scratch:
        tree = Path(scratch) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(tree), ref],
            cwd=REPO_ROOT,
            check=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=REPO_ROOT, check=False
            )


def start(code_dir: Path, settings: dict[str, str]) -> ServerProcess:
    model = Path(settings.pop("model_path", code_dir / "models" / "logo_detection.keras"))
    server = ServerProcess(model, **settings)
    server.code_dir = code_dir
    return server.start(ready_timeout_s=600)


async def measure(session: aiohttp.ClientSession, server: ServerProcess, bodies: dict) -> dict:
    """One round of every workload against one server."""
    results = {}
    for name, per_request, concurrency, requests in WORKLOADS:
        outcome = await run_load(
            session, server.predict_url, bodies[per_request], per_request, requests, concurrency
        )
        if outcome.errors:
            raise RuntimeError(f"{name}: {outcome.errors} errors, first: {outcome.first_error}")
        results[name] = outcome.images_per_s if concurrency > 1 else outcome.percentile_ms(50)
    return results


async def compare(servers: dict[str, ServerProcess], rounds: int) -> dict[str, dict[str, float]]:
    singles = images.variants("1024px", 50)
    bodies = {1: [predict_body(images=[data]) for data in singles], 50: [predict_body(singles)]}
    rows: dict[str, dict[str, list[float]]] = {label: {} for label in servers}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for server in servers.values():  # warm-up, not measured
            await measure(session, server, bodies)
        for round_index in range(rounds):
            order = list(servers.items())
            if round_index % 2:
                order.reverse()
            for label, server in order:
                print(f"round {round_index + 1}/{rounds}: {label} ...", file=sys.stderr)
                for name, value in (await measure(session, server, bodies)).items():
                    rows[label].setdefault(name, []).append(value)
    return {
        label: {name: statistics.median(values) for name, values in by_name.items()}
        for label, by_name in rows.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--baseline", default="HEAD", help="git ref of the baseline server")
    parser.add_argument("--candidate", default=None, help="git ref (default: this checkout)")
    parser.add_argument("--baseline-set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--candidate-set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with checkout(args.baseline) as baseline_tree:
        servers = {}
        try:
            servers["baseline"] = start(baseline_tree, parse_settings(args.baseline_set))
            servers["candidate"] = start(REPO_ROOT, parse_settings(args.candidate_set))
            medians = asyncio.run(compare(servers, args.rounds))
        finally:
            for server in servers.values():
                server.stop()
    result = {
        "baseline": args.baseline,
        "rounds": args.rounds,
        "medians": medians,
        "candidate_over_baseline": {
            name: medians["candidate"][name] / medians["baseline"][name]
            for name in medians["baseline"]
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
