"""The run store as the Runs page shows it: a table of runs with their main KPIs, and one run's details."""

from __future__ import annotations

import importlib
import importlib.util
import math

from dash import dcc, html

COLUMNS = [("energy_facility_mwh", "facility MWh", 0), ("peak_demand_15min_mw", "peak MW (15 min)", 1),
           ("pue", "PUE", 3), ("energy_unserved_mwh", "unserved MWh", 1), ("stranded_gpus_max", "stranded GPUs", 0)]


def _f(v, digits):
    if not isinstance(v, int | float) or not math.isfinite(v):
        return "–"
    return f"{v:,.{digits}f}"


def list_store(ctx) -> list[dict]:
    from twin.runs import list_runs

    return list_runs(ctx.runs_dir)


def runs_table(ctx):
    runs = list_store(ctx)
    if not runs:
        return html.P("The run store is empty: start a what-if run, or `twin simulate` from the command line.",
                      className="muted", id="runs-empty")
    head = html.Tr([html.Th("run"), html.Th("created (UTC)"), html.Th("site"), html.Th("span")] +
                   [html.Th(label) for _, label, _ in COLUMNS] + [html.Th("change")])
    body = []
    for m in runs[:200]:
        k = m.get("kpis") or {}
        body.append(html.Tr([
            html.Td(html.A(m["id"], href="#", id={"type": "run-link", "id": m["id"]}, n_clicks=0)),
            html.Td((m.get("created_utc") or "")[:19].replace("T", " ")),
            html.Td(m.get("site") or ""),
            html.Td(f"{_f(m.get('hours'), 0)} h / {_f(m.get('step_s'), 0)} s"),
            *[html.Td(_f(k.get(key), d)) for key, _, d in COLUMNS],
            html.Td(k.get("whatif_changes", "")),
        ]))
    return html.Table([head, *body], className="grid", id="runs-grid")


def report_function():
    """`twin.report.report_html(run_id, base) -> str` (self-contained HTML) when the report module has it."""
    if importlib.util.find_spec("twin.report") is None:
        return None
    return getattr(importlib.import_module("twin.report"), "report_html", None)


def report_available() -> bool:
    return report_function() is not None


def run_details(ctx, run_id: str | None):
    if not run_id:
        return html.P("Click a run to see its KPIs.", className="muted")
    from twin.errors import InputError
    from twin.kpi.summary import KPI_LABELS
    from twin.runs import run_summary

    try:
        m = run_summary(run_id, ctx.runs_dir)
    except InputError as exc:
        return html.P(str(exc), className="errors")
    k = m.get("kpis") or {}
    from dashboards.whatif import COUNT_KPIS

    rows = [html.Tr([html.Th(label), html.Td(_f(k.get(key), 0 if key in COUNT_KPIS else 3 if abs(k.get(key) or 0) < 10 else 1))])
            for key, label in KPI_LABELS.items() if key in k]
    extra = []
    if k.get("whatif_changes"):
        extra.append(html.P([html.B("What-if: "), k["whatif_changes"], f" (baseline {k.get('whatif_baseline', '?')})"]))
    if report_available():
        extra.append(html.P(html.A("Utility report (HTML)", href=f"/report/{run_id}", target="_blank", id="runs-report")))
    else:
        extra.append(html.P("Utility report: not available in this installation.", className="muted"))
    extra.append(html.P(["Replay it live: ", html.Code(f"twin dash --site {m.get('site')} --replay {run_id}")],
                        className="muted"))
    return html.Div([html.H4(run_id), html.P(f"{m.get('site')} · scenario {m.get('scenario')} · "
                                             f"{_f(m.get('hours'), 1)} h at {_f(m.get('step_s'), 1)} s steps",
                                             className="muted"),
                     *extra, dcc.Graph(figure=run_figure(ctx, run_id), config={"displaylogo": False}, id="runs-figure"),
                     html.Table(rows, className="kv")])


def run_figure(ctx, run_id: str) -> dict:
    """Site power by source over the run (at most ~1,000 points)."""
    import numpy as np

    from dashboards.views import decimate, source_traces
    from twin.runs import open_run

    ds = open_run(run_id, ctx.runs_dir)
    hist = {"t_s": ds["elapsed_s"].values if "elapsed_s" in ds.coords else np.arange(ds.sizes["time"]),
            "time": ds["time"].values, "p_facility_kw": ds["p_facility_kw"].values}
    for s in ds["source"].values:
        hist[f"source:{s}"] = ds["p_source_kw"].sel(source=s).values
    hist = decimate(hist, 1000)
    x = [str(t)[:16] for t in hist["time"]]
    data = source_traces(x, {k.split(":", 1)[1]: v for k, v in hist.items() if k.startswith("source:")})
    data.append({"type": "scatter", "mode": "lines", "name": "facility", "x": x,
                 "y": np.round(hist["p_facility_kw"] / 1000.0, 3).tolist(), "line": {"color": "#222", "width": 1.2}})
    return {"data": data, "layout": {"title": {"text": "Site power by source (MW)", "font": {"size": 13}}, "height": 300,
                                     "margin": {"l": 45, "r": 10, "t": 35, "b": 30},
                                     "legend": {"orientation": "h", "y": -0.2}}}
