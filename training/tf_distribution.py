"""TensorFlow's distribution strategies for training: all local GPUs, or several workers when
TF_CONFIG is set (e.g. a Kubeflow TFJob). TensorFlow backend only."""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf


def choose_strategy() -> tf.distribute.Strategy:
    """Multi-worker when TF_CONFIG is set, all local GPUs otherwise."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """MultiWorkerMirroredStrategy's class is called CollectiveAllReduceStrategy."""
    if is_multi_worker(strategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def work_around_keras_20585(model: keras.Model, images: np.ndarray, num_classes: int) -> None:
    """Keras 3's fit() can't run under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    It reduces the first distributed (x, y) batch to learn shapes, and reduces each step's scalar
    logs along axis 0; both fail under this strategy. So: build model, loss, metrics and optimizer
    from a local batch here (inside the strategy's scope, so variables are still mirrored), let
    fit() find the strategy from the scope it runs in, and reduce logs the single-worker way.
    Gradients are still all-reduced across workers by the strategy.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    sample = (np.asarray(images[:1], np.float32), np.zeros((1, num_classes), np.float32))
    model._symbolic_build(data_batch=sample)
    model._distribute_strategy = None
    tf_trainer._collective_all_reduce_multi_worker = lambda _strategy: False
