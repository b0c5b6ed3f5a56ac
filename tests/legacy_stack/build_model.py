"""Run inside a throwaway venv with the production stack (Keras 3.0 / KerasCV 0.8 / TF 2.15).

Saves a model of the production architecture and its scores on fixed inputs, so the current
stack can prove it loads such files with the same outputs.
Usage: python build_model.py REPO_ROOT OUT_DIR
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, sys.argv[1])
import keras
import keras_cv
import tensorflow as tf

from keras_export.architecture import build_classifier

out = Path(sys.argv[2])
keras.utils.set_random_seed(7)
model = build_classifier()
inputs = np.random.default_rng(7).uniform(0, 255, size=(4, 224, 224, 3)).astype("float32")
model.save(out / "legacy.keras")
np.save(out / "inputs.npy", inputs)
np.save(out / "scores.npy", model.predict(inputs, verbose=0))
versions = {"keras": keras.__version__, "keras_cv": keras_cv.__version__, "tf": tf.__version__}
(out / "versions.json").write_text(json.dumps(versions))
