"""Thermal and cooling (twin.sim.cooling): conservation, water balance, hand calculations, COP and free cooling
against the weather, outages, Colossus 1 water use against the published ~1 MGD, and speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from twin.layout import expand
from twin.schema.components import GRAVITY_M_S2, WATER_RHO_KG_M3
from twin.sim.cooling import simulate_cooling
from twin.site import load_site

pytestmark = pytest.mark.unit

CP = 4.186  # kJ/(kg K), the model's facility-water c_p
RHO = WATER_RHO_KG_M3

HALL = """
halls:
  - id: hall-1
    fed_by: swgr
    cooled_by: loop
    racks_per_row: 4
    distribution:
      - {kind: transformer, type: pad-3000kva-13.8kv-415v, count: 1}
      - {kind: busway, type: busway-1600a-415v, count: 2}
    racks:
      - {type: gpu-rack-hgx-h100-lc, count: 6}
      - {type: storage-rack-nvme, count: 2}
"""
HEAD = """
name: hand
description: "test site: one loop, 6 H100 racks and 2 storage racks"
source: "tests/unit/test_cooling.py"
confidence: assumed
location: {name: "Memphis, TN", lat_deg: 35.07, lon_deg: -89.98}
components:
  - {id: grid, kind: utility_feed, p_unit_max_kw: 3000, v_kv: 13.8}
  - {id: swgr, kind: switchgear, type: mv-swgr-13.8kv-3000a, fed_by: grid}
  - {id: loop, kind: facility_loop, t_supply_c: 24, dt_design_k: 10, q_max_kw: 1000, volume_m3: 5,
     pump_type: facility-pump-1000m3h, pump_count: 1, fed_by: swgr, cooled_by: %(loop_to)s}
"""
PLANTS = {
    "water": ("ch", """
  - {id: ch, kind: chiller, type: water-cooled-chiller-3500kw, q_unit_max_kw: 250, count: 4, fed_by: swgr, cooled_by: ct}
  - {id: ct, kind: cooling_tower, type: ct-cell-5000kw, q_unit_max_kw: 600, count: 2, fed_by: swgr}
"""),
    "air": ("ch", """
  - {id: ch, kind: chiller, type: air-cooled-chiller-1500kw, q_unit_max_kw: 250, count: 4, fed_by: swgr}
"""),
    "dry": ("dry", """
  - {id: dry, kind: dry_cooler, type: dry-cooler-1000kw, count: 1, fed_by: swgr}
