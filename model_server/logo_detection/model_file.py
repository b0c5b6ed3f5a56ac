"""Find, load and validate the `.keras` model file, and learn its class order."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from .architecture import DEFAULT_CLASS_NAMES

logger = logging.getLogger(__name__)

REQUIRED_CLASSES = ("logo", "out_of_domain")


class ModelFileError(RuntimeError):
    """The model can't be served; the message says why and what to do."""


@dataclass(frozen=True)
class LoadedModel:
    keras_model: object  # keras.Model; typed loosely to keep Keras out of this module's API
    path: Path
    class_names: tuple[str, ...]
    metadata: dict

    def class_index(self, name: str) -> int:
        return self.class_names.index(name)


def resolve_model_file(model_path: Path) -> Path:
    """MODEL_PATH is a `.keras` file, or a directory holding exactly one (KServe's /mnt/models)."""
    if model_path.is_file():
        return model_path
    if model_path.is_dir():
        candidates = sorted(model_path.rglob("*.keras"))
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise ModelFileError(f"MODEL_PATH {model_path} is a directory with no .keras file")
        names = ", ".join(str(path) for path in candidates)
        raise ModelFileError(f"MODEL_PATH {model_path} holds several .keras files: {names}")
    raise ModelFileError(
        f"MODEL_PATH {model_path} does not exist (set MODEL_PATH to a .keras file or a "
        "directory holding one)"
    )


def read_metadata(model_file: Path) -> dict:
    """The JSON written beside the model by the training tools, if any."""
    sidecar = model_file.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        return json.loads(sidecar.read_text())
    except (OSError, ValueError) as error:
        raise ModelFileError(f"{sidecar} is not valid JSON: {error}") from None


def choose_class_names(configured: tuple[str, ...], metadata: dict) -> tuple[str, ...]:
    """CLASS_NAMES setting, else the model JSON's `class_names`, else the production order."""
    class_names = tuple(configured) or tuple(metadata.get("class_names") or DEFAULT_CLASS_NAMES)
    missing = [name for name in REQUIRED_CLASSES if name not in class_names]
    if missing or len(class_names) != 2 or len(set(class_names)) != 2:
        raise ModelFileError(
            f"class names {list(class_names)} must be exactly the two classes "
            f"{list(REQUIRED_CLASSES)} in the model's output order"
        )
    return class_names


def load_model(model_path: Path, configured_class_names: tuple[str, ...] = ()) -> LoadedModel:
    """Load the model once at start; refuse anything the server can't serve correctly."""
    model_file = resolve_model_file(model_path)
    metadata = read_metadata(model_file)
    class_names = choose_class_names(configured_class_names, metadata)
    import keras
    import keras_cv  # noqa: F401  (registers KerasCV classes for deserialization)

    try:
        keras_model = keras.saving.load_model(model_file, compile=False)
    except Exception as error:
        raise ModelFileError(f"cannot load model {model_file}: {error}") from error
    output_shape = tuple(keras_model.output_shape)
    if len(output_shape) != 2 or output_shape[1] != len(class_names):
        raise ModelFileError(
            f"model {model_file} outputs shape {output_shape}; the server needs (N, 2) "
            "softmax scores"
        )
    logger.info("Loaded %s, classes %s", model_file, list(class_names))
    return LoadedModel(keras_model, model_file, class_names, metadata)
