"""Power capping on instances solved by hand; throughput curves checked against their stated shape."""

from __future__ import annotations

import numpy as np
import pytest

from optimizers.capping import CappingInputs, CappingJob, FeederLimit, cross_check_capping, optimize_capping
from optimizers.throughput import ThroughputCurve, curve_for, linear_curve, load_curves
from twin.errors import InfeasibleError, InputError
from twin.layout import expand
from twin.site import load_site

pytestmark = pytest.mark.unit

A = linear_curve("slope-0.5", 0.5)  # loses 0.5 of throughput per unit of power cut
B = linear_curve("slope-1.0", 1.0)


def two_jobs(limit_kw, **kw):
    return CappingInputs([CappingJob("A", 100, 0.7, A), CappingJob("B", 100, 0.7, B)], p_site_max_kw=limit_kw, **kw)


def test_cut_falls_on_the_flatter_curve_first():
    # uncapped 140 kW, limit 120 kW: cut 20 kW from A (loses 0.5/unit) -> A at 50/70, B uncapped
    ds = optimize_capping(two_jobs(120.0))
    assert ds.cap_pu.values == pytest.approx([50 / 70, 1.0])
    assert ds.throughput_pu.values == pytest.approx([1 - 0.5 * 20 / 70, 1.0])
    assert ds.attrs["throughput_gpu_eq"] == pytest.approx(100 * (1 - 0.5 * 20 / 70) + 100)
    assert ds.attrs["throughput_lost_gpu_eq"] == pytest.approx(100 * 0.5 * 20 / 70)
    # dual: one more kW lets A run 1/70 higher, worth 100 GPUs x 0.5 x 1/70 -> x1000 per MW
    assert ds.attrs["marginal_throughput_gpu_eq_per_mw"] == pytest.approx(100 * 0.5 / 70 * 1000)
    assert ds.attrs["p_capped_kw"] == pytest.approx(120.0)


def test_when_the_flat_job_hits_its_floor_the_steep_one_gives():
    # limit 70 kW: A at its floor 0.3 (21 kW), B gets 49 kW = 0.7 -> throughputs 0.65 and 0.7
    ds = optimize_capping(two_jobs(70.0))
    assert ds.cap_pu.values == pytest.approx([0.3, 0.7])
    assert ds.attrs["throughput_gpu_eq"] == pytest.approx(65 + 70)
    assert ds.attrs["marginal_throughput_gpu_eq_per_mw"] == pytest.approx(100 * 1.0 / 70 * 1000)


def test_no_cut_when_the_limit_is_loose():
    ds = optimize_capping(two_jobs(500.0))
    assert ds.cap_pu.values == pytest.approx([1.0, 1.0])
    assert ds.attrs["throughput_gpu_eq"] == pytest.approx(200.0)
    assert ds.attrs["throughput_lost_gpu_eq"] == pytest.approx(0.0)
    assert ds.attrs["marginal_throughput_gpu_eq_per_mw"] == pytest.approx(0.0)


def test_concave_curves_match_a_grid_search():
    c = curve_for("h100-sxm", "training")
    jobs = [CappingJob("big", 1000, 0.65, c), CappingJob("small", 300, 0.5, curve_for("h100-sxm", "inference"))]
    limit = 0.8 * (650 + 150)
    ds = optimize_capping(CappingInputs(jobs, p_site_max_kw=limit))
    best, best_caps = -1.0, None
    for x in np.linspace(0.3, 1.0, 701):
        y = (limit - 650 * x) / 150
        if 0.3 <= y <= 1.0 and 1000 * c(x) + 300 * jobs[1].curve(y) > best:
            best, best_caps = 1000 * c(x) + 300 * jobs[1].curve(y), (x, y)
    assert ds.attrs["throughput_gpu_eq"] >= best - 1e-6
    assert ds.attrs["throughput_gpu_eq"] <= best + 0.5  # grid step 0.001
    assert ds.cap_pu.values == pytest.approx(best_caps, abs=2e-3)  # the grid's best point (unique: both at 0.8)
    assert float((ds.cap_pu * [650, 150]).sum()) == pytest.approx(limit)


