"""Query tokens as the words a person typed: word pieces merged, special tokens named.

A tokenizer cuts "trustworthiness" into ``trust ##worth ##iness`` (WordPiece) or
``Ġtrust worth iness`` (byte-level BPE), and models add tokens nobody typed: ``[CLS]``,
``[SEP]``, a ``Query:`` prompt, a run of padding tokens that act as query expansion.
MaxSim scores every one of them, so the explanation keeps them all, but groups them
into words (the pieces of one typed word together) and names the rest in plain words.
A word's similarity and share are its tokens' sums: exactly its part of the score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Markers a tokenizer puts on a piece that starts a new word (byte-level BPE, SentencePiece).
_WORD_START = ("Ġ", "▁", " ")
_CONTINUATION = "##"  # WordPiece marks the pieces that continue a word instead
_WORD_CHARS = re.compile(r"\w")

# Special tokens by what they do, for a person. Padding-like tokens at a query's end are
# the "query augmentation" of ColBERT ([MASK]) and ColPali/ColQwen (<pad>, <|endoftext|>):
# they match as expansion terms, so they are named so, not hidden.
_START = {"[CLS]", "<s>", "<bos>", "<|startoftext|>", "<|im_start|>"}
_END = {"[SEP]", "</s>", "<eos>", "<|im_end|>"}
_MARKER = {"[Q]", "[unused0]", "[unused1]", "[D]"}
_EXPANSION = {"[MASK]", "[PAD]", "<pad>", "<|endoftext|>", "<mask>"}
# Byte-level BPE spells whitespace as these pieces; a prompt's line break is one.
_WHITESPACE = {"Ċ": "line break", "ĉ": "tab", "ĊĊ": "line breaks"}


@dataclass(frozen=True)
class QueryWord:
    """One typed word (``kind="word"``), a prompt word the model adds (``"prompt"``), a
    special token (``"special"``) or a run of expansion tokens (``"expansion"``);
    ``tokens`` are the query token positions it covers."""

    text: str
    kind: str
    tokens: tuple[int, ...]


def special_name(token: str) -> str:
    """A special token in words."""
    if token in _START:
        return f"start of query ({token})"
    if token in _END:
        return f"end of query ({token})"
    if token in _MARKER:
        return f"query marker ({token})"
    return f"special token {token}"


def group_words(
    pieces: list[str], specials: set[str], query: str | None, continuation: bool
) -> list[QueryWord]:
    """Group token ``pieces`` (as the tokenizer spells them) into words.

    ``continuation``: the tokenizer marks continuing pieces with ``##`` (WordPiece);
    otherwise a piece starts a word when it carries a start marker (``Ġ``, ``▁``).
    ``query`` is the typed text: words not found in it, in order, are the prompt's.
    """
    groups: list[tuple[str, str, list[int]]] = []  # (text, kind, tokens)
    for i, piece in enumerate(pieces):
        if piece in specials or piece in _EXPANSION:
            kind = "expansion" if piece in _EXPANSION else "special"
            name = "query expansion" if kind == "expansion" else special_name(piece)
            if groups and groups[-1][1] == kind and groups[-1][0] == name:
                groups[-1][2].append(i)
            else:
                groups.append((name, kind, [i]))
            continue
        if piece in _WHITESPACE:
            groups.append((_WHITESPACE[piece], "special", [i]))
            continue
        if continuation:
            starts = not piece.startswith(_CONTINUATION)
            text = piece.removeprefix(_CONTINUATION)
        else:
            starts = piece.startswith(_WORD_START)
            text = piece.lstrip("".join(_WORD_START))
        if starts or not groups or groups[-1][1] != "word":
            groups.append((text, "word", [i]))
        else:
            groups[-1] = (groups[-1][0] + text, "word", [*groups[-1][2], i])
    return [
        QueryWord(_expansion_text(text, t) if kind == "expansion" else text, kind, tuple(t))
        for text, kind, t in _mark_prompt(groups, query)
    ]


def _expansion_text(text: str, tokens: list[int]) -> str:
    return f"{text} ({len(tokens)} token{'s' if len(tokens) != 1 else ''})"


def _mark_prompt(
    groups: list[tuple[str, str, list[int]]], query: str | None
) -> list[tuple[str, str, list[int]]]:
    """Words the user did not type (a model's ``Query:`` prompt) become ``"prompt"``.

    The typed words appear in the query in order; a word is typed when it is found at
    the cursor with nothing but spaces and punctuation skipped before it.
    """
    if query is None:
        return groups
    lowered, at, out = query.lower(), 0, []
    for text, kind, tokens in groups:
        if kind == "word" and text.strip():
            found = lowered.find(text.strip().lower(), at)
            if found >= 0 and not _WORD_CHARS.search(lowered[at:found]):
                at = found + len(text.strip())
            else:
                kind = "prompt"
        out.append((text, kind, tokens))
    return out


def query_words(
    encoder: Any, query: str, n_vectors: int
) -> tuple[list[str], list[QueryWord]] | None:
    """The query's token pieces and its words, when the encoder's tokenizer accounts for
    every query vector (None otherwise: then tokens are shown by number)."""
    processor = getattr(encoder, "_processor", None)
    tokenizer = getattr(encoder, "_tokenizer", None) or getattr(encoder, "tokenizer", None)
    try:
        if processor is not None and hasattr(processor, "process_queries"):
            # The vision encoders' queries go through their processor (prompt, expansion).
            tokenizer = processor.tokenizer
            batch = processor.process_queries(text=[query])
            mask = [int(m) for m in batch["attention_mask"][0]]
            ids = [int(i) for i, m in zip(batch["input_ids"][0], mask, strict=True) if m]
        elif tokenizer is not None and callable(tokenizer):
            limit = getattr(encoder, "query_max_tokens", None)
            kwargs: dict[str, Any] = {"truncation": True, "max_length": limit} if limit else {}
            ids = list(tokenizer(query, add_special_tokens=True, **kwargs)["input_ids"])
        else:
            return None
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    if len(ids) != n_vectors:
        return None
    pieces = [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    specials = {str(t) for t in getattr(tokenizer, "all_special_tokens", [])}
    continuation = any(p.startswith(_CONTINUATION) for p in pieces) or _is_wordpiece(tokenizer)
    return pieces, group_words(pieces, specials, query, continuation)


def _is_wordpiece(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    model = getattr(backend, "model", None)
    return type(model).__name__ == "WordPiece"


def word_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The span widened to whole words: a piece ``worth`` of ``trustworthiness`` shows as
    the word it belongs to."""
    while start > 0 and _WORD_CHARS.match(text[start - 1]):
        start -= 1
    while end < len(text) and _WORD_CHARS.match(text[end]):
        end += 1
    return start, end
