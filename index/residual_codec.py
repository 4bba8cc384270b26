"""Residual codes over k-means centroids: the compact storage tier's token format.

A token vector ``v`` is kept as the id of its nearest centroid ``c`` (by inner product,
the vectors being L2-normalised) and its residual ``v - c`` quantised per dimension to
``nbits`` bits. Each dimension has its own buckets, learned from the residuals of a
training sample: cut points start at the sample's quantiles and are refined by a few
Lloyd-Max steps (each bucket's value is the mean residual that falls in it, each cut
the midpoint of two neighbouring values), so the buckets follow the residuals'
distribution in that dimension.

In memory one token is one *code row* of ``4 + dim * nbits / 8`` bytes: a
little-endian uint32 centroid id, then the packed bucket numbers (``8 / nbits``
dimensions per byte, the first dimension in the low bits). On disk a page's rows are
one blob (:func:`to_blob`): the same rows with a **uint16** id when every id of the
page is below 65,536 (any store with at most 65,536 centroids across its versions),
else the uint32 rows. The blob's length over the page's token count tells the width,
so blobs written before the short ids keep reading. At 128 dimensions and 2 bits a
stored token is 2 + 32 = 34 bytes; at MiniLM's 384, 2 + 96 = 98.

The residual is coded one of two ways, recorded in the codebook:

* ``pq`` (trained by default): product quantisation. Each byte codes ``8 / nbits``
  consecutive dimensions of the residual together, as one of 256 sub-vectors learned
  by k-means for that byte position (so 2 bits per dimension still, 4 dimensions a
  byte). Coding dimensions jointly follows the residual's shape better than one
  scalar per dimension: on MiniLM's tokens its squared error is about 0.7x the
  scalar code's at the same bytes.
* ``scalar``: each dimension quantised alone to ``nbits`` bits (per-dimension buckets,
  Lloyd-Max); the format of codebooks trained before ``pq``.

Both decode through one table of 256 sub-vectors per byte position, so decoding
costs the same. Codebooks trained on unit vectors (the store L2-normalises every
token) are marked ``unit``: their decoded vectors are scaled back to unit length,
which removes the norm the quantisation shrinks unevenly from token to token.

Centroids are rounded to float16 when trained (residuals and buckets are fitted to
the rounded ones, so rounding costs nothing at decode) and stored so; codebooks
stored with float32 centroids keep reading.

Codebooks are **versioned** so codes stay valid while a store grows: each version
owns a contiguous range of centroid ids (``first_id`` .. ``first_id + K - 1``), so a
code row names its codebook by its centroid id alone. A newer version is trained when
the store has grown (see :mod:`latestore.store.compact`); rows written under an older
version keep decoding with it, unchanged.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from latestore.errors import InvalidInputError
from latestore.index.residual_fit import fit_buckets, fit_table, pack

ID_BYTES = 4  # in memory
SHORT_ID_BYTES = 2  # on disk, when every id of a page fits
SHORT_ID_LIMIT = 1 << 16
NBITS_CHOICES = (1, 2, 4)
RESIDUAL_KINDS = ("pq", "scalar")
UNIT_TOLERANCE = 1e-2  # float16-stored unit vectors are unit within ~1e-3
KMEANS_ITERATIONS = 6
# Largest sample k-means and the bucket fit see, per centroid (FAISS's own default
# subsampling is 256; fewer keeps a retrain inside a write short). FAISS wants at
# least 39 points per centroid.
SAMPLE_PER_CENTROID = 48
MIN_PER_CENTROID = 40
MAX_CENTROIDS = 1 << 16
ENCODE_CHUNK = 16_384

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


def code_bytes(dim: int, nbits: int) -> int:
    """Bytes of one code row in memory: the uint32 centroid id and the packed residual."""
    return ID_BYTES + dim * nbits // 8


def stored_code_bytes(dim: int, nbits: int) -> int:
    """Bytes of one stored code row while the store's centroid ids fit 16 bits."""
    return SHORT_ID_BYTES + dim * nbits // 8


def to_blob(rows: U8) -> bytes:
    """A page's code rows as stored: uint16 ids when every id fits, else as held."""
    if not len(rows):
        return b""
    ids = np.ascontiguousarray(rows[:, :ID_BYTES]).view("<u4").reshape(-1)
    if int(ids.max()) >= SHORT_ID_LIMIT:
        return rows.tobytes()
    short = np.empty((len(rows), rows.shape[1] - ID_BYTES + SHORT_ID_BYTES), dtype=np.uint8)
    short[:, :SHORT_ID_BYTES] = ids.astype("<u2").view(np.uint8).reshape(-1, SHORT_ID_BYTES)
    short[:, SHORT_ID_BYTES:] = rows[:, ID_BYTES:]
    return short.tobytes()


