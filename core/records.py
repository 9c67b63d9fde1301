"""SQLite history in DATA_DIR/records.sqlite: Compare's answers, evaluation runs and their answers.

The schema carries a version (`PRAGMA user_version`); opening a file upgrades it step by step,
each step in one transaction, so an older file (a version 0 file holds only `answers`) gains
the new columns and tables with its rows intact, and a crash mid-upgrade leaves the old version.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError

_ANSWERS = """
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

_EVALUATIONS = """
CREATE TABLE eval_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    name TEXT NOT NULL,
    question_set TEXT NOT NULL,
    set_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    finished TEXT,
    spec TEXT NOT NULL
);
ALTER TABLE answers ADD COLUMN run_id INTEGER REFERENCES eval_runs (id) ON DELETE CASCADE;
ALTER TABLE answers ADD COLUMN question_id TEXT;
ALTER TABLE answers ADD COLUMN metrics TEXT;
CREATE UNIQUE INDEX answers_cell ON answers (run_id, question_id, strategy) WHERE run_id IS NOT NULL;
"""

# MIGRATIONS[i] takes a file from version i to version i + 1. Version 0 is every file written
# before versioning: it has `answers` only (CREATE ... IF NOT EXISTS makes step 1 a no-op there).
MIGRATIONS = (_ANSWERS, _EVALUATIONS)
SCHEMA_VERSION = len(MIGRATIONS)


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
    run_id: int | None = None
    question_id: str | None = None
    metrics: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunRow:
    """An evaluation run: what was asked (`spec`: questions, strategies, settings) and how far it got."""

    id: int
    created: str
    name: str
    question_set: str
    set_hash: str
    status: str
    finished: str | None
    spec: dict[str, Any]


_JSON_COLUMNS = {"detail", "metrics"}
_ANSWER_COLUMNS = [c for c in AnswerRow.__dataclass_fields__ if c != "id"]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to SCHEMA_VERSION; returns the version it had.

    Raises:
        ConfigError: the file comes from a newer version of the app.
    """
    conn.execute("BEGIN IMMEDIATE")  # one process upgrades; the others wait, then see it done
    try:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            raise ConfigError(
                f"records.sqlite has schema version {found}, newer than this app's {SCHEMA_VERSION}; "
                "update the app, or point DATA_DIR elsewhere."
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


class Records:
    """One connection per thread (sqlite3's rule); WAL so readers never wait for a writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.migrated_from = migrate(self._conn())

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def add_answer(self, row: dict[str, Any]) -> int:
        """Insert an answer; an evaluation cell (run, question, strategy) asked again replaces the old one."""
        values = [json.dumps(row.get(c)) if c in _JSON_COLUMNS and row.get(c) is not None else row.get(c)
                  for c in _ANSWER_COLUMNS]  # fmt: skip
        cur = self._conn().execute(
            f"INSERT OR REPLACE INTO answers ({', '.join(_ANSWER_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _ANSWER_COLUMNS)})",
            values,
        )
        return int(cur.lastrowid or 0)

    @staticmethod
    def _answer(r: sqlite3.Row) -> AnswerRow:
        fields = {k: r[k] for k in AnswerRow.__dataclass_fields__}
        for k in _JSON_COLUMNS:
            fields[k] = json.loads(fields[k]) if fields[k] is not None else None
        return AnswerRow(**fields)

    def answers(self, *, question: str | None = None, limit: int = 100) -> list[AnswerRow]:
        """Answers asked by hand (Compare), newest first; evaluation answers are read by run."""
        sql = "SELECT * FROM answers WHERE run_id IS NULL" + (" AND question = ?" if question else "")
        args: tuple[Any, ...] = (question, limit) if question else (limit,)
        rows = self._conn().execute(sql + " ORDER BY id DESC LIMIT ?", args).fetchall()
        return [self._answer(r) for r in rows]

    def recent_questions(self, limit: int = 20) -> list[str]:
        rows = (
            self._conn()
            .execute(
                "SELECT question FROM answers WHERE run_id IS NULL GROUP BY question ORDER BY MAX(id) DESC LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def create_run(self, *, created: str, name: str, question_set: str, set_hash: str, spec: dict[str, Any]) -> int:
        cur = self._conn().execute(
            "INSERT INTO eval_runs (created, name, question_set, set_hash, status, spec) VALUES (?, ?, ?, ?, ?, ?)",
            (created, name, question_set, set_hash, "running", json.dumps(spec, ensure_ascii=False)),
        )
        return int(cur.lastrowid or 0)

    def set_run_status(self, run_id: int, status: str, finished: str | None = None) -> None:
        self._conn().execute("UPDATE eval_runs SET status = ?, finished = ? WHERE id = ?", (status, finished, run_id))

    @staticmethod
    def _run(r: sqlite3.Row) -> RunRow:
        return RunRow(**{k: r[k] for k in RunRow.__dataclass_fields__ if k != "spec"}, spec=json.loads(r["spec"]))

    def runs(self, *, set_hash: str | None = None) -> list[RunRow]:
        """Evaluation runs, newest first (only those on one question-set version, when given)."""
        sql = "SELECT * FROM eval_runs" + (" WHERE set_hash = ?" if set_hash else "") + " ORDER BY id DESC"
        rows = self._conn().execute(sql, (set_hash,) if set_hash else ()).fetchall()
        return [self._run(r) for r in rows]

    def get_run(self, run_id: int) -> RunRow | None:
        row = self._conn().execute("SELECT * FROM eval_runs WHERE id = ?", (run_id,)).fetchone()
        return self._run(row) if row else None

    def run_answers(self, run_id: int) -> list[AnswerRow]:
        rows = self._conn().execute("SELECT * FROM answers WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
        return [self._answer(r) for r in rows]

    def done_cells(self, run_id: int) -> set[tuple[str, str]]:
        """(question id, strategy) of the cells a run has answered."""
        rows = self._conn().execute("SELECT question_id, strategy FROM answers WHERE run_id = ?", (run_id,))
        return {(r[0], r[1]) for r in rows.fetchall()}

    def delete_run(self, run_id: int) -> None:
        conn = self._conn()
        conn.execute("BEGIN")
        conn.execute("DELETE FROM answers WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM eval_runs WHERE id = ?", (run_id,))
        conn.execute("COMMIT")
