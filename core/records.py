"""SQLite history of answers (later: evaluations and training jobs) in DATA_DIR/records.sqlite."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    question TEXT NOT NULL,
    strategy TEXT NOT NULL,
    model TEXT NOT NULL,
    template TEXT NOT NULL,
    template_version INTEGER NOT NULL,
    answer TEXT NOT NULL,
    error TEXT,
    ttft_s REAL,
    total_s REAL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_question ON answers (question);
"""


@dataclass(frozen=True)
class AnswerRow:
    id: int
    created: str
    question: str
    strategy: str
    model: str
    template: str
    template_version: int
    answer: str
    error: str | None
    ttft_s: float | None
    total_s: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    detail: dict[str, Any]


class Records:
    """One connection per thread (sqlite3's rule); WAL so readers never wait for a writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def add_answer(self, row: dict[str, Any]) -> int:
        columns = [c for c in AnswerRow.__dataclass_fields__ if c != "id"]
        values = [json.dumps(row["detail"]) if c == "detail" else row.get(c) for c in columns]
        with self._conn() as conn:
            cur = conn.execute(
                f"INSERT INTO answers ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})", values
            )
            return int(cur.lastrowid or 0)

    def answers(self, *, question: str | None = None, limit: int = 100) -> list[AnswerRow]:
        sql = "SELECT * FROM answers" + (" WHERE question = ?" if question else "") + " ORDER BY id DESC LIMIT ?"
        args: tuple[Any, ...] = (question, limit) if question else (limit,)
        rows = self._conn().execute(sql, args).fetchall()
        plain = [name for name in AnswerRow.__dataclass_fields__ if name != "detail"]
        return [AnswerRow(**{k: r[k] for k in plain}, detail=json.loads(r["detail"])) for r in rows]

    def recent_questions(self, limit: int = 20) -> list[str]:
        rows = (
            self._conn()
            .execute("SELECT question FROM answers GROUP BY question ORDER BY MAX(id) DESC LIMIT ?", (limit,))
            .fetchall()
        )
        return [r[0] for r in rows]
