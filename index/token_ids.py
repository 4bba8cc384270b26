"""How a FAISS token id names its page: ``(page_id << TOKEN_BITS) | token_position``.

Apart from :mod:`latestore.index.token_index` so that the code that only packs or
unpacks these ids (input checks, rankings) does not import FAISS: a lexical search
never touches the token index.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

TOKEN_BITS = 20
MAX_TOKENS_PER_PAGE = 1 << TOKEN_BITS
TOKEN_MASK = MAX_TOKENS_PER_PAGE - 1


def token_ids(page_id: int, n_tokens: int) -> npt.NDArray[np.int64]:
    return (np.int64(page_id) << TOKEN_BITS) + np.arange(n_tokens, dtype=np.int64)


def pages_of(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return ids >> TOKEN_BITS
