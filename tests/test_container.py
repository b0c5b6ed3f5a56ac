"""The production image, built from this repository and run the way KServe runs it (issue 10).

The image is built with deploy/container.sh (the base bootstrapped from Debian's registry when no
registry image can be pulled) and started with `--network host --read-only --tmpfs /tmp`, as a
non-root user. Its default model must be the committed export (models/logo_detection.onnx and
.json, copied, not exported while building); its scores are compared with the development
server's on the same model; SIGTERM during a 50-image request must still answer it and exit 0.

A Docker engine is required: .ci/run starts one. Without one the tests fail in CI (CI set) and
are skipped, with the reason, on a developer machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psutil
import pytest
import yaml
from kubernetes.utils import parse_quantity

from bench.harness.container import Container, docker
from bench.harness.server_process import DEFAULT_ONNX, REPO_ROOT, ServerProcess

from .conftest import instance, loopback_fetch_settings
from .hostile_support import billion_laughs_svg, png, png_bomb

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]  # a cold build takes minutes

CONTAINER_SCRIPT = REPO_ROOT / "deploy" / "container.sh"
MANIFEST = REPO_ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
IMAGE = "logo-detection:test"
BASE_IMAGE = "logo-detection-base:bookworm"
BUILD_BASE_IMAGE = "logo-detection-build-base:bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEFAULT_MODEL_FILE = "/mnt/models/logo_detection.onnx"
IMAGE_SIZE_LIMIT = 1_000_000_000  # bytes (README, "Container")
FRAMEWORK_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "keras", "keras-cv", "tf2onnx", "onnx"}
FRAMEWORK_MODULES = ("tensorflow", "keras", "keras_cv", "tf2onnx", "onnx")
PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\n(.+?)\n-----END CERTIFICATE-----", re.DOTALL
)


@pytest.fixture(scope="module")
def engine() -> None:
    """A Docker engine that answers; CI must have one, a developer machine may not."""
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
        problem = probe.stderr.strip() if probe.returncode else ""
    except (OSError, subprocess.TimeoutExpired) as error:
        problem = str(error)
    if not problem:
        return
    reason = (
        f"no Docker engine answers ({problem[-300:]}); `deploy/container.sh engine` starts one "
        "(.ci/run does), or install Docker"
    )
    if os.environ.get("CI"):
        pytest.fail(f"the container tests must run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def image(engine: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The production image, built from this repository (a cache hit when nothing changed)."""
    log = tmp_path_factory.mktemp("image") / "build.log"
    with log.open("w") as output:
        built = subprocess.run(
            [CONTAINER_SCRIPT, "build", IMAGE],
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=1500,
        )
    assert built.returncode == 0, f"the image build failed:\n{log.read_text()[-6000:]}"
    return IMAGE


