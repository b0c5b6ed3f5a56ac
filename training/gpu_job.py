"""One prepared training job for a GPU machine that has PyTorch (or JAX) but no Keras, no
TensorFlow and no package registry, and receives at most 64 MiB of files per job.

On the development machine, `bundle` writes a job folder: the packed training data (made by
`python -m training pack`, which leaves out what the recipe excludes), the wheels Keras and
training need beyond what such a machine holds, and their names. On the GPU machine, from a
checkout, `run` checks the pack, installs the wheels into a folder beside the machine's own
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

from model_server.logo_detection.model_contract import file_sha256

# What training imports that the lent GPU machines lack (their package list: PyTorch, JAX,
# numpy, Pillow, h5py, scikit-learn, tqdm, rich, absl-py... but no Keras): Keras and its namex
# and optree, and the server's decoders. Their Python is 3.12.
WHEELS = ("keras", "namex", "optree", "simplejpeg", "defusedxml", "resvg-py")
JOB_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64")
JOB_LIMIT_MIB = 64  # everything that travels: the checkout's tracked files and this folder
PACK_NAME = "training-data.pack"


def folder_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def checkout_mib() -> float:
    """The tracked files, which travel with every job (the default model is most of them)."""
    listed = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout
    paths = [Path(name) for name in listed.decode().split("\0") if name]
    return sum(path.stat().st_size for path in paths if path.is_file()) / 2**20


def bundle(pack: Path, out: Path, python_version: str = JOB_PYTHON) -> Path:
    """The job folder: the pack (and its checksum) and the installed versions of WHEELS, built
    for the GPU machine's Python."""
    wheels = out / "wheels"
    shutil.rmtree(out, ignore_errors=True)
    wheels.mkdir(parents=True)
    pins = [f"{name}=={version(name)}" for name in WHEELS]
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
            *("--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"),
            *platforms,
            *("--dest", str(wheels), *pins),
        ],
        check=True,
    )
    (wheels / "names.txt").write_text("\n".join(pins) + "\n")
    expected = (pack.parent / f"{pack.name}.sha256").read_text().split()[0]
    shutil.copy2(pack, out / PACK_NAME)
    if file_sha256(out / PACK_NAME) != expected:
        raise SystemExit(f"{pack} does not match its .sha256: pack it again")
    (out / f"{PACK_NAME}.sha256").write_text(f"{expected}  {PACK_NAME}\n")
    job, wheel_mib, checkout = folder_mib(out), folder_mib(wheels), checkout_mib()
    print(f"{out}: {job:.1f} MiB (wheels {wheel_mib:.1f}), with the checkout {checkout + job:.1f}")
    if checkout + job > JOB_LIMIT_MIB:
        room = JOB_LIMIT_MIB - checkout - wheel_mib
        raise SystemExit(
            f"the checkout ({checkout:.1f} MiB) and {out} ({job:.1f} MiB) are over the "
            f"{JOB_LIMIT_MIB} MiB a job carries: pack at most {room:.1f} MiB (a lower --quality)"
        )
    return out


def run(job: Path, out: Path, backend: str, limit_s: float, extra: list[str]) -> int:
    """Install, train within `limit_s` seconds, and bring back what training wrote."""
    subprocess.run(["sha256sum", "--check", f"{PACK_NAME}.sha256"], cwd=job, check=True)
    site = job / "site"  # beside the machine's own packages, which stay as they are
    names = (job / "wheels" / "names.txt").read_text().split()
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"),
            *("--no-compile", "--target", str(site), "--find-links", str(job / "wheels"), *names),
        ],
        check=True,
    )
    path = os.pathsep.join(filter(None, [str(site.resolve()), os.environ.get("PYTHONPATH")]))
    model_dir = out / "model"
    command = [sys.executable, "-m", "training", "train", "--data-dir", str(job / PACK_NAME)]
    command += ["--out", str(model_dir), *extra]
    print(" ".join(command), flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            env={**os.environ, "KERAS_BACKEND": backend, "TRAIN_QUIET": "1", "PYTHONPATH": path},
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
    make.add_argument(
        "--python-version",
        default=JOB_PYTHON,
        help="the GPU machine's Python, for the wheels (default %(default)s)",
    )
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
        bundle(args.pack, args.out, args.python_version)
        return 0
    return run(args.job, args.out, args.backend, args.limit_s, extra)


if __name__ == "__main__":
    raise SystemExit(main())
