"""What-if: run a baseline scenario and a changed case (events added, settings overridden) and compare KPIs.

Events on the command line use a compact form:
    outage:COMPONENT[/UNITS]@START+HOURS      outage:hall-1-tx1@2h+4h, outage:sub63/1@0h+24h
    heat_wave:DELTA_K@START+HOURS             heat_wave:6@4000h+72h
    curtailment:LIMIT@START+HOURS             curtailment:80MW@10h+2h (kW when no unit)
    job_start:JOB@AT / job_end:JOB@AT         job_end:fill@12h
A what-if file (YAML) holds `events:` (a list in the scenario's event form) and optionally `changes:`, a
mapping deep-merged into the base scenario (e.g. `mitigations: {gpu_power_floor_pu: 0.9}`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xarray as xr

from twin.errors import InputError
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


@dataclass
class WhatIf:
    base: xr.Dataset
    case: xr.Dataset
    table: pd.DataFrame  # kpi, base, case, difference


def compare(base: xr.Dataset, case: xr.Dataset, n1: bool = False) -> pd.DataFrame:
    kb, kc = base.twin.kpis(n1=n1), case.twin.kpis(n1=n1)
    rows = []
    for key in kb:
        vb, vc = kb[key], kc.get(key)
        if isinstance(vb, int | float) and isinstance(vc, int | float):
            rows.append({"kpi": key, "base": float(vb), "case": float(vc), "difference": float(vc) - float(vb)})
    return pd.DataFrame(rows)


def whatif(base_scenario, events: list[str | dict] | None = None, file: str | Path | None = None,
           site=None, progress=None) -> WhatIf:
    """Run the baseline and the changed case; `events` in CLI text form or as dicts; `file` a what-if YAML."""
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
    case = case_scenario(base, evs, changes, where)
    ds_base = simulate(site, base, progress=(lambda f, s: progress(f / 2, f"base: {s}")) if progress else None)
    ds_case = simulate(site, case, progress=(lambda f, s: progress(0.5 + f / 2, f"case: {s}")) if progress else None)
    return WhatIf(ds_base, ds_case, compare(ds_base, ds_case))
