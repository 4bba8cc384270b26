"""Rewrite the encoder family x status table (docs/oracle.md) from the oracle tests' results.

The oracle tests (``tests/oracle``) write one JSON record per family into
``build/oracle``; this script renders them, plus the families no oracle covers yet,
between the ``<!-- oracle-table:start -->`` and ``<!-- oracle-table:end -->`` markers.

Usage: ``python tools/oracle_table.py docs/oracle.md build/oracle`` (``make oracle-table``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

START, END = "<!-- oracle-table:start -->", "<!-- oracle-table:end -->"

# Families with no oracle run yet, and why: listed so the table shows every family.
UNTESTED: dict[str, str] = {}


def _number(value: float) -> str:
    return "n/a" if value != value or value == float("inf") else f"{value:.1e}"


def render(records: list[dict[str, Any]]) -> str:
    lines = [
        "| family | reference | status | max abs diff (vectors) | max rel diff (scores) "
        "| token counts equal | note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for record in sorted(records, key=lambda r: str(r["family"])):
        lines.append(
            f"| {record['family']} | {record['reference']} | {record['status']} "
            f"| {_number(record['max_abs_diff'])} | {_number(record['max_rel_score_diff'])} "
            f"| {'yes' if record['token_counts_equal'] else 'no'} | {record.get('note', '')} |"
        )
    for family, reason in UNTESTED.items():
        lines.append(f"| {family} | - | untested | - | - | - | {reason} |")
    return "\n".join(lines)


def rewrite(readme: Path, results: Path) -> None:
    records = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    if not records:
        raise SystemExit(f"no oracle results in {results}: run `make oracle` first")
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{render(records)}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python tools/oracle_table.py README.md RESULTS_DIR")
    rewrite(Path(sys.argv[1]), Path(sys.argv[2]))
