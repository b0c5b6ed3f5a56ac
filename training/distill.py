"""Distil an ImageNet-pretrained teacher into the production network.

No package ships ImageNet weights for EfficientNetV2-B0, so the student (the production network,
`training.network`) learns from a teacher that has them: EfficientNet-Lite0 (`training.teacher`).
The run, each step resumable and skipped when its output exists:

1. **Views.** Every training image gets `views` deterministic views: view 0 is the image itself,
   the others crops and flips of the basic recipe drawn from (seed, row, view). Teacher and
   student see the same view ("consistent" distillation), the student at its stage's size.
2. **The teacher's frozen part** (ImageNet's first 11 blocks) runs once per view; its 14x14x112
   output is cached (float16) beside the decoded images, shared by every run on that folder.
3. **Fine-tuning the teacher** on those cached outputs: the 2-class head first (blocks frozen),
   then the last five blocks and the head layers too (batch-norm statistics kept).
4. **Targets.** The fine-tuned teacher's logo probability and 1280 pooled features per view,
   computed once: the student trains on any Keras backend without the teacher in memory.
5. **The student** trains on the views against a mix of the hard label and the teacher's
   probabilities (`soft`), against the teacher's standardised features through a linear
   projection dropped afterwards (`feature`), or both (`both`).

Held-out sources (`--holdout`) are left out of every step that learns, the teacher's included:
its ImageNet pre-training saw none of the prepared sources but ImageNet's own sample photos.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from model_server.logo_detection.model_contract import INPUT_SIZE
from training import data, metadata, teacher
from training.batches import augment
from training.distillation_recipe import METHODS, Recipe
from training.distribution import hardware
from training.lso import check_sources, held_out_report
from training.network import build_network
from training.paths import REPO_ROOT, repo_relative
from training.progress import progress
from training.scores import score_model
from training.train import class_weights, learning_rate_schedule

TEACHER_FILE = "logo_teacher.keras"
STUDENT_FILE = "logo_detection.keras"
VIEW_MIN_SCALE = 0.6


def view_of(image: np.ndarray, row: int, view: int, size: int, seed: int) -> np.ndarray:
    """View `view` of the image in row `row` of the folder's cache, as float32 size x size."""
    if view == 0:
        picture = Image.fromarray(np.asarray(image))
        if size != image.shape[0]:
            picture = picture.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(picture, np.float32)
    rng = np.random.default_rng((seed, 7, row, view))
    return augment(np.asarray(image), size, VIEW_MIN_SCALE, False, rng)


class Views(keras.utils.PyDataset):
    """(inputs, targets) batches over (row, view) pairs: epoch e shows every row once, in its own
    order, each at view e % views; `make_targets(rows, views)` gives the targets of a batch."""

    def __init__(self, rows, views, make_inputs, make_targets, batch_size, seed, epoch=0):
        super().__init__()
        self.rows, self.views, self.batch_size, self.seed = (
            np.asarray(rows),
            views,
            batch_size,
            seed,
        )
        self.make_inputs, self.make_targets, self.epoch = make_inputs, make_targets, epoch

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def __getitem__(self, index: int):
        order = np.random.default_rng((self.seed, 11, self.epoch)).permutation(len(self.rows))
        picked = np.sort(order[index * self.batch_size : (index + 1) * self.batch_size])
        rows = self.rows[picked]
        views = np.full(len(rows), self.epoch % self.views)
        return self.make_inputs(rows, views), self.make_targets(rows, views)


