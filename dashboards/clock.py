"""The twin clock: a background thread, owned by one app instance, that keeps a running twin ahead of time.

Twin time advances at `speed` x real time from the moment the clock starts. The thread simulates
consecutive windows of twin time with the engine (each window starts from the state the previous one
ended in), converts each result to numpy frames and keeps a rolling buffer; every request reads the state at
the current twin time from that buffer, so all tabs see the same state and no request waits on the engine.
If the engine falls behind, twin time waits at the end of the buffer (the status says so) rather than jump.

The clock can also replay a stored run (`replay=<run id>`): the run's result is played at `speed`, looping.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from twin.layout import SiteLayout

# Scalar time series the dashboard reads from a result, when present: name -> label.
SCALARS = ("p_it_kw", "p_facility_kw", "p_cooling_kw", "p_loss_kw", "battery_soc_kwh", "turbines_online",
           "t_dry_c", "t_wet_c", "water_m3_h", "p_unserved_kw", "p_it_min_kw", "p_it_max_kw", "stranded_gpus")
HISTORY_S = 6 * 3600.0  # twin seconds of scalar history kept for the overview


@dataclass(frozen=True)
class Frame:
    """One simulated window as numpy arrays; time in twin seconds from the clock's epoch."""

    t_s: np.ndarray  # (n,) step starts
    scalars: dict[str, np.ndarray]  # name -> (n,)
    sources: tuple[str, ...]
    p_source_kw: np.ndarray | None  # (n, source)
    p_rack_kw: np.ndarray | None  # (n, rack)
    t_cdu_supply_c: np.ndarray | None  # (n, rack)
    loading_pu: np.ndarray | None  # (n, equip), columns in layout.equip order
    failed: np.ndarray | None  # (n, equip) bool: equipment out of service at that step
    cool_loading_pu: np.ndarray | None = None  # (n, equip) loading for the cooling view

    @property
    def end_s(self) -> float:
        step = float(self.t_s[1] - self.t_s[0]) if len(self.t_s) > 1 else 0.0
        return float(self.t_s[-1]) + step


@dataclass(frozen=True)
class Snapshot:
    """The twin's state at one instant, as every page reads it."""

    seq: int  # changes whenever the state shown changes
    t_s: float
    time: datetime
    speed: float
    mode: str  # "live" | "replay"
    status: str  # "running" | "starting" | "catching up" | "error: ..."
    values: dict[str, float] = field(default_factory=dict)
    sources: dict[str, float] = field(default_factory=dict)
    p_rack_kw: np.ndarray | None = None
    t_cdu_supply_c: np.ndarray | None = None
    loading_pu: np.ndarray | None = None
    cool_loading_pu: np.ndarray | None = None
    failed: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return bool(self.values)

    @property
    def pue(self) -> float:
        it, fac = self.values.get("p_it_kw"), self.values.get("p_facility_kw")
        return float(fac / it) if it and fac is not None else float("nan")


