"""A remote encoder: per-token vectors from a vLLM server's ``/pooling`` API.

vLLM serves late-interaction models with ``task: "token_embed"``: one vector per input
token. Text goes in ``input`` (batched), an image page goes in chat-style ``messages``
with a base64 data URL (vLLM takes one conversation per request). The server returns
``data[i].data`` as nested float lists, or with ``encoding_format: "base64"`` the
flattened tensor bytes in ``embed_dtype`` (float32, float16 or bfloat16).

The server applies no retrieval prompt of its own, so the query/page prompt contract of
the model (prefix, query augmentation, the text beside an image) is applied here and
recorded in the fingerprint.

Examples
--------
>>> enc = VLLMEncoder("http://127.0.0.1:8000/v1", "vidore/colqwen2-v1.0-hf",
...                   prompts=PROMPT_PRESETS["colqwen2"])  # doctest: +SKIP
>>> enc.encode_queries(["total revenue 2023"])[0].shape  # doctest: +SKIP
(24, 128)
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

import httpx
import numpy as np

from latestore.encoders.base import PageContent, TokenVectors, fingerprint_of, l2_normalise
from latestore.encoders.prompts import PROMPT_PRESETS, PromptContract
from latestore.errors import EncoderError

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["PROMPT_PRESETS", "PromptContract", "VLLMEncoder"]

EmbedDtype = Literal["float32", "float16", "bfloat16"]
_ITEM_SIZE: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2}


_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class VLLMEncoder:
    """Token vectors from a vLLM ``/pooling`` endpoint.

    Parameters
    ----------
    base_url:
        The server root including any ``/v1`` (``{base_url}/pooling`` is called).
    model:
        The served model name (``--served-model-name`` or the checkpoint path).
    dim:
        Expected vector size; when omitted it is learnt from one probe query at
        construction (so the server must be up). Responses of another size are refused.
    prompts:
        The model's query/page prompt contract, applied client-side.
    encoding_format, embed_dtype:
        ``"float"`` (JSON lists) or ``"base64"`` (raw bytes, ~4x smaller on the wire);
        ``embed_dtype`` picks the on-wire precision for base64.
    timeout:
        Seconds per request (connect, read and write).
    max_retries, backoff:
        Retries after a 429/5xx status, a connection error or a timeout, sleeping
        ``backoff * 2**attempt`` seconds between tries. 4xx statuses are not retried.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        dim: int | None = None,
        *,
        prompts: PromptContract | None = None,
        encoding_format: Literal["float", "base64"] = "float",
        embed_dtype: EmbedDtype = "float32",
        batch_size: int = 16,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        api_key: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        if encoding_format not in ("float", "base64"):
            raise EncoderError(
                f"encoding_format must be 'float' or 'base64', not {encoding_format!r}"
            )
        if embed_dtype not in _ITEM_SIZE:
            raise EncoderError(
                f"embed_dtype must be one of {sorted(_ITEM_SIZE)}, not {embed_dtype!r}"
            )
        if batch_size < 1 or max_retries < 0 or timeout <= 0:
            raise EncoderError("batch_size must be >= 1, max_retries >= 0 and timeout > 0")
        self.name = f"vllm:{model}"
        self.model = model
        self.url = base_url.rstrip("/") + "/pooling"
        self.device = "remote"
        self.batch_size = batch_size
        self.prompts = prompts or PromptContract()
        self.encoding_format = encoding_format
        self.embed_dtype = embed_dtype
        self.max_retries = max_retries
        self.backoff = backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout), headers=headers)
        self._dim = dim
        if dim is None:
            # The probe skips the prompt contract: only the width of its vectors matters.
            self._dim = int(self._post_text(["dimension probe"])[0].shape[1])
        self.dim: int = int(self._dim or 0)
        self.fingerprint = fingerprint_of(
            {
                "family": "vllm-token-embed",
                "model": model,
                "dim": self.dim,
                "prompts": asdict(self.prompts),
                # bf16/fp16 transfer rounds the vectors, so it is part of their identity.
                "wire_dtype": embed_dtype if encoding_format == "base64" else "float32",
            }
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> VLLMEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]:
        texts = [self.prompts.query(q) for q in queries]
        out: list[TokenVectors] = []
        for start in range(0, len(texts), self.batch_size):
            out.extend(self._post_text(texts[start : start + self.batch_size]))
        return out

    def encode_pages(self, pages: Sequence[PageContent]) -> list[TokenVectors]:
        out: list[TokenVectors | None] = [None] * len(pages)
        text_rows: list[int] = []
        for row, page in enumerate(pages):
            if page.image is not None:
                out[row] = self._post_image(page.image)
            elif page.text:
                text_rows.append(row)
            else:
                raise EncoderError(f"page {row} has neither text nor an image")
        for start in range(0, len(text_rows), self.batch_size):
            chunk = text_rows[start : start + self.batch_size]
            texts = [self.prompts.page(pages[i].text or "") for i in chunk]
            for row, vectors in zip(chunk, self._post_text(texts), strict=True):
                out[row] = vectors
        return [v for v in out if v is not None]

    # -- requests -------------------------------------------------------------------

    def _base_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "task": "token_embed",
            "encoding_format": self.encoding_format,
        }
        if self.encoding_format == "base64":
            # Little-endian pinned so decoding does not depend on the server's CPU.
            payload["embed_dtype"] = self.embed_dtype
            payload["endianness"] = "little"
        return payload

    def _post_text(self, texts: list[str]) -> list[TokenVectors]:
        payload = self._base_payload() | {"input": texts}
        return self._parse(self._post(payload), expected=len(texts))

    def _post_image(self, image: Image) -> TokenVectors:
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": image_data_url(image)}}
        ]
        if self.prompts.image_prompt:
            content.append({"type": "text", "text": self.prompts.image_prompt})
        payload = self._base_payload() | {"messages": [{"role": "user", "content": content}]}
        return self._parse(self._post(payload), expected=1)[0]

    def _post(self, payload: dict[str, Any]) -> Any:
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._client.post(self.url, json=payload)
            except httpx.TimeoutException as exc:
                last_problem = f"timed out ({type(exc).__name__})"
                continue
            except httpx.TransportError as exc:
                last_problem = f"connection failed ({type(exc).__name__}: {exc})"
                continue
            if response.status_code in _RETRY_STATUSES:
                last_problem = f"HTTP {response.status_code}: {_error_message(response)}"
                continue
            if response.status_code >= 400:
                raise EncoderError(
                    f"vLLM at {self.url} rejected the request with HTTP {response.status_code}: "
                    f"{_error_message(response)}"
                )
            try:
                return response.json()
            except json.JSONDecodeError as exc:
                raise EncoderError(f"vLLM at {self.url} returned a non-JSON body") from exc
        raise EncoderError(
            f"vLLM at {self.url} failed after {self.max_retries + 1} attempts: {last_problem}"
        )

    # -- responses ------------------------------------------------------------------

    def _parse(self, body: Any, expected: int) -> list[TokenVectors]:
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != expected:
            got = len(items) if isinstance(items, list) else "no"
            raise EncoderError(f"vLLM returned {got} results for {expected} inputs")
        if all(isinstance(item, dict) and "index" in item for item in items):
            items = sorted(items, key=lambda item: item["index"])
        return [self._decode(item, i) for i, item in enumerate(items)]

    def _decode(self, item: Any, position: int) -> TokenVectors:
        raw = item.get("data") if isinstance(item, dict) else None
        if isinstance(raw, str):
            array = self._from_base64(raw, position)
        elif isinstance(raw, list) and raw:
            try:
                array = np.asarray(raw, dtype=np.float32)
            except (ValueError, TypeError) as exc:
                raise EncoderError(f"result {position}: ragged or non-numeric vectors") from exc
            if array.ndim == 1 and self._dim and array.size % self._dim == 0:
                array = array.reshape(-1, self._dim)
        else:
            raise EncoderError(f"result {position}: no token vectors in 'data'")
        if array.ndim != 2 or array.shape[0] == 0:
            raise EncoderError(
                f"result {position}: expected (n_tokens, dim) vectors, got shape {array.shape}"
                " (is the server running task token_embed on a multi-vector model?)"
            )
        if self._dim is not None and array.shape[1] != self._dim:
            raise EncoderError(
                f"result {position}: vectors of dim {array.shape[1]}, expected {self._dim}"
            )
        if not np.isfinite(array).all():
            raise EncoderError(f"result {position}: vectors contain NaN or infinity")
        return l2_normalise(array)

    def _from_base64(self, raw: str, position: int) -> TokenVectors:
        if self._dim is None:
            raise EncoderError(
                "base64 responses carry no shape: give dim= or use encoding_format='float'"
            )
        try:
            blob = base64.b64decode(raw, validate=True)
        except ValueError as exc:
            raise EncoderError(f"result {position}: invalid base64") from exc
        row_bytes = self._dim * _ITEM_SIZE[self.embed_dtype]
        if not blob or len(blob) % row_bytes:
            raise EncoderError(
                f"result {position}: {len(blob)} bytes is not a whole number of "
                f"{self._dim}-dim {self.embed_dtype} vectors"
            )
        if self.embed_dtype == "float32":
            flat = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        elif self.embed_dtype == "float16":
            flat = np.frombuffer(blob, dtype="<f2").astype(np.float32)
        else:
            # bfloat16 is the top half of a float32: widen by shifting into the high bits.
            flat = (np.frombuffer(blob, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        return flat.reshape(-1, self._dim)


def image_data_url(image: Image) -> str:
    """A PNG data URL (lossless, so the server sees the page the caller rendered)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _error_message(response: httpx.Response) -> str:
    # vLLM answers errors as {"error": {"message": ...}} (newer) or {"message": ...} (older).
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:300]
        if "message" in body:
            return str(body["message"])[:300]
        if "detail" in body:
            return str(body["detail"])[:300]
    return str(body)[:300]
