"""SQL pieces the filter compiler needs that SQLAlchemy does not offer as such.

Each exists because of a database limit or quirk, named where it is handled.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, Boolean, ColumnElement, Dialect, TypeDecorator, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from latestore.store.schema import PageRow

GROUP = 32
# JSON value types, as SQLite's json_type() and PostgreSQL's json_typeof() name them.
SQLITE_TYPES = {"number": ("integer", "real"), "string": ("text",), "bool": ("true", "false")}
POSTGRESQL_TYPES = {"number": "number", "string": "string", "bool": "boolean"}


class MetadataKey(TypeDecorator[str]):
    """A metadata key in a JSON path, spelt as the stored JSON spells it.

    SQLAlchemy writes JSON with ``ensure_ascii``, so on SQLite a key such as "ключ"
    is stored as ``"\\u043a..."``, and SQLite before 3.45 compares path labels with
    stored keys as raw text: the plain key matched nothing. The escaped label matches
    on every version (newer ones decode escapes on both sides). PostgreSQL parses
    the JSON and takes the key as it is.
    """

    impl = JSON.JSONStrIndexType
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is not None and dialect.name == "sqlite":
            return json.dumps(value)[1:-1]
        return value


def metadata_value(key: str) -> Any:
    """``metadata[key]`` as a JSON element, ready for ``as_float()`` and the like."""
    return PageRow.meta[bindparam(None, key, type_=MetadataKey())]


class HoldsKind(ColumnElement[bool]):
    """True where ``metadata[key]`` is a JSON value of ``kind`` (number, string, bool).

    It guards casts on keys that hold several kinds: PostgreSQL fails the whole query
    on ``CAST('abc' AS FLOAT)``, and SQLite quietly makes it 0.0, which would match.
    """

    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012
        ("path", InternalTraversal.dp_clauseelement),
        ("kind", InternalTraversal.dp_string),
    ]
    type = Boolean()

    def __init__(self, key: str, kind: str) -> None:
        self.path = bindparam(None, key, type_=MetadataKey())
        self.kind = kind


@compiles(HoldsKind, "sqlite")
def _holds_kind_sqlite(element: HoldsKind, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(PageRow.__table__.c.metadata, **kw)
    names = ", ".join(f"'{name}'" for name in SQLITE_TYPES[element.kind])
    return f"json_type({column}, {compiler.process(element.path, **kw)}) IN ({names})"


@compiles(HoldsKind, "postgresql")
def _holds_kind_postgresql(element: HoldsKind, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(PageRow.__table__.c.metadata, **kw)
    path = compiler.process(element.path, **kw)
    return f"json_typeof({column} -> {path}) = '{POSTGRESQL_TYPES[element.kind]}'"


def balanced(
    combine: Callable[..., ColumnElement[bool]], parts: list[ColumnElement[bool]]
) -> ColumnElement[bool]:
    """``combine(*parts)`` as a tree of parenthesised groups of at most ``GROUP`` parts.

    SQLite parses ``a OR b OR c ...`` into a chain one level deeper per term and
    refuses more than 1,000 levels; groups keep the depth logarithmic.
    """
    if len(parts) == 1:
        return parts[0]
    if len(parts) <= GROUP:
        return combine(*parts)
    size = -(-len(parts) // GROUP)
    groups = [balanced(combine, parts[i : i + size]) for i in range(0, len(parts), size)]
    return combine(*(Parenthesised(g) for g in groups))


class Parenthesised(ColumnElement[bool]):
    """A condition in parentheses that SQLAlchemy will not flatten into its parent."""

    inherit_cache = True
    _traverse_internals = [("inner", InternalTraversal.dp_clauseelement)]  # noqa: RUF012
    type = Boolean()

    def __init__(self, inner: ColumnElement[bool]) -> None:
        self.inner = inner


@compiles(Parenthesised)
def _render_parenthesised(element: Parenthesised, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.inner, **kw)})"
