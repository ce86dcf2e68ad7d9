"""Pure functions behind the pages: figures, cytoscape elements, tables and texts built from a TwinContext
and a Snapshot. No Dash callback lives here, so tests and benchmarks call them directly."""

from __future__ import annotations

import math

import numpy as np

from dashboards.clock import Snapshot
from dashboards.floorgrid import METRICS
from dashboards.topomodel import KIND_LABEL, TopoView, node_values

# ------------------------------------------------------------------------------------- formatting


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.{digits}f}{(' ' + unit) if unit else ''}"


def loading_colour(pu: float) -> str:
    """Green below 60 %, through yellow and orange, red at 100 %, purple above (overload); grey = no data."""
    if pu is None or not math.isfinite(pu):
        return "#9aa3ad"
    stops = [(0.0, (46, 160, 67)), (0.6, (46, 160, 67)), (0.8, (230, 200, 40)), (0.95, (240, 130, 30)),
             (1.0, (215, 40, 40))]
    if pu > 1.0 + 1e-9:
        return "#8e24aa"
    for (x0, c0), (x1, c1) in zip(stops, stops[1:], strict=False):
        if pu <= x1:
            f = 0.0 if x1 == x0 else (pu - x0) / (x1 - x0)
            r, g, b = (int(round(a + (z - a) * max(f, 0.0))) for a, z in zip(c0, c1, strict=True))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#d72828"


# --------------------------------------------------------------------------------------- topology


def _values(ctx, view: TopoView, snap: Snapshot):
    """Loading and load of every node; rack heat equals rack electric input (all of it ends as heat)."""
    pu = snap.loading_pu if view.name == "power" else snap.cool_loading_pu
    return node_values(view, ctx.layout, pu, snap.p_rack_kw, snap.p_rack_kw)


def deenergised(view: TopoView, failed: set[str]) -> set[str]:
    """Nodes left without supply by the failed ones: every parent failed or itself de-energised."""
    if not failed:
        return set()
    parents: dict[str, list[str]] = {}
    for u, v in view.edges:
        parents.setdefault(v, []).append(u)
    out: set[str] = set()
    frontier = [c for f in failed for c in view.children.get(f, ())]
    while frontier:
        n = frontier.pop()
        if n in out or n in failed:
            continue
        if all(p in failed or p in out for p in parents.get(n, ())):
            out.add(n)
            frontier.extend(view.children.get(n, ()))
    return out


def topology_elements(ctx, view_name: str, snap: Snapshot, hall: str = "all") -> list[dict]:
    """Cytoscape elements of one graph with live loading colours; `hall` limits the power view to one hall."""
    view: TopoView = ctx.topology.view(view_name, hall)
    loading, load = _values(ctx, view, snap)
    failed = set(snap.failed)
    dead = deenergised(view, failed)
    hall_ids = ctx.layout.hall_ids
    els: list[dict] = []
    shown: set[str] = set()
    if view_name == "power":
        halls = sorted({n.hall for n in view.nodes if n.hall >= 0})
        for h in halls:
            els.append({"data": {"id": f"hall:{hall_ids[h]}", "label": hall_ids[h]}, "classes": "hallbox",
                        "selectable": False})
    for k, n in enumerate(view.nodes):
        is_failed = n.id in failed
        is_dead = n.id in dead
        data = {
            "id": n.id,
            "label": n.label + ("  ✖ FAILED" if is_failed else ""),
            "kind": n.kind,
            "loading": None if not math.isfinite(loading[k]) else round(float(loading[k]), 4),
            "colour": "#222" if is_failed else "#ffffff" if is_dead else loading_colour(loading[k]),
        }
        if view_name == "power" and n.hall >= 0:
            data["parent"] = f"hall:{hall_ids[n.hall]}"
        cls = [n.kind.replace("_", "-")]
        if is_failed:
            cls.append("failed")
        elif is_dead:
            cls.append("dead")
        els.append({"data": data, "position": {"x": n.x, "y": n.y}, "classes": " ".join(cls)})
        shown.add(n.id)
    for u, v in view.edges:
        if u in shown and v in shown:
            els.append({"data": {"id": f"{u}->{v}", "source": u, "target": v},
                        "classes": "failed-edge" if (u in failed or v in failed) else ""})
    return els


