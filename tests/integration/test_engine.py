"""Engine: conservation at every step, the hand-calculated tiny case, outages, curtailment, windows, swings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import twin
from twin.schema.scenario import scenario_from_dict

pytestmark = pytest.mark.integration
SCEN = Path(__file__).resolve().parents[2] / "scenarios"


def _sc(**kw):
    base = {"site": "colossus-1", "hours": 48, "step": "1h", "start": "2025-07-10T00:00", "seed": 3}
    return scenario_from_dict({**base, **kw})


def _check_conservation(ds, rtol=1e-9):
    fac = ds.p_facility_kw.values
    parts = ds.p_it_kw.values + ds.p_loss_kw.values + ds.p_cooling_kw.values - ds.p_unserved_kw.values
    np.testing.assert_allclose(fac, parts, rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(ds.p_source_kw.sum("source").values, fac, rtol=rtol, atol=1e-6)
    # the bus: grid at the bus + turbines + battery = bus demand
    grid_bus = ds.p_source_kw.sel(source="grid").values - ds.p_loss_upstream_kw.values
    bus = grid_bus + ds.p_source_kw.sel(source=["gas_turbine", "battery"]).sum("source").values + ds.p_unserved_kw.values
    np.testing.assert_allclose(bus, ds.p_bus_kw.values, rtol=rtol, atol=1e-6)
    # losses: every stage's in - out, summed, is the reported total
    np.testing.assert_allclose(ds.p_loss_equipment_kw.sum("equipment").values, ds.p_loss_kw.values, rtol=1e-5)


# the unit a variable's name promises by its last part(s) (naming grammar {quantity}_{qualifier}_{unit})
UNIT_OF_SUFFIX = {"_kw": "kW", "_kwh": "kWh", "_c": "degC", "_m3_h": "m3/h", "_pu": "1", "_usd": "USD", "_kg": "kg",
                  "_mmbtu": "MMBtu", "_usd_kwh": "USD/kWh", "_s": "s"}


def _check_units(ds):
    """Every data variable carries units and a long name; a unit named by the variable's suffix is the one in attrs."""
    assert len(ds.data_vars) > 40
    for name, v in ds.data_vars.items():
        assert v.attrs.get("units") and v.attrs.get("long_name"), name
        suffix = max((s for s in UNIT_OF_SUFFIX if name.endswith(s)), key=len, default=None)
        if suffix is not None:
            assert v.attrs["units"] == UNIT_OF_SUFFIX[suffix], (name, v.attrs["units"])


def _check_battery_energy(ds):
    """The battery's stored energy changes by what it delivers over the discharge efficiency, or takes in
    times the charge efficiency (round-trip loss split evenly), at every step."""
    from twin.schema.components import Battery
    from twin.sim.engine import site_layout

    bats = [c for c in site_layout("colossus-1").site.components if isinstance(c, Battery)]
    eta = float(np.sqrt(bats[0].efficiency_roundtrip_pu))
    b = ds.p_source_kw.sel(source="battery").values
    dt_h = ds.attrs["step_s"] / 3600.0
    d_soc = np.diff(ds.battery_soc_kwh.values)
    np.testing.assert_allclose(d_soc, -np.where(b > 0, b / eta, b * eta)[1:] * dt_h, rtol=1e-9, atol=1e-6)
    assert np.abs(b).max() > 0  # the battery works in these runs


def _block_mean(x, k):
    return x if k == 1 else x.reshape(-1, k).mean(axis=1)


def _check_heat_and_water(ds):
    """Heat generated = heat rejected + heat stored at every step; every kW the IT draws and every kW of rack
    pumps, door fans, air handlers and loop pumps ends as heat in the loops; water = evaporation + blowdown + drift."""
    np.testing.assert_allclose(ds.q_generated_kw.values, ds.q_rejected_kw.values + ds.q_stored_kw.values,
                               rtol=1e-9, atol=1e-6)
    k = int(round(ds.attrs["rack_step_s"] / ds.attrs["step_s"]))
    rack_heat = (ds.q_liquid_kw + ds.q_air_kw).sum("rack", dtype=np.float64).values
    np.testing.assert_allclose(rack_heat, _block_mean(ds.p_it_kw.values, k), rtol=1e-6)
    aux = ds.p_rack_aux_kw.sum("rack", dtype=np.float64).values
    fans_pumps = (ds.p_ahu_kw + ds.p_pump_kw).sum("loop").values
    np.testing.assert_allclose(ds.q_generated_kw.values[::k], rack_heat + aux + fans_pumps[::k], rtol=1e-6)
    plant = ds.p_plant_kw.sum("plant").values
    np.testing.assert_allclose(ds.p_cooling_kw.values, plant + fans_pumps + np.repeat(aux, k)[:ds.sizes["time"]],
                               rtol=1e-6)
    parts = (ds.evaporation_m3_h + ds.blowdown_m3_h + ds.drift_m3_h).sum("plant").values
    np.testing.assert_allclose(ds.water_m3_h.values, parts, rtol=1e-12)


