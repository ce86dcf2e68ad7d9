"""Every assumption of a run with its source: the site (its own provenance, components, halls, their
distribution levels and rack groups, the catalog parts), the scenario (span, workload and its model
parameters, limits, setpoints, dispatch), the prices and emission factors of data/costs.yaml the engine
uses, and the climate statistics of the typical-year weather.

One row per parameter group: group, item, value, source, confidence (published / derived / assumed;
"not stated" when the input gives none, so a planner sees the gap)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from twin.schema.site import Site
from twin.sim.engine import COST_KEYS

NOT_STATED = "not stated"
COLUMNS = ["group", "item", "value", "source", "confidence"]
_SKIP = {"id", "kind", "type", "fed_by", "cooled_by", "source", "confidence", "notes", "index_start"}
# The data/costs.yaml entries twin.sim.engine._costs reads (section, key); the rest of the file serves optimisers.
ENGINE_COSTS = tuple(COST_KEYS.values())


def fmt_value(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v == int(v) and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {fmt_value(x)}" for k, x in v.items()) + "}"
    return str(v)


def _fields(model, skip=()) -> str:
    d = model.model_dump(mode="json") if hasattr(model, "model_dump") else dict(model)
    parts = []
    for k, v in d.items():
        if k in _SKIP or k in skip or v is None or isinstance(v, dict) and not v:
            continue
        parts.append(f"{k}={fmt_value(v)}")
    return ", ".join(parts)


def _row(group, item, value, source, confidence) -> dict:
    return {"group": group, "item": item, "value": value, "source": source or NOT_STATED,
            "confidence": confidence or NOT_STATED}


def site_rows(site: Site) -> list[dict]:
    rows = [_row("site", site.name, f"{site.description}; oversubscription_pu={fmt_value(site.oversubscription_pu)}",
                 site.source, site.confidence)]
    loc = site.location
    rows.append(_row("site", "location", f"{loc.name} ({loc.lat_deg:g}, {loc.lon_deg:g}), elevation {loc.elevation_m:g} m, "
                     f"UTC{loc.utc_offset_h:+g} h, climate {loc.climate}", site.source, site.confidence))
    for c in site.components:
        typ = f" [{c.type}]" if c.type else ""
        rows.append(_row(f"component: {c.kind}", f"{c.id}{typ}", _fields(c), c.source, c.confidence))
    for h in site.halls:
        ids = h.instance_ids()
        rows.append(_row("hall", h.id if h.count == 1 else f"{h.id} ({', '.join(ids)})",
                         f"count={h.count}, redundancy={h.redundancy}, racks_per_row={h.racks_per_row}, "
                         f"racks_per_array={h.racks_per_array}", h.source, h.confidence))
        for j, lv in enumerate(h.distribution):
            rows.append(_row("hall distribution", f"{h.id} level {j + 1}: {lv.kind} [{lv.type or '-'}]",
                             f"count={lv.count} per parent unit; {_fields(lv, skip={'count'})}", lv.source, lv.confidence))
        for g in h.racks:
            nodes = f", nodes={g.nodes:,}" if g.nodes is not None else ""
            src = g.source or g.rack.source
            conf = g.confidence or g.rack.confidence
            rows.append(_row("hall racks", f"{h.id}: {g.type}", f"count={g.count:,} per hall{nodes}; {_fields(g.rack)}",
                             src, conf))
    for kind, entries in site.parts.model_dump().items():
        for name in entries:
            m = getattr(site.parts, kind)[name]
            rows.append(_row(f"catalog part: {kind}", name, _fields(m), m.source, m.confidence))
    return rows


def _field_doc(model_cls, name: str) -> str:
    f = model_cls.model_fields.get(name)
    return (f.description or "") if f is not None else ""


def _assumed(doc: str) -> str:
    d = doc.lower()
    if "derived" in d:
        return "derived"
    return "assumed"


def scenario_rows(sc: dict) -> list[dict]:
    """The scenario as run (resolved, defaults filled): its choices and the workload model parameters, with
    the reasoning the schema records for each default."""
    from twin.schema.scenario import Dispatch, Limits, Setpoints
    from twin.schema.workload import InferenceJob, Mitigations, TrainingJob

    name = sc.get("name", "scenario")
    choice = f"scenario {name!r} (planning choice)"
    rows = [_row("scenario", "span and step", f"start={sc.get('start')}, hours={fmt_value(sc.get('hours'))}, "
                 f"step={sc.get('step')}, seed={sc.get('seed')}", choice, "assumed"),
            _row("scenario", "weather", sc.get("weather") or "typical year from climate statistics (see climate rows)",
                 choice, "assumed")]
    wl = sc.get("workload") or {}
    if wl.get("fill_pu") is not None:
        rows.append(_row("scenario: workload", "fill", f"fill_pu={fmt_value(wl['fill_pu'])}: one training job per GPU "
                         "type on that share of the GPUs", choice, "assumed"))
        fill = TrainingJob(name="fill", gpus=1, **(wl.get("fill_job") or {}))
        jobs = [("fill job (training)", fill, set(wl.get("fill_job") or {}))]
    else:
        jobs = []
    for j in wl.get("jobs") or []:
        cls = TrainingJob if j.get("kind", "training") == "training" else InferenceJob
        jobs.append((f"job {j['name']} ({cls.model_fields['kind'].default})", cls.model_validate(j), set(j)))
    for label, job, given in jobs:
        for k, v in job.model_dump(mode="json").items():
            if k in ("name", "kind", "seed") or v is None:
                continue
            doc = _field_doc(type(job), k)
            if k in given and label.startswith("job") and k in ("gpus", "gpu_type", "start_s", "end_s"):
                rows.append(_row("scenario: workload", f"{label}: {k}", fmt_value(v), choice, "assumed"))
            elif k in given:
                rows.append(_row("scenario: workload", f"{label}: {k}", fmt_value(v), f"{choice}; {doc}", "assumed"))
            else:
                rows.append(_row("scenario: workload", f"{label}: {k}", fmt_value(v), f"model default: {doc}",
                                 _assumed(doc)))
    for group, cls, key in (("scenario: mitigations", Mitigations, "mitigations"), ("scenario: limits", Limits, "limits"),
                            ("scenario: setpoints", Setpoints, "setpoints"), ("scenario: dispatch", Dispatch, "dispatch")):
        for k, v in (sc.get(key) or {}).items():
            if v is None or v is False:
                continue
            rows.append(_row(group, k, fmt_value(v), f"{choice}; {_field_doc(cls, k)}", "assumed"))
    for i, ev in enumerate(sc.get("events") or []):
        desc = ", ".join(f"{k}={fmt_value(v)}" for k, v in ev.items() if k != "kind")
        rows.append(_row("scenario: events", f"{i + 1}: {ev.get('kind')}", desc, choice, "assumed"))
    return rows


def cost_rows(costs_file: Path) -> list[dict]:
    import yaml

    if not costs_file.exists():
        return [_row("prices and factors", str(costs_file), "file missing: costs and emissions are NaN or turbine-only",
                     None, None)]
    raw = yaml.safe_load(costs_file.read_text()) or {}
    rows = []
    for sec, key in ENGINE_COSTS:
        e = (raw.get(sec) or {}).get(key)
        if not isinstance(e, dict):
            continue
        note = f" (note: {e['note']})" if e.get("note") else ""
        rows.append(_row("prices and factors", f"{sec}.{key}", fmt_value(e.get("value")), f"{e.get('source')}{note}",
                         e.get("confidence")))
    if not any(r["item"] == "turbine_smt130.co2_kg_per_mmbtu" for r in rows):
        from twin.sim.engine import CO2_KG_PER_MMBTU_HHV

        rows.append(_row("prices and factors", "turbine CO2 factor, kg/MMBtu (HHV)", fmt_value(CO2_KG_PER_MMBTU_HHV),
                         "EPA AP-42 §3.1, natural gas, 110 lb/MMBtu (twin.sim.engine)", "published"))
    return rows


def climate_rows(climate: str) -> list[dict]:
    from twin.paths import data_dir
    from twin.yamlio import read_yaml

    path = data_dir() / "climate" / f"{climate}.yaml"
    if not path.exists():
        return []
    raw = read_yaml(path) or {}
    rows = []
    for key, block in raw.items():
        if isinstance(block, dict) and block.get("source"):
            vals = {k: v for k, v in block.items() if k not in ("source", "confidence", "notes")}
            rows.append(_row(f"climate: {climate}", key, fmt_value(vals)[:300], block["source"], block.get("confidence")))
    return rows


def assumptions_table(site: Site, scenario: dict, costs_file: Path | None = None) -> pd.DataFrame:
    from twin.paths import data_dir

    rows = site_rows(site) + scenario_rows(scenario)
    rows += cost_rows(costs_file or data_dir() / "costs.yaml")
    if not scenario.get("weather"):
        rows += climate_rows(site.location.climate)
    return pd.DataFrame(rows, columns=COLUMNS)


def confidence_counts(table: pd.DataFrame) -> dict[str, int]:
    order = ["published", "derived", "assumed", NOT_STATED]
    vc = table["confidence"].value_counts()
    return {k: int(vc.get(k, 0)) for k in order} | {k: int(v) for k, v in vc.items() if k not in order}
