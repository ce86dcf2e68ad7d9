"""Adapters: build each optimiser's inputs from a site + scenario + a simulated load (`twin.simulate`).

The optimisers themselves take plain arrays and dataclasses; these functions are the one place that reads
a Scenario and a simulation Dataset for them, so the CLI and the what-if engine share one translation:

    ds = simulated(sc)                                  # the scenario run through the simulator
    dispatch_inputs(sc, ds)      -> DispatchInputs      (optimizers.dispatch.solve_dispatch)
    dispatch_inputs_at_bus(sc, ds) -> DispatchInputs    (the same, planned at the bus: feasible in the simulator)
    dispatch_feedback(sc, ds, ds_dispatch) -> Dataset   (the dispatch re-simulated, every limit checked)
    expansion_inputs(sc, ds)     -> ExpansionInputs     (optimizers.expansion.solve_expansion)
    placement_state(sc, layout)  -> SiteState           (optimizers.placement.optimize_placement)
    capping_inputs(sc, ds)       -> CappingInputs       (optimizers.capping.optimize_capping)
    cooling_inputs(sc, ds)       -> CoolingInputs       (optimizers.cooling.optimize_cooling)
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from twin.errors import InputError
from twin.layout import SiteLayout

_SRC = "<scenario -> optimiser inputs>"


def layout_of(sc) -> SiteLayout:
    from twin.sim.engine import site_layout

    return site_layout(sc.site, sc.base_dir)


def simulated(sc, progress=None) -> xr.Dataset:
    """The scenario through the simulator (hourly or finer; the adapters average to hours where needed)."""
    import twin

    kw = {"progress": progress} if progress is not None else {}
    return twin.simulate(None, sc, **kw)


def hourly(ds: xr.Dataset, var: str) -> np.ndarray:
    """A (time, ...) variable as hourly means."""
    da = ds[var]
    step_s = float(ds.attrs.get("step_s", 3600.0))
    if step_s >= 3600.0 - 1e-9:
        return np.asarray(da.values, float)
    k = int(round(3600.0 / step_s))
    n = da.sizes["time"] // k
    v = np.asarray(da.values[: n * k], float)
    return v.reshape(n, k, *v.shape[1:]).mean(axis=1)


def hourly_time(ds: xr.Dataset) -> np.ndarray:
    t = ds["time"].values
    step_s = float(ds.attrs.get("step_s", 3600.0))
    if step_s >= 3600.0 - 1e-9:
        return t.astype("datetime64[ns]")
    k = int(round(3600.0 / step_s))
    return t[: (len(t) // k) * k : k].astype("datetime64[ns]")


def grid_cap_kw(sc, layout: SiteLayout, time: np.ndarray) -> np.ndarray:
    """Grid import cap per hour: the scenario's limit (else the feeds' rating), lowered by curtailment events."""
    feeds = layout.of_kind("utility_feed")
    base = sc.limits.grid_import_max_kw
    if base is None:
        base = float(sum(layout.p_max_kw[i] for i in feeds)) if len(feeds) else np.inf
    cap = np.full(len(time), float(base))
    t_h = (time - time[0]) / np.timedelta64(1, "h")
    for ev in sc.events:
        if getattr(ev, "kind", "") == "curtailment":
            on = (t_h >= ev.start_h) & (t_h < ev.end_h)
            cap[on] = np.minimum(cap[on], ev.grid_import_max_kw)
    return cap


def price_usd_kwh(ds: xr.Dataset, time: np.ndarray, costs=None, hourly_means: bool = True) -> np.ndarray:
    """Energy price on `time`: the simulation's own (hourly means unless `hourly_means=False`), or, where the
    run carries none or has gaps, the data/costs.yaml tariff for the whole horizon (one price basis)."""
    from optimizers.costs import load_costs

    if "price_usd_kwh" in ds:
        price = hourly(ds, "price_usd_kwh") if hourly_means else np.asarray(ds["price_usd_kwh"].values, float)
        if not np.isnan(price).any():
            return price
    return (costs or load_costs()).tariff_tva_tou_proxy.price_usd_kwh(time)


# ------------------------------------------------------------------------------------------- dispatch


def availability_on_steps(sc, layout: SiteLayout, t_rel_s: np.ndarray) -> dict:
    """Turbine units and battery power / energy shares in service on the steps `t_rel_s` (seconds from the
    scenario start), from the scenario's outage events, as the simulator counts them (twin.sim.engine._fleet:
    an outage of a gas-turbine or battery component takes `units` of its parallel units, or all of them, out
    over [start_h, start_h + hours); overlapping outages add up; `limits.turbines_max` caps the units).
    A battery unit out takes its power and its energy out (the simulator derates only the power; a plan that
    also keeps off the energy of the units out holds the simulator's SOC limits too). Keys as in
    DispatchInputs; a key is None when no outage touches that equipment (everything in service)."""
    from twin.schema.components import Battery as BatteryC
    from twin.schema.components import GasTurbine

    t = np.asarray(t_rel_s, float)
    out: dict[int, np.ndarray] = {}
    for e in sc.events:
        if getattr(e, "kind", "") != "outage" or e.component not in layout.index:
            continue
        i = layout.index[e.component]
        m = layout.equip.model[i]
        if isinstance(m, GasTurbine | BatteryC):
            on = (t >= e.start_h * 3600.0 - 1e-9) & (t < e.end_h * 3600.0 - 1e-9)  # engine._window_mask
            out.setdefault(i, np.zeros(len(t)))[on] += e.units if e.units is not None else m.count
    res = {"turbine_units_available": None, "battery_p_available_pu": None, "battery_e_available_pu": None}
    if not out:
        return res
    comps = [(i, m) for i, m in enumerate(layout.equip.model) if isinstance(m, GasTurbine | BatteryC)]
    in_service = {i: np.clip(m.count - out.get(i, 0.0), 0, None) for i, m in comps}
    gts = [(i, m) for i, m in comps if isinstance(m, GasTurbine)]
    bats = [(i, m) for i, m in comps if isinstance(m, BatteryC)]
    if any(i in out for i, _ in gts):
        units = sum(in_service[i] for i, _ in gts)
        if sc.limits.turbines_max is not None:
            units = np.minimum(units, sc.limits.turbines_max)
        res["turbine_units_available"] = np.round(units).astype(np.int64)
    if any(i in out for i, _ in bats):
        p = sum(m.p_max_kw for _, m in bats)
        e = sum(m.e_max_kwh for _, m in bats)
        res["battery_p_available_pu"] = sum(in_service[i] * m.p_unit_max_kw for i, m in bats) / p if p > 0 else np.ones(len(t))
        res["battery_e_available_pu"] = sum(in_service[i] * m.e_unit_max_kwh for i, m in bats) / e if e > 0 else np.ones(len(t))
    return res


def _other_outage_steps(sc, layout: SiteLayout, t_rel_s: np.ndarray) -> np.ndarray:
    """Steps with an outage of equipment other than turbines and batteries (feeds, transformers, ...)."""
    from twin.schema.components import Battery as BatteryC
    from twin.schema.components import GasTurbine

    t = np.asarray(t_rel_s, float)
    on = np.zeros(len(t), bool)
    for e in sc.events:
        if getattr(e, "kind", "") == "outage" and e.component in layout.index and not isinstance(
                layout.equip.model[layout.index[e.component]], GasTurbine | BatteryC):
            on |= (t >= e.start_h * 3600.0 - 1e-9) & (t < e.end_h * 3600.0 - 1e-9)
    return on


def _step_min(x: np.ndarray | None, k: int, n: int) -> np.ndarray | None:
    """The lowest value of each block of k steps (n blocks): what is available for the whole hour."""
    if x is None or k == 1:
        return x if x is None else np.asarray(x)[:n]
    return np.asarray(x)[: n * k].reshape(n, k).min(axis=1)


def _steps_per_hour(ds: xr.Dataset) -> int:
    step_s = float(ds.attrs.get("step_s", 3600.0))
    return int(round(3600.0 / step_s)) if step_s < 3600.0 - 1e-9 else 1


def hourly_availability(sc, layout, ds: xr.Dataset, n_hours: int) -> dict:
    """`availability_on_steps` of the scenario's outages on the run's hours: the least in service within
    each hour (None where nothing is out)."""
    k = _steps_per_hour(ds)
    return {key: _step_min(v, k, n_hours) for key, v in availability_on_steps(sc, layout, _elapsed_s(ds)).items()}


def _elapsed_s(ds: xr.Dataset) -> np.ndarray:
    if "elapsed_s" in ds:
        return np.asarray(ds["elapsed_s"].values, float)
    t = np.asarray(ds["time"].values).astype("datetime64[ns]")
    return (t - t[0]) / np.timedelta64(1, "s")


def dispatch_inputs(sc, ds: xr.Dataset, costs=None, **over):
    """DispatchInputs for the scenario's horizon: load = the simulated facility demand (hourly), prices from
    the simulation (data/costs.yaml tariff), turbines and battery from the site, limits from the scenario.
    Outages enter as the simulator sees them: turbine units and battery power / energy in service per step
    (`availability_on_steps`, the least within each hour), and the grid cap is the scenario's (contract cap
    or the feeds' rating, curtailment windows), lowered in the hours other equipment is out (a feed, a
    transformer) to the simulator's own cap at the feed, which holds those outages. (Only then: elsewhere
    the simulator's cap also holds the substations' rating, which an expansion may add to.)"""
    from optimizers.costs import load_costs
    from optimizers.dispatch import Battery, DispatchInputs, TurbineFleet
    from twin.schema.components import Battery as BatteryC
    from twin.schema.components import GasTurbine

    costs = costs or load_costs()
    layout = layout_of(sc)
    time = hourly_time(ds)
    load = hourly(ds, "p_facility_kw")
    price = price_usd_kwh(ds, time, costs)
    gts = [c for c in layout.site.components if isinstance(c, GasTurbine)]
    bats = [c for c in layout.site.components if isinstance(c, BatteryC)]
    tc = costs.turbine_smt130
    if gts:
        g = gts[0]
        n = sum(x.count for x in gts)
        if sc.limits.turbines_max is not None:
            n = min(n, sc.limits.turbines_max)
        fleet = TurbineFleet(n_units=int(n), p_max_kw=g.p_unit_max_kw, p_min_pu=g.p_min_pu, heat_rate_kj_kwh=g.heat_rate_kj_kwh,
                             hhv_lhv_ratio=tc.hhv_lhv_ratio, start_cost_usd=g.start_cost_usd, min_up_h=g.min_up_h,
                             min_down_h=g.min_down_h, vom_usd_kwh=tc.vom_usd_kwh, co2_kg_per_mmbtu=tc.co2_kg_per_mmbtu,
                             nox_kg_per_mmbtu=tc.nox_kg_per_mmbtu,
                             units_online_initial=int(sc.initial_state.turbines_online or 0))
    else:  # no turbines on site: the costed SMT-130 stands as the candidate unit (for expansion)
        fleet = TurbineFleet(n_units=0, p_max_kw=tc.p_max_kw, p_min_pu=tc.p_min_pu, heat_rate_kj_kwh=tc.heat_rate_kj_kwh,
                             hhv_lhv_ratio=tc.hhv_lhv_ratio, start_cost_usd=tc.start_cost_usd, min_up_h=tc.min_up_h,
                             min_down_h=tc.min_down_h, vom_usd_kwh=tc.vom_usd_kwh, co2_kg_per_mmbtu=tc.co2_kg_per_mmbtu,
                             nox_kg_per_mmbtu=tc.nox_kg_per_mmbtu)
    if bats:
        b = bats[0]
        soc0 = sc.initial_state.battery_soc_pu
        battery = Battery(p_max_kw=sum(x.p_max_kw for x in bats), e_max_kwh=sum(x.e_max_kwh for x in bats),
                          efficiency_roundtrip_pu=b.efficiency_roundtrip_pu, soc_min_pu=b.soc_min_pu,
                          soc_max_pu=b.soc_max_pu,
                          soc_initial_pu=float(np.clip(soc0 if soc0 is not None else 0.5, b.soc_min_pu, b.soc_max_pu)))
    else:
        battery = Battery(p_max_kw=0.0, e_max_kwh=0.0, soc_initial_pu=0.0)
    ramp = sc.limits.grid_ramp_max_kw_min
    avail = hourly_availability(sc, layout, ds, len(time))
    k = _steps_per_hour(ds)
    if avail["turbine_units_available"] is not None:
        avail["turbine_units_available"] = np.minimum(avail["turbine_units_available"], fleet.n_units)
    cap = grid_cap_kw(sc, layout, time)
    # while other equipment is out (a feed, a transformer), the simulator's cap at the feed, which holds them
    other_out = _step_min(~_other_outage_steps(sc, layout, _elapsed_s(ds)), k, len(time)) == 0
    if "grid_import_max_kw" in ds and other_out.any():
        sim_cap = _step_min(np.asarray(ds["grid_import_max_kw"].values, float), k, len(time))
        cap = np.where(other_out, np.minimum(cap, sim_cap), cap)
    kw = dict(
        time=time.astype("datetime64[m]"), dt_h=1.0, load_kw=load, price_usd_kwh=price, turbines=fleet, battery=battery,
        grid_import_max_kw=cap, **avail,
        grid_ramp_max_kw_per_h=ramp * 60.0 if ramp is not None else np.inf,
        demand_charge_usd_kw_month=costs.tariff_tva_tou_proxy.demand_charge_usd_kw_month,
        gas_price_usd_mmbtu=costs.fuel.gas_price_usd_mmbtu, grid_co2_kg_kwh=costs.grid.co2_kg_kwh,
        emissions_cap_t_co2=sc.limits.co2_max_t, nox_cap_t=sc.limits.nox_max_t,
        reduction_kw=sc.limits.load_reduction_kw or 0.0,
        value_of_lost_load_usd_kwh=costs.reliability.value_of_lost_load_usd_kwh,
    )
    kw.update(over)
    if len(load) == 0:
        raise InputError.one(_SRC, "hours", "the horizon has no hourly steps")
    kw.setdefault("demand_charge_share_pu", demand_share_on_steps(kw["time"], kw["dt_h"]))
    return DispatchInputs(**kw)


def demand_share_on_steps(time: np.ndarray, dt_h: float) -> np.ndarray:
    """For each step, the share of its calendar month the horizon covers (hours in the horizon / hours in
    the month): a horizon shorter than its months pays their demand charge pro rata, as if the rest of
    each month peaked as high (an assumption; a full month pays it whole)."""
    month = np.asarray(time).astype("datetime64[M]")
    uniq, idx = np.unique(month, return_inverse=True)
    month_h = ((uniq + 1).astype("datetime64[h]") - uniq.astype("datetime64[h]")).astype(float)
    covered_h = np.bincount(idx, minlength=len(uniq)) * float(dt_h)
    return np.minimum(covered_h / month_h, 1.0)[idx]


def dispatch_inputs_at_bus(sc, ds: xr.Dataset, costs=None, hourly_steps: bool = False, **over):
    """DispatchInputs planned where the simulator balances supply and demand: at the medium-voltage bus.

    `dispatch_inputs` takes the simulated facility demand as load, which holds the substations' losses at
    the grid share of the rule-based run; a plan with another grid share changes those losses, so the
    simulator would meter a different import than planned (tens of kW at 100 MW). Here the load is the bus
    demand (`p_bus_kw`, independent of the dispatch), the grid variable is grid power at the bus, and the
    limits that hold at the utility feed are carried to the bus exactly or conservatively:

    - cap: `grid_import_max_bus_kw`, the largest bus grid power whose import at the feed (bus power plus
      the substations' convex losses) stays within the simulator's cap of that step (contract cap,
      curtailment, feed and substation ratings, outages): exact, as the import grows with the bus power;
    - ramp: the feed-side limit divided by 1 + the largest incremental loss slope up to the cap
      (`grid_loss_slope_max_pu`): |d import| <= (1 + slope) |d bus power| for convex losses;
    - availability (turbine units, battery power and energy in service): the scenario's outages on the
      plan's steps, as in `dispatch_inputs` (`availability_on_steps`);
    - prices: energy is priced at the bus, so the energy cost leaves out the substations' losses (about
      0.2-0.3 % of the grid energy on colossus-1); the re-simulation (`dispatch_feedback`) costs it at the meter.

    The plan is made on the simulation's own steps (a run at 15 min plans at 15 min: an hourly plan cannot
    follow the training swings within the hour, and the simulator would see the grid take them); with
    `hourly=True` steps finer than an hour are averaged to hours (the cap: the lowest of the hour)."""
    from dataclasses import replace

    if "grid_import_max_bus_kw" not in ds or "p_bus_kw" not in ds:
        raise InputError.one(_SRC, "grid_import_max_bus_kw", "not in the simulation; expected a run of twin.simulate")
    inp = dispatch_inputs(sc, ds, costs)
    cap = np.asarray(ds["grid_import_max_bus_kw"].values, float)
    step_s = float(ds.attrs.get("step_s", 3600.0))
    slope = float(ds.attrs.get("grid_loss_slope_max_pu", 0.0))
    kw = dict(grid_ramp_max_kw_per_h=inp.grid_ramp_max_kw_per_h / (1.0 + slope))
    if step_s < 3600.0 - 1e-9 and hourly_steps:
        k = int(round(3600.0 / step_s))
        kw.update(load_kw=hourly(ds, "p_bus_kw"), grid_import_max_kw=cap[: inp.n * k].reshape(inp.n, k).min(axis=1))
    elif step_s < 3600.0 - 1e-9:
        time = np.asarray(ds["time"].values).astype("datetime64[ns]")
        price = price_usd_kwh(ds, time, costs, hourly_means=False)
        avail = availability_on_steps(sc, layout_of(sc), _elapsed_s(ds))
        if avail["turbine_units_available"] is not None:
            avail["turbine_units_available"] = np.minimum(avail["turbine_units_available"], inp.turbines.n_units)
        kw.update(time=time.astype("datetime64[s]"), dt_h=step_s / 3600.0, load_kw=np.asarray(ds["p_bus_kw"].values, float),
                  price_usd_kwh=price, grid_import_max_kw=cap, **avail,
                  demand_charge_share_pu=demand_share_on_steps(time, step_s / 3600.0))
    else:
        kw.update(load_kw=hourly(ds, "p_bus_kw"), grid_import_max_kw=cap)
    kw.update(over)
    return replace(inp, **kw)


def dispatch_feedback(sc, ds_sim: xr.Dataset, ds_dispatch: xr.Dataset) -> xr.Dataset:
    """The dispatch `ds_dispatch` (optimizers.dispatch's result for `dispatch_inputs_at_bus(sc, ds_sim)`)
    fed back through the simulator over the span of `ds_sim`: turbines and battery as scheduled, the grid
    taking the rest through the substations, the SOC on the battery's own model from the plan's initial SOC.
    The returned run carries `limit_violation` (twin.sim.engine.check_limits) and, in attrs, the comparison
    with the plan: `feedback_limits_ok`, `feedback_worst_limit`, `feedback_worst_violation`,
    `feedback_soc_max_diff_kwh` (simulated minus planned SOC), `feedback_grid_bus_max_diff_kw` (simulated grid
    at the bus minus planned grid), `feedback_energy_cost_usd` (grid energy at the meter + fuel + O&M)."""
    import twin
    from twin.sim.engine import check_limits

    layout = layout_of(sc)
    from twin.schema.components import Battery as BatteryC

    bats = [c for c in layout.site.components if isinstance(c, BatteryC)]
    eta = float(np.sqrt(bats[0].efficiency_roundtrip_pu)) if bats else 1.0
    dt_h = _dt_h(ds_dispatch)
    soc = np.asarray(ds_dispatch["battery_soc_kwh"].values, float)
    if "battery_charge_kw" in ds_dispatch and "battery_discharge_kw" in ds_dispatch:
        ch = float(ds_dispatch["battery_charge_kw"].values[0])
        dis = float(ds_dispatch["battery_discharge_kw"].values[0])
    else:
        b0 = float(ds_dispatch["battery_p_kw"].values[0])
        ch, dis = max(-b0, 0.0), max(b0, 0.0)
    soc0 = soc[0] - (eta * ch - dis / eta) * dt_h  # the plan's SOC before its first step
    t_rel = np.asarray(ds_sim["elapsed_s"].values, float)
    step_s = float(ds_sim.attrs.get("step_s", 3600.0))
    hours = (t_rel[-1] - t_rel[0] + step_s) / 3600.0
    fb = twin.simulate(None, sc, dispatch=ds_dispatch, initial_state={"battery_soc_kwh": float(soc0)},
                       start_offset_s=float(t_rel[0]), hours=hours)
    lim = check_limits(fb)
    units = dict(zip(fb["limit"].values.tolist(), fb["limit_units"].values.tolist(), strict=True))
    tol = {"kW": FEEDBACK_TOL_KW, "kWh": FEEDBACK_TOL_KW * dt_h, "1": 1e-6}
    ok = all(v <= tol[units[k]] for k, v in lim.items())
    worst = max(lim, key=lambda k: lim[k] / tol[units[k]])
    a = fb.attrs
    a["feedback_limits_ok"] = int(ok)
    a["feedback_worst_limit"] = worst
    a["feedback_worst_violation"] = lim[worst]
    a["feedback_tolerance_kw"] = FEEDBACK_TOL_KW
    same = fb.sizes["time"] == ds_dispatch.sizes["time"]
    if same:
        grid_bus = fb["p_source_kw"].sel(source="grid").values - fb["p_loss_upstream_kw"].values
        a["feedback_soc_max_diff_kwh"] = float(np.max(np.abs(fb["battery_soc_kwh"].values - soc)))
        a["feedback_grid_bus_max_diff_kw"] = float(np.max(np.abs(grid_bus - ds_dispatch["grid_import_kw"].values)))
    cost = fb["cost_usd"].values
    a["feedback_energy_cost_usd"] = float(np.nansum(cost)) if np.isfinite(cost).any() else float("nan")
    return fb


FEEDBACK_TOL_KW = 1.0  # a limit counts as held within 1 kW (1 kWh per hour of SOC; 1e-6 units online)


def _dt_h(ds: xr.Dataset) -> float:
    t = np.asarray(ds["time"].values)
    if len(t) > 1:
        return float((t[1] - t[0]) / np.timedelta64(1, "s")) / 3600.0
    return float(ds.attrs.get("dt_h", 1.0))


def expansion_inputs(sc, ds: xr.Dataset, costs=None, **over):
    """ExpansionInputs: the dispatch inputs as operation, the simulated heat as cooling load, the site's
    chillers as existing capacity, costs from data/costs.yaml; the horizon stands for a year."""
    from dataclasses import replace

    from optimizers.costs import load_costs
    from optimizers.expansion import ExpansionInputs
    from twin.schema.components import Chiller

    costs = costs or load_costs()
    # the horizon stands for a year (demand_months_weight below), so no pro rata share of its months
    op = replace(dispatch_inputs(sc, ds, costs), demand_charge_share_pu=None)
    layout = layout_of(sc)
    # existing heat rejection: every chiller, and dry coolers / towers that cool a loop directly
    loops = layout.of_kind("facility_loop")
    direct = set(np.unique(layout.cooling_incidence.tocsr()[loops].indices).tolist())
    chillers = [m for i, m in enumerate(layout.equip.model)
                if isinstance(m, Chiller) or (i in direct and hasattr(m, "q_max_kw") and m.kind != "facility_loop")]
    q = hourly(ds, "q_generated_kw") if "q_generated_kw" in ds else None
    cop = costs.chiller.cop_pu  # data/costs.yaml (sourced) when the simulation carries no plant COP
    if "cop" in ds and "q_plant_kw" in ds:
        qp, c = hourly(ds, "q_plant_kw"), hourly(ds, "cop")
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(np.isfinite(c) & (c > 0), qp, 0.0)
            cop = np.where(w.sum(1) > 0, (w * np.nan_to_num(c)).sum(1) / np.maximum(w.sum(1), 1e-9), cop)
            cop = np.maximum(cop, 1.0)
    feeds = layout.of_kind("utility_feed")
    grid_existing = float(sum(layout.p_max_kw[i] for i in feeds))
    kw = dict(cooling_load_kw_thermal=q, chiller_cop=cop,
              chiller_existing_kw_thermal=float(sum(c.q_max_kw for c in chillers)),
              grid_existing_kw=grid_existing, cost_weight=8760.0 / max(op.n * op.dt_h, 1e-9),
              # each month of the horizon stands for 12 / (months in the horizon) billed months
              demand_months_weight=12.0 / len(np.unique(np.asarray(op.time).astype("datetime64[M]"))))
    kw.update(over)
    # the simulated load already contains the chillers' electricity: take it out, the expansion adds it back
    if q is not None and "p_plant_kw" in ds:
        p_chil = hourly(ds, "p_plant_kw").sum(axis=1)
        from dataclasses import replace

        op = replace(op, load_kw=np.maximum(op.load_kw - p_chil, 0.0))
    return ExpansionInputs.from_costs(op, costs, **kw)


# ------------------------------------------------------------------------------------------- placement


def placement_state(sc, layout: SiteLayout, ds: xr.Dataset | None = None):
    """Free nodes per rack after the scenario's jobs are placed by the simulator's default fill, and the
    rack load: the simulated peak-hour rack power when a simulation is given, else nameplate share."""
    from optimizers.placement import SiteState, node_power_kw
    from twin.sim.placement_default import place, resolve_jobs

    jobs = resolve_jobs(sc, layout)
    M = place(jobs, layout) if jobs else None  # jobs x racks, GPU counts
    r = layout.racks
    gpn = np.array([g.server.gpus_per_node if g.server else 1 for g in layout.groups])[r.group]
    used_gpus = np.asarray(M.sum(axis=0)).ravel() if M is not None else np.zeros(len(r))
    used_nodes = np.ceil(used_gpus / gpn).astype(np.int64)
    free = np.maximum(r.n_nodes - used_nodes, 0)
    if ds is not None and "p_rack_kw" in ds and "rack" in ds["p_rack_kw"].dims and "time" in ds["p_rack_kw"].dims:
        p_rack = np.asarray(ds["p_rack_kw"].max("time").values, float)
    else:
        st = SiteState.empty(layout)
        p_node = node_power_kw(layout, np.full(len(r), 0.7), r.group)
        p_rack = st.p_rack_kw + used_nodes * p_node
    return SiteState(free_nodes=free, p_rack_kw=p_rack)


def load_queue(path) -> list:
    """A job queue YAML: `jobs: [{name, gpus, p_gpu_kw, priority, duration_h, locality, gpu_type, required}]`."""
    from pathlib import Path

    from optimizers.placement import PlacementJob
    from twin.yamlio import read_yaml

    raw = read_yaml(Path(path))
    items = raw.get("jobs") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not items:
        raise InputError.one(str(path), "jobs", "expected a non-empty list of jobs")
    out = []
    fields = set(PlacementJob.__dataclass_fields__)
    for i, j in enumerate(items):
        if not isinstance(j, dict):
            raise InputError.one(str(path), f"jobs[{i}]", "expected a mapping")
        bad = set(j) - fields
        if bad:
            raise InputError.one(str(path), f"jobs[{i}]", f"unknown keys {sorted(bad)}; expected {sorted(fields)}")
        for k in ("name", "gpus", "p_gpu_kw"):
            if k not in j:
                raise InputError.one(str(path), f"jobs[{i}].{k}", "missing")
        out.append(PlacementJob(**j))
    return out


# ------------------------------------------------------------------------------------------- capping


def capping_inputs(sc, ds: xr.Dataset, p_limit_kw: float | None = None):
    """CappingInputs at the tightest hour: the hour of the horizon where the simulated facility demand
    exceeds the limit the most (limit = grid import cap, lowered by curtailment events, plus the on-site
    turbines and battery power in service that hour, unless `p_limit_kw` is given). Caps act on each job's GPU power; the node
    base load, non-GPU racks and cooling are fixed load. Facility factor = facility / IT power that hour."""
    from optimizers.capping import CappingInputs, CappingJob
    from twin.schema.components import Battery as BatteryC
    from twin.schema.components import GasTurbine
    from twin.sim.placement_default import resolve_jobs

    layout = layout_of(sc)
    time = hourly_time(ds)
    p_fac = hourly(ds, "p_facility_kw")
    if p_limit_kw is None:
        # on-site supply in service each hour (the scenario's outages, as the dispatch sees them)
        gts = [c for c in layout.site.components if isinstance(c, GasTurbine)]
        bats = [c for c in layout.site.components if isinstance(c, BatteryC)]
        avail = hourly_availability(sc, layout, ds, len(time))
        n_units = sum(c.count for c in gts)
        if sc.limits.turbines_max is not None:
            n_units = min(n_units, sc.limits.turbines_max)
        units = np.full(len(time), float(n_units)) if avail["turbine_units_available"] is None \
            else np.minimum(avail["turbine_units_available"], n_units)
        bat_share = np.ones(len(time)) if avail["battery_p_available_pu"] is None else avail["battery_p_available_pu"]
        onsite = units * (gts[0].p_unit_max_kw if gts else 0.0) + sum(c.p_max_kw for c in bats) * bat_share
        limit = grid_cap_kw(sc, layout, time) + onsite
    else:
        limit = np.full(len(time), float(p_limit_kw))
    t = int(np.argmax(p_fac - limit))
    p_job = hourly(ds, "p_job_kw")[t]
    jobs_sc = {j.name: j for j in resolve_jobs(sc, layout)}
    names = [str(n) for n in ds["job"].values]
    p_it = float(hourly(ds, "p_rack_kw")[t].sum()) if "p_rack_kw" in ds and "rack" in ds["p_rack_kw"].dims else float(p_job.sum())
    factor = max(float(p_fac[t]) / max(p_it, 1e-9), 1.0)
    # p_job_kw is the jobs' GPU power (DC); the limit sees it through the PSUs (catalog curve at the node's
    # load) and the facility (cooling, losses: facility / IT power that hour)
    from optimizers.placement import node_power_kw

    gi = next((k for k, g in enumerate(layout.groups) if g.server is not None), 0)
    srv = layout.groups[gi].server
    jobs = []
    for n, pj in zip(names, p_job, strict=True):
        j = jobs_sc.get(n)
        if j is None or pj <= 0:
            continue
        jobs.append(CappingJob(name=n, gpus=j.gpus, p_gpu_kw=float(pj) / j.gpus,
                               gpu_type=j.gpu_type or (srv.gpu_type if srv else None),
                               workload=getattr(j, "kind", "training")))
    if srv is not None and jobs:
        pg = np.array([j.p_gpu_kw for j in jobs])
        ac = node_power_kw(layout, pg, np.full(len(jobs), gi))
        eta = (srv.gpus_per_node * pg + srv.p_base_kw) / ac
        factor = factor / float(np.average(eta, weights=[j.gpus for j in jobs]))
    if not jobs:
        raise InputError.one(_SRC, "workload", "no running job to cap in the scenario")
    fixed = float(p_fac[t]) - factor * sum(j.gpus * j.p_gpu_kw for j in jobs)
    inp = CappingInputs(jobs=jobs, p_site_max_kw=float(limit[t]), p_fixed_kw=max(fixed, 0.0), facility_factor_pu=factor,
                        time_limit_s=sc.solver.time_limit_s)
    return inp, time[t]


# ------------------------------------------------------------------------------------------- cooling


def cooling_inputs(sc, ds: xr.Dataset, options=None):
    """CoolingInputs from the simulation: per-rack heat, weather and prices, hourly; the fixed setpoint
    to compare with is the scenario's (or the loops' own)."""
    from optimizers.cooling import CoolingInputs, CoolingOptions

    layout = layout_of(sc)
    if "q_liquid_kw" not in ds or "rack" not in ds["q_liquid_kw"].dims or "time" not in ds["q_liquid_kw"].dims:
        raise InputError.one(_SRC, "step", "cooling setpoints need a run with per-rack heat on the time axis "
                                           "(step of 1 min or more)")
    time = hourly_time(ds)
    opt = options or CoolingOptions()
    t_set = sc.setpoints.t_supply_c
    if isinstance(t_set, int | float) and opt.t_fixed_c is None:
        from dataclasses import replace

        opt = replace(opt, t_fixed_c=float(t_set))
    return CoolingInputs(layout=layout, time=time, q_liquid_kw=hourly(ds, "q_liquid_kw"), q_air_kw=hourly(ds, "q_air_kw"),
                         t_dry_c=hourly(ds, "t_dry_c"), t_wet_c=hourly(ds, "t_wet_c"),
                         price_usd_kwh=price_usd_kwh(ds, time), options=opt)


def capping_cross_check(sc, ds_sim: xr.Dataset, hour, ds_cap: xr.Dataset) -> dict:
    """Feed the caps back through the layout's power aggregation at the capped hour: each rack's simulated
    input power less the GPU power its jobs give up (through the PSU curve), summed up the power tree;
    compare the site demand (scaled by the hour's facility / IT factor) with the limit."""
    from optimizers.placement import node_power_kw
    from twin.sim.placement_default import place, resolve_jobs

    layout = layout_of(sc)
    jobs = resolve_jobs(sc, layout)
    names = [j.name for j in jobs]
    M = place(jobs, layout)  # jobs x racks, GPU counts
    t = int(np.flatnonzero(hourly_time(ds_sim) == np.datetime64(hour, "ns"))[0])
    p_rack = hourly(ds_sim, "p_rack_kw")[t]
    gi = next((k for k, g in enumerate(layout.groups) if g.server is not None), 0)
    srv = layout.groups[gi].server
    cut = np.zeros(len(names))
    for k, n in enumerate(names):
        if n in ds_cap.job.values:
            p0 = float(ds_cap["p_gpu_cap_kw"].sel(job=n) / ds_cap["cap_pu"].sel(job=n))
            p1 = float(ds_cap["p_gpu_cap_kw"].sel(job=n))
            ac = node_power_kw(layout, np.array([p0, p1]), np.array([gi, gi]))
            cut[k] = (ac[0] - ac[1]) / srv.gpus_per_node  # AC kW per GPU given up
    p_rack_capped = p_rack - np.asarray(M.T @ cut).ravel()
    up_before = layout.up(p_rack)
    up_after = layout.up(p_rack_capped)
    factor = float(hourly(ds_sim, "p_facility_kw")[t]) / max(float(p_rack.sum()), 1e-9)
    site_after = float(p_rack_capped.sum()) * factor
    lim = float(ds_cap.attrs.get("p_site_max_kw", np.nan))
    return {"p_site_before_kw": float(p_rack.sum()) * factor, "p_site_after_kw": site_after, "limit_kw": lim,
            "ok": bool(site_after <= lim * (1 + 1e-3) + 1.0) if np.isfinite(lim) else True,
            "p_equipment_before_kw": up_before, "p_equipment_after_kw": up_after}
