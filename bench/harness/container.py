"""The production image run the way KServe runs it, for tests and benches: a Docker container
on the host's network (loopback only), read-only root, tmpfs /tmp, as the image's non-root user.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from .server_process import free_port, poll_ready


def docker(*args: str, timeout_s: float = 120, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


class Container:
    """The image run like a KServe pod: read-only root, tmpfs /tmp, non-root, loopback only."""

    def __init__(
        self,
        image: str,
        volumes: dict[Path, str] | None = None,
        read_only: bool = True,
        **env: object,
    ) -> None:
        self.image = image
        self.read_only = read_only
        self.name = f"logo-detection-test-{uuid.uuid4().hex[:12]}"
        self.http_port = free_port()
        self.env = {
            "HTTP_PORT": self.http_port,
            "GRPC_PORT": free_port(),
            **{key.upper(): value for key, value in env.items()},
        }
        self.volumes = volumes or {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def predict_url(self) -> str:
        return f"{self.url}/v1/models/logo-detection:predict"

    def start(self, ready_timeout_s: float = 600) -> Container:
        options = ["--network", "host", "--tmpfs", "/tmp"]
        options += ["--read-only"] if self.read_only else []
        for key, value in self.env.items():
            options += ["--env", f"{key}={value}"]
        for source, target in self.volumes.items():
            options += ["--volume", f"{source}:{target}:ro"]
        docker("run", "--detach", "--name", self.name, *options, self.image)
        if poll_ready(self.url, self._exited, ready_timeout_s):
            return self
        raise AssertionError(f"not ready after {ready_timeout_s} s:\n{self.logs()}")

    def _exited(self) -> str | None:
        running = docker("inspect", "--format", "{{.State.Running}}", self.name).strip()
        return None if running == "true" else f"the container exited:\n{self.logs()}"

    def logs(self) -> str:
        result = subprocess.run(
            ["docker", "logs", self.name], capture_output=True, text=True, timeout=60
        )
        return result.stdout + result.stderr

    def terminate(self) -> None:
        """SIGTERM to the server (PID 1), as the kubelet sends it."""
        docker("kill", "--signal", "SIGTERM", self.name)

    def wait(self, timeout_s: float = 90) -> int:
        return int(docker("wait", self.name, timeout_s=timeout_s).strip())

    def remove(self) -> None:
        docker("rm", "--force", self.name, check=False)

    def __enter__(self) -> Container:
        try:
            return self.start()
        except BaseException:
            self.remove()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.remove()
