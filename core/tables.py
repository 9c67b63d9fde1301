"""Uploaded tables (JSONL or CSV): decoding, rows with their line numbers, and what is wrong with each row.

Shared by the two kinds of upload, training pairs (`core.finetune.datasets`) and question sets
(`core.evaluation.questions`), so both read a file the same way and name a bad row by the line an
editor shows.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import AppError

_SPACES = re.compile(r"\s+")
TABLE_SUFFIXES = frozenset({".jsonl", ".csv"})


@dataclass(frozen=True)
class RowIssue:
    """A problem with one row (1-based, as an editor shows it) or with the whole file (row 0)."""

    row: int
    field: str
    message: str


def text_key(text: str) -> str:
    """A text as duplicates are found: white space folded, case ignored."""
    return _SPACES.sub(" ", text).strip().casefold()


def decode(filename: str, data: bytes, error: type[AppError]) -> str:
    """An upload's text (UTF-8, a BOM dropped).

    Raises:
        error: the file is empty or not UTF-8, with the line of the first bad byte.
    """
    if not data.strip():
        raise error(f"{filename} is empty.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(
            f"{filename} is not UTF-8 text (bad byte at line {line}); save it as UTF-8 and upload it again."
        ) from e


def jsonl_objects(text: str, issues: list[RowIssue]) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """The JSON objects of a JSONL upload with their line numbers, and how many non-blank rows it has.

    A line that is not valid JSON, or not an object, becomes a RowIssue instead.
    """
    objects: list[tuple[int, dict[str, Any]]] = []
    rows = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        rows += 1
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            issues.append(RowIssue(number, "", f"is not valid JSON ({e.msg} at column {e.colno})"))
            continue
        if not isinstance(obj, dict):
            issues.append(RowIssue(number, "", "must be a JSON object"))
            continue
        objects.append((number, obj))
    return objects, rows


def csv_rows(text: str, fields: tuple[str, ...], error: type[AppError]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each CSV row (its line in the file, the header being line 1) as {field: value} for the `fields` it has.

    Raises:
        error: the header names no 'question' or no 'answer' column.
    """
    reader = csv.DictReader(io.StringIO(text))
    header = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
    missing = [f for f in ("question", "answer") if f not in header]
    if missing:
        raise error(
            f"The CSV has no {' or '.join(repr(m) for m in missing)} column; its first row must name the "
            f"columns 'question' and 'answer' (found: {', '.join(header) or 'nothing'})."
        )
    for raw in reader:
        yield reader.line_num, {f: raw.get(header[f]) for f in fields if f in header}