def topology_details(ctx, view_name: str, node_id: str | None, snap: Snapshot) -> list[tuple[str, str]]:
    """Rows (label, value) describing one node: load, rating, headroom, what it feeds."""
    if not node_id:
        return [("", "Click a node to see its load, rating, headroom and what it feeds.")]
    view: TopoView = ctx.topology.view(view_name)
    pos = view.position().get(node_id)
    if pos is None:
        return [("", f"{node_id} is not in the {view_name} view")]
    n = view.nodes[pos]
    loading, load = _values(ctx, view, snap)
    unit = "kW" if view_name == "power" else "kW heat"
    rows = [("Node", n.id), ("Kind", KIND_LABEL.get(n.kind, n.kind))]
    if n.equip >= 0:
        m = ctx.layout.equip.model[n.equip]
        if getattr(m, "count", 1) > 1:
            rows.append(("Units in parallel", str(m.count)))
        if getattr(m, "type", None):
            rows.append(("Catalog type", m.type))
    if n.id in snap.failed:
        rows.append(("Status", "FAILED (out of service)"))
    elif n.id in deenergised(view, set(snap.failed)):
        rows.append(("Status", "de-energised (everything feeding it is out)"))
    rating = n.rating_kw
    rows += [
        ("Rating", fmt(rating, unit, 0) if rating else "– (no rating)"),
        ("Load now", fmt(load[pos], unit, 0)),
        ("Loading", fmt(loading[pos] * 100 if math.isfinite(loading[pos]) else None, "%", 1)),
        ("Headroom", fmt(rating - load[pos] if rating and math.isfinite(load[pos]) else None, unit, 0)),
        ("Racks fed", f"{n.n_racks:,}"),
        ("GPUs fed", f"{n.n_gpus:,}"),
    ]
    kids = view.children.get(n.id, ())
    if kids:
        shown = ", ".join(kids[:12]) + (f" … (+{len(kids) - 12})" if len(kids) > 12 else "")
        rows.append(("Feeds directly", shown))
    if n.kind == "racks":
        racks = view.rack_to_agg.getrow(int(np.flatnonzero(view.agg_nodes == pos)[0])).indices
        ids = ctx.layout.racks.ids[racks]
        rows.append(("Racks", f"{ids[0]} … {ids[-1]}" if len(ids) > 1 else str(ids[0])))
    return rows


# ------------------------------------------------------------------------------------------ floor


def _grid_json(z: np.ndarray, digits: int = 2) -> list:
    """Grid as nested lists with None for empty positions (JSON has no NaN)."""
    out = np.round(z, digits).astype(object)
    out[np.isnan(z)] = None
    return out.tolist()


def floor_range(metric: str, values: np.ndarray, ctx) -> tuple[float, float]:
    """Colour range shared by every hall, so halls compare at a glance."""
    if metric in ("power", "headroom"):
        return 0.0, float(np.nanmax(ctx.floor.p_max_kw))
    v = values[np.isfinite(values)]
    if not len(v):
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1.0:
        mid = 0.5 * (lo + hi)
        lo, hi = mid - 0.5, mid + 0.5
    return math.floor(lo), math.ceil(hi)