def bottom_features(images, cache: Path, recipe: Recipe, batch: int = 32) -> np.ndarray:
    """The teacher's frozen blocks on every view of every image: (n, views, 14, 14, 112) float16,
    computed in chunks that survive an interruption (`.rows` counts the finished ones)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    done_file = cache.with_suffix(".rows")
    done = int(done_file.read_text()) if done_file.exists() and cache.exists() else 0
    if done >= len(images):  # complete: no teacher to build
        return np.load(cache, mmap_mode="r")
    bottom, _top, _classifier = teacher.pretrained()
    shape = (
        len(images),
        recipe.views,
        *bottom.compute_output_shape((1, INPUT_SIZE, INPUT_SIZE, 3))[1:],
    )
    mode = "r+" if done else "w+"
    out = np.lib.format.open_memmap(cache, mode, np.float16, shape)
    starts = range(done, len(images), batch)
    for start in progress(starts, len(starts), "teacher features", unit="batch"):
        rows = np.arange(start, min(start + batch, len(images)))
        for view in range(recipe.views):
            pixels = np.stack([view_of(images[r], r, view, INPUT_SIZE, recipe.seed) for r in rows])
            out[rows, view] = np.asarray(bottom.predict_on_batch(pixels), np.float16)
        out.flush()
        done_file.write_text(str(rows[-1] + 1))
    return np.load(cache, mmap_mode="r")


def bottom_cache_name(examples: list[data.Example], recipe: Recipe) -> str:
    """The frozen features' file: named by the images (their names, labels and count), the
    number of views and the seed, which are all that decide its content."""
    listed = json.dumps([(e.key, e.path.name, e.label) for e in examples]).encode()
    digest = hashlib.sha256(listed).hexdigest()[:12]
    return f"lite0-bottom-{len(examples)}x{recipe.views}-seed{recipe.seed}-{digest}.npy"


def teacher_head(top: keras.Model) -> keras.Model:
    """Cached bottom features -> 2-class softmax, through the teacher's top blocks."""
    inputs = keras.Input(top.input.shape[1:], name="bottom_features")
    x = keras.layers.Dropout(0.2, name="teacher_dropout")(top(inputs))
    scores = keras.layers.Dense(len(data.CLASS_NAMES), activation="softmax", name="logo_head")(x)
    return keras.Model(inputs, scores, name="logo_teacher_top")


def _freeze_batch_norm(model: keras.Model) -> None:
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def fine_tune_teacher(features, labels, train_rows, val_rows, out: Path, recipe: Recipe):
    """Head first, then the top blocks: returns the teacher's (top, head model)."""
    bottom, top, _classifier = teacher.pretrained()
    model = teacher_head(top)
    weights = out / "teacher_top.weights.h5"
    if weights.exists():
        model.load_weights(str(weights))
        return bottom, model
    one_hot = np.eye(len(data.CLASS_NAMES), dtype=np.float32)

    def inputs(rows, views):
        return np.asarray(features[rows, views], np.float32)

    def targets(rows, _views):
        return one_hot[labels[rows]]

    val = (inputs(val_rows, np.zeros(len(val_rows), int)), targets(val_rows, None))
    phases = [("head", recipe.head_epochs, False), ("blocks", recipe.finetune_epochs, True)]
    for phase, epochs, blocks_trainable in phases:
        top.trainable = blocks_trainable
        _freeze_batch_norm(top)
        rate = recipe.teacher_learning_rate * (1.0 if phase == "head" else 0.1)
        model.compile(
            optimizer=keras.optimizers.AdamW(rate, weight_decay=0.01),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05),
            metrics=["accuracy"],
        )
        model.fit(
            Views(train_rows, recipe.views, inputs, targets, recipe.batch_size, recipe.seed),
            validation_data=val,
            epochs=epochs,
            class_weight=class_weights(labels[train_rows]),
            callbacks=[
                keras.callbacks.BackupAndRestore(
                    str(out / f"backup-teacher-{phase}"), delete_checkpoint=False
                ),
                keras.callbacks.CSVLogger(str(out / f"teacher-{phase}-history.csv"), append=True),
            ],
            verbose=2,
        )
    model.save_weights(str(weights))
    for phase, _epochs, _trainable in phases:
        shutil.rmtree(out / f"backup-teacher-{phase}", ignore_errors=True)
    return bottom, model


def full_teacher(bottom: keras.Model, head_model: keras.Model) -> keras.Model:
    """Pixels 0..255 -> the fine-tuned teacher's 2-class scores, for the evaluation tools."""
    pixels = keras.Input((None, None, 3), name="pixels")
    return keras.Model(pixels, head_model(bottom(pixels)), name="logo_teacher")


