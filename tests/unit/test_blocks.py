"""Certified block re-solves (optimizers/blocks.py): the bound pieces by hand, and on a three-month
dispatch the joined solution is feasible for the full LP and the proven bounds bracket the true optimum."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from optimizers.blocks import BlockResolver, col_terms, implied_bounds, month_blocks, row_terms
from optimizers.common import solve
from optimizers.dispatch import Battery, DispatchInputs, TurbineFleet, build_dispatch

pytestmark = pytest.mark.unit
INF = np.inf


def test_implied_bounds_follow_the_rows_by_hand():
    # x - 2 y <= 0 and y <= 3 (a singleton row) -> y <= 3, then x <= 2 y <= 6; x + y >= 1 with
    # x <= 6 gives nothing new for y (its lower bound 0 stays)
    A = sparse.csr_array(np.array([[1.0, -2.0], [0.0, 1.0], [1.0, 1.0]]))
    lb, ub = implied_bounds(A, np.array([-INF, -INF, 1.0]), np.array([0.0, 3.0, INF]),
                            np.array([0.0, 0.0]), np.array([INF, INF]))
    np.testing.assert_allclose(ub, [6.0, 3.0])
    np.testing.assert_allclose(lb, [0.0, 0.0])


def test_weak_duality_terms_by_hand():
    # min x + y, x + y >= 2, 0 <= x, y <= 5: optimum 2. Multiplier 1 proves it; 0.5 proves 1; 2 proves
    # 2 * 2 + 2 * (-1 * 5) = -6 (reduced costs -1 push both columns to their upper bounds).
    lo, hi = np.array([2.0]), np.array([INF])
    A = np.array([[1.0, 1.0]])
    c, x_lb, x_ub = np.array([1.0, 1.0]), np.zeros(2), np.full(2, 5.0)
    for y, bound in ((1.0, 2.0), (0.5, 1.0), (2.0, -6.0)):
        yy, term = row_terms(np.array([y]), lo, hi)
        assert term.sum() + col_terms(c - A.T @ yy, x_lb, x_ub).sum() == pytest.approx(bound)
    # a multiplier of the wrong sign for an infinite side is dropped (the bound stays valid: 0)
    yy, term = row_terms(np.array([-3.0]), lo, hi)
    assert yy[0] == 0.0 and term.sum() + col_terms(c - A.T @ yy, x_lb, x_ub).sum() == 0.0


def three_months(nox_cap_t: float | None = 2.0, battery: bool = True, ramp: bool = True) -> DispatchInputs:
    """Jan-Mar at 3-h steps: ~40 MW load, a 45 MW grid cap lowered to 30 MW on some afternoons, three
    16.5 MW turbines, a 30 MW / 120 MWh battery, demand charges, a NOx cap that binds."""
    t = np.arange(np.datetime64("2025-01-01T00"), np.datetime64("2025-04-01T00"), np.timedelta64(3, "h"))
    n = len(t)
    rng = np.random.default_rng(1)
    h = (np.arange(n) * 3) % 24
    load = 40e3 + 4e3 * np.sin(2 * np.pi * (h - 9) / 24) + rng.normal(0, 1e3, n)
    price = np.where((h >= 12) & (h < 18), 0.0808, 0.038)
    cap = np.where((np.arange(n) // 8) % 5 == 2, np.where((h >= 12) & (h < 18), 30e3, 45e3), 45e3)
    return DispatchInputs(
        time=t, dt_h=3.0, load_kw=load, price_usd_kwh=price,
        turbines=TurbineFleet(n_units=3, p_max_kw=16_500.0, p_min_pu=0.5, start_cost_usd=1500.0, min_up_h=6.0,
                              min_down_h=6.0, vom_usd_kwh=0.005),
        battery=(Battery(p_max_kw=30e3, e_max_kwh=120e3, efficiency_roundtrip_pu=0.88, soc_initial_pu=0.5,
                         soc_min_pu=0.05) if battery
                 else Battery(p_max_kw=0.0, e_max_kwh=0.0, soc_initial_pu=0.0, soc_min_pu=0.0)),
        grid_import_max_kw=cap, grid_ramp_max_kw_per_h=5e3 if ramp else INF, demand_charge_usd_kw_month=12.38,
        gas_price_usd_mmbtu=3.5, nox_cap_t=nox_cap_t)


def _full_optimum(inp: DispatchInputs, price: np.ndarray) -> float:
    m = build_dispatch(inp, relax=True)
    lm = m._linear
    lm.set_cost("grid_import_kw", price * inp.dt_h)
    return solve(m, 60, 1e-9, load_pyomo=False).objective


def _session(inp: DispatchInputs):
    m = build_dispatch(inp, relax=True)
    lm = m._linear
    info = solve(m, 60, 1e-9, load_pyomo=False)
    br = BlockResolver(lm, month_blocks(lm, inp.time), threads=2)
    br.reference(info.x, info.row_dual)
    return lm, info, br


def test_blocks_reproduce_the_reference_and_hold_only_month_end_state():
    inp = three_months()
    lm, info, br = _session(inp)
    assert br.n_blocks == 3
    # the NOx cap is the one global row; it binds (dual < 0)
    nox = lm.families["nox_cap"].offset
    assert br.global_rows.tolist() == [nox] and info.row_dual[nox] < -1.0
    # held columns: state at the last steps of January and February only (min up/down 6 h = 2 steps)
    month_end = {247, 471}  # last 3-h steps of Jan (31 * 8 - 1) and Feb (59 * 8 - 1)
    for name, f in lm.vars.items():
        held = np.flatnonzero(br.coupling[f.cols])
        if f.size == inp.n:
            assert all(any(0 <= e - k <= 1 for e in month_end) for k in held), (name, held)
    assert br.coupling.sum() >= 4  # at least SOC, grid import, units online at both month ends
    sol = br.resolve()
    assert sol is not None
    assert sol.upper_usd == pytest.approx(info.objective, rel=1e-7)
    assert sol.lower_usd == pytest.approx(info.objective, rel=1e-7)


def test_certificate_brackets_the_true_optimum_after_an_hourly_price_change():
    inp = three_months()
    lm, info, br = _session(inp)
    price = inp.price_usd_kwh * np.random.default_rng(5).uniform(0.7, 1.3, inp.n)
    lm.set_cost("grid_import_kw", price * inp.dt_h)
    sol = br.resolve()
    assert sol is not None
    z = _full_optimum(inp, price)
    assert sol.lower_usd <= z * (1 + 1e-7) and z <= sol.upper_usd * (1 + 1e-7)
    assert sol.gap == pytest.approx((sol.upper_usd - sol.lower_usd) / sol.upper_usd)
    assert sol.gap < 0.05
    # the joined solution is feasible for the full LP and priced by the full cost vector
    A = lm.matrix()
    lo, hi = lm.row_bounds()
    act = A @ sol.x
    tol = 1e-6 * np.maximum(1.0, abs(A) @ np.abs(sol.x))
    assert np.all(act >= lo - tol) and np.all(act <= hi + tol)
    assert sol.upper_usd == pytest.approx(float(lm.cost @ sol.x + lm.cost_offset))


def test_independent_months_certify_exactly():
    # no battery, no ramp limit, no NOx cap: the months share nothing but the turbines' commitment at the
    # month ends, held at the reference; with prices changed only inside months the gap closes to ~0
    inp = three_months(nox_cap_t=None, battery=False, ramp=False)
    lm, info, br = _session(inp)
    assert len(br.global_rows) == 0
    price = inp.price_usd_kwh * 1.15
    lm.set_cost("grid_import_kw", price * inp.dt_h)
    sol = br.resolve()
    z = _full_optimum(inp, price)
    assert sol.upper_usd == pytest.approx(z, rel=1e-6)
    assert sol.gap < 1e-6


def test_dispatch_session_answers_a_price_change_by_blocks_within_its_gap():
    from optimizers.dispatch import DispatchSession

    inp = three_months()
    s = DispatchSession(inp, relax=True, rel_gap=0.05, block_min_steps=0)
    base = s.solve()
    assert s.last_path == "full" and s.blocks is not None and s.blocks_setup_s > 0
    price = inp.price_usd_kwh * np.random.default_rng(5).uniform(0.7, 1.3, inp.n)
    s.set_prices(price)
    ds = s.solve()
    z = _full_optimum(inp, price)
    assert s.last_path == "blocks" and "proven gap" in ds.attrs["solver_termination"]
    assert z <= ds.attrs["solver_objective"] <= z * (1 + s.rel_gap)
    # the Dataset is the joined solution: served load balances, prices are the blocks' duals
    served = ds.grid_import_kw + ds.turbine_p_kw + ds.battery_p_kw + ds.curtailed_kw
    np.testing.assert_allclose(served, ds.load_kw, rtol=1e-6)
    assert float(ds.price_usd_kwh.mean()) > 0
    # a tariff level change where the turbines run moves the NOx price: the bound prices the cap at the
    # held months' budget duals instead, and the answer is still within the gap of the optimum
    level = inp.price_usd_kwh * 1.2
    s.set_prices(level)
    ds = s.solve()
    z = _full_optimum(inp, level)
    assert s.last_path == "blocks" and "held months" in ds.attrs["solver_termination"]
    assert z * (1 - 1e-7) <= ds.attrs["solver_objective"] <= z * (1 + s.rel_gap)
    assert len(s._references) == 1  # a block answer adds no reference: the first solve's stays
    assert base.attrs["solver_objective"] == pytest.approx(_full_optimum(inp, inp.price_usd_kwh), rel=1e-7)


def test_blocks_refuse_a_model_whose_bounds_changed_and_the_session_rebuilds_them():
    from optimizers.dispatch import DispatchSession

    inp = three_months()
    lm, info, br = _session(inp)
    cap = np.asarray(inp.grid_import_max_kw) * 0.9
    lm.set_row_bounds("grid_import_limit", lm.families["grid_import_limit"].lb, cap)
    assert br.resolve() is None and "bounds changed" in br.last_failure
    s = DispatchSession(inp, relax=True, rel_gap=0.05, block_min_steps=0)
    s.solve()
    s.set_grid_import_max(cap)
    assert s.blocks is None
    s.solve()  # full (bounds changed); the blocks are set up again on the new caps
    assert s.last_path == "full" and s.blocks is not None
    price = inp.price_usd_kwh * np.random.default_rng(5).uniform(0.7, 1.3, inp.n)
    s.set_prices(price)
    ds = s.solve()
    assert s.last_path == "blocks"
    assert float((ds.grid_import_kw - cap).max()) <= 1e-6  # the new caps hold


def test_after_a_full_answer_its_optimum_becomes_a_reference_and_blocks_answer_around_it():
    from optimizers.dispatch import DispatchSession

    inp = three_months()
    s = DispatchSession(inp, relax=True, rel_gap=0.01, block_min_steps=0)
    s.solve()
    level = inp.price_usd_kwh * 1.2  # moves the NOx price; a gap the blocks cannot prove: the full LP
    s.rel_gap = 1e-9
    s.set_prices(level)
    s.solve()
    assert s.last_path == "full"
    assert s._settling is not None  # the blocks re-solve at the new prices in the background
    s.settle()
    assert s._settling is None and s.blocks is not None
    s.rel_gap = 0.01
    assert len(s._references) == 2 and s._reference_in_use == 1  # the level's optimum is a reference now
    np.testing.assert_allclose(s._references[1][0], level)
    price = level * np.random.default_rng(8).uniform(0.7, 1.3, inp.n)  # noise around the new level
    s.set_prices(price)
    ds = s.solve()
    z = _full_optimum(inp, price)
    assert s.last_path == "blocks"
    assert z * (1 - 1e-7) <= ds.attrs["solver_objective"] <= z * (1 + s.rel_gap)
    # and the certificate brackets the optimum
    assert s.blocks is not None and s.last_info.mip_gap <= s.rel_gap
