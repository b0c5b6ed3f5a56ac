"""The distillation run's settings (`python -m training distill`), apart from Keras so the
command line can list them without importing a backend."""

from __future__ import annotations

from dataclasses import dataclass

METHODS = ("soft", "feature", "both")


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the outcome; recorded in the student's JSON and the report."""

    views: int = 3  # per image: view 0 is the image itself, the rest crops and flips
    seed: int = 1
    batch_size: int = 32
    head_epochs: int = 2
    finetune_epochs: int = 3
    teacher_learning_rate: float = 1e-3
    student_stages: str = "2x128,1x160,1x224"  # EPOCHSxSIZE,...
    student_learning_rate: float = 2e-3
    method: str = "both"  # soft: the teacher's probabilities; feature: its pooled features
    hard_label_weight: float = 0.3  # of the probability target; the teacher's is the rest
    feature_loss_weight: float = 1.0
    # A production-network .keras whose weights start the student (an earlier student, to train
    # it longer); empty: random weights. Its own training must not have seen any held-out source.
    init_student: str = ""
