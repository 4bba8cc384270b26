"""The stages that run on the Ray cluster: probing the encoder, planning and rendering
a file, and encoding pages on an actor pool. They hold no driver state, so Ray can
run, retry and restart them anywhere.

Rows between stages are plain columns (``kind``, ``path``, ``info`` as JSON, ``image``
as PNG bytes, ``vectors`` as float bytes) so they travel through Arrow as they are.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from latestore.distributed.replay_encoder import EncoderIdentity, content_key
from latestore.encoders import Encoder, PageContent, superseded_by
from latestore.ingest.pipeline import (
    INGEST_VERSION,
    PAGE_ERRORS,
    IngestOptions,
    probe_encoder,
    stored_pages_of,
)
from latestore.ingest.sources import SourceError, document_key, open_source
from latestore.internal import as_windowed
from latestore.models import Page

FILE, PAGE = "file", "page"


def load_encoder(url: str, spec: str | None, options: dict[str, Any]) -> Encoder:
    """The encoder the store at ``url`` is (or will be) written with, as Store.open picks it."""
    from latestore.internal import encoder_for, make_engine, migrate, new_store_encoder, stored_row

    engine = make_engine(url)
    try:
        migrate(engine)
        row = stored_row(engine)
    finally:
        engine.dispose()
    if row is None:
        return new_store_encoder(spec, options)
    return encoder_for(row, spec, options)


def identify_encoder(url: str, spec: str | None, options: dict[str, Any]) -> EncoderIdentity:
    """Load the encoder once (where the encode actors run) and describe it."""
    encoder = load_encoder(url, spec, options)
    abilities = probe_encoder(encoder)
    windowed = as_windowed(encoder)
    return EncoderIdentity(
        name=encoder.name,
        dim=encoder.dim,
        fingerprint=encoder.fingerprint,
        spec=getattr(encoder, "spec", None),
        batch_size=encoder.batch_size,
        windowing=None if windowed is None else windowed.windowing.as_options(),
        text_error=abilities.text_error,
        image_error=abilities.image_error,
        supersedes=superseded_by(encoder),
        revision_note=getattr(encoder, "revision_note", ""),
        build=getattr(encoder, "build", None),
    )


def ingest_key(options: IngestOptions, kind: str, sha256: str) -> str:
    """The digest of a file version and the options shaping its pages (as local ingest)."""
    shape: dict[str, Any] = {
        "v": INGEST_VERSION,
        "kind": kind,
        "file_sha256": sha256,
        "metadata": options.metadata,
    }
    if kind == "pdf":
        shape["dpi"] = options.dpi
    if kind == "text":
        shape["chunk_chars"] = options.chunk_chars
    blob = json.dumps(shape, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def skip_reason(
    identity: EncoderIdentity, text: str | None, has_image: bool, kind: str
) -> str | None:
    name = identity.name
    if not text and not has_image:
        return "blank page: no text and no image"
    if not text and identity.image_error:
        return f"no text on this page and encoder {name!r} cannot encode images alone"
    if not has_image and identity.text_error:
        if kind in ("text", "jsonl"):
            return f"{kind} files have no images, and encoder {name!r} cannot encode text alone"
        return f"no page image and encoder {name!r} cannot encode text alone"
    return None


def _row(kind: str, path: str, info: dict[str, Any], image: bytes = b"") -> dict[str, Any]:
    return {"kind": kind, "path": path, "info": json.dumps(info), "image": image}


class FileRenderer:
    """flat_map stage: one file in, its plan (a ``file`` row) and its pages out.

    Pages already stored from the same file version (same ``ingest_key``) are not
    rendered: that is what makes a re-run cheap and resumable.
    """

    def __init__(self, url: str, options: IngestOptions, identity: EncoderIdentity) -> None:
        self.url = url
        self.options = options
        self.identity = identity

    def __call__(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        path = Path(item["path"])
        options = self.options
        try:
            opened = open_source(path, dpi=options.dpi, chunk_chars=options.chunk_chars)
        except SourceError as exc:
            return [_row(FILE, str(path), {"status": "failed", "reason": str(exc)})]
        try:
            return self._plan(path, opened)
        finally:
            opened.close()

    def _plan(self, path: Path, opened: Any) -> list[dict[str, Any]]:
        options = self.options
        document = document_key(path)
        key = ingest_key(options, opened.kind, opened.sha256)
        present = _stored_pages_of(self.url, document)
        keep: set[str] = set()
        skipped: list[tuple[int, str]] = []
        unchanged = 0
        pages: list[dict[str, Any]] = []
        common = {
            "source_path": str(path),
            "file_name": path.name,
            "file_type": opened.kind,
            "file_sha256": opened.sha256,
            "page_count": len(opened.drafts),
            "ingest_key": key,
            **({"dpi": options.dpi} if opened.kind == "pdf" else {}),
        }
        failure = None
        for draft in opened.drafts:
            external_id = f"{document}#{draft.key}"
            reason = skip_reason(self.identity, draft.text, draft.has_image, opened.kind)
            if reason is not None:
                skipped.append((draft.page_number, reason))
                continue
            keep.add(external_id)
            stored = present.get(external_id)
            if stored is not None and stored[1].get("ingest_key") == key:
                unchanged += 1
                continue
            try:
                image = draft.materialise()
                content = Page(text=draft.text, image=image)
                metadata = {
                    **draft.extra_metadata,
                    **options.metadata,
                    **common,
                    "page_sha256": content.content_hash(),
                }
            except PAGE_ERRORS as exc:  # as local ingest: the file fails
                failure = f"page {draft.page_number}: {exc}"
                break
            info = {
                "external_id": external_id,
                "document_id": document,
                "page_number": draft.page_number,
                "text": draft.text,
                "metadata": metadata,
                "has_image": image is not None,
            }
            pages.append(_row(PAGE, str(path), info, image or b""))
        stale = [page_id for ext, (page_id, _) in present.items() if ext not in keep]
        plan = {
            "status": "failed" if failure else "planned",
            "reason": failure,
            "stale": stale,
            "skipped": skipped,
            "unchanged": unchanged,
            "todo": len(pages),
            "kept": len(keep),
            "file_type": opened.kind,
        }
        return [_row(FILE, str(path), plan), *pages]


class PageEncoder:
    """map_batches stage on an actor pool: loads the model once per actor, encodes the
    ``page`` rows of each batch (``file`` rows pass through). A page the model rejects
    gets an ``error`` instead of vectors, so one bad page fails its file, not the job.
    """

    def __init__(self, url: str, spec: str | None, options: dict[str, Any]) -> None:
        self.encoder = load_encoder(url, spec, options)

    def __call__(self, batch: Any) -> Any:
        from latestore.internal import load_image

        n = len(batch["kind"])
        vectors: list[bytes] = [b""] * n
        encoded: list[str] = ["{}"] * n
        positions: list[int] = []
        contents: list[PageContent] = []
        for i in range(n):
            if batch["kind"][i] != PAGE:
                continue
            info = json.loads(batch["info"][i])
            try:
                picture = load_image(bytes(batch["image"][i])) if info["has_image"] else None
            except PAGE_ERRORS as exc:
                encoded[i] = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
                continue
            positions.append(i)
            contents.append(PageContent(text=info["text"], image=picture))
        for i, outcome in zip(positions, self._encode(contents), strict=True):
            if isinstance(outcome, str):
                encoded[i] = json.dumps({"error": outcome})
                continue
            content, page = outcome
            array = np.ascontiguousarray(page.vectors, dtype=np.float32)
            pixels = None if content.image is None else content.image.tobytes()
            vectors[i] = array.tobytes()
            encoded[i] = json.dumps(
                {
                    "n_tokens": int(array.shape[0]),
                    "text_tokens": page.text_tokens,
                    "tokens_dropped": page.tokens_dropped,
                    "window_rows": page.window_rows,
                    "key": content_key(content.text, pixels),
                }
            )
        batch["vectors"] = vectors
        batch["encoded"] = encoded
        return batch

    def _encode(self, contents: list[PageContent]) -> list[tuple[PageContent, Any] | str]:
        """Encode the batch in one call; if the model refuses it, page by page."""
        from latestore.internal import encode_counted

        if not contents:
            return []
        try:
            return list(zip(contents, encode_counted(self.encoder, contents), strict=True))
        except PAGE_ERRORS:
            pass
        out: list[tuple[PageContent, Any] | str] = []
        for content in contents:
            try:
                out.append((content, encode_counted(self.encoder, [content])[0]))
            except PAGE_ERRORS as exc:
                out.append(f"{type(exc).__name__}: {exc}")
        return out


def identity_dict(identity: EncoderIdentity) -> dict[str, Any]:
    return asdict(identity)


def _stored_pages_of(url: str, document: str) -> dict[str, tuple[int, dict[str, Any]]]:
    """external id -> (page id, metadata) of a document's stored pages, read from SQL
    (a store opened without its index or encoder)."""
    from latestore.store import Store

    with Store.open(url, load_index=False) as store:
        return stored_pages_of(store, document)
