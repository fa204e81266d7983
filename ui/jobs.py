"""Background jobs for slow work (index builds, image maps), shared by every browser session.

A build runs in a worker thread, so the page that started it, and every other page, stays
responsive; pages poll :meth:`Job.snapshot` to draw a progress bar. Jobs are keyed, so two
sessions asking for the same index share one build.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    """One unit of slow work and what is known about it so far."""

    key: str
    label: str
    done: int = 0
    total: int = 0
    state: str = "queued"  # queued, running, finished, failed
    result: Any = None
    error: BaseException | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    first_report: tuple[float, int] | None = None  # (time, done) of the first progress report
    last_report: tuple[float, int] | None = None

    def progress(self, done: int, total: int) -> None:
        """Progress callback handed to the package functions."""
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
        """``label · done / total · N img/s · about M min left`` (the parts known so far)."""
        parts = [self.label]
        if self.total:
            parts.append(f"{self.done:,} / {self.total:,}")
        if self.rate:
            parts.append(f"{self.rate:,.0f} img/s")
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


class JobRunner:
    """Runs keyed jobs on a small thread pool; at most one job per key at a time."""

    def __init__(self, workers: int = 1):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embeddings-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Job | None:
        """The latest job for ``key`` (running, finished or failed), if any."""
        with self._lock:
            return self._jobs.get(key)

    def submit(self, key: str, label: str, fn: Callable[[Callable[[int, int], None]], Any]) -> Job:
        """Start ``fn(progress)`` unless a job for ``key`` is already queued or running."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.active:
                return job
            job = Job(key=key, label=label)
            self._jobs[key] = job
        self._pool.submit(self._run, job, fn)
        return job

    def forget(self, key: str) -> None:
        """Drop a finished or failed job so a later submit starts afresh."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and not job.active:
                del self._jobs[key]

    @staticmethod
    def _run(job: Job, fn) -> None:
        job.state = "running"
        try:
            job.result = fn(job.progress)
            job.state = "finished"
        except BaseException as exc:  # reported to the page, never lost
            job.error = exc
            job.state = "failed"
            traceback.print_exc()
        finally:
            job.finished = time.monotonic()
