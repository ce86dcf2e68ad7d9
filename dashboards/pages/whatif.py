"""What-if: fail a component, a heat wave, a curtailment, a resized battery or an added phase; the run goes
to the background with progress, lands in the run store and is shown beside its baseline."""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from dashboards.context import twin_context
from dashboards.whatif import STEPS, compare_rows, run_whatif, validate_form

dash.register_page(__name__, path="/whatif", name="What-if", order=3, title="gigatwin · what-if")

FIELDS = ["horizon_h", "step", "enabled", "outage_component", "outage_units", "outage_start_h", "outage_hours",
          "heat_delta_k", "heat_start_h", "heat_hours", "curt_mw", "curt_start_h", "curt_hours", "battery_units",
          "phase_site"]


def _field(label, component):
    return html.Label([html.Span(label), component], className="field")


def _num(id_, value, step="any"):
    return dcc.Input(id=f"wi-{id_}", type="number", value=value, step=step, debounce=False)


def layout(**_query):
    from twin.site import site_names

    ctx = twin_context()
    lay = ctx.layout
    eq = lay.equip
    order = {"transformer": 0, "substation": 1, "switchgear": 2, "busway": 3}
    comps = sorted(range(len(eq.ids)), key=lambda i: (order.get(eq.kind[i], 9), i))
    comp_opts = [{"label": f"{eq.ids[i]} ({eq.kind[i].replace('_', ' ')})", "value": eq.ids[i]} for i in comps]
    tx = next((eq.ids[i] for i in comps if eq.kind[i] == "transformer"), eq.ids[comps[0]])
    batt = [eq.model[i] for i in lay.of_kind("battery")]
    others = [s for s in site_names() if s != ctx.site_name]
    return html.Div([
        html.P("Change the site or its conditions, run it beside the baseline (same start, span and step), and "
               "compare. Both runs start at the twin's current hour; event times count from there. Runs go to the "
               "run store; you can leave the page while they run.", className="muted"),
        html.Div(className="toolbar", children=[
            _field("Horizon (h)", _num("horizon_h", 24)),
            _field("Step", dcc.Dropdown(id="wi-step", options=[{"label": v, "value": k} for k, v in STEPS.items()],
                                        value="15min", clearable=False, style={"width": "110px"})),
        ]),
        dcc.Checklist(id="wi-enabled", value=["outage"], inline=True, className="radio", options=[
            {"label": " fail a component", "value": "outage"}, {"label": " heat wave", "value": "heat_wave"},
            {"label": " curtailment", "value": "curtailment"}, {"label": " battery size", "value": "battery"},
            {"label": " add a phase", "value": "phase"}]),
        html.Div(className="form-grid", children=[
            html.Fieldset([html.Legend("Fail a component"),
                           _field("Component", dcc.Dropdown(id="wi-outage_component", options=comp_opts, value=tx,
                                                            clearable=False)),
                           _field("Units out (blank = all)", _num("outage_units", None, 1)),
                           _field("Start (h from now)", _num("outage_start_h", 2)),
                           _field("Duration (h)", _num("outage_hours", 6))]),
            html.Fieldset([html.Legend("Heat wave"),
                           _field("Dry-bulb rise (K)", _num("heat_delta_k", 5)),
                           _field("Start (h from now)", _num("heat_start_h", 0)),
                           _field("Duration (h)", _num("heat_hours", 24))]),
            html.Fieldset([html.Legend("Utility curtailment"),
                           _field("Grid import limit (MW)", _num("curt_mw", 100)),
                           _field("Start (h from now)", _num("curt_start_h", 4)),
                           _field("Duration (h)", _num("curt_hours", 2))]),
            html.Fieldset([html.Legend("Battery and phases"),
                           _field("Battery units", _num("battery_units", batt[0].count if batt else None, 1)),
                           _field("Site with the added phase", dcc.Dropdown(
                               id="wi-phase_site", options=others, value=next((s for s in others if s.startswith(ctx.site_name)), None)))]),
        ]),
        html.Div(className="toolbar", style={"marginTop": "12px"}, children=[
            html.Button("Run what-if", id="wi-run", className="primary", n_clicks=0),
            html.Progress(id="wi-progress", value="0", max="1"),
            html.Span(id="wi-status", className="muted"),
        ]),
        html.Div(id="wi-errors"),
        html.Div(id="wi-result"),
        dcc.Store(id="wi-job"),
        dcc.Interval(id="wi-poll", interval=500, disabled=True),
    ])


