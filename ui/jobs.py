"""Background jobs for slow work (index builds, image maps), shared by every browser session.

A build runs in a worker thread, so the page that started it, and every other page, stays
responsive; pages poll :meth:`Job.snapshot` to draw a progress bar. Jobs are keyed, so two
sessions asking for the same index share one build. Jobs run in lanes, one at a time per lane
in the order they were asked for: ``"build"`` (embedding a collection, laying out a map:
minutes) and ``"analysis"`` (k-NN, map trust, label conflicts over an existing index: seconds),
so a long build never holds up a quick analysis. A queued job knows what it waits behind in its
lane (:meth:`JobRunner.ahead_of`).

A job can be cancelled (:meth:`JobRunner.cancel`): a queued one never starts, a running one
stops at its next progress report (its progress callback raises ``WorkCancelledError``).
A failed or cancelled job stays as it is, shown once with its reason, and is not started again
for the same key until :meth:`JobRunner.retry` (the page's "Try again"); a job for other
inputs has another key. A failed job logs one line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from embeddings.errors import EmbeddingsError, WorkCancelledError

log = logging.getLogger("streamlit.ui.jobs")  # under Streamlit's logger: its lines reach the server log


@dataclass
class Job:
    """One unit of slow work and what is known about it so far."""

    key: str
    label: str
    lane: str = "build"  # which queue it waits in (JobRunner.LANES)
    unit: str = "img"  # items with a rate ("img": img/s, "passage": passage/s); "step": numbered steps (a map's iterations)
    done: int = 0
    total: int = 0
    state: str = "queued"  # queued, running, finished, failed, cancelled
    result: Any = None
    error: BaseException | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    first_report: tuple[float, int] | None = None  # (time, done) of the first progress report
    last_report: tuple[float, int] | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event, repr=False)

    def progress(self, done: int, total: int) -> None:
        """Progress callback handed to the package functions; raises ``WorkCancelledError`` once
        the job was cancelled, so the work stops here (the package cleans up what it wrote)."""
        if self.cancel_requested.is_set():
            raise WorkCancelledError(f"{self.label}: cancelled")
        self.done, self.total = int(done), int(total)
        now = (time.monotonic(), self.done)
        if self.first_report is None:
            self.first_report = now  # the rate is measured from here: model loading is not work done
        self.last_report = now

    @property
    def rate(self) -> float | None:
        """Items (images) per second since the first progress report, once there are two."""
        if self.first_report is None or self.last_report is None:
            return None
        (t0, d0), (t1, d1) = self.first_report, self.last_report
        return (d1 - d0) / (t1 - t0) if t1 > t0 and d1 > d0 else None

    @property
    def seconds_left(self) -> float | None:
        """Estimated seconds to finish at :attr:`rate`, or None while unknown."""
        rate = self.rate
        return max(0.0, (self.total - self.done) / rate) if rate and self.total else None

    def status_text(self) -> str:
        """``label · done / total · N img/s · about M min left`` (the parts known so far); a
        ``step`` job reads ``label, step N of M · about K s left``."""
        parts = [self.label]
        if self.unit == "step":
            if self.total:
                parts = [f"{self.label}, step {self.done:,} of {self.total:,}"]
        else:
            if self.total:
                parts.append(f"{self.done:,} / {self.total:,}")
            if self.rate:
                parts.append(f"{self.rate:,.0f} {self.unit}/s")
        left = self.seconds_left
        if left is not None and self.done < self.total:
            parts.append(f"about {left / 60:.0f} min left" if left >= 90 else f"about {left:.0f} s left")
        return " · ".join(parts)

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def stopped(self) -> bool:
        """Failed or cancelled: shown to the user, not started again until retried."""
        return self.state in ("failed", "cancelled")


class JobRunner:
    """Runs keyed jobs, ``workers`` at a time per lane; at most one job per key at a time."""

    LANES = ("build", "analysis")

    def __init__(self, workers: int = 1):
        self._pools = {
            lane: ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"embeddings-{lane}")
            for lane in self.LANES
        }
        self._jobs: dict[str, Job] = {}
        self._order: list[Job] = []  # active jobs in the order they were submitted
        self._lock = threading.Lock()

    def get(self, key: str) -> Job | None:
        """The latest job for ``key`` (running, finished, failed or cancelled), if any."""
        with self._lock:
            return self._jobs.get(key)

    def submit(
        self,
        key: str,
        label: str,
        fn: Callable[[Callable[[int, int], None]], Any],
        unit: str = "img",
        lane: str = "build",
    ) -> Job:
        """Start ``fn(progress)`` in ``lane`` unless a job for ``key`` is queued or running, or
        failed or was cancelled (that one is returned as it is until :meth:`retry`)."""
        if lane not in self._pools:
            raise ValueError(f"unknown lane {lane!r}: valid lanes are {', '.join(self.LANES)}")
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and (job.active or job.stopped):
                return job
            job = Job(key=key, label=label, unit=unit, lane=lane)
            self._jobs[key] = job
            self._order.append(job)
        self._pools[lane].submit(self._run, job, fn)
        return job

    def ahead_of(self, job: Job) -> list[Job]:
        """The active jobs of ``job``'s lane that run before it (the running one first)."""
        with self._lock:
            if job not in self._order:
                return []
            ahead = self._order[: self._order.index(job)]
        return [j for j in ahead if j.active and j.lane == job.lane]

    def cancel(self, key: str) -> Job | None:
        """Cancel the job for ``key``: a queued one is dropped, a running one stops at its next
        progress report. Returns the job (None when there is none, or it already ended)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or not job.active:
                return None
            job.cancel_requested.set()
            if job.state == "queued":
                self._finish(job, "cancelled")
        return job

    def retry(self, key: str) -> None:
        """Forget a failed, cancelled or finished job so the next submit starts it again."""
        self.forget(key)

    def forget(self, key: str) -> None:
        """Drop a finished, failed or cancelled job so a later submit starts afresh."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and not job.active:
                del self._jobs[key]

    def _finish(self, job: Job, state: str) -> None:  # called with the lock held
        job.state = state
        job.finished = time.monotonic()
        if job in self._order:
            self._order.remove(job)

    def _run(self, job: Job, fn) -> None:
        with self._lock:
            if job.state != "queued":  # cancelled while it waited
                return
            job.state = "running"
        state = "failed"
        try:
            job.result = fn(job.progress)
            state = "finished"
        except WorkCancelledError as exc:
            job.error = exc
            state = "cancelled"
            log.info("%s: cancelled", job.label)
        except BaseException as exc:  # reported to the page, never lost; logged once
            job.error = exc
            if isinstance(exc, (EmbeddingsError, OSError)):
                log.warning("%s failed: %s: %s", job.label, type(exc).__name__, exc)
            else:  # a bug: its traceback, once (the job is not retried by itself)
                log.error("%s failed: %s: %s", job.label, type(exc).__name__, exc, exc_info=exc)
        finally:
            with self._lock:
                if job.cancel_requested.is_set() and state == "failed":
                    state = "cancelled"
                self._finish(job, state)
