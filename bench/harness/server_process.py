"""Start and stop the real model server process on free loopback ports, for tests and benches.

Servers serve the default model's committed ONNX export (`models/logo_detection.onnx` and its
JSON), as production does: no TensorFlow is needed to start one. Everything a server or test
writes (conversion caches, exports) stays under `build/tests`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import weakref
from collections.abc import Callable
from pathlib import Path

from model_server.logo_detection.model_contract import file_sha256

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO_ROOT / "models" / "logo_detection.keras"
DEFAULT_ONNX = DEFAULT_MODEL.with_suffix(".onnx")  # its export, committed beside it (make export)
TEST_BUILD_DIR = REPO_ROOT / "build" / "tests"
EXPORTED_DEFAULT_DIR = TEST_BUILD_DIR / "default-model"
ONNX_CACHE_DIR = TEST_BUILD_DIR / "onnx-cache"  # the .keras path's conversion cache


def export_command(model: Path, out_dir: Path, *args: str) -> list[str]:
    """The real export tool, as a user runs it (needs the full install's TensorFlow)."""
    command = [sys.executable, "-m", "keras_export", str(model)]
    return [*command, "--out-dir", str(out_dir), *args]


def exported_default_model() -> Path:
    """A directory holding only the default model's committed `.onnx` + `.json` (what a
    published model directory holds), refreshed from `models/` whenever they differ."""
    folder = ensure_dir(EXPORTED_DEFAULT_DIR)
    for source in (DEFAULT_ONNX, DEFAULT_ONNX.with_suffix(".json")):
        target = folder / source.name
        if not target.is_file() or file_sha256(target) != file_sha256(source):
            partial = folder / f".{source.name}.{os.getpid()}"
            shutil.copyfile(source, partial)
            os.replace(partial, target)  # parallel workers never see a partial file
    return EXPORTED_DEFAULT_DIR


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVER_COMMAND = (sys.executable, "-m", "model_server.logo_detection")


def poll_ready(url: str, exited: Callable[[], str | None], timeout_s: float) -> bool:
    """Poll `url`/v2/health/ready until it answers 200 (True) or `timeout_s` passes (False);
    `exited()` says why the server can no longer get ready (raised), or None while it can."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reason = exited()
        if reason is not None:
            raise RuntimeError(reason)
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.05)  # a refused loopback connection costs nothing
    return False


class ServerProcess:
    """`python -m model_server.logo_detection [argv]` with its settings from `env` (and `argv`:
    when it names other ports or model name, set `http_port`/`model_name` to match); logs to a
    file. Without `model_path` it serves the default model's ONNX export."""

    def __init__(
        self, model_path: Path | None = None, argv: tuple[str, ...] = (), **env: object
    ) -> None:
        model_path = DEFAULT_ONNX if model_path is None else model_path
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.argv = tuple(argv)
        self.model_name: str | None = None  # None: MODEL_NAME from env, else the default
        self.code_dir = REPO_ROOT  # the checkout whose server runs (bench.compare sets another)
        self.env = {
            **os.environ,
            "MODEL_PATH": str(model_path),
            "HTTP_PORT": str(self.http_port),
            "GRPC_PORT": str(self.grpc_port),
            "PYTHONUNBUFFERED": "1",
            "ONNX_CACHE_DIR": str(ONNX_CACHE_DIR),
            **{key.upper(): str(value) for key, value in env.items()},
        }
        # The server's output goes to a file that outlives stop() (failures read it after), with
        # no handle left open here: a server started and stopped without `with` leaks nothing.
        descriptor, log_path = tempfile.mkstemp(prefix="logo-detection-", suffix=".log")
        os.close(descriptor)
        self._log_path = Path(log_path)
        weakref.finalize(self, self._log_path.unlink, missing_ok=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def predict_url(self) -> str:
        name = self.model_name or self.env.get("MODEL_NAME", "logo-detection")
        return f"{self.url}/v1/models/{name}:predict"

    def start(self, ready_timeout_s: float = 180) -> ServerProcess:
        with self._log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [*SERVER_COMMAND, *self.argv],
                cwd=self.code_dir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if poll_ready(self.url, self._exited, ready_timeout_s):
            return self
        self.stop()
        raise RuntimeError(f"server not ready after {ready_timeout_s} s:\n{self.log()}")

    def _exited(self) -> str | None:
        if self.process is None or self.process.poll() is None:
            return None
        return f"server exited with {self.process.returncode}:\n{self.log()}"

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM, as Kubernetes does; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def run_to_exit(
    model_path: Path, timeout_s: float = 180, argv: tuple[str, ...] = (), **env: object
) -> tuple[int, str]:
    """Run the server expecting it to exit by itself (refusing to start, or --help); returns
    (exit code, output)."""
    server = ServerProcess(model_path, **env)
    result = subprocess.run(
        [*SERVER_COMMAND, *argv],
        cwd=REPO_ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return result.returncode, result.stdout + result.stderr
