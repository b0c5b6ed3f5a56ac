# logo-detection: `make` lists the targets.
SHELL := /bin/bash
PYTHON_BIN ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PRODUCTION_MODEL_URL ?= https://analytics.wikimedia.org/published/wmf-ml-models/logo-detection/logo_max_all.keras
PRODUCTION_MODEL_DIR ?= models/production
IMAGE ?= logo-detection:latest

.DEFAULT_GOAL := help
.PHONY: help install install-gpu lock run test test-fast lint bench bench-compare export prepare-data pack gpu-job train lso evaluate distill distill-lso ship download-model clean image test-image

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# The locks (make lock) pin every package with its hashes; pip refuses anything else.
$(INSTALLED): requirements-dev.txt pyproject.toml
	$(PYTHON_BIN) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --require-hashes -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(INSTALLED)

install: $(INSTALLED) ## Create .venv from the development lock (requirements-dev.txt)

GPU_VENV ?= .venv-gpu

install-gpu: ## Create .venv-gpu for GPU training (TensorFlow's CUDA build); then make train VENV=.venv-gpu
	$(PYTHON_BIN) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/pip install --quiet --upgrade pip
	$(GPU_VENV)/bin/pip install --quiet --require-hashes -r requirements-gpu.txt
	$(GPU_VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	$(GPU_VENV)/bin/python -c "import tensorflow as tf; print('GPUs:', tf.config.list_physical_devices('GPU'))"
	touch $(GPU_VENV)/.installed

# pyproject.toml holds the ranges; the development lock is resolved first and constrains the
# others, so a package has the same version in every lock. uv keeps each lock's versions unless
# pyproject.toml no longer allows them: LOCK_ARGS=--upgrade (or --upgrade-package NAME) moves them.
UV ?= $(VENV)/bin/uv
LOCK = $(UV) pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(LOCK_ARGS) pyproject.toml

lock: ## Re-resolve pyproject.toml into the hashed locks (requirements*.txt; LOCK_ARGS=--upgrade)
	$(LOCK) --extra dev -o requirements-dev.txt
	$(LOCK) -c requirements-dev.txt -o requirements-serving.txt
	$(LOCK) --extra export -c requirements-dev.txt -o requirements.txt
	$(LOCK) --extra gpu -c requirements-dev.txt -o requirements-gpu.txt

# `make run` serves from the serving lock alone (what the production image installs, no
# TensorFlow): the default model is its committed ONNX export. A .keras MODEL_PATH is converted at
# start, which needs the full install: then (or with RUN_VENV=.venv) it runs from .venv.
SERVING_VENV ?= .venv-serving
RUN_VENV ?= $(if $(filter %.keras,$(MODEL_PATH)),$(VENV),$(SERVING_VENV))

$(SERVING_VENV)/.installed: requirements-serving.txt pyproject.toml
	$(PYTHON_BIN) -m venv $(SERVING_VENV)
	$(SERVING_VENV)/bin/pip install --quiet --upgrade pip
	$(SERVING_VENV)/bin/pip install --quiet --require-hashes -r requirements-serving.txt
	$(SERVING_VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(SERVING_VENV)/.installed

run: $(RUN_VENV)/.installed ## Serve the default model on http://localhost:8080 (MODEL_PATH overrides)
	$(RUN_VENV)/bin/python -m model_server.logo_detection

# Every test process, and each server it starts, imports the same sources: they are compiled once
# into __pycache__ (ignored by git and Docker), and pytest keeps its rewritten test modules there,
# even where the environment asks Python not to write bytecode (PYTHONDONTWRITEBYTECODE).
test test-fast: export PYTHONDONTWRITEBYTECODE :=

# Two workers, a test file each at a time: the container build and the installs wait on the
# network and disk while the other worker runs the CPU-bound tests.
TEST_WORKERS ?= 2

test: $(INSTALLED) ## Run the whole test suite (what CI runs)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# The fast tier waits on server processes, timeouts and subprocesses as much as it computes: two
# workers, a test file each, overlap those waits. Its fuzz tests run a third of the examples
# `make test` (CI) runs, unless FUZZ_EXAMPLES says otherwise (tests/test_fuzz.py).
FAST_FUZZ_EXAMPLES ?= 50

test-fast: $(INSTALLED) ## The inner loop: in-process and ONNX-server tests, no Docker, training or TensorFlow
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-$(FAST_FUZZ_EXAMPLES)} $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile \
		-m "not slow and not container and not training"

lint: $(INSTALLED) ## ruff lint + format check, mypy (strict) on the server and the export package
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(INSTALLED) ## Benchmark the real server against the raw model and a naive baseline
	$(PY) -m bench

BASELINE ?= HEAD
bench-compare: $(INSTALLED) ## A/B latency: the server of git ref BASELINE vs this checkout, interleaved
	$(PY) -m bench.compare --baseline $(BASELINE) $(COMPARE_ARGS)

MODEL ?= models/logo_detection.keras
EXPORT_DIR ?= build/export

export: $(INSTALLED) ## Export MODEL (.keras) to ONNX + JSON in EXPORT_DIR, checked against TensorFlow
	$(PY) -m keras_export $(MODEL) --out-dir $(EXPORT_DIR)

TRAINING_DATA ?= build/training-data
TRAIN_OUT ?= build/training-run
# The default model's recipe, G (chosen by leave-source-out runs and the three samples:
# docs/experiments-2026-12.md#full-schedule-recipe-g-is-the-default-model): basic augmentation,
# flags and generated logos prepared but left out
RECIPE_EXCLUDE ?= out_of_domain/flag-icons,logo/generated-logos
RECIPE ?= --augmentation basic --exclude $(RECIPE_EXCLUDE)
TRAINING_PACK ?= build/training-data.pack
# A lent GPU machine takes 64 MiB per job, the checkout's 26 MiB included: a smaller pack.
GPU_PACK ?= build/gpu-training-data.pack
GPU_PACK_QUALITY ?= 30

prepare-data: $(INSTALLED) ## Render ../shared/data into the Commons-like training set (~10 min)
	$(PY) -m training prepare --source-dir ../shared/data --out $(TRAINING_DATA)

pack: $(INSTALLED) ## Pack TRAINING_DATA's train+val (the recipe's sources) into one checksummed file (~56 MiB)
	$(PY) -m training pack --data-dir $(TRAINING_DATA) --out $(TRAINING_PACK) --exclude $(RECIPE_EXCLUDE)

gpu-job: $(INSTALLED) ## Pack the data and the wheels for a lent GPU machine into build/gpu-job (training/README.md)
	$(PY) -m training pack --data-dir $(TRAINING_DATA) --out $(GPU_PACK) --exclude $(RECIPE_EXCLUDE) \
		--quality $(GPU_PACK_QUALITY)
	$(PY) -m training.gpu_job bundle --pack $(GPU_PACK) --out build/gpu-job

train: $(INSTALLED) ## Train the classifier (TRAINING_DATA -> TRAIN_OUT; ~70 min on 2 CPUs; resumable)
	$(PY) -m training train --data-dir $(TRAINING_DATA) --out $(TRAIN_OUT) $(RECIPE)

LSO_OUT ?= build/lso-run
LSO_HOLDOUT ?= out_of_domain/kodak24,out_of_domain/tuxpaint-stamps,out_of_domain/svg-maps,out_of_domain/desktop-wallpapers,logo/football-icons
LSO_STAGES ?= 2x96:0.9,2x128:0.8
LSO_STEPS ?= 150

lso: $(INSTALLED) ## Leave-source-out: train without LSO_HOLDOUT sources (short schedule), score each
	$(PY) -m training lso --data-dir $(TRAINING_DATA) --out $(LSO_OUT) --holdout $(LSO_HOLDOUT) \
		$(RECIPE) --stages $(LSO_STAGES) --steps-per-epoch $(LSO_STEPS) --validation-steps 20

DISTILL_OUT ?= build/distill-run
DISTILL_LSO_OUT ?= build/distill-lso

distill: $(INSTALLED) ## Fine-tune the ImageNet teacher, distil it into the production network (resumable)
	$(PY) -m training distill --data-dir $(TRAINING_DATA) --out $(DISTILL_OUT) --exclude $(RECIPE_EXCLUDE)

distill-lso: $(INSTALLED) ## distill with LSO_HOLDOUT unseen by teacher and student; scores both on them
	$(PY) -m training distill --data-dir $(TRAINING_DATA) --out $(DISTILL_LSO_OUT) \
		--holdout $(LSO_HOLDOUT) --exclude $(RECIPE_EXCLUDE)

STUDENT ?= $(DISTILL_OUT)/logo_detection.keras

ship: $(INSTALLED) ## STUDENT (plain Keras) as the default model: KerasCV form + ONNX export in models/
	$(PY) -m keras_export.kerascv_form $(STUDENT) --out models/logo_detection.keras
	$(PY) -m keras_export models/logo_detection.keras --out-dir models

evaluate: $(INSTALLED) ## Evaluate the trained model on the held-out test split (plots, per source)
	$(PY) -m training evaluate --model $(TRAIN_OUT)/logo_detection.keras \
		--data-dir $(TRAINING_DATA) --split test --out $(TRAIN_OUT)/evaluation

download-model: ## Fetch the production logo_max_all.keras (needs internet)
	@mkdir -p $(PRODUCTION_MODEL_DIR)
	@curl --fail --location --silent --show-error --connect-timeout 10 --max-time 600 \
		-o $(PRODUCTION_MODEL_DIR)/logo_max_all.keras.part "$(PRODUCTION_MODEL_URL)" \
	|| { rm -f $(PRODUCTION_MODEL_DIR)/logo_max_all.keras.part; \
	     echo "error: could not download $(PRODUCTION_MODEL_URL) (no internet access?)." >&2; \
	     echo "Fetch it on a connected machine, then run: MODEL_PATH=/path/to/logo_max_all.keras make run" >&2; \
	     exit 1; }
	@mv $(PRODUCTION_MODEL_DIR)/logo_max_all.keras.part $(PRODUCTION_MODEL_DIR)/logo_max_all.keras
	@echo "Saved $(PRODUCTION_MODEL_DIR)/logo_max_all.keras; serve it with: MODEL_PATH=$(PRODUCTION_MODEL_DIR)/logo_max_all.keras make run"

clean: ## Remove the venvs, caches and build output
	rm -rf $(VENV) $(SERVING_VENV) $(GPU_VENV) build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

image: ## Build the production image (IMAGE=...; starts Docker and bootstraps its base if needed)
	IMAGE=$(IMAGE) deploy/container.sh build

test-image: $(INSTALLED) ## Build the production image and test it in a container (needs Docker)
	$(PY) -m pytest tests/test_container.py