def from_blob(blob: bytes, n_tokens: int, row_bytes: int) -> U8 | None:
    """Inverse of :func:`to_blob`: ``(n_tokens, row_bytes)`` rows with uint32 ids, or
    None when the blob's length fits neither width (a damaged blob)."""
    if len(blob) == n_tokens * row_bytes:
        rows: U8 = np.frombuffer(blob, dtype=np.uint8).reshape(n_tokens, row_bytes)
        return rows
    short_bytes = row_bytes - ID_BYTES + SHORT_ID_BYTES
    if n_tokens == 0 or len(blob) != n_tokens * short_bytes:
        return None
    short = np.frombuffer(blob, dtype=np.uint8).reshape(n_tokens, short_bytes)
    out = np.empty((n_tokens, row_bytes), dtype=np.uint8)
    ids = np.ascontiguousarray(short[:, :SHORT_ID_BYTES]).view("<u2").reshape(-1)
    out[:, :ID_BYTES] = ids.astype("<u4").view(np.uint8).reshape(-1, ID_BYTES)
    out[:, ID_BYTES:] = short[:, SHORT_ID_BYTES:]
    return out


def check_shape(dim: int, nbits: int) -> None:
    if nbits not in NBITS_CHOICES:
        raise InvalidInputError(f"compact_bits must be one of {NBITS_CHOICES}, got {nbits}")
    if (dim * nbits) % 8:
        raise InvalidInputError(
            f"the compact tier packs {nbits}-bit residuals into bytes: dim * bits must be "
            f"a multiple of 8 (dim {dim})"
        )


def auto_centroids(n_tokens: int) -> int:
    """Centroids for a store of ``n_tokens``: a power of two near ``4 * sqrt(n)``,
    with at least ``MIN_PER_CENTROID`` tokens per centroid (PLAID takes
    ``16 * sqrt(n)``; a quarter of that keeps training and coding affordable on a CPU)."""
    target = min(4.0 * np.sqrt(max(n_tokens, 1)), n_tokens / MIN_PER_CENTROID, float(MAX_CENTROIDS))
    return 1 << max(0, int(np.floor(np.log2(max(target, 1.0)))))