def test_conservation_hourly_with_events():
    sc = _sc(events=[{"kind": "outage", "component": "hall-2-tx3", "start_h": 5, "hours": 6},
                     {"kind": "outage", "component": "sub63", "units": 1, "start_h": 20, "hours": 4},
                     {"kind": "curtailment", "start_h": 30, "hours": 3, "grid_import_max_kw": 60000},
                     {"kind": "outage", "component": "megapack", "start_h": 29, "hours": 5},
                     {"kind": "curtailment", "start_h": 40, "hours": 2, "grid_import_max_kw": 70000}])
    ds = twin.simulate(None, sc)
    _check_conservation(ds)
    _check_heat_and_water(ds)  # with racks stranded: their pumps and fans heat no water
    _check_battery_energy(ds)
    _check_units(ds)
    # the transformer's racks are stranded during its outage only
    stranded = ds.stranded_gpus.values
    assert stranded[5:11].min() > 0 and stranded[:5].max() == 0 and stranded[11:].max() == 0
    assert ds.sel(equipment="hall-2-tx3").p_equipment_in_kw.values[5:11].max() == 0
    # curtailment with the battery out: grid import within the limit, turbines in whole units make up the rest
    grid = ds.p_source_kw.sel(source="grid").values
    assert grid[30:33].max() <= 60000 + 1e-6
    gt = ds.p_source_kw.sel(source="gas_turbine").values
    assert gt[30:33].min() > 0 and ds.p_unserved_kw.values.max() == 0
    units = ds.turbines_online.values[30:33]
    assert np.all(gt[30:33] <= units * 16500 + 1e-6) and np.all(gt[30:33] > (units - 1) * 16500)
    # with the battery in service, a short curtailment is carried by the battery (turbines cover what grid and
    # battery cannot)
    assert gt[40:42].max() == 0 and grid[40:42].max() <= 70000 + 1e-6
    batt = ds.p_source_kw.sel(source="battery").values
    assert batt[40:42].min() > 0 and ds.battery_soc_kwh.values[41] < ds.battery_soc_kwh.values[39]
    # substation unit lost: the other unit carries the grid's share without exceeding its rating
    sub = ds.sel(equipment="sub63").loading_pu.values
    assert sub[20:24].max() <= 1.0 + 1e-6


def test_conservation_subsecond():
    sc = _sc(hours=0.1, step="0.1s", start="2025-07-10T15:00", workload={"fill_pu": 1.0, "fill_job": {"start_s": -60}},
             mitigations={"battery_smoothing": True})
    ds = twin.simulate(None, sc)
    _check_conservation(ds)
    _check_heat_and_water(ds)
    _check_battery_energy(ds)
    _check_units(ds)  # per-rack variables of a sub-second run sit on time_rack (1-minute blocks)
    assert ds.attrs["rack_step_s"] == 60.0 and ds.q_liquid_kw.dims == ("time_rack", "rack")
    assert ds.sizes["time"] == 3600 and ds.p_rack_kw.dims == ("time_rack", "rack")
    # battery smoothing: the grid moves far less than the demand at the fastest step
    grid = ds.p_source_kw.sel(source="grid").values
    assert np.abs(np.diff(grid)).max() < 0.2 * np.abs(np.diff(ds.p_bus_kw.values)).max()


