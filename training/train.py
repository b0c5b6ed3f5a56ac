"""Train the production architecture on a ``logo/`` + ``out_of_domain/`` folder.

Progressive resizing (EfficientNetV2's recipe): early stages use small images and weak
augmentation, later ones larger images and stronger augmentation; validation always runs at the
serving size (224), so the checkpointed "best" epoch is best for what the server sees.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from model_server.logo_detection.model_contract import INPUT_SIZE
from training import data, distribution, metadata
from training.batches import Batches
from training.network import build_backbone, build_network
from training.paths import repo_relative
from training.scores import score_model

MODEL_FILE = "logo_detection.keras"


@dataclass(frozen=True)
class Stage:
    """``epochs`` epochs at ``size`` px with random crops of ``min_scale``..1 of the side."""

    epochs: int
    size: int
    min_scale: float


def parse_stages(spec: str) -> list[Stage]:
    """``"4x96:0.9,4x128:0.8,1x224:0.8"`` -> stages (epochs x size : min crop scale)."""
    stages = []
    for part in spec.split(","):
        head, _, scale = part.partition(":")
        epochs, _, size = head.partition("x")
        stages.append(Stage(int(epochs), int(size), float(scale or 1.0)))
    return stages


@keras.saving.register_keras_serializable(package="logo_training")
class LogoAUC(keras.metrics.AUC):
    """ROC/PR AUC of the logo score (column 1) against the logo label, as the server reports it."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true[:, 1], y_pred[:, 1], sample_weight)


class Throughput(keras.callbacks.Callback):
    """Training images per second of each epoch, validation left out (the first epoch also
    pays for tracing/compiling: `images_per_second` in the JSON is the latest epoch's)."""

    def __init__(self, images_per_step: int) -> None:
        super().__init__()
        self.images_per_step = images_per_step
        self.per_epoch: list[float] = []

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._started, self._steps = time.perf_counter(), 0

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self._steps += 1
        self._trained = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self._steps:
            seconds = self._trained - self._started
            self.per_epoch.append(round(self._steps * self.images_per_step / seconds, 1))


def learning_rate_schedule(base: float, total_epochs: int, warmup: int = 1):
    """Linear warm-up, then cosine decay to zero over the whole run (across stages)."""

    def schedule(epoch: int, _lr: float = 0.0) -> float:
        if epoch < warmup:
            return base * (epoch + 1) / (warmup + 1)
        progress = (epoch - warmup) / max(1, total_epochs - warmup)
        return float(base * 0.5 * (1 + math.cos(math.pi * progress)))

    return schedule


def build_model(backbone_weights: Path | None) -> keras.Model:
    backbone = build_backbone()
    if backbone_weights:
        backbone.load_weights(str(backbone_weights))
    return build_network(len(data.CLASS_NAMES), backbone)


def training_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    stage: Stage,
    seed: int,
    augmentation: str,
    steps: int,
    first_epoch: int,
):
    """The backend's input pipeline: tf.data on TensorFlow (its distribution strategies shard
    it), a PyDataset of the same recipe elsewhere (which counts epochs to pick each pass)."""
    recipe = {
        "train": True,
        "min_scale": stage.min_scale,
        "seed": seed,
        "augmentation": augmentation,
    }
    if keras.config.backend() == "tensorflow":
        from training import pipeline

        return pipeline.dataset(images, labels, batch_size, stage.size, **recipe)
    return Batches(
        images, labels, batch_size, stage.size, steps=steps, first_epoch=first_epoch, **recipe
    )


