"""Placement on instances small enough to enumerate; each test checks the objective and the decisions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import yaml

from optimizers.placement import (
    PlacementJob,
    PlacementOptions,
    SiteState,
    node_power_kw,
    optimize_placement,
    prepare,
    random_jobs,
)
from twin.errors import InfeasibleError, InputError
from twin.layout import expand
from twin.paths import sites_dir
from twin.site import load_site

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tiny():
    return expand(load_site("tiny"))


@pytest.fixture(scope="module")
def four_arrays(tmp_path_factory):
    """tiny with 8 GPU racks in 4 arrays of 2 racks (128 GPUs each) on 2 busways: arrays 0-1 on busway 1,
    arrays 2-3 on busway 2."""
    raw = yaml.safe_load((sites_dir() / "tiny.yaml").read_text())
    raw["name"] = "tiny-4arrays"
    hall = raw["halls"][0]
    hall["racks_per_array"] = 2
    hall["racks"] = [{"type": "gpu-rack-hgx-h100-lc", "count": 8}]
    raw["components"][2]["q_max_kw"] = 2000
    raw["components"][3]["count"] = 2
    p = tmp_path_factory.mktemp("site") / "tiny-4arrays.yaml"
    p.write_text(yaml.safe_dump(raw))
    return expand(load_site(p))


def test_four_array_site_layout(four_arrays):
    r = four_arrays.racks
    assert list(r.array) == [0, 0, 1, 1, 2, 2, 3, 3]
    feeders = [four_arrays.equip.ids[f] for f in r.feeder]
    assert feeders[:4] == ["hall-1-tx1-bw1"] * 4 and feeders[4:] == ["hall-1-tx1-bw2"] * 4


def _brute_force(layout, jobs, limits_kw, state):
    """Enumerate every assignment of 3 array-locality jobs to {not admitted, array 0..3}; feasible when every
    array's free nodes and every limited equipment's power hold (layout aggregation); best value wins."""
    r = layout.racks
    gpn = 8
    p_node = node_power_kw(layout, np.array([j.p_gpu_kw for j in jobs]), np.zeros(len(jobs), int))
    free_arr = np.bincount(r.array, weights=state.free_nodes)
    best = (-1.0, None)
    for combo in itertools.product(range(-1, 4), repeat=len(jobs)):
        nodes = np.zeros(4)
        rack_kw = state.p_rack_kw.copy()
        fill = {a: list(np.flatnonzero(r.array == a)) for a in range(4)}
        left = {int(i): int(state.free_nodes[i]) for i in range(len(r))}
        ok = True
        for j, a in enumerate(combo):
            if a < 0:
                continue
            n = jobs[j].gpus // gpn
            nodes[a] += n
            for rk in fill[a]:  # fill the array's racks in order
                take = min(n, left[rk])
                left[rk] -= take
                rack_kw[rk] += take * p_node[j]
                n -= take
            ok &= n == 0
        if not ok or np.any(nodes > free_arr):
            continue
        up = layout.up(rack_kw)
        if any(up[layout.index[e]] > lim + 1e-6 for e, lim in limits_kw.items()):
            continue
        value = sum(jobs[j].priority * jobs[j].gpus * jobs[j].duration_h for j, a in enumerate(combo) if a >= 0)
        if value > best[0] + 1e-9:
            best = (value, combo)
    return best


def test_three_jobs_four_arrays_matches_brute_force(four_arrays):
    L = four_arrays
    jobs = [PlacementJob("a", 128, 0.70, priority=3, locality="array"),
            PlacementJob("b", 128, 0.70, priority=2, locality="array"),
            PlacementJob("c", 64, 0.70, priority=2, locality="array")]
    state = SiteState.empty(L)
    busy = np.array([0, 0, 0, 0, 8, 8, 0, 0])  # array 2 fully busy
    state = SiteState(free_nodes=L.racks.n_nodes - busy, p_rack_kw=state.p_rack_kw + busy * 9.0)
    # busway 2 can take only ~1 more array of 128 GPUs at 0.7 kW: 16 nodes x 8.56 kW = 137 kW
    limits = {"hall-1-tx1-bw2": 144.0 + 150.0, "hall-1-tx1-bw1": 150.0}
    value, combo = _brute_force(L, jobs, limits, state)
    ds = optimize_placement(L, jobs, state, PlacementOptions(limits_kw=limits, rel_gap=0.0))
    assert ds.attrs["objective_value"] == pytest.approx(value)
    admitted = {n for n, a in zip("abc", combo, strict=True) if a >= 0}
    assert {j for j, y in zip(ds.job.values, ds.admitted.values, strict=True) if y} == admitted
    # every admitted job sits in one array, whole
    ga = ds["gpus_job_array"].values
    for j, job in enumerate(jobs):
        if ds.admitted.values[j]:
            assert (ga[j] > 0).sum() == 1 and ga[j].sum() == job.gpus
    assert ds.attrs["cross_check_max_overload_kw"] <= 1e-3
    assert (ds["p_equipment_kw"] <= ds["p_limit_kw"] + 1e-6).sel(equipment=list(limits)).all()


def test_value_first_then_balanced_headroom(four_arrays):
    """One job, room on both busways: the value is the same, the headroom decides: the less loaded one."""
    L = four_arrays
    st = SiteState.empty(L)
    busy = np.array([4, 4, 4, 4, 0, 0, 0, 0])  # busway 1 half loaded
    st = SiteState(free_nodes=L.racks.n_nodes - busy, p_rack_kw=st.p_rack_kw + busy * 9.0)
    lim = {"hall-1-tx1-bw1": 400.0, "hall-1-tx1-bw2": 400.0}
    ds = optimize_placement(L, [PlacementJob("a", 64, 0.6, locality="array")], st, PlacementOptions(limits_kw=lim))
    assert bool(ds.admitted.values[0]) and ds.attrs["objective_value"] == pytest.approx(64.0)  # 1 x 64 GPUs x 1 h
    arr = int(np.flatnonzero(ds["gpus_job_array"].values[0])[0])
    assert arr in (2, 3)  # busway 2
    head = ds["headroom_pu"].sel(equipment=list(lim)).values
    assert head.min() == pytest.approx(ds.attrs["min_headroom_pu"], abs=1e-6)


def test_whole_site_job_fills_tiny_exactly(tiny):
    ds = optimize_placement(tiny, [PlacementJob("all", 384, 0.7, locality="hall")])
    assert bool(ds.admitted.values[0]) and int(ds.gpus_placed.values[0]) == 384
    assert ds.attrs["objective_value"] == pytest.approx(384.0)  # priority 1 x 384 GPUs x 1 h
    assert (ds["nodes_job_rack"].values[0][tiny.racks.role == 0] == 8).all()
    # the placement's rack load, summed up the tree by the layout, equals nodes x node power
    p_node = float(ds.p_node_kw.values[0])
    assert float(ds["p_rack_new_kw"].sum()) == pytest.approx(48 * p_node)
    tx = float(ds["p_equipment_kw"].sel(equipment="hall-1-tx1"))
    assert tx == pytest.approx(48 * p_node + float(ds["p_equipment_before_kw"].sel(equipment="hall-1-tx1")))


def test_hall_locality_larger_than_hall_is_explained(tiny):
    with pytest.raises(InfeasibleError) as e:
        optimize_placement(tiny, [PlacementJob("big", 512, 0.7, locality="hall", required=True)])
    msg = str(e.value)
    assert "hall-1" in msg and "512" in msg and "384" in msg and "short by 128 GPUs" in msg


def test_power_limit_below_need_is_explained_with_amount(tiny):
    st = SiteState.empty(tiny)
    now = float(tiny.up(st.p_rack_kw)[tiny.index["hall-1-tx1"]])
    job = PlacementJob("j", 64, 0.7, locality="hall", required=True)
    need = 8 * float(node_power_kw(tiny, np.array([0.7]), np.array([0]))[0])
    limit = now + need - 25.0
    with pytest.raises(InfeasibleError) as e:
        optimize_placement(tiny, [job], st, PlacementOptions(limits_kw={"hall-1-tx1": limit}))
    msg = str(e.value)
    assert "hall-1-tx1" in msg and "over by 25.0 kW" in msg


def test_heat_wave_derated_heat_rejection_is_explained_with_amount(tiny):
    # the 1,000 kW dry cooler derated to 20 % (200 kW) already takes the storage racks' heat; the whole-hall
    # job adds 48 nodes x node power: over by now + 48 x p_node - 200 kW
    st = SiteState.empty(tiny)
    job = PlacementJob("j", 384, 0.7, locality="hall", required=True)
    p_node = float(node_power_kw(tiny, np.array([0.7]), np.array([0]))[0])
    over = float(st.p_rack_kw.sum()) + 48 * p_node - 200.0
    assert over > 100.0
    with pytest.raises(InfeasibleError) as e:
        optimize_placement(tiny, [job], st, PlacementOptions(heat_rejection_derate_pu=0.2))
    assert f"heat rejection dry limit 200 kW with {st.p_rack_kw.sum():,.0f} kW already used: over by {over:,.1f} kW" \
        in str(e.value)
    assert e.value.details == {"heat_rejection_limit": {"position": [0], "amount": [pytest.approx(over)]}}


def test_two_required_jobs_overrun_free_nodes_elastically(tiny):
    jobs = [PlacementJob("a", 256, 0.5, locality="none", required=True),
            PlacementJob("b", 256, 0.5, locality="none", required=True)]
    with pytest.raises(InfeasibleError) as e:
        optimize_placement(tiny, jobs)
    assert "hall-1 has 384 free GPUs, short by 128 GPUs" in str(e.value)


def test_bad_input_is_an_input_error(tiny):
    with pytest.raises(InputError):
        optimize_placement(tiny, [PlacementJob("x", 0, 0.7)])
    with pytest.raises(InputError):
        optimize_placement(tiny, [PlacementJob("x", 64, 0.7)], options=PlacementOptions(reserve_pu=1.2))
    with pytest.raises(InputError):
        optimize_placement(tiny, [])


def test_node_power_uses_psu_curve(tiny):
    p = float(node_power_kw(tiny, np.array([0.7]), np.array([0]))[0])
    srv = tiny.groups[0].server
    psu = tiny.site.parts.psu[srv.psu_type]
    dc = srv.gpus_per_node * 0.7 + srv.p_base_kw
    eta = np.interp(dc / (srv.psu_count * psu.p_unit_max_kw), psu.load_pu, psu.efficiency_pu)
    assert 0.85 < eta < 1.0 and p == pytest.approx(dc / eta)


def test_reduction_keeps_answer_on_random_queue(tiny):
    """The unit merge and inactive-row removal do not change the optimum. With one hall and no binding power
    row the problem is a knapsack on the hall's 384 free GPUs: enumerate all 2^12 admissions."""
    jobs = random_jobs(12, seed=3)
    jobs = [PlacementJob(j.name, min(j.gpus, 128), j.p_gpu_kw, j.priority, j.duration_h, "hall") for j in jobs]
    prob = prepare(tiny, jobs, SiteState.empty(tiny))
    assert len(prob.unit_free) == 1  # one hall, no binding power row: all segments merge
    ds = optimize_placement(tiny, jobs, options=PlacementOptions(rel_gap=0.0))
    gpus = np.array([j.gpus for j in jobs])
    value = np.array([j.priority * j.gpus * j.duration_h for j in jobs])
    plans = sorted(((float(value[m].sum()), m) for m in map(np.array, itertools.product([False, True], repeat=12))
                    if gpus[m].sum() <= 384), key=lambda vm: -vm[0])
    (best, admit), runner_up = plans[0], plans[1]
    assert runner_up[0] < best  # a unique optimum, so the decisions are fixed too
    assert ds.attrs["objective_value"] == pytest.approx(best)
    np.testing.assert_array_equal(ds.admitted.values, admit)
    np.testing.assert_array_equal(ds["gpus_placed"].values, np.where(admit, gpus, 0))
    assert ds.attrs["objective_value"] <= ds.attrs["relaxation_objective_value"] + 1e-6