def test_feeder_limit_binds_only_its_jobs():
    inp = CappingInputs([CappingJob("A", 100, 0.7, B), CappingJob("B", 100, 0.7, B)], p_site_max_kw=None,
                        feeders=[FeederLimit("bw1", 60.0, np.array([1.0, 0.0]))])
    ds = optimize_capping(inp)
    assert ds.cap_pu.values == pytest.approx([60 / 70, 1.0])
    assert ds.attrs["throughput_gpu_eq"] == pytest.approx(100 * 60 / 70 + 100)  # slope 1: throughput = cap
    assert float(ds["marginal_throughput_gpu_eq_per_mw_feeder"].sel(feeder="bw1")) == pytest.approx(100 / 70 * 1000)


def test_limit_below_the_floors_is_explained_with_the_shortfall():
    # floors: 2 x 100 x 0.7 x 0.3 = 42 kW, plus 10 kW fixed; limit 40 kW -> short by 12 kW
    with pytest.raises(InfeasibleError) as e:
        optimize_capping(two_jobs(40.0, p_fixed_kw=10.0))
    msg = str(e.value)
    assert "site limit" in msg and "lowest caps" in msg and "short by 12.0 kW" in msg


def test_feeder_limit_below_its_floors_is_explained_with_the_shortfall():
    # job A alone under feeder bw1: floor 100 x 0.7 x 0.3 = 21 kW, plus 4 kW fixed, limit 20 kW -> short by 5 kW;
    # the site limit (none) and job B are not to blame
    inp = CappingInputs([CappingJob("A", 100, 0.7, A), CappingJob("B", 100, 0.7, B)], p_site_max_kw=None,
                        feeders=[FeederLimit("bw1", 20.0, np.array([1.0, 0.0]), p_fixed_kw=4.0)])
    with pytest.raises(InfeasibleError) as e:
        optimize_capping(inp)
    msg = str(e.value)
    assert "feeder bw1 limit of 20.0 kW" in msg and "(21.0 kW)" in msg and "short by 5.0 kW" in msg
    assert "site limit" not in msg
    assert e.value.details["feeder_power_limit"] == {"position": [0], "amount": [pytest.approx(5.0)]}


def test_bad_input():
    with pytest.raises(InputError):
        optimize_capping(CappingInputs([], p_site_max_kw=1.0))
    with pytest.raises(InputError):
        optimize_capping(CappingInputs([CappingJob("A", 0, 0.7, A)], p_site_max_kw=1.0))


def test_shipped_curves_are_concave_sourced_and_shaped():
    curves = load_curves()
    assert {"training-h100", "inference-h100", "training-default"} <= set(curves)
    for c in curves.values():
        assert c.source and c.confidence == "assumed"
        a, _ = c.segments()
        assert np.all(np.diff(a) <= 1e-12) and c(1.0) == pytest.approx(1.0)
    t = curves["training-h100"]
    assert 0.85 <= t(0.7) <= 0.92 and 0.92 <= t(0.8) <= 0.96


def test_a_convex_curve_is_rejected():
    with pytest.raises(InputError, match="concave"):
        ThroughputCurve("bad", np.array([0.3, 0.6, 1.0]), np.array([0.3, 0.4, 1.0]))


def test_caps_fed_back_through_the_layout():
    L = expand(load_site("tiny"))
    ds = optimize_capping(CappingInputs([CappingJob("A", 384, 0.7, curve_for("h100-sxm"))], p_site_max_kw=200.0))
    M = np.zeros((1, len(L.racks)))
    M[0, L.racks.role == 0] = 64
    other = np.where(L.racks.role == 0, 0.0, 10.0)
    cc = cross_check_capping(L, ds, M, other, {"hall-1-tx1": 200.0 + 20.0})
    assert cc["ok"]
    assert cc["p_equipment_kw"][L.index["hall-1-tx1"]] == pytest.approx(384 * float(ds.p_gpu_cap_kw[0]) + 20.0)
