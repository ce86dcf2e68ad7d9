"""A what-if with equipment outages: the dispatch plan sees them and the simulator confirms it.

colossus-1, 36 h hourly, at most four turbines (limits.turbines_max). The what-if adds (twin.whatif text form):
13 of the 15 turbines out from 8 h for 10 h (two of the four allowed remain), every Megapack out over the
same hours, an 85 MW utility curtailment from 10 h for 6 h, and one of the two 90 MVA substation
transformers out from 24 h for 4 h. The bus demand is 88-118 MW in the curtailment, so the two turbines
left must make up to ~33 MW of their 33 MW (2 x 16.5 MW) with no battery: the plan is tight by hand.
`dispatch_inputs_at_bus` fills the availability from the events; `dispatch_feedback` re-simulates the plan
on the same scenario (the simulator applies the same outages) and checks every limit in its own terms.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import twin
from optimizers.adapters import (
    availability_on_steps,
    dispatch_feedback,
    dispatch_inputs,
    dispatch_inputs_at_bus,
    layout_of,
)
from optimizers.dispatch import solve_dispatch
from twin.schema.scenario import scenario_from_dict
from twin.sim.engine import check_limits
from twin.whatif import case_scenario, parse_event

pytestmark = pytest.mark.integration

STRICT_KW = 1e-3  # 1 W, as tests/integration/test_dispatch_feedback.py
BASE = {"name": "availability", "site": "colossus-1", "hours": 36, "step": "1h", "start": "2025-07-10T00:00",
        "seed": 3, "initial_state": {"battery_soc_pu": 0.5}, "limits": {"turbines_max": 4}}
EVENTS = ["outage:gt/13@8h+10h", "outage:megapack@8h+10h", "curtailment:85MW@10h+6h", "outage:sub63/1@24h+4h"]
OUT = np.r_[8:18]  # turbines and battery out
CURT = np.r_[10:16]  # curtailment
TX_OUT = np.r_[24:28]  # one transformer out


@pytest.fixture(scope="module")
def run():
    sc = case_scenario(scenario_from_dict(BASE), [parse_event(e) for e in EVENTS])
    ds_sim = twin.simulate(None, sc)
    inp = dispatch_inputs_at_bus(sc, ds_sim)
    plan = solve_dispatch(inp)
    fb = dispatch_feedback(sc, ds_sim, plan)
    return sc, ds_sim, inp, plan, fb


def test_inputs_carry_the_outages_step_by_step(run):
    sc, ds_sim, inp, plan, fb = run
    units = np.full(36, 4)
    units[OUT] = 2  # 15 - 13 in service, under the cap of 4
    np.testing.assert_array_equal(inp.turbine_units_available, units)
    share = np.ones(36)
    share[OUT] = 0.0
    np.testing.assert_array_equal(inp.battery_p_available_pu, share)
    np.testing.assert_array_equal(inp.battery_e_available_pu, share)
    # the curtailment and the transformer outage are in the grid cap (at the bus: the feed cap less the losses)
    cap = inp.arr(inp.grid_import_max_kw)
    assert np.all(cap[CURT] <= 85e3) and np.all(cap[CURT] > 84e3)
    assert np.all(cap[TX_OUT] < 95e3) and np.all(cap[np.r_[0:8, 18:24, 28:36]] > 140e3)
    # the facility-level inputs take the simulator's feed cap, which holds the transformer outage too
    fac = dispatch_inputs(sc, ds_sim)
    np.testing.assert_allclose(fac.grid_import_max_kw[TX_OUT], ds_sim.grid_import_max_kw.values[TX_OUT])
    assert np.all(fac.grid_import_max_kw[TX_OUT] < 95e3)
    # elsewhere the scenario's own cap: the feed's 150 MW rating, 85 MW in the curtailment
    np.testing.assert_allclose(np.delete(fac.grid_import_max_kw, np.r_[CURT, TX_OUT]), 150e3)
    np.testing.assert_allclose(fac.grid_import_max_kw[CURT], 85e3)
    np.testing.assert_array_equal(fac.turbine_units_available, units)
    # no outage event: nothing is filled (the model is the one without availability)
    none = availability_on_steps(scenario_from_dict(BASE), layout_of(sc), np.arange(36) * 3600.0)
    assert all(v is None for v in none.values())


def test_plan_keeps_within_the_units_and_battery_in_service(run):
    sc, ds_sim, inp, plan, fb = run
    u = plan.turbines_online.values
    assert np.all(u <= inp.turbine_units_available + 1e-9)
    np.testing.assert_allclose(plan.battery_charge_kw.values[OUT], 0.0, atol=1e-6)
    np.testing.assert_allclose(plan.battery_discharge_kw.values[OUT], 0.0, atol=1e-6)
    # in the curtailment the two turbines left make at least what the capped grid cannot (bus demand - cap):
    # 32.9 MW at 11 h, more than one unit's 16.5 MW, so both run
    load = inp.load_kw[CURT]
    cap = inp.arr(inp.grid_import_max_kw)[CURT]
    need = load - cap
    assert need.max() > 16.5e3  # more than one unit: both must run at the peak
    np.testing.assert_allclose(plan.turbine_p_kw.values[CURT] + plan.grid_import_kw.values[CURT], load, rtol=1e-9)
    assert np.all(plan.turbine_p_kw.values[CURT] >= need - 1e-3)
    assert u[CURT][int(np.argmax(need))] == pytest.approx(2.0)
    assert float(plan.curtailed_kw.sum()) == 0.0


def test_feedback_through_the_simulator_respects_every_limit(run):
    sc, ds_sim, inp, plan, fb = run
    lim = check_limits(fb)
    assert all(v <= STRICT_KW for v in lim.values()), lim
    assert fb.attrs["feedback_limits_ok"] == 1
    np.testing.assert_allclose(fb.turbines_online.values, plan.turbines_online.values)
    np.testing.assert_allclose(fb.p_source_kw.sel(source="battery").values[OUT], 0.0, atol=1e-6)
    assert float(fb.p_unserved_kw.max()) == 0.0


def test_plan_blind_to_the_outages_breaks_limits_in_the_simulator(run):
    # the same inputs without availability (the gap this closes): the plan leans on equipment that is out
    sc, ds_sim, inp, plan, fb = run
    blind = replace(inp, turbine_units_available=None, battery_p_available_pu=None, battery_e_available_pu=None)
    plan_b = solve_dispatch(blind)
    lim = check_limits(dispatch_feedback(sc, ds_sim, plan_b))
    # fuel is cheaper than the grid here, so the blind plan runs all four units: two more than in service
    assert lim["turbines_online"] == pytest.approx(2.0), lim
    assert lim["battery_power_kw"] > 1e3 or lim["battery_soc_min_kwh"] > 1e3, lim
    assert plan_b.attrs["cost_total_usd"] < plan.attrs["cost_total_usd"]


def test_sub_hourly_outage_on_the_plan_steps_and_the_least_in_each_hour():
    # 15-minute steps, 13 turbines out from 1.25 h for 1.5 h (steps 5-10), half the Megapacks (78 of 156) from
    # 3.5 h for 0.25 h (step 14): the bus plan has them step by step; the hourly inputs the least of each hour.
    sc = case_scenario(scenario_from_dict({**BASE, "hours": 6, "step": "15min"}),
                       [parse_event("outage:gt/13@1.25h+1.5h"), parse_event("outage:megapack/78@3.5h+0.25h")])
    ds_sim = twin.simulate(None, sc)
    inp = dispatch_inputs_at_bus(sc, ds_sim)
    units = np.full(24, 4)
    units[5:11] = 2
    np.testing.assert_array_equal(inp.turbine_units_available, units)
    share = np.ones(24)
    share[14] = 0.5
    np.testing.assert_allclose(inp.battery_p_available_pu, share)
    hourly = dispatch_inputs(sc, ds_sim)
    np.testing.assert_array_equal(hourly.turbine_units_available, [4, 2, 2, 4, 4, 4])
    np.testing.assert_allclose(hourly.battery_e_available_pu, [1, 1, 1, 0.5, 1, 1])
    plan = solve_dispatch(inp)
    assert np.all(plan.turbines_online.values <= units + 1e-9)
    assert abs(float(plan.battery_p_kw.values[14])) <= 0.5 * inp.battery.p_max_kw + 1e-6
    fb = dispatch_feedback(sc, ds_sim, plan)
    lim = check_limits(fb)
    assert all(v <= STRICT_KW for v in lim.values()), lim
