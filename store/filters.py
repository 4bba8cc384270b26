"""Metadata filters compiled to parameterised SQL.

A filter is a JSON-like dict, MongoDB style::

    {"document_id": "report.pdf"}                       # equality
    {"year": {"$gte": 2019, "$lt": 2024}}               # range (numbers or ISO dates)
    {"lang": {"$in": ["en", "de"]}}                     # membership
    {"$or": [{"kind": "slide"}, {"page_number": 1}]}    # boolean combinations

Bare names are page columns (``document_id``, ``page_number``, ``external_id``,
``source``, ``page_id``, ``created_at``, ``updated_at``) or metadata keys;
``metadata.<key>`` always means a metadata key. Values only ever reach the database as
bound parameters, never as SQL text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    bindparam,
    case,
    false,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement as ColumnExpr

from latestore.errors import FilterError, UnknownFilterFieldError, UnknownFilterOperatorError
from latestore.store.filter_sql import HoldsKind, balanced, metadata_value
from latestore.store.schema import MetadataKeyRow, PageRow

COLUMNS: dict[str, Any] = {
    "page_id": PageRow.id,
    "external_id": PageRow.external_id,
    "document_id": PageRow.document_id,
    "page_number": PageRow.page_number,
    "source": PageRow.source,
    "created_at": PageRow.created_at,
    "updated_at": PageRow.updated_at,
}
COMPARISONS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"}
MAX_DEPTH = 32
MAX_CLAUSES = 1_000
MAX_IN_VALUES = 10_000
INT32 = 2**31
# The kind of value each page column holds (dates are given as ISO strings or dates).
COLUMN_KINDS = {
    "page_id": "number",
    "page_number": "number",
    "external_id": "string",
    "document_id": "string",
    "source": "string",
    "created_at": "string",
    "updated_at": "string",
}
COLUMN_KIND_NAMES = {"number": "whole numbers", "string": "text (dates: ISO text or dates)"}
# Bound values in one compiled filter (a metadata comparison binds its key and its
# value). PostgreSQL refuses a statement with more than 65,535 parameters, and a
# filter is one WHERE clause, so it cannot be split into chunks like a list of ids.
MAX_BOUND_VALUES = 30_000
NUL = "\x00"


def filter_clause(session: Session, spec: Mapping[str, Any]) -> ColumnElement[bool]:
    """``spec`` compiled against the metadata keys the store knows."""
    kinds = {
        row.key: set(row.kinds.split(","))
        for row in session.execute(select(MetadataKeyRow)).scalars()
    }
    return FilterCompiler(kinds).compile(spec)


def ids_where(session: Session, clause: ColumnElement[bool]) -> list[int]:
    query = select(PageRow.id).where(clause).order_by(PageRow.id)
    return [int(i) for i in session.execute(query).scalars()]


def matching_page_ids(session: Session, spec: Mapping[str, Any]) -> list[int]:
    """Ids of the pages matching ``spec``, ascending: one parameterised SQL query."""
    return ids_where(session, filter_clause(session, spec))


def any_of(
    *,
    page_ids: Sequence[int] = (),
    external_ids: Sequence[str] = (),
    document_ids: Sequence[str] = (),
    spec: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """One filter for the pages selected in any of these ways (None: none given), so
    that a delete by ids, documents and a filter together is one transaction and a bad
    filter stops it before anything is deleted."""
    parts: list[Mapping[str, Any]] = []
    for field, values in (
        ("page_id", page_ids),
        ("external_id", external_ids),
        ("document_id", document_ids),
    ):
        if values:
            parts.append({field: {"$in": list(values)}})
    if spec is not None:
        parts.append(spec)
    if not parts:
        return None
    return dict(parts[0]) if len(parts) == 1 else {"$or": parts}


def kind_of(value: Any) -> str:
    """The JSON kind a metadata value is recorded under."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