"""),
}


def _layout(tmp_path, plant):
    to, comps = PLANTS[plant]
    p = tmp_path / f"hand-{plant}.yaml"
    p.write_text(HEAD % {"loop_to": to} + comps + HALL)
    return expand(load_site(p))


def _loads(layout, T, gpu_liq=60.0, gpu_air=15.0, other_air=15.0):
    gpu = layout.racks.role == 0
    ql = np.where(gpu, gpu_liq, 0.0)[None, :].repeat(T, 0)
    qa = np.where(gpu, gpu_air, other_air)[None, :].repeat(T, 0)
    return ql, qa


def _rack_side_by_hand(t_supply_c):
    """Hand calculation of the rack side of the hand site (6 GPU racks at 60 + 15 kW, 2 storage at 15 kW)."""
    cdu_load = 60.0 / 100.0  # supermicro-cdu-4u: 100 kW, 3 K approach, 9 m3/h, 1 kW pump
    p_cdu = 1.0 * cdu_load**3
    door_speed = 15.0 / 50.0  # active-rdhx-50kw: 0.8 kW fans
    p_door = 0.8 * door_speed**3
    air_design = 6 * 8 * 10.2 * (1 - 0.8)  # GPU racks have no door: hall air handlers, design air heat
    p_ahu = 0.02 * air_design * (6 * 15.0 / air_design) ** 3
    q_racks = 6 * (60 + 15) + 2 * 15 + 6 * p_cdu + 2 * p_door
    m = (q_racks + p_ahu) / (CP * 10.0)  # holds the 10 K design range (above the 30 % minimum flow)
    assert m > 0.3 * 1000 / (CP * 10)
    m_pump = 1000 * RHO / 3600  # facility-pump-1000m3h: 1,000 m3/h at 30 m, 80 %
    p_pump_rated = RHO * GRAVITY_M_S2 * (1000 / 3600) * 30 / 0.8 / 1000
    p_pump = p_pump_rated * (m / m_pump) ** 3
    q_loop = q_racks + p_ahu + p_pump
    t_return = t_supply_c + q_loop / (m * CP)
    return dict(p_cdu=p_cdu, p_door=p_door, p_ahu=p_ahu, p_pump=p_pump, q_loop=q_loop, m=m, t_return=t_return,
                t_cdu=t_supply_c + 3.0 * cdu_load, flow_cdu=9.0 * cdu_load, aux=6 * p_cdu + 2 * p_door)


# ----------------------------------------------------------------------------- hand calculations


def test_water_cooled_chiller_and_tower_match_hand_calculation(tmp_path):
    """One loop at 18 C supply, water-cooled chiller + tower, three fixed weathers at a fixed load:
    no free cooling / partial free cooling at the minimum lift / full free cooling. Everything by hand to 0.1 %."""
    lay = _layout(tmp_path, "water")
    t_wet = np.array([26.0, 20.0, 5.0])
    t_dry = np.array([33.0, 26.0, 8.0])
    ql, qa = _loads(lay, 3)
    res = simulate_cooling(lay, ql, qa, t_dry, t_wet, 3600.0, setpoints={"loop": 18.0})
    h = _rack_side_by_hand(18.0)
    q = h["q_loop"]
    cop_rated, ts_r, tc_r, app_c, app_fc = 6.1, 6.7, 29.4, 3.0, 2.0  # water-cooled-chiller-3500kw
    for n in range(3):
        t_cw = max(t_wet[n] + 4.0, 10.0)  # ct-cell: 4 K approach, condenser water floor 10 C
        f = min(max((h["t_return"] - (t_cw + app_fc)) / (h["t_return"] - 18.0), 0.0), 1.0)
        lift = max(t_cw + app_c - 18.0, 10.0)
        cop = cop_rated * (18 + 273.15) / (ts_r + 273.15) * (tc_r + app_c - ts_r) / lift
        p_comp = q * (1 - f) / cop
        q_tower = q + p_comp
        speed = max(min(q_tower / 1200.0 * 4.0 / (t_cw - t_wet[n]), 1.0), 0.2)
        p_tower = 2 * 75.0 * speed**3
        evap = 0.00085 * 1.8 * q_tower * 3600 / (RHO * CP)
        drift = 2e-5 * q_tower * 3600 / (RHO * CP * 5.6)
        blow = evap / (5.0 - 1.0) - drift  # solids leave with blowdown and drift: (B + D) = E / (cycles - 1)
        ch, ct = res.plant_ids.index("ch"), res.plant_ids.index("ct")
        got = {
            "q_loop": res.q_loop_kw[n, 0], "rejected": res.q_rejected_kw[n], "t_return": res.t_return_c[n, 0],
            "flow": res.flow_loop_m3_h[n, 0], "pump": res.p_pump_kw[n, 0], "ahu": res.p_ahu_kw[n, 0],
            "q_free": res.q_free_kw[n, ch], "p_comp": res.p_compressor_kw[n, ch], "p_tower": res.p_fan_kw[n, ct],
            "q_tower": res.q_plant_kw[n, ct], "t_cw": res.t_condenser_in_c[n, ch], "evap": res.evaporation_m3_h[n, ct],
            "water": res.water_m3_h[n], "aux": res.p_rack_aux_kw[n].sum(), "t_cdu": res.t_cdu_supply_c[n, 0],
            "flow_cdu": res.flow_cdu_m3_h[n, 0],
            "p_cooling": res.p_cooling_kw[n],
        }
        want = {
            "q_loop": q, "rejected": q, "t_return": h["t_return"], "flow": h["m"] * 3600 / RHO, "pump": h["p_pump"],
            "ahu": h["p_ahu"], "q_free": q * f, "p_comp": p_comp, "p_tower": p_tower, "q_tower": q_tower, "t_cw": t_cw,
            "evap": evap, "water": evap + blow + drift, "aux": h["aux"], "t_cdu": h["t_cdu"],
            "flow_cdu": h["flow_cdu"], "p_cooling": h["aux"] + h["p_ahu"] + h["p_pump"] + p_comp + p_tower,
        }
        if n == 0:
            assert f == 0.0 and lift > 10.0
            assert res.cop[n, ch] == pytest.approx(cop, rel=1e-3)
            assert res.units_on[n, ch] == math.ceil(q / 250.0)
        if n == 1:
            assert 0 < f < 1 and lift == 10.0
        if n == 2:
            assert f == 1.0 and p_comp == 0.0 and res.units_on[n, ch] == 0
        for k, v in want.items():
            assert got[k] == pytest.approx(v, rel=1e-3, abs=1e-9), (n, k)
        # consumers: loop (pumps + air handlers), chiller, tower
        cons = {lay.equip.ids[e]: res.p_consumer_kw[n, c] for c, e in enumerate(res.consumer_equip)}
        assert cons["ch"] == pytest.approx(p_comp, rel=1e-3, abs=1e-9)
        assert cons["ct"] == pytest.approx(p_tower, rel=1e-3)
        assert cons["loop"] == pytest.approx(h["p_pump"] + h["p_ahu"], rel=1e-3)


def test_dry_cooler_fan_affinity_and_heat_wave_supply_rise_by_hand(tmp_path):
    """Free cooling only: cold day fans slow down (P ~ speed^3); hot day the supply cannot be held and rises
    to dry bulb + approach x load; heat is still all rejected."""
    lay = _layout(tmp_path, "dry")
    ql, qa = _loads(lay, 2)
    for t_dry in (10.0, 30.0):
        res = simulate_cooling(lay, ql, qa, np.full(2, t_dry), np.full(2, t_dry - 5), 3600.0)
        h = _rack_side_by_hand(24.0)
        q = h["q_loop"]
        load = q / 1000.0  # dry-cooler-1000kw: 1 MW, 8 K approach, 25 kW fans
        if t_dry == 10.0:
            t_sup = 24.0
            speed = max(load * 8.0 / (24.0 - t_dry), 0.2)
            assert speed < 1
        else:
            t_sup = t_dry + 8.0 * load
            speed = 1.0
        assert res.t_supply_c[1, 0] == pytest.approx(t_sup, rel=1e-3)
        assert res.p_fan_kw[1, 0] == pytest.approx(25.0 * speed**3, rel=1e-3)
        assert res.q_rejected_kw[1] == pytest.approx(q, rel=1e-3)
        assert res.q_unmet_kw.max() == 0.0
        assert res.water_m3_h.max() == 0.0  # dry heat rejection uses no water
        assert res.t_cdu_supply_c[1, 0] == pytest.approx(t_sup + 1.8, rel=1e-3)


# ----------------------------------------------------------------------------- weather response


def test_cop_falls_and_compressor_power_rises_with_outdoor_temperature(tmp_path):
    lay = _layout(tmp_path, "air")
    t_dry = np.arange(31.0, 46.0, 1.0)  # above ~30 C the air-side economiser is off (t_dry + 4 > return)
    ql, qa = _loads(lay, len(t_dry))
    res = simulate_cooling(lay, ql, qa, t_dry, t_dry - 8, 3600.0)
    cop = res.cop[:, 0]
    assert np.all(np.diff(cop) < 0)
    assert np.all(np.diff(res.p_compressor_kw[:, 0]) > 0)
    assert np.all(res.q_free_kw[:, 0] == 0)
    # rating point: 35 C outdoor, 6.7 C supply -> compressor-only cop_rated 3.42 (3.1 with the condenser fans)
    res_r = simulate_cooling(lay, ql[:1], qa[:1], 35.0, 24.0, 3600.0, setpoints={"loop": 6.7})
    assert res_r.cop[0, 0] == pytest.approx(3.42, rel=1e-9)
    # water-cooled: COP falls with the wet bulb
    lay_w = _layout(tmp_path, "water")
    t_wet = np.arange(16.0, 29.0, 1.0)
    ql, qa = _loads(lay_w, len(t_wet))
    res_w = simulate_cooling(lay_w, ql, qa, t_wet + 6, t_wet, 3600.0, setpoints={"loop": 12.0})
    assert np.all(np.diff(res_w.cop[:, 0]) < 0)


def test_free_cooling_engages_below_the_threshold(tmp_path):
    """Air-cooled chiller with economiser (4 K approach), 24 C supply, ~34 C return: full free cooling at or
    below 20 C dry bulb, none at or above the return minus 4 K, linear blend between."""
    lay = _layout(tmp_path, "air")
    t_dry = np.array([0.0, 15.0, 20.0, 22.0, 25.0, 28.0, 30.5, 35.0])
    ql, qa = _loads(lay, len(t_dry))
    res = simulate_cooling(lay, ql, qa, t_dry, t_dry - 6, 3600.0)
    q = res.q_plant_kw[:, 0]
    frac = res.q_free_kw[:, 0] / q
    t_r = res.t_return_c[:, 0]
    want = np.clip((t_r - (t_dry + 4.0)) / (t_r - 24.0), 0, 1)
    np.testing.assert_allclose(frac, want, rtol=1e-9)
    assert np.allclose(frac[:3], 1.0, rtol=1e-12) and np.all(res.p_compressor_kw[:3, 0] < 1e-9)
    assert np.all((frac[3:6] > 0) & (frac[3:6] < 1))
    assert np.all(frac[6:] == 0.0)
    assert np.all(np.diff(res.p_compressor_kw[:, 0]) >= 0)
    # condenser fans still run for the free-cooling coil
    assert np.all(res.p_fan_kw[:, 0] > 0)


# ----------------------------------------------------------------------------- conservation


def _assert_heat_balance(res, dt):
    lhs = res.q_loop_kw
    rhs = res.q_rejected_loop_kw + res.q_stored_loop_kw
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-6)
    np.testing.assert_allclose(res.q_generated_kw, res.q_rejected_kw + res.q_stored_kw, rtol=1e-10, atol=1e-6)
    # stored heat integrates the storage term exactly
    e = np.cumsum(res.q_stored_loop_kw * dt[:, None], axis=0) / 3600.0
    np.testing.assert_allclose(e, res.e_stored_loop_kwh, rtol=1e-8, atol=1e-6)


@pytest.fixture(scope="module")
def colossus():
    return expand(load_site("colossus-1"))


def _colossus_heat(layout, gpu_kw_per_server=8.0, lf=0.8):
    """GPU racks at `gpu_kw_per_server` per server (liquid share lf), other racks at their typical load."""
    r = layout.racks
    typ = np.array([g.rack.p_it_max_kw * g.rack.p_it_typical_pu for g in layout.groups])[r.group]
    gpu = r.role == 0
    heat = np.where(gpu, r.n_nodes * gpu_kw_per_server, typ)
    return np.where(gpu, heat * lf, 0.0), np.where(gpu, heat * (1 - lf), heat)


def test_heat_balance_at_every_step_with_varying_load_steps_and_an_outage(colossus):
    rng = np.random.default_rng(3)
    T = 240
    ql0, qa0 = _colossus_heat(colossus)
    s = 0.2 + 0.8 * rng.random((T, 1))
    dt = rng.choice([0.1, 60.0, 900.0, 3600.0], T)
    t_dry = 20 + 15 * rng.random(T)
    t_wet = t_dry - 3 - 5 * rng.random(T)
    out = {"chillers-water": np.where((np.arange(T) > 50) & (np.arange(T) < 90), 20, 0), "fwl-1": 3}
    res = simulate_cooling(colossus, s * ql0, s * qa0, t_dry, t_wet, dt,
                           setpoints={"fwl-2": 20 + 8 * rng.random(T)}, outages=out)
    assert res.q_unmet_kw.max() > 0  # the outage bites
    _assert_heat_balance(res, dt)
    # rejected heat never exceeds what the equipment can take
    for k in range(len(res.plant_ids)):
        assert np.all(res.q_plant_kw[:, k] <= res.capacity_kw[:, k] * (1 + 1e-9) + 1e-6), res.plant_ids[k]


def test_loop_storage_smooths_sub_second_swings(colossus):
    """At 0.1 s steps a 1 Hz square-wave swing of the GPU racks barely reaches the plant (loop time constant is
    minutes), and the stored heat takes the difference."""
    T = 600
    ql0, qa0 = _colossus_heat(colossus)
    sq = np.where((np.arange(T) // 5) % 2 == 0, 1.0, 0.4)[:, None]
    dt = np.full(T, 0.1)
    res = simulate_cooling(colossus, sq * ql0, sq * qa0, 35.0, 25.0, dt)
    _assert_heat_balance(res, dt)
    swing_in = np.ptp(res.q_generated_kw[-10:])  # one 1 s period, late in the run
    swing_out = np.ptp(res.q_rejected_kw[-10:])
    print(f"\n0.1 s square wave: heat generated swings {swing_in / 1e3:.1f} MW, rejected {swing_out / 1e3:.3f} MW "
          f"within a period")
    assert swing_in > 30_000
    assert swing_out < 0.02 * swing_in


def test_water_is_evaporation_plus_blowdown_plus_drift_at_every_step(colossus):
    T = 48
    ql0, qa0 = _colossus_heat(colossus)
    s = np.linspace(0.3, 1.0, T)[:, None]
    t_wet = np.linspace(5, 27, T)
    res = simulate_cooling(colossus, s * ql0, s * qa0, t_wet + 7, t_wet, 3600.0)
    tw = res.plant_ids.index("towers")
    np.testing.assert_allclose(res.water_m3_h, res.evaporation_m3_h.sum(1) + res.blowdown_m3_h.sum(1)
                               + res.drift_m3_h.sum(1), rtol=1e-12)
    # dissolved solids: make-up x concentration = (blowdown + drift) x cycles x concentration
    np.testing.assert_allclose(res.blowdown_m3_h[:, tw] + res.drift_m3_h[:, tw], res.evaporation_m3_h[:, tw] / (5.0 - 1.0),
                               rtol=1e-12)
    np.testing.assert_allclose(res.water_m3_h, res.evaporation_m3_h[:, tw] * 5.0 / (5.0 - 1.0), rtol=1e-12)
    assert np.all(res.drift_m3_h[:, tw] > 0) and np.all(res.blowdown_m3_h[:, tw] > 0)
    np.testing.assert_allclose(res.evaporation_m3_h[:, tw], 0.00085 * 1.8 * 3600 / (RHO * CP) * res.q_plant_kw[:, tw],
                               rtol=1e-12)
    # the towers take the water-cooled chillers' heat plus their compressor work
    ch = res.plant_ids.index("chillers-water")
    np.testing.assert_allclose(res.q_plant_kw[:, tw], res.q_plant_kw[:, ch] + res.p_compressor_kw[:, ch], rtol=1e-12)
    assert np.all(res.water_m3_h > 0)


# ----------------------------------------------------------------------------- outages


def test_chiller_outage_raises_unmet_heat_and_supply_temperature_then_recovers(colossus):
    T = 24
    ql0, qa0 = _colossus_heat(colossus)
    ql, qa = np.repeat(ql0[None], T, 0), np.repeat(qa0[None], T, 0)
    out = np.zeros(T)
    out[4:8] = 12  # 12 of 30 water-cooled chillers lost for 4 hours
    base = simulate_cooling(colossus, ql, qa, 33.0, 25.0, 3600.0)
    res = simulate_cooling(colossus, ql, qa, 33.0, 25.0, 3600.0, outages={"chillers-water": out})
    water_loops = [res.loop_ids.index(x) for x in ("fwl-2", "fwl-3", "fwl-4")]
    air_loop = res.loop_ids.index("fwl-1")
    ch = res.plant_ids.index("chillers-water")
    assert base.q_unmet_kw.max() == 0 and np.all(base.t_supply_c == 24.0)
    cap = 18 * 3500.0
    demand = res.q_loop_kw[5, water_loops].sum()
    print(f"\nchiller outage: demand {demand / 1e3:.1f} MW, capacity left {cap / 1e3:.1f} MW, supply peaks at "
          f"{res.t_supply_c[:, water_loops].max():.1f} C")
    assert demand > cap
    np.testing.assert_allclose(res.q_plant_kw[4:8, ch], np.minimum(cap, res.capacity_kw[4:8, ch]), rtol=1e-9)
    np.testing.assert_allclose(res.q_unmet_kw[4:8], demand - res.q_plant_kw[4:8, ch], rtol=1e-6)
    rise = res.t_supply_c[:, water_loops[0]] - 24.0
    assert np.all(np.diff(rise[3:8]) > 0)  # climbs through the outage
    # by hand: backlog / heat capacity of the three loops (400 m3 each)
    backlog_kwh = ((demand - res.q_plant_kw[4:8, ch]) * 1.0).sum()
    assert rise[7] == pytest.approx(backlog_kwh * 3600 / (3 * 400 * RHO * CP), rel=1e-6)
    assert np.all(res.t_supply_c[:, air_loop] == 24.0)  # the air-cooled hall is not affected
    # recovery: plant flat out until the backlog is gone, then back at the setpoint
    assert res.q_plant_kw[8, ch] > demand
    assert np.all(res.t_supply_c[-4:, water_loops] == pytest.approx(24.0))
    assert res.e_unmet_loop_kwh[-1].sum() == 0
    # energy: what was not rejected during the outage was rejected after it
    dt = np.full(T, 3600.0)
    _assert_heat_balance(res, dt)
    assert res.q_rejected_kw.sum() == pytest.approx(base.q_rejected_kw.sum(), rel=1e-9)


def test_tower_outage_limits_the_chillers_it_serves(colossus):
    T = 3
    ql0, qa0 = _colossus_heat(colossus)
    ql, qa = np.repeat(ql0[None], T, 0), np.repeat(qa0[None], T, 0)
    res = simulate_cooling(colossus, ql, qa, 33.0, 25.0, 3600.0, outages={"towers": 12})
    ch, tw = res.plant_ids.index("chillers-water"), res.plant_ids.index("towers")
    assert res.q_unmet_kw.min() > 0
    np.testing.assert_allclose(res.q_plant_kw[:, tw], 13 * 5000.0, rtol=1e-9)  # 25 - 12 towers flat out
    assert np.all(res.q_plant_kw[:, ch] < 13 * 5000.0)


# ----------------------------------------------------------------------------- Colossus 1 water and speed


def test_colossus_summer_day_water_use_is_near_the_published_1_mgd(colossus):
    """~100 MW of heat (12,500 servers at 8 kW + non-GPU racks at typical load) on the Memphis synthesised typical
    year's most humid July day; published ~1 million US gal/day = 3,785 m3/day (colossus.md §4)."""
    from twin.weather import typical_year

    w = typical_year("memphis")
    jul = w.sel(time=w.time.dt.month == 7)
    day_wet = jul.t_wet_c.values.reshape(-1, 24).mean(1)
    d = int(np.argmax(day_wet))
    t_dry = jul.t_dry_c.values.reshape(-1, 24)[d]
    t_wet = jul.t_wet_c.values.reshape(-1, 24)[d]
    ql0, qa0 = _colossus_heat(colossus)
    ql, qa = np.repeat(ql0[None], 24, 0), np.repeat(qa0[None], 24, 0)
    res = simulate_cooling(colossus, ql, qa, t_dry, t_wet, 3600.0)
    water_m3 = res.water_m3_h.sum()
    heat_mw = res.q_generated_kw.mean() / 1e3
    published = 3785.0
    print(f"\nColossus 1, July day {d + 1} (wet bulb {t_wet.mean():.1f} C mean, dry bulb max {t_dry.max():.1f} C): "
          f"heat {heat_mw:.1f} MW, water {water_m3:,.0f} m3/day = {water_m3 / 3.785411784e-3:,.0f} US gal/day "
          f"({water_m3 / published:.2f} x published ~1 MGD); cooling power {res.p_cooling_kw.mean() / 1e3:.1f} MW "
          f"mean, {res.p_cooling_kw.max() / 1e3:.1f} MW peak")
    assert 95 < heat_mw < 115
    assert published / 1.5 <= water_m3 <= published * 1.5


