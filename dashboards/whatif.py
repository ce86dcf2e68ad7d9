"""What-if runs from the dashboard: validate the form into a baseline and a changed case, run both in the
background with progress, store both in the run store, and compare them.

`validate_form` is pure (tests call it directly) and returns every problem it finds, in words a user can
act on; nothing starts unless the list is empty. `run_whatif` is what the background worker executes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

STEPS = {"5min": "5 min", "15min": "15 min", "1h": "1 h"}
HORIZON_MAX_H = 24 * 14  # a dashboard what-if stays interactive; longer studies belong to the CLI
HEAT_WAVE_MAX_K = 15.0


@dataclass(frozen=True)
class WhatIfSpec:
    """A validated what-if: the baseline scenario, the case scenario, and the site change (if any)."""

    label: str
    baseline: object  # twin Scenario
    case: object  # twin Scenario
    case_site: str | None = None  # another site (an added phase), None = the same site
    battery_units: int | None = None  # Megapack units in the case, None = as built
    changes: tuple[str, ...] = field(default_factory=tuple)


def _num(form: dict, key: str, label: str, errors: list[str], *, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False, integer: bool = False, required: bool = True) -> float | None:
    raw = form.get(key)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            errors.append(f"{label}: a number is required")
        return None
    try:
        v = float(raw)
    except (TypeError, ValueError):
        errors.append(f"{label}: {raw!r} is not a number")
        return None
    if not math.isfinite(v):
        errors.append(f"{label}: must be a finite number")
        return None
    if integer and v != int(v):
        errors.append(f"{label}: must be a whole number, got {v:g}")
        return None
    if lo is not None and (v <= lo if lo_open else v < lo):
        errors.append(f"{label}: must be {'greater than' if lo_open else 'at least'} {lo:g}, got {v:g}")
        return None
    if hi is not None and v > hi:
        errors.append(f"{label}: must be at most {hi:g}, got {v:g}")
        return None
    return v


def _window(form: dict, prefix: str, label: str, horizon: float | None, errors: list[str]) -> tuple[float, float] | None:
    start = _num(form, f"{prefix}_start_h", f"{label} start (h)", errors, lo=0)
    hours = _num(form, f"{prefix}_hours", f"{label} duration (h)", errors, lo=0, lo_open=True)
    if start is None or hours is None:
        return None
    if horizon is not None and start >= horizon:
        errors.append(f"{label} start (h): {start:g} h is not inside the {horizon:g} h horizon")
        return None
    return start, hours


def validate_form(ctx, form: dict, start: datetime) -> tuple[WhatIfSpec | None, list[str]]:
    """Turn the what-if form into a WhatIfSpec, or return every problem found (and no spec)."""
    from pydantic import ValidationError

    from twin.schema.scenario import Scenario

    errors: list[str] = []
    layout = ctx.layout
    horizon = _num(form, "horizon_h", "Horizon (h)", errors, lo=0, lo_open=True, hi=HORIZON_MAX_H)
    step = form.get("step") or "15min"
    if step not in STEPS:
        errors.append(f"Step: {step!r} is not one of {', '.join(STEPS)}")
    events: list[dict] = []
    changes: list[str] = []
    enabled = set(form.get("enabled") or [])
    if not enabled:
        errors.append("Choose at least one change (fail a component, heat wave, curtailment, battery, added phase)")

    if "outage" in enabled:
        comp = form.get("outage_component")
        units = _num(form, "outage_units", "Units out", errors, lo=1, integer=True, required=False)
        win = _window(form, "outage", "Outage", horizon, errors)
        if not comp:
            errors.append("Fail a component: choose the component")
        elif comp not in layout.index:
            errors.append(f"Fail a component: {comp!r} is not equipment of {ctx.site.name}")
        else:
            count = layout.equip.model[layout.index[comp]].count
            if units is not None and units > count:
                errors.append(f"Units out: {comp} has {count} unit(s), cannot lose {units:g}")
            elif win:
                ev = {"kind": "outage", "component": comp, "start_h": win[0], "hours": win[1]}
                if units is not None:
                    ev["units"] = int(units)
                events.append(ev)
                changes.append(f"{comp} out" + (f" ({int(units)} of {count} units)" if units else "")
                               + f" from +{win[0]:g} h for {win[1]:g} h")
    if "heat_wave" in enabled:
        dt = _num(form, "heat_delta_k", "Heat wave rise (K)", errors, lo=0, lo_open=True, hi=HEAT_WAVE_MAX_K)
        win = _window(form, "heat", "Heat wave", horizon, errors)
        if dt is not None and win:
            events.append({"kind": "heat_wave", "delta_t_k": dt, "start_h": win[0], "hours": win[1]})
            changes.append(f"heat wave +{dt:g} K from +{win[0]:g} h for {win[1]:g} h")
    if "curtailment" in enabled:
        feed_mw = sum(layout.p_max_kw[i] for i in layout.of_kind("utility_feed")) / 1000.0
        mw = _num(form, "curt_mw", "Grid import limit (MW)", errors, lo=0, hi=feed_mw)
        win = _window(form, "curt", "Curtailment", horizon, errors)
        if mw is not None and win:
            events.append({"kind": "curtailment", "grid_import_max_kw": mw * 1000.0, "start_h": win[0], "hours": win[1]})
            changes.append(f"grid import limited to {mw:g} MW from +{win[0]:g} h for {win[1]:g} h")
    battery_units = None
    if "battery" in enabled:
        batts = [i for i in layout.of_kind("battery")]
        if not batts:
            errors.append(f"Battery: {ctx.site.name} has no battery to resize")
        else:
            v = _num(form, "battery_units", "Battery units", errors, lo=1, hi=100_000, integer=True)
            if v is not None:
                battery_units = int(v)
                m = layout.equip.model[batts[0]]
                changes.append(f"battery {m.count} -> {battery_units} units "
                               f"({m.p_unit_max_kw * battery_units / 1000:g} MW, {m.e_unit_max_kwh * battery_units / 1000:g} MWh)")
    case_site = None
    if "phase" in enabled:
        from twin.site import site_names

        other = form.get("phase_site")
        if not other:
            errors.append("Add a phase: choose the site that includes the added phase")
        elif other not in site_names():
            errors.append(f"Add a phase: unknown site {other!r}")
        elif other == ctx.site_name:
            errors.append("Add a phase: choose a site other than the one running")
        else:
            case_site = other
            changes.append(f"run on {other} (added phase)")
    if errors:
        return None, errors
    common = {"site": ctx.site_name, "start": start.replace(minute=0, second=0, microsecond=0),
              "hours": horizon, "step": step}
    from twin.errors import InputError
    from twin.whatif import case_scenario

    try:
        baseline = Scenario(name=f"whatif-{ctx.site_name}", **common)
        # the case: the baseline plus the events (and another site for an added phase), checked against its site
        case = case_scenario(baseline, events, {"site": case_site} if case_site else None, "what-if form")
    except ValidationError as exc:
        return None, [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
    except InputError as exc:
        return None, [p.message if not p.key else f"{p.key}: {p.message}" for p in exc.problems]
    return WhatIfSpec(label="; ".join(changes), baseline=baseline, case=case, case_site=case_site,
                      battery_units=battery_units, changes=tuple(changes)), []


def _case_site(ctx, spec: WhatIfSpec):
    """The site the case runs on: an added phase (other site) and/or a resized battery."""
    from twin.layout import expand
    from twin.site import load_site

    site = load_site(spec.case_site) if spec.case_site else ctx.site
    if spec.battery_units is None:
        return spec.case_site or ctx.layout
    comps = tuple(c.model_copy(update={"count": spec.battery_units}) if c.kind == "battery" else c
                  for c in site.components)
    return expand(site.model_copy(update={"components": comps}))


def run_whatif(ctx, spec: WhatIfSpec, progress) -> dict:
    """Baseline and case, each simulated and written to the run store; returns their ids and KPIs."""
    from twin import simulate
    from twin.runs import save_run

    base_dir = ctx.runs_dir
    progress(0.02, "simulating the baseline")
    ds_b = simulate(ctx.layout, spec.baseline, progress=lambda f, s: progress(0.02 + 0.4 * f, f"baseline: {s}"))
    progress(0.45, "simulating the case")
    ds_c = simulate(_case_site(ctx, spec), spec.case, progress=lambda f, s: progress(0.45 + 0.4 * f, f"case: {s}"))
    ds_c.attrs["whatif_changes"] = spec.label
    progress(0.88, "writing both runs to the run store")
    from twin.whatif import compare

    table = compare(ds_b, ds_c)
    k_b, k_c = ds_b.twin.kpis(), ds_c.twin.kpis()
    id_b = save_run(ds_b, k_b, base=base_dir)
    id_c = save_run(ds_c, {**k_c, "whatif_changes": spec.label, "whatif_baseline": id_b}, base=base_dir)
    progress(0.98, "comparing")
    return {"baseline_id": id_b, "case_id": id_c, "label": spec.label, "table": table.to_dict("records"),
            "series": _series(ds_b, ds_c), "overloads": _overloads(ds_c), "stranded_gpus_max": int(ds_c["stranded_gpus"].max())}


def _series(ds_b, ds_c) -> dict:
    t = [str(x) for x in np.datetime_as_string(ds_b["time"].values, unit="m")]
    out = {"time": t}
    for name, ds in (("baseline", ds_b), ("case", ds_c)):
        out[f"{name}_facility_mw"] = np.round(ds["p_facility_kw"].values / 1000.0, 3).tolist()
        out[f"{name}_grid_mw"] = np.round(ds["p_source_kw"].sel(source="grid").values / 1000.0, 3).tolist()
        out[f"{name}_unserved_mw"] = np.round(ds["p_unserved_kw"].values / 1000.0, 3).tolist()
    return out


def _overloads(ds) -> list[tuple[str, float]]:
    peak = ds["loading_pu"].max("time").values
    ids = ds["equipment"].values
    order = np.argsort(-peak)
    return [(str(ids[i]), float(peak[i])) for i in order[:8] if peak[i] > 1.0]


COUNT_KPIS = {"stranded_gpus_max", "job_failures", "turbine_starts", "turbines_online_max"}


def compare_rows(table: list[dict]) -> list[tuple[str, str, str, str]]:
    """(label, baseline, case, difference) of twin.whatif.compare's table, for the KPIs that have a label."""
    from twin.kpi.summary import KPI_LABELS

    by_key = {r["kpi"]: r for r in table}
    rows = []
    for key, label in KPI_LABELS.items():
        r = by_key.get(key)
        if r is None or not (math.isfinite(r["base"]) and math.isfinite(r["case"])):
            continue
        whole = float(r["base"]).is_integer() and float(r["case"]).is_integer() and key in COUNT_KPIS
        digits = 0 if whole else 3 if abs(r["base"]) < 10 else 1
        rows.append((label, f"{r['base']:,.{digits}f}", f"{r['case']:,.{digits}f}", f"{r['difference']:+,.{digits}f}"))
    return rows


def runs_base(ctx) -> Path | None:
    return ctx.runs_dir
