"""`python -m keras_export MODEL.keras [--out-dir DIR]`: the export CLI (`export.py`)."""

import sys

from keras_export.export import main

sys.exit(main())
