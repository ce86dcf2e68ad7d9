"""Cooling setpoints on 3 hours x 3 candidate setpoints, checked against full enumeration of setpoints and
chiller staging; COP by hand; infeasibility explained; the schedule fed back through the simulator."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import yaml

from optimizers.cooling import (
    CoolingInputs,
    CoolingOptions,
    coefficients,
    cross_check_cooling,
    fan_kw,
    optimize_cooling,
    plant_groups,
)
from twin.errors import InfeasibleError, InputError
from twin.layout import expand
from twin.paths import sites_dir
from twin.site import load_site

pytestmark = pytest.mark.unit

CANDS = (18.0, 24.0, 30.0)


@pytest.fixture(scope="module")
def chiller_site(tmp_path_factory):
    """tiny with 24 GPU racks on one loop cooled by 3 air-cooled 1.5 MW chillers."""
    raw = yaml.safe_load((sites_dir() / "tiny.yaml").read_text())
    raw["name"] = "tiny-chillers"
    raw["components"] = [c for c in raw["components"] if c["id"] != "dry"]
    loop = next(c for c in raw["components"] if c["id"] == "loop")
    loop["cooled_by"] = "chillers"
    loop["q_max_kw"] = 3000
    raw["components"].append({"id": "chillers", "kind": "chiller", "type": "air-cooled-chiller-1500kw", "count": 3,
                              "fed_by": "swgr"})
    raw["components"][0]["p_unit_max_kw"] = 5000
    raw["halls"][0]["racks"] = [{"type": "gpu-rack-hgx-h100-lc", "count": 24}]
    raw["halls"][0]["racks_per_row"] = 12
    p = tmp_path_factory.mktemp("site") / "tiny-chillers.yaml"
    p.write_text(yaml.safe_dump(raw))
    return expand(load_site(p))


def inputs(L, load_pu=(0.6, 0.9, 0.9), t_dry=(10.0, 34.0, 36.0), price=(0.05, 0.12, 0.12), **opt):
    T = 3
    time = np.datetime64("2025-07-15T12", "h") + np.arange(T).astype("timedelta64[h]")
    p = np.array(load_pu)[:, None] * L.racks.p_max_kw[None, :]
    ql, qa = 0.8 * p, 0.2 * p
    td = np.array(t_dry)
    o = dict(candidates_c=CANDS, t_fixed_c=24.0, ramp_k_per_h=6.0, start_cost_usd=20.0, time_limit_s=30, rel_gap=0.0)
    o.update(opt)
    return CoolingInputs(L, time, ql, qa, td, td - 8.0, np.array(price), options=CoolingOptions(**o))


def brute_force(inp, allowed=None):
    """Every setpoint sequence (3^3) and chiller count sequence (4^3), the same costs and limits."""
    g = plant_groups(inp.layout)
    co = coefficients(inp, g)
    opt = inp.options
    T, K = co.q_kw.shape[1], len(co.T_k)
    price = np.asarray(inp.price_usd_kwh, float)
    qu, pf, aux = co.q_unit_kw[0], co.p_fan_unit_kw[0], co.p_aux_unit_kw[0]
    best = (np.inf, None, None)
    ks = [k for k in range(K) if allowed is None or allowed[k]]
    for kseq in itertools.product(ks, repeat=T):
        Tseq = co.T_k[list(kseq)]
        if np.any(np.abs(np.diff(Tseq)) > opt.ramp_k_per_h + 1e-9):
            continue
        if np.any(Tseq + co.cdu_rise_k[0] > co.t_cdu_max_c[0] + 1e-9):
            continue
        if opt.t_gpu_inlet_max_c is not None and np.any(Tseq + co.cdu_rise_k[0] > opt.t_gpu_inlet_max_c + 1e-9):
            continue
        for nseq in itertools.product(range(4), repeat=T):
            n = np.array(nseq, float)
            staged = co.q_staged_kw[0, np.arange(T), list(kseq)]
            if np.any(staged > n * qu + 1e-6) or np.any(opt.plr_min_pu * qu * n > staged + 1e-6):
                continue
            e = (co.p_plant_kw[0, np.arange(T), list(kseq)] + co.p_it_delta_kw[0, np.arange(T), list(kseq)]
                 + n * aux + fan_kw(pf, co.q_fan_kw[0], qu, n))
            starts = np.maximum(np.diff(n), 0).sum()
            cost = float((price * e).sum() + opt.water_usd_m3 * co.water_m3_h[0, np.arange(T), list(kseq)].sum()
                         + opt.start_cost_usd * starts)
            if cost < best[0] - 1e-9:
                best = (cost, Tseq, n)
    return best


def test_three_hours_three_setpoints_match_enumeration(chiller_site):
    inp = inputs(chiller_site)
    ds = optimize_cooling(inp)
    cost, Tseq, n = brute_force(inp)
    assert ds.attrs["cost_total_usd"] == pytest.approx(cost, rel=1e-9, abs=1e-9)
    assert ds["t_supply_c"].dims == ("time", "plant")
    assert ds["t_supply_c"].sel(plant="chillers").values == pytest.approx(Tseq)
    assert ds["chillers_on"].sel(plant="chillers").values == pytest.approx(n)
    # the fixed-setpoint baseline is the enumeration restricted to 24 C, and the saving is the difference
    g = plant_groups(chiller_site)
    co = coefficients(inp, g)
    cost_fixed, T_fixed, _ = brute_force(inp, allowed=np.isclose(co.T_k, 24.0))
    assert (T_fixed == 24.0).all()
    assert ds.attrs["cost_fixed_usd"] == pytest.approx(cost_fixed)
    assert ds.attrs["cost_saved_usd"] == pytest.approx(cost_fixed - cost)
    assert ds.attrs["cost_saved_usd"] > 0


def test_ramp_limit_changes_the_schedule(chiller_site):
    # at 12 K/h the best schedule jumps 18 -> 30 C after the cool first hour; 6 K/h forbids that jump
    for ramp_k_per_h in (12.0, 6.0):
        inp = inputs(chiller_site, ramp_k_per_h=ramp_k_per_h)
        cost, Tseq, n = brute_force(inp)
        ds = optimize_cooling(inp)
        assert ds.attrs["cost_total_usd"] == pytest.approx(cost, rel=1e-9)
        assert ds["t_supply_c"].sel(plant="chillers").values == pytest.approx(Tseq)
        assert ds["chillers_on"].sel(plant="chillers").values == pytest.approx(n)
        assert np.abs(np.diff(Tseq)).max() <= ramp_k_per_h
        if ramp_k_per_h == 12.0:
            free_cost, free_T = cost, Tseq
    assert np.abs(np.diff(free_T)).max() > 6.0
    assert cost > free_cost + 1e-6


def test_cop_by_hand(chiller_site):
    inp = inputs(chiller_site)
    co = coefficients(inp, plant_groups(chiller_site))
    m = chiller_site.equip.model[chiller_site.index["chillers"]]
    # hour 1 (34 C dry bulb), candidate 24 C: lift = 34 + approach - 24; rated lift 35 + approach - 6.7 (catalog)
    k = list(co.T_k).index(24.0)
    lift, lift_rated = 34 + m.approach_condenser_k - 24, m.t_condenser_rated_c + m.approach_condenser_k - m.t_supply_rated_c
    cop = m.cop_rated * (24 + 273.15) / (m.t_supply_rated_c + 273.15) * lift_rated / max(lift, 10.0)
    assert co.cop[0, 1, k] == pytest.approx(cop)
    # free cooling: return 34 C, outdoor + approach >= 34 C -> none; compressor power = heat / COP
    assert 34 + m.free_cooling_approach_k >= 34
    assert co.f_free[0, 1, k] == 0.0
    assert co.p_plant_kw[0, 1, k] == pytest.approx(co.q_kw[0, 1] / cop)
    # hour 0 (10 C): at 18 C supply the return is 28 C, the coil reaches 10 + approach <= 18 C -> f_free = 1
    assert 10 + m.free_cooling_approach_k <= 18
    assert co.f_free[0, 0, 0] == 1.0 and co.p_plant_kw[0, 0, 0] == 0.0


def test_condenser_fans_make_staging_a_trade_off(chiller_site):
    inp = inputs(chiller_site)
    ds = optimize_cooling(inp)
    co = coefficients(inp, plant_groups(chiller_site))
    q = co.q_fan_kw[0, 1]
    need = int(np.ceil(q / 1500))
    m = chiller_site.equip.model[chiller_site.index["chillers"]]
    costs = {n: fan_kw(m.p_fan_kw, q, m.q_unit_max_kw, n) + n * 0.01 * m.q_unit_max_kw for n in range(need, 4)}
    assert len(set(np.round(list(costs.values()), 6))) == len(costs)  # no tie
    assert int(ds["chillers_on"].sel(plant="chillers").values[1]) == min(costs, key=costs.get)


def test_gpu_inlet_limit_below_reach_is_explained(chiller_site):
    inp = inputs(chiller_site, t_gpu_inlet_max_c=19.0)
    co = coefficients(inp, plant_groups(chiller_site))
    worst = 18.0 + co.cdu_rise_k[0].max() - 19.0
    with pytest.raises(InfeasibleError) as e:
        optimize_cooling(inp)
    msg = str(e.value)
    assert "GPU inlet limit 19.0 C" in msg and f"by up to {worst:.2f} K" in msg


def test_schedule_fed_back_through_the_simulator(chiller_site):
    inp = inputs(chiller_site)
    ds = optimize_cooling(inp)
    cc = cross_check_cooling(inp, ds)
    assert cc["ok"] and cc["optimised"]["q_unmet_kwh"] == 0.0 and cc["optimised"]["cdu_over_limit_k"] < 0
    # compressor energy agrees with the simulator's at the same setpoints (the simulator's loop heat adds pumps)
    from optimizers.cooling import setpoints_for_simulator
    from twin.sim.cooling import simulate_cooling

    r = simulate_cooling(chiller_site, inp.q_liquid_kw, inp.q_air_kw, inp.t_dry_c, inp.t_wet_c, 3600.0,
                         setpoints=setpoints_for_simulator(ds, chiller_site))
    co = coefficients(inp, plant_groups(chiller_site))
    k = [list(co.T_k).index(t) for t in ds["t_supply_c"].sel(plant="chillers").values]
    mine = co.p_plant_kw[0, np.arange(3), k].sum()
    assert r.p_compressor_kw.sum() == pytest.approx(mine, rel=0.05)


def test_bad_input(chiller_site):
    inp = inputs(chiller_site)
    with pytest.raises(InputError):
        optimize_cooling(CoolingInputs(**{**inp.__dict__, "t_dry_c": np.zeros(2)}))
    with pytest.raises(InputError):
        optimize_cooling(CoolingInputs(**{**inp.__dict__, "price_usd_kwh": -1.0}))
