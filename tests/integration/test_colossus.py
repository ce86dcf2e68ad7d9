"""Colossus phase 1: site-boundary draw with every GPU in training, and training power swings at 0.1 s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import twin
from twin.schema.scenario import scenario_from_dict
from twin.weather import typical_year

pytestmark = pytest.mark.integration
SCEN = Path(__file__).resolve().parents[2] / "scenarios"


def test_all_training_draws_120_to_180_mw():
    """Every GPU in training on the hottest afternoon of the typical year, resolved at 0.1 s: the demand the
    utility must serve (the 15-minute peak at the site boundary, the figure a utility plans and bills for)
    lies in 120-180 MW. Job interruptions at the published rate (Llama 3) are part of the run."""
    wx = typical_year()
    hottest = pd.Timestamp(wx.time.values[int(np.argmax(wx.t_dry_c.values))])
    sc = scenario_from_dict({"site": "colossus-1", "hours": 1, "step": "0.1s", "start": str(hottest), "seed": 1,
                             "workload": {"fill_pu": 1.0, "fill_job": {"start_s": -60}}})
    ds = twin.simulate(None, sc)
    k = ds.twin.kpis()
    print(f"\ncolossus-1 all training, {hottest} ({float(ds.t_dry_c[0]):.1f} C): site boundary mean "
          f"{k['p_facility_mean_mw']:.1f} MW, 15-min peak {k['peak_demand_15min_mw']:.1f} MW, "
          f"compute-phase peak {k['p_facility_max_mw']:.1f} MW, PUE {k['pue']:.3f}")
    assert 120.0 <= k["peak_demand_15min_mw"] <= 180.0
    assert k["p_facility_mean_mw"] <= k["peak_demand_15min_mw"] <= k["p_facility_max_mw"]


def test_year_hourly_runs_and_is_plausible():
    sc = twin.load_scenario(SCEN / "colossus-1-year.yaml")
    ds = twin.simulate(None, sc)
    k = ds.twin.kpis()
    summer = ds.sel(time=slice("2025-07-01", "2025-08-31"))
    day_gal = float(summer.water_m3_h.resample(time="1D").sum().max()) * 264.172
    print(f"\ncolossus-1 year: {k['energy_facility_mwh'] / 1000:.0f} GWh, mean {k['p_facility_mean_mw']:.1f} MW, "
          f"peak (hourly) {k['p_facility_max_mw']:.1f} MW, PUE {k['pue']:.3f}, WUE {k['wue_l_kwh']:.2f} L/kWh, "
          f"largest summer-day water {day_gal / 1e6:.2f} M US gal (published ~1 M)")
    assert ds.sizes["time"] == 8760 and ds.p_rack_kw.shape == (8760, 2203)
    assert 1.0 < k["pue"] < 1.5
    # PUE is higher in summer than in winter (chiller lift)
    assert float(ds.twin.pue_hourly().sel(time=slice("2025-07-01", "2025-07-31")).mean()) > \
        float(ds.twin.pue_hourly().sel(time=slice("2025-01-01", "2025-01-31")).mean())


def test_swing_and_gpu_floor():
    """A 100,000-GPU job swings tens of MW at 0.1 s; a 90 % GPU floor cuts the 0.1-2 Hz band energy and the
    largest ramps up and down."""
    raw = twin.simulate(None, twin.load_scenario(SCEN / "colossus-1-swing.yaml"))
    smooth = twin.simulate(None, twin.load_scenario(SCEN / "colossus-1-smoothing.yaml"))
    kr, ks = raw.twin.kpis(), smooth.twin.kpis()
    band = "band_energy_0.1_2_hz_mw2"
    print(f"\n100k-GPU job at 0.1 s: swing in 1 s {kr['swing_1s_max_mw']:.1f} MW -> {ks['swing_1s_max_mw']:.1f} MW; "
          f"0.1-2 Hz band {kr[band]:.1f} -> {ks[band]:.2f} MW^2; ramp up {kr['ramp_up_max_mw_s']:.0f} -> "
          f"{ks['ramp_up_max_mw_s']:.0f} MW/s, down {kr['ramp_down_max_mw_s']:.0f} -> {ks['ramp_down_max_mw_s']:.0f} MW/s")
    assert 10.0 <= kr["swing_1s_max_mw"] <= 100.0  # tens of MW within one second
    assert ks[band] < 0.5 * kr[band]
    assert ks["ramp_up_max_mw_s"] < kr["ramp_up_max_mw_s"]
    assert ks["ramp_down_max_mw_s"] < kr["ramp_down_max_mw_s"]
    # the floor costs energy: the smoothed run draws more on average
    assert ks["p_facility_mean_mw"] > kr["p_facility_mean_mw"]
