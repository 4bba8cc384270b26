"""Reading files into page drafts: PDFs (pypdfium2), images, text, markdown and JSONL.

A *draft* is everything about a page that is cheap to know (its number, id and text);
the expensive part, rendering a PDF page to PNG, is deferred to ``draft.materialise()``
so pages already in the store are never rendered again.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latestore.errors import InvalidInputError
from latestore.internal import MAX_IMAGE_PIXELS, UnreadableImageError, load_image

PDF_SUFFIXES = frozenset({".pdf"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})
TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
SUPPORTED_SUFFIXES = PDF_SUFFIXES | IMAGE_SUFFIXES | TEXT_SUFFIXES | JSONL_SUFFIXES

# Ids are stored in 512-character columns; longer paths fall back to a digest.
MAX_KEY_CHARS = 400
TEXT_KEYS = ("text", "contents", "content", "body")
ID_KEYS = ("id", "_id", "doc_id")


class SourceError(InvalidInputError):
    """A file that cannot be read as the kind of file its name says it is."""


def kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return "pdf"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    return None


def document_key(path: Path) -> str:
    """The document id of a file: its absolute path, or a digest of an over-long one."""
    text = path.as_posix()
    if len(text) <= MAX_KEY_CHARS:
        return text
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}/{path.name[-100:]}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class PageDraft:
    """A page before rendering: ``materialise()`` returns its image bytes (or None)."""

    page_number: int
    key: str  # unique within the file; the external id is "<document>#<key>"
    text: str | None
    render: Callable[[], bytes | None] = field(default=lambda: None, repr=False)
    extra_metadata: dict[str, Any] = field(default_factory=dict)
    has_image: bool = False

    def materialise(self) -> bytes | None:
        return self.render()


@dataclass
class OpenedFile:
    """One readable file: its bytes' sha256, its kind and its page drafts."""

    kind: str
    sha256: str
    drafts: list[PageDraft]
    details: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] = field(default=lambda: None, repr=False)


NOT_A_FILE = "not a regular file (a FIFO, socket or device): not read"


def open_source(path: Path, *, dpi: int, chunk_chars: int) -> OpenedFile:
    """Read ``path`` into drafts; raises SourceError with a human reason on bad input."""
    kind = kind_of(path)
    if kind is None:
        raise SourceError(f"unsupported file type {path.suffix or '(no extension)'!r}")
    if not path.is_file():
        # Reading a FIFO waits for a writer that may never come; a device may never end.
        raise SourceError(NOT_A_FILE)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read file: {exc.strerror or exc}") from exc
    if not data:
        raise SourceError("empty file")
    digest = sha256_hex(data)
    if kind == "pdf":
        return _open_pdf(data, digest, dpi)
    if kind == "image":
        return _open_image(path, data, digest)
    text = _decode_text(data, path)
    if kind == "jsonl":
        return OpenedFile("jsonl", digest, _jsonl_drafts(text))
    return OpenedFile("text", digest, _text_drafts(text, chunk_chars))


# -- PDF -----------------------------------------------------------------------------
_EMPTY_PAGE_TREE = re.compile(
    rb"/Type\s*/Pages\b[^>]*?/Count\s+0\b|/Count\s+0\b[^>]*?/Type\s*/Pages\b"
)


def _open_pdf(data: bytes, digest: str, dpi: int) -> OpenedFile:
    import pypdfium2 as pdfium

    if b"%PDF-" not in data[:1024]:
        raise SourceError(f"named .pdf but is not a PDF (starts with {data[:16]!r})")
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        message = str(exc)
        # PDFium refuses a well-formed document without pages and sets no error of its
        # own, so the code it reports is whatever an earlier document left (a password
        # error after an encrypted file): only a file with an /Encrypt entry is one.
        if "password" in message.lower() and b"/Encrypt" in data:
            raise SourceError("encrypted PDF: a password is required") from exc
        whole = b"%%EOF" in data[-1024:]
        if getattr(exc, "err_code", None) == 0 or (whole and _EMPTY_PAGE_TREE.search(data)):
            raise SourceError("PDF has no pages") from exc
        raise SourceError(f"corrupt or truncated PDF: {message}") from exc
    try:
        drafts = [_pdf_draft(document, i, dpi) for i in range(len(document))]
    except pdfium.PdfiumError as exc:
        document.close()
        raise SourceError(f"corrupt PDF page: {exc}") from exc
    if not drafts:
        document.close()
        raise SourceError("PDF has no pages")
    return OpenedFile("pdf", digest, drafts, {"dpi": dpi}, close=document.close)


