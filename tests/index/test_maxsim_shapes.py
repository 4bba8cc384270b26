"""Launch shapes against the float64 reference: every autotuner candidate and every
fallback shape; several pages per program with one prepared query block
(``Tuning.items``: page counts that do not fill the last program, long queries, the
pairs form, which keeps one item per program whatever the shape asks); and the rolled
dim loop (``Tuning.unroll_d=False``) over dims wider than one block.

Runs compiled on CUDA, and in Triton's interpreter on the CPU elsewhere (CI).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from latestore.index.maxsim import maxsim_reference
from tests.index.kernel_cases import DEVICE, addresses, unit
from tests.index.test_maxsim_triton import as_read, packed_pages

from latestore.index import maxsim_launch as mt  # isort: skip  (after the triton check)
from latestore.index import maxsim_tuning as tune  # isort: skip

SEVERAL = [t for t in tune.CANDIDATES if t.items > 1]
ROLLED = [t for t in tune.CANDIDATES if not t.unroll_d]
EVERY_SHAPE = sorted(set(tune.CANDIDATES) | {tune.LAST_RESORT}, key=repr)


def shared_case(
    rng: np.random.Generator, dtype: str, dim: int, lengths: list[int], query_lengths: list[int]
) -> tuple[mt.PackedQueries, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, Any]:
    """Random pages in ``dtype`` and packed queries: ``(packed, rows, scales, starts,
    lengths, want)``, ``want`` the float64 reference of every query against every page."""
    pages = [unit(rng, n, dim) for n in lengths]
    queries = [unit(rng, n, dim) for n in query_lengths]
    rows, scales = packed_pages(pages, dtype)
    starts, lens = addresses(lengths)
    packed = mt.pack_queries([torch.from_numpy(q) for q in queries], DEVICE)
    read = as_read(rows, scales, lengths)
    want = np.stack([maxsim_reference(q, read) for q in queries])
    return packed, rows, scales, starts, lens, want


@pytest.mark.parametrize("dim", [96, 320])  # three and five dim blocks
@pytest.mark.parametrize("dtype", ["float16", "int8", "float32"])
def test_every_shape_equals_reference(rng: np.random.Generator, dtype: str, dim: int) -> None:
    if DEVICE.type == "cuda" and (dtype == "float32" or dim != 320):
        # Compiled, each shape of each case is a compile of 1-2 s: the GPU check's time
        # limit keeps the two stored dtypes over five dim blocks (the interpreter runs all).
        pytest.skip("on CUDA, float16 and int8 at 320 dims only")
    packed, rows, scales, starts, lens, want = shared_case(
        rng, dtype, dim, [1, 33, 64, 70, 5], [3, 32]
    )
    for tuning in EVERY_SHAPE:
        got = mt.maxsim_shared(packed, rows, starts, lens, scales, tuning=tuning)
        np.testing.assert_allclose(
            got.cpu().numpy(), want, rtol=2e-6, atol=2e-6, err_msg=str(tuning)
        )


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_rolled_dims_with_long_queries_presplit_and_pairs(
    rng: np.random.Generator, dtype: str
) -> None:
    # Three 64-wide dim blocks; 128 padded query rows, 64 per program at this width
    # (most_query_rows): two query groups.
    packed, rows, scales, starts, lens, want = shared_case(
        rng, dtype, 192, [7, 1, 90, 40], [70, 12]
    )
    pairs = [(0, 2), (1, 0), (1, 3), (0, 1)]
    query_of = torch.tensor([q for q, _ in pairs], device=DEVICE)
    pick = torch.tensor([p for _, p in pairs], device=DEVICE)
    for tuning in [*ROLLED, tune.Tuning(64, 4, 3, presplit=True, unroll_d=False)]:
        got = mt.maxsim_shared(packed, rows, starts, lens, scales, tuning=tuning)
        np.testing.assert_allclose(got.cpu().numpy(), want, rtol=2e-6, atol=2e-6)
        paired = mt.maxsim_pairs(
            packed, rows, query_of, starts[pick], lens[pick], scales, tuning=tuning
        )
        expected = [want[q, p] for q, p in pairs]
        np.testing.assert_allclose(paired.cpu().numpy(), expected, rtol=2e-6, atol=2e-6)


def test_the_autotuner_times_rolled_shapes_only_for_wide_dims() -> None:
    wide = tune.ShapeKey(tune.KIND_HALF, 384, 32, 32, False, True, 256, 3)
    narrow = wide._replace(dim=128)
    assert all(tune.applies(t, wide) for t in ROLLED)
    assert not any(tune.applies(t, narrow) for t in ROLLED)
    assert not any(tune.applies(t, narrow._replace(length_bucket=1024)) for t in SEVERAL)
    assert not any(tune.applies(t, wide._replace(pairs=True)) for t in SEVERAL)
    # Past one dim block only the pre-split shapes share a query block across pages.
    assert [t.presplit for t in SEVERAL if tune.applies(t, wide)] == [True, True]
    wide_tiles = [t for t in tune.CANDIDATES if t.block_t == 128]
    assert wide_tiles and not any(tune.applies(t, wide) for t in wide_tiles)
    assert all(tune.applies(t, narrow) for t in wide_tiles)


def test_the_autotuner_has_several_page_candidates_with_and_without_presplit() -> None:
    assert {t.presplit for t in SEVERAL} == {True, False}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int8", "float32"])
def test_a_partly_filled_last_program_scores_only_real_pages(
    rng: np.random.Generator, dtype: str
) -> None:
    # 7 pages: the second program of 4 has 3.
    packed, rows, scales, starts, lens, want = shared_case(
        rng, dtype, 96, [3, 1, 64, 65, 40, 7, 130], [1, 20, 32]
    )
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