def test_tiny_hand_calculation():
    """tiny-fixed: rack 0 at 80 % of TDP, racks 1-5 idle, 2 storage racks at typical load, by hand."""
    sc = twin.load_scenario(SCEN / "tiny-fixed.yaml")
    ds = twin.simulate(None, sc)
    t = 0
    # PSU: titanium-3300w x 4 = 13.2 kW per node; eta by linear interpolation of (0.2, 0.94), (0.5, 0.96), (1.0, 0.91)
    dc_busy = 3.0 + 8 * 0.8 * 0.700  # kW: base (hgx-h100-8gpu-lc p_base_kw) + 8 GPUs at 560 W
    eta_busy = 0.96 + (dc_busy / 13.2 - 0.5) / 0.5 * (0.91 - 0.96)
    dc_idle = 3.0 + 8 * 0.070
    eta_idle = 0.94 + (dc_idle / 13.2 - 0.2) / 0.3 * (0.96 - 0.94)
    rack_busy = 8 * dc_busy / eta_busy
    rack_idle = 8 * dc_idle / eta_idle
    storage = 25 * 0.6
    it = rack_busy + 5 * rack_idle + 2 * storage
    assert ds.p_it_kw.values[t] == pytest.approx(it, rel=1e-3)
    aux = ds.p_rack_aux_kw.isel(time=t).values  # CDU pumps and door fans (the cooling model's)
    racks = np.array([rack_busy] + [rack_idle] * 5 + [storage] * 2) + aux
    # busways: racks 0-3 on bw1, 4-7 on bw2; P_in = P_out / 0.998
    bw1, bw2 = racks[:4].sum() / 0.998, racks[4:].sum() / 0.998
    # transformer 3,000 kVA x 0.95: P_in = P_out + 2.8 + 16.5 (P_out / 2,850)^2
    tx_out = bw1 + bw2
    tx_in = tx_out + 2.8 + 16.5 * (tx_out / 2850.0) ** 2
    # switchgear feeds the transformer, the loop pumps and the dry cooler: P_in = P_out / 0.9995
    plant = float(ds.sel(equipment=["loop", "dry"]).p_equipment_in_kw.isel(time=t).sum())
    sw_in = (tx_in + plant) / 0.9995
    eq = ds.p_equipment_in_kw.isel(time=t)
    assert float(eq.sel(equipment="hall-1-tx1-bw1")) == pytest.approx(bw1, rel=1e-3)
    assert float(eq.sel(equipment="hall-1-tx1")) == pytest.approx(tx_in, rel=1e-3)
    assert float(eq.sel(equipment="swgr")) == pytest.approx(sw_in, rel=1e-3)
    assert ds.p_facility_kw.values[t] == pytest.approx(sw_in, rel=1e-3)
    print(f"\ntiny-fixed: hand {sw_in:.3f} kW, twin {ds.p_facility_kw.values[t]:.3f} kW "
          f"(IT {it:.3f} / {ds.p_it_kw.values[t]:.3f} kW)")
    _check_conservation(ds)


def test_deterministic_and_seeded():
    sc = _sc(hours=24)
    a, b = twin.simulate(None, sc), twin.simulate(None, sc)
    np.testing.assert_array_equal(a.p_facility_kw.values, b.p_facility_kw.values)
    c = twin.simulate(None, _sc(hours=24, seed=4))
    assert not np.array_equal(a.p_facility_kw.values, c.p_facility_kw.values)


def test_consecutive_windows_join_up():
    sc = _sc(hours=48, limits={"grid_import_max_kw": 90000})
    whole = twin.simulate(None, sc)
    first = twin.simulate(None, sc, hours=24)
    state = first.twin.final_state()
    second = twin.simulate(None, sc, hours=24, start_offset_s=24 * 3600, initial_state=state)
    joined = np.concatenate([first.p_facility_kw.values, second.p_facility_kw.values])
    # the IT side is identical; dispatch restarts from the carried state (commitment windows realign)
    np.testing.assert_allclose(np.concatenate([first.p_it_kw.values, second.p_it_kw.values]), whole.p_it_kw.values, rtol=1e-9)
    np.testing.assert_allclose(joined, whole.p_facility_kw.values, rtol=1e-3)
    assert second.time.values[0] == whole.time.values[24]


def test_result_contract():
    ds = twin.simulate(None, _sc(hours=6))
    for name in ("p_it_kw", "p_loss_kw", "p_cooling_kw", "p_facility_kw", "p_source_kw", "battery_soc_kwh",
                 "turbines_online", "p_rack_kw", "p_equipment_in_kw", "p_loss_equipment_kw", "loading_pu",
                 "p_job_kw", "t_dry_c", "t_wet_c", "water_m3_h", "t_loop_supply_c", "t_cdu_supply_c", "co2_kg",
                 "nox_kg", "cost_usd"):
        assert name in ds, name
    _check_units(ds)
    assert set(ds.dims) <= {"time", "time_rack", "rack", "equipment", "source", "loop", "job", "plant"}
    assert json.loads(ds.attrs["scenario"])["site"] == "colossus-1" and ds.attrs["twin_version"]
    assert list(ds.source.values) == ["grid", "gas_turbine", "battery"]
    assert 1.0 < ds.twin.pue() < 1.6
    # hourly steps carry the swing envelope of the IT power: it brackets the step mean, and training swings
    lo, it, hi = ds.p_it_min_kw.values, ds.p_it_kw.values, ds.p_it_max_kw.values
    assert np.all(lo <= it * (1 + 1e-6)) and np.all(it <= hi * (1 + 1e-6)) and np.all(hi - lo > 0.1 * it)


