"""Container files and the KServe manifest, checked without a Docker engine or a cluster (issue 6).

What a Docker-less machine can check: the files parse, every path they copy exists and is not
dockerignored, the production image's entrypoint runs from a clean (non-editable) install of
the package outside the repo, and the InferenceService is valid for the KServe SDK and only sets
environment variables the server reads.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import kserve
import kserve.models
import kubernetes.client
import pytest
import yaml

from bench.harness.server_process import REPO_ROOT, free_port, poll_ready
from model_server.logo_detection.settings import Settings

ENTRYPOINT = ["python3", "-m", "model_server.logo_detection"]
MANIFEST = REPO_ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
# The default model's committed ONNX export and its JSON: what both images serve from /mnt/models.
DEFAULT_MODEL_FILES = ("models/logo_detection.onnx", "models/logo_detection.json")
# Read by KServe (STORAGE_URI: download the model to /mnt/models) or by the HTTP client library.
NON_SETTINGS_ENV = {"STORAGE_URI", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"}


# --- Dockerfile and .dockerignore -----------------------------------------------------------


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> [(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO_ROOT / "Dockerfile").read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            current = stages.setdefault(arguments.split()[-1], [])
        current.append((instruction, arguments.strip()))
    return stages


def local_copy_sources(stage: list[tuple[str, str]]) -> list[str]:
    sources = []
    for instruction, arguments in stage:
        words = arguments.split()
        if instruction in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[:-1] if not w.startswith("--")]
    return sources


def dockerignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        for prefix in prefixes
        for pattern in patterns
    )


def test_dockerfile_copies_only_existing_paths_that_the_context_keeps():
    stages = dockerfile_stages()
    assert list(stages) == ["serving-stack", "serving-build", "production"]
    sources = [source for stage in stages.values() for source in local_copy_sources(stage)]
    assert sources, "the Dockerfile copies nothing from the repo"
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"Dockerfile copies missing path {source}"
        assert not dockerignored(source), f".dockerignore drops {source}, which is copied"
    for heavy in (".venv", ".git", "models/production/x.keras", "model_server/__pycache__"):
        assert dockerignored(heavy), f"{heavy} would be sent to the Docker daemon"


def test_production_stage_is_slim_non_root_and_serves_from_mnt_models():
    stages = dockerfile_stages()
    production = stages["production"]
    # No sources: the virtualenv from serving-build and the committed default model (its ONNX
    # export and JSON). No stage exports: none copies the export tools, their lock or the .keras.
    assert local_copy_sources(production) == list(DEFAULT_MODEL_FILES), "copies sources"
    copies = [args.split() for instruction, args in production if instruction == "COPY"]
    assert [*DEFAULT_MODEL_FILES, "/mnt/models/"] in copies, "no default model"
    assert [words[0] for words in copies if words[0].startswith("--from")] == [
        "--from=serving-build"
    ]
    copied = {source for stage in stages.values() for source in local_copy_sources(stage)}
    assert not copied & {"requirements.txt", "keras_export", "models/logo_detection.keras"}
    installs = [args for instruction, args in stages["serving-stack"] if instruction == "RUN"]
    # the serving lock, hash-checked; never the export lock (TensorFlow): test_dependencies.py
    assert any("--require-hashes -r /src/requirements-serving.txt" in args for args in installs)
    assert not any("requirements.txt" in args for args in installs)
    runs = " ".join(arguments for instruction, arguments in production if instruction == "RUN")
    assert not re.search(r"\b(pip|apt-get|gcc|make)\b", runs), "build tools in the runtime stage"
    user = next(arguments for instruction, arguments in production if instruction == "USER")
    assert user.split(":")[0] not in ("root", "0")
    env = " ".join(arguments for instruction, arguments in production if instruction == "ENV")
    assert "MODEL_PATH=/mnt/models" in env.split()
    assert ("EXPOSE", "8080") in production
    entrypoint = next(
        arguments for instruction, arguments in production if instruction == "ENTRYPOINT"
    )
    assert json.loads(entrypoint) == ENTRYPOINT


# --- blubber.yaml ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blubber() -> dict:
    return yaml.safe_load((REPO_ROOT / "blubber.yaml").read_text())


def test_blubber_has_the_three_variants_and_pins_python(blubber):
    assert blubber["version"] == "v4"
    assert blubber["base"].startswith("docker-registry.wikimedia.org/")
    assert set(blubber["variants"]) == {"build", "test", "production"}  # no export at build time
    build = blubber["variants"]["build"]["python"]
    assert build["version"] == "python3.11"
    assert build["requirements"] == ["requirements-serving.txt"]
    assert all("builder" not in variant for variant in blubber["variants"].values())
    test = blubber["variants"]["test"]["python"]
    assert test["requirements"] == ["requirements-dev.txt"]  # the dev lock: export + test tools


def test_blubber_production_runs_the_entrypoint_as_non_root_with_runtime_files_only(blubber):
    production = blubber["variants"]["production"]
    assert production["entrypoint"] == ENTRYPOINT
    assert not production.get("runs", {}).get("insecurely", False)
    assert not blubber.get("runs", {}).get("insecurely", False)
    assert blubber["runs"]["environment"]["MODEL_PATH"] == "/mnt/models"
    local = {copy["source"]: copy for copy in production["copies"] if copy["from"] == "local"}
    assert list(local) == ["model_server", *DEFAULT_MODEL_FILES]
    assert local["model_server"].get("exclude", []) == ["**/__pycache__"], "copied as it is"
    for source in DEFAULT_MODEL_FILES:  # the committed default model, as the Dockerfile copies it
        assert local[source]["destination"] == f"/mnt/models/{Path(source).name}"
    from_variants = {copy["from"]: copy for copy in production["copies"] if copy["from"] != "local"}
    assert set(from_variants) == {"build"}
    site_packages = from_variants["build"]["source"]
    assert site_packages in blubber["runs"]["environment"]["PYTHONPATH"].split(":")


def test_every_path_blubber_copies_exists(blubber):
    for name, variant in blubber["variants"].items():
        paths = list(variant.get("python", {}).get("requirements", []))
        paths += variant.get("builder", {}).get("requirements", [])
        for copy in variant.get("copies", []):
            if copy == "local":
                continue
            if copy["from"] == "local":
                paths.append(copy["source"])
            else:
                assert copy["from"] in blubber["variants"], f"{name} copies from unknown variant"
        for path in paths:
            assert (REPO_ROOT / path).exists(), f"blubber variant {name} copies missing {path}"
            assert not dockerignored(path), f".dockerignore drops {path}"


# --- the entrypoint from a clean install ----------------------------------------------------


def checkout_copy(destination: Path) -> Path:
    """The checkout's tracked files, as a clean clone has them (models/ binaries aside): what a
    package build could pick up, so a test of what the package holds sees training/, bench/,
    keras_export/ and tests/ too, not only the files the Dockerfile copies."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if name.startswith("models/") and not name.endswith((".md", ".json")):
            continue
        if (REPO_ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, destination / name)
    return destination


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory) -> Path:
    """A fresh venv with the package installed (not editable) from a copy of the checkout.

    The heavy pinned stack (TensorFlow ...) is shared from the test interpreter's environment
    through a .pth file rather than reinstalled; the package itself is a real wheel install.
    """
    root = tmp_path_factory.mktemp("clean-install")
    source = checkout_copy(root / "src")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    (site_packages,) = venv.glob("lib/python3*/site-packages")
    stack = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site_packages / "_shared_stack.pth").write_text("\n".join(stack) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
         "--quiet", "--no-deps", "--no-build-isolation", "--no-index", source],
        check=True,
        cwd=root,
    )  # fmt: skip
    return venv


