"""Where training runs, on whichever Keras backend `KERAS_BACKEND` chose: the device, the
number of replicas, whether this process writes the model, and the scope models are built in.

On TensorFlow, `training.tf_distribution` adds its distribution strategies (several GPUs, or
several workers under TF_CONFIG); JAX and PyTorch train on one device here, the first GPU when
there is one (Keras places work there by itself).
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class Placement:
    strategy: str  # recorded in the model's JSON
    replicas: int
    chief: bool  # writes the model (every other worker trains and discards)
    multi_worker: bool
    scope: Callable[[], AbstractContextManager]


def accelerator() -> str | None:
    """The first GPU's name, or None when training runs on the CPU."""
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        gpus = [device for device in jax.devices() if device.platform == "gpu"]
        return gpus[0].device_kind if gpus else None
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def hardware() -> dict[str, object]:
    """What a model was trained on, for its JSON."""
    return {
        "backend": keras.config.backend(),
        "accelerator": accelerator(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def placement() -> Placement:
    if keras.config.backend() == "tensorflow":
        from training import tf_distribution

        strategy = tf_distribution.choose_strategy()
        return Placement(
            strategy=tf_distribution.strategy_name(strategy),
            replicas=strategy.num_replicas_in_sync,
            chief=tf_distribution.is_chief(strategy),
            multi_worker=tf_distribution.is_multi_worker(strategy),
            scope=strategy.scope,
        )
    return Placement("single device", 1, True, False, contextlib.nullcontext)


def make_deterministic() -> None:
    """Bit-reproducible kernels where the backend offers a switch (JAX on one device already is)."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
