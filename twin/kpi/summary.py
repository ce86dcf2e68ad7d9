"""KPIs of a simulation result: energy by carrier, PUE, WUE, water, peak demand, load factor, ramps, swing
bands, emissions, cost, equipment headroom, stranded capacity under N-1. Plain functions of the Dataset;
`ds.twin.kpis()` (twin.accessor) calls `kpis(ds)`.

Signal KPIs (ramps, 15-min peak, load factor, band energy, swings) come from twin.kpi.signal and are
computed on the site-boundary power `p_facility_kw`.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from twin.kpi import signal

GAL_PER_M3 = 264.172


def step_h(ds: xr.Dataset) -> float:
    return float(ds.attrs.get("step_s", 3600.0)) / 3600.0


def energy_by_carrier_mwh(ds: xr.Dataset) -> dict[str, float]:
    dt = step_h(ds)
    src = ds["p_source_kw"]
    out = {s: float(src.sel(source=s).sum()) * dt / 1000.0 for s in src["source"].values}
    b = src.sel(source="battery").values
    out["battery_discharge"] = float(np.clip(b, 0, None).sum()) * dt / 1000.0
    out["battery_charge"] = float(np.clip(-b, 0, None).sum()) * dt / 1000.0
    out["facility"] = float(ds["p_facility_kw"].sum()) * dt / 1000.0
    out["it"] = float(ds["p_it_kw"].sum()) * dt / 1000.0
    out["cooling"] = float(ds["p_cooling_kw"].sum()) * dt / 1000.0
    out["losses"] = float(ds["p_loss_kw"].sum()) * dt / 1000.0
    out["unserved"] = float(ds["p_unserved_kw"].sum()) * dt / 1000.0
    return out


def pue(ds: xr.Dataset) -> float:
    """Energy-weighted PUE over the run: facility energy / IT energy."""
    return float(ds["p_facility_kw"].sum() / ds["p_it_kw"].sum())


def pue_hourly(ds: xr.Dataset) -> xr.DataArray:
    h = ds[["p_facility_kw", "p_it_kw"]].resample(time="1h").mean()
    out = h["p_facility_kw"] / h["p_it_kw"]
    out.attrs = {"units": "1", "long_name": "hourly PUE"}
    return out


def equipment_headroom(ds: xr.Dataset) -> pd.DataFrame:
    """Peak loading of each equipment and its headroom (1 - peak loading), most loaded first."""
    peak = ds["loading_pu"].max("time").values
    df = pd.DataFrame({"equipment": ds["equipment"].values, "kind": ds["kind"].values, "peak_loading_pu": peak,
                       "headroom_pu": 1.0 - peak,
                       "headroom_kw": (1.0 - peak) * ds["equipment_p_max_kw"].values})
    return df.sort_values("peak_loading_pu", ascending=False).reset_index(drop=True)


def kpis(ds: xr.Dataset, n1: bool = False) -> dict:
    """The KPI summary as a flat dict of numbers (names carry units)."""
    dt_s = float(ds.attrs.get("step_s", 3600.0))
    dt = dt_s / 3600.0
    hours = ds.sizes["time"] * dt
    p = ds["p_facility_kw"].values
    t0 = pd.Timestamp(ds["time"].values[0])
    t0_s = (t0 - t0.normalize()).total_seconds()
    e = energy_by_carrier_mwh(ds)
    out: dict = {
        "hours": hours,
        "step_s": dt_s,
        "energy_facility_mwh": e["facility"],
        "energy_it_mwh": e["it"],
        "energy_cooling_mwh": e["cooling"],
        "energy_losses_mwh": e["losses"],
        "energy_grid_mwh": e["grid"],
        "energy_gas_turbine_mwh": e["gas_turbine"],
        "energy_battery_discharge_mwh": e["battery_discharge"],
        "energy_battery_charge_mwh": e["battery_charge"],
        "energy_unserved_mwh": e["unserved"],
        "pue": pue(ds),
        "p_facility_mean_mw": float(p.mean()) / 1000.0,
        "p_facility_max_mw": float(p.max()) / 1000.0,
        "p_facility_min_mw": float(p.min()) / 1000.0,
        "p_it_mean_mw": float(ds["p_it_kw"].mean()) / 1000.0,
    }
    if len(p) >= 2:
        out["peak_demand_15min_mw"] = signal.peak_demand_kw(p, dt_s, 900.0, t0_s) / 1000.0
        out["load_factor"] = signal.load_factor(p, dt_s, 900.0, t0_s)
        out.update(signal.ramp_rates(p, dt_s))
        if dt_s <= 0.25:  # 2 Hz needs steps of 0.25 s or less to be seen
            bands = signal.band_energy(p, dt_s)
            for (lo, hi), v in bands.items():
                out[f"band_energy_{lo:g}_{hi:g}_hz_mw2"] = v
        if dt_s <= 1.0:
            out["swing_1s_max_mw"] = signal.swing_mw(p, dt_s, 1.0)
            out["swing_60s_max_mw"] = signal.swing_mw(p, dt_s, 60.0)
    if len(p) >= 2:
        g = signal.ramp_rates(ds["p_source_kw"].sel(source="grid").values, dt_s)
        out["grid_ramp_up_max_mw_min"] = g["ramp_up_max_mw_min"]
        out["grid_ramp_down_max_mw_min"] = g["ramp_down_max_mw_min"]
        out["grid_ramp_up_max_mw_s"] = g["ramp_up_max_mw_s"]
        out["grid_ramp_down_max_mw_s"] = g["ramp_down_max_mw_s"]
    if "p_it_max_kw" in ds:
        env = (ds["p_it_max_kw"] - ds["p_it_min_kw"]).values
        out["swing_within_step_max_mw"] = float(env.max()) / 1000.0
    if "water_m3_h" in ds:
        w = float(ds["water_m3_h"].sum()) * dt
        out["water_m3"] = w
        out["water_gal_per_day"] = w * GAL_PER_M3 / max(hours / 24.0, 1e-12)
        out["wue_l_kwh"] = w * 1000.0 / max(e["it"] * 1000.0, 1e-12)
    out["co2_t"] = float(ds["co2_kg"].sum()) / 1000.0
    out["nox_t"] = float(ds["nox_kg"].sum()) / 1000.0
    out["fuel_mmbtu"] = float(ds["fuel_mmbtu"].sum())
    energy_cost = float(ds["cost_usd"].sum())
    out["cost_energy_usd"] = energy_cost
    dc = float(ds.attrs.get("demand_charge_usd_kw_month", np.nan))
    if np.isfinite(dc) and len(p) >= 2:
        grid = ds["p_source_kw"].sel(source="grid")
        if dt_s <= 900:
            grid = grid.resample(time="15min").mean()
        monthly_peak_kw = grid.groupby("time.month").max()
        months_covered = max(hours / 730.0, 0.0)
        out["cost_demand_usd"] = float(monthly_peak_kw.sum()) * dc * min(1.0, months_covered)
        out["cost_total_usd"] = energy_cost + out["cost_demand_usd"]
    head = equipment_headroom(ds)
    conv = head[head["kind"].isin(["substation", "transformer", "switchgear", "busway", "pdu", "ups"])]
    if len(conv):
        out["headroom_min_pu"] = float(conv["headroom_pu"].min())
        out["headroom_min_equipment"] = str(conv["equipment"].iloc[0])
    out["turbine_starts"] = int(np.clip(np.diff(ds["turbines_online"].values), 0, None).sum())
    out["turbines_online_max"] = int(ds["turbines_online"].max())
    out["stranded_gpus_max"] = int(ds["stranded_gpus"].max())
    fails = json.loads(ds.attrs.get("job_failures", "{}"))
    out["job_failures"] = int(sum(fails.values()))
    if n1:
        from twin.sim.n1 import n1_from_result

        table = n1_from_result(ds)
        out["n1_stranded_gpus_max"] = int(table["stranded_gpus"].max()) if len(table) else 0
        out["n1_stranded_mw_max"] = float(table["stranded_mw"].max()) if len(table) else 0.0
        out["n1_overloads"] = int((table["overloaded"] != "").sum()) if len(table) else 0
    return out


KPI_LABELS = {
    "energy_facility_mwh": "facility energy (MWh)",
    "pue": "PUE",
    "p_facility_mean_mw": "mean site power (MW)",
    "p_facility_max_mw": "max site power (MW)",
    "peak_demand_15min_mw": "peak demand, 15-min (MW)",
    "load_factor": "load factor",
    "ramp_up_max_mw_s": "max ramp up (MW/s)",
    "ramp_down_max_mw_s": "max ramp down (MW/s)",
    "ramp_up_max_mw_min": "max ramp up (MW/min)",
    "band_energy_0.1_2_hz_mw2": "0.1-2 Hz band energy (MW²)",
    "band_energy_3_30_hz_mw2": "3-30 Hz band energy (MW²)",
    "swing_60s_max_mw": "max swing in 60 s (MW)",
    "energy_grid_mwh": "grid energy (MWh)",
    "energy_gas_turbine_mwh": "turbine energy (MWh)",
    "energy_unserved_mwh": "unserved energy (MWh)",
    "water_gal_per_day": "water (US gal/day)",
    "wue_l_kwh": "WUE (L/kWh)",
    "co2_t": "CO2 (t)",
    "nox_t": "NOx (t)",
    "cost_total_usd": "cost (USD)",
    "headroom_min_pu": "least equipment headroom (pu)",
    "stranded_gpus_max": "stranded GPUs (max)",
    "job_failures": "job interruptions",
}
