"""KServe's command line, through the real process: flags beat the environment, unknown flags
are refused, one log line per request, and what the server does not speak is closed or refused
clearly (gRPC off by default, v2 infer answered with an error naming the v1 route). Bad flag
values and --help are checked on the entry point in process: they exit before anything starts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.harness.server_process import DEFAULT_MODEL, ServerProcess, free_port, run_to_exit
from model_server.logo_detection.__main__ import main

from .conftest import instance, post_predict
from .hostile_support import png


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, exported_default_model: Path) -> Path:
    """A KServe-style model directory (/mnt/models) holding the exported model."""
    directory = tmp_path_factory.mktemp("mnt-models")
    for exported in exported_default_model.iterdir():
        (directory / exported.name).symlink_to(exported)
    return directory


@pytest.fixture(scope="module")
def flagged_server(model_dir: Path) -> Iterator[ServerProcess]:
    """Ports, name and model from flags; the environment says otherwise for each of them."""
    http_port, grpc_port = free_port(), free_port()
    argv = (
        f"--http_port={http_port}",
        f"--grpc_port={grpc_port}",
        "--enable_grpc=true",
        "--model_name=foo",
        f"--model_dir={model_dir}",
    )
    process = ServerProcess(
        DEFAULT_MODEL.parent / "nowhere.keras", argv=argv, model_name="bar", enable_grpc="false"
    )
    process.http_port, process.grpc_port, process.model_name = http_port, grpc_port, "foo"
    with process:
        yield process


async def test_flags_beat_the_environment(http, flagged_server):
    server = flagged_server
    assert server.env["HTTP_PORT"] != str(server.http_port)  # the env names other ports
    status, answer = await post_predict(http, server, {"instances": [instance("a.png", png())]})
    assert status == 200 and "prediction" in answer["predictions"][0], answer
    async with http.get(f"{server.url}/v1/models/bar") as response:
        assert response.status == 404  # MODEL_NAME=bar lost to --model_name foo
    assert not listening(int(server.env["HTTP_PORT"]))
    log = server.log()
    assert f"Uvicorn running on http://0.0.0.0:{server.http_port}" in log
    assert f"Starting gRPC server on [::]:{server.grpc_port}" in log  # ENABLE_GRPC=false lost
    assert listening(server.grpc_port)
    assert "nowhere.keras" not in log  # MODEL_PATH lost to --model_dir


async def test_grpc_when_enabled_refuses_inference_with_the_same_clear_error(flagged_server):
    from grpc.aio import AioRpcError
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    image = InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array([png()], dtype=np.object_))
    client = InferenceGRPCClient(f"127.0.0.1:{flagged_server.grpc_port}")
    try:
        with pytest.raises(AioRpcError) as refused:
            await client.infer(InferRequest(model_name="foo", infer_inputs=[image]))
    finally:
        await client.close()
    assert "v1 protocol only" in refused.value.details(), refused.value


async def test_grpc_is_closed_by_default(server):
    assert "Starting gRPC server" not in server.log()
    assert not listening(server.grpc_port)


async def test_v2_inference_is_refused_with_a_clear_error(http, server, samples):
    body = {
        "inputs": [
            {"name": "image", "datatype": "BYTES", "shape": [1], "data": ["not-used"]},
        ]
    }
    async with http.post(f"{server.url}/v2/models/logo-detection/infer", json=body) as response:
        assert response.status == 400
        message = (await response.json())["error"]
    assert "v1 protocol only" in message and "/v1/models/<name>:predict" in message
    async with http.get(f"{server.url}/v2/health/ready") as response:
        assert response.status == 200  # v2 health stays: Kubernetes probes use it


async def test_one_log_line_per_request_and_no_warnings(http, server, samples):
    before = len(server.log().splitlines())
    requests = 6
    for i in range(requests - 1):
        body = {"instances": [instance(f"{i}.png", data=samples["Cambia_logo.png"])]}
        status, _ = await post_predict(http, server, body)
        assert status == 200
    async with http.get(f"{server.url}/v2/health/live?marker=last") as response:
        assert response.status == 200
    for _ in range(600):  # the last request's access line ends what these requests logged
        if "marker=last" in server.log():
            break
        await asyncio.sleep(0.05)
    lines = server.log().splitlines()[before:]
    assert any("marker=last" in line for line in lines), lines
    assert not [line for line in lines if "warning" in line.lower()], lines
    assert len(lines) <= requests, "\n".join(lines)


def test_unknown_flag_exits_2_with_the_usage():
    code, output = run_to_exit(DEFAULT_MODEL, argv=("--http-port", "9000"), timeout_s=120)
    assert code == 2, output
    assert "usage:" in output and "unrecognized arguments: --http-port" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--http_port", "not-a-port"], "invalid int value"),
        (["--http_port", "0"], "invalid setting"),
        (["--workers", "2"], "--workers"),
    ],
)
def test_bad_flag_values_exit_2(argv: list[str], message: str, capsys) -> None:
    """In process: the entry point's own parsing and validation (the real process's exit 2 is
    shown above); it returns or exits before any model or server starts."""
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(argv))
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_help_lists_kserve_flags_and_ours(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    output = capsys.readouterr().out
    for flag in (
        "--http_port",
        "--grpc_port",
        "--workers",
        "--enable_grpc",
        "--model_name",
        "--model_dir",
        "--enable_docs_url",
    ):
        assert flag in output, flag
    assert "(default: logo-detection)" in output  # our defaults, not KServe's
