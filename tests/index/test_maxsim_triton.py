"""The fused Triton MaxSim kernel against the float64 reference.

Runs compiled on CUDA, and in Triton's interpreter on the CPU elsewhere (CI).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latestore.index.codec import dequantize_int8, quantize_int8
from latestore.index.maxsim import maxsim_reference
from tests.index.kernel_cases import DEVICE, addresses, unit

from latestore.index import maxsim_launch as mt  # isort: skip  (after the triton check)
from latestore.index import maxsim_tuning as tune  # isort: skip


def packed_pages(pages: list[np.ndarray], dtype: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pages in a storage dtype, and what the kernel is exact against (float64 input)."""
    stacked = np.concatenate(pages)
    if dtype == "int8":
        codes, scales = quantize_int8(stacked)
        return torch.from_numpy(codes).to(DEVICE), torch.from_numpy(scales).to(DEVICE)
    torch_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    return torch.from_numpy(stacked).to(DEVICE, torch_dtype[dtype]), None


def as_read(rows: torch.Tensor, scales: torch.Tensor | None, lengths: list[int]) -> list:
    """The page values the kernel sees, split per page, as float64 numpy."""
    if scales is not None:
        values = dequantize_int8(rows.cpu().numpy(), scales.cpu().numpy())
    else:
        values = rows.float().cpu().numpy()
    return np.split(values.astype(np.float64), np.cumsum(lengths)[:-1])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "int8"])
@pytest.mark.parametrize("dim", [64, 96, 320])
def test_shared_form_equals_reference_for_every_storage_dtype(
    rng: np.random.Generator, dtype: str, dim: int
) -> None:
    lengths = [1, 7, 64, 65, 130, 1, 33]  # single tokens and tile edges
    pages = [unit(rng, n, dim) for n in lengths]
    queries = [unit(rng, n, dim) for n in (1, 5, 32, 17)]
    rows, scales = packed_pages(pages, dtype)
    starts, lens = addresses(lengths)
    packed = mt.pack_queries([torch.from_numpy(q) for q in queries], DEVICE)
    got = mt.maxsim_shared(packed, rows, starts, lens, scales).cpu().numpy()
    read = as_read(rows, scales, lengths)
    want = np.stack([maxsim_reference(q, read) for q in queries])
    assert got.shape == (len(queries), len(pages))
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)


def test_long_queries_sum_partial_blocks(rng: np.random.Generator) -> None:
    """Queries past 128 tokens span several programs whose partial sums are added."""
    dim, lengths = 64, [40, 3, 90]
    pages = [unit(rng, n, dim) for n in lengths]
    queries = [unit(rng, n, dim) for n in (300, 2)]
    rows, _ = packed_pages(pages, "float16")
    starts, lens = addresses(lengths)
    packed = mt.pack_queries([torch.from_numpy(q) for q in queries], DEVICE)
    assert packed.lq == 512
    got = mt.maxsim_shared(packed, rows, starts, lens).cpu().numpy()
    read = as_read(rows, None, lengths)
    want = np.stack([maxsim_reference(q, read) for q in queries])
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_pairs_form_scores_each_query_against_its_own_pages(
    rng: np.random.Generator, dtype: str
) -> None:
    dim, lengths = 128, [5, 70, 1, 200, 12]
    pages = [unit(rng, n, dim) for n in lengths]
    queries = [unit(rng, n, dim) for n in (9, 31, 150)]
    rows, scales = packed_pages(pages, dtype)
    all_starts, all_lens = addresses(lengths)
    pairs = [(0, 1), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 4), (2, 0)]
    query_of = torch.tensor([q for q, _ in pairs], device=DEVICE)
    pick = torch.tensor([p for _, p in pairs], device=DEVICE)
    packed = mt.pack_queries([torch.from_numpy(q) for q in queries], DEVICE)
    got = mt.maxsim_pairs(packed, rows, query_of, all_starts[pick], all_lens[pick], scales)
    read = as_read(rows, scales, lengths)
    want = [maxsim_reference(queries[q], [read[p]])[0] for q, p in pairs]
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=2e-6, atol=2e-6)


def test_queries_of_any_magnitude_stay_exact(rng: np.random.Generator) -> None:
    """Unnormalised queries (past float16's range, or tiny) are scaled by a power of two."""
    dim, lengths = 64, [10, 20]
    pages = [unit(rng, n, dim) for n in lengths]
    rows, _ = packed_pages(pages, "float16")
    starts, lens = addresses(lengths)
    read = as_read(rows, None, lengths)
    for factor in (1e6, 1e-7):
        query = unit(rng, 4, dim) * factor
        packed = mt.pack_queries([torch.from_numpy(query)], DEVICE)
        got = mt.maxsim_shared(packed, rows, starts, lens).cpu().numpy()[0]
        np.testing.assert_allclose(got, maxsim_reference(query, read), rtol=2e-6)