def teacher_targets(features, head_model, rows, out: Path, recipe: Recipe) -> dict:
    """Per (row, view): the fine-tuned teacher's logo-class probabilities and pooled features."""
    path = out / "targets.npz"
    if path.exists():
        with np.load(path) as saved:
            return dict(saved)
    top = head_model.get_layer("lite0_top")
    pooled = keras.Model(head_model.input, [top(head_model.input), head_model.output])
    feats = np.zeros((len(rows), recipe.views, teacher.FEATURES), np.float32)
    probs = np.zeros((len(rows), recipe.views, len(data.CLASS_NAMES)), np.float32)
    starts = range(0, len(rows), 64)
    for start in progress(starts, len(starts), "teacher targets", unit="batch"):
        chunk = rows[start : start + 64]
        for view in range(recipe.views):
            f, p = pooled.predict_on_batch(np.asarray(features[chunk, view], np.float32))
            feats[start : start + len(chunk), view] = np.asarray(f)
            probs[start : start + len(chunk), view] = np.asarray(p)
    targets = {
        "rows": rows,
        "features": feats,
        "probabilities": probs,
        "feature_mean": feats.mean((0, 1)),
        "feature_std": feats.std((0, 1)) + 1e-3,
    }
    np.savez(path, **targets)
    return targets


def student_model() -> tuple[keras.Model, keras.Model]:
    """(the production network, the same layers with a feature projection as a second output)."""
    network = build_network(len(data.CLASS_NAMES))
    pooled = network.get_layer("avg_pool").output
    projection = keras.layers.Dense(teacher.FEATURES, name="features")(pooled)
    outputs = {"predictions": network.output, "features": projection}
    return network, keras.Model(network.input, outputs, name="logo_student")


def student_targets_for(targets: dict, labels, recipe: Recipe):
    """The loss targets of a batch of (row, view) pairs."""
    position = {int(r): i for i, r in enumerate(targets["rows"])}
    one_hot = np.eye(len(data.CLASS_NAMES), dtype=np.float32)
    hard = 1.0 if recipe.method == "feature" else recipe.hard_label_weight
    mean, std = targets["feature_mean"], targets["feature_std"]

    def make(rows, views):
        at = np.array([position[int(r)] for r in rows])
        soft = targets["probabilities"][at, views]
        return {
            "predictions": hard * one_hot[labels[rows]] + (1 - hard) * soft,
            "features": (targets["features"][at, views] - mean) / std,
        }

    return make


def train_student(images, labels, targets, out: Path, recipe: Recipe) -> keras.Model:
    network, model = student_model()
    if recipe.init_student:
        start = keras.saving.load_model(str(REPO_ROOT / recipe.init_student), compile=False)
        network.set_weights(start.get_weights())  # the projection to the features starts afresh
    stages = [tuple(int(v) for v in part.split("x")) for part in recipe.student_stages.split(",")]
    total = sum(epochs for epochs, _ in stages)
    feature_weight = 0.0 if recipe.method == "soft" else recipe.feature_loss_weight
    model.compile(
        optimizer=keras.optimizers.AdamW(recipe.student_learning_rate, 0.05, clipnorm=1.0),
        loss={"predictions": "categorical_crossentropy", "features": "mean_squared_error"},
        loss_weights={"predictions": 1.0, "features": feature_weight},
        metrics={"predictions": ["accuracy"]},
    )
    make_targets = student_targets_for(targets, labels, recipe)
    epoch = 0
    for epochs, size in stages:
        print(f"student: {epochs} epoch(s) at {size}px", flush=True)

        def inputs(rows, views, size=size):
            return np.stack(
                [
                    view_of(images[r], r, v, size, recipe.seed)
                    for r, v in zip(rows, views, strict=True)
                ]
            )

        batches = Views(
            targets["rows"], recipe.views, inputs, make_targets, recipe.batch_size, recipe.seed
        )
        batches.epoch = epoch
        model.fit(
            batches,
            initial_epoch=epoch,
            epochs=epoch + epochs,
            callbacks=[
                # Kept across stages (each stage is its own fit): an interrupted run resumes
                # from the last finished epoch, whichever stage it was in.
                keras.callbacks.BackupAndRestore(
                    str(out / "backup-student"), delete_checkpoint=False
                ),
                keras.callbacks.LearningRateScheduler(
                    learning_rate_schedule(recipe.student_learning_rate, total)
                ),
                keras.callbacks.CSVLogger(str(out / "student-history.csv"), append=True),
            ],
            verbose=2,
        )
        epoch += epochs
    final = build_network(len(data.CLASS_NAMES))
    final.set_weights(network.get_weights())
    return final