def test_heat_wave_raises_cooling_power():
    base = twin.simulate(None, _sc(hours=72))
    hot = twin.simulate(None, _sc(hours=72, events=[{"kind": "heat_wave", "start_h": 24, "hours": 24, "delta_t_k": 8}]))
    w = slice(24, 48)
    assert (hot.t_dry_c.values[w] - base.t_dry_c.values[w]).min() == pytest.approx(8.0)
    assert hot.p_cooling_kw.values[w].sum() > base.p_cooling_kw.values[w].sum()
    np.testing.assert_allclose(hot.p_cooling_kw.values[:24], base.p_cooling_kw.values[:24], rtol=1e-9)


def test_n1_table():
    ds = twin.simulate(None, _sc(hours=24))
    t = ds.twin.n1().set_index("component")
    # a hall transformer strands exactly its racks' GPUs and overloads nothing
    tx = t.loc["hall-1-tx1"]
    from twin.sim.engine import site_layout

    lay = site_layout("colossus-1")
    below = [lay.index[f"hall-1-tx1-bw{i}"] for i in (1, 2, 3)]
    assert tx.stranded_gpus == int(lay.racks.n_gpus[np.isin(lay.racks.feeder, below)].sum()) > 0
    assert tx.overloaded == ""
    # one of the two 90 MVA substation units cannot carry the peak alone (85.5 MW < peak demand)
    peak_mw = float(ds.p_bus_kw.max()) / 1000
    assert ("sub63" in t.loc["sub63"].overloaded) == (peak_mw > 85.5)
    # the source groups: losing the utility feed leaves turbines + battery (247.5 + 150 MW) > the peak
    assert t.loc["mlgw-sub63-feed"].supply_shortfall_mw == 0.0
    k = ds.twin.kpis(n1=True)
    assert k["n1_stranded_gpus_max"] == t.stranded_gpus.max() >= tx.stranded_gpus


def test_whatif_events_and_table():
    from twin.whatif import parse_event, whatif

    assert parse_event("outage:sub63/1@2h+4h") == {"kind": "outage", "start_h": 2.0, "hours": 4.0,
                                                   "component": "sub63", "units": 1}
    assert parse_event("curtailment:80MW@10h+2h")["grid_import_max_kw"] == 80000.0
    res = whatif(_sc(hours=12), ["curtailment:70MW@2h+3h", "outage:megapack@0h+6h", "outage:hall-3-tx5@1h+2h"])
    tab = res.table.set_index("kpi")
    assert tab.loc["energy_gas_turbine_mwh", "case"] > tab.loc["energy_gas_turbine_mwh", "base"] == 0.0
    assert tab.loc["stranded_gpus_max", "difference"] > 0
    assert res.case.p_source_kw.sel(source="grid").values[2:5].max() <= 70000 + 1e-6


def test_grid_ramp_limit_with_battery():
    sc = _sc(hours=0.25, step="0.1s", start="2025-07-15T14:00",
             workload={"jobs": [{"name": "t", "kind": "training", "gpus": 100000, "start_s": -60}]},
             limits={"grid_ramp_max_kw_min": 10000})
    ds = twin.simulate(None, sc)
    _check_conservation(ds)
    k = ds.twin.kpis()
    grid = ds.p_source_kw.sel(source="grid").values
    # the grid never moves faster than 10 MW/min, step by step; the battery takes the swings
    assert np.abs(np.diff(grid)).max() <= 10000 / 600 * 1.001
    assert k["grid_ramp_up_max_mw_min"] <= 10.0 * 1.001
    assert k["energy_battery_discharge_mwh"] > 0 and np.abs(np.diff(ds.p_bus_kw.values)).max() > 10000