@pytest.fixture(scope="module")
def exported_model(image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's default model (.onnx + .json), copied out of it."""
    directory = tmp_path_factory.mktemp("exported")
    container = docker("create", image).strip()
    try:
        docker("cp", f"{container}:/mnt/models/.", str(directory))
    finally:
        docker("rm", container)
    return directory


@pytest.fixture(scope="module")
def served(image: str, image_server) -> Iterator[Container]:
    with Container(image, **loopback_fetch_settings(image_server)) as container:
        yield container


@pytest.fixture(scope="module")
def development_server(exported_model: Path, image_server) -> Iterator[ServerProcess]:
    """The development server (this checkout, the test venv) on the image's exported model."""
    model = exported_model / Path(DEFAULT_MODEL_FILE).name
    with ServerProcess(model, **loopback_fetch_settings(image_server)) as server:
        yield server


def run_in_image(image: str, *command: str) -> str:
    """A one-off command in the image, as its user, read-only and without network."""
    return docker(
        "run", "--rm", "--network", "none", "--read-only", "--entrypoint", command[0], image,
        *command[1:],
    )  # fmt: skip


def test_the_image_is_slim_non_root_and_has_no_tensorflow(image):
    (details,) = json.loads(docker("image", "inspect", image))
    assert details["Size"] <= IMAGE_SIZE_LIMIT, f"image is {details['Size'] / 1e9:.2f} GB"
    assert details["Config"]["User"].split(":")[0] not in ("", "0", "root")
    probe = """
import importlib.metadata, importlib.util, json, os, sys
print(json.dumps({
    "uid": os.getuid(),
    "distributions": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
    "framework_modules": [m for m in sys.argv[1:] if importlib.util.find_spec(m)],
    "offline_tools": [m for m in ("keras_export", "training") if importlib.util.find_spec(m)],
    "models": sorted(os.listdir("/mnt/models")),
}))
"""
    found = json.loads(run_in_image(image, "python3", "-c", probe, *FRAMEWORK_MODULES))
    assert found["uid"] != 0
    assert not FRAMEWORK_DISTRIBUTIONS & set(found["distributions"]), found["distributions"]
    assert {"onnxruntime", "kserve", "logo-detection"} <= set(found["distributions"])
    assert found["framework_modules"] == []
    assert found["offline_tools"] == [], "the offline packages are in the image"
    assert found["models"] == ["logo_detection.json", "logo_detection.onnx"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_images_default_model_is_the_committed_export(exported_model):
    """The build copies models/logo_detection.onnx and its JSON (tests/test_export.py proves them
    the export of the .keras) instead of exporting with TensorFlow: the same bytes, version."""
    committed_json = DEFAULT_ONNX.with_suffix(".json")
    assert sha256(exported_model / DEFAULT_ONNX.name) == sha256(DEFAULT_ONNX)
    metadata = json.loads((exported_model / committed_json.name).read_text())
    assert metadata["version"] == json.loads(committed_json.read_text())["version"]
    assert sha256(exported_model / committed_json.name) == sha256(committed_json)


def certificates(bundle: bytes) -> set[bytes]:
    """The base64 bodies of a PEM bundle's certificates."""
    return {match.group(1) for match in PEM_CERTIFICATE.finditer(bundle)}


def stream_contains(command: list[str], needles: list[bytes]) -> set[bytes]:
    """The needles found in a command's output, read in chunks (an image is ~1 GB)."""
    overlap = max(len(needle) for needle in needles)
    found: set[bytes] = set()
    tail = b""
    with subprocess.Popen(command, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        while chunk := process.stdout.read(8 << 20):
            window = tail + chunk
            found.update(needle for needle in needles if needle in window)
            tail = window[-overlap:]
    assert process.returncode == 0, f"{command} failed"
    return found


def test_the_build_ca_is_in_no_layer_of_the_published_image(image):
    """The build stages trust this machine's CA bundle (pip may reach PyPI through a
    TLS-intercepting proxy); the published image keeps Debian's bundle, and no layer of it holds
    a certificate that only the build machine trusts."""
    base_bundle = run_in_image(BASE_IMAGE, "cat", "/etc/ssl/certs/ca-certificates.crt").encode()
    image_bundle = run_in_image(image, "cat", "/etc/ssl/certs/ca-certificates.crt").encode()
    assert image_bundle == base_bundle
    build_only = sorted(certificates(HOST_CA_BUNDLE.read_bytes()) - certificates(base_bundle))
    build_bundle = run_in_image(BUILD_BASE_IMAGE, "cat", "/etc/ssl/build-ca-bundle.crt").encode()
    assert set(build_only) <= certificates(build_bundle), "the build base lacks the host's CAs"
    # One line from the middle of each certificate: PEM files wrap at 64 characters.
    needles = [body.split(b"\n")[len(body.split(b"\n")) // 2] for body in build_only]
    control = sorted(certificates(base_bundle))[0].split(b"\n")[3]  # in the image: must be found
    found = stream_contains(["docker", "save", image], [*needles, control])
    assert control in found, "the layer scan does not see file contents"
    assert not found - {control}, "a certificate of the build machine is in the published image"


async def post(http: aiohttp.ClientSession, url: str, body: object) -> tuple[int, dict]:
    # As a file, the body is written in chunks: aiohttp warns (ResourceWarning, an error under
    # pytest) that bytes over 1 MiB, written at once, may hold up the event loop.
    data = io.BytesIO(json.dumps(body).encode())
    headers = {"Content-Type": "application/json"}
    async with http.post(url, data=data, headers=headers) as answer:
        return answer.status, await answer.json()


def assert_same_results(got: list[dict], expected: list[dict]) -> None:
    assert [r["filename"] for r in got] == [r["filename"] for r in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert set(mine) == set(theirs), (mine, theirs)
        if "error" in theirs:
            assert mine["error"] == theirs["error"], (mine, theirs)
            continue
        for key in ("prediction", "out_of_domain"):
            assert abs(mine[key] - theirs[key]) <= 1e-5, (key, mine, theirs)


async def test_the_container_scores_like_the_development_server(
    served, development_server, image_server, http, samples
):
    logo = "Cambia_logo.png"
    url = image_server.add_file("container/logo.png", samples[logo], "image/png")
    body = {
        "instances": [
            *(instance(name, data) for name, data in samples.items()),
            instance("fetched.png", url=url),
            instance("bomb.png", png_bomb(100_000, 100_000)),
            instance("laughs.svg", billion_laughs_svg()),
        ]
    }
    status, from_container = await post(http, served.predict_url, body)
    assert status == 200, from_container
    status, from_development = await post(http, development_server.predict_url, body)
    assert status == 200, from_development
    results = from_container["predictions"]
    assert_same_results(results, from_development["predictions"])
    scored = {r["filename"]: r for r in results if "error" not in r}
    assert set(scored) == {*samples, "fetched.png"}, results
    assert scored["fetched.png"]["prediction"] == scored[logo]["prediction"]
    assert scored[logo]["prediction"] > 0.5, "the logo sample is not a logo for the image"
    assert {r["filename"] for r in results if "error" in r} == {"bomb.png", "laughs.svg"}
    assert f"from {DEFAULT_MODEL_FILE}" in served.logs()


def test_the_servers_memory_fits_the_manifests_limit(served):
    """A coarse guard on the footprint the pod's limits were sized from (README)."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    (spec,) = manifest["spec"]["predictor"]["containers"]
    limit = float(parse_quantity(spec["resources"]["limits"]["memory"]))
    pid = int(docker("inspect", "--format", "{{.State.Pid}}", served.name).strip())
    rss = psutil.Process(pid).memory_info().rss  # the server, seen from the host
    assert rss < limit * 0.75, f"the server uses {rss / 2**30:.2f} GiB; revisit the limits"


async def wait_for_log(container: Container, text: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in container.logs():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{container.logs()}"
        await asyncio.sleep(0.1)


async def test_sigterm_during_a_50_image_request_answers_it_and_exits_0(image, image_server, http):
    """The images are held back by our image server until SIGTERM has been delivered, so the
    request is provably in flight when the container is told to stop."""
    held = [
        image_server.add_held_file(
            f"container/stop/{i}.png", png((320, 240), (i * 5, 90, 128)), "image/png"
        )
        for i in range(50)
    ]
    body = {"instances": [instance(f"{i}.png", url=image.url) for i, image in enumerate(held)]}
    settings = loopback_fetch_settings(image_server)
    with Container(image, fetch_read_timeout_s=60, fetch_total_timeout_s=60, **settings) as served:
        request = asyncio.ensure_future(post(http, served.predict_url, body))
        try:
            while not any(image.arrived.is_set() for image in held):
                assert not request.done(), "the request ended before any image was fetched"
                await asyncio.sleep(0.02)
            served.terminate()
            await wait_for_log(served, "Waiting for connections to close")
        finally:
            for image in held:
                image.release()
        status, result = await request
        exit_code = await asyncio.to_thread(served.wait)
        log = served.logs()
    assert status == 200, result
    assert [p["filename"] for p in result["predictions"]] == [f"{i}.png" for i in range(50)]
    assert all("prediction" in p for p in result["predictions"]), result
    assert exit_code == 0, log
    assert "Traceback" not in log, log


async def test_a_model_mounted_at_mnt_models_replaces_the_default(
    image, exported_model, development_server, tmp_path, http, samples
):
    """`docker run -v DIR:/mnt/models:ro` (like KServe's storage initializer) hides the default.
    The mounted model is the default one published under another name with its class order
    swapped in the JSON, so its scores prove which model answered."""
    mounted = tmp_path / "models"
    mounted.mkdir()
    shutil.copy(exported_model / "logo_detection.onnx", mounted / "published.onnx")
    metadata = json.loads((exported_model / "logo_detection.json").read_text())
    metadata["class_names"] = metadata["class_names"][::-1]
    (mounted / "published.json").write_text(json.dumps(metadata))
    for path in (mounted, *mounted.iterdir()):  # readable by the image's non-root user
        path.chmod(0o755 if path.is_dir() else 0o644)
    body = {"instances": [instance(name, data) for name, data in samples.items()]}
    with Container(image, volumes={mounted: "/mnt/models"}) as served:
        status, result = await post(http, served.predict_url, body)
        log = served.logs()
    assert status == 200, result
    assert "from /mnt/models/published.onnx" in log, log
    status, default = await post(http, development_server.predict_url, body)
    assert status == 200, default
    for swapped, original in zip(result["predictions"], default["predictions"], strict=True):
        assert swapped["filename"] == original["filename"]
        assert abs(swapped["prediction"] - original["out_of_domain"]) <= 1e-5, (swapped, original)
        assert abs(swapped["out_of_domain"] - original["prediction"]) <= 1e-5, (swapped, original)