@dataclass(frozen=True)
class Codebook:
    """One codebook version: centroids and the residual's code (see the module doc)."""

    version: int
    first_id: int
    nbits: int
    centroids: F32  # (K, dim), unit length
    cutoffs: F32  # scalar: (dim, 2**nbits - 1), ascending per dimension; pq: (dim, 0)
    weights: F32  # scalar: (dim, 2**nbits), the residual each bucket decodes to; pq: (dim, 0)
    trained_tokens: int  # store tokens when this version was trained (growth rule)
    # pq: (bytes, 256, 8 / nbits), the residual sub-vectors each byte value decodes to
    table: F32 | None = None
    unit: bool = False  # decoded vectors are rescaled to unit length

    @property
    def kind(self) -> str:
        return "scalar" if self.table is None else "pq"

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def n_centroids(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def row_bytes(self) -> int:
        return code_bytes(self.dim, self.nbits)

    # -- encoding --------------------------------------------------------------
    def assign(self, vectors: F32) -> npt.NDArray[np.int64]:
        """Local index of each vector's nearest centroid (largest inner product)."""
        best = np.empty(len(vectors), dtype=np.int64)
        for start in range(0, len(vectors), ENCODE_CHUNK):
            part = vectors[start : start + ENCODE_CHUNK]
            best[start : start + len(part)] = np.argmax(part @ self.centroids.T, axis=1)
        return best

    def encode(self, vectors: npt.NDArray[np.floating]) -> U8:
        """``(n, dim)`` vectors -> ``(n, row_bytes)`` code rows."""
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise InvalidInputError(f"expected (n, {self.dim}) vectors, got {v.shape}")
        local = self.assign(v)
        residual = v - self.centroids[local]
        rows = np.empty((len(v), self.row_bytes), dtype=np.uint8)
        rows[:, :ID_BYTES] = (local + self.first_id).astype("<u4").view(np.uint8).reshape(-1, 4)
        if self.table is not None:
            rows[:, ID_BYTES:] = self._quantiser.compute_codes(residual)
            return rows
        buckets = np.empty(v.shape, dtype=np.uint8)
        for d in range(self.dim):
            buckets[:, d] = np.searchsorted(self.cutoffs[d], residual[:, d], side="right")
        rows[:, ID_BYTES:] = pack(buckets, self.nbits)
        return rows

    @functools.cached_property
    def _quantiser(self) -> Any:
        """A FAISS product quantiser holding :attr:`table` (its layout is FAISS's own:
        sub-quantiser, code, sub-dimension), for the nearest code of each byte."""
        import faiss

        assert self.table is not None
        n_bytes = self.table.shape[0]
        pq = faiss.ProductQuantizer(self.dim, n_bytes, 8)
        faiss.copy_array_to_vector(
            np.ascontiguousarray(self.table, dtype=np.float32).ravel(), pq.centroids
        )
        return pq

    # -- decoding --------------------------------------------------------------
    @functools.cached_property
    def byte_table(self) -> F32:
        """``(bytes * 256, 8 / nbits)``: the residual values each byte value decodes to,
        at each byte position. Decoding is then one gather per byte, not per dimension
        (unpacking bits and looking each dimension up cost 5x more)."""
        per_byte = 8 // self.nbits
        if self.table is not None:
            flat: F32 = np.ascontiguousarray(self.table.reshape(-1, per_byte), dtype=np.float32)
            return flat
        values = np.arange(256, dtype=np.uint8)[:, None]
        shifts = (np.arange(per_byte, dtype=np.uint8) * self.nbits)[None, :]
        buckets = ((values >> shifts) & ((1 << self.nbits) - 1)).astype(np.intp)  # (256, pb)
        weights = self.weights.reshape(-1, per_byte, 1 << self.nbits)  # (bytes, pb, L)
        table = np.take_along_axis(
            weights[:, None, :, :], buckets[None, :, :, None], axis=3
        )  # (bytes, 256, pb, 1)
        out: F32 = np.ascontiguousarray(table.reshape(-1, per_byte), dtype=np.float32)
        return out

    def decode_local(self, local: npt.NDArray[np.int64], packed: U8) -> F32:
        """Vectors of rows whose centroid ids (made local) and packed residuals are given."""
        n_bytes = packed.shape[1]
        index = packed.astype(np.intp) + (np.arange(n_bytes, dtype=np.intp) * 256)[None, :]
        out: F32 = self.centroids[local]
        out += np.take(self.byte_table, index, axis=0).reshape(len(packed), self.dim)
        if self.unit:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, np.float32(1e-6))
        return out

    # -- persistence -----------------------------------------------------------
    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        arrays: dict[str, npt.NDArray[Any]] = {
            "meta": np.array(
                [self.version, self.first_id, self.nbits, self.trained_tokens, int(self.unit)]
            ),
            # Trained centroids and tables are float16-exact (see train): this loses nothing.
            "centroids": self.centroids.astype(np.float16),
            "cutoffs": self.cutoffs,
            "weights": self.weights,
        }
        if self.table is not None:
            arrays["table"] = self.table.astype(np.float16)
        save: Any = np.savez  # its stub reads a ** mapping as allow_pickle
        save(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Codebook:
        # allow_pickle=False: a codebook is plain arrays; nothing else is ever loaded.
        with np.load(io.BytesIO(blob), allow_pickle=False) as held:
            # Codebooks written before pq and unit have four meta fields and no table.
            meta = [int(x) for x in held["meta"]]
            version, first_id, nbits, trained = meta[:4]
            table = held["table"] if "table" in held.files else None
            return cls(
                version,
                first_id,
                nbits,
                np.ascontiguousarray(held["centroids"], dtype=np.float32),
                np.ascontiguousarray(held["cutoffs"], dtype=np.float32),
                np.ascontiguousarray(held["weights"], dtype=np.float32),
                trained,
                None if table is None else np.ascontiguousarray(table, dtype=np.float32),
                bool(meta[4]) if len(meta) > 4 else False,
            )


def train(
    sample: npt.NDArray[np.floating],
    nbits: int,
    *,
    version: int = 1,
    first_id: int = 0,
    n_centroids: int | None = None,
    trained_tokens: int | None = None,
    seed: int = 1234,
    residual: str = "pq",
    unit: bool | None = None,
) -> Codebook:
    """Learn a codebook from ``sample`` (rows are token vectors) with FAISS k-means;
    ``residual``: ``pq`` or ``scalar`` (see the module doc); ``unit``: rescale decoded
    vectors to unit length (None: when every sample vector is unit length). FAISS runs
    on the cores idle now (:func:`latestore.index.threads.bulk_threads`)."""
    from latestore.index.threads import bulk_threads

    with bulk_threads():
        return _train(
            sample, nbits, version, first_id, n_centroids, trained_tokens, seed, residual, unit
        )


def _train(
    sample: npt.NDArray[np.floating],
    nbits: int,
    version: int,
    first_id: int,
    n_centroids: int | None,
    trained_tokens: int | None,
    seed: int,
    residual: str,
    unit: bool | None,
) -> Codebook:
    import faiss

    v = np.ascontiguousarray(sample, dtype=np.float32)
    if v.ndim != 2 or len(v) == 0:
        raise InvalidInputError("a compact codebook needs at least one training vector")
    check_shape(v.shape[1], nbits)
    if residual not in RESIDUAL_KINDS:
        raise InvalidInputError(f"residual must be one of {RESIDUAL_KINDS}, got {residual!r}")
    if unit is None:
        unit = bool(np.all(np.abs(np.linalg.norm(v, axis=1) - 1) < UNIT_TOLERANCE))
    k = n_centroids or auto_centroids(len(v))
    k = max(1, min(k, len(v)))
    rng = np.random.default_rng(seed)
    if len(v) > SAMPLE_PER_CENTROID * k:
        v = v[rng.choice(len(v), SAMPLE_PER_CENTROID * k, replace=False)]
    kmeans = faiss.Kmeans(
        v.shape[1],
        k,
        niter=KMEANS_ITERATIONS,
        seed=seed,
        spherical=True,
        max_points_per_centroid=SAMPLE_PER_CENTROID,
        verbose=False,
    )
    kmeans.train(v)
    # Rounded to float16 before the residuals are taken: the codebook is stored at half
    # the bytes and decodes exactly as it encoded.
    centroids = np.asarray(np.asarray(kmeans.centroids, np.float16), dtype=np.float32)
    draft = Codebook(
        version,
        first_id,
        nbits,
        centroids,
        np.zeros((v.shape[1], (1 << nbits) - 1), np.float32),
        np.zeros((v.shape[1], 1 << nbits), np.float32),
        trained_tokens if trained_tokens is not None else len(sample),
    )
    residuals = v - centroids[draft.assign(v)]
    if residual == "scalar":
        cutoffs, weights = fit_buckets(residuals, nbits)
        return Codebook(
            version, first_id, nbits, centroids, cutoffs, weights, draft.trained_tokens, None, unit
        )
    empty = np.zeros((v.shape[1], 0), np.float32)
    table = fit_table(residuals, nbits, seed)
    return Codebook(
        version, first_id, nbits, centroids, empty, empty, draft.trained_tokens, table, unit
    )


class Codebooks:
    """Every codebook version of a store; decodes rows of any of them."""

    def __init__(self, books: Iterable[Codebook] = ()) -> None:
        self.books: list[Codebook] = []
        self._firsts = np.zeros(0, dtype=np.int64)
        for book in books:
            self.add(book)

    def __len__(self) -> int:
        return len(self.books)

    @property
    def latest(self) -> Codebook | None:
        return self.books[-1] if self.books else None

    @property
    def next_first_id(self) -> int:
        last = self.latest
        return 0 if last is None else last.first_id + last.n_centroids

    def versions(self) -> set[int]:
        return {b.version for b in self.books}

    def add(self, book: Codebook) -> None:
        if self.books and book.first_id != self.next_first_id:
            raise InvalidInputError(
                f"codebook version {book.version} starts at centroid {book.first_id}, "
                f"expected {self.next_first_id}"
            )
        self.books.append(book)
        self._firsts = np.array([b.first_id for b in self.books], dtype=np.int64)

    def centroid_ids(self, rows: U8) -> npt.NDArray[np.int64]:
        ids: npt.NDArray[np.int64] = (
            np.ascontiguousarray(rows[:, :ID_BYTES]).view("<u4").reshape(-1).astype(np.int64)
        )
        return ids

    def book_of(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
        """Position in :attr:`books` of the codebook owning each centroid id."""
        which: npt.NDArray[np.intp] = np.searchsorted(self._firsts, ids, side="right") - 1
        return which

    def decode(self, rows: U8) -> F32:
        """``(n, row_bytes)`` code rows -> ``(n, dim)`` float32 vectors."""
        if not self.books:
            raise InvalidInputError("no codebook to decode with")
        dim = self.books[0].dim
        out = np.empty((len(rows), dim), dtype=np.float32)
        if not len(rows):
            return out
        ids = self.centroid_ids(rows)
        which = self.book_of(ids)
        for position in np.unique(which).tolist():
            book = self.books[position]
            sel = which == position
            local = ids[sel] - book.first_id
            if position < 0 or local.max() >= book.n_centroids:
                raise InvalidInputError("a code row names a centroid no codebook holds")
            out[sel] = book.decode_local(local, rows[sel, ID_BYTES:])
        return out
