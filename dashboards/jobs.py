"""Background what-if runs: a thread pool owned by the app, a status record per job, polled by the page.

A request never waits on a run: `submit` returns a job id at once; the page polls `status(job_id)` from a
dcc.Interval. Each browser keeps only its own job id (in a dcc.Store), so two users start and watch runs
independently; with `max_workers` >= 2 their runs proceed side by side.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    label: str
    state: str  # "queued" | "running" | "done" | "failed"
    progress_pu: float = 0.0
    message: str = ""
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    result: Any = None  # what the job function returned (e.g. run ids and KPI tables)
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


class RunJobs:
    def __init__(self, max_workers: int = 2):
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="twin-whatif")
        self._lock = threading.Lock()
        self._jobs: dict[str, JobStatus] = {}

    def submit(self, label: str, fn: Callable[[Progress], Any]) -> str:
        """Run `fn(progress)` in the background; `progress(fraction, message)` updates the status."""
        job_id = uuid.uuid4().hex[:12]
        with self._lock:
            self._jobs[job_id] = JobStatus(job_id, label, "queued", message="waiting for a free worker")

        def progress(fraction: float, message: str) -> None:
            self._update(job_id, state="running", progress_pu=float(min(max(fraction, 0.0), 1.0)), message=message)

        def run() -> None:
            self._update(job_id, state="running", message="started")
            try:
                result = fn(progress)
            except Exception as exc:  # the page shows the error; the worker survives
                from twin.errors import InputError

                msg = "\n".join(str(p) for p in exc.problems) if isinstance(exc, InputError) else (
                    f"{type(exc).__name__}: {exc}")
                self._update(job_id, state="failed", message="failed", error=msg, finished_at=time.time(),
                             result=traceback.format_exc(limit=5))
                return
            self._update(job_id, state="done", progress_pu=1.0, message="finished", result=result,
                         finished_at=time.time())

        self._pool.submit(run)
        return job_id

    def _update(self, job_id: str, **changes) -> None:
        with self._lock:
            self._jobs[job_id] = replace(self._jobs[job_id], **changes)

    def status(self, job_id: str | None) -> JobStatus | None:
        if not job_id:
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[JobStatus]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.started_at)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
