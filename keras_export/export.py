"""Export a `.keras` model to ONNX once, for the production image (which has no TensorFlow).

    python -m keras_export MODEL.keras [--out-dir DIR]      (or: make export MODEL=...)

writes `DIR/<name>.onnx` and `DIR/<name>.json`: the class order, input size, the model's version
(carried over from the `.keras` file's JSON, else its hash prefix, so both files answer with the
same one), the sha256 of both files, library versions and the largest score difference against
TensorFlow on fixed images.
A model whose ONNX scores differ from TensorFlow's by more than the tolerance is refused and
nothing is written. Publish both files next to the `.keras` file
(docs/deploying.md#publishing-a-model).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from model_server.logo_detection.inference.onnx_backend import OnnxRuntimeBackend
from model_server.logo_detection.model_contract import (
    INPUT_SIZE,
    VERSION_KEY,
    ModelFileError,
    file_sha256,
    library_versions,
    model_version,
)

from .keras_model import LoadedModel, TensorFlowBackend, load_model
from .onnx_conversion import export_onnx
from .parity import PARITY_TOLERANCE, max_score_difference, parity_batches

logger = logging.getLogger(__name__)

VERSIONED = ("tensorflow", "tensorflow-cpu", "keras", "keras-cv", "tf2onnx", "onnx", "onnxruntime")


class ExportRefused(RuntimeError):
    """The converted model does not score like the original."""


def training_metadata(loaded: LoadedModel) -> dict[str, Any]:
    """The JSON training wrote beside the `.keras` file. Where an export of this same file was
    published beside it (models/ holds the .keras, the .onnx and the export's JSON), that JSON
    holds the training one under `source`: exporting again carries it, not a nested copy."""
    source = loaded.metadata.get("source")
    if isinstance(source, dict) and source.get("sha256") == loaded.sha256:
        return dict(source.get("metadata", {}))
    return loaded.metadata


def sidecar(
    loaded: LoadedModel, onnx_file: Path, difference: float, tolerance: float
) -> dict[str, Any]:
    """What serving needs (class order, input size, the .onnx's hash) and how it was checked."""
    images = sum(len(batch) for batch in parity_batches())
    return {
        "class_names": list(loaded.class_names),
        "input_size": [INPUT_SIZE, INPUT_SIZE, 3],
        VERSION_KEY: model_version(loaded.metadata, loaded.sha256),
        "onnx": {"file": onnx_file.name, "sha256": file_sha256(onnx_file)},
        "source": {
            "file": loaded.path.name,
            "sha256": loaded.sha256,
            "metadata": training_metadata(loaded),
        },
        "export": {
            "versions": library_versions(VERSIONED),
            "parity": {
                "reference": "tensorflow",
                "images": images,
                "max_abs_diff": difference,
                "tolerance": tolerance,
            },
        },
    }


def export_model(
    model_path: Path,
    out_dir: Path,
    class_names: tuple[str, ...] = (),
    tolerance: float = PARITY_TOLERANCE,
) -> tuple[Path, Path]:
    """Convert, check against TensorFlow, then write `<name>.onnx` and `<name>.json`."""
    loaded = load_model(model_path, class_names)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_file = out_dir / f"{loaded.path.stem}.onnx"
    json_file = onnx_file.with_suffix(".json")
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as scratch:
        candidate = Path(scratch) / onnx_file.name
        export_onnx(loaded.keras_model, candidate)
        difference = max_score_difference(
            OnnxRuntimeBackend(candidate, threads=os.cpu_count() or 1),
            TensorFlowBackend(loaded.keras_model),
            parity_batches(),
        )
        if difference > tolerance:
            raise ExportRefused(
                f"the ONNX model's scores differ from TensorFlow's by {difference:.3g} "
                f"(tolerance {tolerance:g}); nothing written"
            )
        metadata = sidecar(loaded, candidate, difference, tolerance)
        partial_json = Path(scratch) / json_file.name
        partial_json.write_text(json.dumps(metadata, indent=2) + "\n")
        os.replace(candidate, onnx_file)
        os.replace(partial_json, json_file)
    logger.info("Exported %s (max score difference %.3g)", onnx_file, difference)
    return onnx_file, json_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m keras_export",
        description="Export a .keras model to ONNX (+ JSON) for the production image.",
    )
    parser.add_argument("model", type=Path, help="a .keras file, or a directory holding one")
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="where to write (default: beside the model)"
    )
    parser.add_argument(
        "--class-names", default="", help="output order, comma-separated (default: its JSON)"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=PARITY_TOLERANCE,
        help=f"largest score difference against TensorFlow allowed (default {PARITY_TOLERANCE:g})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    class_names = tuple(name.strip() for name in args.class_names.split(",") if name.strip())
    out_dir = args.out_dir or (args.model if args.model.is_dir() else args.model.parent)
    try:
        onnx_file, json_file = export_model(args.model, out_dir, class_names, args.tolerance)
    except (ModelFileError, ExportRefused) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(onnx_file)
    print(json_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
