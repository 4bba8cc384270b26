"""Every Python block in README.md and docs/*.md runs as written.

The blocks of one file run in order in one namespace, in an empty temporary folder, as a
reader pasting them one after another would (a later block may use an earlier block's
``store``). A block that cannot run here (it needs a hub model, a GPU, a server or a
cluster) is marked on the line before its fence with ``<!-- no-test: why -->``; those
stay few, and each says why. New pages under docs/ are picked up without a change here.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\S*)\s*$")
_NO_TEST = re.compile(r"^<!--\s*no-test:\s*(.*?)\s*-->\s*$")
# The marked blocks are for what CI cannot run; past this many, the docs stop being
# checked in earnest.
MAX_UNTESTED = 12


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    code: str
    skip_reason: str | None


def python_blocks(page: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opened = _FENCE.match(lines[index])
        if opened is None:
            index += 1
            continue
        start, language = index, opened.group(1).lower()
        index += 1
        body: list[str] = []
        while index < len(lines) and not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence
        if language not in ("python", "py"):
            continue
        before = start - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marker = _NO_TEST.match(lines[before]) if before >= 0 else None
        reason = marker.group(1) if marker else None
        code = textwrap.dedent("\n".join(body))
        blocks.append(Block(page, start + 1, code, reason))
    return blocks


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def test_marked_blocks_are_few_and_say_why() -> None:
    marked = [b for page in PAGES for b in python_blocks(page) if b.skip_reason is not None]
    assert all(b.skip_reason for b in marked), [f"{_name(b.page)}:{b.line}" for b in marked]
    assert len(marked) <= MAX_UNTESTED, [f"{_name(b.page)}:{b.line}" for b in marked]


def test_the_parser_finds_blocks_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n<!-- no-test: needs a GPU -->\n\n```python\ny = 2\n```\n"
        "```bash\nls\n```\n"
    )
    found = python_blocks(page)
    assert [(b.line, b.code, b.skip_reason) for b in found] == [
        (2, "x = 1", None),
        (7, "y = 2", "needs a GPU"),
    ]


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [b for b in python_blocks(page) if b.skip_reason is None]
    if not blocks:
        pytest.skip(f"{_name(page)} has no Python block to run")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs_example__"}
    try:
        for block in blocks:
            compiled = compile(block.code, f"{_name(page)}:{block.line}", "exec")
            try:
                exec(compiled, namespace)
            except Exception as exc:
                pytest.fail(f"{_name(page)}, block at line {block.line}: {exc!r}")
    finally:
        # Close what the blocks opened, so the temporary folder can go.
        for value in namespace.values():
            close = getattr(value, "close", None)
            if callable(close) and type(value).__name__ in ("Store", "ShardedStore"):
                close()


_LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_links_to_other_pages_resolve(page: Path) -> None:
    """A page moved or renamed under docs/ leaves no link pointing at nothing."""
    text = page.read_text(encoding="utf-8")
    broken = [
        target
        for target in _LINK.findall(text)
        if "://" not in target and not (page.parent / target).is_file()
    ]
    assert not broken, f"{_name(page)} links to missing pages: {broken}"