class FilterCompiler:
    """Turns filter dicts into SQLAlchemy clauses over ``ls_pages``.

    ``metadata_kinds`` maps each metadata key seen in the store to the kinds of value
    it holds; it is how unknown fields are rejected without touching page rows.
    """

    def __init__(self, metadata_kinds: Mapping[str, set[str]]) -> None:
        self.metadata_kinds = metadata_kinds
        self._clauses = 0
        self._bound = 0

    def compile(self, spec: Mapping[str, Any]) -> ColumnElement[bool]:
        self._clauses = 0
        self._bound = 0
        return self._node(spec, depth=0)

    def _node(self, spec: Any, depth: int) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels")
        if not isinstance(spec, Mapping) or not spec:
            raise FilterError(f"a filter must be a non-empty dict, got {spec!r:.80}")
        parts = []
        for key, value in spec.items():
            if not isinstance(key, str):
                raise FilterError(f"filter keys must be strings, got {key!r:.80}")
            if key in ("$and", "$or"):
                if not isinstance(value, list) or not value:
                    raise FilterError(f"{key} takes a non-empty list of filters")
                children = [self._node(child, depth + 1) for child in value]
                parts.append(balanced(and_ if key == "$and" else or_, children))
            elif key == "$not":
                parts.append(not_(self._node(value, depth + 1)))
            elif key.startswith("$"):
                raise UnknownFilterOperatorError(
                    f"unknown filter operator {key!r:.80}; use $and, $or, $not or a field name"
                )
            else:
                parts.append(self._field(key, value))
        return balanced(and_, parts)

    def _field(self, name: str, condition: Any) -> ColumnElement[bool]:
        target = self._resolve(name)
        if not (isinstance(condition, Mapping) and any(str(k).startswith("$") for k in condition)):
            return self._compare(target, name, "$eq", condition)
        parts = []
        for op, operand in condition.items():
            if op not in COMPARISONS:
                raise UnknownFilterOperatorError(
                    f"unknown operator {op!r:.80} on field {name!r}; known: {sorted(COMPARISONS)}"
                )
            parts.append(self._compare(target, name, op, operand))
        return and_(*parts) if len(parts) > 1 else parts[0]

    def _resolve(self, name: str) -> tuple[str, Any]:
        if name in COLUMNS:
            return ("column", COLUMNS[name])
        key = name.removeprefix("metadata.")
        if key in self.metadata_kinds:
            return ("metadata", key)
        known = sorted(COLUMNS) + sorted(self.metadata_kinds)
        raise UnknownFilterFieldError(
            f"unknown filter field {name!r:.80}: no page has it; known fields: {known[:50]}",
            field=name,
        )

    def _compare(
        self, target: tuple[str, Any], name: str, op: str, value: Any
    ) -> ColumnElement[bool]:
        self._clauses += 1
        if self._clauses > MAX_CLAUSES:
            raise FilterError(f"filter has more than {MAX_CLAUSES} conditions")
        if op == "$exists":
            if not isinstance(value, bool):
                raise FilterError(f"$exists on {name!r} takes true or false")
            present = (
                self._expr(target, "string", guarded=False).is_not(None)
                if target[0] == "metadata"
                else (target[1].is_not(None))
            )
            result: ColumnElement[bool] = present if value else not_(present)
            return result
        if op in ("$in", "$nin"):
            if not isinstance(value, list | tuple | set) or len(value) > MAX_IN_VALUES:
                raise FilterError(
                    f"{op} on {name!r} takes a list of at most {MAX_IN_VALUES} values"
                )
            if not value:
                return false() if op == "$in" else true()
            members = self._members(target, name, list(value))
            return members if op == "$in" else not_(members)
        return self._scalar(target, name, op, value)

    def _members(
        self, target: tuple[str, Any], name: str, values: list[Any]
    ) -> ColumnElement[bool]:
        """``target`` equals one of ``values``: one IN (...) per kind of value.

        Not an OR of equalities: SQLite parses a long OR chain into an expression tree
        deeper than the 1,000 levels it accepts.
        """
        by_kind: dict[str, list[Any]] = {}
        for value in values:
            value, kind = self._operand(target, name, "$eq", value)
            self._bind(1)
            if isinstance(value, str) and NUL in value:
                continue  # no stored text holds NUL: this member equals nothing
            by_kind.setdefault(kind, []).append(value)
        parts = []
        for kind, members in by_kind.items():
            if target[0] == "metadata":
                if kind != "null" and kind not in self.metadata_kinds[target[1]]:
                    continue  # no page holds this kind of value under this key
                self._bind(1)  # the JSON path
            column = self._expr(target, kind) if target[0] == "metadata" else target[1]
            if kind == "null":
                parts.append(column.is_(None))
            elif kind == "number" and any(isinstance(m, float) for m in members):
                parts.append(column.in_([_number(m) for m in members]))
            else:
                parts.append(column.in_(members))
        if not parts:
            return false()
        return or_(*parts) if len(parts) > 1 else parts[0]

    def _bind(self, count: int) -> None:
        self._bound += count
        if self._bound > MAX_BOUND_VALUES:
            raise FilterError(
                f"filter compares more than {MAX_BOUND_VALUES} values in all; "
                "split it into several calls"
            )

    def _operand(self, target: tuple[str, Any], name: str, op: str, value: Any) -> tuple[Any, str]:
        """Check one filter value against its field and ``op``; returns it and its kind.

        Values of a kind a column cannot hold are refused rather than passed on, where
        SQLite would compare them loosely and PostgreSQL fail with a type error.
        """
        value = _plain(value, name)
        kind = kind_of(value)
        if kind in ("list", "object"):
            raise FilterError(f"cannot compare {name!r} with a {kind}")
        if kind in ("bool", "null") and op not in ("$eq", "$ne"):
            raise FilterError(f"{op} needs a number, string or date, got {value!r} for {name!r}")
        if target[0] == "column" and kind != "null":
            wanted = COLUMN_KINDS[name]
            if kind != wanted:
                raise FilterError(
                    f"{name!r} holds {COLUMN_KIND_NAMES[wanted]}; cannot compare it with "
                    f"{value!r:.80}"
                )
            if name in ("created_at", "updated_at"):
                value = _parse_datetime(value, name)
        if kind == "number" and isinstance(value, int) and not -INT32 <= value < INT32:
            # Past a 32-bit column (PostgreSQL) or a 64-bit integer (SQLite) a Python int
            # fails to bind; as a float it compares correctly with every stored integer.
            try:
                value = float(value)
            except OverflowError as exc:
                raise FilterError(
                    f"a {value.bit_length()}-bit integer is too large a number for {name!r}"
                ) from exc
        return value, kind

    def _scalar(
        self, target: tuple[str, Any], name: str, op: str, value: Any
    ) -> ColumnElement[bool]:
        self._bind(2 if target[0] == "metadata" else 1)  # a metadata key is bound too
        value, kind = self._operand(target, name, op, value)
        if isinstance(value, str) and NUL in value:
            # Text with NUL is refused on write, so nothing equals it; PostgreSQL would
            # fail the query rather than compare. An order against it would depend on
            # how each database sorts NUL, so it is refused on both.
            if op in ("$eq", "$ne"):
                return false() if op == "$eq" else true()
            raise FilterError(f"{op} on {name!r}: the value contains a NUL character")
        if target[0] == "metadata":
            seen = self.metadata_kinds[target[1]]
            if op not in ("$eq", "$ne") and kind == "number" and "string" in seen:
                raise FilterError(
                    f"metadata key {name!r} holds both numbers and strings; a numeric range "
                    "on it is ambiguous"
                )
            if kind != "null" and kind not in seen:
                # No page holds this kind of value under this key: nothing equals it.
                return true() if op == "$ne" else false()
            column = self._expr(target, kind)
        else:
            column = target[1]
        if kind == "null":
            nullness: ColumnElement[bool] = column.is_(None) if op == "$eq" else column.is_not(None)
            return nullness
        if isinstance(value, float):
            value = _number(value)
        compare: dict[str, Callable[[Any, Any], ColumnExpr[bool]]] = {
            "$eq": lambda c, v: c == v,
            "$ne": lambda c, v: or_(c != v, c.is_(None)),
            "$gt": lambda c, v: c > v,
            "$gte": lambda c, v: c >= v,
            "$lt": lambda c, v: c < v,
            "$lte": lambda c, v: c <= v,
        }
        return compare[op](column, value)

    def _expr(self, target: tuple[str, Any], kind: str, *, guarded: bool = True) -> Any:
        """``metadata[key]`` read as ``kind``; NULL where the key holds another kind."""
        key = target[1]
        element = metadata_value(key)
        if kind == "number":
            value = element.as_float()
        elif kind == "bool":
            value = element.as_boolean()
        else:
            value = element.as_string()
        if guarded and kind != "null" and self.metadata_kinds[key] - {kind, "null"}:
            return case((HoldsKind(key, kind), value))
        return value


def _number(value: float) -> Any:
    """A float bound as a float: a column's own (integer) type would cast it back."""
    return bindparam(None, value, type_=Float())


def _plain(value: Any, name: str) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        raise FilterError(f"NaN is not a valid filter value for {name!r}")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise FilterError(
                f"the value for {name!r} is not valid Unicode (lone surrogate at {exc.start})",
                field=name,
            ) from exc
    return value


def _parse_datetime(value: str, name: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise FilterError(f"{name!r} needs an ISO date, got {value!r:.80}") from exc
