"""The model contract: the input size, the class order, the JSON beside a model file, the file's
hash and the model's version; and which file MODEL_PATH names.

A model is an exported `.onnx` file (what the production image serves, with ONNX Runtime only)
or a `.keras` file (served by the full install, converted at start). Decoding, inference,
metrics, training, bench and the offline `keras_export` package all read the contract here, so
this module is a leaf: it imports nothing else from the package (tests/test_layout.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

INPUT_SIZE = 224  # the model takes (N, 224, 224, 3) float32 pixels in 0..255
DEFAULT_CLASS_NAMES = ("out_of_domain", "logo")  # the production model's output order
REQUIRED_CLASSES = ("logo", "out_of_domain")
MODEL_SUFFIXES = (".onnx", ".keras")  # in order of preference when a directory holds both
VERSION_KEY = "version"  # the model's version in its JSON, e.g. training's UTC "20240417132942"
HASH_VERSION_DIGITS = 12  # a model whose JSON records no version is named by its hash's prefix


class ModelFileError(RuntimeError):
    """The model can't be served; the message says why and what to do."""


@dataclass(frozen=True)
class ModelFile:
    path: Path
    class_names: tuple[str, ...]
    metadata: dict[str, Any]
    # Of the file, read once at start: the JSON check, the info metric and (for a .keras file)
    # the ONNX conversion cache's key all use this one.
    sha256: str

    @property
    def is_onnx(self) -> bool:
        return self.path.suffix == ".onnx"

    @property
    def version(self) -> str:
        """Which model scores: what its JSON records, else its sha256's first 12 hex digits."""
        return model_version(self.metadata, self.sha256)


def model_version(metadata: dict[str, Any], sha256: str) -> str:
    """The version a model's JSON records under "version" (training writes a UTC timestamp such
    as 20240417132942, export carries it over), else the first 12 hex digits of the file's
    sha256: two models live at once (a rolling update) are told apart either way."""
    recorded = metadata.get(VERSION_KEY)
    if isinstance(recorded, str | int) and not isinstance(recorded, bool) and str(recorded).strip():
        return str(recorded).strip()
    return sha256[:HASH_VERSION_DIGITS]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each named distribution; those not installed are left out.
    Recorded in the JSON that training and export write beside a model."""
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def resolve_model_file(model_path: Path) -> Path:
    """MODEL_PATH is an `.onnx` or `.keras` file, or a directory (KServe's /mnt/models) holding
    one of them; where a published model has both, the exported `.onnx` is served."""
    if model_path.is_file():
        if model_path.suffix not in MODEL_SUFFIXES:
            raise ModelFileError(f"MODEL_PATH {model_path} is neither an .onnx nor a .keras file")
        return model_path
    if not model_path.is_dir():
        raise ModelFileError(
            f"MODEL_PATH {model_path} does not exist (set MODEL_PATH to an .onnx or .keras file "
            "or a directory holding one)"
        )
    for suffix in MODEL_SUFFIXES:
        candidates = sorted(model_path.rglob(f"*{suffix}"))
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            names = ", ".join(str(path) for path in candidates)
            raise ModelFileError(f"MODEL_PATH {model_path} holds several {suffix} files: {names}")
    raise ModelFileError(f"MODEL_PATH {model_path} is a directory with no .onnx or .keras file")


def read_metadata(model_file: Path) -> dict[str, Any]:
    """The JSON written beside the model by the training or export tools, if any."""
    sidecar = model_file.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        metadata = json.loads(sidecar.read_text())
    except (OSError, ValueError) as error:
        raise ModelFileError(f"{sidecar} is not valid JSON: {error}") from None
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{sidecar} must hold a JSON object")
    return metadata


def check_exported_pair(model_file: Path, sha256: str, metadata: dict[str, Any]) -> None:
    """An exported model's JSON names the sha256 of the `.onnx` it describes: a JSON left from
    another export (another class order, another parity check) is refused, not trusted."""
    recorded = metadata.get("onnx", {}).get("sha256")
    if recorded is None:
        return
    if sha256 != recorded:
        raise ModelFileError(
            f"{model_file.with_suffix('.json')} describes another export (its onnx.sha256 is "
            f"{recorded[:12]}..., {model_file.name} is {sha256[:12]}...): export the model again"
        )


def choose_class_names(configured: tuple[str, ...], metadata: dict[str, Any]) -> tuple[str, ...]:
    """CLASS_NAMES setting, else the model JSON's `class_names`, else the production order."""
    class_names = tuple(configured) or tuple(metadata.get("class_names") or DEFAULT_CLASS_NAMES)
    missing = [name for name in REQUIRED_CLASSES if name not in class_names]
    if missing or len(class_names) != 2 or len(set(class_names)) != 2:
        raise ModelFileError(
            f"class names {list(class_names)} must be exactly the two classes "
            f"{list(REQUIRED_CLASSES)} in the model's output order"
        )
    return class_names


def describe_model(model_path: Path, configured_class_names: tuple[str, ...] = ()) -> ModelFile:
    """Which file to serve and its class order; refuses what the server can't serve correctly."""
    path = resolve_model_file(model_path)
    metadata = read_metadata(path)
    sha256 = file_sha256(path)
    if path.suffix == ".onnx":
        check_exported_pair(path, sha256, metadata)
    class_names = choose_class_names(configured_class_names, metadata)
    return ModelFile(path, class_names, metadata, sha256)
