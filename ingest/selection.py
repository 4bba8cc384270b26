"""Which files an ingest reads: ``--include``/``--exclude`` globs, and files that look
like a project's own files (a README, a licence, the queries beside a corpus) rather
than documents, so the summary and ``--dry-run`` can point them out.

Patterns are shell globs (:mod:`fnmatch`), matched against a file's name and against
its path relative to the folder it was found in; ``*`` also matches ``/``, so
``drafts/*`` covers every file under ``drafts/``.

Examples
--------
>>> from pathlib import Path
>>> selected(Path("docs/a.md"), Path("docs/a.md"), include=("*.md",), exclude=())
True
>>> selected(Path("docs/README.md"), Path("README.md"), include=(), exclude=("README*",))
False
>>> project_file_reason(Path("/data/LICENSE.txt"), "text")
'a licence file'
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

# Stems (case-insensitive) of files a repository or data folder carries about itself.
_PROJECT_STEMS = {
    "readme": "a README",
    "license": "a licence file",
    "licence": "a licence file",
    "copying": "a licence file",
    "notice": "a licence notice",
    "changelog": "a changelog",
    "changes": "a changelog",
    "history": "a changelog",
    "contributing": "contribution notes",
    "authors": "an authors list",
    "code_of_conduct": "a code of conduct",
    "security": "a security policy",
}
# Files a BEIR-style data folder keeps beside its corpus: not documents to search.
_BESIDE_CORPUS = ("corpus.jsonl", "qrels.tsv", "qrels")


def _matches(path: Path, relative: Path, patterns: tuple[str, ...]) -> bool:
    names = (path.name, relative.as_posix())
    return any(fnmatch(name, pattern) for pattern in patterns for name in names)


def selected(
    path: Path, relative: Path, *, include: tuple[str, ...], exclude: tuple[str, ...]
) -> bool:
    """Is a file found in a folder taken: matched by an ``include`` (when any is given)
    and by no ``exclude``?"""
    if include and not _matches(path, relative, include):
        return False
    return not _matches(path, relative, exclude)


def project_file_reason(path: Path, kind: str | None) -> str | None:
    """Why ``path``, read as ``kind``, looks like a project's own file rather than a
    document, or None. Only text and JSONL can be: a PDF or an image named README is a
    document."""
    if kind not in ("text", "jsonl"):
        return None
    stem = path.name.split(".", 1)[0].lower()
    if stem in _PROJECT_STEMS:
        return _PROJECT_STEMS[stem]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        if stem.startswith(("queries", "qrels")):
            return "a queries file"
        folder = path.parent
        if path.name != "corpus.jsonl" and any((folder / name).exists() for name in _BESIDE_CORPUS):
            return "a JSONL file beside a corpus (corpus.jsonl or qrels)"
    return None


def exclude_hint(paths: list[str]) -> str:
    """The ``--exclude`` flags that leave ``paths`` out of the next run."""
    names = sorted({Path(p).name for p in paths})
    return " ".join(f"--exclude {name!r}" if " " in name else f"--exclude {name}" for name in names)
