"""Pointers from code, deploy files and tests into the documentation lead somewhere.

One citation form: the document's path from the repository root, and the section as its GitHub
heading anchor, e.g. `docs/security.md#cpu-and-memory-per-image` or `README.md#configuration`.
Every such pointer in a tracked (or new, unignored) file that is not Markdown names a document
that exists and, with an anchor, one of its headings. Outside the tests, a bare "README" (the
README's X, README security table) is refused: it cannot be checked, and it went stale when the
README was split into docs/. Links inside the Markdown files are checked by test_readme.py; here,
every document's paragraphs end a sentence (the split once cut one off mid-sentence).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bench.harness.server_process import REPO_ROOT

from .test_readme import FENCE, LINKED_DOCUMENTS, anchors

# Files that may hold pointers: source, deploy and build files (not Markdown, not binaries).
POINTING_SUFFIXES = {".py", ".yaml", ".yml", ".json", ".toml", ".sh", ".cfg", ".txt", ".ini"}
POINTING_NAMES = {"Dockerfile", "Makefile", "run"}
# A Markdown path from the repository root, optionally with a heading anchor.
POINTER = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)(?:#([\w-]+))?")
BARE_README = re.compile(r"\bREADME\b(?!\.md)")
# Tests talk about the README as a subject (test_readme.py is its test); the pointer form is still
# checked there.
BARE_README_ALLOWED_UNDER = ("tests/",)


def pointing_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    files = [REPO_ROOT / name for name in listed]
    return [
        path
        for path in files
        if path.is_file() and (path.suffix in POINTING_SUFFIXES or path.name in POINTING_NAMES)
    ]


def pointers(text: str) -> list[tuple[str, str]]:
    """The pointers in a line; a string literal that is just a file name (code building a
    path, `REPO_ROOT / "docs" / "monitoring.md"`) is not one."""
    return [
        (match.group(1), match.group(2) or "")
        for match in POINTER.finditer(text)
        if not re.fullmatch(r"(['\"]).+\1", text[max(match.start() - 1, 0) : match.end() + 1])
    ]


def test_the_pointer_pattern_reads_the_citation_form():
    text = (
        "see docs/security.md#cpu-and-memory-per-image, README.md and `bench/README.md#load-tests`."
    )
    assert pointers(text) == [
        ("docs/security.md", "cpu-and-memory-per-image"),
        ("README.md", ""),
        ("bench/README.md", "load-tests"),
    ]
    assert pointers('REPO_ROOT / "docs" / "monitoring.md"') == []
    assert BARE_README.search("see the README's Performance section")
    assert not BARE_README.search("README.md#configuration, READMEs skipped")


def test_the_scan_covers_code_deploy_and_build_files():
    names = {path.relative_to(REPO_ROOT).as_posix() for path in pointing_files()}
    assert {"Dockerfile", "Makefile", "deploy/kserve/inferenceservice.yaml"} <= names
    assert "model_server/logo_detection/settings.py" in names


def test_every_pointer_names_an_existing_document_and_section():
    problems = []
    for path in pointing_files():
        name = path.relative_to(REPO_ROOT).as_posix()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for document, anchor in pointers(line):
                target = REPO_ROOT / document
                if not target.is_file():
                    problems.append(f"{name}:{number}: {document} does not exist")
                elif anchor and anchor not in anchors(target):
                    problems.append(f"{name}:{number}: {document} has no heading #{anchor}")
    assert not problems, "\n".join(problems)


def test_code_and_deploy_files_cite_documents_by_path():
    problems = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in pointing_files()
        if not path.relative_to(REPO_ROOT).as_posix().startswith(BARE_README_ALLOWED_UNDER)
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if BARE_README.search(line)
    ]
    assert not problems, (
        "name the document and section as a path, e.g. docs/security.md#egress-proxy:\n"
        + "\n".join(problems)
    )


# --- documents read to the end ---------------------------------------------------------------


def unfinished_paragraphs(text: str) -> list[str]:
    """Prose paragraphs (not headings, tables, lists or code) that do not end a sentence."""
    unfinished = []
    for paragraph in re.split(r"\n\s*\n", FENCE.sub("\n", text)):
        paragraph = paragraph.strip()
        if not paragraph or paragraph[0] in "#|-<>" or re.match(r"\d+\. |\*[^*]", paragraph):
            continue
        if not re.search(r"[.:!?)`'\"]$", paragraph):
            unfinished.append(paragraph[-80:])
    return unfinished


def test_a_paragraph_cut_mid_sentence_is_found():
    assert unfinished_paragraphs("# T\n\nDone.\n\n**Measured**: lengths, a hang-up, HTML,\n") == [
        "**Measured**: lengths, a hang-up, HTML,"
    ]
    assert unfinished_paragraphs("- a list item\n\n| a | table |\n\n```sh\nmake\n```\n") == []


@pytest.mark.parametrize(
    "document", LINKED_DOCUMENTS, ids=lambda path: str(path.relative_to(REPO_ROOT))
)
def test_no_document_stops_mid_sentence(document):
    assert not unfinished_paragraphs(document.read_text()), (
        f"{document.relative_to(REPO_ROOT)}: paragraphs that stop mid-sentence"
    )
