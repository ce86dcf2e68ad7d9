"""Topology: the power graph (sources down to busways and their racks) and the cooling graph, coloured by
loading; click a node for its load, rating, headroom and what it feeds."""

from __future__ import annotations

import dash
import dash_cytoscape as cyto
from dash import Input, Output, State, callback, dcc, html

from dashboards.context import twin_context
from dashboards.views import topology_details, topology_elements

dash.register_page(__name__, path="/topology", name="Topology", order=1, title="gigatwin · topology")

STYLESHEET = [
    {"selector": "node", "style": {
        "label": "data(label)", "font-size": 9, "background-color": "data(colour)", "width": 22, "height": 22,
        "text-valign": "bottom", "text-margin-y": 3, "border-width": 1, "border-color": "#555", "color": "#222"}},
    {"selector": ".hallbox", "style": {
        "background-color": "#f4f6f9", "background-opacity": 0.6, "border-color": "#9aa3ad", "border-width": 1,
        "label": "data(label)", "font-size": 22, "text-valign": "top", "text-halign": "center", "color": "#445",
        "padding": 14, "shape": "round-rectangle"}},
    {"selector": ".utility-feed, .gas-turbine, .battery", "style": {"shape": "diamond", "width": 34, "height": 34, "font-size": 12}},
    {"selector": ".substation, .switchgear", "style": {"shape": "round-rectangle", "width": 30, "height": 26, "font-size": 11}},
    {"selector": ".transformer", "style": {"shape": "ellipse", "width": 26, "height": 26}},
    {"selector": ".busway", "style": {"shape": "rectangle", "width": 22, "height": 14, "font-size": 8}},
    {"selector": ".racks, .cdus", "style": {"shape": "round-rectangle", "width": 24, "height": 18, "font-size": 7,
                                            "border-style": "dashed"}},
    {"selector": ".facility-loop", "style": {"shape": "round-rectangle", "width": 40, "height": 22, "font-size": 11}},
    {"selector": ".chiller, .cooling-tower, .dry-cooler", "style": {"shape": "hexagon", "width": 34, "height": 30, "font-size": 11}},
    {"selector": ".failed", "style": {"border-color": "#e00000", "border-width": 4, "color": "#c00000",
                                      "font-weight": "bold", "font-size": 12}},
    {"selector": ".dead", "style": {"border-style": "dashed", "border-color": "#e00000", "border-width": 2,
                                    "background-color": "#ffffff"}},
    {"selector": "edge", "style": {"width": 1, "line-color": "#b4bcc6", "curve-style": "straight",
                                   "target-arrow-shape": "triangle", "target-arrow-color": "#b4bcc6", "arrow-scale": 0.6}},
    {"selector": ".failed-edge", "style": {"line-color": "#e00000", "line-style": "dashed", "width": 2}},
    {"selector": ":selected", "style": {"border-color": "#1565c0", "border-width": 4}},
]

LEGEND = [("#2ea043", "< 60 %"), ("#e6c828", "80 %"), ("#f0821e", "95 %"), ("#d72828", "100 %"),
          ("#8e24aa", "overloaded"), ("#9aa3ad", "no data"), ("#222", "failed"), ("#ffffff", "de-energised")]


def _state(ctx, source: str | None):
    """(snapshot, caption) of the live twin or of a stored run."""
    if source and source != "live":
        from twin.errors import InputError

        try:
            return ctx.run_snapshot(source)
        except InputError as exc:
            return ctx.clock.snapshot(), f"cannot show run {source}: {exc}"
    snap = ctx.clock.snapshot()
    what = "replayed run" if snap.mode == "replay" else "live twin"
    out = f" — out of service: {', '.join(snap.failed)}" if snap.failed else ""
    return snap, f"{what} at {snap.time:%Y-%m-%d %H:%M:%S}{out}"


def _source_options(ctx):
    from dashboards.runsview import list_store

    runs = [m for m in list_store(ctx) if m.get("site") == ctx.site.name][:50]
    this = "replayed run (twin clock)" if ctx.clock.mode == "replay" else "live twin"
    return [{"label": this, "value": "live"}] + [
        {"label": f"run {m['id']}" + (f" ({m['kpis'].get('whatif_changes')})" if (m.get("kpis") or {}).get("whatif_changes") else ""),
         "value": m["id"]} for m in runs]


