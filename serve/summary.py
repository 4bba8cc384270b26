"""The start page's store summary: what is stored, which search modes work, and example
queries drawn from the pages themselves (a new user has no search history to start from).
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from latestore.explain import reads_page_images

if TYPE_CHECKING:
    from latestore.store import Store

MAX_EXAMPLES = 4
SAMPLED_PAGES = 60
# A phrase worth searching for: a run of 3 to 6 words of letters, none very short.
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")
_COMMON_WORDS = (
    "the and for with that this from are was were have has not but all any can its "
    "our you your they their them than then there which what when who will would "
    "shall may page pages"
)
_COMMON = frozenset(_COMMON_WORDS.split())


def package_version() -> str:
    """The installed latestore's version (the OpenAPI schema's and the page's)."""
    try:
        return version("latestore")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def summary(store: Store) -> dict[str, Any]:
    stats = store.stats()
    precomputed = store.encoder_name == "precomputed"
    reads = "vectors"
    if not precomputed:
        try:
            reads = "images" if reads_page_images(store.encoder) else "text"
        except Exception:  # the model cannot load here: searching by text will say why
            reads = "text"
    needs_vectors = "send query vectors: this store holds caller-given vectors, no text encoder"
    modes = {
        "maxsim": {"available": not precomputed, "note": needs_vectors if precomputed else None},
        "lexical": {
            "available": True,
            "note": "finds the query's words in the page text; pages without text never match",
        },
        "hybrid": {"available": not precomputed, "note": needs_vectors if precomputed else None},
    }
    return {
        "pages": stats.pages,
        "documents": stats.documents,
        "pages_with_image": stats.pages_with_image,
        "encoder": stats.encoder,
        "reads": reads,
        "default_mode": store.config.search.mode,
        "modes": modes,
        "examples": examples(store),
        "version": package_version(),
    }


def examples(store: Store) -> list[str]:
    """A few queries from the stored pages: a phrase from a page's text, or the words of
    a document's name when pages have no text. Spread over documents."""
    found: list[str] = []
    seen_docs: set[str | None] = set()
    for page in store.pages(limit=SAMPLED_PAGES):
        if page.document_id in seen_docs and len(seen_docs) > 1:
            continue
        phrase = _phrase(page.text or "") or _name_words(page.document_id or "")
        if phrase and phrase not in found:
            found.append(phrase)
            seen_docs.add(page.document_id)
        if len(found) >= MAX_EXAMPLES:
            break
    return found


def _phrase(text: str) -> str | None:
    for line in text.splitlines():
        words = _WORD.findall(line)
        content = [w for w in words if w.lower() not in _COMMON]
        if len(content) >= 3:
            return " ".join(content[:5]).lower()
    return None


def _name_words(document_id: str) -> str | None:
    stem = PurePath(document_id.split("#")[0]).stem
    words = [w for w in re.split(r"[\W_]+", stem) if len(w) > 2 and not w.isdigit()]
    return " ".join(words[:5]).lower() if len(words) >= 2 else None
