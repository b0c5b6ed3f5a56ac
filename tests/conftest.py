"""Shared fixtures: the real server process, a real local image server, a real HTTP client."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _pytest.mark.expression import Expression
from hypothesis.configuration import set_hypothesis_home_dir

from bench.harness import server_process
from bench.harness.image_server import ImageServer
from bench.harness.server_process import (
    REPO_ROOT,
    TEST_BUILD_DIR,
    ServerProcess,
    ensure_dir,
    export_command,
)

# Hermetic: what the tests, and every process they start, write to a home directory or a cache
# (ONNX conversions, pip, ONNX Runtime's and matplotlib's files) lands under build/tests.
TEST_HOME = ensure_dir(TEST_BUILD_DIR / "home")
os.environ.update(HOME=str(TEST_HOME), XDG_CACHE_HOME=str(TEST_HOME / ".cache"))
os.environ.update(
    ONNX_CACHE_DIR=str(server_process.ONNX_CACHE_DIR), RUFF_CACHE_DIR=str(TEST_BUILD_DIR / "ruff")
)
set_hypothesis_home_dir(TEST_BUILD_DIR / "hypothesis")  # its example database

MODULE_MARKS = re.compile(r"^pytestmark = (.+)$", re.M)


def selected(config: pytest.Config, marks: set[str]) -> bool:
    """Whether `-m` (if given) selects a test carrying `marks`."""
    expression = config.option.markexpr
    return not expression or Expression.compile(expression).evaluate(lambda name: name in marks)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A module marked as a whole (`pytestmark = pytest.mark.slow`) that `-m` leaves out is not
    even imported, so the fast suite never loads TensorFlow through a test module's imports."""
    if not collection_path.name.startswith("test_") or collection_path.suffix != ".py":
        return None
    found = MODULE_MARKS.search(collection_path.read_text())
    marks = set(re.findall(r"pytest\.mark\.(\w+)", found.group(1))) if found else set()
    return None if selected(config, marks) else True


TENSORFLOW_IN_A_WORKER = pytest.StashKey[bool]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that leaves slow tests out (`make test-fast`) fails if anything imported
    TensorFlow in a test process: that is what makes it fast. An xdist worker (`-n 2`) tells
    the controller, which fails the run."""
    imported = "tensorflow" in sys.modules
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["imported_tensorflow"] = imported
        return
    imported = imported or session.config.stash.get(TENSORFLOW_IN_A_WORKER, False)
    if not selected(session.config, {"slow"}) and imported:
        print("\nerror: the fast suite imported TensorFlow", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On xdist's controller, as a worker finishes: note whether it imported TensorFlow."""
    if getattr(node, "workeroutput", {}).get("imported_tensorflow"):
        node.config.stash[TENSORFLOW_IN_A_WORKER] = True


SAMPLES_DIR = REPO_ROOT.parent / "shared" / "samples"
SAMPLE_NAMES = (
    "Cambia_logo.png",
    "Blooming_bush_(14248894271).jpg",
    "12_rue_de_Condé_-_detail.jpg",
)


@pytest.fixture(scope="session")
def samples() -> dict[str, bytes]:
    """The three real Commons images: a logo and two photos."""
    missing = [name for name in SAMPLE_NAMES if not (SAMPLES_DIR / name).is_file()]
    assert not missing, f"sample images missing from {SAMPLES_DIR}: {missing}"
    return {name: (SAMPLES_DIR / name).read_bytes() for name in SAMPLE_NAMES}


@pytest.fixture(scope="session")
def image_server() -> Iterator[ImageServer]:
    server = ImageServer().start()
    yield server
    server.stop()


def loopback_fetch_settings(image_server: ImageServer) -> dict[str, object]:
    """Let the server fetch from the local image server (off by default in production)."""
    return {
        "fetch_allowed_schemes": "http",
        "fetch_allowed_hosts": "127.0.0.1,localhost",
        "fetch_allowed_ports": str(image_server.port),
        "fetch_allow_loopback": "true",
    }


@pytest.fixture(scope="session")
def server(image_server: ImageServer) -> Iterator[ServerProcess]:
    """One real server process for the session, serving the default model. Its SVG render
    timeout is 2 s, not 5: the hostile SVG that renders for minutes burns a core until then."""
    with ServerProcess(
        fetch_total_timeout_s=5,
        fetch_read_timeout_s=2,
        svg_render_timeout_s=2,
        **loopback_fetch_settings(image_server),
    ) as process:
        yield process


def run_export(model: Path, out_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """The real export tool, as a user runs it."""
    return subprocess.run(
        export_command(model, out_dir, *args),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def exported_default_model() -> Path:
    """The default model's committed export: a directory with its .onnx + .json alone (what
    every test server serves unless a test names another model; no TensorFlow needed)."""
    return server_process.exported_default_model()


@pytest.fixture(scope="session")
def patient_server(image_server: ImageServer) -> Iterator[ServerProcess]:
    """A server that waits minutes for a fetch, so a response the test holds (HeldResponse)
    keeps a request in flight for as long as the test needs, on any machine."""
    with ServerProcess(
        fetch_total_timeout_s=600, fetch_read_timeout_s=600, **loopback_fetch_settings(image_server)
    ) as process:
        yield process


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def instance(filename: str, data: bytes | None = None, url: str | None = None) -> dict:
    item: dict = {"filename": filename, "target": "logo"}
    if data is not None:
        item["image"] = b64(data)
    if url is not None:
        item["url"] = url
    return item


async def post_predict(
    http: aiohttp.ClientSession, server: ServerProcess, body: object
) -> tuple[int, dict]:
    """POST a JSON body (or raw bytes/str) to the predict route; returns (status, JSON)."""
    if isinstance(body, bytes | str):
        data = body.encode() if isinstance(body, str) else body
    else:
        data = json.dumps(body).encode()
    # As a file, the body is written in chunks: aiohttp warns (ResourceWarning) that bytes over
    # 1 MiB, written at once, may hold up the event loop.
    async with http.post(
        server.predict_url, data=io.BytesIO(data), headers={"Content-Type": "application/json"}
    ) as response:
        return response.status, await response.json(content_type=None)


def sample_path(name: str) -> Path:
    return SAMPLES_DIR / name


async def assert_health_answers(
    http: aiohttp.ClientSession, server: ServerProcess, times: int = 3
) -> None:
    """Liveness and readiness answer, `times` each (call it while a request is provably in
    flight: how fast they answer is measured by `make bench`, not asserted here)."""
    for _ in range(times):
        for route in ("/v2/health/live", "/v2/health/ready"):
            async with http.get(server.url + route) as response:
                assert response.status == 200