def floor_figures(ctx, metric: str, snap: Snapshot) -> list[dict]:
    """One heatmap figure (as a plain dict, no plotly validation) per hall."""
    label, unit, scale = METRICS[metric]
    values = ctx.floor.metric_values(metric, snap.p_rack_kw, snap.t_cdu_supply_c)
    zmin, zmax = floor_range(metric, values, ctx)
    figs = []
    for hall in ctx.floor.halls:
        z = hall.fill(values)
        figs.append({
            "data": [{
                "type": "heatmap",
                "z": _grid_json(z),
                "customdata": hall.rack_ids.tolist(),
                "text": hall.roles.tolist(),
                "hovertemplate": "%{customdata} (%{text})<br>" + label + ": %{z:.1f} " + unit + "<extra></extra>",
                "colorscale": scale,
                "reversescale": metric == "power",
                "zmin": zmin,
                "zmax": zmax,
                "xgap": 1,
                "ygap": 1,
                "showscale": True,
                "colorbar": {"title": {"text": unit}, "thickness": 12},
                "hoverongaps": False,
                "x": list(range(1, hall.n_cols + 1)),
                "y": list(range(1, hall.n_rows + 1)),
            }],
            "layout": {
                "title": {"text": hall.hall_id, "x": 0.02, "font": {"size": 14}},
                "margin": {"l": 40, "r": 10, "t": 48, "b": 10},
                "height": max(220, 18 * hall.n_rows + 70),
                "xaxis": {"dtick": 4, "constrain": "domain", "side": "top"},
                "yaxis": {"title": {"text": "row"}, "autorange": "reversed", "scaleanchor": "x", "dtick": 2},
                "paper_bgcolor": "white",
                "plot_bgcolor": "#eef0f3",
                "uirevision": f"floor-{hall.hall_id}",
            },
        })
    return figs


def floor_patches(ctx, metric: str, snap: Snapshot) -> list:
    """Live update of the hall heatmaps: only z and the colour range change (dash.Patch per hall)."""
    from dash import Patch

    values = ctx.floor.metric_values(metric, snap.p_rack_kw, snap.t_cdu_supply_c)
    zmin, zmax = floor_range(metric, values, ctx)
    out = []
    for hall in ctx.floor.halls:
        p = Patch()
        p["data"][0]["z"] = _grid_json(hall.fill(values))
        p["data"][0]["zmin"] = zmin
        p["data"][0]["zmax"] = zmax
        out.append(p)
    return out


def floor_summary(ctx, metric: str, snap: Snapshot) -> str:
    label, unit, _ = METRICS[metric]
    values = ctx.floor.metric_values(metric, snap.p_rack_kw, snap.t_cdu_supply_c)
    v = values[np.isfinite(values)]
    if not len(v):
        return f"{label}: waiting for the twin ({snap.status})"
    i_max = int(np.nanargmax(values))
    return (f"{label} over {len(v):,} racks: min {fmt(float(v.min()), unit)}, mean {fmt(float(v.mean()), unit)}, "
            f"max {fmt(float(v.max()), unit)} ({ctx.layout.racks.ids[i_max]}) · twin time {snap.time:%H:%M:%S}")


def rack_details(ctx, rack_id: str | None, snap: Snapshot) -> list[tuple[str, str]]:
    if not rack_id:
        return [("", "Click a rack to see its figures.")]
    r = ctx.layout.racks
    hits = np.flatnonzero(r.ids == rack_id)
    if not len(hits):
        return [("", f"unknown rack {rack_id}")]
    i = int(hits[0])
    from twin.layout import ROLES

    p = None if snap.p_rack_kw is None else float(snap.p_rack_kw[i])
    t = None if snap.t_cdu_supply_c is None else float(snap.t_cdu_supply_c[i])
    eq = ctx.layout.equip.ids
    return [
        ("Rack", rack_id), ("Role", ROLES[r.role[i]]), ("GPUs", f"{int(r.n_gpus[i]):,}"),
        ("Power now", fmt(p, "kW")), ("Nameplate", fmt(float(r.p_max_kw[i]), "kW")),
        ("Headroom", fmt(float(r.p_max_kw[i]) - p if p is not None else None, "kW")),
        ("CDU supply", fmt(t, "°C")), ("Fed by", eq[r.feeder[i]]),
        ("Cooled by", eq[r.loop[i]] if r.loop[i] >= 0 else "–"),
    ]


# --------------------------------------------------------------------------------------- overview

SOURCE_COLOURS = {"grid": "#1f77b4", "gas_turbine": "#ff7f0e", "battery": "#2ca02c"}


