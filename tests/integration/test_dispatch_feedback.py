"""Dispatch solutions fed back through the simulator respect every limit there (issue 4).

colossus-1, four days hourly, two turbines allowed, a 9 MW/h ramp limit on grid import and two
curtailment events (50 MW for 6 h, 55 MW for 4 h): the optimiser's plan then runs the grid at the cap and
at the ramp limit. The plan is made at the bus (`dispatch_inputs_at_bus`: the bus demand, the feed cap
carried through the substations' losses); `dispatch_feedback` runs it through the simulator, which meters
the grid at the utility feed (bus power + substation losses) and checks every limit in its own terms.

Tolerance: the bus formulation is exact (the cap at the bus is the feed cap solved through the loss
curve; the ramp is divided by 1 + the largest loss slope, an upper bound for convex losses), so what is left
is floating point and the solver's feasibility tolerance: limits must hold within 1 W (1e-6 MW), well inside
the 1 kW the CLI reports against. The facility-level inputs (`dispatch_inputs`) are shown to miss by
hundreds of kW at the bus, which is why the cross-check needs the bus plan.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import twin
from optimizers.adapters import dispatch_feedback, dispatch_inputs, dispatch_inputs_at_bus
from optimizers.dispatch import solve_dispatch
from twin.errors import InputError
from twin.schema.scenario import scenario_from_dict
from twin.sim.dispatch_rules import LIMITS
from twin.sim.engine import check_limits

pytestmark = pytest.mark.integration

STRICT_KW = 1e-3  # 1 W
CAP1_KW, CAP2_KW = 50_000.0, 55_000.0
RAMP_KW_MIN = 150.0  # 9 MW per hourly step
SCEN = {
    "name": "dispatch-feedback", "site": "colossus-1", "hours": 96, "step": "1h", "start": "2025-07-10T00:00",
    "seed": 3, "initial_state": {"battery_soc_pu": 0.5},
    "limits": {"grid_ramp_max_kw_min": RAMP_KW_MIN, "turbines_max": 2},
    "events": [{"kind": "curtailment", "start_h": 30, "hours": 6, "grid_import_max_kw": CAP1_KW},
               {"kind": "curtailment", "start_h": 60, "hours": 4, "grid_import_max_kw": CAP2_KW}],
}
CURTAILED = np.r_[30:36, 60:64]


@pytest.fixture(scope="module")
def run():
    sc = scenario_from_dict(SCEN)
    ds_sim = twin.simulate(None, sc)
    inp = dispatch_inputs_at_bus(sc, ds_sim)
    plan = solve_dispatch(inp)
    fb = dispatch_feedback(sc, ds_sim, plan)
    return sc, ds_sim, inp, plan, fb


def _site_battery():
    from twin.schema.components import Battery
    from twin.sim.engine import site_layout

    b = [c for c in site_layout("colossus-1").site.components if isinstance(c, Battery)][0]
    return b.p_max_kw, b.e_max_kwh, float(np.sqrt(b.efficiency_roundtrip_pu)), b.soc_min_pu, b.soc_max_pu


def _grid(ds):
    feed = ds.p_source_kw.sel(source="grid").values
    return feed, feed - ds.p_loss_upstream_kw.values  # at the utility feed, at the bus


def test_plan_respects_every_limit_in_the_simulator(run):
    sc, ds_sim, inp, plan, fb = run
    lim = check_limits(fb)
    print("\nlimit violations in the simulator (max):", {k: f"{v:.3g}" for k, v in lim.items()})
    assert set(lim) == set(LIMITS)
    assert all(v <= STRICT_KW for v in lim.values()), lim
    assert fb.attrs["feedback_limits_ok"] == 1 and fb.attrs["dispatch_source"] == "schedule"
    feed, bus = _grid(fb)
    # the limits bind, so the check means something: the cap at the feed during both curtailments ...
    cap = fb.grid_import_max_kw.values
    np.testing.assert_allclose(cap[30:36], CAP1_KW)
    np.testing.assert_allclose(cap[60:64], CAP2_KW)
    assert np.abs(feed[30:36] - CAP1_KW).min() <= STRICT_KW and np.abs(feed[60:64] - CAP2_KW).min() <= STRICT_KW
    # ... and the ramp limit at the feed somewhere (within the loss slope's margin)
    ramp = RAMP_KW_MIN * 60.0
    assert np.abs(np.diff(feed)).max() >= ramp / (1.0 + fb.attrs["grid_loss_slope_max_pu"]) - STRICT_KW
    # the cap at the bus solves the feed cap through the substations' losses: cap_bus + loss(cap_bus) = cap
    cap_bus = fb.grid_import_max_bus_kw.values[CURTAILED]
    assert np.all(cap_bus < cap[CURTAILED]) and np.all(cap[CURTAILED] - cap_bus < 0.01 * cap[CURTAILED])
    # the schedule is what the simulator ran
    np.testing.assert_allclose(fb.p_source_kw.sel(source="gas_turbine").values, plan.turbine_p_kw.values, atol=1e-9)
    np.testing.assert_allclose(fb.p_source_kw.sel(source="battery").values, plan.battery_p_kw.values, atol=1e-9)
    np.testing.assert_array_equal(fb.turbines_online.values, plan.turbines_online.values)
    # the planned grid is the simulated grid at the bus (same bus demand: dispatch does not change it)
    np.testing.assert_allclose(fb.p_bus_kw.values, ds_sim.p_bus_kw.values, rtol=1e-12)
    np.testing.assert_allclose(bus, plan.grid_import_kw.values, atol=1e-6)
    assert plan.turbines_online.values.max() == 2 and plan.curtailed_kw.values.max() == 0


def test_power_balance_at_every_step(run):
    *_, plan, fb = run
    feed, bus = _grid(fb)
    gt = fb.p_source_kw.sel(source="gas_turbine").values
    batt = fb.p_source_kw.sel(source="battery").values
    un = fb.p_unserved_kw.values
    np.testing.assert_allclose(bus + gt + batt + un, fb.p_bus_kw.values, rtol=1e-12, atol=1e-6)
    np.testing.assert_allclose(feed + gt + batt, fb.p_facility_kw.values, rtol=1e-12, atol=1e-6)
    parts = fb.p_it_kw.values + fb.p_loss_kw.values + fb.p_cooling_kw.values - un
    np.testing.assert_allclose(fb.p_facility_kw.values, parts, rtol=1e-9, atol=1e-6)
    assert (fb.p_loss_upstream_kw.values > 0).all()  # the substations' losses are in the metered import


def test_soc_matches_the_plan(run):
    *_, plan, fb = run
    _, e_max, eta, smin, smax = _site_battery()
    ch, dis = plan.battery_charge_kw.values, plan.battery_discharge_kw.values
    # the simulator applies net power: simultaneous charge and discharge in the plan would lose
    # min(ch, dis) * (1/eta - eta) per hour more in the plan than in the simulator; otherwise identical models
    tol = np.cumsum(np.minimum(ch, dis) * (1 / eta - eta)) + 1e-9 * e_max
    diff = fb.battery_soc_kwh.values - plan.battery_soc_kwh.values
    print(f"\nSOC simulator - plan: max |diff| {np.abs(diff).max():.3g} kWh (e_max {e_max:,.0f} kWh)")
    assert np.all(np.abs(diff) <= tol)
    # by hand from the start: 50 % of the energy, discharge / eta, charge * eta
    b = plan.battery_p_kw.values
    soc = 0.5 * e_max - np.cumsum(np.where(b > 0, b / eta, b * eta))
    np.testing.assert_allclose(fb.battery_soc_kwh.values, soc, rtol=1e-12)
    assert soc.min() >= smin * e_max - STRICT_KW and soc.max() <= smax * e_max + STRICT_KW
    assert np.abs(b[CURTAILED]).max() > 1000  # the battery carries the curtailments


def test_facility_level_plan_misses_at_the_bus(run):
    """The loss gap the bus plan closes: with the facility demand of the rule-based run as load, the planned
    grid differs from what the simulator meters by the change of the substations' losses."""
    sc, ds_sim, _, _, _ = run
    plan_f = solve_dispatch(dispatch_inputs(sc, ds_sim))
    fb_f = dispatch_feedback(sc, ds_sim, plan_f)
    print(f"\nfacility-level plan: grid at the bus off by {fb_f.attrs['feedback_grid_bus_max_diff_kw']:.1f} kW, "
          f"worst limit {fb_f.attrs['feedback_worst_limit']} {fb_f.attrs['feedback_worst_violation']:.3g}")
    assert fb_f.attrs["feedback_grid_bus_max_diff_kw"] > 50.0


