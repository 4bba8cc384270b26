"""How token vectors are stored: float16, float32, or int8 with a per-token scale.

int8 keeps each token as ``dim`` signed bytes plus one float32 scale (symmetric,
``scale = max|x| / 127``), halving float16's footprint in SQL and in RAM; the rerank
dequantises candidates to float32 before exact MaxSim.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

STORAGE_DTYPES = ("float16", "float32", "int8")


def quantize_int8(
    vectors: npt.NDArray[Any],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    v = np.asarray(vectors, dtype=np.float32)
    scales = np.abs(v).max(axis=1) / 127.0
    safe = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = np.clip(np.rint(v / safe[:, None]), -127, 127).astype(np.int8)
    return codes, scales.astype(np.float32)


def dequantize_int8(
    codes: npt.NDArray[np.int8], scales: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = codes.astype(np.float32) * scales[:, None]
    return out


def unpack_int8_rows(
    rows: npt.NDArray[np.uint8], dim: int
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Packed int8 rows (``dim`` code bytes, then the token's float32 scale) as a view of
    their codes and a (small) copy of their scales."""
    codes = rows[:, :dim].view(np.int8)
    scales = np.ascontiguousarray(rows[:, dim:]).view(np.float32).reshape(-1)
    return codes, scales


def bytes_per_token(dim: int, dtype: str) -> int:
    return dim + 4 if dtype == "int8" else dim * np.dtype(dtype).itemsize


def to_storage(vectors: npt.NDArray[Any], dtype: str) -> bytes:
    """Row-major bytes of ``(n_tokens, dim)`` vectors in the store's dtype."""
    if dtype == "int8":
        codes, scales = quantize_int8(vectors)
        return scales.tobytes() + codes.tobytes()
    return np.ascontiguousarray(vectors, dtype=dtype).tobytes()


def from_storage(blob: bytes, n_tokens: int, dim: int, dtype: str) -> npt.NDArray[np.floating]:
    """Inverse of :func:`to_storage`; int8 comes back dequantised to float32."""
    if len(blob) != n_tokens * bytes_per_token(dim, dtype):
        raise ValueError(
            f"stored vectors hold {len(blob)} bytes, expected {n_tokens}x{dim} {dtype}"
        )
    if dtype == "int8":
        scales = np.frombuffer(blob, dtype=np.float32, count=n_tokens)
        codes = np.frombuffer(blob, dtype=np.int8, offset=4 * n_tokens).reshape(n_tokens, dim)
        return dequantize_int8(codes, scales)
    return np.frombuffer(blob, dtype=dtype).reshape(n_tokens, dim)


def as_stored(vectors: npt.NDArray[Any], dtype: str) -> npt.NDArray[np.floating]:
    """``vectors`` as they read back from storage (a no-op for the float dtypes)."""
    if dtype != "int8":
        return vectors
    return from_storage(to_storage(vectors, dtype), len(vectors), vectors.shape[1], dtype)