@callback(Output("wi-errors", "children"), Output("wi-job", "data"), Output("wi-poll", "disabled"),
          Output("wi-run", "disabled"), Input("wi-run", "n_clicks"),
          *[State(f"wi-{f}", "value") for f in FIELDS], prevent_initial_call=True)
def start_run(_n, *values):
    ctx = twin_context()
    form = dict(zip(FIELDS, values, strict=True))
    spec, errors = validate_form(ctx, form, ctx.clock.snapshot().time)
    if errors:
        return html.Div([html.B("Nothing started — please fix:"), html.Ul([html.Li(e) for e in errors])],
                        className="errors", id="wi-error-list"), no_update, no_update, False
    job_id = ctx.jobs.submit(spec.label, lambda progress: run_whatif(ctx, spec, progress))
    return None, job_id, False, True


@callback(Output("wi-progress", "value"), Output("wi-status", "children"), Output("wi-result", "children"),
          Output("wi-poll", "disabled", allow_duplicate=True), Output("wi-run", "disabled", allow_duplicate=True),
          Input("wi-poll", "n_intervals"), State("wi-job", "data"), prevent_initial_call=True)
def poll(_n, job_id):
    ctx = twin_context()
    st = ctx.jobs.status(job_id)
    if st is None:
        return "0", "", no_update, True, False
    if not st.finished:
        return f"{st.progress_pu:.3f}", f"{st.label}: {st.message} ({st.progress_pu:.0%})", no_update, False, True
    if st.state == "failed":
        return "0", "run failed", html.Div([html.B("The run failed: "), st.error], className="errors"), True, False
    return "1", f"done: {st.label}", result_view(st.result), True, False


def result_view(res: dict):
    rows = compare_rows(res["table"])
    s = res["series"]
    fig = {"data": [
        {"type": "scatter", "mode": "lines", "name": "baseline site power", "x": s["time"], "y": s["baseline_facility_mw"],
         "line": {"color": "#1f77b4"}},
        {"type": "scatter", "mode": "lines", "name": "case site power", "x": s["time"], "y": s["case_facility_mw"],
         "line": {"color": "#d62728"}},
        {"type": "scatter", "mode": "lines", "name": "baseline grid import", "x": s["time"], "y": s["baseline_grid_mw"],
         "line": {"color": "#1f77b4", "dash": "dot"}},
        {"type": "scatter", "mode": "lines", "name": "case grid import", "x": s["time"], "y": s["case_grid_mw"],
         "line": {"color": "#d62728", "dash": "dot"}},
        {"type": "scatter", "mode": "lines", "name": "case unserved", "x": s["time"], "y": s["case_unserved_mw"],
         "line": {"color": "#8e24aa"}, "fill": "tozeroy"},
    ], "layout": {"title": {"text": "Baseline and case (MW)", "font": {"size": 14}}, "height": 360,
                  "margin": {"l": 50, "r": 10, "t": 40, "b": 40}, "legend": {"orientation": "h", "y": -0.2},
                  "yaxis": {"title": {"text": "MW"}}}}
    over = res.get("overloads") or []
    return html.Div(className="row2", id="wi-result-ready", style={"marginTop": "12px"}, children=[
        html.Div(className="card", children=[
            html.H4(f"Case: {res['label']}"),
            html.Table([html.Tr([html.Th("KPI"), html.Th("baseline"), html.Th("case"), html.Th("difference")])] +
                       [html.Tr([html.Td(a), html.Td(b), html.Td(c), html.Td(d)]) for a, b, c, d in rows],
                       className="grid", id="wi-kpi-table"),
            html.P([f"GPUs stranded in the case (max): {res['stranded_gpus_max']:,}. ",
                    "Overloaded in the case: " + (", ".join(f"{e} {p:.0%}" for e, p in over) if over else "nothing")]),
            html.P(["Stored as ", dcc.Link(res["baseline_id"], href="/runs"), " (baseline) and ",
                    dcc.Link(res["case_id"], href="/runs"), " (case). ",
                    dcc.Link("Show the case on the topology", href=f"/topology?run={res['case_id']}", id="wi-topo-link"),
                    "."], className="muted"),
        ]),
        html.Div(dcc.Graph(figure=fig, config={"displaylogo": False}), className="card"),
    ])