def validation_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, replicas: int):
    if keras.config.backend() == "tensorflow":
        from training import pipeline

        return pipeline.dataset(images, labels, batch_size, INPUT_SIZE, drop_remainder=replicas > 1)
    return Batches(images, labels, batch_size)


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Inverse frequency, normalised so the mean weight per example is 1."""
    freq = np.bincount(labels, minlength=len(data.CLASS_NAMES)).astype(float)
    return {i: float(len(labels) / (len(freq) * f)) if f else 0.0 for i, f in enumerate(freq)}


def train(
    data_dir: Path,
    out: Path,
    stages: list[Stage],
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    seed: int = 1,
    backbone_weights: Path | None = None,
    cache_dir: Path | None = None,
    patience: int = 3,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    deterministic: bool = False,
    precision: str = "auto",
    run_eagerly: bool = False,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
    exclude: Collection[str] = (),
    augmentation: str = "basic",
) -> dict:
    """Train, keep the best epoch by validation PR-AUC, write the model + its JSON to ``out``.

    ``exclude``: ``class/source`` folders left out of training and validation entirely.
    """
    started = time.time()
    keras.utils.set_random_seed(seed)
    if deterministic:
        distribution.make_deterministic()
    place = distribution.placement()
    hardware = distribution.hardware()
    if precision == "auto":
        precision = "mixed_float16" if hardware["accelerator"] else "float32"
    keras.mixed_precision.set_global_policy(precision)
    work = out if place.chief else Path(tempfile.mkdtemp(prefix="logo-worker-"))
    work.mkdir(parents=True, exist_ok=True)

    x_train, y_train, train_ex = data.load_subset(data_dir, "train", cache_dir, exclude)
    x_val, y_val, val_ex = data.load_subset(data_dir, "val", cache_dir, exclude)
    global_batch = batch_size * place.replicas
    if len(y_val) < global_batch:  # tiny data sets: validate on the training data instead
        x_val, y_val, val_ex = x_train, y_train, train_ex
    print(f"train {len(y_train)} ({data.counts(train_ex)})\nval {len(y_val)}", flush=True)

    total_epochs = sum(s.epochs for s in stages)
    with place.scope():
        model = build_model(backbone_weights)
        model.compile(
            optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.05, clipnorm=1.0),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05),
            metrics=["accuracy", LogoAUC(curve="PR", name="pr_auc"), LogoAUC(name="roc_auc")],
            run_eagerly=run_eagerly,
        )
        if place.multi_worker:
            from training.tf_distribution import work_around_keras_20585

            work_around_keras_20585(model, x_train, len(data.CLASS_NAMES))
    best = work / "checkpoints" / "best.weights.h5"
    best.parent.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(work / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(
            str(best), monitor="val_pr_auc", mode="max", save_best_only=True, save_weights_only=True
        ),
        keras.callbacks.LearningRateScheduler(learning_rate_schedule(learning_rate, total_epochs)),
        keras.callbacks.CSVLogger(str(work / "history.csv"), append=True),
    ]
    val_ds = validation_batches(x_val, y_val, global_batch, place.replicas)
    throughput = Throughput(global_batch)
    epoch = 0
    for stage in stages:
        print(
            f"stage: {stage.epochs} epoch(s) at {stage.size}px, crops >= {stage.min_scale}",
            flush=True,
        )
        steps = steps_per_epoch or math.ceil(len(y_train) / global_batch)
        train_ds = training_batches(
            x_train,
            y_train,
            global_batch,
            stage,
            seed=seed,
            augmentation=augmentation,
            steps=steps,
            first_epoch=epoch,
        )
        stop = keras.callbacks.EarlyStopping(monitor="val_pr_auc", mode="max", patience=patience)
        with place.scope():
            model.fit(
                train_ds,
                validation_data=val_ds,
                initial_epoch=epoch,
                epochs=epoch + stage.epochs,
                class_weight=class_weights(y_train),
                callbacks=[*callbacks, stop, throughput, *(extra_callbacks or [])],
                steps_per_epoch=steps,
                validation_steps=validation_steps,
                verbose=2 if os.environ.get("TRAIN_QUIET") else 1,
            )
        epoch += stage.epochs
        if stop.stopped_epoch:
            break
    if best.exists():
        model.load_weights(str(best))

    keras.mixed_precision.set_global_policy("float32")
    final = build_network(len(data.CLASS_NAMES))  # float32, uncompiled: what the server loads
    final.set_weights(model.get_weights())
    val_scores = score_model(final, x_val, batch_size)
    info = metadata.describe(
        data_dir=data_dir,
        counts={"train": data.counts(train_ex), "val": data.counts(val_ex)},
        training={
            "stages": [s.__dict__ for s in stages],
            "batch_size": global_batch,
            "learning_rate": learning_rate,
            "augmentation": augmentation,
            "seed": seed,
            "backbone_weights": repo_relative(backbone_weights) if backbone_weights else None,
            "left_out_sources": sorted(exclude),  # not trained on (held out or excluded)
            "precision": precision,
            "replicas": place.replicas,
            "wall_clock_seconds": round(time.time() - started),
            "strategy": place.strategy,
            "hardware": hardware,
            "images_per_second": throughput.per_epoch[-1] if throughput.per_epoch else None,
            "images_per_second_by_epoch": throughput.per_epoch,
        },
        metrics={"val": metadata.summary(y_val, val_scores)},
    )
    if place.chief:
        metadata.save_model(final, out / MODEL_FILE, info)
        shutil.rmtree(work / "backup", ignore_errors=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return info
