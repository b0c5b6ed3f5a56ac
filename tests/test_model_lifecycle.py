"""The model in process, through KServe's lifecycle: unready until `load()`, which loads the
exported default model on ONNX Runtime; predict with real image bytes; a batcher worker that dies
(a backend answering with a score missing) costs only its images, as `internal_error`; `stop()`
makes it unready and closes it; a model whose JSON records no version is named by its hash.
Readiness is read through KServe's own data plane, as its `/v1/models/<name>` and
`/v2/health/ready` routes read it."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from kserve.model_repository import ModelRepository
from PIL import Image
from prometheus_client import REGISTRY

from model_server.logo_detection.backend_loader import load_backend
from model_server.logo_detection.decoding import image_to_model_input
from model_server.logo_detection.inference.backend import InferenceBackend
from model_server.logo_detection.model import LogoDetectionModel
from model_server.logo_detection.model_contract import ModelFile, ModelFileError, describe_model
from model_server.logo_detection.readiness import ModelsReadyDataPlane
from model_server.logo_detection.settings import Settings

from .conftest import instance

THREADS = 1


def gradient_png(seed: int) -> bytes:
    """A real PNG file, made here: a colour gradient that differs by seed."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, 160, dtype=np.float32)
    colours = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    pixels = colours[0] + ramp[:, None, None] * (colours[1] - colours[0])
    image = Image.fromarray(np.broadcast_to(pixels, (160, 120, 3)).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


class DropsAScoreWhenArmed:
    """The real ONNX Runtime backend, broken on demand: once armed, its next pass answers with
    one score fewer than it was given images (warm-up at load runs unarmed)."""

    def __init__(self, backend: InferenceBackend) -> None:
        self.backend = backend
        self.name = f"{backend.name}-dropping-a-score"
        self.armed = False

    def predict(self, batch: np.ndarray) -> np.ndarray:
        scores = self.backend.predict(batch)
        if self.armed:
            self.armed = False
            return scores[:-1]
        return scores


def settings_for(model_path: Path) -> Settings:
    return Settings(model_path=model_path, cpu_threads=THREADS)


def readiness(model: LogoDetectionModel) -> ModelsReadyDataPlane:
    """KServe's data plane over a registry holding the model, as the server builds it."""
    registry = ModelRepository()
    registry.update(model)
    return ModelsReadyDataPlane(model_registry=registry)


async def is_ready(data_plane: ModelsReadyDataPlane, name: str) -> tuple[bool, bool]:
    """(server ready, model ready): what /v2/health/ready and /v1/models/<name> answer."""
    return await data_plane.ready(), await data_plane.model_ready(name)


@pytest.fixture
async def stopped_at_end() -> AsyncIterator[list[LogoDetectionModel]]:
    """Models a test appends here are stopped and closed after it, whatever happened."""
    models: list[LogoDetectionModel] = []
    yield models
    for model in models:
        model.stop()
        await model.wait_closed()


def expected_logo_score(model_file: ModelFile, data: bytes) -> float:
    """The same bytes scored by the ONNX backend directly, outside the model and its batcher."""
    backend = load_backend(model_file, "onnx", Path("unused"), THREADS)
    scores = backend.predict(image_to_model_input(data)[np.newaxis])[0]
    return round(float(scores[model_file.class_names.index("logo")]), 4)


async def test_the_model_is_ready_only_after_load_and_scores_real_bytes(
    exported_default_model, stopped_at_end
):
    model = LogoDetectionModel(settings_for(exported_default_model), threads=THREADS)
    stopped_at_end.append(model)
    data_plane = readiness(model)
    assert not model.ready and model.batcher is None  # constructing it loads nothing
    assert await is_ready(data_plane, model.name) == (False, False)

    assert model.load() is True
    assert await is_ready(data_plane, model.name) == (True, True)
    assert model.batcher.backend.name == "onnx"
    model.start()  # what KServe calls once registered: still ready
    assert model.load() is True and await model.healthy()  # a second load loads nothing new

    image = gradient_png(1)
    body = {
        "instances": [instance("gradient.png", data=image), instance("notes.txt", data=b"text")]
    }
    answer = await model.predict(body)
    served = describe_model(exported_default_model)
    assert answer["model_version"] == served.version == model.model_file.version
    assert [r["filename"] for r in answer["predictions"]] == ["gradient.png", "notes.txt"]
    scored, refused = answer["predictions"]
    assert scored["prediction"] == expected_logo_score(served, image)
    assert abs(scored["prediction"] + scored["out_of_domain"] - 1) < 2e-4
    assert refused["error"]["type"] == "unsupported_format"


async def test_a_batcher_worker_that_dies_costs_only_its_images_as_internal_error(
    exported_default_model, stopped_at_end
):
    """The backend drops a score: the worker can't route the pass and dies. Its image is
    answered `internal_error` (the request itself is answered, in order); the supervisor starts
    a fresh worker, so readiness holds and the next request is scored as usual."""
    broken: list[DropsAScoreWhenArmed] = []

    def breakable_backend(model_file: ModelFile) -> InferenceBackend:
        broken.append(DropsAScoreWhenArmed(load_backend(model_file, "onnx", Path("."), THREADS)))
        return broken[-1]

    model = LogoDetectionModel(
        settings_for(exported_default_model), threads=THREADS, backend_loader=breakable_backend
    )
    stopped_at_end.append(model)
    data_plane = readiness(model)
    model.load()
    image = gradient_png(2)
    body = {"instances": [instance("dropped.png", data=image)]}

    broken[0].armed = True
    answer = await model.predict(body)
    assert answer["predictions"] == [
        {
            "filename": "dropped.png",
            "target": "logo",
            "error": {"type": "internal_error", "message": "internal error; see server logs"},
        }
    ]
    assert answer["model_version"] == model.model_file.version
    assert model.batcher.restarts == 1
    assert await is_ready(data_plane, model.name) == (True, True)

    again = await model.predict(body)
    assert again["predictions"][0]["prediction"] == expected_logo_score(model.model_file, image)
    assert model.batcher.restarts == 1


async def test_stop_makes_the_model_unready_at_once_and_closes_it(exported_default_model):
    model = LogoDetectionModel(settings_for(exported_default_model), threads=THREADS)
    data_plane = readiness(model)
    model.load()
    answer = await model.predict({"instances": [instance("a.png", data=gradient_png(3))]})
    assert "prediction" in answer["predictions"][0]

    model.stop()  # what KServe calls at shutdown
    assert await is_ready(data_plane, model.name) == (False, False)
    await model.wait_closed()
    assert not model.batcher.healthy()  # the batcher is closed: it scores nothing more
    assert model.load() is False  # a stopped model is not brought back by KServe's load()
    assert await is_ready(data_plane, model.name) == (False, False)


async def test_a_model_whose_json_records_no_version_is_named_by_its_hash(
    exported_default_model, stopped_at_end, tmp_path
):
    """The same export, its JSON without `version`: the answer, and the model-info metric,
    name the model by the first 12 hex digits of the served file's sha256."""
    onnx_file = next(exported_default_model.glob("*.onnx"))
    metadata = json.loads(onnx_file.with_suffix(".json").read_text())
    metadata.pop("version", None)
    shutil.copyfile(onnx_file, tmp_path / onnx_file.name)
    (tmp_path / onnx_file.name).with_suffix(".json").write_text(json.dumps(metadata))
    expected = hashlib.sha256(onnx_file.read_bytes()).hexdigest()[:12]

    model = LogoDetectionModel(settings_for(tmp_path), threads=THREADS)
    stopped_at_end.append(model)
    model.load()
    answer = await model.predict({"instances": [instance("a.png", data=gradient_png(4))]})
    assert answer["model_version"] == expected
    assert "prediction" in answer["predictions"][0], answer
    info = [
        sample.labels
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name == "logo_detection_model_info"
    ]
    assert [labels["model_version"] for labels in info] == [expected]


def test_a_model_that_cannot_be_served_stays_unready(tmp_path):
    model = LogoDetectionModel(settings_for(tmp_path / "missing.onnx"), threads=THREADS)
    with pytest.raises(ModelFileError, match="does not exist"):
        model.load()
    assert not model.ready and model.batcher is None
    model.stop()