def test_broken_schedule_reports_the_violations(run):
    sc, ds_sim, _, plan, fb = run
    feed, _ = _grid(fb)
    _, _, eta, _, _ = _site_battery()
    slope = fb.attrs["grid_loss_slope_max_pu"]
    b = plan.battery_p_kw.values
    # the curtailment hour where the plan sits on the cap and discharges most
    on_cap = CURTAILED[np.abs(feed[CURTAILED] - fb.grid_import_max_kw.values[CURTAILED]) <= STRICT_KW]
    t = int(on_cap[np.argmax(b[on_cap])])
    assert b[t] > 5000.0
    bad = plan.copy(deep=True)
    bad["battery_p_kw"].values[t] -= 5000.0  # 5 MW less discharge: the grid must take it
    fb_bad = dispatch_feedback(sc, ds_sim, bad)
    v = fb_bad.limit_violation.sel(limit="grid_import_max_kw").values
    # 5 MW more at the bus, plus the substations' incremental losses on it (between 0 and the largest slope)
    assert 5000.0 <= v[t] <= 5000.0 * (1.0 + slope) + STRICT_KW
    feed_bad, _ = _grid(fb_bad)
    assert v[t] == pytest.approx(feed_bad[t] - fb.grid_import_max_kw.values[t], abs=1e-9)
    assert np.delete(v, t).max() <= STRICT_KW
    assert check_limits(fb_bad)["grid_import_max_kw"] == v[t] and fb_bad.attrs["feedback_limits_ok"] == 0
    # the battery kept 5 MWh / eta more from step t on
    d_soc = fb_bad.battery_soc_kwh.values - fb.battery_soc_kwh.values
    np.testing.assert_allclose(d_soc[:t], 0.0, atol=1e-6)
    np.testing.assert_allclose(d_soc[t:], 5000.0 / eta, rtol=1e-9)
    print(f"\n5 MW less discharge at {str(plan.time.values[t])[:16]}: grid cap exceeded by {v[t]:.3f} kW "
          f"(slope bound {5000 * (1 + slope):.3f} kW)")


