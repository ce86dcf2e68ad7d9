"""The utility-planning report (for the utility's engineers, e.g. MLGW/TVA): a self-contained HTML file
(plotly.js embedded, no network) and a PDF printed from it by headless Chromium.

    from twin.report import report_html, write_report
    html = report_html(run_id)                      # the dashboard's /report/<run_id>
    paths = write_report(run_id, "reports/")        # {'html': ..., 'csv': ..., 'pdf': ...}
    paths = write_report([id1, id2, id3], "reports/")   # phase-by-phase comparison

Contents: load characterisation (profile, 15-minute peak, load factor, load duration curve, minute ramps,
swing spectrum where the step resolves it, monthly table), energy by carrier, on-site dispatch (grid,
turbines, battery, SOC), cost, emissions and water, the N-1 picture (twin.sim.n1) and equipment headroom,
and every assumption with its source and confidence (twin.report.assumptions).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import xarray as xr

from twin.errors import InputError
from twin.report import assumptions as _assumptions
from twin.report import content, figures
from twin.report.html import Section, df_table, document, fmt, fmt_mw, kv_table
from twin.report.pdf import BrowserMissingError, html_to_pdf, pdf_pages

__all__ = ["Report", "build_report", "report_html", "write_report", "phase_table", "BrowserMissingError", "pdf_pages"]


@dataclass
class Report:
    """The report before rendering: its sections (HTML blocks), figures by id, KPIs and tables, so tests
    and callers can check the numbers without parsing HTML."""

    title: str
    subtitle: str
    meta: list[tuple]
    sections: list[Section] = field(default_factory=list)
    figures: dict[str, go.Figure] = field(default_factory=dict)
    kpis: dict = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def figure(self, section: Section, fig_id: str, fig: go.Figure) -> None:
        self.figures[fig_id] = fig
        section.add(f'<div class="fig">{figures.to_div(fig, fig_id)}</div>')

    def html(self) -> str:
        import plotly.offline

        return document(self.title, self.subtitle, self.meta, self.sections, plotly.offline.get_plotlyjs())


def _site_of(ds: xr.Dataset):
    from twin.sim.engine import site_layout

    sc = json.loads(ds.attrs["scenario"])
    return site_layout(sc["site"], sc.get("base_dir")), sc


def _kpi(k: dict, key: str, unit: str = "", f=fmt) -> str:
    v = k.get(key)
    if v is None or isinstance(v, float) and not np.isfinite(v):
        return "-"
    return f"{f(v)}{(' ' + unit) if unit else ''}"


def build_report(ds: xr.Dataset, run_id: str | None = None, summary: dict | None = None) -> Report:
    """Every section of the report from a simulation Dataset (a stored run or a fresh one)."""
    import twin.accessor  # noqa: F401

    layout, sc = _site_of(ds)
    site = layout.site
    k = ds.twin.kpis()
    dt = content.step_s(ds)
    t = pd.DatetimeIndex(ds["time"].values)
    feed_mw = float(ds.attrs.get("grid_cap_feed_kw", np.nan)) / 1000.0
    gpus = int(ds.attrs.get("n_gpus", 0))
    rep = Report(
        title=f"Utility planning report: {site.name}",
        subtitle=site.description or "",
        meta=[("run", run_id or "(not stored)"),
              ("scenario", f"{sc.get('name')}: {sc.get('description') or ''}".strip().rstrip(":")),
              ("span", f"{t[0]:%Y-%m-%d %H:%M} to {t[-1] + pd.Timedelta(seconds=dt):%Y-%m-%d %H:%M} local standard time, "
                       f"{k['hours']:,.6g} h at {dt:g} s steps"),
              ("site", f"{site.name}, {site.location.name}; {gpus:,} GPUs"),
              ("utility feed rating", fmt_mw(feed_mw) if np.isfinite(feed_mw) else "-"),
              ("model", f"gigatwin {ds.attrs.get('twin_version', '?')}; cooling {ds.attrs.get('cooling_model', '?')}"),
              ("created", (summary or {}).get("created_utc") or "-"),
              ("report generated (UTC)", datetime.now(UTC).strftime("%Y-%m-%d %H:%M"))],
        kpis=k,
    )
    rep.sections.append(_summary_section(rep, ds, k, feed_mw))
    rep.sections.append(_load_section(rep, ds, k))
    rep.sections.append(_energy_section(rep, ds))
    rep.sections.append(_dispatch_section(rep, ds, k, site))
    rep.sections.append(_cost_section(rep, ds, k))
    rep.sections.append(_n1_section(rep, ds, layout))
    rep.sections.append(_assumption_section(rep, site, sc))
    return rep


def _summary_section(rep: Report, ds, k, feed_mw) -> Section:
    s = Section("summary", "Summary for the utility")
    peak = k.get("peak_demand_15min_mw", k["p_facility_max_mw"])
    rows = [
        ("Peak demand, 15-minute average", fmt_mw(peak), "peak_demand_15min_mw"),
        ("Highest instantaneous demand (native step)", fmt_mw(k["p_facility_max_mw"]), "p_facility_max_mw"),
        ("Mean demand", fmt_mw(k["p_facility_mean_mw"]), "p_facility_mean_mw"),
        ("Lowest demand", fmt_mw(k["p_facility_min_mw"]), "p_facility_min_mw"),
        ("Load factor (mean / 15-min peak)", _kpi(k, "load_factor", f=lambda v: f"{v:.3f}"), "load_factor"),
        ("Energy at the site boundary", _kpi(k, "energy_facility_mwh", "MWh"), "energy_facility_mwh"),
        ("  of which from the grid", _kpi(k, "energy_grid_mwh", "MWh"), "energy_grid_mwh"),
        ("Largest ramp up / down (MW/min)", f"{_kpi(k, 'ramp_up_max_mw_min')} / {_kpi(k, 'ramp_down_max_mw_min')}", "ramp_max_mw_min"),
        ("Largest grid-import ramp up / down (MW/min)",
         f"{_kpi(k, 'grid_ramp_up_max_mw_min')} / {_kpi(k, 'grid_ramp_down_max_mw_min')}", "grid_ramp_max_mw_min"),
        ("PUE (energy-weighted)", _kpi(k, "pue", f=lambda v: f"{v:.3f}"), "pue"),
    ]
    if np.isfinite(feed_mw) and feed_mw > 0:
        rows.append(("15-min peak over the utility feed rating", f"{peak / feed_mw * 100:.1f} %", "peak_over_feed_pct"))
    if "swing_within_step_max_mw" in k:
        rows.append(("Largest IT swing within one step (envelope)", fmt_mw(k["swing_within_step_max_mw"]), "swing_within_step_max_mw"))
    if k.get("energy_unserved_mwh", 0) > 0:
        rows.append(("Unserved energy", _kpi(k, "energy_unserved_mwh", "MWh"), "energy_unserved_mwh"))
    s.add(kv_table(rows))
    s.note("Demand is the power at the site boundary (grid import + on-site turbines + battery discharge - charge). "
           "The 15-minute peak is the largest clock-aligned 15-minute average (twin.kpi.signal.peak_demand_kw). "
           "Every input behind these figures is listed with its source and confidence in the last section.")
    return s


def _load_section(rep: Report, ds, k) -> Section:
    s = Section("load", "Load characterisation", newpage=True)
    dt = content.step_s(ds)
    rep.figure(s, "fig-profile", figures.profile(ds))
    if k["hours"] >= 14 * 24:
        rep.figure(s, "fig-heatmap", figures.load_heatmap(ds))
    if k["hours"] >= 8760 - 1e-6:
        s.note("The full-year (8,760-hour) hourly profile is also written as a CSV beside the report (write_report).")
    rep.figure(s, "fig-ldc", figures.load_duration(ds))
    s.h3("Ramps")
    rows = [("ramp up, largest (MW/min)", _kpi(k, "ramp_up_max_mw_min"), "ramp_up_max_mw_min"),
            ("ramp down, largest (MW/min)", _kpi(k, "ramp_down_max_mw_min"), "ramp_down_max_mw_min"),
            ("|ramp| p50 / p95 / p99 (MW/min)",
             " / ".join(_kpi(k, f"ramp_abs_p{q}_mw_min") for q in (50, 95, 99)), "ramp_abs_pct_mw_min"),
            (f"ramp up / down, largest per native step of {dt:g} s (MW/s)",
             f"{_kpi(k, 'ramp_up_max_mw_s')} / {_kpi(k, 'ramp_down_max_mw_s')}", "ramp_max_mw_s")]
    if "swing_1s_max_mw" in k:
        rows.append(("largest swing within 1 s / 60 s (MW)", f"{_kpi(k, 'swing_1s_max_mw')} / {_kpi(k, 'swing_60s_max_mw')}",
                     "swing_mw"))
    s.add(kv_table(rows))
    rep.figure(s, "fig-ramps", figures.ramp_histogram(ds))
    if dt > 60:
        s.note(f"At {dt:g} s steps ramps are differences of step means: they understate the swings inside a step. "
               "Run the scenario at 1 s or finer for the sub-minute behaviour of synchronous training.")
    s.h3("Swing spectrum")
    spec = content.spectrum(ds)
    if spec is None:
        s.note(f"The step of {dt:g} s cannot resolve the 0.1-2 Hz and 3-30 Hz oscillation bands (Nyquist "
               f"{0.5 / dt:.3g} Hz). Simulate at 0.1 s (3-30 Hz needs 1/60 s or finer for its top) to see them."
               + (f" The training swing inside each step reaches {fmt_mw(k['swing_within_step_max_mw'])} of IT power "
                  "(swing envelope of the step)." if "swing_within_step_max_mw" in k else ""))
    else:
        rep.figure(s, "fig-spectrum", figures.swing_spectrum(spec))
        rows = [(f"{lo:g}-{hi:g} Hz band energy (MW²)", "not resolved" if not np.isfinite(v) else fmt(v),
                 f"band_energy_{lo:g}_{hi:g}_hz_mw2") for (lo, hi), v in spec["bands"].items()]
        rows.append(("variance of the detrended series (MW²)", fmt(spec["variance_mw2"]), "variance_mw2"))
        s.add(kv_table(rows))
        s.note(f"Nyquist frequency {spec['nyquist_hz']:.3g} Hz; a band above it is not resolved at this step.")
    s.h3("By month")
    m = content.monthly_table(ds)
    rep.tables["monthly"] = m
    s.add(df_table(m, headers={"energy_facility_mwh": "energy MWh", "energy_grid_mwh": "grid MWh",
                               "peak_demand_15min_mw": "15-min peak MW", "peak_grid_15min_mw": "grid 15-min peak MW",
                               "load_factor": "load factor", "cost_energy_usd": "energy cost USD", "co2_t": "CO2 t",
                               "nox_t": "NOx t", "water_m3": "water m³"}))
    return s


def _energy_section(rep: Report, ds) -> Section:
    s = Section("energy", "Energy by carrier")
    rows = content.energy_rows(ds.twin.energy_by_carrier())
    rep.tables["energy"] = pd.DataFrame(rows, columns=["carrier", "energy_mwh"])
    s.add(df_table(rep.tables["energy"], headers={"energy_mwh": "MWh"}))
    rep.figure(s, "fig-energy", figures.energy_bars([r for r in rows if r[0] != "battery, net (discharge - charge)"]))
    return s


def _dispatch_section(rep: Report, ds, k, site) -> Section:
    s = Section("dispatch", "On-site resource dispatch")
    e_max = sum(c.e_max_kwh for c in site.components if c.kind == "battery")
    rep.figure(s, "fig-dispatch", figures.dispatch(ds, e_max))
    soc = ds["battery_soc_kwh"].values
    rows = [("gas-turbine energy", _kpi(k, "energy_gas_turbine_mwh", "MWh"), "energy_gas_turbine_mwh"),
            ("turbine starts / most units online", f"{k['turbine_starts']} / {k['turbines_online_max']}", "turbines"),
            ("battery discharge / charge", f"{_kpi(k, 'energy_battery_discharge_mwh')} / {_kpi(k, 'energy_battery_charge_mwh')} MWh",
             "battery_energy")]
    if e_max > 0:
        rows.append(("battery energy capacity", f"{fmt(e_max / 1000)} MWh", "battery_e_max_mwh"))
        rows.append(("battery SOC lowest / highest", f"{soc.min() / e_max * 100:.1f} % / {soc.max() / e_max * 100:.1f} %", "soc"))
        rows.append(("equivalent full cycles", fmt(k["energy_battery_discharge_mwh"] * 1000 / e_max), "battery_cycles"))
    s.add(kv_table(rows))
    s.note("Dispatch is the simulator's rule-based dispatch (twin.sim.dispatch_rules): grid first up to its limits, "
           "turbines committed on the demand averaged over the commit window, the battery for smoothing and cover.")
    return s


def _cost_section(rep: Report, ds, k) -> Section:
    s = Section("cost", "Cost, emissions and water")
    e = k["energy_facility_mwh"]
    rows = [("energy cost (grid TOU energy + fuel + turbine O&M)", _kpi(k, "cost_energy_usd", "USD"), "cost_energy_usd"),
            ("grid demand charges", _kpi(k, "cost_demand_usd", "USD"), "cost_demand_usd"),
            ("total", _kpi(k, "cost_total_usd", "USD"), "cost_total_usd")]
    if k.get("cost_total_usd") is not None and e > 0:
        rows.append(("average cost per MWh at the boundary", f"{fmt(k['cost_total_usd'] / e)} USD/MWh", "cost_usd_mwh"))
    s.add(kv_table(rows))
    s.note("Prices: the TVA-distributor TOU proxy tariff and gas price of data/costs.yaml (see 'prices and factors' in "
           "the assumptions). Demand charges: each month's 15-minute grid peak times the demand charge, prorated for "
           "runs shorter than a month.")
    s.h3("Emissions")
    rows = [("CO2 (turbines + grid average factor)", _kpi(k, "co2_t", "t"), "co2_t"),
            ("NOx (turbines)", _kpi(k, "nox_t", "t"), "nox_t"),
            ("turbine fuel (HHV)", _kpi(k, "fuel_mmbtu", "MMBtu"), "fuel_mmbtu")]
    if e > 0:
        rows.append(("CO2 intensity at the boundary", f"{fmt(k['co2_t'] * 1000 / e)} kg/MWh", "co2_kg_mwh"))
    s.add(kv_table(rows))
    s.h3("Water")
    if "water_m3" in k:
        s.add(kv_table([("water use (evaporation, blowdown, drift)", _kpi(k, "water_m3", "m³"), "water_m3"),
                        ("average per day", _kpi(k, "water_gal_per_day", "US gal/day"), "water_gal_per_day"),
                        ("WUE", _kpi(k, "wue_l_kwh", "L/kWh of IT energy"), "wue_l_kwh")]))
    else:
        s.note("The run carries no water result.")
    return s


def _n1_section(rep: Report, ds, layout) -> Section:
    from twin.sim.n1 import n1_table

    s = Section("n1", "N-1 contingencies and equipment headroom", newpage=True)
    t_peak = pd.Timestamp(ds["time"].values[int(ds["p_bus_kw"].argmax("time"))])
    try:
        table = n1_table(layout, ds)
    except (InputError, KeyError, ValueError, IndexError) as exc:  # the site file changed since the run was stored
        # (equipment renamed, added or removed); anything else is a bug and should surface
        s.note(f"The N-1 table could not be computed for this run: {exc}")
        return s
    rep.tables["n1"] = table
    s.note(f"Each case removes one unit of a multi-unit component (the whole of a single-unit one) at the run's peak "
           f"step ({t_peak:%Y-%m-%d %H:%M}) and re-flows the peak load (twin.sim.n1). Stranded: racks left with no "
           "power path. Overloaded: equipment pushed above its rating. Supply shortfall: peak demand the remaining "
           "sources cannot carry.")
    s.h3("By equipment kind")
    s.add(df_table(content.n1_summary(table), headers={
        "stranded_gpus_max": "stranded GPUs (worst)", "stranded_mw_max": "stranded MW (worst)",
        "cases_overloading": "cases with overloads", "max_loading_pu": "highest loading pu",
        "supply_shortfall_mw_max": "supply shortfall MW (worst)"}))
    s.h3("Worst cases")
    worst = content.n1_worst(table)
    s.add(df_table(worst, headers={"max_loading_pu": "max loading pu", "supply_shortfall_mw": "shortfall MW"}))
    s.add(f"<details><summary>All {len(table)} cases</summary>{df_table(table)}</details>")
    s.h3("Equipment headroom at the run's peak loading")
    head = ds.twin.headroom()
    head = head[head["kind"].isin(["substation", "transformer", "switchgear", "busway", "pdu", "ups"])].head(12)
    s.add(df_table(head.reset_index(drop=True), headers={"peak_loading_pu": "peak loading pu", "headroom_pu": "headroom pu",
                                                         "headroom_kw": "headroom kW"}))
    return s


def _assumption_section(rep: Report, site, sc: dict) -> Section:
    s = Section("assumptions", "Assumptions and sources", newpage=True)
    table = _assumptions.assumptions_table(site, sc)
    rep.tables["assumptions"] = table
    counts = _assumptions.confidence_counts(table)
    s.p("What is known and what is assumed: every parameter group behind this run, with its source and confidence. "
        "Published: a public figure. Derived: calculated from published figures. Assumed: an engineering "
        "assumption chosen to be consistent with the published totals. 'Not stated': the input gives no source.")
    s.add(kv_table([(k, str(v)) for k, v in counts.items()]))

    def row_class(rec):
        c = rec.confidence
        return "conf-missing" if c == _assumptions.NOT_STATED else f"conf-{c}" if c in ("published", "derived", "assumed") else ""

    s.add(df_table(table, cls="assumptions", row_class=row_class))
    return s


# --------------------------------------------------------------------------- entry points


def report_html(run_id: str, base: Path | str | None = None) -> str:
    """The report of a stored run as one self-contained HTML string (the dashboard's /report/<run_id>).
    `base` is the run store folder (None = $TWIN_RUNS_DIR or ./runs). Unknown runs raise InputError."""
    from twin.runs import open_run, run_summary

    base = Path(base) if base is not None else None
    ds = open_run(run_id, base)
    return build_report(ds, run_id, run_summary(run_id, base)).html()


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _resolve(item, base):
    from twin.runs import open_run, run_summary

    if isinstance(item, xr.Dataset):
        import twin.accessor  # noqa: F401

        sc = json.loads(item.attrs["scenario"])
        return item, None, None, f"{sc.get('name', 'run')}-{item.attrs.get('site', 'site')}"
    rid = str(item)
    return open_run(rid, base), rid, run_summary(rid, base), rid


def write_report(run_id_or_dataset, out_dir, pdf: bool = True, base: Path | str | None = None) -> dict[str, Path]:
    """Write the report of a run (id in the run store, or a Dataset) into out_dir: <name>.html, <name>-hourly.csv
    (the hourly profile, 8,760 rows for a year) and, with pdf, <name>.pdf. A list of several runs writes the
    phase-by-phase comparison instead (phases.html / phases.pdf). Returns the paths written, plus the seconds
    taken ('seconds') and the PDF's page count ('pdf_pages')."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(base) if base is not None else None
    items = list(run_id_or_dataset) if isinstance(run_id_or_dataset, list | tuple) else [run_id_or_dataset]
    if not items:
        raise InputError.one("twin report", "RUN_ID", "no run given; expected a run id from `twin runs list`")
    paths: dict = {}
    if len(items) == 1:
        ds, rid, summary, name = _resolve(items[0], base)
        rep = build_report(ds, rid, summary)
        paths["html"] = out / f"{name}.html"
        _atomic_write(paths["html"], rep.html())
        paths["csv"] = out / f"{name}-hourly.csv"
        _atomic_write(paths["csv"], content.profile_mw(ds).to_csv(float_format="%.4f"))
    else:
        runs = [_resolve(it, base) for it in items]
        html_text, _ = phase_report(runs)
        name = "phases"
        paths["html"] = out / f"{name}.html"
        _atomic_write(paths["html"], html_text)
    if pdf:
        paths["pdf"] = html_to_pdf(paths["html"], out / f"{name}.pdf")
        paths["pdf_pages"] = pdf_pages(paths["pdf"])
    paths["seconds"] = time.perf_counter() - t0
    return paths


# --------------------------------------------------------------------------- phases


def phase_table(runs) -> pd.DataFrame:
    """One row per phase (run): GPUs, 15-minute peak, mean, load factor, energy, ramps, feed rating."""
    rows = []
    for ds, rid, _summary, name in runs:
        import twin.accessor  # noqa: F401

        k = ds.twin.kpis()
        sc = json.loads(ds.attrs["scenario"])
        feed = float(ds.attrs.get("grid_cap_feed_kw", np.nan)) / 1000.0
        peak = k.get("peak_demand_15min_mw", k["p_facility_max_mw"])
        rows.append({"phase": ds.attrs.get("site", "?"), "run": rid or name, "scenario": sc.get("name"),
                     "gpus": int(ds.attrs.get("n_gpus", 0)), "hours": k["hours"], "peak_demand_15min_mw": peak,
                     "p_facility_mean_mw": k["p_facility_mean_mw"], "load_factor": k.get("load_factor", np.nan),
                     "energy_facility_mwh": k["energy_facility_mwh"], "ramp_up_max_mw_min": k.get("ramp_up_max_mw_min", np.nan),
                     "ramp_down_max_mw_min": k.get("ramp_down_max_mw_min", np.nan), "grid_feed_mw": feed,
                     "peak_over_feed_pu": peak / feed if feed > 0 else np.nan})
    return pd.DataFrame(rows)


def phase_report(runs) -> tuple[str, Report]:
    table = phase_table(runs)
    rep = Report(title="Utility planning report: demand by phase",
                 subtitle="Phase-by-phase comparison of stored runs (one row per site phase)",
                 meta=[("runs", ", ".join(str(r) for r in table["run"])),
                       ("report generated (UTC)", datetime.now(UTC).strftime("%Y-%m-%d %H:%M"))])
    rep.tables["phases"] = table
    s = Section("phases", "Demand by phase")
    s.add(df_table(table, headers={"peak_demand_15min_mw": "15-min peak MW", "p_facility_mean_mw": "mean MW",
                                   "load_factor": "load factor", "energy_facility_mwh": "energy MWh",
                                   "ramp_up_max_mw_min": "ramp up MW/min", "ramp_down_max_mw_min": "ramp down MW/min",
                                   "grid_feed_mw": "utility feed MW", "peak_over_feed_pu": "peak / feed"}))
    s.note("Peaks are clock-aligned 15-minute averages of the site-boundary demand; compare runs of the same span, "
           "step and weather. Each phase's full report (assumptions, N-1) comes from `twin report RUN_ID`.")
    rep.figure(s, "fig-phase-peaks", figures.phase_peaks(table))
    rep.figure(s, "fig-phase-ldc", figures.phase_ldc({f"{r[0].attrs.get('site')}": content.load_duration_curve(r[0]) for r in runs}))
    rep.sections.append(s)
    return rep.html(), rep