def test_rows_past_two_to_the_31_elements_are_addressed(rng: np.random.Generator) -> None:
    """64-bit addressing: a page whose rows start beyond 2**31 elements is read right."""
    if DEVICE.type == "cuda" and torch.cuda.get_device_properties(0).total_memory < 8 << 30:
        pytest.skip("needs a 3 GB allocation")
    dim = 128
    first = (1 << 31) // dim + 5  # element offset of its first row is past 2**31
    codes = torch.empty((first + 64, dim), dtype=torch.int8, device=DEVICE)  # untouched memory
    scales = torch.zeros(first + 64, dtype=torch.float32, device=DEVICE)
    page = unit(rng, 50, dim)
    page_codes, page_scales = quantize_int8(page)
    codes[first : first + 50] = torch.from_numpy(page_codes).to(DEVICE)
    scales[first : first + 50] = torch.from_numpy(page_scales).to(DEVICE)
    query = unit(rng, 8, dim)
    packed = mt.pack_queries([torch.from_numpy(query)], DEVICE)
    starts = torch.tensor([first], device=DEVICE)
    lens = torch.tensor([50], device=DEVICE)
    got = float(mt.maxsim_shared(packed, codes, starts, lens, scales)[0, 0])
    want = maxsim_reference(query, [dequantize_int8(page_codes, page_scales)])[0]
    assert got == pytest.approx(want, rel=2e-6)


def test_refuses_int8_without_scales_and_unknown_dtypes() -> None:
    rows = torch.zeros((4, 16), dtype=torch.int8, device=DEVICE)
    starts, lens = addresses([4])
    packed = mt.pack_queries([torch.ones(2, 16)], DEVICE)
    with pytest.raises(ValueError, match="scales"):
        mt.maxsim_shared(packed, rows, starts, lens)
    with pytest.raises(TypeError, match="cannot read"):
        mt.storage_kind(torch.int32)


@pytest.mark.parametrize(
    "tuning", [tune.Tuning(32, 4, 2), tune.Tuning(128, 8, 3), tune.Tuning(64, 4, 4)]
)
def test_every_launch_shape_gives_the_same_scores(
    rng: np.random.Generator, tuning: tune.Tuning
) -> None:
    dim, lengths = 128, [1, 127, 128, 129, 300]
    pages = [unit(rng, n, dim) for n in lengths]
    queries = [unit(rng, n, dim) for n in (3, 32)]
    rows, _ = packed_pages(pages, "float16")
    starts, lens = addresses(lengths)
    packed = mt.pack_queries([torch.from_numpy(q) for q in queries], DEVICE)
    got = mt.maxsim_shared(packed, rows, starts, lens, tuning=tuning).cpu().numpy()
    read = as_read(rows, None, lengths)
    want = np.stack([maxsim_reference(q, read) for q in queries])
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)


def test_fast_mode_trades_precision_for_half_the_products(rng: np.random.Generator) -> None:
    dim, lengths = 64, [20, 40, 9]
    pages = [unit(rng, n, dim) for n in lengths]
    query = unit(rng, 16, dim)
    rows, _ = packed_pages(pages, "float16")
    starts, lens = addresses(lengths)
    read = as_read(rows, None, lengths)
    want = maxsim_reference(query, read)
    exact = mt.maxsim_shared(mt.pack_queries([query], DEVICE), rows, starts, lens)
    fast = mt.maxsim_shared(mt.pack_queries([query], DEVICE, exact=False), rows, starts, lens)
    exact_err = np.abs(exact.cpu().numpy()[0] - want).max() / np.abs(want).max()
    fast_err = np.abs(fast.cpu().numpy()[0] - want).max() / np.abs(want).max()
    assert exact_err < 1e-6 < fast_err < 2e-3


@pytest.mark.skipif(DEVICE.type != "cuda", reason="the launch-shape timing runs on CUDA only")
def test_autotune_picks_a_shape_once_per_key(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATESTORE_KERNEL_AUTOTUNE", "1")
    monkeypatch.setattr(mt, "_CHOSEN", {})
    dim, lengths = 96, [50] * 40
    pages = [unit(rng, n, dim) for n in lengths]
    rows, _ = packed_pages(pages, "float16")
    starts, lens = addresses(lengths)
    query = unit(rng, 8, dim)
    read = as_read(rows, None, lengths)
    for _ in range(2):
        got = mt.maxsim_shared(mt.pack_queries([query], DEVICE), rows, starts, lens)
        np.testing.assert_allclose(got.cpu().numpy()[0], maxsim_reference(query, read), rtol=2e-6)
    assert len(tune._CHOSEN) == 1