def test_broken_turbines_and_battery_reported(run):
    sc, ds_sim, _, plan, fb = run
    p_max, *_ = _site_battery()
    gt = plan.turbine_p_kw.values
    t_gt = int(np.argmax(gt))  # two units at full output: 33 MW
    assert gt[t_gt] == pytest.approx(2 * 16500.0)
    bad = plan.copy(deep=True)
    bad["turbines_online"].values[t_gt] = 5.0  # 3 above the 2 allowed; 5 x 16.5 MW x 0.5 min load > 33 MW
    t_b = (t_gt + 7) % plan.sizes["time"]
    bad["battery_p_kw"].values[t_b] = -(p_max + 2500.0)  # charging 2.5 MW above the rating
    fb_bad = dispatch_feedback(sc, ds_sim, bad)
    lv = fb_bad.limit_violation
    assert float(lv.sel(limit="turbines_online")[t_gt]) == pytest.approx(3.0)
    assert float(lv.sel(limit="turbine_output_min_kw")[t_gt]) == pytest.approx(5 * 16500 * 0.5 - gt[t_gt])
    assert float(lv.sel(limit="battery_power_kw")[t_b]) == pytest.approx(2500.0)
    # charging at 152.5 MW raises the import far above the 150 MW feed (and the ramp limit)
    assert float(lv.sel(limit="grid_import_max_kw")[t_b]) > 0 and float(lv.sel(limit="grid_ramp_kw")[t_b]) > 0
    lim = check_limits(fb_bad)
    assert lim["turbines_online"] == pytest.approx(3.0) and lim["battery_power_kw"] == pytest.approx(2500.0)
    assert lim["unserved_kw"] == 0.0 and lim["grid_export_kw"] == 0.0


