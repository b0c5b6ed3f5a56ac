"""Every setting the server reads (documented in README.md#configuration): environment
variables, and for a few of them a command-line flag that wins over the environment
(command_line.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_PATH = REPO_ROOT / "models" / "logo_detection.onnx"  # its .keras, exported
MIB = 1024 * 1024

CommaSeparated = Annotated[tuple[str, ...], NoDecode]
CommaSeparatedInts = Annotated[tuple[int, ...], NoDecode]


class Settings(BaseSettings):
    """Environment variables, case-insensitive; lists are comma-separated."""

    model_config = SettingsConfigDict(case_sensitive=False, frozen=True, protected_namespaces=())

    # Model
    model_name: str = "logo-detection"
    model_path: Path = DEFAULT_MODEL_PATH
    class_names: CommaSeparated = ()  # empty: from the model's JSON, else out_of_domain,logo
    inference_backend: Literal["auto", "tensorflow", "onnx"] = "auto"
    onnx_cache_dir: Path = Path.home() / ".cache" / "logo-detection"  # converted models by hash

    # Server
    http_port: int = Field(8080, ge=1, le=65535)
    grpc_port: int = Field(8081, ge=1, le=65535)
    enable_grpc: bool = False  # the model speaks only the v1 JSON protocol; gRPC is KServe v2
    shutdown_grace_period_s: int = Field(30, ge=0)
    cpu_threads: int = Field(0, ge=0)  # 0: follow the container's CPU quota

    # Request limits
    max_instances: int = Field(50, ge=1)
    max_request_bytes: int = Field(64 * MIB, ge=1024)
    max_image_bytes: int = Field(25 * MIB, ge=1)
    max_image_pixels: int = Field(100_000_000, ge=1)
    svg_render_size: int = Field(512, ge=16, le=4096)
    max_svg_bytes: int = Field(10 * MIB, ge=1)
    max_svg_elements: int = Field(50_000, ge=1)  # counting what <use> expands to
    svg_render_timeout_s: float = Field(5.0, gt=0)  # the render worker process is killed after
    max_images_in_flight: int = Field(200, ge=1)
    max_queue_wait_s: float = Field(30.0, ge=0)  # then 503 with Retry-After

    # Batching
    max_batch_size: int = Field(8, ge=1)
    batch_max_wait_ms: float = Field(0.0, ge=0)

    # URL fetching
    fetch_allowed_schemes: CommaSeparated = ("https",)
    fetch_allowed_hosts: CommaSeparated = ("upload.wikimedia.org", "commons.wikimedia.org")
    fetch_allowed_ports: CommaSeparatedInts = (443,)
    fetch_allow_loopback: bool = False
    fetch_max_redirects: int = Field(3, ge=0)
    fetch_connect_timeout_s: float = Field(5.0, gt=0)
    fetch_read_timeout_s: float = Field(5.0, gt=0)
    fetch_total_timeout_s: float = Field(15.0, gt=0)
    fetch_max_concurrency: int = Field(16, ge=1)
    # Wikimedia's User-Agent policy asks for a contact: deployments set it with USER_AGENT.
    user_agent: str = "logo-detection/1.0 (logo-detection model server) python-aiohttp"

    @field_validator(
        "class_names",
        "fetch_allowed_schemes",
        "fetch_allowed_hosts",
        "fetch_allowed_ports",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("fetch_allowed_schemes", "fetch_allowed_hosts", mode="after")
    @classmethod
    def _lower_case(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(item.lower() for item in value)
