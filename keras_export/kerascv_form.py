"""`python -m keras_export.kerascv_form PLAIN.keras --out DEST.keras`: a plain-Keras model of the
production network (what `training` writes on every backend) as the KerasCV `ImageClassifier`
the production file is, so a trained model ships as a drop-in for it.

The two forms hold the same weights in the same order (`tests/test_network.py`), so the weights
are copied as they are; the scores of both are then compared on the export's parity images and
the file is written only if they agree within `PARITY_TOLERANCE`. The JSON beside the plain file
is carried over, with the new file's name, sha256 and form.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_export.architecture import build_classifier
from keras_export.keras_file import read_keras_file
from keras_export.parity import PARITY_TOLERANCE, parity_batches
from model_server.logo_detection.model_contract import file_sha256

FORM = "KerasCV ImageClassifier (EfficientNetV2-B0 backbone)"


def as_kerascv(plain: keras.Model) -> tuple[keras.Model, float]:
    """The KerasCV classifier holding `plain`'s weights, and the largest score difference."""
    classifier = build_classifier(int(plain.output.shape[-1]))
    classifier.set_weights(plain.get_weights())
    difference = max(
        float(np.max(np.abs(np.asarray(classifier(b)) - np.asarray(plain(b)))))
        for b in parity_batches()
    )
    return classifier, difference


def convert(source: Path, destination: Path) -> dict[str, Any]:
    """Write `destination` (+ its JSON) from the plain-Keras `source`; refuse on a mismatch."""
    classifier, difference = as_kerascv(read_keras_file(source))
    if difference > PARITY_TOLERANCE:
        raise SystemExit(f"{source}: KerasCV form differs by {difference:.2e} (> tolerance)")
    destination.parent.mkdir(parents=True, exist_ok=True)
    classifier.save(destination)
    sidecar = source.with_suffix(".json")
    info = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    info.update(
        model_file=destination.name,
        sha256=file_sha256(destination),
        form=FORM,
        form_parity_max_difference=difference,
    )
    destination.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m keras_export.kerascv_form", description=__doc__
    )
    parser.add_argument("model", type=Path, help="a plain-Keras .keras file from training")
    parser.add_argument("--out", type=Path, required=True, help="the KerasCV .keras to write")
    args = parser.parse_args(argv)
    info = convert(args.model, args.out)
    print(
        f"wrote {args.out} ({info['form']}; scores within {info['form_parity_max_difference']:.1e})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