def distill(
    data_dir: Path,
    out: Path,
    cache_dir: Path,
    holdout: Sequence[str] = (),
    exclude: Sequence[str] = (),
    recipe: Recipe | None = None,
) -> dict:
    """Teacher and student from a prepared folder into `out`; with `holdout`, both scored on the
    held-out sources as `lso` scores a model (`out/distill.json`)."""
    started = time.time()
    recipe = recipe or Recipe()
    if recipe.method not in METHODS:
        raise SystemExit(f"--method must be one of {METHODS}")
    if recipe.init_student:
        if not Path(recipe.init_student).is_file():
            raise SystemExit(f"--init-student: no model file at {recipe.init_student}")
        recipe = replace(recipe, init_student=repo_relative(recipe.init_student))
    check_sources(data_dir, [*holdout, *exclude])
    keras.utils.set_random_seed(recipe.seed)
    out.mkdir(parents=True, exist_ok=True)
    images, labels, everything = data.load_arrays(data.list_examples(data_dir), cache_dir)
    left_out = {*holdout, *exclude}
    split = np.array([data.split_of(e.group) for e in everything])
    kept = np.array([e.key not in left_out for e in everything])
    train_rows = np.flatnonzero(kept & (split == "train"))
    val_rows = np.flatnonzero(kept & (split == "val"))
    features = bottom_features(images, cache_dir / bottom_cache_name(everything, recipe), recipe)

    bottom, head_model = fine_tune_teacher(features, labels, train_rows, val_rows, out, recipe)
    teacher_model = full_teacher(bottom, head_model)
    targets = teacher_targets(features, head_model, train_rows, out, recipe)
    student_file = out / STUDENT_FILE
    info_common = {
        "data_dir": repo_relative(data_dir),
        "left_out_sources": sorted(left_out),
        "recipe": asdict(recipe),
        "teacher": {
            "architecture": "EfficientNet-Lite0 (training/teacher.py)",
            "weights": f"{teacher.WEIGHTS_PACKAGE} {teacher.WEIGHTS_FILE}",
            "weights_sha256": teacher.WEIGHTS_SHA256,
        },
    }
    if not student_file.exists():
        student = train_student(images, labels, targets, out, recipe)
        val_scores = score_model(student, images[val_rows], recipe.batch_size)
        info = metadata.describe(
            data_dir,
            counts={
                "train": data.counts([everything[r] for r in train_rows]),
                "val": data.counts([everything[r] for r in val_rows]),
            },
            training={**info_common, "method": "distillation", "hardware": hardware()},
            metrics={"val": metadata.summary(labels[val_rows], val_scores)},
        )
        metadata.save_model(student, student_file, info)
        shutil.rmtree(out / "backup-student", ignore_errors=True)
    teacher_file = out / TEACHER_FILE
    if not teacher_file.exists():
        teacher_model.save(str(teacher_file))
    report = {**info_common, "wall_clock_seconds": round(time.time() - started)}
    if holdout:
        student = keras.saving.load_model(str(student_file), compile=False)
        report["held_out_reports"] = {
            name: held_out_report(model, data_dir, holdout, exclude, cache_dir)
            for name, model in (("teacher", teacher_model), ("student", student))
        }
    (out / "distill.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report
