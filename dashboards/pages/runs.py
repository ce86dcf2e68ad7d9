"""Runs: what the run store holds and the KPIs of each run; the utility report where twin.report exists."""

from __future__ import annotations

import dash
from dash import Input, Output, callback, dcc, html

from dashboards.context import twin_context
from dashboards.runsview import run_details, runs_table

dash.register_page(__name__, path="/runs", name="Runs", order=4, title="gigatwin · runs")


def layout(**_query):
    ctx = twin_context()
    return html.Div([
        html.Div(className="toolbar", children=[html.Span(id="runs-count", className="muted")]),
        html.Div(className="runs-wrap", children=[
            html.Div(runs_table(ctx), id="runs-table", className="card"),
            html.Div(id="runs-details", className="details card"),
        ]),
        dcc.Interval(id="runs-poll", interval=3000),
        dcc.Store(id="runs-selected"),
    ])


@callback(Output("runs-table", "children"), Input("runs-poll", "n_intervals"))
def refresh(_n):
    return runs_table(twin_context())


@callback(Output("runs-selected", "data"), Input({"type": "run-link", "id": dash.ALL}, "n_clicks"), prevent_initial_call=True)
def select(clicks):
    t = dash.ctx.triggered_id
    # the table is rebuilt every poll, which fires this with every n_clicks at 0: not a click
    if not t or not any(c for c in clicks if c):
        return dash.no_update
    return t["id"]


@callback(Output("runs-details", "children"), Input("runs-selected", "data"))
def details(run_id):
    return run_details(twin_context(), run_id)
