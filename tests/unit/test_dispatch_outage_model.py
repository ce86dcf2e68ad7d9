"""Per-step availability in the dispatch (turbine trips, battery units out), on instances solved by hand."""

from __future__ import annotations

import numpy as np
import pytest

from optimizers.dispatch import Battery, DispatchInputs, TurbineFleet, solve_dispatch, solve_dispatch_rolling
from twin.errors import InputError

pytestmark = pytest.mark.unit

NO_TURBINES = TurbineFleet(n_units=0, p_max_kw=0.0)
VOLL = 10.0  # USD/kWh


def hours(n: int, start: str = "2025-07-15T00") -> np.ndarray:
    return np.datetime64(start, "h") + np.arange(n).astype("timedelta64[h]")


def _trip(avail=None, battery=True, cap_kw=60e3, **turb):
    # 100 MW load, 60 MW grid cap, 3 x 20 MW turbines (fuel dearer than the grid, so the grid sits at its cap),
    # all three online at t0; a 10 MW / 20 MWh battery at 10 MWh, round trip 0.81 (0.9 each way), empty at the end.
    t = TurbineFleet(n_units=3, p_max_kw=20e3, p_min_pu=0.5, start_cost_usd=1000.0, units_online_initial=3, **turb)
    b = (Battery(p_max_kw=10e3, e_max_kwh=20e3, efficiency_roundtrip_pu=0.81, soc_initial_pu=0.5, soc_min_pu=0.0,
                 soc_final_pu=0.0) if battery else Battery(p_max_kw=0.0, e_max_kwh=0.0, soc_initial_pu=0.0))
    return DispatchInputs(time=hours(4), dt_h=1.0, load_kw=np.full(4, 100e3), price_usd_kwh=np.full(4, 0.05),
                          turbines=t, battery=b, grid_import_max_kw=cap_kw, gas_price_usd_mmbtu=6.0,
                          curtailment_max_kw=100e3, value_of_lost_load_usd_kwh=VOLL, turbine_units_available=avail)


def test_two_of_three_turbines_trip_battery_and_capping_cover_the_gap_by_hand():
    # Steps 2-3: one unit in service -> 20 MW, so 20 MW short each step (40 MWh). The battery fills from the
    # turbines' headroom in steps 0-1 (10 -> 20 MWh: 10 / 0.9 = 11.11 MWh charged, more than its 10 MW in one
    # step, so the third unit runs in both) and gives 20 * 0.9 = 18 MWh back (10 MW at most per step); the
    # other 22 MWh are capped at the value of lost load. Min up time 4 h with two units started
    # just before t0: without forced stops the trip would break min up (2 started > 1 online) -> infeasible.
    avail = np.array([3, 3, 1, 1])
    inp = _trip(avail, min_up_h=4.0, startups_recent=(2,))
    ds = solve_dispatch(inp)
    np.testing.assert_allclose(ds.turbines_online, [3, 3, 1, 1], atol=1e-9)
    assert np.all(ds.turbines_online.values <= avail + 1e-9)
    np.testing.assert_allclose(ds.turbine_forced_shutdowns, [0, 0, 2, 0], atol=1e-9)
    assert float(ds.turbine_startups.sum()) == 0.0 and ds.attrs["cost_start_usd"] == 0.0
    np.testing.assert_allclose(ds.grid_import_kw, 60e3, rtol=1e-9)
    np.testing.assert_allclose(ds.turbine_p_kw.values[2:], 20e3, rtol=1e-9)
    assert float(ds.battery_charge_kw.sum()) == pytest.approx(10e3 / 0.9, rel=1e-9)
    assert float(ds.battery_discharge_kw.sum()) == pytest.approx(18e3, rel=1e-9)
    np.testing.assert_allclose(ds.battery_discharge_kw.values[:2], 0.0, atol=1e-6)
    np.testing.assert_allclose(ds.battery_soc_kwh.values[[1, 3]], [20e3, 0.0], atol=1e-6)
    assert float(ds.curtailed_kw.sum()) == pytest.approx(22e3, rel=1e-9)
    np.testing.assert_allclose(ds.curtailed_kw.values[:2], 0.0, atol=1e-6)
    # conservation at every step: grid + turbines + battery + capped = load
    bal = ds.grid_import_kw + ds.turbine_p_kw + ds.battery_p_kw + ds.curtailed_kw
    np.testing.assert_allclose(bal, 100e3, rtol=1e-9)
    fuel = (2 * 40e3 + 10e3 / 0.9 + 2 * 20e3) * inp.turbines.fuel_mmbtu_per_kwh * 6.0
    assert ds.attrs["cost_total_usd"] == pytest.approx(4 * 60e3 * 0.05 + fuel + 22e3 * VOLL, rel=1e-7)
    assert ds.attrs["solver_objective"] == pytest.approx(ds.attrs["cost_total_usd"], rel=1e-7)
    np.testing.assert_allclose(ds.turbine_units_available, avail)


