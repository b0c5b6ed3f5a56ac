"""Leave-source-out evaluation: how a training recipe does on sources it never saw.

The test split shares sources and rendering recipes with the training files, so it hides
shortcuts ("flat colours = logo"). Here whole ``class/source`` folders are held out of training
and validation, a model is trained on the rest, and each held-out source is scored on its own,
next to the in-distribution test split of the sources that were trained on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
from sklearn import metrics as skm

from training import data
from training.evaluate import per_source, worst
from training.keras_file import read_keras_file
from training.metadata import summary
from training.paths import repo_relative
from training.scores import score_model
from training.train import MODEL_FILE, train


def check_sources(data_dir: Path, keys: Sequence[str]) -> None:
    """Every name must be a ``class/source`` folder of ``data_dir``, or the run means nothing."""
    known = set(data.counts(data.list_examples(data_dir)))
    unknown = sorted(set(keys) - known)
    if unknown:
        raise SystemExit(f"unknown sources {unknown}; {data_dir} has {sorted(known)}")


def held_out_table(
    examples: list[data.Example],
    labels: np.ndarray,
    scores: np.ndarray,
    other_labels: np.ndarray,
    other_scores: np.ndarray,
) -> dict:
    """Per held-out source: n, accuracy at 0.5, mean logo score, and ROC-AUC against every
    scored file of the other class (in-distribution test split and other held-out sources)."""
    out = {}
    all_labels = np.concatenate([labels, other_labels])
    all_scores = np.concatenate([scores, other_scores])
    for key, row in per_source(examples, labels, scores, 0.5).items():
        mine = np.array([e.key == key for e in examples])
        label = int(labels[mine][0])
        rivals = all_labels != label
        auc_labels = np.r_[labels[mine], all_labels[rivals]]
        auc_scores = np.r_[scores[mine], all_scores[rivals]]
        out[key] = {
            "n": row["n"],
            "accuracy": row["accuracy"],
            "mean_logo_score": row["mean_logo_score"],
            "roc_auc": float(skm.roc_auc_score(auc_labels, auc_scores)) if rivals.any() else None,
        }
    return out


def leave_sources_out(
    data_dir: Path,
    out: Path,
    holdout: Sequence[str],
    exclude: Sequence[str] = (),
    cache_dir: Path | None = None,
    batch_size: int = 32,
    **train_kwargs,
) -> dict:
    """Train without ``holdout`` (and ``exclude``, left out and not scored), then score every
    file of each held-out source and the in-distribution test split; writes ``out/lso.json``."""
    check_sources(data_dir, [*holdout, *exclude])
    left_out = sorted({*holdout, *exclude})
    info = train(
        data_dir,
        out,
        exclude=left_out,
        cache_dir=cache_dir,
        batch_size=batch_size,
        **train_kwargs,
    )
    report = {
        "data_dir": repo_relative(data_dir),
        "training": info["training"],
        **held_out_report(
            read_keras_file(out / MODEL_FILE), data_dir, holdout, exclude, cache_dir, batch_size
        ),
    }
    (out / "lso.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def held_out_report(
    model: keras.Model,
    data_dir: Path,
    holdout: Sequence[str],
    exclude: Sequence[str] = (),
    cache_dir: Path | None = None,
    batch_size: int = 32,
) -> dict:
    """Score every file of each held-out source and the in-distribution test split of the rest:
    what `lso` reports for the model it trained, and `distill` for a teacher and its student."""
    left_out = sorted({*holdout, *exclude})
    x_h, y_h, ex_h = data.load_subset(data_dir, "all", cache_dir, only=set(holdout))
    x_t, y_t, ex_t = data.load_subset(data_dir, "test", cache_dir, exclude=left_out)
    s_h = score_model(model, x_h, batch_size)
    s_t = score_model(model, x_t, batch_size)
    pooled = summary(y_h, s_h)
    return {
        "held_out": sorted(holdout),
        "excluded": sorted(exclude),
        "held_out_sources": held_out_table(ex_h, y_h, s_h, y_t, s_t),
        "held_out_pooled": {
            **pooled,
            "balanced_accuracy": float(skm.balanced_accuracy_score(y_h, s_h >= 0.5))
            if len(np.unique(y_h)) == 2
            else None,
        },
        "worst_held_out": worst(ex_h, s_h, 40),
        "in_distribution_test": {
            **summary(y_t, s_t),
            "per_source": per_source(ex_t, y_t, s_t, 0.5),
        },
    }


def table(report: dict) -> str:
    """Held-out sources, their pooled metrics and the in-distribution split, as Markdown."""
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [
        "| held-out source | n | accuracy @0.5 | ROC-AUC vs other class | mean logo score |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, r in report["held_out_sources"].items():
        lines.append(
            f"| {key} | {r['n']} | {r['accuracy']:.4f} | {fmt(r['roc_auc'])} | "
            f"{r['mean_logo_score']:.3f} |"
        )
    p, t = report["held_out_pooled"], report["in_distribution_test"]
    lines += [
        f"| **all held-out** | {p['n']} | {fmt(p['accuracy'])} | {fmt(p['roc_auc'])} | |",
        f"| in-distribution test split | {t['n']} | {fmt(t['accuracy'])} | {fmt(t['roc_auc'])} | |",
        "",
        f"held-out balanced accuracy {fmt(p['balanced_accuracy'])}",
    ]
    return "\n".join(lines)
