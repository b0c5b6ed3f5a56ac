"""The server's command line: KServe's own flags, plus `--model_dir`, over the environment.

The parser is built on KServe's (`kserve.model_server.parser`, as KServe's own model servers
do), so every KServe flag means what it means there: `--http_port`, `--grpc_port`,
`--enable_grpc` and `--model_name` set the server's settings of the same name, `--workers`,
`--enable_docs_url`, `--access_log_format`, ... go to KServe unchanged. `--model_dir` is
KServe's name for the model location (MODEL_PATH). A flag beats the environment, which beats
the default; a flag nobody defines is an error (exit 2 with the usage), never silently ignored.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from typing import Any

from .settings import Settings

# flag destination -> Settings field; the other flags are KServe's alone
FLAG_SETTINGS = {
    "http_port": "http_port",
    "grpc_port": "grpc_port",
    "enable_grpc": "enable_grpc",
    "model_name": "model_name",
    "model_dir": "model_path",
}
_NOT_GIVEN = object()


def build_parser() -> argparse.ArgumentParser:
    from kserve.model_server import parser as kserve_parser

    # A copy, so that showing our defaults in --help leaves KServe's module state alone.
    kserve_flags = copy.deepcopy(kserve_parser)
    defaults = Settings.model_fields
    kserve_flags.set_defaults(
        **{flag: defaults[field].default for flag, field in FLAG_SETTINGS.items()},
        enable_latency_logging=False,  # one log line per request: the access log
    )
    parser = argparse.ArgumentParser(
        prog="python -m model_server.logo_detection",
        description="Serve the logo-detection model with KServe.",
        parents=[kserve_flags],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog=(
            "--http_port, --grpc_port, --enable_grpc, --model_name and --model_dir override the "
            "environment variables HTTP_PORT, GRPC_PORT, ENABLE_GRPC, MODEL_NAME and MODEL_PATH; "
            "every other setting is an environment variable (see README.md#configuration)."
        ),
    )
    parser.add_argument(
        "--model_dir",
        type=str,
        default=defaults["model_path"].default,
        help="The model: an exported .onnx file or a .keras file, or a directory holding one "
        "(KServe mounts /mnt/models; .onnx preferred). Same as MODEL_PATH.",
    )
    return parser


def parse_command_line(argv: Sequence[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    """(every flag's value, the settings given on the command line as Settings overrides).
    Exits 2 with the usage for an unknown flag or a bad value, as argparse does."""
    parser = build_parser()
    # Pre-set every destination to a marker: argparse only fills in defaults for absent ones,
    # so what still holds the marker afterwards was not given.
    unset = argparse.Namespace(**dict.fromkeys(vars(parser.parse_args([])), _NOT_GIVEN))
    given = parser.parse_args(list(argv), namespace=unset)
    overrides = {
        field: getattr(given, flag)
        for flag, field in FLAG_SETTINGS.items()
        if getattr(given, flag) is not _NOT_GIVEN
    }
    values = parser.parse_args(list(argv))
    if values.workers != 1:
        parser.error(
            "--workers: this server runs one process, which already uses every CPU of its "
            "quota for decoding and inference; run more replicas to scale out"
        )
    return values, overrides
