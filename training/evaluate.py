"""Evaluate a model file on a ``<class>/<source>/...`` folder: metrics overall and per source,
an operating point, and plots (ROC, PR, confusion matrix, score histogram)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn import metrics as skm

from training import data
from training.keras_file import read_keras_file
from training.metadata import summary
from training.paths import repo_relative
from training.scores import score_model


def operating_point(labels: np.ndarray, scores: np.ndarray, target_precision: float) -> float:
    """Lowest threshold whose precision reaches the target (max recall at that precision)."""
    precision, _recall, thresholds = skm.precision_recall_curve(labels, scores)
    ok = np.nonzero(precision[:-1] >= target_precision)[0]
    return float(thresholds[ok[0]]) if len(ok) else 0.5


def per_source(
    examples: list[data.Example], labels: np.ndarray, scores: np.ndarray, threshold: float
) -> dict:
    """Per ``class/source`` folder: n, accuracy at 0.5 and at the operating point, mean score."""
    out = {}
    keys = [f"{data.CLASS_NAMES[e.label]}/{e.source}" for e in examples]
    for key in sorted(set(keys)):
        idx = np.array([k == key for k in keys])
        s, y = scores[idx], labels[idx]
        out[key] = {
            "n": int(idx.sum()),
            "accuracy": float(np.mean((s >= 0.5) == y)),
            "accuracy_at_operating_point": float(np.mean((s >= threshold) == y)),
            "mean_logo_score": float(scores[idx].mean()),
        }
    return out


# Rows of their own, across sources: files whose name holds the word (devicon's wordmarks are
# logos set in type, which a model can miss while it gets pictorial marks right).
NAMED_ROWS = ("wordmark",)


def named_rows(
    examples: list[data.Example], labels: np.ndarray, scores: np.ndarray, threshold: float
) -> dict:
    """Per word of ``NAMED_ROWS``: the per-source row of the files whose name holds it."""
    out = {}
    for word in NAMED_ROWS:
        idx = np.array([word in e.path.name.lower() for e in examples], bool)
        if idx.any():
            s, y = scores[idx], labels[idx]
            out[f"files named *{word}*"] = {
                "n": int(idx.sum()),
                "accuracy": float(np.mean((s >= 0.5) == y)),
                "accuracy_at_operating_point": float(np.mean((s >= threshold) == y)),
                "mean_logo_score": float(s.mean()),
            }
    return out


def worst(examples: list[data.Example], scores: np.ndarray, n: int = 25) -> list[dict]:
    """The ``n`` files scored furthest from their label: what the model confuses."""
    rows = (
        {"file": repo_relative(e.path), "label": data.CLASS_NAMES[e.label], "logo_score": float(s)}
        for e, s in zip(examples, scores, strict=True)
    )
    return sorted(rows, key=lambda r: -abs((r["label"] == "logo") - r["logo_score"]))[:n]


def plots(labels: np.ndarray, scores: np.ndarray, out: Path, threshold: float) -> list[str]:
    """ROC, PR, confusion-matrix and score-histogram PNGs; returns the file names."""
    names = []
    if len(np.unique(labels)) == 2:
        fig, ax = plt.subplots(figsize=(5, 5))
        skm.RocCurveDisplay.from_predictions(labels, scores, ax=ax, name="logo")
        fig.savefig(out / "roc.png", dpi=100)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(5, 5))
        skm.PrecisionRecallDisplay.from_predictions(labels, scores, ax=ax, name="logo")
        fig.savefig(out / "pr.png", dpi=100)
        plt.close(fig)
        names += ["roc.png", "pr.png"]
    fig, ax = plt.subplots(figsize=(5, 5))
    skm.ConfusionMatrixDisplay.from_predictions(
        labels,
        (scores >= 0.5).astype(int),
        labels=[0, 1],
        display_labels=data.CLASS_NAMES,
        ax=ax,
        colorbar=False,
    )
    fig.savefig(out / "confusion_matrix.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, name in enumerate(data.CLASS_NAMES):
        ax.hist(scores[labels == label], bins=50, range=(0, 1), alpha=0.6, label=name, log=True)
    ax.axvline(0.5, color="k", lw=0.8)
    ax.axvline(threshold, color="r", lw=0.8, ls="--", label=f"operating point {threshold:.3f}")
    ax.set_xlabel("logo score")
    ax.legend()
    fig.savefig(out / "score_histogram.png", dpi=100)
    plt.close(fig)
    return [*names, "confusion_matrix.png", "score_histogram.png"]


def evaluate(
    model_path: Path,
    data_dir: Path,
    out: Path,
    split: str = "all",
    target_precision: float = 0.99,
    cache_dir: Path | None = None,
    batch_size: int = 32,
    sources: list[str] | None = None,
) -> dict:
    """Score every image of ``split`` (of ``sources`` only, if given: ``class/source`` names);
    write ``evaluation.json`` and the plots to ``out``."""
    images, labels, examples = data.load_subset(data_dir, split, cache_dir, only=sources)
    scores = score_model(read_keras_file(model_path), images, batch_size)
    threshold = (
        operating_point(labels, scores, target_precision) if len(np.unique(labels)) == 2 else 0.5
    )
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "model": repo_relative(model_path),
        "data_dir": repo_relative(data_dir),
        "split": split,
        "overall": summary(labels, scores),
        "operating_point": {
            "target_precision": target_precision,
            **summary(labels, scores, threshold),
        },
        "per_source": per_source(examples, labels, scores, threshold),
        "named": named_rows(examples, labels, scores, threshold),
        "plots": plots(labels, scores, out, threshold),
        "worst": worst(examples, scores),
    }
    (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def table(report: dict) -> str:
    """The per-source table as Markdown, for the terminal and the model card."""
    o, op = report["overall"], report["operating_point"]
    auc = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [
        f"n={o['n']}  accuracy={o['accuracy']:.4f}  precision={o['precision']:.4f}  "
        f"recall={o['recall']:.4f}  F1={o['f1']:.4f}  ROC-AUC={auc(o['roc_auc'])}  "
        f"PR-AUC={auc(o['pr_auc'])}  confusion={o['confusion_matrix']}",
        f"operating point {op['threshold']:.4f} (precision >= {op['target_precision']}): "
        f"accuracy={op['accuracy']:.4f}  precision={op['precision']:.4f}  "
        f"recall={op['recall']:.4f}  F1={op['f1']:.4f}",
        "",
        "| class/source | n | accuracy @0.5 | accuracy @op | mean logo score |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, r in {**report["per_source"], **report.get("named", {})}.items():
        lines.append(
            f"| {key} | {r['n']} | {r['accuracy']:.4f} | "
            f"{r['accuracy_at_operating_point']:.4f} | {r['mean_logo_score']:.3f} |"
        )
    return "\n".join(lines)
