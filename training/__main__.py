"""``python -m training {prepare,pack,train,lso,evaluate,classify}``: see training/README.md."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from training.distillation_recipe import METHODS, Recipe

# The default model's full schedule, the one source of it (`make train` relies on these).
DEFAULT_STAGES = "3x96:0.9,4x128:0.8,1x224:0.8"
DEFAULT_STEPS_PER_EPOCH = 200
DEFAULT_VALIDATION_STEPS = 25
# AVIF quality of `pack`: ~3.6 KB an image, so the recipe's ~15.1k train+val images fit in the
# 60 MiB a GPU job carries, at a mean error below JPEG quality 90's
# (docs/experiments-2026-12.md#packing-codec-size-and-fidelity).
DEFAULT_PACK_QUALITY = 60


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    prep = sub.add_parser(
        "prepare", help="build a Commons-like training folder from the source collection"
    )
    prep.add_argument(
        "--source-dir", type=Path, required=True, help="the shared data folder (images/, meta/)"
    )
    prep.add_argument("--out", type=Path, required=True)
    prep.add_argument("--seed", type=int, default=1)
    prep.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    prep.add_argument(
        "--max-per-source",
        type=int,
        help="at most N files per source (a fixed subset of the full set: quick comparisons)",
    )
    prep.add_argument(
        "--fresh", action="store_true", help="start from an empty --out (default: resume)"
    )

    pk = sub.add_parser(
        "pack", help="a prepared folder as one compact, checksummed file that --data-dir takes"
    )
    pk.add_argument("--data-dir", type=Path, required=True, help="a folder made by prepare")
    pk.add_argument("--out", type=Path, required=True, help="the pack (a zip) to write")
    pk.add_argument(
        "--splits",
        type=sources_list,
        default=["train", "val"],
        help="splits to pack (default train,val: what train reads; lso and evaluate --split "
        "test also need test)",
    )
    pk.add_argument(
        "--quality",
        type=int,
        default=DEFAULT_PACK_QUALITY,
        help="AVIF quality 0-100 (default %(default)s: the recipe's train+val in under 60 MiB)",
    )
    pk.add_argument("--cache-dir", type=Path, help="decoded-image cache (default as for train)")
    pk.add_argument(
        "--exclude",
        type=sources_list,
        default=[],
        help="class/source folders left out of the pack, e.g. the training recipe's --exclude",
    )
    pk.add_argument("--workers", type=int, default=os.cpu_count() or 1)

    tr = sub.add_parser("train", help="train the production architecture")
    add_training_options(tr)
    tr.add_argument(
        "--exclude",
        type=sources_list,
        default=[],
        help="class/source folders left out of training and validation (the recipe's choice)",
    )

    lso = sub.add_parser(
        "lso", help="leave-source-out: train without whole sources, score each of them"
    )
    add_training_options(lso)
    lso.add_argument(
        "--holdout",
        type=sources_list,
        required=True,
        help="class/source folders held out and scored, e.g. out_of_domain/kodak24,logo/devicon",
    )
    lso.add_argument(
        "--exclude",
        type=sources_list,
        default=[],
        help="class/source folders left out of training and not scored (a recipe without them)",
    )

    ev = sub.add_parser("evaluate", help="metrics, per-source table and plots for a model")
    ev.add_argument("--model", type=Path, required=True)
    ev.add_argument("--data-dir", type=Path, required=True)
    ev.add_argument(
        "--split",
        default="all",
        choices=["all", "train", "val", "test"],
        help="'test' = the held-out split of a folder made by prepare (default all)",
    )
    ev.add_argument("--out", type=Path, help="default: evaluation/ beside the model")
    ev.add_argument(
        "--target-precision", type=float, default=0.99, help="picks the operating point"
    )
    ev.add_argument("--cache-dir", type=Path)
    ev.add_argument(
        "--sources",
        type=sources_list,
        help="only these class/source folders, e.g. sources a model never saw",
    )

    ds = sub.add_parser(
        "distill", help="fine-tune the ImageNet teacher, distil it into the production network"
    )
    ds.add_argument("--data-dir", type=Path, required=True, help="a folder made by prepare")
    ds.add_argument("--out", type=Path, required=True, help="teacher, student and reports")
    ds.add_argument("--cache-dir", type=Path, help="default <data-dir>/.cache")
    ds.add_argument(
        "--holdout", type=sources_list, default=[], help="class/source folders to score, unseen"
    )
    ds.add_argument(
        "--exclude", type=sources_list, default=[], help="class/source folders left out"
    )
    for field in fields(Recipe):
        ds.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=type(field.default),
            default=field.default,
            help="default %(default)s"
            + (f"; one of {', '.join(METHODS)}" * (field.name == "method")),
        )

    cl = sub.add_parser("classify", help="score files (and draw them in a grid)")
    cl.add_argument("--model", type=Path, required=True)
    cl.add_argument("--grid", type=Path, help="also draw the files and their scores into this PNG")
    cl.add_argument("paths", type=Path, nargs="+", help="image files or folders")
    return p


def sources_list(text: str) -> list[str]:
    return [k.strip().strip("/") for k in text.split(",") if k.strip()]


def add_training_options(tr: argparse.ArgumentParser) -> None:
    tr.add_argument(
        "--data-dir", type=Path, required=True, help="folder with logo/ and out_of_domain/"
    )
    tr.add_argument(
        "--out", type=Path, required=True, help="writes logo_detection.keras + .json here"
    )
    tr.add_argument(
        "--stages",
        default=DEFAULT_STAGES,
        help="EPOCHSxSIZE:MIN_CROP_SCALE,... (default %(default)s)",
    )
    tr.add_argument(
        "--augmentation",
        choices=["basic", "strong"],
        default="basic",
        help="basic (default): crops and flips; strong: also zoom-out padding, aspect, colour "
        "jitter, greyscale, JPEG re-encoding",
    )
    tr.add_argument("--batch-size", type=int, default=32, help="per replica")
    tr.add_argument("--learning-rate", type=float, default=2e-3)
    tr.add_argument("--seed", type=int, default=1)
    tr.add_argument(
        "--backbone-weights", type=Path, help="local EfficientNetV2-B0 backbone weights"
    )
    tr.add_argument(
        "--cache-dir", type=Path, help="decoded-image cache (default <data-dir>/.cache if writable)"
    )
    tr.add_argument("--patience", type=int, default=3, help="early-stopping patience, in epochs")
    tr.add_argument(
        "--steps-per-epoch",
        type=int,
        default=DEFAULT_STEPS_PER_EPOCH,
        help="training steps per epoch (default %(default)s; 0: the whole training split)",
    )
    tr.add_argument(
        "--validation-steps",
        type=int,
        default=DEFAULT_VALIDATION_STEPS,
        help="validation steps per epoch (default %(default)s; 0: the whole validation split)",
    )
    tr.add_argument(
        "--run-eagerly", action="store_true", help="no graph tracing: faster for a few smoke steps"
    )
    tr.add_argument("--deterministic", action="store_true", help="bit-reproducible ops (slower)")
    tr.add_argument(
        "--precision",
        default="auto",
        help="auto (mixed_float16 on GPU), float32, mixed_bfloat16, ...",
    )


def training_kwargs(args: argparse.Namespace) -> dict:
    """The options ``train`` and ``lso`` share, as ``training.train.train`` keywords."""
    from training.train import parse_stages

    return {
        "stages": parse_stages(args.stages),
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "backbone_weights": args.backbone_weights,
        "cache_dir": args.cache_dir or default_cache(args.data_dir),
        "patience": args.patience,
        "steps_per_epoch": args.steps_per_epoch or None,
        "validation_steps": args.validation_steps or None,
        "deterministic": args.deterministic,
        "precision": args.precision,
        "run_eagerly": args.run_eagerly,
        "augmentation": args.augmentation,
    }


def default_cache(data_dir: Path) -> Path | None:
    """Decoded images are cached beside the data (never in the repo), if that folder is writable:
    in ``<data-dir>/.cache``, or in ``<pack>.cache`` beside a pack file."""
    if data_dir.is_file():
        beside = data_dir.with_name(data_dir.name + ".cache")
        return beside if os.access(data_dir.parent, os.W_OK) else None
    return data_dir / ".cache" if os.access(data_dir, os.W_OK) else None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    if args.command == "prepare":
        from training.prepare import prepare

        info = prepare(
            args.source_dir, args.out, args.seed, args.workers, args.max_per_source, args.fresh
        )
        print(json.dumps(info, indent=2))
    elif args.command == "pack":
        from training.pack import pack

        info = pack(
            args.data_dir,
            args.out,
            args.splits,
            args.quality,
            args.cache_dir or default_cache(args.data_dir),
            args.exclude,
            args.workers,
        )
        print(json.dumps(info, indent=2))
        print(
            f"wrote {info['pack']}: {info['images']} images, {info['bytes'] / 2**20:.1f} MiB, "
            f"sha256 {info['sha256']}; check a copy with `sha256sum -c "
            f"{Path(info['checksum_file']).name}` in its folder"
        )
    elif args.command == "train":
        from training.train import train

        info = train(args.data_dir, args.out, exclude=args.exclude, **training_kwargs(args))
        print(json.dumps(info["metrics"], indent=2))
    elif args.command == "lso":
        from training.lso import leave_sources_out, table

        report = leave_sources_out(
            args.data_dir, args.out, args.holdout, args.exclude, **training_kwargs(args)
        )
        print(table(report))
        print(f"wrote {args.out / 'lso.json'}")
    elif args.command == "evaluate":
        from training.evaluate import evaluate, table

        out = args.out or args.model.parent / "evaluation"
        report = evaluate(
            args.model,
            args.data_dir,
            out,
            args.split,
            args.target_precision,
            args.cache_dir or default_cache(args.data_dir),
            sources=args.sources,
        )
        print(table(report))
        print(f"wrote {out / 'evaluation.json'} and plots")
    elif args.command == "distill":
        from training.distill import distill

        recipe = Recipe(**{f.name: getattr(args, f.name) for f in fields(Recipe)})
        cache_dir = args.cache_dir or default_cache(args.data_dir)
        report = distill(args.data_dir, args.out, cache_dir, args.holdout, args.exclude, recipe)
        print(json.dumps({k: v for k, v in report.items() if k != "recipe"}, indent=2)[:4000])
    else:
        from training.classify import classify

        rows = classify(args.model, args.paths, args.grid)
        return 1 if any(s is None for _, s, _ in rows) else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
