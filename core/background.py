"""Long work in a background thread that every session can watch: training, evaluation, the staged loop.

A job owns a thread, a Stop flag and a view: an immutable snapshot (a dataclass) of its progress
that the thread replaces under a lock and any page reads with `view()`. Whatever ends the work
(done, stopped, an error of ours, a crash) reaches the view, and `finished` is always set.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Generic, Self, TypeVar

from core.errors import AppError, TrainingCancelled

log = logging.getLogger(__name__)

V = TypeVar("V")
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
        if threading.get_ident() == self._ident:
            return fn(*args)
        return self.submit(fn, *args).result()


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


@dataclass(kw_only=True)
class BackgroundJob(Generic[V]):
    """The thread, the Stop flag and the locked view; subclasses give `_thread_name` and `_work`.

    `_view` must be set before `start()`; its field `ENDED_FIELD` says how the work ended ("done" or
    whatever `_work` returns, else "cancelled" or "failed"), with `message`; a crash's message starts
    with `CRASHED`. A view holding lists the thread appends to (`_append`) overrides `_snapshot` to copy
    them, so that a page never sees a list change under it.
    """

    ENDED_FIELD: ClassVar[str] = "phase"
    CRASHED: ClassVar[str] = "It failed"

    cancel_flag: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _view: V | None = None
    _thread: threading.Thread | None = None

    def _thread_name(self) -> str:
        raise NotImplementedError

    def _work(self) -> dict[str, Any]:
        """Do the work, reporting through `_update` and `_append`; return the view's final changes."""
        raise NotImplementedError

    def _outcome(self, outcome: str, message: str) -> dict[str, Any]:
        """The view's changes for an end other than success.

        `outcome` is "cancelled" (Stop), "failed" (an error of ours, `message` says what to do) or
        "crashed" (anything else; `message` is the exception's text, logged with its traceback).
        """
        if outcome == "crashed":
            return {self.ENDED_FIELD: "failed", "message": f"{self.CRASHED}: {message}"}
        return {self.ENDED_FIELD: outcome, "message": message}

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self._thread_name(), daemon=True)
        self._thread.start()
        return self

    def view(self) -> V:
        with self._lock:
            assert self._view is not None
            return self._snapshot(self._view)

    def _snapshot(self, view: V) -> V:
        return copy.copy(view)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _update(self, **changes: Any) -> None:
        with self._lock:
            assert self._view is not None
            self._view = replace(self._view, **changes)  # type: ignore[type-var]

    def _change(self, change: Callable[[V], V]) -> None:
        """Replace the view by `change(view)`, under the lock (for changes that read the view)."""
        with self._lock:
            assert self._view is not None
            self._view = change(self._view)

    def _append(self, items: Callable[[V], list[Any]], item: Any) -> None:
        with self._lock:
            assert self._view is not None
            items(self._view).append(item)

    def _run(self) -> None:
        try:
            self._update(**self._work())
        except TrainingCancelled as e:
            self._update(**self._outcome("cancelled", str(e)))
        except AppError as e:
            self._update(**self._outcome("failed", str(e)))
        except Exception as e:  # noqa: BLE001 - a crash in the thread must reach the page, not vanish
            log.exception("%s crashed", self._thread_name())
            self._update(**self._outcome("crashed", str(e)))
        finally:
            self._update(finished=time.time())
