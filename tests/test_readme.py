"""Every command the documentation shows runs, and the README stays an accurate entry point.

The fenced bash blocks of README.md, docs/*.md and bench/README.md are split into commands. Each
command is either run for real (curl examples against a real server, shell set-up lines, `make`
help) or matched by SKIPPED, which says why it is not run here and which test covers it instead.
A new command that is neither fails `test_every_readme_command_is_run_or_skipped_with_a_reason`.
The README's configuration table lists exactly the settings the server reads, the README stays
short, and every relative link in the documentation points at a file (and heading) that exists.

Rewrites, so the examples run beside other tests: `localhost:8080` -> the test server's port;
a port an example binds (`http.server 8000`) -> a free port; `VARS=... make run` -> the same
server started by ServerProcess with those settings. Commands run in a scratch directory laid
out like the checkout (`../shared/samples` resolves), so nothing is written into the repo.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.harness.server_process import REPO_ROOT, ServerProcess, free_port
from model_server.logo_detection.settings import Settings

from .conftest import SAMPLES_DIR

README = REPO_ROOT / "README.md"
# the Markdown files whose bash blocks are run or skipped with a reason
DOCUMENTS = [README, *sorted((REPO_ROOT / "docs").glob("*.md")), REPO_ROOT / "bench" / "README.md"]
# the documents whose links must lead somewhere: those above, the training how-to, the model card
TRAINING_README = REPO_ROOT / "training" / "README.md"
LINKED_DOCUMENTS = [*DOCUMENTS, TRAINING_README, REPO_ROOT / "models" / "MODEL_CARD.md"]
README_MAX_LINES = 250
# the training how-to; its experiments live in a dated docs/experiments-*.md page
TRAINING_README_MAX_LINES = 150

# command prefix -> why it is not run by this test (and what covers it instead)
SKIPPED = {
    "make run": "the server, in the foreground; in a curl example ServerProcess starts it with "
    "the same settings instead",
    "make test": "is this test suite",
    "make test-fast": "a subset of this test suite",
    "make bench": "minutes of load on purpose; the benchmark's own command",
    "make bench-compare": "minutes of load on two servers on purpose; the benchmark's own command",
    ".venv/bin/python -m bench.container": "builds and runs Docker images for minutes; "
    "test_container runs the image the same way",
    ".venv/bin/locust": "a load test against a running server, for as long as it is left running",
    "make lint": "ruff over the whole tree and mypy on the server; test_lint runs both",
    "make download-model": "needs internet; test_make_download_model runs it on a local URL",
    "make image": "builds the image for minutes; test_container builds it the same way "
    "(deploy/container.sh build)",
    "make export": "converts a model and checks it against TensorFlow; test_export runs the export",
    "make clean": "deletes .venv; test_make_clean runs it in a scratch copy",
    "make prepare-data": "renders ~17.3k files for ~10 min; test_training runs its steps on a "
    "tiny generated set",
    "make train": "an hour of training; test_training trains one short epoch the same way",
    "make evaluate": "needs a trained run; test_training evaluates its tiny model",
    "make lso": "trains for tens of minutes; test_training runs lso on a tiny generated set",
    "make distill": "fine-tunes the teacher and trains the student for hours; "
    "test_distillation runs distill on a tiny generated set",
    "make distill-lso": "the same with sources held out; test_distillation runs distill",
    "make ship": "replaces the committed default model; test_distillation converts a student "
    "the same way (keras_export.kerascv_form) and test_export checks the committed export",
    "python -m training distill": "trains for tens of minutes; test_distillation runs distill, "
    "and a student continued with --init-student, on a tiny generated set",
    "python -m training evaluate": "needs a trained run; test_training evaluates its tiny model",
    "python -m training classify": "test_training runs classify with a grid",
    "make install-gpu": "downloads TensorFlow's CUDA build; test_training_tools checks its pins",
    ".venv/bin/python -m training classify": "test_training runs classify with a grid",
    "docker": "test_container runs the image the same way (read-only, non-root, /mnt/models)",
    "kubectl": "needs a cluster; test_packaging validates the InferenceService",
}


@dataclass
class Command:
    text: str
    env: dict[str, str]
    words: list[str]
    background: bool

    @property
    def program(self) -> str:
        return " ".join(self.words[:2]) if self.words[:1] == ["make"] else self.words[0]

    def skip_reason(self) -> str | None:
        joined = " ".join(self.words)
        for prefix, reason in SKIPPED.items():
            if joined == prefix or joined.startswith(prefix + " "):
                return reason
        return None


@dataclass
class Block:
    """A fenced bash block and the JSON output block the document shows after it, if any."""

    commands: list[Command]
    shown_output: object | None = None
    heading: str = ""
    source: str = "README.md"

    @property
    def name(self) -> str:
        return f"{self.source}: {self.heading}"


def split_commands(script: str) -> Iterator[Command]:
    """Shell lines -> commands: backslash continuations and multi-line quotes joined."""
    pending = ""
    for line in script.splitlines():
        pending += line + "\n"
        if line.endswith("\\"):
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        text, pending = pending.strip(), ""
        if not words:
            continue
        background = words[-1] == "&"
        words = words[:-1] if background else words
        env = {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if background:
            text = text.rstrip().removesuffix("&").rstrip()
        yield Command(text, env, words, background)
    assert not pending.strip(), f"unterminated command: {pending!r}"


FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def document_blocks(document: Path = README) -> list[Block]:
    blocks: list[Block] = []
    heading = ""
    source = str(document.relative_to(REPO_ROOT))
    text = document.read_text()
    position = 0
    for match in FENCE.finditer(text):
        between = text[position : match.start()]
        headings = re.findall(r"^#+ (.+)$", between, re.M)
        heading = headings[-1] if headings else heading
        language, body = match.group(1), match.group(2)
        if language in ("bash", "sh", "shell", "console"):
            blocks.append(Block(list(split_commands(body)), heading=heading, source=source))
        elif language == "json" and blocks and not headings and blocks[-1].shown_output is None:
            with contextlib.suppress(json.JSONDecodeError):  # abridged output: not compared
                blocks[-1].shown_output = json.loads(body)
        position = match.end()
    return blocks


def all_blocks() -> list[Block]:
    return [block for document in DOCUMENTS for block in document_blocks(document)]


def test_readme_has_commands_to_check():
    commands = [command for block in document_blocks() for command in block.commands]
    assert any(command.program == "curl" for command in commands), "no curl example found"
    assert any(command.program == "make run" for command in commands)


def test_every_readme_command_is_run_or_skipped_with_a_reason():
    assert {block.source for block in all_blocks()} >= {"README.md", "bench/README.md"}
    for block in all_blocks():
        run_by_curl_test = any(command.program == "curl" for command in block.commands)
        for command in block.commands:
            run_here = run_by_curl_test or command.words == ["make"]  # test_make_alone_...
            assert run_here or command.skip_reason(), (
                f"command {command.text!r} ({block.name}) is neither run by "
                "tests/test_readme.py nor in its SKIPPED list with a reason"
            )


# --- running the blocks ---------------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path) -> Path:
    """A working directory laid out like the checkout: ../shared/samples resolves."""
    (tmp_path / "shared").symlink_to(SAMPLES_DIR.parent, target_is_directory=True)
    work = tmp_path / "logo-detection"
    work.mkdir()
    return work


def wait_for_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {timeout_s} s")


def run_block(block: Block, cwd: Path, default_server: ServerProcess) -> list[tuple[dict, dict]]:
    """Run a block's commands; returns (request body, JSON answer) for each curl."""
    ports = {
        word: str(free_port())
        for command in block.commands
        if command.words[:3] == ["python3", "-m", "http.server"]
        for word in command.words[3:4]
    }

    def rewrite(text: str) -> str:
        for old, new in ports.items():
            text = re.sub(rf"(?<![\d.]){old}(?!\d)", new, text)
        return text

    background: list[subprocess.Popen] = []
    own_server: ServerProcess | None = None
    server = default_server
    outputs: list[tuple[dict, dict]] = []
    try:
        for command in block.commands:
            if command.program == "make run":
                env = {name: rewrite(value) for name, value in command.env.items()}
                own_server = server = ServerProcess(**env).start() if env else default_server
                continue
            if command.skip_reason():
                continue
            script = rewrite(command.text).replace(
                "localhost:8080", f"127.0.0.1:{server.http_port}"
            )
            if command.background:
                background.append(
                    subprocess.Popen(["bash", "-c", script], cwd=cwd, start_new_session=True)
                )
                for port in ports.values():
                    wait_for_port(int(port))
                continue
            done = subprocess.run(
                ["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, f"{command.text!r} failed:\n{done.stderr}"
            if command.program == "curl":
                outputs.append((curl_body(command.words, cwd), json.loads(done.stdout)))
    finally:
        for process in background:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
        if own_server is not None:
            own_server.stop()
    return outputs


def curl_body(words: list[str], cwd: Path) -> dict:
    """The JSON a curl command posts: `-d '{...}'` or `-d @file`."""
    data = words[words.index("-d") + 1]
    return json.loads((cwd / data[1:]).read_text() if data.startswith("@") else data)


def shape(response: dict) -> list[tuple]:
    """What the README's example output must agree with: names, fields, error types."""
    return [
        (item["filename"], sorted(item), item.get("error", {}).get("type"))
        for item in response["predictions"]
    ]


def curl_blocks() -> list[Block]:
    return [b for b in all_blocks() if any(c.program == "curl" for c in b.commands)]


@pytest.mark.parametrize("block", curl_blocks(), ids=lambda block: block.name)
def test_readme_curl_examples_answer_as_shown(block, server, scratch):
    outputs = run_block(block, scratch, server)
    assert outputs, "no curl output"
    for request, output in outputs:
        assert set(output) <= {"predictions", "model_version", "latency"}, output
        assert ("latency" in output) == bool(request.get("debug"))
        assert output["model_version"], output
        names = [item["filename"] for item in request["instances"]]
        assert [item["filename"] for item in output["predictions"]] == names
        for item in output["predictions"]:
            assert item["target"] == "logo"
            if "error" not in item:
                assert abs(item["prediction"] + item["out_of_domain"] - 1) < 2e-4
    if block.shown_output is not None:
        shown = block.shown_output
        _, last = outputs[-1]
        assert shape(last) == shape(shown), f"{block.source} shows a different answer"
        assert sorted(last) == sorted(shown)
        # the default model's version, as it answers it
        assert last["model_version"] == shown["model_version"], f"{block.source}: model_version"


# --- make targets the README names --------------------------------------------------------


def test_make_alone_lists_every_target():
    done = make()
    assert done.returncode == 0, done.stderr
    phony = re.search(r"^\.PHONY: (.+)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    for target in phony.group(1).split():
        assert f"make {target} " in done.stdout, f"`make` does not list {target}"


def test_make_download_model_saves_the_file_atomically(tmp_path, image_server):
    payload = b"not really a model, but bytes to download"
    url = image_server.add_file("readme/logo_max_all.keras", payload, "application/octet-stream")
    target = tmp_path / "production"
    done = make("download-model", f"PRODUCTION_MODEL_URL={url}", f"PRODUCTION_MODEL_DIR={target}")
    assert done.returncode == 0, done.stderr
    assert (target / "logo_max_all.keras").read_bytes() == payload
    assert f"MODEL_PATH={target}/logo_max_all.keras make run" in done.stdout
    missing, scratch = image_server.url("readme/nothing-here.keras"), tmp_path / "failed"
    failed = make(
        "download-model", f"PRODUCTION_MODEL_URL={missing}", f"PRODUCTION_MODEL_DIR={scratch}"
    )
    assert failed.returncode != 0
    assert "could not download" in failed.stderr
    assert list(scratch.iterdir()) == [], "a partial download was left behind"


def make(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["make", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_make_clean_removes_build_output_but_not_models(tmp_path):
    shutil.copy2(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    leftovers = [".venv/bin/python", ".venv-serving/bin/python", "build/x", "dist/x.whl"]
    leftovers.append("a.egg-info/PKG-INFO")
    leftovers.append("pkg/__pycache__/m.pyc")
    kept = ["models/production/logo_max_all.keras", "pkg/m.py"]
    for path in leftovers + kept:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    done = make("clean", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for path in leftovers:
        assert not (tmp_path / path).exists(), f"make clean left {path}"
    for path in kept:
        assert (tmp_path / path).exists(), f"make clean removed {path}"


def test_make_run_installs_the_serving_lock_alone_unless_a_keras_file_is_served(tmp_path):
    """A fresh checkout's `make run` installs what production runs (no TensorFlow) and serves
    the committed ONNX export; a .keras MODEL_PATH is converted at start: the development lock."""
    for name in ("Makefile", "pyproject.toml", "requirements-serving.txt", "requirements-dev.txt"):
        shutil.copy2(REPO_ROOT / name, tmp_path / name)
    fresh = make("-n", "run", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert "--require-hashes -r requirements-serving.txt" in fresh.stdout
    assert "requirements-dev.txt" not in fresh.stdout
    assert ".venv-serving/bin/python -m model_server.logo_detection" in fresh.stdout
    keras = make("-n", "run", "MODEL_PATH=models/production/logo_max_all.keras", cwd=tmp_path)
    assert keras.returncode == 0, keras.stderr
    assert "-r requirements-dev.txt" in keras.stdout
    assert "requirements-serving.txt" not in keras.stdout
    assert ".venv/bin/python -m model_server.logo_detection" in keras.stdout


def test_make_image_builds_the_dockerfile():
    done = make("-n", "image")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^IMAGE=\S+ deploy/container\.sh build$", done.stdout, re.M), done.stdout
    script = (REPO_ROOT / "deploy" / "container.sh").read_text()
    assert '-t "$tag" "$REPO_ROOT"' in script, "the image is not built from the checkout"


# --- the README as an entry point, and links that lead somewhere ---------------------------


def test_the_readme_stays_an_entry_point():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; keep it at most {README_MAX_LINES} and move detail to docs/"
    )


def test_the_training_readme_stays_a_how_to():
    lines = len(TRAINING_README.read_text().splitlines())
    assert lines <= TRAINING_README_MAX_LINES, (
        f"training/README.md has {lines} lines; keep it at most {TRAINING_README_MAX_LINES} and "
        "move measured runs to a dated docs/experiments-*.md page"
    )
    assert re.search(r"\]\(\.\./docs/experiments-[\d-]+\.md", TRAINING_README.read_text()), (
        "training/README.md does not link its experiments page"
    )


def section(text: str, heading: str) -> str:
    """The text under a `## heading`, up to the next heading of that level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def environment_variable(name: str, field) -> str:
    """The variable pydantic-settings reads for a field: its alias, else prefix + name."""
    alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
    if alias:
        return alias.upper()
    return (Settings.model_config.get("env_prefix", "") + name).upper()


def test_the_configuration_table_lists_exactly_the_settings_the_server_reads():
    table = section(README.read_text(), "Configuration")
    documented = re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", table, re.M)
    assert len(documented) == len(set(documented)), f"listed twice: {documented}"
    read = {environment_variable(name, field) for name, field in Settings.model_fields.items()}
    assert not read - set(documented), f"settings missing from the table: {read - set(documented)}"
    assert not set(documented) - read, f"not settings of the server: {set(documented) - read}"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def prose(text: str) -> str:
    """Markdown without its fenced blocks and inline code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(document: Path) -> set[str]:
    """The anchors of a document's headings, with GitHub's numbered suffix for a repeat."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#+ (.+)$", FENCE.sub("", document.read_text()), re.M):
        slug = github_anchor(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def test_heading_anchors_are_githubs():
    assert github_anchor("`make bench`, 2026-11-27") == "make-bench-2026-11-27"
    assert github_anchor("What makes a request fast") == "what-makes-a-request-fast"
    assert github_anchor("Logs and request_ids (v2)") == "logs-and-request_ids-v2"


@pytest.mark.parametrize(
    "document", LINKED_DOCUMENTS, ids=lambda path: str(path.relative_to(REPO_ROOT))
)
def test_every_relative_link_points_at_an_existing_file(document):
    name = document.relative_to(REPO_ROOT)
    for target in LINK.findall(prose(document.read_text())):
        if SCHEME.match(target):
            continue
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        assert linked.exists(), f"{name}: {target} points at nothing"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{name}: {target}: no such heading"
