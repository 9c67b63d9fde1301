"""The process's job board and the job every kind of long work is: a thread, a Stop flag and a view.

A job's view is an immutable snapshot (a dataclass extending `JobState`) of its progress that the
thread replaces under a lock and any page reads with `view()`. Whatever ends the work (done, stopped,
an error of ours, a crash) reaches the view, and `finished` is always set: `running` means one thing
for every kind of job, that it is not finished.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Generic, Self, TypeVar

from core.errors import AppError, BusyError, TrainingCancelled

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class JobState:
    """What every job's view says: when it started and finished, and what it is doing (or how it ended)."""

    started: float = field(default_factory=time.time)
    finished: float | None = None
    message: str = "Starting…"

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.time()) - self.started


V = TypeVar("V", bound=JobState)


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
            self._view = replace(self._view, **changes)

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


J = TypeVar("J", bound=BackgroundJob[Any])
# How the board says a running job of each kind is busy ("<name> is still training").
BUSY_VERB = {"training": "training", "evaluation": "running", "rounds": "running", "registration": "registering"}


@dataclass
class _Entry:
    kind: str
    label: str
    data_dir: Any
    job: BackgroundJob[Any]

    @property
    def running(self) -> bool:
        return bool(self.job.view().running)


class JobBoard:
    """The process's heavy jobs, whatever their kind: training, registration, evaluations, evaluate/train rounds.

    One runs at a time, since each takes every core: `start` refuses while any of them runs, so the
    rule holds on every page and in core, not only where a page remembered to check. `latest(kind)`
    is what a page shows; `running()` says whether anything is busy.
    """

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._lock = threading.Lock()

    def start(self, kind: str, job: J, *, label: str, data_dir: Any = None) -> J:
        """Start `job` (of `kind`, named `label` in messages) unless another heavy job runs.

        Raises:
            BusyError: a job of any kind is still running.
        """
        with self._lock:
            if (busy := self._busy()) is not None:
                raise BusyError(busy)
            self._entries.append(_Entry(kind, label, data_dir, job.start()))
            return job

    def busy(self) -> str | None:
        """Why nothing can start now (the running job, in words), or None when nothing runs."""
        with self._lock:
            return self._busy()

    def _busy(self) -> str | None:
        running = next((e for e in self._entries if e.running), None)
        if running is None:
            return None
        verb = BUSY_VERB.get(running.kind, "running")
        return f"{running.label} is still {verb}; wait for it or stop it before starting another."

    def latest(self, kind: str, data_dir: Any = None) -> Any:
        """The newest job of `kind` (for that DATA_DIR when given), running or not; None when there is none."""
        with self._lock:
            mine = [e.job for e in self._entries if e.kind == kind and (data_dir is None or e.data_dir == data_dir)]
        return mine[-1] if mine else None

    def running(self) -> BackgroundJob[Any] | None:
        """The heavy job running now, of whatever kind."""
        with self._lock:
            entries = list(self._entries)
        return next((e.job for e in entries if e.running), None)

    def running_of(self, kind: str) -> list[BackgroundJob[Any]]:
        """The jobs of `kind` still running."""
        with self._lock:
            entries = list(self._entries)
        return [e.job for e in entries if e.kind == kind and e.running]
