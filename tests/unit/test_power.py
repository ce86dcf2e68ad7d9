"""Power chain pieces: stage loss models, PSU curve, level-by-level aggregation, stranding, placement, dispatch."""

from __future__ import annotations

import numpy as np
import pytest

from twin.schema.scenario import parse_step_s, scenario_from_dict
from twin.sim import dispatch_rules
from twin.sim.engine import site_layout
from twin.sim.placement_default import place, resolve_jobs
from twin.sim.power import PowerChain, psu_ac_kw, stranded_equipment

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tiny():
    return site_layout("tiny")


@pytest.fixture(scope="module")
def colossus():
    return site_layout("colossus-1")


def test_stage_models_by_hand(tiny):
    m = {tiny.equip.ids[i]: tiny.equip.model[i] for i in range(len(tiny.equip.ids))}
    tx = m["hall-1-tx1"]  # 3,000 kVA x 0.95, 2.8 kW no-load, 16.5 kW at rated load
    assert tx.p_in_kw(np.array([1425.0]))[0] == pytest.approx(1425 + 2.8 + 16.5 * 0.25)
    assert tx.p_in_kw(np.array([0.0]))[0] == pytest.approx(2.8)
    bw = m["hall-1-tx1-bw1"]
    assert bw.p_in_kw(np.array([499.0]))[0] == pytest.approx(500.0)
    sw = m["swgr"]
    assert sw.p_in_kw(np.array([999.5]))[0] == pytest.approx(1000.0)


def test_psu_curve(tiny):
    srv = tiny.site.parts.server["hgx-h100-8gpu-lc"]
    psu = tiny.site.parts.psu["titanium-3300w"]
    # 6.6 kW DC on 4 x 3.3 kW = 50 % load -> 96 %
    assert psu_ac_kw(np.array([6.6]), srv, psu)[0] == pytest.approx(6.6 / 0.96)
    # 13.2 kW -> 100 % -> 91 %; 1.32 kW -> 10 % -> 90 %
    assert psu_ac_kw(np.array([13.2, 1.32]), srv, psu) == pytest.approx([13.2 / 0.91, 1.32 / 0.90])
    assert psu_ac_kw(np.array([5.0]), srv, None)[0] == 5.0


def test_chain_aggregates_level_by_level(colossus):
    ch = PowerChain(colossus)
    rng = np.random.default_rng(0)
    rack_kw = rng.uniform(0, 80, size=(3, len(colossus.racks)))
    rack_sum = np.asarray(colossus.rack_power_incidence.T @ rack_kw.T).T
    cons = colossus.consumers
    res = ch.run(rack_sum, np.full((3, len(cons)), 500.0), cons, skip_upstream=False)
    # every parent's output is its children's inputs (by share) plus its racks
    out = rack_sum + np.asarray(res.p_in_kw @ colossus.power_incidence)
    ls = colossus.load_side
    np.testing.assert_allclose(res.p_out_kw[:, ls], out[:, ls], rtol=1e-12)
    # total input at the top = racks + plant + all losses
    top = [colossus.index["sub63"]]
    losses = (res.p_in_kw - res.p_out_kw)[:, ls].sum(axis=1)
    np.testing.assert_allclose(res.p_in_kw[:, top].sum(axis=1), rack_kw.sum(axis=1) + 500.0 * len(cons) + losses, rtol=1e-12)
    assert np.all(losses > 0)


def test_transformer_outage_strands_its_racks(colossus):
    out = np.zeros(len(colossus.equip.ids), bool)
    out[colossus.index["hall-1-tx2"]] = True
    dead = stranded_equipment(colossus, out)
    below = [i for i, e in enumerate(colossus.equip.ids) if e.startswith("hall-1-tx2-")]
    assert len(below) == 3 and dead[below].all()
    assert dead.sum() == 4  # the transformer and its three busways, nothing else
    racks = dead[colossus.racks.feeder]
    assert racks.sum() == int((colossus.racks.feeder[:, None] == np.array(below)[None, :]).any(1).sum()) > 0
    # a switchgear fed by the turbines and the battery is not stranded by the substation
    out2 = np.zeros_like(out)
    out2[colossus.index["sub63"]] = True
    assert not stranded_equipment(colossus, out2)[colossus.index["swgr-1"]]


