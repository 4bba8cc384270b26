"""Residual codes over centroids: packing, round-trip error bounds, versions, bytes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from latestore.errors import InvalidInputError
from latestore.index.residual_codec import (
    Codebook,
    Codebooks,
    auto_centroids,
    code_bytes,
    from_blob,
    stored_code_bytes,
    to_blob,
    train,
)
from latestore.index.residual_fit import pack, unpack


def clustered(rng: np.random.Generator, n: int, dim: int, spread: float = 0.3) -> npt.NDArray:
    """Unit vectors around 32 centres, as encoder tokens cluster."""
    centres = rng.standard_normal((32, dim))
    v = centres[rng.integers(0, 32, n)] + spread * rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_row_is_a_centroid_id_and_packed_residual() -> None:
    assert code_bytes(128, 2) == 36  # 4 + 128 * 2 / 8: the 128-dim budget of 40 B
    assert code_bytes(384, 2) == 100
    assert code_bytes(128, 1) == 20
    assert code_bytes(128, 4) == 68
    assert stored_code_bytes(128, 2) == 34  # on disk, while the ids fit 16 bits
    assert stored_code_bytes(384, 2) == 98


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_pack_unpack_round_trip(rng: np.random.Generator, nbits: int) -> None:
    buckets = rng.integers(0, 1 << nbits, size=(50, 64)).astype(np.uint8)
    packed = pack(buckets, nbits)
    assert packed.shape == (50, 64 * nbits // 8)
    np.testing.assert_array_equal(unpack(packed, 64, nbits), buckets)


def test_first_dimension_sits_in_the_low_bits() -> None:
    buckets = np.array([[3, 0, 1, 2]], dtype=np.uint8)
    assert pack(buckets, 2).tolist() == [[3 | 0 << 2 | 1 << 4 | 2 << 6]]


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_round_trip_error_is_bounded_by_the_buckets(rng: np.random.Generator, nbits: int) -> None:
    v = clustered(rng, 4000, 64)
    # The scalar code, decoded as stored (no rescaling to unit length).
    book = train(v, nbits, n_centroids=32, residual="scalar", unit=False)
    assert book.kind == "scalar"
    rows = book.encode(v)
    assert rows.shape == (4000, code_bytes(64, nbits))
    decoded = Codebooks([book]).decode(rows)
    local = rows[:, :4].copy().view("<u4").ravel().astype(np.int64)
    # The centroid is the nearest by inner product...
    np.testing.assert_array_equal(local, np.argmax(v @ book.centroids.T, axis=1))
    # ...each dimension decodes to its bucket's value...
    residual = v - book.centroids[local]
    buckets = unpack(rows[:, 4:], 64, nbits).astype(np.intp)
    dims = np.arange(64)[None, :]
    np.testing.assert_allclose(
        decoded - book.centroids[local], book.weights[dims, buckets], atol=1e-6
    )
    # ...and the bucket is the one holding the residual, so the error is at most the
    # distance from the bucket's value to its farther edge (outer buckets: open-ended).
    edges = np.concatenate(
        [np.full((64, 1), -np.inf), book.cutoffs, np.full((64, 1), np.inf)], axis=1
    )
    lo, hi = edges[dims, buckets], edges[dims, buckets + 1]
    assert ((residual >= lo - 1e-6) & (residual <= hi + 1e-6)).all()
    value = book.weights[dims, buckets]
    bound = np.maximum(value - lo, hi - value)
    error = np.abs(decoded - v)
    assert (error <= bound + 1e-6).all()
    interior = np.isfinite(bound)
    if nbits > 1:
        assert interior.mean() > 0.3
        assert error[interior].max() <= np.max(np.diff(book.cutoffs, axis=1)) + 1e-6


def test_more_bits_decode_closer(rng: np.random.Generator) -> None:
    v = clustered(rng, 4000, 64)
    errors = []
    for nbits in (1, 2, 4):
        book = train(v, nbits, n_centroids=32)
        decoded = Codebooks([book]).decode(book.encode(v))
        errors.append(float(np.mean(np.sum((decoded - v) ** 2, axis=1))))
    assert errors[0] > errors[1] > errors[2]
    # At 2 bits the decoded tokens point where the originals do.
    book = train(v, 2, n_centroids=32)
    decoded = Codebooks([book]).decode(book.encode(v))
    cosine = np.sum(decoded * v, axis=1) / np.linalg.norm(decoded, axis=1)
    assert cosine.mean() > 0.95


def test_buckets_follow_each_dimension(rng: np.random.Generator) -> None:
    v = clustered(rng, 3000, 16)
    v[:, 3] *= 0.05  # one dimension with a far narrower spread
    book = train(v, 2, n_centroids=8, residual="scalar")
    widths = book.cutoffs[:, -1] - book.cutoffs[:, 0]
    assert widths[3] < 0.5 * np.median(widths)


def test_codebook_bytes_round_trip(rng: np.random.Generator) -> None:
    book = train(clustered(rng, 2000, 32), 2, n_centroids=16, version=3, first_id=40)
    again = Codebook.from_bytes(book.to_bytes())
    assert (again.version, again.first_id, again.nbits) == (3, 40, 2)
    assert again.trained_tokens == book.trained_tokens
    for name in ("centroids", "cutoffs", "weights"):
        np.testing.assert_array_equal(getattr(again, name), getattr(book, name))


def test_rows_keep_decoding_with_their_own_version(rng: np.random.Generator) -> None:
    first = train(clustered(rng, 1000, 32), 2, n_centroids=8, version=1)
    v = clustered(rng, 3000, 32)
    second = train(v, 2, n_centroids=32, version=2, first_id=first.n_centroids)
    old_rows = first.encode(v[:10])
    before = Codebooks([first]).decode(old_rows)
    books = Codebooks([first, second])
    np.testing.assert_array_equal(books.decode(old_rows), before)  # unchanged by v2
    new_rows = second.encode(v[:10])
    assert books.centroid_ids(new_rows).min() >= first.n_centroids
    mixed = books.decode(np.concatenate([old_rows, new_rows]))
    np.testing.assert_array_equal(mixed[:10], before)
    np.testing.assert_array_equal(mixed[10:], Codebooks([second]).decode(new_rows))


def test_a_version_must_follow_on(rng: np.random.Generator) -> None:
    first = train(clustered(rng, 500, 16), 2, n_centroids=4)
    stray = train(clustered(rng, 500, 16), 2, n_centroids=4, version=2, first_id=99)
    with pytest.raises(InvalidInputError, match="expected 4"):
        Codebooks([first, stray])


def test_unknown_centroid_is_refused(rng: np.random.Generator) -> None:
    book = train(clustered(rng, 500, 16), 2, n_centroids=4)
    rows = book.encode(clustered(rng, 3, 16))
    rows[0, :4] = np.frombuffer(np.uint32(77).tobytes(), np.uint8)
    with pytest.raises(InvalidInputError, match="no codebook"):
        Codebooks([book]).decode(rows)


def test_shapes_that_cannot_pack_are_refused(rng: np.random.Generator) -> None:
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        train(rng.standard_normal((100, 6)).astype(np.float32), 2)
    with pytest.raises(InvalidInputError, match="compact_bits"):
        train(rng.standard_normal((100, 8)).astype(np.float32), 3)


def test_centroids_grow_with_the_store() -> None:
    assert auto_centroids(100) == 2
    assert auto_centroids(1_000_000) == 2048  # about 4 * sqrt(n), a power of two
    assert auto_centroids(64_000_000) == 16384
    assert auto_centroids(10**12) == 1 << 16


def test_stored_blobs_use_two_byte_ids_while_they_fit(rng: np.random.Generator) -> None:
    book = train(clustered(rng, 2000, 32), 2, n_centroids=16)
    rows = book.encode(clustered(rng, 7, 32))
    blob = to_blob(rows)
    assert len(blob) == 7 * stored_code_bytes(32, 2) == 7 * 10
    np.testing.assert_array_equal(from_blob(blob, 7, code_bytes(32, 2)), rows)
    # A blob of uint32 rows (as written before the short ids) reads as it is.
    np.testing.assert_array_equal(from_blob(rows.tobytes(), 7, code_bytes(32, 2)), rows)
    assert to_blob(rows[:0]) == b""
    assert from_blob(b"", 0, code_bytes(32, 2)) is not None


def test_ids_past_65535_keep_four_bytes(rng: np.random.Generator) -> None:
    v = clustered(rng, 2000, 32)
    book = train(v, 2, n_centroids=16, version=2, first_id=65_530)  # ids 65,530 .. 65,545
    rows = book.encode(v[:200])
    ids = Codebooks().centroid_ids(rows)
    assert ids.max() >= 1 << 16 and ids.min() < 1 << 16
    blob = to_blob(rows)
    assert len(blob) == 200 * code_bytes(32, 2)
    np.testing.assert_array_equal(from_blob(blob, 200, code_bytes(32, 2)), rows)
    below = rows[ids < 1 << 16]
    assert len(to_blob(below)) == len(below) * stored_code_bytes(32, 2)


def test_a_blob_of_neither_width_is_damaged(rng: np.random.Generator) -> None:
    book = train(clustered(rng, 2000, 32), 2, n_centroids=16)
    blob = to_blob(book.encode(clustered(rng, 5, 32)))
    assert from_blob(blob[:-1], 5, code_bytes(32, 2)) is None
    assert from_blob(blob, 6, code_bytes(32, 2)) is None


def test_centroids_are_stored_as_float16_and_older_books_still_read(
    rng: np.random.Generator,
) -> None:
    import io

    v = clustered(rng, 2000, 32)
    book = train(v, 2, n_centroids=16)
    # Trained centroids are float16-exact, so the half-size storage is lossless.
    np.testing.assert_array_equal(
        book.centroids.astype(np.float16).astype(np.float32), book.centroids
    )
    with np.load(io.BytesIO(book.to_bytes())) as held:
        assert held["centroids"].dtype == np.float16
    # A codebook as stored before float16, pq and unit: float32 centroids, scalar
    # buckets, four meta fields. It reads as a scalar book and decodes as it did.
    scalar = train(v, 2, n_centroids=16, residual="scalar", unit=False)
    old = io.BytesIO()
    np.savez(
        old,
        meta=np.array([1, 0, 2, scalar.trained_tokens]),
        centroids=scalar.centroids.astype(np.float32) + np.float32(1e-4),
        cutoffs=scalar.cutoffs,
        weights=scalar.weights,
    )
    again = Codebook.from_bytes(old.getvalue())
    assert (again.kind, again.unit) == ("scalar", False)
    assert again.centroids.dtype == np.float32
    np.testing.assert_array_equal(again.centroids, scalar.centroids + np.float32(1e-4))
    rows = scalar.encode(v[:40])
    np.testing.assert_allclose(
        Codebooks([again]).decode(rows), Codebooks([scalar]).decode(rows) + 1e-4, atol=1e-6
    )


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_pq_codes_decode_to_their_table_entries(rng: np.random.Generator, nbits: int) -> None:
    v = clustered(rng, 4000, 64)
    book = train(v, nbits, n_centroids=32, unit=False)
    assert book.kind == "pq" and book.table is not None
    per_byte = 8 // nbits
    assert book.table.shape == (64 // per_byte, 256, per_byte)
    rows = book.encode(v)
    assert rows.shape == (4000, code_bytes(64, nbits))
    local = Codebooks().centroid_ids(rows)
    decoded = Codebooks([book]).decode(rows)
    # Each byte decodes to its table entry: the residual's sub-vector at that position...
    expect = book.table[np.arange(64 // per_byte)[None, :], rows[:, 4:]].reshape(4000, 64)
    np.testing.assert_allclose(decoded - book.centroids[local], expect, atol=1e-6)
    # ...and that entry is the nearest of the 256 to the residual's sub-vector.
    residual = (v - book.centroids[local]).reshape(4000, 64 // per_byte, per_byte)
    chosen = np.sum((residual - expect.reshape(residual.shape)) ** 2, axis=2)
    for position in (0, 5):
        every = np.sum((residual[:, position, None, :] - book.table[position][None]) ** 2, axis=2)
        np.testing.assert_allclose(chosen[:, position], every.min(axis=1), atol=1e-5)


def test_pq_decodes_closer_than_scalar_at_the_same_bytes(rng: np.random.Generator) -> None:
    v = clustered(rng, 8000, 64)
    errors = {}
    for kind in ("scalar", "pq"):
        book = train(v, 2, n_centroids=32, residual=kind, unit=False)
        decoded = Codebooks([book]).decode(book.encode(v))
        errors[kind] = float(np.mean(np.sum((decoded - v) ** 2, axis=1)))
    assert errors["pq"] < 0.9 * errors["scalar"]


def test_unit_codebooks_decode_to_unit_vectors(rng: np.random.Generator) -> None:
    v = clustered(rng, 3000, 32)
    book = train(v, 2, n_centroids=16)
    assert book.unit  # every sample vector is unit length
    decoded = Codebooks([book]).decode(book.encode(v))
    np.testing.assert_allclose(np.linalg.norm(decoded, axis=1), 1.0, atol=1e-5)
    raw = train(v, 2, n_centroids=16, unit=False)
    assert np.abs(np.linalg.norm(Codebooks([raw]).decode(raw.encode(v)), axis=1) - 1).max() > 0.01
    assert not train(v * 2, 2, n_centroids=16).unit  # not unit: decoded as coded


def test_pq_codebook_bytes_round_trip(rng: np.random.Generator) -> None:
    v = clustered(rng, 2000, 32)
    book = train(v, 2, n_centroids=16, version=2, first_id=8)
    again = Codebook.from_bytes(book.to_bytes())
    assert (again.kind, again.unit, again.first_id) == ("pq", True, 8)
    assert again.table is not None and book.table is not None
    np.testing.assert_array_equal(again.table, book.table)  # float16-exact when trained
    rows = book.encode(v[:50])
    np.testing.assert_array_equal(again.encode(v[:50]), rows)
    np.testing.assert_array_equal(Codebooks([again]).decode(rows), Codebooks([book]).decode(rows))
    with pytest.raises(InvalidInputError, match="residual"):
        train(v, 2, residual="lattice")


def test_a_pq_version_follows_a_scalar_one(rng: np.random.Generator) -> None:
    v = clustered(rng, 3000, 32)
    old = train(v, 2, n_centroids=8, residual="scalar", unit=False)  # as stores had
    new = train(v, 2, n_centroids=16, version=2, first_id=8)
    old_rows, new_rows = old.encode(v[:20]), new.encode(v[:20])
    books = Codebooks([old, new])
    mixed = books.decode(np.concatenate([old_rows, new_rows]))
    np.testing.assert_array_equal(mixed[:20], Codebooks([old]).decode(old_rows))
    np.testing.assert_array_equal(mixed[20:], Codebooks([new]).decode(new_rows))
    assert np.mean(np.sum((mixed[20:] - v[:20]) ** 2, axis=1)) < np.mean(
        np.sum((mixed[:20] - v[:20]) ** 2, axis=1)
    )