def test_the_package_installs_only_the_server(installed_venv, tmp_path):
    (site_packages,) = installed_venv.glob("lib/python3*/site-packages")
    for unwanted in ("tests", "training", "bench", "keras_export"):
        assert not (site_packages / unwanted).exists(), f"{unwanted}/ ended up in the package"
    where = subprocess.run(
        [installed_venv / "bin" / "python3", "-c", "import model_server as m; print(m.__file__)"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where) == site_packages / "model_server" / "__init__.py"


@pytest.mark.slow  # builds a wheel: seconds
def test_the_wheel_holds_the_server_package_alone(tmp_path):
    """training/, bench/, keras_export/ and tests/ are repository tools, not the product."""
    source = checkout_copy(tmp_path / "src")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", tmp_path / "dist", source],
        check=True,
        cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("logo_detection-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"model_server", wheel.name.split("-py3")[0] + ".dist-info"}, sorted(tops)
    assert "model_server/logo_detection/model_contract.py" in names
    assert "model_server/logo_detection/keras_conversion.py" in names
    assert not [name for name in names if "/tf/" in name or name.endswith(".keras")]


def clean_env(**settings: str) -> dict[str, str]:
    """Our environment without anything that would put the repo on the import path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return env | settings


def test_entrypoint_serves_from_a_clean_install_outside_the_repo(
    installed_venv, tmp_path, samples, exported_default_model
):
    models = tmp_path / "mnt" / "models"  # what KServe's storage initializer leaves
    shutil.copytree(exported_default_model, models)
    port = free_port()
    env = clean_env(MODEL_PATH=str(models), HTTP_PORT=str(port), ENABLE_GRPC="false")
    log = tmp_path / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [installed_venv / "bin" / "python3", *ENTRYPOINT[1:]],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        exited = lambda: None if process.poll() is None else f"exited:\n{log.read_text()}"  # noqa: E731
        assert poll_ready(f"http://127.0.0.1:{port}", exited, 180), log.read_text()
        body = json.dumps(
            {"instances": [{"filename": "a.png", "target": "logo", "image": b64_first(samples)}]}
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/models/logo-detection:predict", data=body
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            result = json.load(answer)["predictions"][0]
        assert set(result) == {"filename", "target", "prediction", "out_of_domain"}
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(60)
    assert exit_code == 0, log.read_text()


def b64_first(samples: dict[str, bytes]) -> str:
    return base64.b64encode(next(iter(samples.values()))).decode()


# --- the KServe InferenceService ------------------------------------------------------------


class _KServeApiClient(kserve.ApiClient):
    """KServe's deserializer, resolving the Kubernetes types it nests (V1Container ...) too."""

    # overrides ApiClient.__deserialize (name-mangled), which only looks in kserve.models
    def _ApiClient__deserialize(self, data, klass):
        if isinstance(klass, str) and not hasattr(kserve.models, klass):
            kubernetes_type = getattr(kubernetes.client.models, klass, None)
            if kubernetes_type is not None:
                return kubernetes_type.from_dict(data)
        return super()._ApiClient__deserialize(data, klass)


def round_trip(manifest: dict) -> dict:
    """Manifest -> V1beta1InferenceService -> dict: unknown or misspelt fields disappear."""

    class Response:
        data = json.dumps(manifest)

    client = _KServeApiClient()
    service = client.deserialize(Response(), "V1beta1InferenceService")
    assert isinstance(service, kserve.models.V1beta1InferenceService)
    return client.sanitize_for_serialization(service)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def container(manifest: dict) -> dict:
    (only,) = manifest["spec"]["predictor"]["containers"]
    return only


def test_manifest_is_a_valid_inference_service_with_no_unknown_fields(manifest):
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert manifest["kind"] == "InferenceService"
    assert round_trip(manifest) == manifest


@pytest.mark.parametrize(
    ("path", "field", "misspelt"),
    [
        (("spec", "predictor"), "containerConcurrency", "containerConcurency"),
        (("spec", "predictor", "containers", 0), "readinessProbe", "readinesProbe"),
        (("spec", "predictor", "containers", 0, "resources"), "limits", "limit"),
        (("metadata",), "annotations", "anotations"),
    ],
)
def test_the_round_trip_catches_a_misspelt_field(manifest, path, field, misspelt):
    broken = json.loads(json.dumps(manifest))
    parent = broken
    for key in path:
        parent = parent[key]
    parent[misspelt] = parent.pop(field)
    assert round_trip(broken) != broken


def test_manifest_env_is_what_the_server_reads(manifest):
    spec = container(manifest)
    assert "args" not in spec and "command" not in spec, "the image's entrypoint takes no args"
    env = {item["name"]: item["value"] for item in spec["env"]}
    settings_names = {name.upper() for name in Settings.model_fields}
    unknown = set(env) - settings_names - NON_SETTINGS_ENV
    assert not unknown, f"env vars the server does not read: {unknown}"
    settings = Settings(**{n.lower(): v for n, v in env.items() if n in settings_names})
    assert str(settings.model_path) == "/mnt/models"
    assert settings.model_name == "logo-detection"
    assert env["STORAGE_URI"].startswith(("s3://", "gs://", "https://", "pvc://"))
    assert spec["ports"] == [{"containerPort": settings.http_port, "protocol": "TCP"}]
    predictor = manifest["spec"]["predictor"]
    # the queue-proxy's hard limit keeps a replica inside its own image budget (no 503s)
    assert predictor["containerConcurrency"] * settings.max_instances <= (
        settings.max_images_in_flight
    )
    assert predictor["terminationGracePeriodSeconds"] > settings.shutdown_grace_period_s


def test_manifest_scales_on_concurrency_within_bounds(manifest):
    annotations = manifest["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/metric"] == "concurrency"
    predictor = manifest["spec"]["predictor"]
    target = int(annotations["autoscaling.knative.dev/target"])
    assert 0 < target <= predictor["containerConcurrency"]
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    resources = container(manifest)["resources"]
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"]


async def test_manifest_probes_hit_routes_the_server_answers(manifest, server, http):
    spec = container(manifest)
    for probe in ("readinessProbe", "livenessProbe"):
        action = spec[probe]["httpGet"]
        assert action["port"] == spec["ports"][0]["containerPort"]
        async with http.get(f"{server.url}{action['path']}") as answer:
            assert answer.status == 200, f"{probe} {action['path']} -> {answer.status}"
    ready, live = spec["readinessProbe"], spec["livenessProbe"]
    # the image loads an exported model (no conversion): ready in 2-4 s (README)
    assert ready["initialDelaySeconds"] <= 5, "traffic would wait for nothing"
    # liveness must not kill a start 10x slower than measured (a busy node)
    assert live["initialDelaySeconds"] + live["periodSeconds"] * live["failureThreshold"] >= 60


def test_the_pod_runs_as_the_container_test_runs_the_image(manifest):
    """Non-root, read-only root filesystem, a scratch /tmp: what tests/test_container.py runs."""
    spec = container(manifest)
    security = spec["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert not security["allowPrivilegeEscalation"]
    (mount,) = spec["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    volumes = {volume["name"]: volume for volume in manifest["spec"]["predictor"]["volumes"]}
    assert "emptyDir" in volumes[mount["name"]]
