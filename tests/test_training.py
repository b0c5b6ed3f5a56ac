"""The training tools end to end on a tiny generated data set, and the shipped default model.

train -> evaluate -> classify -> the trained file loads in the real server and answers; plus the
multi-worker (TF_CONFIG) path with two worker processes on localhost.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from bench.harness.server_process import DEFAULT_MODEL, REPO_ROOT, ServerProcess, free_port
from model_server.logo_detection.model_contract import file_sha256
from training import data

from .tiny_dataset import add_source_copy, encode, make_tiny_dataset

pytestmark = pytest.mark.training


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "TRAIN_QUIET": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory) -> Path:
    """One short epoch at 32 px, in this process (a second TF process would double start-up)."""
    from training.train import parse_stages, train

    out = tmp_path_factory.mktemp("model")
    train(
        tiny,
        out,
        parse_stages("1x32:0.9"),
        batch_size=4,
        steps_per_epoch=2,
        validation_steps=2,
        run_eagerly=True,
    )
    return out / "logo_detection.keras"


def test_split_is_deterministic_and_keeps_groups_together():
    assert data.group_of(Path("python__python-original-1.png")) == "python"
    assert data.group_of(Path("Cambia_logo.png")) == "Cambia_logo"
    splits = [data.split_of(f"group{i}") for i in range(2000)]
    assert splits == [data.split_of(f"group{i}") for i in range(2000)]
    fractions = [splits.count(s) / len(splits) for s in data.SPLITS]
    assert fractions == pytest.approx(data.SPLIT_FRACTIONS, abs=0.03)


def test_unreadable_files_are_left_out_and_counted(tiny, tmp_path, capsys):
    """A broken file must not stop decoding, and a cache must not hide how many were lost."""
    broken = tmp_path / "logo" / "src" / "broken__x-0.png"
    broken.parent.mkdir(parents=True)
    (tmp_path / "out_of_domain").mkdir()
    broken.write_bytes(b"not an image")
    examples = data.list_examples(tiny)[:3] + data.list_examples(tmp_path)
    images, labels, kept = data.load_arrays(examples, tmp_path / "cache")
    assert kept == examples[:3] and images.shape == (3, 224, 224, 3) and len(labels) == 3
    err = capsys.readouterr().err
    assert f"skipping {broken}: ImageError: " in err
    assert "decoding: left out 1 of 4 files" in err


def test_train_writes_model_and_json(trained):
    info = json.loads(trained.with_suffix(".json").read_text())
    assert info["class_names"] == ["out_of_domain", "logo"]
    assert info["input_size"] == [224, 224]
    assert info["sha256"] == file_sha256(trained)
    # the version the server answers with: the UTC time the model was made, 20240417132942
    created = info["created"].removesuffix("+00:00")
    assert info["version"] == created.replace("-", "").replace(":", "").replace("T", "")
    assert info["data"]["counts"]["train"]
    assert "keras" in info["versions"] and "tensorflow" in str(info["versions"])
    assert 0.0 <= info["metrics"]["val"]["accuracy"] <= 1.0
    assert (trained.parent / "checkpoints" / "best.weights.h5").exists()
    assert not (trained.parent / "backup").exists(), "the resume backup is removed once done"


def test_evaluate_writes_metrics_and_plots(trained, tiny, tmp_path):
    from training.evaluate import evaluate, table

    report = evaluate(trained, tiny, tmp_path, split="all")
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["overall"]["n"] == 13
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"):
        assert 0.0 <= saved["overall"][key] <= 1.0
    assert 0.0 <= saved["operating_point"]["threshold"] <= 1.0
    assert set(saved["per_source"]) == {"logo/shapes", "out_of_domain/noise"}
    assert np.sum(saved["overall"]["confusion_matrix"]) == 13
    for name in ("roc.png", "pr.png", "confusion_matrix.png", "score_histogram.png"):
        with Image.open(tmp_path / name) as plot:
            assert plot.size[0] > 100
    assert "logo/shapes" in table(report)


def test_classify_prints_scores_and_draws_grid(trained, tiny, tmp_path, capsys):
    from training.classify import classify

    grid = tmp_path / "grid.png"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    rows = classify(trained, [tiny / "logo", broken], grid)
    assert len(rows) == 8
    assert all(0.0 <= s <= 1.0 for f, s, _ in rows if f != broken)
    assert next(note for f, _, note in rows if f == broken).startswith("error")
    assert "svglogo.svg" in capsys.readouterr().out
    with Image.open(grid) as drawn:
        assert drawn.size[0] > 200


def test_trained_model_serves_predictions(trained):
    png = base64.b64encode(encode(Image.new("RGB", (50, 40), (255, 0, 0)), "PNG")).decode()
    body = {"instances": [{"filename": "red.png", "target": "logo", "image": png}]}
    with ServerProcess(trained) as server:
        request = urllib.request.Request(
            server.predict_url, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            result = json.loads(answer.read())["predictions"][0]
    assert result["filename"] == "red.png"
    assert 0.0 <= result["prediction"] <= 1.0


def test_default_model_matches_its_json():
    # models/ publishes the export's JSON, which holds the training JSON under `source`
    info = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert info["source"]["sha256"] == file_sha256(DEFAULT_MODEL)
    assert info["source"]["metadata"]["sha256"] == file_sha256(DEFAULT_MODEL)
    assert info["version"] == info["source"]["metadata"]["version"]
    assert info["class_names"] == ["out_of_domain", "logo"]
    from training.keras_file import read_keras_file

    model = read_keras_file(DEFAULT_MODEL)
    assert model.output_shape == (None, 2)


def test_two_workers_train_with_multi_worker_strategy(tiny, tmp_path):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "training",
                    "train",
                    "--data-dir",
                    str(tiny),
                    "--out",
                    str(tmp_path / "out"),
                    "--stages",
                    "1x32",
                    "--batch-size",
                    "2",
                    "--steps-per-epoch",
                    "2",
                    "--validation-steps",
                    "1",
                    "--cache-dir",
                    str(tmp_path / f"cache{index}"),
                ],
                cwd=REPO_ROOT,
                env={**os.environ, "TF_CONFIG": tf_config, "TRAIN_QUIET": "1"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=540)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    info = json.loads((tmp_path / "out" / "logo_detection.json").read_text())
    assert info["training"]["strategy"] == "MultiWorkerMirroredStrategy"
    assert info["training"]["replicas"] == 2
    assert info["training"]["batch_size"] == 4


def test_leave_source_out_run_scores_each_held_out_source(tmp_path):
    from training.lso import leave_sources_out, table
    from training.train import parse_stages

    root = make_tiny_dataset(tmp_path / "data")
    add_source_copy(root, "logo", "shapes", "crests")
    add_source_copy(root, "out_of_domain", "noise", "maps")
    held = ["logo/crests", "out_of_domain/maps"]
    report = leave_sources_out(
        root,
        tmp_path / "run",
        held,
        stages=parse_stages("1x32:0.9"),
        batch_size=4,
        steps_per_epoch=1,
        validation_steps=1,
        run_eagerly=True,
        cache_dir=tmp_path / "cache",
    )
    info = json.loads((tmp_path / "run" / "logo_detection.json").read_text())
    trained_on = set(info["data"]["counts"]["train"]) | set(info["data"]["counts"]["val"])
    assert trained_on and not trained_on & set(held), "held-out sources were trained on"
    assert info["training"]["left_out_sources"] == held
    rows = report["held_out_sources"]
    assert set(rows) == set(held)
    assert rows["logo/crests"]["n"] == 7 and rows["out_of_domain/maps"]["n"] == 6
    for row in rows.values():
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["roc_auc"] <= 1.0
    assert report["held_out_pooled"]["n"] == 13
    assert 0.0 <= report["held_out_pooled"]["balanced_accuracy"] <= 1.0
    assert not set(report["in_distribution_test"]["per_source"]) & set(held)
    saved = json.loads((tmp_path / "run" / "lso.json").read_text())
    assert saved["held_out"] == held
    assert "| logo/crests | 7 |" in table(report)


class Killed(RuntimeError):
    pass


class Interrupt(keras.callbacks.Callback):
    """Stands in for a killed job: fails after the given epoch has been backed up."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Killed


# Keras' CSVLogger closes history.csv in on_train_end, which the interrupted fit never reaches (as
# in a killed job): its open file is left to the garbage collector, run within the test.
@pytest.mark.filterwarnings(r"ignore:unclosed file .*history\.csv:ResourceWarning")
def test_interrupted_training_resumes_from_the_last_epoch(tiny, tmp_path):
    from training.train import parse_stages, train

    kwargs = dict(batch_size=4, steps_per_epoch=1, validation_steps=1, run_eagerly=True)
    with pytest.raises(Killed):
        train(tiny, tmp_path, parse_stages("1x32,1x48"), **kwargs, extra_callbacks=[Interrupt(0)])
    gc.collect()  # the interrupted run's objects, its open history.csv with them, go now
    assert (tmp_path / "backup").exists()
    train(tiny, tmp_path, parse_stages("1x32,1x48"), **kwargs)
    epochs = [line.split(",")[0] for line in (tmp_path / "history.csv").read_text().splitlines()]
    assert epochs[1:] == ["0", "1"], "epoch 0 was redone instead of resumed"
    assert (tmp_path / "logo_detection.keras").exists()