def test_year_of_colossus_every_rack_runs_in_about_a_second(colossus):
    from twin.weather import typical_year

    w = typical_year("memphis")
    T = 8760
    ql0, qa0 = _colossus_heat(colossus)
    s = (0.7 + 0.3 * np.random.default_rng(0).random((T, 1))).astype(np.float32)
    ql, qa = s * ql0.astype(np.float32), s * qa0.astype(np.float32)
    simulate_cooling(colossus, ql[:24], qa[:24], 30.0, 20.0, 3600.0)
    best = math.inf
    for _ in range(2):
        t0 = time.perf_counter()
        res = simulate_cooling(colossus, ql, qa, w.t_dry_c.values, w.t_wet_c.values, 3600.0)
        best = min(best, time.perf_counter() - t0)
    print(f"\ncooling, 8760 h x {len(colossus.racks)} racks: {best:.2f} s; annual water "
          f"{res.water_m3_h.sum():,.0f} m3, cooling energy {res.p_cooling_kw.sum() / 1e3:,.0f} MWh")
    assert res.t_cdu_supply_c.dtype == np.float32 and res.t_cdu_supply_c.shape == (T, len(colossus.racks))
    assert best < 3.0  # target 1 s; slack for a loaded test machine


def test_dataset_carries_units_and_bad_input_names_the_argument(tmp_path):
    from twin.errors import InputError

    lay = _layout(tmp_path, "water")
    ql, qa = _loads(lay, 4)
    res = simulate_cooling(lay, ql, qa, 30.0, 22.0, 3600.0)
    time_ = np.datetime64("2025-07-01T00", "h") + np.arange(4).astype("timedelta64[h]")
    ds = res.to_dataset(time_, lay.racks.ids, [lay.equip.ids[e] for e in res.consumer_equip])
    assert ds.t_cdu_supply_c.dims == ("time", "rack") and ds.q_loop_kw.dims == ("time", "loop")
    assert ds.p_consumer_kw.sizes["consumer"] == len(lay.consumers) and ds.water_m3_h.dims == ("time",)
    assert all("units" in v.attrs and "long_name" in v.attrs for v in ds.data_vars.values())
    assert float(ds.t_cdu_max_c[0]) == 45.0
    with pytest.raises(InputError, match="q_air_kw"):
        simulate_cooling(lay, ql, -qa, 30.0, 22.0, 3600.0)
    with pytest.raises(InputError, match="setpoints.nope"):
        simulate_cooling(lay, ql, qa, 30.0, 22.0, 3600.0, setpoints={"nope": 20.0})
    with pytest.raises(InputError, match="outages.ghost"):
        simulate_cooling(lay, ql, qa, 30.0, 22.0, 3600.0, outages={"ghost": 1})
    with pytest.raises(InputError, match="t_dry_c"):
        simulate_cooling(lay, ql, qa, np.zeros(3), 22.0, 3600.0)


