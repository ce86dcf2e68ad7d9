"""Where the twin clock gets its windows from: the engine run live, or a stored run replayed.

Both produce `Frame`s through `frame_from_dataset`, which reads the engine's result contract (named
dimensions time / rack / equipment / source) and lines the arrays up with the site layout.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import xarray as xr

from dashboards.clock import SCALARS, Frame
from twin.layout import SiteLayout


def _positions(ds_ids, want_ids) -> np.ndarray:
    """Position in the dataset's coordinate of every wanted id, -1 where the dataset does not have it."""
    ids = np.asarray(ds_ids).astype(str)
    want = np.asarray(want_ids).astype(str)
    if not len(ids):
        return np.full(len(want), -1)
    order = np.argsort(ids)
    pos = np.clip(np.searchsorted(ids, want, sorter=order), 0, len(ids) - 1)
    hit = order[pos]
    return np.where(ids[hit] == want, hit, -1)


class FrameReader:
    """Turns result Datasets of one site into Frames; the id alignment is worked out once and cached.

    Loading on the power view: the engine's `loading_pu` (conversion stages and cooling consumers), and for
    the sources their share of `p_source_kw` over their rating (a source kind with several components gets
    the kind's loading on each). Loading on the cooling view: facility loops carry `q_loop_kw` over their
    design heat; heat rejection shows its electrical loading (compressors and fans over their rating)."""

    def __init__(self, layout: SiteLayout):
        self.layout = layout
        self._rack_ids = np.asarray(layout.racks.ids).astype(str)
        self._equip_ids = np.asarray(layout.equip.ids).astype(str)
        self._cache: dict[tuple, np.ndarray] = {}
        kinds = layout.kind_array
        self._src_cols = {k: np.flatnonzero(kinds == kind) for k, kind in
                          (("grid", "utility_feed"), ("gas_turbine", "gas_turbine"), ("battery", "battery"))}
        self._src_pmax = {k: float(layout.p_max_kw[c].sum()) for k, c in self._src_cols.items()}
        self._q_max = np.array([float(getattr(m, "q_max_kw", 0.0) or 0.0) if k == "facility_loop" else 0.0
                                for m, k in zip(layout.equip.model, layout.equip.kind, strict=True)])

    def _pos(self, ds: xr.Dataset, dim: str, want: np.ndarray) -> np.ndarray:
        coord = ds[dim].values
        key = (dim, len(coord), str(coord[0]) if len(coord) else "", str(coord[-1]) if len(coord) else "")
        if key not in self._cache:
            self._cache[key] = _positions(coord, want)
        return self._cache[key]

    def frame(self, ds: xr.Dataset, t_offset_s: float) -> Frame:
        """`t_offset_s`: twin time of the dataset's first step; times are taken relative to it."""
        t = ds["time"].values
        t_s = (t - t[0]) / np.timedelta64(1, "s") if np.issubdtype(t.dtype, np.datetime64) else np.asarray(t, float) - float(t[0])
        t_s = np.asarray(t_s, dtype=float) + t_offset_s
        n = len(t_s)
        scalars = {k: np.asarray(ds[k].values, dtype=float) for k in SCALARS if k in ds and ds[k].dims == ("time",)}
        sources: tuple[str, ...] = ()
        p_source = None
        if "p_source_kw" in ds:
            v = ds["p_source_kw"].transpose("time", "source")
            sources = tuple(str(s) for s in v["source"].values)
            p_source = np.asarray(v.values, dtype=float)
        p_rack = self._per(ds, "p_rack_kw", "rack", self._rack_ids)
        t_cdu = self._per(ds, "t_cdu_supply_c", "rack", self._rack_ids)
        loading = self._per(ds, "loading_pu", "equipment", self._equip_ids)
        if loading is None:
            loading = np.full((n, len(self._equip_ids)), np.nan, dtype=np.float32)
        cool = loading.copy()
        if p_source is not None:
            for j, s in enumerate(sources):
                cols = self._src_cols.get(s)
                if cols is not None and len(cols) and self._src_pmax[s] > 0:
                    loading[:, cols] = (np.abs(p_source[:, j]) / self._src_pmax[s])[:, None]
        q = self._per(ds, "q_loop_kw", "loop", self._equip_ids)
        if q is not None:
            has = self._q_max > 0
            cool[:, has] = q[:, has] / self._q_max[has]
        return Frame(t_s, scalars, sources, p_source, p_rack, t_cdu, loading, _outages(ds, self.layout, n), cool)

    def _per(self, ds: xr.Dataset, name: str, dim: str, want: np.ndarray) -> np.ndarray | None:
        """(time, want) array of a variable on (time or time_rack, dim); NaN for ids the result lacks."""
        if name not in ds or dim not in ds[name].dims:
            return None
        tdim = next((d for d in ds[name].dims if d.startswith("time")), None)
        if tdim is None:
            return None
        v = np.asarray(ds[name].transpose(tdim, dim).values)
        if tdim != "time":  # per-rack arrays on coarser blocks: hold each block over its fine steps
            tb = ds[tdim].values
            k = np.clip(np.searchsorted(tb, ds["time"].values, side="right") - 1, 0, len(tb) - 1)
            v = v[k]
        pos = self._pos(ds, dim, want)
        out = np.full((v.shape[0], len(want)), np.nan, dtype=np.float32)
        ok = pos >= 0
        out[:, ok] = v[:, pos[ok]]
        return out


