"""The shapes long work takes for progress reports and cancelling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Progress = Callable[[int, int, str], None]
"""Called with (done, total, message); total 0 means not known yet."""


class CancelFlag(Protocol):
    """Anything with `is_set()`, such as `threading.Event`."""

    def is_set(self) -> bool: ...
