"""What every reader returns: pages of text, each with its role and the sections that start on it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from core.errors import ParseCancelled

PageRole = Literal["text", "contents", "index", "blank"]
# Pages read but kept out of retrieval: they match many questions and answer none.
UNSEARCHED_ROLES: frozenset[str] = frozenset({"contents", "index", "blank"})


@dataclass(frozen=True)
class Page:
    """One page of text; PDFs have many, text files one per form-feed-separated part.

    `sections` holds (offset into `text`, section path) for each section in force on the page, the
    first at offset 0 when a section began on an earlier page.
    """

    number: int
    text: str
    role: PageRole = "text"
    ocr: bool = False
    sections: tuple[tuple[int, str], ...] = ()

    @property
    def searched(self) -> bool:
        return self.role not in UNSEARCHED_ROLES


@dataclass(frozen=True)
class OcrLimits:
    """How much OCR one uploaded file may ask for; over either limit the file is refused."""

    max_pages: int = 30
    max_seconds: float = 300.0


@dataclass
class Reading:
    """Progress and stop for one file's pages: reports each page, raises ParseCancelled when asked to stop."""

    filename: str
    progress: Callable[[int, int, str], None] | None = None
    should_stop: Callable[[], bool] | None = None
    started: float = field(default_factory=time.perf_counter)

    def page(self, done: int, total: int, message: str) -> None:
        if self.should_stop is not None and self.should_stop():
            raise ParseCancelled(f"Stopped while reading {self.filename} (page {done + 1} of {total}); not added.")
        if self.progress is not None:
            self.progress(done, total, message)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def ranges(numbers: Sequence[int]) -> str:
    """Page numbers as short ranges: 1-3, 7, 9-12."""
    parts: list[str] = []
    run: list[int] = []
    for n in sorted(numbers):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [n]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(parts)
