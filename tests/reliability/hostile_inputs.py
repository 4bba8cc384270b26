"""Hostile inputs for test_hostile: payloads that are awkward to build inline."""

from __future__ import annotations

import io
import struct
import zlib

import pypdfium2 as pdfium
from PIL import Image


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A PNG of 900 megapixels that is a few hundred kilobytes on disk."""
    raw_row = b"\x00" + b"\x00" * (width // 8)  # 1-bit greyscale, filter byte 0
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(raw_row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def small_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def pdf_bytes() -> bytes:
    document = pdfium.PdfDocument.new()
    document.new_page(200, 200)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def encrypted_pdf() -> bytes:
    """A PDF whose trailer names a standard security handler no empty password opens."""
    encrypt = b"/Encrypt<</Filter/Standard/V 1/R 2/O<" + b"11" * 32 + b">/U<"
    encrypt += b"22" * 32 + b">/P -4>>"
    data = pdf_bytes()
    assert b"/Size 5" in data
    return data.replace(b"/Size 5", b"/Size 5" + encrypt, 1)


# Query text that FTS5 or tsquery would read as syntax if it were passed through:
# quotes, boolean and proximity operators, prefix stars, negation, grouping, column
# filters, tsquery's own operators and weights, and text the tokenizers find no word in.
LEXICAL_QUERIES = [
    '"',
    '"unterminated phrase',
    '""',
    "a AND b OR c NOT d",
    "AND",
    "OR OR OR",
    "NEAR(pump valve, 2)",
    "NEAR/3",
    "pump*",
    "*",
    "-pump",
    "- - -",
    "(pump",
    "pump)",
    "((()))",
    "text:pump",
    "{text}: pump",
    ":",
    "^pump",
    "pump + valve",
    "pump & valve | !gasket",
    "pump <-> valve <2> gasket",
    "'pump':*A",
    "pump:AB",
    "\\' OR 1=1 --",
    "'; DROP TABLE ls_pages; --",
    "Zürich café ﬁle naïve",
    "пожарный насос",
    "泵和阀门",
    "😀 🚀",
    "\u200b\u200d",
    "x" * 3000,
    " ".join(f"w{i}" for i in range(2000)),
]