def layout(run: str | None = None, **_query):
    ctx = twin_context()
    halls = [{"label": "all halls", "value": "all"}] + [{"label": h, "value": h} for h in ctx.layout.hall_ids]
    # One hall at a time by default: every hall of Colossus at once is legible only zoomed in.
    hall = ctx.layout.hall_ids[0] if len(ctx.layout.hall_ids) > 1 else "all"
    source = run or "live"
    snap, caption = _state(ctx, source)
    # A run with equipment out opens on the hall of the first failed component.
    halls_out = [ctx.layout.equip.hall[ctx.layout.index[c]] for c in snap.failed if c in ctx.layout.index]
    if any(h >= 0 for h in halls_out) and len(ctx.layout.hall_ids) > 1:
        hall = ctx.layout.hall_ids[next(h for h in halls_out if h >= 0)]
    return html.Div([
        html.Div(className="toolbar", children=[
            html.Div([html.Span("Show: "), dcc.Dropdown(id="topo-source", options=_source_options(ctx), value=source,
                                                       clearable=False, style={"width": "420px"})], className="inline"),
            dcc.RadioItems(id="topo-graph", value="power", inline=True, className="radio",
                           options=[{"label": " power graph", "value": "power"},
                                    {"label": " cooling graph", "value": "cooling"}]),
            html.Div([html.Span("Hall: "), dcc.Dropdown(id="topo-hall", options=halls, value=hall, clearable=False,
                                                       style={"width": "160px"})], className="inline"),
            html.Div([html.Span(className="swatch", style={"background": c}) for c, _ in LEGEND[:1]] +
                     [html.Span([html.Span(className="swatch", style={"background": c}), t], className="legend-item")
                      for c, t in LEGEND], className="legend"),
        ]),
        html.Div(caption, id="topo-caption", className="muted", style={"marginBottom": "6px"}),
        html.Div(className="topo-wrap", children=[
            cyto.Cytoscape(
                id="topo-graph-view",
                elements=topology_elements(ctx, "power", snap, hall),
                layout={"name": "preset", "fit": True, "padding": 20},
                stylesheet=STYLESHEET,
                style={"width": "100%", "height": "640px"},
                minZoom=0.05, maxZoom=3, autoungrabify=True,
            ),
            html.Div(id="topo-details", className="details card"),
        ]),
        dcc.Store(id="topo-selected"),
    ])


@callback(Output("topo-graph-view", "elements"), Output("topo-hall", "disabled"), Output("topo-caption", "children"),
          Input("twin-tick", "n_intervals"), Input("topo-graph", "value"), Input("topo-hall", "value"),
          Input("topo-source", "value"))
def update_elements(_n, graph, hall, source):
    ctx = twin_context()
    if dash.ctx.triggered_id == "twin-tick" and source not in (None, "live"):
        return dash.no_update, dash.no_update, dash.no_update  # a stored run does not move
    snap, caption = _state(ctx, source)
    return topology_elements(ctx, graph, snap, hall if graph == "power" else "all"), graph != "power", caption


@callback(Output("topo-graph-view", "layout"), Input("topo-graph", "value"), Input("topo-hall", "value"))
def refit(graph, hall):
    # A new layout object makes cytoscape fit the view to what is shown.
    return {"name": "preset", "fit": True, "padding": 20, "animate": False, "key": f"{graph}-{hall}"}


@callback(Output("topo-selected", "data"), Input("topo-graph-view", "tapNodeData"), Input("topo-graph", "value"))
def select(node, graph):
    if dash.ctx.triggered_id == "topo-graph" or not node or str(node.get("id", "")).startswith("hall:"):
        return None
    return node["id"]


@callback(Output("topo-details", "children"), Input("topo-selected", "data"), Input("twin-tick", "n_intervals"),
          State("topo-graph", "value"), State("topo-source", "value"))
def details(node_id, _n, graph, source):
    ctx = twin_context()
    snap, _ = _state(ctx, source)
    rows = topology_details(ctx, graph, node_id, snap)
    return html.Table([html.Tr([html.Th(k), html.Td(v)]) for k, v in rows], className="kv")
