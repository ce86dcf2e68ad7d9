"""The simulation engine: site + scenario -> one xarray.Dataset of every power and heat flow.

Pipeline (vectorised over time and equipment; no Python loop over racks or time steps):

  jobs --twin.sim.workload--> per-GPU power of each job (job x time; resolved waveform at steps <= 1 s,
       exact step means + envelope above)
  default placement (job x rack GPU counts) --> rack classes: racks with the same group, node count and
       job mix draw the same power, so node DC -> PSU AC runs once per class (time x class), not per rack
  classes --(class x leaf-unit counts, live racks only)--> leaf units --PowerChain, one sparse product per
       level with each stage's loss model--> site bus demand (+ cooling plant electric power at its parents)
  per-rack heat at the coarse step (the step itself for >= 1 min runs, 1 min blocks for sub-minute runs)
       --cooling--> plant electric power, temperatures, flows, water
  bus demand --twin.sim.dispatch_rules--> grid / turbines / battery --> grid import through the substations
       (or a given schedule, `dispatch=`: followed as given, every limit's violation reported; check_limits)

Sub-minute runs never hold time x rack arrays at the fine step: per-rack outputs (`p_rack_kw`, cooling
per rack) sit on the `time_rack` dimension (1-minute block means); everything else is on `time`.

Accounting conventions (what the result's totals mean):
- p_it_kw: AC input of the servers (node DC load through the PSU curve) plus non-GPU IT at its typical load.
  PSU losses are inside IT (reported apart as p_loss_psu_kw, for information). Nodes of one rack share its
  load equally (the PSU curve is evaluated per rack class, not per node).
- p_cooling_kw: cooling plant consumers (chillers, towers, dry coolers, loop pumps and air handlers, from
  twin.sim.cooling) plus the rack cooling auxiliaries (CDU pumps, rear-door fans), which the busways feed.
- p_loss_kw: losses of the conversion stages (busways, PDUs, UPS, transformers, switchgear, substations).
  Stages between the utility feed and the bus (substations) carry the grid's share only.
- p_facility_kw: the site boundary, grid import at the utility feed + turbines + battery (discharge > 0).
  facility = IT + losses + cooling - unserved at every step.
- Outages: a failed stage strands everything below it that has no other path (its racks draw nothing and are
  counted in stranded_gpus); parallel feeds (2N) take over their partner's share; a failed unit of a
  multi-unit component derates it (fewer units, capacity and no-load losses); source outages reduce supply;
  cooling-plant outages go to the cooling model as units out.
- Time: all times (jobs, events) count from the scenario start; `start_offset_s`/`hours` select a window of
  that clock, so consecutive windows join up (carry `final_state` into `initial_state`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from twin.errors import InputError
from twin.layout import ROLES, SiteLayout, expand
from twin.schema.components import COOLING_KINDS
from twin.schema.scenario import Scenario, scenario_from_dict
from twin.sim import dispatch_rules
from twin.sim.placement_default import place, resolve_jobs
from twin.sim.power import ChainResult, PowerChain, psu_ac_kw

CO2_KG_PER_MMBTU_HHV = 49.9  # AP-42 §3.1 natural gas, 110 lb/MMBtu (data/costs.yaml turbine_smt130)
HHV_LHV = 1.108  # natural gas (data/costs.yaml turbine_smt130.hhv_lhv_ratio)
KJ_PER_MMBTU = 1_055_055.85
RESOLVE_STEP_MAX_S = 1.0  # steps at or below this resolve the training waveform
RACK_STEP_MIN_S = 60.0  # per-rack arrays and the cooling plant are computed on blocks of at least this

Progress = Callable[[float, str], None]


# --------------------------------------------------------------------------- site and scenario


def _site_path(name_or_path: str, base_dir: str | None) -> str:
    if base_dir is not None and (name_or_path.endswith((".yaml", ".yml"))):
        p = Path(name_or_path)
        if not p.is_absolute() and (Path(base_dir) / p).exists():
            return str(Path(base_dir) / p)
    return name_or_path


@lru_cache(maxsize=16)
def _layout_cached(path_key: str, mtime: float) -> SiteLayout:
    from twin.site import load_site

    try:
        site = load_site(path_key)
    except ModuleNotFoundError:  # validation layer not present in this checkout
        site = load_site(path_key, validate=False)
    return expand(site)


def site_layout(site, base_dir: str | None = None) -> SiteLayout:
    """A SiteLayout from a layout, a Site, a site name or a path (cached per file and modification time)."""
    if isinstance(site, SiteLayout):
        return site
    from twin.schema.site import Site
    from twin.site import site_path

    if isinstance(site, Site):
        return expand(site)
    p = site_path(_site_path(str(site), base_dir))
    if not Path(p).exists():
        raise InputError.one(str(site), "", "site file not found")
    return _layout_cached(str(Path(p).resolve()), Path(p).stat().st_mtime)


def as_scenario(scenario) -> Scenario:
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, dict):
        return scenario_from_dict(scenario)
    from twin.schema.scenario import load_scenario

    return load_scenario(scenario)


# --------------------------------------------------------------------------- rack classes


@dataclass
class RackClasses:
    cls: np.ndarray  # (rack,) class of each rack
    group: np.ndarray  # (class,)
    n_nodes: np.ndarray
    n_gpus: np.ndarray
    jobs: np.ndarray  # (job, class) GPU counts
    first_rack: np.ndarray  # (class,) a representative rack


def rack_classes(layout: SiteLayout, M: sp.csr_matrix) -> RackClasses:
    r = layout.racks
    key = np.column_stack([r.group, r.n_nodes, r.n_gpus, np.asarray(M.T.todense(), dtype=np.int64)])
    _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    return RackClasses(inv, r.group[first], r.n_nodes[first], r.n_gpus[first],
                       np.asarray(M[:, first].todense()).reshape(M.shape[0], len(first)), first)


def _class_power(layout, rc: RackClasses, p_gpu_w: np.ndarray, gpu_idle_w: np.ndarray):
    """IT power (AC into the servers + non-GPU IT) and in-rack cooling power of one rack of each class.

    p_gpu_w: (job, time) per-GPU power. Returns it_kw (time, class), psu_loss_kw (time, class), cool_kw (class,),
    server_kw (time, class) (node AC input only, for the liquid/air split)."""
    T = p_gpu_w.shape[1]
    C = len(rc.group)
    gpu_kw = np.zeros((T, C))
    if p_gpu_w.shape[0]:
        gpu_kw += (p_gpu_w.T.astype(np.float64) @ rc.jobs) / 1000.0
    idle_gpus = rc.n_gpus - rc.jobs.sum(axis=0)
    gpu_kw += (idle_gpus * gpu_idle_w)[None, :] / 1000.0
    server_kw = np.zeros((T, C))
    psu_loss = np.zeros((T, C))
    other_kw = np.zeros(C)
    cool_kw = np.zeros(C)
    for c in range(C):  # loop over rack classes (a handful), each vectorised over time
        info = layout.groups[rc.group[c]]
        rack = info.rack
        other_kw[c] = rack.p_it_max_kw * rack.p_it_typical_pu
        cool_kw[c] = (info.cdu.p_pump_kw if info.cdu else 0.0) + (info.rdhx.p_fan_kw if info.rdhx else 0.0)
        if info.server is None or rc.n_nodes[c] == 0:
            continue
        srv = info.server
        psu = layout.site.parts.psu.get(srv.psu_type) if srv.psu_type else None
        dc = srv.p_base_kw + gpu_kw[:, c] / rc.n_nodes[c]
        ac = psu_ac_kw(dc, srv, psu)
        server_kw[:, c] = ac * rc.n_nodes[c]
        psu_loss[:, c] = (ac - dc) * rc.n_nodes[c]
    it = server_kw + other_kw[None, :]
    return it, psu_loss, cool_kw, server_kw


# --------------------------------------------------------------------------- events


def _segments(sc: Scenario, layout: SiteLayout, t_rel_s: np.ndarray):
    """Split the steps where the outage state changes. Returns [(start, stop, {equip: units out})]."""
    n = len(t_rel_s)
    cuts = {0, n}
    outages = [e for e in sc.events if e.kind == "outage"]
    for e in outages:
        for h in (e.start_h, e.end_h):
            cuts.add(int(np.clip(np.searchsorted(t_rel_s, h * 3600.0 - 1e-9), 0, n)))
    cuts = sorted(cuts)
    segs = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        if b <= a:
            continue
        t = t_rel_s[a]
        state: dict[int, int] = {}
        for e in outages:
            if e.start_h * 3600.0 - 1e-9 <= t < e.end_h * 3600.0 - 1e-9:
                i = layout.index[e.component]
                cnt = layout.equip.model[i].count
                state[i] = min(cnt, state.get(i, 0) + (e.units if e.units is not None else cnt))
        segs.append((a, b, state))
    return segs


def _window_mask(t_rel_s, start_h, hours):
    return (t_rel_s >= start_h * 3600.0 - 1e-9) & (t_rel_s < (start_h + hours) * 3600.0 - 1e-9)


# --------------------------------------------------------------------------- cooling


def _cooling(layout: SiteLayout, q_liquid_kw, q_air_kw, wx: xr.Dataset, sc: Scenario, outages: dict, dt_s: float,
             racks_off: np.ndarray | None = None):
    """The cooling helper's plant model (twin.sim.cooling.simulate_cooling) with the scenario's setpoints."""
    from twin.sim.cooling import simulate_cooling

    sp_ = sc.setpoints.t_supply_c
    loops = [layout.equip.ids[i] for i in layout.of_kind("facility_loop")]
    setp = dict(sp_) if isinstance(sp_, dict) else ({lp: float(sp_) for lp in loops} if sp_ is not None else None)
    return simulate_cooling(layout, q_liquid_kw, q_air_kw, wx["t_dry_c"].values, wx["t_wet_c"].values, dt_s,
                            setpoints=setp, outages=outages or None, racks_off=racks_off)


# --------------------------------------------------------------------------- costs


# The data/costs.yaml entries the engine reads: name in _costs() -> (section, key). The report's assumptions
# table lists exactly these, so a price the engine starts to use shows up there with its source.
COST_KEYS = {
    "gas_usd_mmbtu": ("fuel", "gas_price_usd_mmbtu"),
    "hhv_lhv": ("turbine_smt130", "hhv_lhv_ratio"),
    "vom_usd_kwh": ("turbine_smt130", "vom_usd_kwh"),
    "co2_kg_mmbtu": ("turbine_smt130", "co2_kg_per_mmbtu"),
    "grid_co2_kg_kwh": ("grid", "co2_kg_kwh"),
    "on_usd_kwh": ("tariff_tva_tou_proxy", "on_peak_energy_usd_kwh"),
    "off_usd_kwh": ("tariff_tva_tou_proxy", "off_peak_energy_usd_kwh"),
    "demand_usd_kw_month": ("tariff_tva_tou_proxy", "demand_charge_usd_kw_month"),
    "on_hours": ("tariff_tva_tou_proxy", "on_peak_hours"),
    "on_weekdays": ("tariff_tva_tou_proxy", "on_peak_weekdays_only"),
}
COST_DEFAULTS = {"vom_usd_kwh": 0.0, "co2_kg_mmbtu": CO2_KG_PER_MMBTU_HHV, "hhv_lhv": HHV_LHV, "on_hours": (13, 19),
                 "on_weekdays": True}  # when data/costs.yaml lacks the entry


@lru_cache(maxsize=1)
def _costs() -> dict:
    """Prices and factors from data/costs.yaml (the dispatch helper's file), when present."""
    from twin.paths import data_dir

    path = data_dir() / "costs.yaml"
    if not path.exists():
        return {}
    import yaml

    raw = yaml.safe_load(path.read_text()) or {}

    def v(sec, key, default=None):
        try:
            return raw[sec][key]["value"]
        except (KeyError, TypeError):
            return default

    out = {name: v(sec, key, COST_DEFAULTS.get(name)) for name, (sec, key) in COST_KEYS.items()}
    out["on_hours"] = tuple(out["on_hours"])
    out["source"] = str(path)
    return out


def _price_usd_kwh(times: pd.DatetimeIndex, c: dict) -> np.ndarray:
    if c.get("on_usd_kwh") is None:
        return np.full(len(times), np.nan)
    h = times.hour
    on = (h >= c["on_hours"][0]) & (h < c["on_hours"][1])
    if c["on_weekdays"]:
        on &= times.day_of_week < 5
    return np.where(on, c["on_usd_kwh"], c["off_usd_kwh"])


# --------------------------------------------------------------------------- the engine


def simulate(site=None, scenario=None, *, initial_state: dict | None = None, start_offset_s: float = 0.0,
             hours: float | None = None, progress: Progress | None = None, weather: xr.Dataset | None = None,
             dispatch: xr.Dataset | None = None) -> xr.Dataset:
    """Simulate `scenario` on `site` (a SiteLayout, Site, site name or path; None = the scenario's site).

    initial_state: {"battery_soc_pu" or "battery_soc_kwh", "turbines_online"} overrides the scenario's.
    start_offset_s, hours: simulate the window [offset, offset + hours) of the scenario's clock, so a live
    clock can run consecutive windows that join up (jobs, failures and events keep the scenario's clock).
    The final state (SOC, turbines) is in ds.attrs["final_state"] (JSON) for the next window.

    dispatch: a schedule on `time` to run instead of the dispatch rules (e.g. optimizers.dispatch's result):
    `turbine_p_kw`, `turbines_online`, `battery_p_kw` (discharge positive), optionally `curtailed_kw` (left
    unserved). Each step takes the schedule's mean over the step (a coarser schedule is held). The grid takes
    the rest of the bus demand, imported through the substations; the SOC follows the battery's own model
    from the initial state. Every limit is then checked in the simulator's terms: `limit_violation`
    (time x limit, see dispatch_rules.LIMITS) and `check_limits(ds)`."""
    sc = as_scenario(scenario)
    tick = progress or (lambda f, s: None)
    tick(0.0, "site")
    layout = site_layout(site if site is not None else sc.site, sc.base_dir)
    dt = sc.step_s
    span_h = hours if hours is not None else sc.hours
    n = int(round(span_h * 3600.0 / dt))
    if n < 1:
        raise InputError.one("<scenario>", "hours", f"window of {span_h} h holds no {sc.step} step")
    t_rel = start_offset_s + np.arange(n) * dt  # s from the scenario start
    times = pd.DatetimeIndex(pd.Timestamp(sc.start) + pd.to_timedelta(t_rel, unit="s"))
    resolve = dt <= RESOLVE_STEP_MAX_S

    # ---- workload
    tick(0.05, "workload")
    from twin.sim.workload import job_power_w

    jobs = resolve_jobs(sc, layout)
    M = place(jobs, layout)
    parts = layout.site.parts
    tdp = np.array([parts.gpu[j.gpu_type].tdp_w for j in jobs])
    idle = np.array([parts.gpu[j.gpu_type].idle_w for j in jobs])
    t0_local_h = sc.start.hour + sc.start.minute / 60.0
    t_w = t_rel if n >= 2 else np.array([t_rel[0], t_rel[0] + dt])
    if jobs:
        wp = job_power_w(jobs, t_w, tdp, idle, sc.mitigations, resolve, t0_local_h=t0_local_h)
        p_gpu = wp.p_gpu_w[:, :n]
        p_lo = wp.p_gpu_min_w[:, :n] if wp.p_gpu_min_w is not None else None
        p_hi = wp.p_gpu_max_w[:, :n] if wp.p_gpu_max_w is not None else None
    else:
        p_gpu = np.zeros((0, n), np.float32)
        p_lo = p_hi = None

    # ---- racks by class
    tick(0.15, "racks")
    rc = rack_classes(layout, M)
    gtypes = [layout.groups[g].gpu for g in rc.group]
    gpu_idle_c = np.array([g.idle_w if g is not None else 0.0 for g in gtypes])
    it_c, psu_loss_c, cool_c, server_c = _class_power(layout, rc, p_gpu, gpu_idle_c)
    env = None
    if p_lo is not None:
        env = (_class_power(layout, rc, p_lo, gpu_idle_c)[0], _class_power(layout, rc, p_hi, gpu_idle_c)[0])
    liquid_c = np.array([layout.groups[g].server.liquid_fraction_pu if layout.groups[g].server else 0.0 for g in rc.group])

    # ---- outage segments, stranded racks
    segs = _segments(sc, layout, t_rel)
    chains: dict[tuple, PowerChain] = {}
    seg_chain = []
    for _a, _b, state in segs:
        key = tuple(sorted(state.items()))
        if key not in chains:
            chains[key] = PowerChain(layout, state)
        seg_chain.append(chains[key])
    rack_dead_seg = [ch.dead[layout.racks.feeder] for ch in seg_chain]

    # ---- per-rack (coarse) power and heat
    tick(0.25, "rack heat")
    k = max(1, int(round(RACK_STEP_MIN_S / dt))) if dt < RACK_STEP_MIN_S else 1
    n_c = -(-n // k)
    blk = np.arange(n) // k

    def coarse(x):  # (n, C) -> (n_c, C) block means
        if k == 1:
            return x
        s = np.zeros((n_c, x.shape[1]))
        np.add.at(s, blk, x)
        return s / np.bincount(blk)[:, None]

    it_cc, server_cc = coarse(it_c), coarse(server_c)
    seg_of_coarse = np.zeros(n_c, int)
    for s_i, (a, b, _) in enumerate(segs):
        seg_of_coarse[a // k: -(-b // k)] = s_i
    dead_c = np.stack(rack_dead_seg)[seg_of_coarse] if len(segs) > 1 else np.broadcast_to(rack_dead_seg[0], (n_c, len(layout.racks)))
    live = ~dead_c
    cls = rc.cls
    q_liquid = (server_cc[:, cls] * liquid_c[cls][None, :] * live).astype(np.float32)
    q_air = (it_cc[:, cls] * live - q_liquid).astype(np.float32)
    times_c = times[::k]
    t_c_rel = t_rel[::k]

    # ---- weather (coarse times), heat waves
    tick(0.35, "weather")
    from twin.weather import heat_wave, load_weather, weather_at

    wx_year = weather if weather is not None else load_weather(sc.weather, sc.base_dir)
    wx = weather_at(wx_year, times_c)
    for e in sc.events:
        if e.kind == "heat_wave":
            start = pd.Timestamp(sc.start) + pd.Timedelta(hours=e.start_h)
            if (times_c >= start).any() and (times_c < start + pd.Timedelta(hours=e.hours)).any():
                wx = heat_wave(wx, start, e.hours, e.delta_t_k, hold=e.hold)

    # ---- cooling plant (coarse)
    tick(0.45, "cooling")
    cons = layout.consumers
    cool_out: dict[str, np.ndarray] = {}
    for e in sc.events:
        if e.kind == "outage" and layout.equip.kind[layout.index[e.component]] in COOLING_KINDS:
            m = layout.equip.model[layout.index[e.component]]
            lost = e.units if e.units is not None else (m.pump_count if m.kind == "facility_loop" else m.count)
            arr = cool_out.setdefault(e.component, np.zeros(n_c, np.int64))
            arr[_window_mask(t_c_rel, e.start_h, e.hours)] += lost
    cool_layout = _with_cycles(layout, sc.setpoints.cycles_of_concentration)
    # a stranded rack's pumps and fans are dark too: no electricity, and no pump heat in the loop water
    cres = _cooling(cool_layout, q_liquid, q_air, wx, sc, cool_out, dt * k, racks_off=dead_c if dead_c.any() else None)
    aux = np.asarray(cres.p_rack_aux_kw, np.float32)
    p_rack = (it_cc[:, cls] * live + aux).astype(np.float32)
    p_cons_c = np.asarray(cres.p_consumer_kw, np.float64)
    p_cons = p_cons_c[blk] if k > 1 else p_cons_c
    E = len(layout.equip.ids)
    aux_leaf_c = np.asarray(layout.rack_power_incidence.T @ aux.T.astype(np.float64)).T  # (n_c, E)
    aux_leaf = aux_leaf_c[blk] if k > 1 else aux_leaf_c
    aux_tot = aux.sum(axis=1, dtype=np.float64)
    aux_tot = aux_tot[blk] if k > 1 else aux_tot

    # ---- power chain, segment by segment
    tick(0.6, "power chain")
    p_in = np.zeros((n, E))
    p_out = np.zeros((n, E))
    p_it = np.zeros(n)
    p_psu = np.zeros(n)
    p_cool_rack = np.zeros(n)
    stranded_gpus = np.zeros(n)
    feeder = layout.racks.feeder
    for (a, b, _state), ch, dead in zip(segs, seg_chain, rack_dead_seg, strict=True):
        live_r = ~dead
        S = sp.csr_matrix((live_r.astype(float), (cls, feeder)), shape=(len(rc.group), E))
        n_live = np.bincount(cls, weights=live_r.astype(float), minlength=len(rc.group))
        cons_p = p_cons[a:b] * (~ch.dead[cons])[None, :]
        rack_sum = np.asarray(S.T @ it_c[a:b].T).T + aux_leaf[a:b]
        res = ch.run(rack_sum, cons_p, cons)
        p_in[a:b], p_out[a:b] = res.p_in_kw, res.p_out_kw
        p_it[a:b] = it_c[a:b] @ n_live
        p_psu[a:b] = psu_loss_c[a:b] @ n_live
        p_cool_rack[a:b] = aux_tot[a:b] + cons_p.sum(axis=1)
        stranded_gpus[a:b] = layout.racks.n_gpus[dead].sum()
    bus_all = np.unique(np.concatenate([ch.bus for ch in chains.values()]))
    demand = p_in[:, bus_all].sum(axis=1)

    # ---- dispatch
    tick(0.75, "dispatch")
    fleet, info = _fleet(layout, sc, t_rel, segs, seg_chain, dt)
    init = {**sc.initial_state.model_dump(exclude_none=True), **(initial_state or {})}
    soc0 = init.get("battery_soc_pu", sc.dispatch.battery_soc_target_pu)
    if "battery_soc_kwh" in init and fleet.batt_e_max_kwh > 0:
        soc0 = init["battery_soc_kwh"] / fleet.batt_e_max_kwh
    smoothing = sc.dispatch.battery_smoothing_tau_s if sc.mitigations.battery_smoothing else None
    kw = dict(smoothing_tau_s=smoothing, soc0_pu=soc0, soc_target_pu=sc.dispatch.battery_soc_target_pu,
              turbines0=int(init.get("turbines_online", 0)), commit_window_s=sc.dispatch.turbine_commit_window_s)
    cap_feed = info["grid_cap_feed_kw"]
    # the cap seen at the bus (what a planner at the bus may draw), before dispatch writes the upstream flows
    cap_bus, loss_slope = _grid_cap_at_bus(segs, seg_chain, p_in, p_out, demand, cap_feed,
                                           demand + fleet.batt_p_max_kw)
    violations = None
    if dispatch is not None:
        sched = _schedule_on_steps(dispatch, times, dt)
        soc0_kwh = init["battery_soc_kwh"] if "battery_soc_kwh" in init else soc0 * fleet.batt_e_max_kwh
        dres = dispatch_rules.follow(demand, fleet, dt, gt_kw=sched["turbine_p_kw"],
                                     turbines_online=sched["turbines_online"], batt_kw=sched["battery_p_kw"],
                                     soc0_kwh=soc0_kwh, curtailed_kw=sched.get("curtailed_kw"))
        grid_import, up_loss = _grid_import(segs, seg_chain, p_in, p_out, dres.grid_kw, demand)
        violations = dispatch_rules.limit_violations(grid_import, dres, fleet, cap_feed, fleet.grid_ramp_kw_step)
    else:
        dres = dispatch_rules.dispatch(demand, fleet, dt, **kw)
        # upstream (substation) losses: grid import at the feed exceeds grid power at the bus; keep the cap at the feed
        grid_import, up_loss = _grid_import(segs, seg_chain, p_in, p_out, dres.grid_kw, demand)
        bus_cap = fleet.grid_max_kw
        for _ in range(6):  # losses grow with load: a few fixed-point passes bring the import under the cap
            if not np.any(grid_import > cap_feed + 1e-6):
                break
            bus_cap = np.where(grid_import > cap_feed, bus_cap - (grid_import - cap_feed) * 1.0001, bus_cap)
            fleet2 = dispatch_rules.Fleet(**{**fleet.__dict__, "grid_max_kw": bus_cap})
            dres = dispatch_rules.dispatch(demand, fleet2, dt, **kw)
            grid_import, up_loss = _grid_import(segs, seg_chain, p_in, p_out, dres.grid_kw, demand)

    # ---- totals, emissions, cost
    tick(0.85, "results")
    load_side = layout.load_side
    loss_eq = np.where(load_side[None, :], p_in - p_out, 0.0)
    p_loss = loss_eq.sum(axis=1)
    p_cooling = p_cool_rack
    p_facility = grid_import + dres.gt_kw + dres.batt_kw
    dt_h = dt / 3600.0
    gt_models = [layout.equip.model[i] for i in layout.of_kind("gas_turbine")]
    heat_rate_kj_kwh = gt_models[0].heat_rate_kj_kwh if gt_models else 0.0  # LHV
    nox_kg_mwh = gt_models[0].nox_kg_mwh if gt_models else 0.0
    c = _costs()
    fuel_mmbtu_hhv = dres.gt_kw * dt_h * heat_rate_kj_kwh / KJ_PER_MMBTU * c.get("hhv_lhv", HHV_LHV)
    grid_co2 = c.get("grid_co2_kg_kwh")
    co2 = fuel_mmbtu_hhv * c.get("co2_kg_mmbtu", CO2_KG_PER_MMBTU_HHV) + (grid_import * dt_h * grid_co2 if grid_co2 is not None else 0.0)
    nox = dres.gt_kw * dt_h / 1000.0 * nox_kg_mwh
    price = _price_usd_kwh(times, c)
    gas = c.get("gas_usd_mmbtu")
    cost = grid_import * dt_h * price + (fuel_mmbtu_hhv * gas if gas is not None else np.nan) + dres.gt_kw * dt_h * c.get("vom_usd_kwh", 0.0)

    # ---- dataset
    is_cons = np.isin(np.arange(E), cons)
    eq_ix = np.flatnonzero(load_side | is_cons)
    p_max_eq = np.where(is_cons, layout.consumer_p_max_kw, layout.p_max_kw)
    pmax_t = np.zeros((n, E)) + p_max_eq[None, :]
    for (a, b, state), ch in zip(segs, seg_chain, strict=True):
        if state:  # derated by units out
            pmax_t[a:b] = np.where(is_cons, p_max_eq, ch.p_max_kw)[None, :]
    through = np.where(is_cons, p_in, p_out)  # a consumer's rating is on its input, a stage's on its output
    loading = np.divide(through, pmax_t, out=np.zeros_like(through), where=pmax_t > 0)

    def a_(units, long_name, **kw):
        return {"units": units, "long_name": long_name, **kw}

    src_names = ["grid", "gas_turbine", "battery"]
    r = layout.racks
    time_rack_dim = "time" if k == 1 else "time_rack"
    data = {
        "p_it_kw": (("time",), p_it, a_("kW", "IT power: AC input of servers and non-GPU IT equipment")),
        "p_loss_kw": (("time",), p_loss, a_("kW", "losses of the power conversion stages (transformers, switchgear, busways, ...)")),
        "p_loss_psu_kw": (("time",), p_psu, a_("kW", "server power-supply losses (inside p_it_kw)")),
        "p_cooling_kw": (("time",), p_cooling, a_("kW", "cooling electric power: plant (chillers, towers, pumps) + in-rack CDU pumps and door fans")),
        "p_bus_kw": (("time",), demand, a_("kW", "demand at the site's medium-voltage bus")),
        "p_facility_kw": (("time",), p_facility, a_("kW", "site boundary power: grid import + turbines + battery discharge - charge")),
        "p_unserved_kw": (("time",), dres.unserved_kw, a_("kW", "demand no source could cover")),
        "p_source_kw": (("time", "source"), np.column_stack([grid_import, dres.gt_kw, dres.batt_kw]),
                        a_("kW", "power from each source (battery: discharge positive)")),
        "p_loss_upstream_kw": (("time",), up_loss, a_("kW", "losses of the stages between the utility feed and the bus (carried in p_loss_kw)")),
        "battery_soc_kwh": (("time",), dres.soc_kwh, a_("kWh", "battery state of charge at the end of the step")),
        "turbines_online": (("time",), dres.turbines_online, a_("1", "gas-turbine units online")),
        "grid_import_max_kw": (("time",), np.asarray(cap_feed, np.float64),
                               a_("kW", "grid import cap at the utility feed (contract, curtailment, feed and substation ratings)")),
        "grid_import_max_bus_kw": (("time",), cap_bus, a_("kW", "largest grid power at the bus whose import at the feed "
                                                            "(with the substations' losses) stays within the cap")),
        "stranded_gpus": (("time",), stranded_gpus, a_("1", "GPUs without a power path (outages)")),
        "p_equipment_in_kw": (("time", "equipment"), p_in[:, eq_ix].astype(np.float32), a_("kW", "input power of each conversion stage / cooling consumer")),
        "p_loss_equipment_kw": (("time", "equipment"), loss_eq[:, eq_ix].astype(np.float32), a_("kW", "loss of each conversion stage")),
        "loading_pu": (("time", "equipment"), loading[:, eq_ix].astype(np.float32), a_("1", "power through the equipment over its rating")),
        "p_job_kw": (("time", "job"), (p_gpu.T.astype(np.float64) * np.array([j.gpus for j in jobs])[None, :] / 1000.0),
                     a_("kW", "GPU power of each job (DC, GPUs only)")),
        "p_rack_kw": ((time_rack_dim, "rack"), p_rack, a_("kW", "rack input power (servers, non-GPU IT, CDU pump, door fans)"
                                                            + ("" if k == 1 else f"; {k * dt:g} s block means"))),
        "q_liquid_kw": ((time_rack_dim, "rack"), q_liquid, a_("kW", "rack heat to liquid (cold plates, CDU)")),
        "q_air_kw": ((time_rack_dim, "rack"), q_air, a_("kW", "rack heat to air (rear doors)")),
        "t_dry_c": (("time",), _fine(wx["t_dry_c"].values, blk, k), a_("degC", "outdoor dry-bulb temperature")),
        "t_wet_c": (("time",), _fine(wx["t_wet_c"].values, blk, k), a_("degC", "outdoor wet-bulb temperature")),
        "fuel_mmbtu": (("time",), fuel_mmbtu_hhv, a_("MMBtu", "turbine fuel per step (HHV)")),
        "co2_kg": (("time",), co2, a_("kg", "CO2 per step: turbines (AP-42) + grid (average factor)")),
        "nox_kg": (("time",), nox, a_("kg", "NOx per step from the turbines")),
        "cost_usd": (("time",), cost, a_("USD", "energy cost per step: grid energy (TOU) + fuel + turbine O&M (demand charges in the KPIs)")),
        "price_usd_kwh": (("time",), price, a_("USD/kWh", "grid energy price")),
    }
    if env is not None:
        # the envelope of every rack, scaled by the share of the step's IT still powered (stranded racks draw nothing)
        racks_per_class = np.bincount(cls, minlength=len(rc.group))
        live_share = p_it / np.maximum(it_c @ racks_per_class, 1e-9)
        data["p_it_min_kw"] = (("time",), env[0] @ racks_per_class * live_share,
                               a_("kW", "lowest IT power within the step (swing envelope)"))
        data["p_it_max_kw"] = (("time",), env[1] @ racks_per_class * live_share,
                               a_("kW", "highest IT power within the step (swing envelope)"))
    rename = {"t_supply_c": "t_loop_supply_c", "t_supply_set_c": "t_loop_supply_set_c", "t_return_c": "t_loop_return_c"}
    dim_of = {v: d for d, vs in cres.DIMS.items() for v in vs}
    for f in cres.UNITS:
        if f in ("p_consumer_kw", "p_cooling_kw"):
            continue  # in p_equipment_in_kw and p_cooling_kw
        units, long_name = cres.UNITS[f]
        val = np.asarray(getattr(cres, f))
        d = dim_of.get(f)
        if d == "rack":
            if f == "p_rack_aux_kw":
                val = aux
            dims = (time_rack_dim, "rack")
        else:
            dims = ("time", d) if d else ("time",)
            if k > 1:
                val = val[blk]
        data[rename.get(f, f)] = (dims, val, a_(units, long_name))
    coords = {
        "time": ("time", times, {"long_name": "start of step (local standard time)"}),
        "elapsed_s": ("time", t_rel, {"units": "s", "long_name": "time from the scenario start"}),
        "rack": ("rack", r.ids),
        "rack_hall": ("rack", np.array(layout.hall_ids)[r.hall]),
        "rack_row": ("rack", r.row), "rack_col": ("rack", r.col),
        "rack_role": ("rack", np.array(ROLES)[r.role]),
        "rack_gpus": ("rack", r.n_gpus),
        "rack_p_max_kw": ("rack", r.p_max_kw, {"units": "kW"}),
        "equipment": ("equipment", np.array(layout.equip.ids)[eq_ix]),
        "kind": ("equipment", layout.kind_array[eq_ix]),
        "equipment_p_max_kw": ("equipment", p_max_eq[eq_ix], {"units": "kW"}),
        "source": ("source", src_names),
        "loop": ("loop", list(cres.loop_ids)),
        "plant": ("plant", list(cres.plant_ids)),
        "plant_kind": ("plant", list(cres.plant_kind)),
        "job": ("job", [j.name for j in jobs]),
        "job_gpus": ("job", [j.gpus for j in jobs]),
        "job_kind": ("job", [j.kind for j in jobs]),
    }
    if k > 1:
        coords["time_rack"] = ("time_rack", times_c, {"long_name": f"start of {k * dt:g} s block (per-rack arrays)"})
    from twin import __version__

    final = {"battery_soc_pu": float(dres.soc_kwh[-1] / fleet.batt_e_max_kwh) if fleet.batt_e_max_kwh else None,
             "turbines_online": int(round(float(dres.turbines_online[-1]))),
             "elapsed_s": float(t_rel[-1] + dt)}
    attrs = {
        "title": f"gigatwin simulation of {layout.site.name}",
        "site": layout.site.name,
        "scenario": json.dumps(sc.resolved()),
        "twin_version": __version__,
        "step_s": dt,
        "resolved_waveform": int(resolve),
        "rack_step_s": k * dt,
        "n_gpus": layout.n_gpus,
        "cooling_model": "twin.sim.cooling.simulate_cooling",
        "costs_source": c.get("source", "none"),
        "demand_charge_usd_kw_month": c.get("demand_usd_kw_month") if c.get("demand_usd_kw_month") is not None else np.nan,
        "grid_cap_feed_kw": float(np.min(cap_feed)),
        "final_state": json.dumps(final),
        "grid_loss_slope_max_pu": loss_slope,
        "dispatch_source": "rules" if dispatch is None else "schedule",
        "job_failures": json.dumps({j.name: int(nf) for j, nf in zip(jobs, (wp.n_failures if jobs else []), strict=True)}),
    }
    if violations is not None:
        data["limit_violation"] = (("time", "limit"), np.column_stack(list(violations.values())),
                                   a_("kW; kWh for battery_soc_*; 1 for turbines_online (coordinate limit_units)",
                                      "by how much the step exceeds each limit, in the simulator's terms (0 = held)"))
        coords["limit"] = ("limit", list(violations))
        coords["limit_units"] = ("limit", [dispatch_rules.LIMITS[k_] for k_ in violations])
    ds = xr.Dataset({k_: (d, v, at) for k_, (d, v, at) in data.items()}, coords=coords, attrs=attrs)
    tick(1.0, "done")
    return ds


def _with_cycles(layout: SiteLayout, cycles: float | None) -> SiteLayout:
    """The layout with every cooling tower's cycles of concentration set (the scenario's setpoint)."""
    if cycles is None:
        return layout
    import dataclasses

    eq = layout.equip
    models = [m.model_copy(update={"cycles_of_concentration": cycles}) if m.kind == "cooling_tower" else m for m in eq.model]
    new_eq = dataclasses.replace(eq, model=models)
    return dataclasses.replace(layout, equip=new_eq)


def _fine(x, blk, k):
    return np.asarray(x)[blk] if k > 1 else np.asarray(x)


def _grid_import(segs, seg_chain, p_in, p_out, grid_bus, demand):
    share = np.divide(grid_bus, demand, out=np.zeros_like(demand), where=demand > 0)
    up_loss = np.zeros(len(demand))
    for (a, b, _), ch in zip(segs, seg_chain, strict=True):
        if not ch.upstream.any():
            continue
        r = ChainResult(p_in[a:b], p_out[a:b])  # views: run_upstream writes the upstream columns in place
        ch.run_upstream(r, share[a:b])
        u = ch.upstream
        up_loss[a:b] = (p_in[a:b][:, u] - p_out[a:b][:, u]).sum(axis=1)
    return grid_bus + up_loss, up_loss


def _grid_cap_at_bus(segs, seg_chain, p_in, p_out, demand, cap_feed, g_uncapped):
    """Per step, the largest grid power at the bus whose import at the feed (bus power + the upstream stages'
    losses) stays within `cap_feed` (fixed point g = cap - L(g): the loss slope is well below 1, a few passes
    converge), and the largest incremental upstream loss per kW of bus grid power (dL/dg) up to that cap, or
    up to `g_uncapped` where there is no cap: a forward difference there, an upper bound of dL/dg below it as
    the transformer losses are convex. Overwrites the upstream columns of p_in/p_out (dispatch writes them
    again)."""
    finite = np.isfinite(cap_feed)
    cap = np.where(finite, cap_feed, 0.0)
    g = np.where(finite, cap, g_uncapped)
    if not any(ch.upstream.any() for ch in seg_chain):
        return np.where(finite, cap, np.inf), 0.0
    for _ in range(12):
        feed, _ = _grid_import(segs, seg_chain, p_in, p_out, g, demand)
        g_new = np.where(finite, g - (feed - cap), g)
        done = np.max(np.abs(g_new - g)) <= 1e-9 * max(1.0, float(np.max(np.abs(g))))
        g = g_new
        if done:
            break
    g = np.maximum(g, 0.0)
    h = np.maximum(1.0, 1e-3 * g)
    f0, _ = _grid_import(segs, seg_chain, p_in, p_out, g, demand)
    f1, _ = _grid_import(segs, seg_chain, p_in, p_out, g + h, demand)
    ok = demand > 0  # no demand: no share to scale the upstream flows with (no slope either)
    slope = float(np.max(((f1 - f0) / h - 1.0)[ok])) if ok.any() else 0.0
    return np.where(finite, g, np.inf), max(slope, 0.0)


def _schedule_on_steps(sched: xr.Dataset, times: pd.DatetimeIndex, dt: float) -> dict[str, np.ndarray]:
    """The schedule's mean over each simulation step (a schedule on the same steps is taken as is; a coarser
    one is held over its steps). Every step must lie within the schedule's span."""
    src = "<dispatch schedule>"
    need = ("turbine_p_kw", "turbines_online", "battery_p_kw")
    for v in need:
        if v not in sched:
            raise InputError.one(src, v, f"missing; a dispatch schedule needs {', '.join(need)} on `time`")
    if "time" not in sched.coords or sched.sizes.get("time", 0) < 1:
        raise InputError.one(src, "time", "expected a non-empty time coordinate")
    st = pd.DatetimeIndex(sched["time"].values)
    n = len(times)
    names = [*need, *(["curtailed_kw"] if "curtailed_kw" in sched else [])]
    vals = {v: np.asarray(sched[v].values, np.float64) for v in names}
    for v, a in vals.items():
        if a.ndim != 1 or not np.all(np.isfinite(a)):
            raise InputError.one(src, v, "expected finite values on `time` only")
    if len(st) == n and np.array_equal(st.values.astype("datetime64[ns]"), times.values.astype("datetime64[ns]")):
        return vals
    s_rel = (st - times[0]) / pd.Timedelta(seconds=1)
    s_rel = np.asarray(s_rel, np.float64)
    width = np.diff(s_rel)
    if np.any(width <= 0):
        raise InputError.one(src, "time", "expected increasing times")
    last = width[-1] if len(width) else dt
    edges = np.concatenate([s_rel, [s_rel[-1] + last]])
    tol = 1e-6 * dt
    if edges[0] > tol or edges[-1] < n * dt - tol:
        end = times[0] + pd.Timedelta(seconds=n * dt)
        raise InputError.one(src, "time", f"covers {st[0]} to {st[0] + pd.Timedelta(seconds=edges[-1] - edges[0])}; "
                             f"expected the simulated span {times[0]} to {end}")
    t_edges = np.arange(n + 1) * dt
    w = np.diff(edges)
    out = {}
    for v, a in vals.items():
        cum = np.concatenate([[0.0], np.cumsum(a * w)])
        out[v] = np.diff(np.interp(t_edges, edges, cum)) / dt
    return out


def check_limits(ds: xr.Dataset) -> dict[str, float]:
    """The largest violation of every limit (dispatch_rules.LIMITS; 0.0 = held at every step) of a run that
    followed a dispatch schedule (`simulate(..., dispatch=...)`); the unit ends each name (kW, kWh; units)."""
    if "limit_violation" not in ds:
        raise InputError.one("<simulation>", "limit_violation",
                             "not in this run; simulate with dispatch=<schedule> to check a schedule's limits")
    v = ds["limit_violation"]
    return {str(k_): float(v.sel(limit=k_).max()) for k_ in v["limit"].values}


def _fleet(layout: SiteLayout, sc: Scenario, t_rel, segs, seg_chain, dt):
    n = len(t_rel)
    eq = layout.equip
    kinds = layout.kind_array
    feeds = np.flatnonzero(kinds == "utility_feed")
    gts = np.flatnonzero(kinds == "gas_turbine")
    bats = np.flatnonzero(kinds == "battery")
    unit_out = {i: np.zeros(n) for i in (*feeds, *gts, *bats)}
    for e in sc.events:
        if e.kind == "outage":
            i = layout.index[e.component]
            if i in unit_out:
                cnt = eq.model[i].count
                unit_out[i][_window_mask(t_rel, e.start_h, e.hours)] += e.units if e.units is not None else cnt
    feed_cap_kw = np.zeros(n)
    for i in feeds:
        m = eq.model[i]
        feed_cap_kw += np.clip(m.count - unit_out[i], 0, None) * m.p_unit_max_kw
    # capacity of the stages the grid flows through (substations), outage-derated
    entry_cap_kw = np.full(n, np.inf)
    for (a, b, _), ch in zip(segs, seg_chain, strict=True):
        if ch.upstream.any():
            tops = [i for i in ch.grid_entry if ch.upstream[i]]
            entry_cap_kw[a:b] = sum(ch.p_max_kw[i] for i in tops if not ch.out[i]) if tops else np.inf
    cap_feed_kw = np.minimum(feed_cap_kw, entry_cap_kw)
    if sc.limits.grid_import_max_kw is not None:
        cap_feed_kw = np.minimum(cap_feed_kw, sc.limits.grid_import_max_kw)
    for e in sc.events:
        if e.kind == "curtailment":
            m = _window_mask(t_rel, e.start_h, e.hours)
            cap_feed_kw[m] = np.minimum(cap_feed_kw[m], e.grid_import_max_kw)
    gt_units = np.zeros(n)
    gt_unit_kw, gt_min_pu = 0.0, 0.0
    for i in gts:
        m = eq.model[i]
        gt_units += np.clip(m.count - unit_out[i], 0, None)
        gt_unit_kw, gt_min_pu = m.p_unit_max_kw, m.p_min_pu
    if sc.limits.turbines_max is not None:
        gt_units = np.minimum(gt_units, sc.limits.turbines_max)
    batt_p_max_kw = np.zeros(n)
    batt_e_max_kwh, soc_min_pu, soc_max_pu, eta_rt_pu = 0.0, 0.0, 1.0, 0.9
    for i in bats:
        m = eq.model[i]
        batt_p_max_kw += np.clip(m.count - unit_out[i], 0, None) * m.p_unit_max_kw
        batt_e_max_kwh += m.e_max_kwh
        soc_min_pu, soc_max_pu, eta_rt_pu = m.soc_min_pu, m.soc_max_pu, m.efficiency_roundtrip_pu
    grid_ramp_kw_step = sc.limits.grid_ramp_max_kw_min * dt / 60.0 if sc.limits.grid_ramp_max_kw_min else None
    fleet = dispatch_rules.Fleet(cap_feed_kw, grid_ramp_kw_step, gt_units, gt_unit_kw, gt_min_pu, batt_p_max_kw,
                                 batt_e_max_kwh, soc_min_pu, soc_max_pu, eta_rt_pu)
    return fleet, {"grid_cap_feed_kw": cap_feed_kw}


__all__ = ["simulate", "site_layout", "as_scenario", "check_limits"]