def _outages(ds: xr.Dataset, layout: SiteLayout, n: int) -> np.ndarray | None:
    """(time, equip) True where a scenario outage event has the component out of service."""
    import json

    try:
        events = json.loads(ds.attrs.get("scenario", "{}")).get("events", [])
    except (TypeError, ValueError):
        return None
    outs = [e for e in events if e.get("kind") == "outage" and e.get("component") in layout.index]
    if not outs:
        return None
    t_rel = np.asarray(ds["elapsed_s"].values, float) if "elapsed_s" in ds.coords else np.arange(n, dtype=float)
    failed = np.zeros((n, len(layout.equip.ids)), dtype=bool)
    for e in outs:
        a = 3600.0 * e.get("start_h", 0.0)
        b = a + 3600.0 * e["hours"]
        failed[(t_rel >= a) & (t_rel < b), layout.index[e["component"]]] = True
    return failed


class LiveSource:
    """Runs the engine on consecutive windows of twin time, each starting from the state the last ended in.

    The windows are slices [t0, t0 + window) of one long scenario starting at the clock's epoch, so jobs,
    their iterations, failures and events keep one clock across windows."""

    YEARS = 10

    def __init__(self, site: str, layout: SiteLayout, *, epoch: datetime, step_s: float):
        from twin.schema.scenario import Scenario

        self.site = site
        self.layout = layout
        self.epoch = epoch
        self.step_s = step_s
        self.reader = FrameReader(layout)
        self.state: dict | None = None  # the engine's end state of the last window
        from twin.schema.scenario import Workload

        self.scenario = Scenario(name=f"live-{site}", site=site, start=epoch, hours=self.YEARS * 8760.0,
                                 step=f"{step_s:g}s",
                                 workload=Workload(fill_pu=1.0, fill_job={"start_s": RUNNING_SINCE_S}))

    def window(self, t0_s: float, window_s: float) -> Frame:
        import json

        from twin import simulate  # the engine

        n = max(1, int(round(window_s / self.step_s)))
        ds = simulate(self.layout, self.scenario, initial_state=self.state, start_offset_s=t0_s,
                      hours=n * self.step_s / 3600.0)
        final = json.loads(ds.attrs.get("final_state", "{}"))
        self.state = {k: v for k, v in final.items()
                      if k in ("battery_soc_pu", "battery_soc_kwh", "turbines_online") and v is not None}
        return self.reader.frame(ds, t0_s)


class ReplaySource:
    """Plays a stored run's result, looping at its end."""

    def __init__(self, run_id: str, layout: SiteLayout, *, runs_dir: str | Path | None = None):
        from twin.runs import open_run

        self.run_id = run_id
        ds = open_run(run_id, runs_dir) if runs_dir is not None else open_run(run_id)
        if ds.attrs.get("site") != layout.site.name:
            from twin.errors import InputError

            raise InputError.one(run_id, "site", f"the run is of site {ds.attrs.get('site')!r}; start the dashboard "
                                 f"with --site {ds.attrs.get('site')} to replay it")
        self.ds = ds
        self.reader = FrameReader(layout)
        t = ds["time"].values
        self.step_s = float((t[1] - t[0]) / np.timedelta64(1, "s")) if len(t) > 1 else 3600.0
        self.n = len(t)
        self.epoch = datetime.fromisoformat(str(np.datetime_as_string(t[0], unit="s")))

    def window(self, t0_s: float, window_s: float) -> Frame:
        span = self.n * self.step_s
        k0 = int(round((t0_s % span) / self.step_s))
        k1 = min(self.n, k0 + max(1, int(round(window_s / self.step_s))))
        return self.reader.frame(self.ds.isel(time=slice(k0, k1)), t0_s)


# Jobs of the live twin and the swing study are already running when twin time starts (no start ramp).
RUNNING_SINCE_S = -600.0


def swing_study(site: str, layout: SiteLayout, seconds: float = 60.0) -> dict:
    """Grid import over `seconds` at 0.1 s with every GPU in one training job: without mitigation, with GPU
    power smoothing (floor at 90 % of TDP), and with battery smoothing."""
    from twin import simulate
    from twin.schema.scenario import Scenario, Workload
    from twin.schema.workload import Mitigations

    base = Scenario(name="swing", site=site, hours=seconds / 3600.0, step="0.1s",
                    workload=Workload(fill_pu=1.0, fill_job={"start_s": RUNNING_SINCE_S}))
    cases = [("no mitigation", Mitigations()), ("GPU power floor 90 %", Mitigations(gpu_power_floor_pu=0.9)),
             ("battery smoothing", Mitigations(battery_smoothing=True))]
    series = []
    for _, m in cases:
        ds = simulate(layout, base.model_copy(update={"mitigations": m}))
        t_s = np.asarray(ds["elapsed_s"].values, float)
        series.append((t_s - t_s[0], np.asarray(ds["p_source_kw"].sel(source="grid").values, float)))
    return {"labels": [c[0] for c in cases], "series": series, "note": "grid import, MW"}