def test_trip_without_battery_caps_exactly_the_lost_units():
    # no battery, 45 MW grid cap: the turbines must make 55 MW (all three units). With every unit in service
    # nothing is capped; with two tripped at t0 (3 online before, 1 in service in steps 0-1) 55 - 20 = 35 MW
    # is capped in each of those steps (70 MWh).
    full = solve_dispatch(_trip(None, battery=False, cap_kw=45e3))
    assert float(full.curtailed_kw.sum()) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(full.turbine_p_kw, 55e3, rtol=1e-9)
    ds = solve_dispatch(_trip(np.array([1, 1, 3, 3]), battery=False, cap_kw=45e3, min_down_h=3.0))
    np.testing.assert_allclose(ds.curtailed_kw, [35e3, 35e3, 0, 0], atol=1e-6)
    np.testing.assert_allclose(ds.turbines_online, [1, 1, 3, 3], atol=1e-9)
    # the trip is a forced stop: it does not hold the units under the 3 h minimum down time (a voluntary stop at
    # t0 would keep them off until step 3, and 20 MW more would be capped in step 2), they start again at once
    np.testing.assert_allclose(ds.turbine_forced_shutdowns, [2, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(ds.turbine_startups, [0, 0, 2, 0], atol=1e-9)
    assert ds.attrs["cost_curtailment_usd"] == pytest.approx(70e3 * VOLL, rel=1e-9)
    assert ds.attrs["cost_start_usd"] == pytest.approx(2 * 1000.0)


def _arbitrage(**over):
    # 4 h, load 100 kW, prices 0.02, 0.02, 0.10, 0.10, no turbines, battery empty at start and end
    b = Battery(p_max_kw=over.pop("p_max_kw", 50.0), e_max_kwh=100.0, efficiency_roundtrip_pu=0.81,
                soc_initial_pu=0.0, soc_min_pu=0.0, soc_final_pu=0.0)
    return DispatchInputs(time=hours(4), dt_h=1.0, load_kw=np.full(4, 100.0),
                          price_usd_kwh=np.array([0.02, 0.02, 0.10, 0.10]), turbines=NO_TURBINES, battery=b, **over)


NO_BATTERY_COST = 200 * 0.02 + 200 * 0.10  # 24 USD


def test_half_the_battery_power_out_halves_the_arbitrage_profit():
    # full: 50 kW in each cheap hour (90 kWh stored), 81 kWh out: cost 17.9 -> profit 6.1 USD.
    # half the power in service: 25 kW in (45 kWh stored), 40.5 kWh out: 250 * 0.02 + 159.5 * 0.10 = 20.95 -> 3.05.
    full = solve_dispatch(_arbitrage())
    half = solve_dispatch(_arbitrage(battery_p_available_pu=np.full(4, 0.5)))
    assert NO_BATTERY_COST - full.attrs["cost_total_usd"] == pytest.approx(6.1, rel=1e-9)
    assert NO_BATTERY_COST - half.attrs["cost_total_usd"] == pytest.approx(3.05, rel=1e-9)
    np.testing.assert_allclose(half.battery_p_kw, [-25, -25, 25, 15.5], atol=1e-6)
    np.testing.assert_allclose(half.battery_p_available_kw, 25.0)
    # out for the expensive hours only: nothing can be sold, so the battery is not charged at all
    out = solve_dispatch(_arbitrage(battery_p_available_pu=np.array([1.0, 1.0, 0.0, 0.0])))
    assert out.attrs["cost_total_usd"] == pytest.approx(NO_BATTERY_COST, rel=1e-9)
    np.testing.assert_allclose(out.battery_p_kw, 0.0, atol=1e-6)


def test_half_the_battery_energy_out_halves_an_energy_limited_profit():
    # 100 kW power, 100 kWh: energy-limited. Full: 111.1 kWh in, 90 out: profit 90 * 0.10 - 111.1 * 0.02 = 6.778.
    # Half the units out for the whole horizon (empty, so they hold nothing): 50 kWh window -> half the profit.
    full = solve_dispatch(_arbitrage(p_max_kw=100.0))
    half = solve_dispatch(_arbitrage(p_max_kw=100.0, battery_e_available_pu=np.full(4, 0.5)))
    profit = 90 * 0.10 - 100 / 0.9 * 0.02
    assert NO_BATTERY_COST - full.attrs["cost_total_usd"] == pytest.approx(profit, rel=1e-9)
    assert NO_BATTERY_COST - half.attrs["cost_total_usd"] == pytest.approx(profit / 2, rel=1e-9)
    assert float(half.battery_soc_kwh.max()) == pytest.approx(50.0, rel=1e-9)


def test_battery_units_out_keep_their_charge_until_they_return():
    # 100 kWh full at t0, lossless, 100 kW; load 100 kW; prices 0.10, 0.05, 0.05, 0.10; empty at the end.
    # All in service: sell 100 kWh at t0, buy 100 back, sell again at t3: cost 300 * 0.05 = 15.
    # Half the units out in steps 0-2: they keep 50 kWh; only 50 can be sold at t0, 50 bought back, and at t3 the
    # returning units bring their 50 back: 100 sold. Cost 50 * 0.10 + 250 * 0.05 = 17.5 (50 kWh x 0.05 dearer).
    def inp(ae=None):
        return DispatchInputs(time=hours(4), dt_h=1.0, load_kw=np.full(4, 100.0),
                              price_usd_kwh=np.array([0.10, 0.05, 0.05, 0.10]), turbines=NO_TURBINES,
                              battery=Battery(p_max_kw=100.0, e_max_kwh=100.0, efficiency_roundtrip_pu=1.0,
                                              soc_initial_pu=1.0, soc_min_pu=0.0, soc_final_pu=0.0),
                              battery_e_available_pu=ae)

    assert solve_dispatch(inp()).attrs["cost_total_usd"] == pytest.approx(15.0, rel=1e-9)
    ds = solve_dispatch(inp(np.array([0.5, 0.5, 0.5, 1.0])))
    assert ds.attrs["cost_total_usd"] == pytest.approx(17.5, rel=1e-9)
    np.testing.assert_allclose(ds.battery_soc_out_of_service_kwh, [50, 50, 50, 0], atol=1e-6)
    np.testing.assert_allclose(ds.battery_p_kw.values[[0, 3]], [50, 100], atol=1e-6)
    in_service = ds.battery_soc_kwh - ds.battery_soc_out_of_service_kwh
    assert float(in_service.values[:3].max()) <= 50.0 + 1e-6 and float(ds.battery_soc_kwh[-1]) == pytest.approx(0, abs=1e-6)


def test_reserve_counts_only_the_battery_in_service():
    # a 40 MW reduction commitment held by a 50 MW / 100 MWh battery (1 h duration, lossless) at 60 MWh:
    # with 30 % of its units (power and energy) in service in step 1, only 15 MW can be held there, so 25 MW is
    # short: the elastic re-solve names the commitment and the shortfall.
    from twin.errors import InfeasibleError

    def inp(a):
        return DispatchInputs(time=hours(3), dt_h=1.0, load_kw=np.full(3, 10e3), price_usd_kwh=np.full(3, 0.05),
                              turbines=NO_TURBINES, reduction_kw=40e3, reduction_duration_h=1.0,
                              battery=Battery(p_max_kw=50e3, e_max_kwh=100e3, efficiency_roundtrip_pu=1.0,
                                              soc_initial_pu=0.6, soc_min_pu=0.0),
                              battery_p_available_pu=a, battery_e_available_pu=a)

    ok = solve_dispatch(inp(np.array([1.0, 0.8, 1.0])))  # 40 MW power, 48 MWh in service: holds
    assert float(ok.reserve_battery_kw.min()) >= 40e3 - 1e-6
    with pytest.raises(InfeasibleError, match="load-reduction") as exc:
        solve_dispatch(inp(np.array([1.0, 0.3, 1.0])))
    assert "25" in str(exc.value)


def test_rolling_horizon_carries_a_trip_across_windows():
    # 6 h, the trip of two units spans the window boundary (steps 2-4; windows of 3 h, no overlap)
    t = TurbineFleet(n_units=3, p_max_kw=20e3, p_min_pu=0.5, units_online_initial=3, min_up_h=2.0, min_down_h=2.0)
    inp = DispatchInputs(time=hours(6), dt_h=1.0, load_kw=np.full(6, 100e3), price_usd_kwh=np.full(6, 0.05),
                         turbines=t, battery=Battery(p_max_kw=0.0, e_max_kwh=0.0, soc_initial_pu=0.0),
                         grid_import_max_kw=60e3, curtailment_max_kw=100e3, gas_price_usd_mmbtu=6.0,
                         turbine_units_available=np.array([3, 3, 1, 1, 1, 3]))
    ds = solve_dispatch_rolling(inp, window_h=3, overlap_h=0)
    assert ds.attrs["rolling_windows"] == 2
    np.testing.assert_allclose(ds.turbines_online, [2, 2, 1, 1, 1, 2], atol=1e-9)
    np.testing.assert_allclose(ds.curtailed_kw, [0, 0, 20e3, 20e3, 20e3, 0], atol=1e-6)


@pytest.mark.parametrize("key, value, expect", [
    ("turbine_units_available", np.array([3, 3, 3]), "shape (3,), expected (4,)"),
    ("turbine_units_available", np.array([3, 4, 3, 3]), "4 at step 1"),
    ("turbine_units_available", np.array([3, 1.5, 3, 3]), "whole numbers"),
    ("turbine_units_available", np.array([3, -1, 3, 3]), "0..3"),
    ("battery_p_available_pu", np.array([1.0, 1.2, 1.0, 1.0]), "shares in 0..1"),
    ("battery_e_available_pu", np.array([1.0, np.nan, 1.0, 1.0]), "nan at step 1"),
    ("battery_e_available_pu", 0.5, "shape (), expected (4,)"),
])
def test_bad_availability_names_the_key(key, value, expect):
    from dataclasses import replace

    with pytest.raises(InputError) as exc:
        solve_dispatch(replace(_trip(), **{key: value}))
    msg = str(exc.value)
    assert key in msg and expect in msg, msg


def test_any_outage_pattern_stays_feasible_and_within_what_is_in_service():
    # property: whatever the trips (units in service per step, battery shares), with min up/down times, units
    # online before t0 and recent starts, the dispatch solves (no InfeasibleError: a forced stop never breaks a
    # start/stop rule) and keeps every decision within what is in service; the full horizon and the rolling
    # windows both. Capping is allowed (at the value of lost load), so energy can always balance.
    from hypothesis import given, settings
    from hypothesis import strategies as st

    n = 8
    shares = st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=n, max_size=n)

    @settings(max_examples=15, deadline=None, derandomize=True)
    @given(units=st.lists(st.integers(0, 3), min_size=n, max_size=n), u0=st.integers(0, 3), ap=shares, ae=shares,
           up=st.integers(1, 4), down=st.integers(1, 4), recent=st.integers(0, 3))
    def check(units, u0, ap, ae, up, down, recent):
        t = TurbineFleet(n_units=3, p_max_kw=20e3, p_min_pu=0.5, start_cost_usd=500.0, min_up_h=float(up),
                         min_down_h=float(down), units_online_initial=u0, startups_recent=(min(recent, u0),))
        # no end-of-horizon SOC target: a rolling window must reach it at its own end, and a battery out at the
        # start of the next window may not get back there (the elastic re-solve says so; not what this checks)
        b = Battery(p_max_kw=20e3, e_max_kwh=40e3, efficiency_roundtrip_pu=0.81, soc_initial_pu=0.5, soc_min_pu=0.1,
                    soc_max_pu=0.9, soc_final_pu=0.1)
        inp = DispatchInputs(time=hours(n), dt_h=1.0, load_kw=np.full(n, 90e3),
                             price_usd_kwh=np.tile([0.03, 0.12], n // 2), turbines=t, battery=b,
                             grid_import_max_kw=50e3, gas_price_usd_mmbtu=4.0, curtailment_max_kw=90e3,
                             reduction_kw=10e3, load_capping_allowance_kw=10e3,
                             turbine_units_available=np.array(units), battery_p_available_pu=np.array(ap),
                             battery_e_available_pu=np.array(ae))
        for ds in (solve_dispatch(inp), solve_dispatch_rolling(inp, window_h=4, overlap_h=1)):
            assert np.all(ds.turbines_online.values <= np.array(units) + 1e-6)
            assert np.all(ds.turbine_p_kw.values <= ds.turbines_online.values * 20e3 + 1e-3)
            p_in = np.array(ap) * 20e3 + 1e-3
            assert np.all(ds.battery_charge_kw.values <= p_in) and np.all(ds.battery_discharge_kw.values <= p_in)
            soc = ds.battery_soc_kwh.values
            assert soc.min() >= 0.1 * 40e3 - 1e-3 and soc.max() <= 0.9 * 40e3 + 1e-3
            bal = ds.grid_import_kw + ds.turbine_p_kw + ds.battery_p_kw + ds.curtailed_kw
            np.testing.assert_allclose(bal, 90e3, rtol=1e-7)

    check()
