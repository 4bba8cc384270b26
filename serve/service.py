"""What the routes call: the store's public API, plus explanations, images and uploads.

Everything here blocks (SQL, FAISS, models) and is run in the server's thread pools.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from latestore.errors import EncoderError, InvalidInputError, PageNotFoundError
from latestore.explain import (
    Explanation,
    Positions,
    QueryWord,
    Unknown,
    explain,
    image_positions,
    query_words,
    reads_page_images,
    text_positions,
)
from latestore.internal import MAX_K, checked_vectors, load_image, still_stored
from latestore.serve.schemas import QueryIn, as_vectors
from latestore.serve.settings import ServeSettings

if TYPE_CHECKING:
    from latestore.ingest import IngestReport
    from latestore.models import StoredPage
    from latestore.store import Store

K = TypeVar("K", bound=Hashable)
# A query's vectors, token labels and words (None where the tokenizer is not known).
Encoded = tuple[npt.NDArray[np.float32], list[str] | None, list[QueryWord] | None]
V = TypeVar("V")

THUMBNAIL_SIZES = (16, 2048)
# An image file recorded at ingest is read whole to serve it; bigger ones are refused.
MAX_IMAGE_FILE_BYTES = 64 << 20
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class PageHasNoImageError(PageNotFoundError):
    """The page exists but has no image to show."""


class LRU(Generic[K, V]):
    """A small thread-safe least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class Service:
    def __init__(self, store: Store, settings: ServeSettings) -> None:
        self.store = store
        self.settings = settings
        self._positions: LRU[tuple[int, str, int], Positions] = LRU(1024)
        self._thumbnails: LRU[tuple[int, int, str], bytes] = LRU(512)
        self._uploading = threading.Lock()

    # -- queries ---------------------------------------------------------------------
    def query_vectors(self, query: QueryIn) -> Encoded:
        """A query's vectors (encoded by the store's encoder, as Store.search does) and,
        for text, its tokens as labels and words."""
        if isinstance(query, str):
            vectors = self.store.encode_queries([query])[0]
            found = query_words(self.store.encoder, query, len(vectors))
            return (vectors, None, None) if found is None else (vectors, *found)
        vectors = as_vectors(query, "query vectors")
        return checked_vectors(vectors, self.store.dim, "float32", "query"), None, None

    def search(
        self,
        queries: Sequence[QueryIn],
        k: int,
        filter: dict[str, Any] | None,
        exhaustive: bool,
        with_explanations: bool,
        options: dict[str, Any] | None = None,
        offset: int = 0,
    ) -> list[list[tuple[Any, Explanation | None]]]:
        """Hits ``offset + 1`` to ``offset + k`` of each query, in any mode; ``options``
        are Store.search_many's keyword arguments (mode, phrase, lexical_text)."""
        if len(queries) > self.settings.max_queries:
            raise InvalidInputError(
                f"{len(queries)} queries in one request; the limit is {self.settings.max_queries}"
            )
        options = dict(options or {})
        if offset and isinstance(k, int) and k + offset > MAX_K:
            raise InvalidInputError(
                f"offset + k must be at most {MAX_K} (the deepest ranking), got {offset + k}"
            )
        # A later page is the tail of a deeper search: the store ranks offset + k hits
        # (and checks k itself, so a bad k is its error, not ours).
        depth = k + offset if isinstance(k, int) and not isinstance(k, bool) and k > 0 else k
        if not with_explanations:
            asked = [q if isinstance(q, str) else as_vectors(q, "query vectors") for q in queries]
            found = self.store.search_many(
                asked, k=depth, filter=filter, exhaustive=exhaustive, **options
            )
            return [[(hit, None) for hit in hits[offset:]] for hits in found]
        # Explained: encode once, for ranking and explaining. Vectors have no words, so a
        # text query's own words go along for the lexical side (lexical and hybrid modes).
        try:
            encoded = [self.query_vectors(q) for q in queries]
        except EncoderError:
            if options.get("mode") != "lexical":
                raise
            # Words alone rank a lexical search: a store without a text encoder still
            # answers it, unexplained.
            return self.search(queries, k, filter, exhaustive, False, options, offset)
        if options.get("lexical_text") is None:
            options["lexical_text"] = [q if isinstance(q, str) else None for q in queries]
        results = self.store.search_many(
            [v for v, _, _ in encoded], k=depth, filter=filter, exhaustive=exhaustive, **options
        )
        out: list[list[tuple[Any, Explanation | None]]] = []
        for (vectors, labels, words), found_hits in zip(encoded, results, strict=True):
            hits = found_hits[offset:]
            # A page deleted between ranking and now is simply not explained. Pages and
            # their vectors: one read each for all hits.
            ids = [h.page_id for h in hits]
            pages = still_stored(self.store.get_many, ids)
            stored = still_stored(self.store.page_vectors_many, list(pages))
            windows = self.store.scoring_windows(list(pages))
            explained: list[tuple[Any, Explanation | None]] = []
            for hit in hits:
                page, page_vectors = pages.get(hit.page_id), stored.get(hit.page_id)
                why = None
                if page is not None and page_vectors is not None:
                    why = self._explain(
                        page,
                        (vectors, labels, words),
                        page_vectors,
                        windows=windows.get(hit.page_id),
                    )
                explained.append((hit, why))
            out.append(explained)
        return out

    def explain(self, query: QueryIn, page_id: int, word: int | None = None) -> Explanation:
        page = self.store.get(page_id)
        windows = self.store.scoring_windows([page_id]).get(page_id)
        return self._explain(page, self.query_vectors(query), word=word, windows=windows)

    def _explain(
        self,
        page: StoredPage,
        encoded: Encoded,
        page_vectors: npt.NDArray[np.float32] | None = None,
        word: int | None = None,
        windows: list[int] | None = None,
    ) -> Explanation:
        query, labels, words = encoded
        if page_vectors is None:
            page_vectors = self.store.page_vectors(page.page_id)
        if query.shape[1] != page_vectors.shape[1]:
            from latestore.errors import DimensionMismatchError

            raise DimensionMismatchError(
                f"query vectors have dim {query.shape[1]}, the store's is {page_vectors.shape[1]}"
            )
        positions = self.positions(page, len(page_vectors))
        return explain(
            page.page_id, query, page_vectors, positions, labels,
            words=words, text=page.text, word=word, windows=windows,
        )  # fmt: skip

    def positions(self, page: StoredPage, n_stored: int) -> Positions:
        key = (page.page_id, page.content_hash, n_stored)
        cached = self._positions.get(key)
        if cached is not None:
            return cached
        positions = self._derive_positions(page, n_stored)
        self._positions.put(key, positions)
        return positions

    def _derive_positions(self, page: StoredPage, n_stored: int) -> Positions:
        name = self.store.encoder_name
        if name == "precomputed" or getattr(self.store.encoder, "name", "") == "precomputed":
            return Unknown("the store holds caller-given vectors: no tokenizer to place them")
        try:
            encoder = self.store.encoder
        except Exception as exc:  # the model cannot be loaded: explain without positions
            return Unknown(f"the store's encoder cannot be loaded: {exc}")
        if page.has_image and reads_page_images(encoder):
            image = load_image(self.image_bytes(page.page_id))
            return image_positions(encoder, image, n_stored)
        if page.text:
            return text_positions(encoder, page.text, n_stored)
        return Unknown("the page has neither text nor an image the encoder reads")

    # -- images ----------------------------------------------------------------------
    def image_bytes(self, page_id: int) -> bytes:
        """The page's image: stored bytes, or the file recorded for it at ingest.

        Only a page id reaches here; the path comes from the store, never the request.
        """
        data = self.store.image(page_id)
        if data is not None:
            return data
        page = self.store.get(page_id)
        if page.image_path is None:
            raise PageHasNoImageError(f"page {page_id} has no image")
        path = Path(page.image_path)
        try:
            if path.stat().st_size > MAX_IMAGE_FILE_BYTES:
                raise PageHasNoImageError(f"page {page_id}'s image file is too large to serve")
            return path.read_bytes()
        except OSError as exc:
            raise PageHasNoImageError(f"page {page_id}'s image file is unavailable") from exc

    def thumbnail(self, page_id: int, size: int) -> bytes:
        low, high = THUMBNAIL_SIZES
        if not low <= size <= high:
            raise InvalidInputError(f"size must be between {low} and {high} pixels, got {size}")
        data = self.image_bytes(page_id)
        key = (page_id, size, hashlib.blake2b(data, digest_size=16).hexdigest())
        cached = self._thumbnails.get(key)
        if cached is not None:
            return cached
        image = load_image(data)
        image.thumbnail((size, size))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=85)
        thumbnail = out.getvalue()
        self._thumbnails.put(key, thumbnail)
        return thumbnail

    # -- uploads ---------------------------------------------------------------------
    def ingest_uploads(
        self, files: Sequence[tuple[str, bytes | BinaryIO]], options: Any
    ) -> IngestReport:
        """Ingest uploaded files with the CLI's ingestion code.

        Each file is written under a server-owned folder named by its content's digest,
        with a sanitised name: the same bytes always make the same document id, so
        uploading a file again adds nothing. Pages are named relative to the call's
        staging folder (``<digest>/<name>``): where the server keeps uploads is not the
        client's business. The copies are removed afterwards; pages keep their rendered
        images.
        UploadRefusedError when files were sent and none could be read.
        """
        root = Path(self.settings.upload_dir or Path(tempfile.gettempdir()) / "latestore-uploads")
        root.mkdir(parents=True, exist_ok=True)
        # Each call stages its files in a folder of its own: two servers on one machine
        # (or two calls) uploading the same bytes never remove each other's copy. One
        # call at a time: ingestion is bound by encoding, which one call already fills.
        with self._uploading:
            staging = Path(tempfile.mkdtemp(dir=root, prefix="upload-"))
            try:
                report = self._ingest_files(staging, files, replace(options, relative_to=staging))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        read = report.files_ingested + report.files_unchanged + report.files_skipped
        if report.failed and not read:
            reasons = "; ".join(f"{f.path}: {f.reason}" for f in report.failed[:10])
            raise UploadRefusedError(f"no uploaded file could be read: {reasons}"[:2000])
        return report

    def _ingest_files(
        self, root: Path, files: Sequence[tuple[str, bytes | BinaryIO]], options: Any
    ) -> IngestReport:
        from latestore.ingest import Ingestor

        paths: list[Path] = []
        for name, data in files:
            # Copied in blocks while hashing: an upload is never held whole in memory.
            handle, name_on_disk = tempfile.mkstemp(dir=root, prefix=".incoming-")
            incoming = Path(name_on_disk)
            with open(handle, "wb") as out:
                digest = _copy_hashing(data, out)
            folder = root / digest[:24]
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / safe_file_name(name)
            incoming.replace(path)
            paths.append(path)
        return Ingestor(self.store, options).run(paths)


class UploadRefusedError(InvalidInputError):
    """Every uploaded file was unreadable (their reasons are in the message)."""


def _copy_hashing(source: bytes | BinaryIO, out: BinaryIO) -> str:
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        digest.update(source)
        out.write(source)
        return digest.hexdigest()
    source.seek(0)
    while block := source.read(1 << 20):
        digest.update(block)
        out.write(block)
    return digest.hexdigest()


def safe_file_name(name: str) -> str:
    """A file name with no directory part and only plain characters, extension kept."""
    base = Path(name.replace("\\", "/")).name
    cleaned = _SAFE_NAME.sub("_", base).strip("._") or "upload"
    return cleaned[-120:]
