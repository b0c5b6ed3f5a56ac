"""The JSON written beside a model: what the server needs (class order, input size) and what a
reviewer needs (data, metrics, library versions, and the sha256 tying the JSON to its file)."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
from sklearn import metrics as skm

from model_server.logo_detection.model_contract import (
    INPUT_SIZE,
    VERSION_KEY,
    file_sha256,
    library_versions,
)
from training import data
from training.paths import repo_relative

LIBRARIES = (
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "keras-cv",
    "jax",
    "jaxlib",
    "torch",
    "numpy",
    "pillow",
    "resvg-py",
)


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), **library_versions(LIBRARIES)}


def summary(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict:
    """Threshold and ranking metrics of logo scores; AUCs are None if only one class is present."""
    pred = (scores >= threshold).astype(int)
    both = len(np.unique(labels)) == 2
    return {
        "n": len(labels),
        "threshold": threshold,
        "accuracy": float(skm.accuracy_score(labels, pred)) if len(labels) else None,
        "precision": float(skm.precision_score(labels, pred, zero_division=0)),
        "recall": float(skm.recall_score(labels, pred, zero_division=0)),
        "f1": float(skm.f1_score(labels, pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, scores)) if both else None,
        "pr_auc": float(skm.average_precision_score(labels, scores)) if both else None,
        "confusion_matrix": skm.confusion_matrix(labels, pred, labels=[0, 1]).tolist(),
    }


def describe(data_dir: Path, counts: dict, training: dict, metrics: dict) -> dict:
    created = datetime.now(UTC)
    prepared_from = data.prepared_from(data_dir)  # a folder's sources.json, or a pack's copy
    if prepared_from and prepared_from.get("source_dir"):
        prepared_from["source_dir"] = repo_relative(prepared_from["source_dir"])
    return {
        "class_names": data.CLASS_NAMES,
        "input_size": [INPUT_SIZE, INPUT_SIZE],
        "input": (
            "float32 RGB 0..255, from model_server.logo_detection.decoding.image_to_model_input"
        ),
        "data": {
            "data_dir": repo_relative(data_dir),
            "prepared_from": prepared_from,
            "split": {"method": "sha256 of the file-name group", "fractions": data.SPLIT_FRACTIONS},
            "counts": counts,
        },
        "training": training,
        "metrics": metrics,
        "versions": versions(),
        "created": created.isoformat(timespec="seconds"),
        # The model's version, which the server answers with (model_contract.model_version): the
        # UTC time it was made, as Wikimedia names its model directories.
        VERSION_KEY: created.strftime("%Y%m%d%H%M%S"),
    }


def save_model(model: keras.Model, path: Path, info: dict) -> Path:
    """Write the .keras file, then the JSON beside it with the file's sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    info = {**info, "model_file": path.name, "sha256": file_sha256(path)}
    sidecar = path.with_suffix(".json")
    sidecar.write_text(json.dumps(info, indent=2) + "\n")
    return sidecar
