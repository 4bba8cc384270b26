"""The pre-split launch shapes (the query's float16 halves made once on the host, see
``PackedQueries.halves``) against the float64 reference, as the in-kernel split is.

Runs compiled on CUDA, and in Triton's interpreter on the CPU elsewhere (CI).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latestore.index.maxsim import maxsim_reference
from tests.index.kernel_cases import DEVICE, addresses, unit
from tests.index.test_maxsim_triton import as_read, packed_pages

from latestore.index import maxsim_launch as mt  # isort: skip  (after the triton check)
from latestore.index import maxsim_tuning as tune  # isort: skip

PRESPLIT = [t for t in tune.CANDIDATES if t.presplit]


def test_the_autotuner_has_pre_split_candidates() -> None:
    assert PRESPLIT and {t.block_t for t in PRESPLIT} == {32, 64, 128}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int8", "float32"])
@pytest.mark.parametrize("dim", [64, 320])
def test_shared_form_equals_reference(rng: np.random.Generator, dtype: str, dim: int) -> None:
    lengths = [1, 7, 64, 65, 130, 33]  # single tokens and tile edges
    pages = [unit(rng, n, dim) for n in lengths]
    queries = [unit(rng, n, dim) for n in (1, 5, 32, 17)]
    rows, scales = packed_pages(pages, dtype)
    starts, lens = addresses(lengths)
    packed = mt.pack_queries([torch.from_numpy(q) for q in queries], DEVICE)
    read = as_read(rows, scales, lengths)
    want = np.stack([maxsim_reference(q, read) for q in queries])
    for tuning in (PRESPLIT[0], PRESPLIT[-1]):
        got = mt.maxsim_shared(packed, rows, starts, lens, scales, tuning=tuning)
        np.testing.assert_allclose(got.cpu().numpy(), want, rtol=2e-6, atol=2e-6)


def test_pairs_form_and_long_queries_equal_reference(rng: np.random.Generator) -> None:
    dim, lengths = 128, [5, 70, 1, 200]
    pages = [unit(rng, n, dim) for n in lengths]
    queries = [unit(rng, n, dim) for n in (9, 150)]  # 150 tokens: two query blocks
    rows, _ = packed_pages(pages, "float16")
    all_starts, all_lens = addresses(lengths)
    pairs = [(0, 1), (0, 3), (1, 0), (1, 2), (1, 3)]
    query_of = torch.tensor([q for q, _ in pairs], device=DEVICE)
    pick = torch.tensor([p for _, p in pairs], device=DEVICE)
    packed = mt.pack_queries([torch.from_numpy(q) for q in queries], DEVICE)
    got = mt.maxsim_pairs(
        packed, rows, query_of, all_starts[pick], all_lens[pick], tuning=PRESPLIT[1]
    )
    read = as_read(rows, None, lengths)
    want = [maxsim_reference(queries[q], [read[p]])[0] for q, p in pairs]
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=2e-6, atol=2e-6)


def test_rows_of_any_magnitude_stay_exact(rng: np.random.Generator) -> None:
    """Each query row has its own power of two: rows far apart in size in one block."""
    dim, lengths = 64, [10, 20]
    pages = [unit(rng, n, dim) for n in lengths]
    rows, _ = packed_pages(pages, "float16")
    starts, lens = addresses(lengths)
    read = as_read(rows, None, lengths)
    query = unit(rng, 4, dim) * np.array([[1e6], [1e-7], [1.0], [3e-3]])
    packed = mt.pack_queries([torch.from_numpy(query)], DEVICE)
    got = mt.maxsim_shared(packed, rows, starts, lens, tuning=PRESPLIT[0]).cpu().numpy()[0]
    np.testing.assert_allclose(got, maxsim_reference(query, read), rtol=2e-6)


def test_fast_mode_reads_only_the_high_half(rng: np.random.Generator) -> None:
    dim, lengths = 64, [20, 40, 9]
    pages = [unit(rng, n, dim) for n in lengths]
    query = unit(rng, 16, dim)
    rows, _ = packed_pages(pages, "float16")
    starts, lens = addresses(lengths)
    want = maxsim_reference(query, as_read(rows, None, lengths))
    fast = mt.pack_queries([query], DEVICE, exact=False)
    hi, lo, _ = fast.halves
    assert lo is hi  # no low part is made, and none is read
    got = mt.maxsim_shared(fast, rows, starts, lens, tuning=PRESPLIT[0]).cpu().numpy()[0]
    assert 1e-6 < np.abs(got - want).max() / np.abs(want).max() < 2e-3
