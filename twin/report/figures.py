"""Plotly figures of the utility report. Each builder takes the Dataset (or report numbers) and returns a
`go.Figure` sized for a Letter page; `to_div` renders one without plotly.js (the document embeds it once)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

from twin.report import content

WIDTH_PX = 700
HEIGHT_PX = 300
MAX_POINTS = 10000
_BINS_S = (1.0, 10.0, 60.0, 900.0, 3600.0, 86400.0)
COLORS = {"facility": "#1f3b73", "it": "#6c8ebf", "grid": "#1f77b4", "gas_turbine": "#d62728", "battery": "#2ca02c",
          "soc": "#2ca02c", "envelope": "rgba(31,59,115,0.18)"}


def _layout(fig: go.Figure, title: str, height: int = HEIGHT_PX, **kw) -> go.Figure:
    kw = {"margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "legend": {"orientation": "h", "y": -0.25, "x": 0}, **kw}
    fig.update_layout(title={"text": title, "font": {"size": 14}}, template="plotly_white", width=WIDTH_PX,
                      height=height, **kw)
    return fig


def plot_bin_s(ds: xr.Dataset) -> float:
    """The step the time-series figures use: the run's own, or the first of 1 min / 15 min / 1 h / 1 day that
    keeps a figure under MAX_POINTS points."""
    dt = content.step_s(ds)
    n = ds.sizes["time"]
    if n <= MAX_POINTS:
        return dt
    span = n * dt
    for b in _BINS_S:
        if b > dt and span / b <= MAX_POINTS:
            return b
    return _BINS_S[-1]


def binned(ds: xr.Dataset, da: xr.DataArray, how: str = "mean") -> pd.Series:
    b = plot_bin_s(ds)
    s = da.to_series()
    if b == content.step_s(ds):
        return s
    return getattr(s.resample(pd.Timedelta(seconds=b)), how)()


def _bin_label(ds: xr.Dataset) -> str:
    b = plot_bin_s(ds)
    if b == content.step_s(ds):
        return f"{b:g} s steps" if b < 60 else f"{b / 60:g} min steps" if b < 3600 else f"{b / 3600:g} h steps"
    return {1.0: "1-second", 10.0: "10-second", 60.0: "1-minute", 900.0: "15-minute", 3600.0: "hourly", 86400.0: "daily"}[b] + " means"


def profile(ds: xr.Dataset) -> go.Figure:
    """Site demand over the run with its IT share; the min/max within each plotted bin (fine runs); and, where
    the run carries the within-step swing envelope (runs coarser than 1 s), the IT swing in a lower panel."""
    has_env = "p_it_max_kw" in ds
    fig = make_subplots(rows=2 if has_env else 1, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        row_heights=[0.72, 0.28] if has_env else None)
    p = binned(ds, ds["p_facility_kw"]) / 1000.0
    label = _bin_label(ds)
    if plot_bin_s(ds) > content.step_s(ds):
        hi = binned(ds, ds["p_facility_kw"], "max") / 1000.0
        lo = binned(ds, ds["p_facility_kw"], "min") / 1000.0
        fig.add_trace(go.Scatter(x=hi.index, y=hi.values, line={"width": 0}, showlegend=False, hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Scatter(x=lo.index, y=lo.values, fill="tonexty", fillcolor=COLORS["envelope"],
                                 line={"width": 0}, name="min-max within bin"), row=1, col=1)
    fig.add_trace(go.Scatter(x=p.index, y=p.values, name="site demand", line={"color": COLORS["facility"], "width": 1}),
                  row=1, col=1)
    it = binned(ds, ds["p_it_kw"]) / 1000.0
    fig.add_trace(go.Scatter(x=it.index, y=it.values, name="IT", line={"color": COLORS["it"], "width": 0.8, "dash": "dot"}),
                  row=1, col=1)
    fig.update_yaxes(title_text="MW", row=1, col=1)
    if has_env:
        env = (binned(ds, ds["p_it_max_kw"], "max") - binned(ds, ds["p_it_min_kw"], "min")) / 1000.0
        fig.add_trace(go.Scatter(x=env.index, y=env.values, name="IT swing within step (max - min)",
                                 line={"color": "#ff7f0e", "width": 0.8}), row=2, col=1)
        fig.update_yaxes(title_text="swing MW", rangemode="tozero", row=2, col=1)
    return _layout(fig, f"Site demand ({label})", height=380 if has_env else HEIGHT_PX)


def load_heatmap(ds: xr.Dataset) -> go.Figure:
    """Hourly mean site demand as a day x hour-of-day map (the planner's view of a long profile)."""
    prof = content.profile_mw(ds)["facility_mw"]
    if content.step_s(ds) > 3600.0:
        prof = prof.resample("1h").ffill()
    frame = pd.DataFrame({"day": prof.index.normalize(), "hour": prof.index.hour, "mw": prof.values})
    grid = frame.pivot_table(index="hour", columns="day", values="mw", aggfunc="mean")
    fig = go.Figure(go.Heatmap(z=grid.values, x=grid.columns, y=grid.index, colorscale="Viridis",
                               colorbar={"title": {"text": "MW"}}))
    return _layout(fig, "Site demand by day and hour (hourly means)", height=280, yaxis_title="hour of day (local standard)",
                   yaxis_dtick=6)


def load_duration(ds: xr.Dataset) -> go.Figure:
    pct, mw = content.load_duration_curve(ds)
    fig = go.Figure(go.Scatter(x=pct, y=mw, name="site demand", line={"color": COLORS["facility"]}))
    return _layout(fig, "Load duration curve (site demand, native step)", xaxis_title="share of time met or exceeded (%)",
                   yaxis_title="MW")


def ramp_histogram(ds: xr.Dataset) -> go.Figure:
    r = content.minute_ramps_mw_min(ds)
    fig = go.Figure(go.Histogram(x=r, nbinsx=60, marker={"color": COLORS["facility"]}, name="site demand"))
    basis = "60 s differences" if content.step_s(ds) <= 60 else f"{content.step_s(ds) / 60:g}-min differences scaled to MW/min"
    return _layout(fig, f"Ramp-rate distribution ({basis})", xaxis_title="MW/min", yaxis_title="steps",
                   yaxis_type="log")


def swing_spectrum(spec: dict) -> go.Figure:
    fig = go.Figure(go.Scatter(x=spec["f_hz"], y=spec["psd_mw2_hz"], line={"color": COLORS["facility"]}, name="PSD"))
    for (lo, hi), v in spec["bands"].items():
        fig.add_vrect(x0=lo, x1=min(hi, spec["nyquist_hz"]), fillcolor="#ff7f0e", opacity=0.12, line_width=0,
                      annotation_text=f"{lo:g}-{hi:g} Hz: {v:.3g} MW²", annotation_position="top left")
    lo_f = float(spec["f_hz"][0]) if len(spec["f_hz"]) else 1e-3
    return _layout(fig, "Swing spectrum of site demand (Welch, linear detrend)", xaxis_title="Hz", xaxis_type="log",
                   xaxis_range=[np.log10(lo_f), np.log10(spec["nyquist_hz"])], yaxis_title="MW²/Hz", yaxis_type="log")


def energy_bars(rows: list[tuple[str, float]]) -> go.Figure:
    labels = [r[0] for r in rows][::-1]
    vals = [r[1] for r in rows][::-1]
    fig = go.Figure(go.Bar(x=vals, y=labels, orientation="h", marker={"color": COLORS["facility"]},
                           text=[f"{v:,.0f}" if abs(v) >= 10 else f"{v:,.3g}" for v in vals], textposition="auto"))
    return _layout(fig, "Energy over the run", height=260, xaxis_title="MWh", margin={"l": 230, "r": 20, "t": 40, "b": 50})


def dispatch(ds: xr.Dataset, e_max_kwh: float) -> go.Figure:
    """Grid, turbines and battery over time (stacked where positive), and the battery state of charge."""
    has_batt = e_max_kwh > 0
    fig = make_subplots(rows=2 if has_batt else 1, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3] if has_batt else None,
                        vertical_spacing=0.06)
    src = ds["p_source_kw"]
    for name, label in (("grid", "grid import"), ("gas_turbine", "gas turbines")):
        s = binned(ds, src.sel(source=name, drop=True)) / 1000.0
        fig.add_trace(go.Scatter(x=s.index, y=s.values, name=label, stackgroup="supply", line={"width": 0.5, "color": COLORS[name]}),
                      row=1, col=1)
    b = binned(ds, src.sel(source="battery", drop=True)) / 1000.0
    fig.add_trace(go.Scatter(x=b.index, y=b.values, name="battery (+ discharge, - charge)", line={"color": COLORS["battery"], "width": 1}),
                  row=1, col=1)
    p = binned(ds, ds["p_facility_kw"]) / 1000.0
    fig.add_trace(go.Scatter(x=p.index, y=p.values, name="site demand", line={"color": "black", "width": 1, "dash": "dot"}),
                  row=1, col=1)
    fig.update_yaxes(title_text="MW", row=1, col=1)
    if has_batt:
        soc = binned(ds, ds["battery_soc_kwh"]) / e_max_kwh * 100.0
        fig.add_trace(go.Scatter(x=soc.index, y=soc.values, name="battery SOC", line={"color": COLORS["soc"], "width": 1, "dash": "dash"}),
                      row=2, col=1)
        fig.update_yaxes(title_text="SOC %", range=[0, 100], row=2, col=1)
    return _layout(fig, f"On-site resource dispatch ({_bin_label(ds)})", height=420 if has_batt else HEIGHT_PX)


def phase_peaks(table: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Bar(x=table["phase"], y=table["peak_demand_15min_mw"], name="15-min peak demand",
                         marker={"color": COLORS["facility"]},
                         text=[f"{v:,.1f}" for v in table["peak_demand_15min_mw"]], textposition="outside"))
    fig.add_trace(go.Bar(x=table["phase"], y=table["p_facility_mean_mw"], name="mean demand", marker={"color": COLORS["it"]}))
    fig.add_trace(go.Scatter(x=table["phase"], y=table["grid_feed_mw"], mode="markers", name="utility feed rating",
                             marker={"symbol": "line-ew-open", "size": 40, "color": "#d62728",
                                     "line": {"width": 3, "color": "#d62728"}}))
    return _layout(fig, "Demand by phase", yaxis_title="MW", barmode="group")


def phase_ldc(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> go.Figure:
    fig = go.Figure()
    for name, (pct, mw) in curves.items():
        fig.add_trace(go.Scatter(x=pct, y=mw, name=name))
    return _layout(fig, "Load duration curves by phase", xaxis_title="share of time met or exceeded (%)", yaxis_title="MW")


def to_div(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "displayModeBar": False, "responsive": False})
