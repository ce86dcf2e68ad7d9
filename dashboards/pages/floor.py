"""Floor: one heatmap per hall of every rack (power, CDU supply temperature, headroom), live."""

from __future__ import annotations

import dash
from dash import ALL, Input, Output, State, callback, dcc, html, no_update

from dashboards.context import twin_context
from dashboards.floorgrid import METRICS
from dashboards.views import floor_figures, floor_patches, floor_summary, rack_details

dash.register_page(__name__, path="/floor", name="Floor", order=2, title="gigatwin · floor")


def layout(**_query):
    ctx = twin_context()
    snap = ctx.clock.snapshot()
    metric = "power"
    figs = floor_figures(ctx, metric, snap)
    return html.Div([
        html.Div(className="toolbar", children=[
            dcc.RadioItems(id="floor-metric", value=metric, inline=True, className="radio",
                           options=[{"label": f" {label} ({unit})", "value": k} for k, (label, unit, _) in METRICS.items()]),
            html.Div(floor_summary(ctx, metric, snap), id="floor-summary", className="muted"),
        ]),
        html.Div(className="floor-wrap", children=[
            html.Div(className="floor-grid", children=[
                html.Div(dcc.Graph(id={"type": "floor-hall", "hall": h.hall_id}, figure=fig,
                                   config={"displaylogo": False, "displayModeBar": False}), className="card hall-card")
                for h, fig in zip(ctx.floor.halls, figs, strict=True)
            ]),
            html.Div(id="floor-details", className="details card"),
        ]),
        dcc.Store(id="floor-rack"),
    ])


@callback(Output({"type": "floor-hall", "hall": ALL}, "figure"), Output("floor-summary", "children"),
          Input("twin-tick", "n_intervals"), Input("floor-metric", "value"))
def update_floor(_n, metric):
    ctx = twin_context()
    snap = ctx.clock.snapshot()
    if dash.ctx.triggered_id == "floor-metric":
        figs = floor_figures(ctx, metric, snap)
    else:
        figs = floor_patches(ctx, metric, snap)
    return figs, floor_summary(ctx, metric, snap)


@callback(Output("floor-rack", "data"), Input({"type": "floor-hall", "hall": ALL}, "clickData"), prevent_initial_call=True)
def pick_rack(clicks):
    trig = dash.ctx.triggered
    if not trig or not trig[0]["value"]:
        return no_update
    pts = trig[0]["value"].get("points") or []
    return pts[0].get("customdata") if pts else no_update


@callback(Output("floor-details", "children"), Input("floor-rack", "data"), Input("twin-tick", "n_intervals"),
          State("floor-metric", "value"))
def show_rack(rack_id, _n, _metric):
    ctx = twin_context()
    rows = rack_details(ctx, rack_id, ctx.clock.snapshot())
    return html.Table([html.Tr([html.Th(k), html.Td(v)]) for k, v in rows], className="kv")
