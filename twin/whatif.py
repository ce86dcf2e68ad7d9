"""What-if: run a baseline scenario and a changed case (events added, settings overridden) and compare KPIs.

Events on the command line use a compact form:
    outage:COMPONENT[/UNITS]@START+HOURS      outage:hall-1-tx1@2h+4h, outage:sub63/1@0h+24h
    heat_wave:DELTA_K@START+HOURS             heat_wave:6@4000h+72h
    curtailment:LIMIT@START+HOURS             curtailment:80MW@10h+2h (kW when no unit)
    job_start:JOB@AT / job_end:JOB@AT         job_end:fill@12h
A what-if file (YAML) holds `events:` (a list in the scenario's event form) and optionally `changes:`, a
mapping deep-merged into the base scenario (e.g. `mitigations: {gpu_power_floor_pu: 0.9}`).

`optimize="dispatch"` or `"capping"` chains an optimisation after each simulation (the optimal dispatch of
the simulated load, planned at the bus and fed back through the simulator; the power caps at the tightest
hour) and adds its figures to the comparison, prefixed `dispatch_` / `capping_`. A case the optimiser finds
infeasible keeps its simulated KPIs and its planner's explanation in `WhatIf.infeasible`. Over a horizon
shorter than a month the dispatch pays the month's demand charge pro rata (optimizers.adapters.
demand_share_on_steps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import xarray as xr

from twin.errors import InfeasibleError, InputError
from twin.schema.scenario import Scenario, check_scenario, scenario_from_dict

_EV = re.compile(r"^(?P<kind>[a-z_]+):(?P<arg>[^@]+)@(?P<start>[0-9.]+)h?(?:\+(?P<hours>[0-9.]+)h?)?$")


def parse_event(text: str) -> dict:
    """'outage:hall-1-tx1@2h+4h' -> {'kind': 'outage', 'component': 'hall-1-tx1', 'start_h': 2, 'hours': 4}."""
    m = _EV.match(text.strip())
    where = f"--event {text}"
    if not m:
        raise InputError.one(where, "", "expected KIND:ARG@STARTh+HOURSh, e.g. outage:hall-1-tx1@2h+4h")
    kind, arg, start, hours = m["kind"], m["arg"], float(m["start"]), m["hours"]
    if kind in ("job_start", "job_end"):
        return {"kind": kind, "job": arg, "at_h": start}
    if hours is None:
        raise InputError.one(where, "", f"a {kind} event needs a duration: @STARTh+HOURSh")
    ev = {"kind": kind, "start_h": start, "hours": float(hours)}
    if kind == "outage":
        comp, _, units = arg.partition("/")
        ev["component"] = comp
        if units:
            ev["units"] = int(units)
    elif kind == "heat_wave":
        ev["delta_t_k"] = float(arg.rstrip("Kk"))
    elif kind == "curtailment":
        u = arg.strip().lower()
        scale = 1000.0 if u.endswith("mw") else 1.0
        ev["grid_import_max_kw"] = float(u.removesuffix("mw").removesuffix("kw")) * scale
    else:
        raise InputError.one(where, "", "unknown event kind; expected outage, heat_wave, curtailment, job_start, job_end")
    return ev


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def case_scenario(base: Scenario, events: list[dict] | None = None, changes: dict | None = None,
                  file: str = "<what-if>") -> Scenario:
    raw = base.model_dump(mode="json")
    raw = _merge(raw, changes or {})
    raw["events"] = [*raw.get("events", []), *(events or [])]
    raw["name"] = f"{base.name}-whatif"
    sc = scenario_from_dict(raw, file)
    check_scenario(sc, file)
    return sc


OPTIMIZERS = ("dispatch", "capping")


@dataclass
class WhatIf:
    base: xr.Dataset
    case: xr.Dataset
    table: pd.DataFrame  # kpi, base, case, difference
    optimized: dict[str, xr.Dataset] = field(default_factory=dict)  # "base"/"case" -> the optimiser's result
    infeasible: dict[str, str] = field(default_factory=dict)  # "base"/"case" -> the planner's explanation


def optimize_case(kind: str, sc: Scenario, ds: xr.Dataset) -> tuple[xr.Dataset, dict[str, float]]:
    """Run optimiser `kind` on a simulated case; its result and the figures the what-if compares."""
    if kind == "dispatch":
        from optimizers.adapters import dispatch_feedback, dispatch_inputs_at_bus
        from optimizers.dispatch import solve_dispatch

        inp = dispatch_inputs_at_bus(sc, ds)
        plan = solve_dispatch(inp, time_limit_s=sc.solver.time_limit_s, rel_gap=sc.solver.rel_gap)
        fb = dispatch_feedback(sc, ds, plan)
        a, dt_h = plan.attrs, inp.dt_h
        out = {f"dispatch_{k}": float(a[k]) for k in ("cost_total_usd", "cost_energy_usd", "cost_demand_usd",
                                                       "cost_fuel_usd", "co2_onsite_t", "nox_t") if k in a}
        out |= {"dispatch_grid_import_max_mw": float(plan.grid_import_kw.max()) / 1e3 or 0.0,  # not -0
                "dispatch_turbine_energy_mwh": float(plan.turbine_p_kw.sum()) * dt_h / 1e3,
                "dispatch_battery_discharge_mwh": float(plan.battery_discharge_kw.sum()) * dt_h / 1e3,
                "dispatch_curtailed_mwh": float(plan.curtailed_kw.sum()) * dt_h / 1e3,
                "dispatch_simulator_limits_ok": float(fb.attrs["feedback_limits_ok"])}
        return plan, out
    if kind == "capping":
        from optimizers.adapters import capping_inputs
        from optimizers.capping import optimize_capping

        inp, _ = capping_inputs(sc, ds, None)
        res = optimize_capping(inp)
        a = res.attrs
        return res, {"capping_p_site_max_mw": a["p_site_max_kw"] / 1e3, "capping_p_capped_mw": a["p_capped_kw"] / 1e3,
                     "capping_throughput_lost_pu": float(a["throughput_lost_pu"]),
                     "capping_cap_min_pu": float(res["cap_pu"].min())}
    raise InputError.one("--optimize", "", f"unknown optimiser {kind!r}; expected one of {', '.join(OPTIMIZERS)}")


def compare(base: xr.Dataset, case: xr.Dataset, n1: bool = False, extra_base: dict | None = None,
            extra_case: dict | None = None) -> pd.DataFrame:
    kb = base.twin.kpis(n1=n1) | (extra_base or {})
    kc = case.twin.kpis(n1=n1) | (extra_case or {})
    rows = []
    for key in kb:
        vb, vc = kb[key], kc.get(key)
        if isinstance(vb, int | float) and isinstance(vc, int | float):
            rows.append({"kpi": key, "base": float(vb), "case": float(vc), "difference": float(vc) - float(vb)})
    return pd.DataFrame(rows)


def whatif(base_scenario, events: list[str | dict] | None = None, file: str | Path | None = None,
           site=None, progress=None, optimize: str | None = None) -> WhatIf:
    """Run the baseline and the changed case; `events` in CLI text form or as dicts; `file` a what-if YAML;
    `optimize` one of OPTIMIZERS to chain after each simulation."""
    import twin.accessor  # noqa: F401
    from twin.sim.engine import as_scenario, simulate

    base = as_scenario(base_scenario)
    evs = [parse_event(e) if isinstance(e, str) else dict(e) for e in (events or [])]
    changes = {}
    where = "<what-if>"
    if file is not None:
        from twin.yamlio import read_yaml

        where = str(file)
        raw = read_yaml(Path(file)) or {}
        if not isinstance(raw, dict) or not set(raw) <= {"name", "description", "events", "changes"}:
            raise InputError.one(where, "", "expected a mapping with keys events (list) and/or changes (mapping)")
        evs += list(raw.get("events") or [])
        changes = raw.get("changes") or {}
    if not evs and not changes:
        raise InputError.one(where, "events", "a what-if needs at least one event or change")
    if optimize is not None and optimize not in OPTIMIZERS:
        raise InputError.one("--optimize", "", f"unknown optimiser {optimize!r}; expected one of {', '.join(OPTIMIZERS)}")
    case = case_scenario(base, evs, changes, where)
    share = 0.4 if optimize else 0.5  # of the progress bar per simulation
    ds_base = simulate(site, base, progress=(lambda f, s: progress(f * share, f"base: {s}")) if progress else None)
    ds_case = simulate(site, case, progress=(lambda f, s: progress(share + f * share, f"case: {s}")) if progress else None)
    res = WhatIf(ds_base, ds_case, compare(ds_base, ds_case))
    if optimize:
        extra = {}
        for k, (name, scn, dsn) in enumerate((("base", base, ds_base), ("case", case, ds_case))):
            if progress:
                progress(2 * share + k * (1 - 2 * share) / 2, f"{name}: {optimize}")
            try:
                res.optimized[name], extra[name] = optimize_case(optimize, scn, dsn)
            except InfeasibleError as exc:
                res.infeasible[name], extra[name] = str(exc), {}
        res.table = compare(ds_base, ds_case, extra_base=extra["base"], extra_case=extra["case"])
    return res