def site_totals(ctx) -> dict[str, float]:
    """Fleet sizes the KPIs are read against (turbine units, battery energy)."""
    eq = ctx.layout.equip
    turbines = sum(m.count for m, k in zip(eq.model, eq.kind, strict=True) if k == "gas_turbine")
    e_batt = sum(m.e_max_kwh for m, k in zip(eq.model, eq.kind, strict=True) if k == "battery")
    return {"turbines": float(turbines), "battery_e_max_kwh": float(e_batt)}


def kpi_cards(ctx, snap: Snapshot):
    from dash import html

    v = snap.values
    tot = site_totals(ctx)
    mw = lambda k: v.get(k, float("nan")) / 1000.0  # noqa: E731
    soc = v.get("battery_soc_kwh")
    soc_pct = 100.0 * soc / tot["battery_e_max_kwh"] if soc is not None and tot["battery_e_max_kwh"] else None
    grid = snap.sources.get("grid")
    swing = None
    if "p_it_max_kw" in v and "p_it_min_kw" in v:
        swing = (v["p_it_max_kw"] - v["p_it_min_kw"]) / 1000.0
    d = 1 if abs(mw("p_facility_kw")) >= 10 else 3  # small sites: kW resolution
    cards = [
        ("IT load", fmt(mw("p_it_kw"), "", d), "MW", "kpi-it"),
        ("Facility load", fmt(mw("p_facility_kw"), "", d), "MW", "kpi-facility"),
        ("PUE", fmt(snap.pue, "", 3), "", "kpi-pue"),
        ("Swing in step", fmt(swing, "", d), "MW", "kpi-swing"),
        ("Grid import", fmt(grid / 1000.0 if grid is not None else None, "", d), "MW", "kpi-grid"),
        ("Turbines online", f"{fmt(v.get('turbines_online'), '', 0)} / {tot['turbines']:.0f}" if tot["turbines"] else "–",
         "", "kpi-turbines"),
        ("Battery charge", fmt(soc_pct, "", 1), "%" if soc_pct is not None else "", "kpi-soc"),
        ("Water use", fmt(v.get("water_m3_h"), "", 1), "m³/h", "kpi-water"),
        ("Outdoor wet-bulb", fmt(v.get("t_wet_c"), "", 1), "°C", "kpi-wetbulb"),
        ("Outdoor dry-bulb", fmt(v.get("t_dry_c"), "", 1), "°C", "kpi-drybulb"),
    ]
    return [html.Div([html.Div(label, className="label"),
                      html.Div([html.Span(val, id=cid), html.Span(unit, className="unit")], className="value")],
                     className="kpi") for label, val, unit, cid in cards]


def _empty_figure(title: str, message: str) -> dict:
    return {"data": [], "layout": {"title": {"text": title, "font": {"size": 14}}, "height": 360,
                                   "margin": {"l": 50, "r": 10, "t": 40, "b": 40},
                                   "xaxis": {"visible": False}, "yaxis": {"visible": False},
                                   "annotations": [{"text": message, "showarrow": False, "x": 0.5, "y": 0.5,
                                                    "xref": "paper", "yref": "paper", "font": {"size": 13}}]}}


def source_traces(x: list, sources: dict[str, np.ndarray]) -> list[dict]:
    """Stacked areas of what each source delivers (MW); battery charging drawn below zero, not stacked."""
    data = []
    charge = None
    for name in sorted(sources, key=lambda n: list(SOURCE_COLOURS).index(n) if n in SOURCE_COLOURS else 9):
        v = np.asarray(sources[name], dtype=float) / 1000.0
        if name == "battery":
            charge = np.minimum(v, 0.0)
            v = np.maximum(v, 0.0)
        label = "battery discharge" if name == "battery" else name.replace("_", " ")
        data.append({"type": "scatter", "mode": "lines", "name": label, "x": x, "y": np.round(v, 3).tolist(),
                     "stackgroup": "src", "line": {"width": 0.5, "color": SOURCE_COLOURS.get(name)}})
    if charge is not None and charge.min() < 0:
        data.append({"type": "scatter", "mode": "lines", "name": "battery charge", "x": x, "fill": "tozeroy",
                     "y": np.round(charge, 3).tolist(), "line": {"width": 0.5, "color": "#98df8a"}})
    return data


