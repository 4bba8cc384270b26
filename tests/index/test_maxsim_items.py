"""Launch shapes where one program scores several pages with one prepared query block
(``Tuning.items``), against the float64 reference: page counts that do not fill the
last program, long queries (several query groups), every storage dtype, and the pairs
form, which keeps one item per program whatever the shape asks.

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

SEVERAL = [t for t in mt.CANDIDATES if t.items > 1]


def test_the_autotuner_has_several_page_candidates_with_and_without_presplit() -> None:
    assert {t.presplit for t in SEVERAL} == {True, False}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int8", "float32"])
def test_a_partly_filled_last_program_scores_only_real_pages(
    rng: np.random.Generator, dtype: str
) -> None:
    dim = 96
    lengths = [3, 1, 64, 65, 40, 7, 130]  # 7 pages: the second program of 4 has 3
    pages = [unit(rng, n, dim) for n in lengths]
    queries = [unit(rng, n, dim) for n in (1, 20, 32)]
    rows, scales = packed_pages(pages, dtype)
    starts, lens = addresses(lengths)
    packed = mt.pack_queries([torch.from_numpy(q) for q in queries], DEVICE)
    read = as_read(rows, scales, lengths)
    want = np.stack([maxsim_reference(q, read) for q in queries])
    for tuning in SEVERAL:
        got = mt.maxsim_shared(packed, rows, starts, lens, scales, tuning=tuning)
        np.testing.assert_allclose(got.cpu().numpy(), want, rtol=2e-6, atol=2e-6)


def test_long_queries_and_fast_precision(rng: np.random.Generator) -> None:
    dim, lengths = 128, [50, 2, 9, 77, 1]
    pages = [unit(rng, n, dim) for n in lengths]
    queries = [unit(rng, n, dim) for n in (200, 4)]  # 256 padded rows: two query groups
    rows, _ = packed_pages(pages, "float16")
    starts, lens = addresses(lengths)
    read = as_read(rows, None, lengths)
    want = np.stack([maxsim_reference(q, read) for q in queries])
    torch_queries = [torch.from_numpy(q) for q in queries]
    exact = mt.pack_queries(torch_queries, DEVICE)
    fast = mt.pack_queries(torch_queries, DEVICE, exact=False)
    for tuning in SEVERAL:
        got = mt.maxsim_shared(exact, rows, starts, lens, tuning=tuning).cpu().numpy()
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
        quick = mt.maxsim_shared(fast, rows, starts, lens, tuning=tuning).cpu().numpy()
        np.testing.assert_allclose(quick, want, rtol=2e-3, atol=2e-3)
        assert not np.allclose(quick, want, rtol=1e-7, atol=0)  # the low half was skipped


def test_pairs_keep_one_item_per_program(rng: np.random.Generator) -> None:
    dim, lengths = 64, [5, 70, 1, 33, 12]
    pages = [unit(rng, n, dim) for n in lengths]
    queries = [unit(rng, n, dim) for n in (9, 31)]
    rows, _ = packed_pages(pages, "float16")
    all_starts, all_lens = addresses(lengths)
    pairs = [(0, 1), (1, 0), (0, 4), (1, 2), (1, 3), (0, 2)]
    query_of = torch.tensor([q for q, _ in pairs], device=DEVICE)
    pick = torch.tensor([p for _, p in pairs], device=DEVICE)
    packed = mt.pack_queries([torch.from_numpy(q) for q in queries], DEVICE)
    read = as_read(rows, None, lengths)
    want = [maxsim_reference(queries[q], [read[p]])[0] for q, p in pairs]
    for tuning in SEVERAL:
        got = mt.maxsim_pairs(
            packed, rows, query_of, all_starts[pick], all_lens[pick], tuning=tuning
        )
        np.testing.assert_allclose(got.cpu().numpy(), want, rtol=2e-6, atol=2e-6)
