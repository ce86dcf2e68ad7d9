"""Overview: live KPIs of the site, power by source over time, and the sub-second training swing with and
without mitigations."""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html

from dashboards.context import twin_context
from dashboards.views import kpi_cards, source_figure, swing_figure

dash.register_page(__name__, path="/", name="Overview", order=0, title="gigatwin · overview")


def layout(**_query):
    ctx = twin_context()
    snap = ctx.clock.snapshot()
    return html.Div([
        html.Div(kpi_cards(ctx, snap), id="ov-kpis", className="kpis"),
        html.Div(className="row2", children=[
            html.Div(dcc.Graph(id="ov-sources", figure=source_figure(ctx, ctx.clock.history(7200)),
                               config={"displaylogo": False}), className="card"),
            html.Div(dcc.Graph(id="ov-swing", figure=swing_figure(ctx), config={"displaylogo": False}),
                     className="card"),
        ]),
    ])


@callback(Output("ov-kpis", "children"), Output("ov-sources", "figure"), Input("twin-tick", "n_intervals"))
def update_overview(_n):
    ctx = twin_context()
    return kpi_cards(ctx, ctx.clock.snapshot()), source_figure(ctx, ctx.clock.history(7200))


@callback(Output("ov-swing", "figure"), Input("twin-tick", "n_intervals"), State("ov-swing", "figure"))
def update_swing(_n, shown):
    # The swing study runs once in the background; draw it once it is there, then leave it alone.
    if shown and shown.get("data"):
        return dash.no_update
    return swing_figure(twin_context())