def _pdf_draft(document: Any, index: int, dpi: int) -> PageDraft:
    page = document[index]
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_range()
    finally:
        textpage.close()
        page.close()
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip() or None

    def render() -> bytes | None:
        if dpi <= 0:
            return None
        pdf_page = document[index]
        try:
            width, height = pdf_page.get_size()
            scale = dpi / 72.0
            if width * height * scale * scale > MAX_IMAGE_PIXELS:
                # A huge page (a poster, a map) is rendered at the largest safe scale.
                scale = (MAX_IMAGE_PIXELS / (width * height)) ** 0.5
            image = pdf_page.render(scale=scale).to_pil()
        finally:
            pdf_page.close()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    return PageDraft(index + 1, f"page={index + 1}", text, render, has_image=dpi > 0)


# -- images --------------------------------------------------------------------------
IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def image_format(data: bytes) -> str | None:
    for magic, name in IMAGE_MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _open_image(path: Path, data: bytes, digest: str) -> OpenedFile:
    fmt = image_format(data)
    if fmt is None:
        looks = "text" if _looks_like_text(data) else "binary data"
        raise SourceError(
            f"named {path.suffix} but is not a PNG/JPEG/TIFF/WebP image "
            f"(content looks like {looks})"
        )
    if fmt == "TIFF":
        return OpenedFile("image", digest, _tiff_drafts(data), {"format": fmt})
    try:
        load_image(data)  # decode once now: a broken image is this file's error, not a batch's
    except UnreadableImageError as exc:
        raise SourceError(str(exc)) from exc
    return OpenedFile(
        "image",
        digest,
        [PageDraft(1, "page=1", None, lambda: data, has_image=True)],
        {"format": fmt},
    )


def _tiff_drafts(data: bytes) -> list[PageDraft]:
    # Multi-page TIFF is how scanners deliver documents: one page per frame, stored as PNG.
    from PIL import Image, ImageSequence

    pages: list[bytes] = []
    try:
        with Image.open(io.BytesIO(data)) as tiff:
            for frame in ImageSequence.Iterator(tiff):
                width, height = frame.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise SourceError(f"TIFF frame is {width}x{height} pixels; too large")
                buffer = io.BytesIO()
                frame.convert("RGB").save(buffer, format="PNG")
                pages.append(buffer.getvalue())
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise SourceError(f"unreadable TIFF: {exc}") from exc
    return [
        PageDraft(i + 1, f"page={i + 1}", None, _constant(png), has_image=True)
        for i, png in enumerate(pages)
    ]


def _constant(data: bytes) -> Callable[[], bytes | None]:
    return lambda: data


# -- text ----------------------------------------------------------------------------
def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a multi-byte character cut at the edge
    return True


def _decode_text(data: bytes, path: Path) -> str:
    if b"\x00" in data[:4096]:
        raise SourceError(f"named {path.suffix} but holds binary data")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    if not text.strip():
        raise SourceError("empty file (whitespace only)")
    return text