def test_hourly_schedule_held_on_15_minute_steps():
    """An hourly schedule run at 15 min: each hour's values held over its four steps, SOC by hand."""
    sc = scenario_from_dict({"site": "colossus-1", "hours": 4, "step": "15min", "start": "2025-07-10T00:00",
                             "seed": 3, "initial_state": {"battery_soc_pu": 0.5}})
    time = np.array(["2025-07-10T00:00", "2025-07-10T01:00", "2025-07-10T02:00", "2025-07-10T03:00"],
                    dtype="datetime64[ns]")
    units = np.array([1.0, 2.0, 2.0, 0.0])
    gt = np.array([12000.0, 30000.0, 20000.0, 0.0])
    b = np.array([5000.0, -8000.0, 0.0, 10000.0])
    sched = xr.Dataset({"turbines_online": ("time", units), "turbine_p_kw": ("time", gt),
                        "battery_p_kw": ("time", b)}, coords={"time": time})
    ds = twin.simulate(None, sc, dispatch=sched)
    np.testing.assert_allclose(ds.p_source_kw.sel(source="gas_turbine").values, np.repeat(gt, 4))
    np.testing.assert_allclose(ds.p_source_kw.sel(source="battery").values, np.repeat(b, 4))
    np.testing.assert_allclose(ds.turbines_online.values, np.repeat(units, 4))
    _, e_max, eta, _, _ = _site_battery()
    soc_h = 0.5 * e_max - np.cumsum(np.where(b > 0, b / eta, b * eta))  # end of each hour
    np.testing.assert_allclose(ds.battery_soc_kwh.values[3::4], soc_h, rtol=1e-12)
    lim = check_limits(ds)
    # hour 2: 2 units at 20 MW, above 2 x 8.25 MW minimum; every limit holds with these values
    assert all(v == 0.0 for v in lim.values()), lim
    bus = ds.p_source_kw.sel(source="grid").values - ds.p_loss_upstream_kw.values
    np.testing.assert_allclose(bus + np.repeat(gt + b, 4), ds.p_bus_kw.values, rtol=1e-12)
    # a schedule that stops early is refused, naming the span
    with pytest.raises(InputError, match="expected the simulated span"):
        twin.simulate(None, sc, dispatch=sched.isel(time=slice(0, 3)))
    with pytest.raises(InputError, match="battery_p_kw"):
        twin.simulate(None, sc, dispatch=sched.drop_vars("battery_p_kw"))
    # a rule-based run has no schedule to check
    with pytest.raises(InputError, match="limit_violation"):
        check_limits(twin.simulate(None, sc))


def test_cli_prints_the_cross_check(tmp_path):
    import yaml

    from twin.cli import app

    path = tmp_path / "feedback.yaml"
    path.write_text(yaml.safe_dump(SCEN, sort_keys=False))
    res = CliRunner().invoke(app, ["optimize", "dispatch", str(path), "--no-save"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    line = next(s for s in res.output.splitlines() if "limits respected" in s)
    assert line.rstrip(" │").endswith("yes"), line
    assert "worst violation" in res.output and "none above 1 kW" in res.output


def test_sub_hourly_run_planned_on_its_own_steps():
    """At 15 min the bus demand swings with the training job's checkpoints within the hour: a plan on the
    simulation's steps holds every limit, an hourly plan (held over the hour) leaves the swings to the grid."""
    sc = scenario_from_dict({**SCEN, "hours": 40, "step": "15min", "events": SCEN["events"][:1]})
    ds_sim = twin.simulate(None, sc)
    inp = dispatch_inputs_at_bus(sc, ds_sim)
    assert inp.n == 160 and inp.dt_h == 0.25
    fb = dispatch_feedback(sc, ds_sim, solve_dispatch(inp))
    lim = check_limits(fb)
    assert all(v <= STRICT_KW for v in lim.values()), lim
    assert fb.attrs["feedback_soc_max_diff_kwh"] <= 1e-6
    hourly_plan = solve_dispatch(dispatch_inputs_at_bus(sc, ds_sim, hourly_steps=True))
    fb_h = dispatch_feedback(sc, ds_sim, hourly_plan)
    step_swing = np.abs(np.diff(ds_sim.p_bus_kw.values)).max()
    print(f"\n15 min: largest bus step {step_swing / 1000:.1f} MW; hourly plan: worst {fb_h.attrs['feedback_worst_limit']} "
          f"{fb_h.attrs['feedback_worst_violation']:.0f}")
    assert step_swing > 10 * RAMP_KW_MIN * 15  # the swings are far beyond a 15-min ramp step
    assert fb_h.attrs["feedback_limits_ok"] == 0 and check_limits(fb_h)["grid_ramp_kw"] > 1000.0
    # the held hourly schedule: every 15-min step of an hour runs the hour's turbine output
    np.testing.assert_allclose(fb_h.p_source_kw.sel(source="gas_turbine").values,
                               np.repeat(hourly_plan.turbine_p_kw.values, 4), atol=1e-9)