def decimate(hist: dict, max_points: int = 720) -> dict:
    """At most `max_points` per series: bin means, bin minimum of `*_min_*` and maximum of `*_max_*` series."""
    n = len(hist.get("t_s", ()))
    k = -(-n // max_points)
    if k <= 1:
        return hist
    m = n // k * k
    out = {}
    for key, v in hist.items():
        v = np.asarray(v)[n - m:]  # drop the oldest remainder so that the newest point is kept
        if key in ("t_s", "time"):
            out[key] = v[::k]
        elif "_min_" in key:
            out[key] = v.reshape(-1, k).min(axis=1)
        elif "_max_" in key:
            out[key] = v.reshape(-1, k).max(axis=1)
        else:
            out[key] = v.reshape(-1, k).mean(axis=1)
    return out


def source_figure(ctx, hist: dict) -> dict:
    title = "Power by source (MW), last 2 h of twin time"
    if not hist or len(hist.get("t_s", ())) == 0:
        return _empty_figure(title, "waiting for the twin clock…")
    hist = decimate(hist)
    x = [str(t) for t in hist["time"]]
    data = []
    data += source_traces(x, {k.split(":", 1)[1]: v for k, v in hist.items() if k.startswith("source:")})
    if "p_it_min_kw" in hist and "p_it_max_kw" in hist:
        # the swing envelope of the training job within each step: lowest and highest IT power
        for key, name in (("p_it_max_kw", "IT swing max"), ("p_it_min_kw", "IT swing min")):
            data.append({"type": "scatter", "mode": "lines", "name": name, "x": x,
                         "y": np.round(hist[key] / 1000.0, 3).tolist(), "line": {"width": 1, "color": "#7f7f7f"}})
    for key, name, dash_ in (("p_facility_kw", "facility", "solid"), ("p_it_kw", "IT", "dot")):
        if key in hist:
            data.append({"type": "scatter", "mode": "lines", "name": name, "x": x,
                         "y": np.round(hist[key] / 1000.0, 3).tolist(), "line": {"color": "#222", "dash": dash_, "width": 1.5}})
    return {"data": data, "layout": {"title": {"text": title, "font": {"size": 14}}, "height": 360,
                                     "margin": {"l": 50, "r": 10, "t": 40, "b": 40}, "uirevision": "sources",
                                     "yaxis": {"title": {"text": "MW"}},
                                     "legend": {"orientation": "h", "y": -0.15}}}


def swing_figure(ctx) -> dict:
    title = "Training swing at 0.1 s: grid import with and without mitigations"
    study = ctx.swing_study()
    if study is None:
        return _empty_figure(title, "running the sub-second swing study…")
    if isinstance(study, str):
        return _empty_figure(title, study)
    data = []
    for name, (t_s, p_kw), colour in zip(study["labels"], study["series"], ("#d62728", "#1f77b4", "#2ca02c"), strict=False):
        data.append({"type": "scatter", "mode": "lines", "name": name, "x": np.round(t_s, 2).tolist(),
                     "y": np.round(np.asarray(p_kw) / 1000.0, 3).tolist(), "line": {"width": 1.2, "color": colour}})
    return {"data": data, "layout": {"title": {"text": title, "font": {"size": 14}}, "height": 360,
                                     "margin": {"l": 50, "r": 10, "t": 40, "b": 40}, "uirevision": "swing",
                                     "xaxis": {"title": {"text": "s"}}, "yaxis": {"title": {"text": "MW"}},
                                     "legend": {"orientation": "h", "y": -0.18},
                                     "annotations": [{"text": study.get("note", ""), "showarrow": False, "x": 0, "y": 1.0,
                                                      "xref": "paper", "yref": "paper", "xanchor": "left",
                                                      "yanchor": "bottom", "font": {"size": 11, "color": "#5b6675"}}]}}