def test_without_rack_outputs_the_loops_and_plant_are_unchanged(colossus):
    T = 30
    ql0, qa0 = _colossus_heat(colossus)
    s = np.linspace(0.2, 1.0, T)[:, None]
    full = simulate_cooling(colossus, s * ql0, s * qa0, 30.0, 22.0, 60.0)
    lean = simulate_cooling(colossus, s * ql0, s * qa0, 30.0, 22.0, 60.0, rack_outputs=False)
    assert lean.t_cdu_supply_c is None and lean.p_rack_aux_kw is None
    for name in ("q_loop_kw", "t_supply_c", "p_consumer_kw", "p_cooling_kw", "water_m3_h"):
        np.testing.assert_allclose(getattr(lean, name), getattr(full, name), rtol=1e-12)
    np.testing.assert_allclose(full.p_rack_aux_loop_kw.sum(1), full.p_rack_aux_kw.sum(1, dtype=np.float64), rtol=1e-6)


def test_racks_off_add_neither_electricity_nor_heat(tmp_path):
    """Racks without power: their CDU pumps and door fans stop, so the loop heat falls by exactly their
    auxiliaries (their own heat is zero from the caller); a wrong shape names the argument."""
    from twin.errors import InputError

    lay = _layout(tmp_path, "water")
    ql, qa = _loads(lay, 2)
    off = np.zeros(ql.shape, bool)
    off[1, :2] = True  # two GPU racks dark in the second step
    ql[off] = qa[off] = 0.0
    on = simulate_cooling(lay, ql, qa, 30.0, 22.0, 3600.0)
    res = simulate_cooling(lay, ql, qa, 30.0, 22.0, 3600.0, racks_off=off)
    assert np.all(res.p_rack_aux_kw[off] == 0.0) and np.all(on.p_rack_aux_kw[off] > 0)
    np.testing.assert_array_equal(res.p_rack_aux_kw[~off], on.p_rack_aux_kw[~off])
    # 1 kW CDU pump at its 30 % minimum flow: 0.3^3 kW each
    dark = on.p_rack_aux_kw[off].sum(dtype=np.float64)
    assert dark == pytest.approx(2 * 0.3**3, rel=1e-6)
    assert res.p_rack_aux_loop_kw[1, 0] == pytest.approx(on.p_rack_aux_loop_kw[1, 0] - dark, rel=1e-6)
    np.testing.assert_allclose(res.q_loop_kw[0], on.q_loop_kw[0], rtol=1e-12)
    assert res.q_loop_kw[1, 0] < on.q_loop_kw[1, 0] - 0.9 * dark
    with pytest.raises(InputError, match="racks_off"):
        simulate_cooling(lay, ql, qa, 30.0, 22.0, 3600.0, racks_off=off[:1])
