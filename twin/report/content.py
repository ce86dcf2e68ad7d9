"""The numbers of the utility report, computed from a simulation Dataset: profile, load duration curve,
minute ramps, swing spectrum, energy by carrier, monthly table, N-1 summary. Plain functions of the
Dataset (no HTML here), so tests can check them against the KPIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.signal import detrend

from twin.kpi import signal

MW = 1000.0


def step_s(ds: xr.Dataset) -> float:
    return float(ds.attrs.get("step_s", 3600.0))


def profile_mw(ds: xr.Dataset) -> pd.DataFrame:
    """Site demand and its parts, MW, on hourly means when the step is shorter than an hour (the 8,760-hour
    profile of a year run), else on the native step."""
    src = ds["p_source_kw"]
    cols = {
        "facility_mw": ds["p_facility_kw"],
        "it_mw": ds["p_it_kw"],
        "cooling_mw": ds["p_cooling_kw"],
        "losses_mw": ds["p_loss_kw"],
        "grid_mw": src.sel(source="grid", drop=True),
        "gas_turbine_mw": src.sel(source="gas_turbine", drop=True),
        "battery_mw": src.sel(source="battery", drop=True),
    }
    if "p_it_max_kw" in ds:
        cols["it_within_step_max_mw"] = ds["p_it_max_kw"]
        cols["it_within_step_min_mw"] = ds["p_it_min_kw"]
    frame = xr.Dataset({k: v.drop_vars([c for c in v.coords if c != "time"]) for k, v in cols.items()})
    if step_s(ds) < 3600.0:
        agg = frame.resample(time="1h")
        mean = agg.mean()
        if "it_within_step_max_mw" in frame:
            mean["it_within_step_max_mw"] = agg.max()["it_within_step_max_mw"]
            mean["it_within_step_min_mw"] = agg.min()["it_within_step_min_mw"]
        frame = mean
    df = frame.to_dataframe() / MW
    df.index.name = "time"
    return df


def load_duration_curve(ds: xr.Dataset, max_points: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """Site power sorted from highest to lowest on the native step, MW, against the share of the run's time
    (percent) it is met or exceeded. Long series are sampled at evenly spaced ranks (first and last kept)."""
    p = np.sort(ds["p_facility_kw"].values.astype(np.float64))[::-1] / MW
    n = len(p)
    pct = (np.arange(n) + 1) / n * 100.0
    if n > max_points:
        ix = np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))
        return pct[ix], p[ix]
    return pct, p


def minute_ramps_mw_min(ds: xr.Dataset, column: str = "p_facility_kw") -> np.ndarray:
    """The minute-scale ramps of twin.kpi.signal.ramp_rates (signal.minute_ramps_mw_min) of a column, or of
    the grid import (column="grid")."""
    p_kw = ds[column].values if column != "grid" else ds["p_source_kw"].sel(source="grid").values
    return signal.minute_ramps_mw_min(p_kw, step_s(ds))


def spectrum(ds: xr.Dataset) -> dict | None:
    """Welch spectrum of the site power (the estimator of twin.kpi.signal.band_energy) and the band energies,
    when the step resolves the lowest band (0.1 Hz needs steps below 5 s); None otherwise."""
    dt = step_s(ds)
    nyquist = 0.5 / dt
    if nyquist <= signal.BANDS_HZ[0][0] or ds.sizes["time"] < 16:
        return None
    p = ds["p_facility_kw"].values.astype(np.float64)
    pm = p / MW
    f, psd = signal.welch_psd_mw2_hz(p, dt)
    bands = signal.band_energy(p, dt)
    return {"f_hz": f[1:], "psd_mw2_hz": psd[1:], "bands": bands, "nyquist_hz": nyquist,
            "variance_mw2": float(np.var(detrend(pm, type="linear")))}


def energy_rows(e: dict) -> list[tuple[str, float]]:
    """Energy by carrier (MWh) as ordered rows from ds.twin.energy_by_carrier()."""
    names = [("grid", "grid import"), ("gas_turbine", "on-site gas turbines"),
             ("battery_discharge", "battery discharge"), ("battery_charge", "battery charge"),
             ("battery", "battery, net (discharge - charge)"), ("facility", "site demand (boundary)"),
             ("it", "IT"), ("cooling", "cooling"), ("losses", "conversion losses"), ("unserved", "unserved")]
    return [(label, float(e[k])) for k, label in names if k in e]


def monthly_table(ds: xr.Dataset) -> pd.DataFrame:
    """Per calendar month: energy, 15-minute peak demand of the site and of the grid import, load factor,
    energy cost, CO2, NOx and water."""
    dt = step_s(ds)
    dt_h = dt / 3600.0
    t = pd.DatetimeIndex(ds["time"].values)
    p = ds["p_facility_kw"].values
    g = ds["p_source_kw"].sel(source="grid").values
    water = ds["water_m3_h"].values if "water_m3_h" in ds else np.zeros(len(p))
    rows = []
    month = t.to_period("M")
    for m in month.unique():
        sel = np.asarray(month == m)
        ts = t[sel]
        t0 = (ts[0] - ts[0].normalize()).total_seconds()
        n = int(sel.sum())
        peak = signal.peak_demand_kw(p[sel], dt, 900.0, t0) / MW if n >= 2 else float(p[sel].max()) / MW
        gpeak = signal.peak_demand_kw(g[sel], dt, 900.0, t0) / MW if n >= 2 else float(g[sel].max()) / MW
        rows.append({
            "month": str(m),
            "hours": n * dt_h,
            "energy_facility_mwh": float(p[sel].sum()) * dt_h / MW,
            "energy_grid_mwh": float(g[sel].sum()) * dt_h / MW,
            "peak_demand_15min_mw": peak,
            "peak_grid_15min_mw": gpeak,
            "load_factor": float(p[sel].mean()) / MW / peak if peak > 0 else np.nan,
            "cost_energy_usd": float(ds["cost_usd"].values[sel].sum()),
            "co2_t": float(ds["co2_kg"].values[sel].sum()) / 1000.0,
            "nox_t": float(ds["nox_kg"].values[sel].sum()) / 1000.0,
            "water_m3": float(water[sel].sum()) * dt_h,
        })
    return pd.DataFrame(rows)


def n1_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The N-1 table by kind: cases, worst stranding, cases with overloads, worst loading and supply shortfall."""
    if table.empty:
        return pd.DataFrame(columns=["kind", "cases", "stranded_gpus_max", "stranded_mw_max", "cases_overloading",
                                     "max_loading_pu", "supply_shortfall_mw_max"])
    g = table.groupby("kind", sort=False)
    out = pd.DataFrame({
        "cases": g.size(),
        "stranded_gpus_max": g["stranded_gpus"].max(),
        "stranded_mw_max": g["stranded_mw"].max(),
        "cases_overloading": g["overloaded"].apply(lambda s: int((s != "").sum())),
        "max_loading_pu": g["max_loading_pu"].max(),
        "supply_shortfall_mw_max": g["supply_shortfall_mw"].max(),
    }).reset_index()
    return out


def n1_worst(table: pd.DataFrame, n: int = 12) -> pd.DataFrame:
    """The n contingencies with the largest effect: supply shortfall, then stranded MW, then overloads."""
    if table.empty:
        return table
    t = table.assign(_over=(table["overloaded"] != "").astype(int))
    t = t.sort_values(["supply_shortfall_mw", "stranded_mw", "_over", "max_loading_pu"], ascending=False)
    return t.drop(columns="_over").head(n).reset_index(drop=True)