def test_default_placement(colossus):
    sc = scenario_from_dict({"site": "colossus-1", "hours": 1, "workload": {"jobs": [
        {"name": "a", "kind": "training", "gpus": 100}, {"name": "b", "kind": "inference", "gpus": 1000}]}})
    jobs = resolve_jobs(sc, colossus)
    M = place(jobs, colossus)
    assert M.sum(axis=1).A1.tolist() == [100, 1000]
    gpu_racks = np.flatnonzero(colossus.racks.n_gpus > 0)
    assert M[0, gpu_racks[0]] == 64 and M[0, gpu_racks[1]] == 36 and M[1, gpu_racks[1]] == 28
    assert (M.sum(axis=0).A1 <= colossus.racks.n_gpus).all()


def test_parse_step():
    assert [parse_step_s(s) for s in ("1h", "15min", "1s", "0.1s", "100ms", 60)] == [3600, 900, 1, 0.1, 0.1, 60]
    with pytest.raises(ValueError):
        parse_step_s("fast")


def _fleet(n, cap, units=15, batt=0.0, e=0.0):
    return dispatch_rules.Fleet(np.full(n, cap), None, np.full(n, units), 16500.0, 0.5, np.full(n, batt), e, 0.05, 1.0, 0.9)


def test_dispatch_turbines_in_whole_units():
    d = np.array([100_000.0, 170_000.0, 180_000.0, 120_000.0])
    r = dispatch_rules.dispatch(d, _fleet(4, 150_000.0), 3600.0, commit_window_s=3600.0)
    assert r.turbines_online.tolist() == [0, 2, 2, 0]  # 20 MW and 30 MW short: two 16.5 MW units
    # minimum stable load: 2 units x 16.5 MW x 0.5 = 16.5 MW >= the 20 MW shortfall? no, 20 > 16.5, follow
    assert r.gt_kw.tolist() == pytest.approx([0, 20_000, 30_000, 0])
    np.testing.assert_allclose(r.grid_kw + r.gt_kw + r.batt_kw + r.unserved_kw, d)
    assert r.grid_kw.max() <= 150_000.0


def test_dispatch_battery_soc_bounds_and_unserved():
    d = np.full(6, 160_000.0)
    f = dispatch_rules.Fleet(np.full(6, 150_000.0), None, np.zeros(6), 0.0, 0.5, np.full(6, 20_000.0), 30_000.0, 0.1, 1.0, 0.81)
    r = dispatch_rules.dispatch(d, f, 3600.0, soc0_pu=0.5)
    # 10 MW from a 30 MWh battery at 90 % one-way: 11.1 MWh per hour from the cells; 12 MWh usable above 10 %
    assert r.batt_kw[0] == pytest.approx(10_000.0)
    assert r.soc_kwh[0] == pytest.approx(15_000.0 - 10_000.0 / 0.9)
    assert r.soc_kwh.min() >= 3_000.0 - 1e-6
    assert r.unserved_kw[-1] == pytest.approx(10_000.0)  # empty battery: the excess over the cap is unserved
    np.testing.assert_allclose(r.grid_kw + r.batt_kw + r.unserved_kw, d)


def test_dispatch_battery_first_then_turbines_when_it_runs_dry():
    d = np.full(10, 160_000.0)
    f = dispatch_rules.Fleet(np.full(10, 150_000.0), None, np.full(10, 15), 16500.0, 0.5, np.full(10, 20_000.0),
                             30_000.0, 0.1, 1.0, 0.81)
    r = dispatch_rules.dispatch(d, f, 3600.0, soc0_pu=0.9, commit_window_s=3600.0)
    assert r.unserved_kw.max() == pytest.approx(0.0, abs=1e-6)
    assert r.batt_kw[0] == pytest.approx(10_000.0) and r.turbines_online[0] == 0  # battery first
    assert r.turbines_online[-1] == 1 and r.gt_kw[-1] == pytest.approx(10_000.0)  # one unit once it is empty
    assert r.soc_kwh.min() >= 3_000.0 - 1e-6
    np.testing.assert_allclose(r.grid_kw + r.gt_kw + r.batt_kw, d)