def chunk_text(text: str, chunk_chars: int) -> list[str]:
    """Split at form feeds, then pack paragraphs into chunks of at most ``chunk_chars``."""
    chunks: list[str] = []
    for sheet in text.replace("\r\n", "\n").split("\f"):
        current = ""
        for paragraph in re.split(r"\n\s*\n", sheet):
            paragraph = paragraph.strip()
            if not paragraph:
                continue
            pieces = _split_long(paragraph, chunk_chars)
            for piece in pieces:
                if current and len(current) + 2 + len(piece) > chunk_chars:
                    chunks.append(current)
                    current = ""
                current = f"{current}\n\n{piece}" if current else piece
        if current:
            chunks.append(current)
    return chunks


def _split_long(paragraph: str, limit: int) -> list[str]:
    if len(paragraph) <= limit:
        return [paragraph]
    out, current = [], ""
    for word in paragraph.split():
        while len(word) > limit:  # one unbroken run longer than a chunk
            if current:
                out.append(current)
                current = ""
            out.append(word[:limit])
            word = word[limit:]
        if current and len(current) + 1 + len(word) > limit:
            out.append(current)
            current = ""
        current = f"{current} {word}" if current else word
    if current:
        out.append(current)
    return out


def _text_drafts(text: str, chunk_chars: int) -> list[PageDraft]:
    return [
        PageDraft(i + 1, f"page={i + 1}", chunk)
        for i, chunk in enumerate(chunk_text(text, chunk_chars))
    ]


def _jsonl_drafts(text: str) -> list[PageDraft]:
    drafts: list[PageDraft] = []
    seen: set[str] = set()
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"line {line_no}: invalid JSON ({exc.msg})") from exc
        except RecursionError as exc:
            # json's decoder recurses once per nesting level: a line nested deeper than
            # the interpreter's stack allows is not a record this file can give.
            raise SourceError(f"line {line_no}: JSON nests too deeply to read") from exc
        if not isinstance(record, dict):
            raise SourceError(f"line {line_no}: expected a JSON object")
        body = next((record[k] for k in TEXT_KEYS if isinstance(record.get(k), str)), None)
        title = record.get("title") if isinstance(record.get("title"), str) else None
        joined = "\n".join(p.strip() for p in (title, body) if p and p.strip()) or None
        record_id = next((record[k] for k in ID_KEYS if record.get(k) not in (None, "")), None)
        key = f"id={record_id}" if record_id is not None else f"line={line_no}"
        if len(key) > 100:
            key = f"id-sha256={sha256_hex(key.encode())}"
        if key in seen:
            raise SourceError(f"line {line_no}: duplicate record id {record_id!r}")
        seen.add(key)
        extra = {
            k: v
            for k, v in record.items()
            if k not in TEXT_KEYS and k != "title" and isinstance(v, str | int | float | bool)
        }
        if isinstance(record.get("metadata"), dict):
            extra.update(record["metadata"])
        drafts.append(PageDraft(line_no, key, joined, extra_metadata=extra))
    if not drafts:
        raise SourceError("no JSON records")
    return drafts


def estimate_pages(path: Path, chunk_chars: int = 1500) -> int:
    """A cheap page count for progress totals (1 when the file cannot be opened).

    Text becomes pages of at most ``chunk_chars`` characters: the same bound as the
    real split, or a large ``--chunk-chars`` would make a one-page file look like
    thousands (and the ETA with it).
    """
    kind = kind_of(path)
    try:
        if kind == "pdf":
            import pypdfium2 as pdfium

            document = pdfium.PdfDocument(path)
            try:
                return max(1, len(document))
            finally:
                document.close()
        if kind == "jsonl":
            with path.open("rb") as handle:
                return max(1, sum(1 for line in handle if line.strip()))
        if kind == "text":
            return max(1, -(-path.stat().st_size // chunk_chars))
    except Exception:  # the real read reports the error; an estimate must not
        return 1
    return 1


def iter_files(root: Path, recursive: bool) -> Iterator[Path]:
    entries = root.rglob("*") if recursive else root.iterdir()
    for entry in sorted(entries):
        if any(part.startswith(".") for part in entry.relative_to(root).parts):
            continue  # hidden files and folders (.git, .DS_Store) are never pages
        if entry.is_file():
            yield entry