def test_every_shipped_scenario_loads_and_the_whatif_file_applies():
    """Every scenario in scenarios/ loads and checks against its site (named after its file); the what-if file
    applies to the heat-wave week as its comment says: the transformer's racks dark for 6 h, the grid held to
    80 MW for 2 h, the heat wave still in force."""
    from twin.whatif import whatif

    files = sorted(SCEN.glob("*.yaml"))
    cases = [p for p in files if not p.name.startswith("whatif-")]
    assert len(cases) >= 5
    for p in cases:
        sc = twin.load_scenario(p)
        assert sc.name == p.stem and sc.n_steps * sc.step_s == pytest.approx(sc.hours * 3600.0)
    base = twin.load_scenario(SCEN / "colossus-1-heatwave.yaml")
    res = whatif(base, file=SCEN / "whatif-tx-outage.yaml")
    case, ref = res.case, res.base
    tx_in = case.sel(equipment="hall-1-tx1").p_equipment_in_kw.values
    assert tx_in[2:8].max() == 0.0 and tx_in[:2].min() > 0 and tx_in[8:].min() > 0
    assert case.stranded_gpus.values[2:8].min() > 0 and case.stranded_gpus.values[8:].max() == 0
    assert ref.stranded_gpus.values.max() == 0
    grid = case.p_source_kw.sel(source="grid").values
    assert grid[10:12].max() <= 80000 + 1e-6 < ref.p_source_kw.sel(source="grid").values[10:12].min()
    _check_conservation(case)
    np.testing.assert_allclose(case.t_dry_c.values, ref.t_dry_c.values)  # the heat wave is in both
    assert (case.t_dry_c.values[48:120] - twin.simulate(None, _sc(start="2025-07-14T00:00", hours=168)).t_dry_c.values[48:120]
            ).min() == pytest.approx(6.0)


def test_kpis_by_hand():
    """The KPI summary recomputed by hand from the run's series and the sourced factors of data/costs.yaml and
    the turbine catalog (values as of writing in the comments): energy, WUE, water per day, fuel and CO2, NOx,
    TOU energy cost, demand charge on the 15-minute grid peak (prorated to the span) and turbine starts."""
    from twin.sim.engine import _costs

    c = _costs()
    sc = _sc(events=[{"kind": "curtailment", "start_h": 30, "hours": 3, "grid_import_max_kw": 60000},
                     {"kind": "outage", "component": "megapack", "start_h": 29, "hours": 5}])
    ds = twin.simulate(None, sc)
    k = ds.twin.kpis()
    fac, it = ds.p_facility_kw.values, ds.p_it_kw.values
    grid, gt = ds.p_source_kw.sel(source="grid").values, ds.p_source_kw.sel(source="gas_turbine").values
    assert gt.max() > 0  # the turbines run in the curtailment, so fuel, NOx and starts mean something
    assert k["energy_facility_mwh"] == pytest.approx(fac.sum() / 1000.0, rel=1e-12)
    water_m3 = ds.water_m3_h.values.sum()  # hourly steps: m3/h x 1 h
    assert k["wue_l_kwh"] == pytest.approx(water_m3 * 1000.0 / it.sum(), rel=1e-12)
    assert k["water_gal_per_day"] == pytest.approx(water_m3 * 264.172 / 2.0, rel=1e-12)
    # fuel per hour: kWh x heat rate (10,240 kJ/kWh LHV) / 1,055,055.85 kJ/MMBtu x HHV/LHV (1.108)
    fuel = gt * 10240.0 / 1_055_055.85 * c["hhv_lhv"]
    np.testing.assert_allclose(ds.fuel_mmbtu.values, fuel, rtol=1e-12)
    # CO2: AP-42 49.9 kg/MMBtu (HHV) for the turbines, the grid's average factor (0.2835 kg/kWh) for imports
    assert k["co2_t"] == pytest.approx((fuel.sum() * c["co2_kg_mmbtu"] + grid.sum() * c["grid_co2_kg_kwh"]) / 1000.0,
                                       rel=1e-9)
    assert k["nox_t"] == pytest.approx(gt.sum() / 1000.0 * 0.48 / 1000.0, rel=1e-12)  # 0.48 kg/MWh
    t = ds.time.to_index()
    on = (t.hour >= c["on_hours"][0]) & (t.hour < c["on_hours"][1]) & (t.day_of_week < 5)
    energy_cost = ((grid * np.where(on, c["on_usd_kwh"], c["off_usd_kwh"])).sum() + fuel.sum() * c["gas_usd_mmbtu"]
                   + gt.sum() * c["vom_usd_kwh"])
    assert k["cost_energy_usd"] == pytest.approx(energy_cost, rel=1e-9)
    # one calendar month, 48 h of it: the month's hourly grid peak (= its 15-minute peak) x 48 / 730 of a month
    assert k["cost_demand_usd"] == pytest.approx(grid.max() * c["demand_usd_kw_month"] * 48 / 730.0, rel=1e-12)
    starts = int(np.clip(np.diff(ds.turbines_online.values), 0, None).sum())
    assert k["turbine_starts"] == starts >= 1