class TwinClock:
    def __init__(self, site: str, layout: SiteLayout, speed: float = 60.0, *, replay: str | None = None,
                 runs_dir: str | Path | None = None, window_s: float | None = None, step_s: float | None = None,
                 epoch: datetime | None = None):
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.site = site
        self.layout = layout
        self.speed = float(speed)
        self.mode = "replay" if replay else "live"
        # Twin step: at least one new step per real second at any speed, at most one per 0.1 s of twin time.
        self.step_s = float(step_s) if step_s else float(min(max(speed / 12.0, 0.1), 900.0))
        # Window: long enough that the engine runs rarely, short enough that the first one comes quickly.
        self.window_s = float(window_s) if window_s else max(self.step_s * 60, 10.0 * self.speed)
        self.lead_s = 0.5 * self.window_s  # simulate the next window when less than this is buffered
        self.epoch = epoch or _default_epoch(layout.site.location.utc_offset_h)
        if replay:
            from dashboards.sources import ReplaySource

            self.source = ReplaySource(replay, layout, runs_dir=runs_dir)
            self.step_s = self.source.step_s
            self.window_s = max(self.window_s, self.step_s * 60)
            self.epoch = self.source.epoch
        else:
            from dashboards.sources import LiveSource

            self.source = LiveSource(site, layout, epoch=self.epoch, step_s=self.step_s)
        self._lock = threading.Lock()
        self._frames: deque[Frame] = deque()
        self._hist_t: deque[np.ndarray] = deque()
        self._hist: deque[dict[str, np.ndarray]] = deque()
        self._anchor_twin_s = 0.0
        self._anchor_wall = None  # set at start
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._buffer_end_s = 0.0
        self.windows_run = 0
        self.last_window_wall_s = float("nan")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> TwinClock:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"twin-clock-{self.site}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ time
    def now_s(self) -> float:
        """Current twin time (s from the epoch); waits at the end of the buffer when the engine lags."""
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> float:
        if self._anchor_wall is None:
            return 0.0
        t = self._anchor_twin_s + self.speed * (time.monotonic() - self._anchor_wall)
        last = self._buffer_end_s - self.step_s
        if t > last:
            # Hold: re-anchor so that twin time resumes from here instead of jumping.
            self._anchor_twin_s, self._anchor_wall = max(last, self._anchor_twin_s), time.monotonic()
            return self._anchor_twin_s
        return t

    # ------------------------------------------------------------------ background work
    def step_once(self) -> bool:
        """Simulate the next window if the buffer runs short. Returns True when a window was added."""
        with self._lock:
            now = self._now_locked()
            need = self._buffer_end_s - now < self.lead_s or not self._frames
            t0 = self._buffer_end_s
        if not need:
            return False
        t_wall = time.perf_counter()
        frame = self.source.window(t0, self.window_s)
        self.last_window_wall_s = time.perf_counter() - t_wall
        with self._lock:
            first = not self._frames
            self._frames.append(frame)
            self._buffer_end_s = frame.end_s
            if first:
                self._anchor_twin_s, self._anchor_wall = float(frame.t_s[0]), time.monotonic()
            # keep the frame holding "now" and what follows
            now = self._now_locked()
            while len(self._frames) > 1 and self._frames[1].t_s[0] <= now:
                self._frames.popleft()
            self._hist_t.append(frame.t_s)
            self._hist.append({**frame.scalars, **_source_columns(frame)})
            while self._hist_t and self._hist_t[0][-1] < frame.end_s - HISTORY_S:
                self._hist_t.popleft()
                self._hist.popleft()
            self.windows_run += 1
            self._error = None
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.step_once():
                    self._stop.wait(0.05)
            except Exception as exc:  # keep the dashboard up and say what went wrong
                with self._lock:
                    self._error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(2.0)

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self._now_locked()
            frames = list(self._frames)
            err = self._error
        t = self.epoch + timedelta(seconds=now)
        if err and not frames:
            return Snapshot(-1, now, t, self.speed, self.mode, f"error: {err}")
        frame = next((f for f in reversed(frames) if f.t_s[0] <= now), frames[0] if frames else None)
        if frame is None:
            return Snapshot(-1, now, t, self.speed, self.mode, "starting")
        i = int(np.clip(np.searchsorted(frame.t_s, now, side="right") - 1, 0, len(frame.t_s) - 1))
        status = "running" if not err else f"error: {err}"
        if self.running and now >= self._buffer_end_s - self.step_s - 1e-9:
            status = "catching up"
        return snapshot_at(frame, i, self.layout, self.epoch, self.speed, self.mode, status, self.step_s)

    def history(self, seconds: float = 3600.0) -> dict[str, np.ndarray]:
        """Scalar and per-source series over the last `seconds` of twin time up to now ("time" in datetime64)."""
        with self._lock:
            now = self._now_locked()
            ts = list(self._hist_t)
            hs = list(self._hist)
        if not ts:
            return {}
        t = np.concatenate(ts)
        keep = (t <= now) & (t >= now - seconds)
        out = {k: np.concatenate([h[k] for h in hs])[keep] for k in hs[-1] if all(k in h for h in hs)}
        out["t_s"] = t[keep]
        out["time"] = np.datetime64(self.epoch.replace(tzinfo=None), "ms") + (t[keep] * 1000).astype("timedelta64[ms]")
        return out


def snapshot_at(frame: Frame, i: int, layout: SiteLayout, epoch: datetime, speed: float, mode: str, status: str,
                step_s: float) -> Snapshot:
    """The state of step `i` of a frame."""
    failed = ()
    if frame.failed is not None and frame.failed[i].any():
        failed = tuple(layout.equip.ids[k] for k in np.flatnonzero(frame.failed[i]))
    return Snapshot(
        seq=int(round(float(frame.t_s[i]) / step_s)),
        t_s=float(frame.t_s[i]),
        time=epoch + timedelta(seconds=float(frame.t_s[i])),
        speed=speed,
        mode=mode,
        status=status,
        values={k: float(v[i]) for k, v in frame.scalars.items()},
        sources={} if frame.p_source_kw is None else {s: float(frame.p_source_kw[i, j]) for j, s in enumerate(frame.sources)},
        p_rack_kw=None if frame.p_rack_kw is None else frame.p_rack_kw[i],
        t_cdu_supply_c=None if frame.t_cdu_supply_c is None else frame.t_cdu_supply_c[i],
        loading_pu=None if frame.loading_pu is None else frame.loading_pu[i],
        cool_loading_pu=None if frame.cool_loading_pu is None else frame.cool_loading_pu[i],
        failed=failed,
    )


def _source_columns(frame: Frame) -> dict[str, np.ndarray]:
    if frame.p_source_kw is None:
        return {}
    return {f"source:{s}": frame.p_source_kw[:, j] for j, s in enumerate(frame.sources)}


def _default_epoch(utc_offset_h: float) -> datetime:
    """Twin time starts at the site's current local standard time, to the minute, so the typical-year
    weather the twin runs on is that of the season and hour the user is in."""
    from datetime import UTC

    now = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    return now + timedelta(hours=utc_offset_h)
