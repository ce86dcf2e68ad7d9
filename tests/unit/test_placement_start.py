"""Warm starts of the placement MILP: the hall master (job x hall MILP with per-unit mu-capacity rows), its
placement, and the branch-and-bound skip when a start is already within the gap of the LP relaxation.

The site: tiny with two halls, each of 4 H100 racks (2 arrays of 2 racks, one array per busway, 16 free
nodes per busway). Busway limits make every busway a unit with its own power room, so a hall's bin has two
units with different kW per free node: the case the mu rows are for. Brute force: every job in
{not admitted, hall 1, hall 2}, and a hall's jobs fit when some integer split of each job's nodes over the
hall's two busways keeps both busways within 16 nodes and their power limit."""

from __future__ import annotations

import copy
import functools
import itertools
from dataclasses import replace

import numpy as np
import pytest
import yaml

from optimizers.placement import (
    PlacementJob,
    PlacementOptions,
    SiteState,
    best_greedy,
    build_placement,
    full_start,
    greedy_start,
    hall_master,
    hall_master_start,
    node_power_kw,
    optimize_placement,
    prepare,
    segment_allocation,
    solve_placement,
    solve_relaxation,
    start_check,
)
from twin.layout import expand
from twin.paths import sites_dir
from twin.site import load_site

pytestmark = pytest.mark.unit

LIMITS_KW = {"hall-1-tx1-bw1": 70.0, "hall-1-tx1-bw2": 140.0, "hall-2-tx1-bw1": 100.0, "hall-2-tx1-bw2": 125.0}


@pytest.fixture(scope="module")
def two_halls(tmp_path_factory):
    raw = yaml.safe_load((sites_dir() / "tiny.yaml").read_text())
    raw["name"] = "tiny-2halls"
    h1 = raw["halls"][0]
    h1["racks_per_array"] = 2
    h1["racks"] = [{"type": "gpu-rack-hgx-h100-lc", "count": 4}]
    h2 = copy.deepcopy(h1)
    h2["id"] = "hall-2"
    raw["halls"].append(h2)
    raw["components"][2]["q_max_kw"] = 2000
    raw["components"][3]["count"] = 2
    p = tmp_path_factory.mktemp("site") / "tiny-2halls.yaml"
    p.write_text(yaml.safe_dump(raw))
    return expand(load_site(p))


def _jobs(seed: int) -> list[PlacementJob]:
    rng = np.random.default_rng(seed)
    return [PlacementJob(f"j{i}", int(rng.choice([64, 128])), float(rng.uniform(0.5, 0.7)),
                         priority=float(rng.integers(1, 4)), locality="hall") for i in range(6)]


