"""One prepared training job for a GPU machine that has PyTorch (or JAX) but no Keras, no
TensorFlow and no package registry, and receives at most 64 MiB of files per job.

On the development machine, `bundle` writes a job folder: the packed training data (made by
`python -m training pack`, which leaves out what the recipe excludes), the wheels Keras and
training need beyond what such a machine holds, and their names. On the GPU machine, from a
checkout, `run` checks the pack, installs the wheels into a venv that sees the machine's own
packages, trains with the chosen backend under a time limit, and leaves the model, its JSON and
the history in the output folder. Standard library only until the wheels are installed.

    python -m training.gpu_job bundle --pack build/training-data.pack --out build/gpu-job
    python -m training.gpu_job run --job build/gpu-job --out "$OUT" --backend torch
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

from model_server.logo_detection.inference.model_file import file_sha256

# What training imports beyond PyTorch/JAX, numpy and the standard library, with what those
# need: Keras (namex, optree, h5py for its weight files, absl-py, rich for its summaries),
# Pillow (decoding, the pack's images, augmentation), the server's decoders, tqdm, scikit-learn.
WHEELS = (
    "keras",
    "namex",
    "optree",
    "h5py",
    "absl-py",
    "rich",
    "markdown-it-py",
    "mdurl",
    "pygments",
    "pillow",
    "simplejpeg",
    "defusedxml",
    "resvg-py",
    "tqdm",
    "scikit-learn",
    "joblib",
    "threadpoolctl",
)
JOB_LIMIT_MIB = 64
PACK_NAME = "training-data.pack"


def folder_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def bundle(pack: Path, out: Path) -> Path:
    """The job folder: the pack (and its checksum) and this venv's versions of WHEELS."""
    wheels = out / "wheels"
    shutil.rmtree(out, ignore_errors=True)
    wheels.mkdir(parents=True)
    pins = [f"{name}=={version(name)}" for name in WHEELS]
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
            *("--only-binary=:all:", "--python-version", "3.11", "--dest", str(wheels)),
            *("--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64"),
            *pins,
        ],
        check=True,
    )
    (wheels / "names.txt").write_text("\n".join(pins) + "\n")
    expected = (pack.parent / f"{pack.name}.sha256").read_text().split()[0]
    shutil.copy2(pack, out / PACK_NAME)
    if file_sha256(out / PACK_NAME) != expected:
        raise SystemExit(f"{pack} does not match its .sha256: pack it again")
    (out / f"{PACK_NAME}.sha256").write_text(f"{expected}  {PACK_NAME}\n")
    size = folder_mib(out)
    print(f"{out}: {size:.1f} MiB (wheels {folder_mib(wheels):.1f} MiB)")
    if size > JOB_LIMIT_MIB:
        raise SystemExit(f"{out} is {size:.1f} MiB, over the {JOB_LIMIT_MIB} MiB a job carries")
    return out


def run(job: Path, out: Path, backend: str, limit_s: float, extra: list[str]) -> int:
    """Install, train within `limit_s` seconds, and bring back what training wrote."""
    subprocess.run(["sha256sum", "--check", f"{PACK_NAME}.sha256"], cwd=job, check=True)
    venv = job / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    names = (job / "wheels" / "names.txt").read_text().split()
    subprocess.run(
        [
            *(python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"),
            *("--find-links", str(job / "wheels"), *names),
        ],
        check=True,
    )
    model_dir = out / "model"
    command = [python, "-m", "training", "train", "--data-dir", str(job / PACK_NAME)]
    command += ["--out", str(model_dir), *extra]
    print(" ".join(command), flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            env={**os.environ, "KERAS_BACKEND": backend, "TRAIN_QUIET": "1"},
            timeout=limit_s,
        )
        code = done.returncode
    except subprocess.TimeoutExpired:
        print(f"training passed its {limit_s:.0f} s limit: stopped", flush=True)
        code = 124
    print(f"training: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
    shutil.rmtree(model_dir / "backup", ignore_errors=True)  # resumable state stays here
    if (model_dir / "logo_detection.keras").exists():  # else the best epoch's weights come back
        shutil.rmtree(model_dir / "checkpoints", ignore_errors=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.gpu_job", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("bundle", help="write the job folder (development machine)")
    make.add_argument("--pack", type=Path, required=True, help="made by `python -m training pack`")
    make.add_argument("--out", type=Path, default=Path("build/gpu-job"))
    go = commands.add_parser("run", help="install and train (GPU machine, repository root)")
    go.add_argument("--job", type=Path, default=Path("build/gpu-job"))
    go.add_argument("--out", type=Path, required=True, help="where the model and history go")
    go.add_argument("--backend", choices=["torch", "jax", "tensorflow"], default="torch")
    go.add_argument(
        "--limit-s",
        type=float,
        default=240,
        help="stop training after this long (default %(default)s: with the start-up, twice fits "
        "one 15-minute loan of a machine)",
    )
    args, extra = parser.parse_known_args(argv)
    if args.command == "bundle":
        bundle(args.pack, args.out)
        return 0
    return run(args.job, args.out, args.backend, args.limit_s, extra)


if __name__ == "__main__":
    raise SystemExit(main())
