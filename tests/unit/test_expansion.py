"""Capacity expansion against brute-force enumeration and hand calculations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from optimizers.costs import load_costs
from optimizers.dispatch import Battery, DispatchInputs, TurbineFleet, solve_dispatch
from optimizers.expansion import ExpansionInputs, crf, solve_expansion
from twin.errors import InfeasibleError

pytestmark = pytest.mark.unit


def _day(**over):
    t = np.datetime64("2025-07-15T00", "h") + np.arange(24).astype("timedelta64[h]")
    h = np.arange(24)
    load = np.where((h >= 12) & (h < 18), 120.0, 80.0)  # kW: 6 h peak, 20 kW above a 100 kW grid
    kw = dict(time=t, dt_h=1.0, load_kw=load, price_usd_kwh=np.where(h < 8, 0.03, 0.06),
              turbines=TurbineFleet(n_units=0, p_max_kw=10.0, p_min_pu=0.3, start_cost_usd=0.5,
                                    heat_rate_kj_kwh=10_240.0, vom_usd_kwh=0.01),
              battery=Battery(p_max_kw=0.0, e_max_kwh=0.0, efficiency_roundtrip_pu=1.0, soc_initial_pu=0.0,
                              soc_min_pu=0.0),
              grid_import_max_kw=100.0, gas_price_usd_mmbtu=4.0, demand_charge_usd_kw_month=3.0)
    kw.update(over)
    return DispatchInputs(**kw)


EXP = dict(turbine_capex_usd_kw=900.0, turbine_fom_usd_kw_year=15.0, turbine_lifetime_years=20.0,
           battery_capex_usd_kwh=150.0, battery_capex_usd_kw=100.0, battery_fom_usd_kw_year=5.0,
           battery_lifetime_years=15.0, battery_duration_min_h=6.0, battery_duration_max_h=6.0,
           grid_existing_kw=100.0, grid_new_max_kw=0.0, discount_rate_pu=0.07, cost_weight=365.0,
           demand_months_weight=12.0)


def _mixed(**over):
    """A day whose least-cost plan needs both technologies: 95 kW off-peak, 120 kW for 6 h against a 100 kW
    grid cap. The battery (6-h duration, lossless, empty at midnight) can only charge from the 5 kW of grid
    headroom in the 12 h before the peak: 60 kWh, half of the 120 kWh shortfall, so a battery alone cannot
    do it. Gas at 8 $/MMBtu makes turbine energy (0.086 fuel + 0.01 O&M $/kWh) dearer than grid energy,
    so a turbine runs only to cover the peak; per kWh of daily peak a battery costs ~19 $/yr + its
    charging energy (0.03-0.06 $/kWh) against ~35 $/yr of turbine fuel, but a turbine unit costs
    1000 $/yr on top. Expected: 1 turbine (10 kW over the peak) + 60 kWh / 10 kW of battery, beating
    2 turbines and no battery by ~1.3 k$/yr."""
    h = np.arange(24)
    return _day(**{"load_kw": np.where((h >= 12) & (h < 18), 120.0, 95.0), "gas_price_usd_mmbtu": 8.0, **over})


def test_expansion_matches_brute_force_over_turbines_and_battery_sizes():
    """Enumerate turbine counts x battery energies (6-h duration), each operated by the dispatch LP
    relaxation, annualised by hand; the expansion optimum must equal the best enumerated plan, and that
    plan must be mixed (turbines and battery), with the runner-up clearly worse."""
    inp = ExpansionInputs(operation=_mixed(), **EXP)
    ds = solve_expansion(inp)
    a = 0.07
    plans = []
    for n, e in itertools.product(range(0, 6), np.arange(0.0, 250.0, 10.0)):
        p = e / 6.0
        op = _mixed(turbines=TurbineFleet(**{**_day().turbines.__dict__, "n_units": n}),
                    battery=Battery(p_max_kw=p, e_max_kwh=e, efficiency_roundtrip_pu=1.0, soc_initial_pu=0.0,
                                    soc_min_pu=0.0))
        try:
            d = solve_dispatch(op, relax=True)
        except InfeasibleError:
            continue
        ops = 365.0 * (d.attrs["cost_total_usd"] - d.attrs["cost_demand_usd"]) + 12.0 * d.attrs["cost_demand_usd"]
        capex = (n * 10.0 * (900.0 * crf(a, 20) + 15.0) + e * 150.0 * crf(a, 15) + p * (100.0 * crf(a, 15) + 5.0))
        plans.append((ops + capex, n, float(e)))
    plans.sort()
    (total, n_best, e_best), runner_up = plans[0], plans[1]
    # the enumeration itself: battery-only is infeasible, the best plan is mixed, and it is a clear winner
    assert all(n >= 1 for _, n, _ in plans)
    assert (n_best, e_best) == (1, 60.0)
    assert runner_up[0] > total * 1.005
    # the optimiser: same objective, same decisions
    assert ds.attrs["cost_annual_total_usd"] == pytest.approx(total, rel=1e-6)
    assert ds.attrs["solver_objective"] == pytest.approx(total, rel=1e-6)
    assert float(ds.turbines_new) == n_best
    assert float(ds.battery_e_new_kwh) == pytest.approx(e_best, abs=1e-6)
    assert float(ds.battery_p_new_kw) == pytest.approx(e_best / 6.0, abs=1e-6)
    # the turbine covers 10 kW of the peak, the battery the other 10 kW; the grid stays at its cap
    peak = slice(12, 18)
    np.testing.assert_allclose(ds.turbine_p_kw.values[peak], 10.0, atol=1e-6)
    np.testing.assert_allclose(ds.battery_p_kw.values[peak], 10.0, atol=1e-6)
    assert float(ds.grid_import_kw.max()) <= 100.0 + 1e-9


def test_peak_shortfall_met_by_cheapest_option_by_hand():
    # No turbines allowed; the 20 kW x 6 h shortfall (120 kW load, 100 kW grid) needs a 120 kWh / 20 kW
    # battery (6 h duration, lossless, charged from 20 kW of grid headroom over 18 off-peak hours).
    inp = ExpansionInputs(operation=_day(), **{**EXP, "turbine_units_max": 0.0})
    ds = solve_expansion(inp)
    assert float(ds.battery_e_new_kwh) == pytest.approx(120.0, abs=1e-6)
    assert float(ds.battery_p_new_kw) == pytest.approx(20.0, abs=1e-6)
    assert float(ds.grid_import_kw.max()) <= 100.0 + 1e-9
    capex = 120.0 * 150.0 * crf(0.07, 15) + 20.0 * (100.0 * crf(0.07, 15) + 5.0)
    assert ds.attrs["cost_annual_battery_usd"] == pytest.approx(capex, rel=1e-9)
    # operation: 2,160 kWh a day at 0.03 $/kWh before 08:00 (640 kWh), 0.06 after (1,520 kWh), less the
    # 120 kWh the lossless battery moves from 0.06 to 0.03 (8 h x 20 kW of night headroom suffice);
    # a bigger battery would cost ~19 $/kWh-yr against 11 $/kWh-yr of arbitrage. Demand: 100 kW x 3 $ x 12.
    energy_day = 640 * 0.03 + 1520 * 0.06 - 120 * (0.06 - 0.03)
    ops = 365.0 * energy_day + 12.0 * 3.0 * 100.0
    assert ds.attrs["cost_annual_operation_usd"] == pytest.approx(ops, rel=1e-9)
    assert ds.attrs["solver_objective"] == pytest.approx(ops + capex, rel=1e-9)


def _cooled_day():
    """A grid-only day: 50 kW flat at $0.05/kWh, no demand charge, 300 kW of heat (400 kW at 15:00)."""
    q = np.full(24, 300.0)
    q[15] = 400.0
    op = _day(load_kw=np.full(24, 50.0), grid_import_max_kw=1e6, demand_charge_usd_kw_month=0.0,
              price_usd_kwh=np.full(24, 0.05))
    return q, op


def test_chiller_capacity_and_electricity_by_hand():
    # Grid-only site with a chiller: capacity = peak cooling x (1 + margin); its electricity q / COP
    # joins the load and is bought at the energy price.
    q, op = _cooled_day()
    inp = ExpansionInputs(operation=op, cooling_load_kw_thermal=q, chiller_cop=4.0, chiller_margin_pu=0.25,
                          chiller_capex_usd_kw_thermal=200.0, chiller_fom_usd_kw_thermal_year=2.0,
                          chiller_lifetime_years=20.0, discount_rate_pu=0.05, cost_weight=365.0,
                          turbine_units_max=0.0, battery_p_new_max_kw=0.0, battery_e_new_max_kwh=0.0)
    ds = solve_expansion(inp)
    assert float(ds.chiller_new_kw_thermal) == pytest.approx(500.0)
    energy = (50.0 * 24 + q.sum() / 4.0) * 0.05 * 365.0
    assert ds.attrs["cost_annual_operation_usd"] == pytest.approx(energy, rel=1e-9)
    chillers = 500.0 * (200.0 * crf(0.05, 20) + 2.0)
    assert ds.attrs["cost_annual_chillers_usd"] == pytest.approx(chillers, rel=1e-9)
    # no grid connection exists: the new one is sized to the peak site load, 50 kW IT + 400 kW / COP 4
    assert float(ds.grid_new_kw) == pytest.approx(150.0)
    grid = 150.0 * (200.0 * crf(0.05, 40) + 2.0)
    assert ds.attrs["solver_objective"] == pytest.approx(energy + chillers + grid, rel=1e-9)


def test_from_costs_uses_the_shipped_cost_file():
    c = load_costs()
    inp = ExpansionInputs.from_costs(_day(), c)
    assert inp.battery_capex_usd_kwh == c.battery_megapack.capex_usd_kwh
    assert c.provenance["battery_megapack.capex_usd_kwh"].confidence == "derived"
    assert crf(0.07, 25) == pytest.approx(c.financial.crf(25))


def test_defaults_are_the_sourced_cost_file_figures():
    # no cost or performance default of its own: each one is the data/costs.yaml figure, which has a source
    c = load_costs()
    inp = ExpansionInputs(operation=_day())
    pairs = {"discount_rate_pu": "financial.discount_rate_pu", "turbine_capex_usd_kw": "turbine_smt130.capex_usd_kw",
             "turbine_fom_usd_kw_year": "turbine_smt130.fom_usd_kw_year",
             "turbine_lifetime_years": "turbine_smt130.lifetime_years",
             "battery_capex_usd_kwh": "battery_megapack.capex_usd_kwh", "battery_capex_usd_kw": "battery_megapack.capex_usd_kw",
             "battery_fom_usd_kw_year": "battery_megapack.fom_usd_kw_year",
             "battery_lifetime_years": "battery_megapack.lifetime_years",
             "grid_capex_usd_kw": "grid.interconnection_capex_usd_kw", "grid_fom_usd_kw_year": "grid.interconnection_fom_usd_kw_year",
             "grid_lifetime_years": "grid.interconnection_lifetime_years", "chiller_cop": "chiller.cop_pu",
             "chiller_capex_usd_kw_thermal": "chiller.capex_usd_kw_thermal",
             "chiller_fom_usd_kw_thermal_year": "chiller.fom_usd_kw_thermal_year",
             "chiller_lifetime_years": "chiller.lifetime_years"}
    for name, key in pairs.items():
        sec, item = key.split(".")
        assert getattr(inp, name) == getattr(getattr(c, sec), item), name
        assert c.provenance[key].source, key
    assert inp.battery_fom_usd_kw_year == pytest.approx(37.7)
    assert ExpansionInputs.from_costs(_day(), c).chiller_cop == c.chiller.cop_pu


def test_chiller_cop_is_the_catalog_air_cooled_chiller_with_its_fans():
    # the next phase's chiller (sites/colossus-next.yaml): 1,500 kW at compressor COP 3.42 plus 45 kW of fans
    from twin.catalog import load_catalog

    ch = load_catalog().get("chiller", "air-cooled-chiller-1500kw")
    assert (ch.q_unit_max_kw, ch.cop_rated, ch.p_fan_kw) == (1500.0, 3.42, 45.0)
    by_hand = 1500.0 / (1500.0 / 3.42 + 45.0)  # 3.1018
    assert load_costs().chiller.cop_pu == pytest.approx(by_hand, abs=0.005)
    assert load_costs().provenance["chiller.cop_pu"].confidence == "derived"


def test_default_chiller_cop_sizes_the_grid_by_hand():
    # as the chiller test above without a COP: the peak site load is 50 kW + 400 kW / 3.10
    q, op = _cooled_day()
    inp = ExpansionInputs(operation=op, cooling_load_kw_thermal=q, cost_weight=365.0, turbine_units_max=0.0,
                          battery_p_new_max_kw=0.0, battery_e_new_max_kwh=0.0)
    ds = solve_expansion(inp)
    assert float(ds.grid_new_kw) == pytest.approx(50.0 + 400.0 / 3.10, rel=1e-6)
    np.testing.assert_allclose(ds.chiller_p_kw, q / 3.10, rtol=1e-12)


def test_expansion_infeasible_names_the_grid_cap():
    op = _day(grid_import_max_kw=100.0)
    inp = ExpansionInputs(operation=op, **{**EXP, "turbine_units_max": 0.0, "battery_e_new_max_kwh": 60.0})
    with pytest.raises(InfeasibleError, match="grid import cap of 0.1 MW"):
        solve_expansion(inp)