def _brute_force(layout, jobs) -> float:
    nodes = np.array([j.gpus // 8 for j in jobs])
    p = node_power_kw(layout, np.array([j.p_gpu_kw for j in jobs]), np.zeros(len(jobs), int))
    value = np.array([j.priority * j.gpus * j.duration_h for j in jobs])
    room = {0: (LIMITS_KW["hall-1-tx1-bw1"], LIMITS_KW["hall-1-tx1-bw2"]),
            1: (LIMITS_KW["hall-2-tx1-bw1"], LIMITS_KW["hall-2-tx1-bw2"])}

    @functools.lru_cache(None)
    def fits(h, js):
        if not js:
            return True
        n, pj = nodes[list(js)], p[list(js)]
        grids = np.meshgrid(*[np.arange(k + 1) for k in n], indexing="ij")
        a = np.stack([g.ravel() for g in grids], 1)  # nodes of each job on the first busway
        b = n[None, :] - a
        ok = (a.sum(1) <= 16) & (b.sum(1) <= 16) & (a @ pj <= room[h][0] + 1e-9) & (b @ pj <= room[h][1] + 1e-9)
        return bool(ok.any())

    best = 0.0
    for combo in itertools.product((-1, 0, 1), repeat=len(jobs)):
        if all(fits(h, tuple(j for j, c in enumerate(combo) if c == h)) for h in (0, 1)):
            best = max(best, float(sum(value[j] for j, c in enumerate(combo) if c >= 0)))
    return best


def test_two_hall_site_has_two_units_per_hall(two_halls):
    prob = prepare(two_halls, _jobs(0), SiteState.empty(two_halls), PlacementOptions(limits_kw=LIMITS_KW))
    assert len(prob.unit_free) == 4 and list(prob.unit_free) == [16, 16, 16, 16]
    assert sorted(np.bincount(prob.unit_hall).tolist()) == [2, 2]


@pytest.mark.parametrize("seed", [0, 9])
def test_hall_master_start_reaches_brute_force_optimum(two_halls, seed):
    """Seeds where the greedy rules miss the optimum; the master's placement reaches it, is a feasible
    point of the full model, and the master (margin 0, solved exactly) is never below the optimum (its mu
    rows are valid for the halls)."""
    jobs = _jobs(seed)
    best = _brute_force(two_halls, jobs)
    ref = optimize_placement(two_halls, jobs, options=PlacementOptions(limits_kw=LIMITS_KW, rel_gap=0.0,
                                                                        hall_master=False))
    assert ref.attrs["objective_value"] == pytest.approx(best)
    prob = prepare(two_halls, jobs, SiteState.empty(two_halls), PlacementOptions(limits_kw=LIMITS_KW, rel_gap=0.0))
    _, y_greedy = best_greedy(prob)
    y_master, hall, bound = hall_master(prob, rel_gap=0.0, margin_nodes=0.0)
    assert float(prob.value @ y_master) >= best - 1e-9 and bound >= best - 1e-6  # a relaxation: never below
    assert (hall[y_master > 0.5] >= 0).all() and (hall[y_master < 0.5] == -1).all()
    lm = build_placement(prob)._linear
    x, y, _ = hall_master_start(prob, lm, margin_nodes=0.0)
    ok, _ = start_check(lm, full_start(prob, lm, x, y))
    assert ok
    assert float(prob.value @ y) == pytest.approx(best)
    assert float(prob.value @ y) > float(prob.value @ y_greedy)  # what the master adds on these seeds


def test_greedy_fill_keeps_the_given_placement(two_halls):
    """`greedy_start(x0=, y0=)` leaves the kept jobs where they are and adds others only where room is left."""
    jobs = _jobs(0)
    prob = prepare(two_halls, jobs, SiteState.empty(two_halls), PlacementOptions(limits_kw=LIMITS_KW))
    lm = build_placement(prob)._linear
    x0, y0 = greedy_start(prob, order=np.array([0]))  # job 0 alone
    assert y0[0] == 1 and y0[1:].sum() == 0
    x, y = greedy_start(prob, x0=x0, y0=y0)
    np.testing.assert_array_equal(x[prob.pair_job == 0], x0[prob.pair_job == 0])
    assert y.sum() > 1
    ok, _ = start_check(lm, full_start(prob, lm, x, y))
    assert ok


def test_branch_and_bound_skipped_only_within_gap_of_lp_bound(two_halls):
    """Seed 0: the LP relaxation bound is 971.5 against the optimum 896 (8.4 %), so a 10 % gap lets the
    start (the optimum, from the hall master) stand without branch and bound."""
    jobs = _jobs(0)
    opt = PlacementOptions(limits_kw=LIMITS_KW, rel_gap=0.10)
    prob = prepare(two_halls, jobs, SiteState.empty(two_halls), opt)
    mr = build_placement(prob, relax=True)
    ri = solve_relaxation(prob, mr)
    kw = {"y_lp": mr._linear.value(ri, "y"), "x_lp": segment_allocation(prob, mr._linear, ri, integral=False)}
    model = build_placement(prob)
    lm = model._linear
    info = solve_placement(prob, model, lp_bound=ri.objective, **kw)
    assert info.status == "optimal" and "branch and bound not run" in info.termination
    obj = float(lm.cost @ info.x)
    assert info.objective == pytest.approx(obj)
    assert info.mip_gap == pytest.approx((obj - ri.objective) / abs(obj))  # minimised: bound <= objective
    assert 0.08 <= info.mip_gap <= 0.10
    assert float(prob.value @ np.rint(lm.value(info, "y"))) == pytest.approx(896.0)
    ok, act = start_check(lm, info.x)
    assert ok and np.allclose(info.row_activity, act)
    # a bound the start is not within the gap of: the master without margin (a relaxation) gives a better
    # bound, the start is within the gap of that one
    info2 = solve_placement(prob, build_placement(prob), lp_bound=1.5 * ri.objective, **kw)
    assert "hall master's bound" in info2.termination and info2.mip_gap <= 0.10
    # without the master, branch and bound runs (and keeps the optimum, 896)
    prob3 = prepare(two_halls, jobs, SiteState.empty(two_halls), replace(opt, hall_master=False))
    model3 = build_placement(prob3)
    info3 = solve_placement(prob3, model3, lp_bound=1.5 * ri.objective, **kw)
    assert "branch and bound not run" not in info3.termination
    y3 = np.rint(model3._linear.value(info3, "y"))
    assert float(prob3.value @ y3) == pytest.approx(_brute_force(two_halls, jobs))
