"""What one running dashboard holds: the site, its derived views, the twin clock and the what-if jobs.

One `TwinContext` per app instance, kept in the Flask app's `extensions` (never a module global), so two
apps in one process (tests, benchmarks) never share state. Pages reach it with `twin_context()` inside a
request; the pure view functions take it as an argument.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from dashboards.clock import Snapshot, TwinClock, snapshot_at
from dashboards.floorgrid import FloorGrid, build_floor
from dashboards.jobs import RunJobs
from dashboards.topomodel import Topology, build_topology
from twin.layout import SiteLayout, expand
from twin.schema.site import Site

EXTENSION_KEY = "gigatwin"


@dataclass
class TwinContext:
    site_name: str
    site: Site
    layout: SiteLayout
    floor: FloorGrid
    topology: Topology
    clock: TwinClock
    jobs: RunJobs
    runs_dir: Path | None  # None = the run store's default folder
    _studies: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="twin-study"))
    _swing: Future | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _run_frames: dict = field(default_factory=dict)

    def swing_study(self):
        """The sub-second swing study (with and without mitigations): None while it runs (it starts on the
        first call), a dict of series when done, a sentence when it failed."""
        from dashboards.sources import swing_study

        with self._lock:
            if self._swing is None:
                self._swing = self._studies.submit(swing_study, self.site_name, self.layout)
            fut = self._swing
        if not fut.done():
            return None
        exc = fut.exception()
        if exc is not None:
            return f"swing study failed: {type(exc).__name__}: {exc}"
        return fut.result()

    def run_snapshot(self, run_id: str) -> tuple[Snapshot, str]:
        """The state of a stored run at its most telling step (the first step with a component out, else the
        peak of site power), and a sentence saying which step that is. Raises InputError for unknown runs."""
        from dashboards.sources import FrameReader
        from twin.runs import open_run, run_summary

        with self._lock:
            hit = self._run_frames.get(run_id)
        if hit is None:
            ds = open_run(run_id, self.runs_dir)
            if ds.attrs.get("site") != self.site.name:
                from twin.errors import InputError

                raise InputError.one(run_id, "site", f"run is of site {ds.attrs.get('site')!r}, this dashboard shows "
                                     f"{self.site.name!r}")
            frame = FrameReader(self.layout).frame(ds, 0.0)
            t0 = datetime.fromisoformat(str(np.datetime_as_string(ds["time"].values[0], unit="s")))
            hit = (frame, t0, run_summary(run_id, self.runs_dir))
            with self._lock:
                self._run_frames[run_id] = hit
                while len(self._run_frames) > 8:
                    self._run_frames.pop(next(iter(self._run_frames)))
        frame, t0, _meta = hit
        if frame.failed is not None and frame.failed.any():
            i = int(np.flatnonzero(frame.failed.any(axis=1))[0])
            why = "first step with equipment out of service"
        else:
            i = int(np.argmax(frame.scalars.get("p_facility_kw", np.zeros(len(frame.t_s)))))
            why = "step of peak site power"
        step = float(frame.t_s[1] - frame.t_s[0]) if len(frame.t_s) > 1 else 3600.0
        snap = snapshot_at(frame, i, self.layout, t0, 0.0, "run", f"run {run_id}", step)
        out = f" — out of service: {', '.join(snap.failed)}" if snap.failed else ""
        return snap, f"run {run_id} at {snap.time:%Y-%m-%d %H:%M} ({why}){out}"

    def close(self) -> None:
        self.clock.stop()
        self.jobs.shutdown()
        self._studies.shutdown(wait=False, cancel_futures=True)


def build_context(site: str, speed: float = 60.0, *, replay: str | None = None, runs_dir: str | Path | None = None,
                  max_runs: int = 2, window_s: float | None = None, step_s: float | None = None) -> TwinContext:
    """Load the site (raises twin.errors.InputError for an unknown or invalid site) and build every view."""
    from twin.site import load_site

    s = load_site(site)
    layout = expand(s)
    clock = TwinClock(site, layout, speed=speed, replay=replay, runs_dir=runs_dir, window_s=window_s, step_s=step_s)
    return TwinContext(
        site_name=site,
        site=s,
        layout=layout,
        floor=build_floor(layout),
        topology=build_topology(layout),
        clock=clock,
        jobs=RunJobs(max_workers=max_runs),
        runs_dir=Path(runs_dir) if runs_dir is not None else None,
    )


def twin_context() -> TwinContext:
    """The context of the app serving the current request."""
    from flask import current_app

    return current_app.extensions[EXTENSION_KEY]
