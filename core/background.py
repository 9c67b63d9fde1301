"""Threads the engines keep: one named thread that runs calls in turn, and a value made once and shared.

Long work (training, evaluation, the rounds) and its one-at-a-time rule are in `core.lab`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class OneThread:
    """One named thread that runs the calls given to it one after another.

    For engines whose threads must not change from call to call: llama.cpp's OpenMP teams, a query
    embedder held to one core.
    """

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._ident = self._executor.submit(threading.get_ident).result()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue `fn(*args)` behind the calls already waiting; a future not yet started can be cancelled."""
        return self._executor.submit(fn, *args)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the thread, waiting for it (directly when already on that thread)."""
        if self.is_current():
            return fn(*args)
        return self.submit(fn, *args).result()

    def is_current(self) -> bool:
        return threading.get_ident() == self._ident

    def shutdown(self) -> None:
        """Run what is queued, then end the thread (and whatever it holds per thread, such as an OpenMP team)."""
        self._executor.shutdown(wait=not self.is_current())


def once(factory: Callable[[], T]) -> Callable[[], T]:
    """A getter that makes `factory()` on its first call, whichever thread asks first, and shares it."""
    lock = threading.Lock()
    made: list[T] = []

    def get() -> T:
        with lock:
            if not made:
                made.append(factory())
            return made[0]

    return get
