"""The Dash app factory: a thin shell (header, navigation, twin clock tick) around the pages in pages/.

    from dashboards.app import create_app
    app = create_app("colossus-1", speed=60)
    app.run(host="127.0.0.1", port=8050)

Everything the app holds at run time (site, views, twin clock, what-if jobs) lives in one TwinContext in
the Flask app's `extensions`; the pages read it per request. plotly.js and every other asset is served by
Dash itself (serve_locally), nothing from a CDN.
"""

from __future__ import annotations

import atexit
from pathlib import Path

import dash
from dash import Dash, Input, Output, dcc, html

from dashboards.context import EXTENSION_KEY, TwinContext, build_context

TICK_MS = 900  # pages refresh from the twin at least once a second (margin for the round trip)
_HERE = Path(__file__).resolve().parent


def create_app(site: str = "colossus-1", speed: float = 60.0, *, replay: str | None = None,
               runs_dir: str | Path | None = None, start_clock: bool = True, max_runs: int = 2,
               window_s: float | None = None, step_s: float | None = None) -> Dash:
    """Build the app for one site. Raises twin.errors.InputError for an unknown or invalid site.

    speed: twin seconds per real second. replay: a run id from the run store to play instead of the live
    engine. runs_dir: run store folder (default: the store's own default). start_clock=False leaves the
    twin clock stopped (tests and benchmarks drive it by hand with ctx.clock.step_once()).
    """
    ctx = build_context(site, speed, replay=replay, runs_dir=runs_dir, max_runs=max_runs,
                        window_s=window_s, step_s=step_s)
    app = Dash(
        "dashboards",
        use_pages=True,
        pages_folder=str(_HERE / "pages"),
        assets_folder=str(_HERE / "assets"),
        serve_locally=True,
        title=f"gigatwin · {ctx.site.name}",
        suppress_callback_exceptions=True,
        update_title=None,
    )
    app.server.extensions[EXTENSION_KEY] = ctx
    app.layout = lambda: _shell(ctx)
    # The shell's own callback belongs to this app (pages register theirs with @callback).
    app.callback(Output("shell-clock", "children"), Input("twin-tick", "n_intervals"))(lambda _n: clock_text(ctx))
    app.server.add_url_rule("/report/<run_id>", "twin_report", lambda run_id: _report(ctx, run_id))
    if start_clock:
        ctx.clock.start()
    atexit.register(ctx.close)
    return app


def _report(ctx: TwinContext, run_id: str):
    """The utility report of a stored run, rendered by twin.report (404 when the module or run is missing)."""
    from flask import Response, abort

    from dashboards.runsview import report_function
    from twin.errors import InputError

    fn = report_function()
    if fn is None:
        abort(404, description="the utility report (twin.report.report_html) is not available in this installation")
    try:
        return Response(fn(run_id, ctx.runs_dir), mimetype="text/html")
    except InputError as exc:
        abort(404, description=str(exc))


def context_of(app: Dash) -> TwinContext:
    return app.server.extensions[EXTENSION_KEY]


def _shell(ctx: TwinContext):
    pages = sorted(dash.page_registry.values(), key=lambda p: p.get("order", 99))
    return html.Div(
        className="shell",
        children=[
            html.Header(
                className="topbar",
                children=[
                    html.Div([html.Span("gigatwin", className="brand"),
                              html.Span(f"{ctx.site.name}", className="site-name", id="shell-site")]),
                    html.Nav([dcc.Link(p["name"], href=p["relative_path"], className="navlink", id=f"nav-{p['module'].split('.')[-1]}")
                              for p in pages], className="nav"),
                    html.Div(id="shell-clock", className="clock", children="twin clock starting…"),
                ],
            ),
            html.Main(dash.page_container, className="page"),
            dcc.Interval(id="twin-tick", interval=TICK_MS, n_intervals=0),
        ],
    )


def clock_text(ctx: TwinContext) -> str:
    snap = ctx.clock.snapshot()
    mode = "replay" if snap.mode == "replay" else "live"
    return f"{snap.time:%Y-%m-%d %H:%M:%S} local · {mode} ×{snap.speed:g} · {snap.status}"
