"""The dashboard's callback logic called directly: floor grids, topology values, what-if form validation,
background jobs and the twin clock (on the tiny site)."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import numpy as np
import pytest

from dashboards.clock import Snapshot
from dashboards.floorgrid import build_floor
from dashboards.jobs import RunJobs
from dashboards.topomodel import build_topology, node_values
from twin.layout import expand
from twin.site import load_site


@pytest.fixture(scope="module")
def colossus():
    return expand(load_site("colossus-1"))


@pytest.fixture(scope="module")
def tiny():
    return expand(load_site("tiny"))


def _snap(n_racks: int, p_rack_kw=None, t_cdu=None, loading=None, failed=()) -> Snapshot:
    return Snapshot(seq=0, t_s=0.0, time=datetime(2025, 7, 1, 12), speed=60.0, mode="live", status="running",
                    values={"p_it_kw": 1.0}, p_rack_kw=p_rack_kw, t_cdu_supply_c=t_cdu, loading_pu=loading,
                    cool_loading_pu=loading, failed=tuple(failed))


class _Ctx:
    """The parts of a TwinContext the view functions read."""

    def __init__(self, layout):
        self.layout = layout
        self.site = layout.site
        self.site_name = layout.site.name
        self.floor = build_floor(layout)
        self.topology = build_topology(layout)


# ------------------------------------------------------------------------------------------ floor


@pytest.mark.unit
def test_floor_grid_tiny_places_every_rack(tiny):
    floor = build_floor(tiny)
    assert len(floor.halls) == 1
    h = floor.halls[0]
    # tiny: 8 racks, 4 per row -> 2 rows x 4 columns, rack k at row k // 4, column k % 4
    assert (h.n_rows, h.n_cols) == (2, 4)
    z = h.fill(np.arange(8, dtype=float))
    np.testing.assert_array_equal(z, [[0, 1, 2, 3], [4, 5, 6, 7]])
    assert h.rack_ids[1, 2] == "hall-1-r02-03"
    assert h.roles[0, 0] == "gpu" and h.roles[1, 3] == "storage"  # 6 GPU racks then 2 storage racks


def _hall_sizes(layout) -> list[tuple[int, int]]:
    """(racks, racks per row) of every hall, read from the site definition (not from the expanded layout)."""
    out = []
    for tpl in layout.site.halls:
        out += [(sum(g.count for g in tpl.racks), tpl.racks_per_row)] * tpl.count
    return out


@pytest.mark.unit
def test_floor_grid_colossus_halls(colossus):
    floor = build_floor(colossus)
    r = colossus.racks
    sizes = _hall_sizes(colossus)
    assert [h.hall_id for h in floor.halls] == ["hall-1", "hall-2", "hall-3", "hall-4"]
    assert [len(h.racks) for h in floor.halls] == [n for n, _ in sizes]
    assert [(h.n_rows, h.n_cols) for h in floor.halls] == [(-(-n // per), per) for n, per in sizes]
    values = np.arange(len(r), dtype=float)
    grids = floor.grids(values)
    assert sum(int(np.isfinite(g).sum()) for g in grids) == len(r) == sum(n for n, _ in sizes)
    # every rack sits at its own (row, col) and nowhere else
    for h, g in zip(floor.halls, grids, strict=True):
        np.testing.assert_array_equal(g[r.row[h.racks], r.col[h.racks]], h.racks)
    # racks fill rows in order: the last row holds n - (rows - 1) * per racks, the rest of it is empty
    n, per = sizes[0]
    last = n - (-(-n // per) - 1) * per
    assert np.isfinite(grids[0][-1, :last]).all() and np.isnan(grids[0][-1, last:]).all()


@pytest.mark.unit
def test_floor_metrics(tiny):
    floor = build_floor(tiny)
    p = np.full(8, 10.0)
    np.testing.assert_allclose(floor.metric_values("headroom", p, None), tiny.racks.p_max_kw - 10.0)
    assert np.isnan(floor.metric_values("t_cdu", p, None)).all()  # no temperatures yet: no colour, not zero
    with pytest.raises(ValueError, match="unknown floor metric"):
        floor.metric_values("bogus", p, None)


@pytest.mark.unit
def test_floor_figures_and_patches(colossus):
    from dashboards.views import floor_figures, floor_patches, floor_summary

    ctx = _Ctx(colossus)
    p = np.linspace(1.0, 80.0, len(colossus.racks))
    figs = floor_figures(ctx, "power", _snap(len(p), p_rack_kw=p))
    assert len(figs) == 4
    h = ctx.floor.halls[0]
    z = figs[0]["data"][0]["z"]
    row, col = colossus.racks.row[h.racks[7]], colossus.racks.col[h.racks[7]]
    assert z[row][col] == pytest.approx(round(p[h.racks[7]], 2))
    empty = np.argwhere(np.isnan(h.fill(p)))
    assert len(empty) == 1  # hall-1: 551 racks on a 23 x 24 floor
    assert z[empty[0][0]][empty[0][1]] is None  # empty slot is null, not NaN (JSON)
    patches = floor_patches(ctx, "power", _snap(len(p), p_rack_kw=p * 0.5))
    assert len(patches) == 4
    # a live patch re-assigns only z and the colour range of each hall's heatmap, with the new values
    ops = {tuple(o["location"]): o["params"]["value"] for o in patches[0].to_plotly_json()["operations"]}
    assert set(ops) == {("data", 0, "z"), ("data", 0, "zmin"), ("data", 0, "zmax")}
    assert ops[("data", 0, "z")][row][col] == pytest.approx(round(0.5 * p[h.racks[7]], 2))
    assert ops[("data", 0, "z")][empty[0][0]][empty[0][1]] is None
    txt = floor_summary(ctx, "power", _snap(len(p), p_rack_kw=p))
    assert f"{len(p):,} racks" in txt and "max 80.0 kW" in txt


# --------------------------------------------------------------------------------------- topology


@pytest.mark.unit
def test_topology_aggregates_racks_per_busway(colossus):
    topo = build_topology(colossus)
    view = topo.power
    kinds = [n.kind for n in view.nodes]
    # down to the busways and one rack aggregate per busway, never the 12,500 GPU nodes
    n_bw = len(colossus.of_kind("busway"))
    assert n_bw > 100 and kinds.count("busway") == n_bw and kinds.count("racks") == n_bw and "server" not in kinds
    assert sum(n.n_racks for n in view.nodes if n.kind == "racks") == len(colossus.racks)
    assert sum(n.n_gpus for n in view.nodes if n.kind == "racks") == 100_000
    # one-hall view keeps only what feeds that hall
    h1 = topo.view("power", "hall-1")
    ids = {n.id for n in h1.nodes}
    assert "swgr-1" in ids and "swgr-2" not in ids and "hall-2-tx1" not in ids


@pytest.mark.unit
def test_topology_values_and_details(tiny):
    from dashboards.views import topology_details, topology_elements

    ctx = _Ctx(tiny)
    view = ctx.topology.power
    p = np.arange(1, 9, dtype=float) * 10.0  # racks 10..80 kW
    loading = np.full(len(tiny.equip.ids), 0.5)
    lo, load = node_values(view, tiny, loading, p)
    pos = view.position()
    # busway 1 feeds racks 0-3, busway 2 racks 4-7 (feeder = position * 2 // 8)
    assert load[pos["hall-1-tx1-bw1/racks"]] == pytest.approx(10 + 20 + 30 + 40)
    assert load[pos["hall-1-tx1-bw2/racks"]] == pytest.approx(50 + 60 + 70 + 80)
    tx = pos["hall-1-tx1"]
    assert load[tx] == pytest.approx(0.5 * view.nodes[tx].rating_kw)
    snap = _snap(8, p_rack_kw=p, loading=loading, failed=["hall-1-tx1"])
    rows = dict(topology_details(ctx, "power", "hall-1-tx1", snap))
    assert rows["Status"].startswith("FAILED")
    assert rows["Loading"] == "50.0 %"
    assert rows["Headroom"] == f"{0.5 * view.nodes[tx].rating_kw:,.0f} kW"
    assert rows["Racks fed"] == "8" and rows["GPUs fed"] == "384"
    els = topology_elements(ctx, "power", snap)
    failed = [e for e in els if "failed" in e.get("classes", "").split()]
    assert [e["data"]["id"] for e in failed] == ["hall-1-tx1"]
    # everything below the only transformer loses supply; the switchgear above it does not
    dead = {e["data"]["id"] for e in els if "dead" in e.get("classes", "").split()}
    assert dead == {"hall-1-tx1-bw1", "hall-1-tx1-bw2", "hall-1-tx1-bw1/racks", "hall-1-tx1-bw2/racks"}


# ---------------------------------------------------------------------------------- what-if form

GOOD = {"horizon_h": 24, "step": "1h", "enabled": ["outage"], "outage_component": "hall-1-tx1", "outage_units": None,
        "outage_start_h": 2, "outage_hours": 6}


@pytest.mark.unit
def test_whatif_valid_form_builds_baseline_and_case(tiny):
    from dashboards.whatif import validate_form

    spec, errors = validate_form(_Ctx(tiny), dict(GOOD), datetime(2025, 7, 1, 13, 25))
    assert errors == []
    assert spec.baseline.events == () and spec.case.hours == 24 and spec.case.step == "1h"
    (ev,) = spec.case.events
    assert (ev.kind, ev.component, ev.start_h, ev.hours) == ("outage", "hall-1-tx1", 2, 6)
    assert spec.case.start == datetime(2025, 7, 1, 13, 0)  # on the hour, as the twin shows it


@pytest.mark.unit
@pytest.mark.parametrize(("change", "message"), [
    ({"horizon_h": -3}, "Horizon (h): must be greater than 0"),
    ({"horizon_h": "abc"}, "is not a number"),
    ({"horizon_h": 10_000}, "must be at most 336"),
    ({"enabled": []}, "Choose at least one change"),
    ({"outage_component": "no-such-thing"}, "is not equipment of tiny"),
    ({"outage_units": 3}, "has 1 unit(s), cannot lose 3"),
    ({"outage_start_h": 30}, "is not inside the 24 h horizon"),
    ({"outage_hours": 0}, "Outage duration (h): must be greater than 0"),
    ({"enabled": ["heat_wave"], "heat_delta_k": 40, "heat_start_h": 0, "heat_hours": 5}, "must be at most 15"),
    ({"enabled": ["curtailment"], "curt_mw": 5, "curt_start_h": 0, "curt_hours": 1}, "must be at most 1.5"),
    ({"enabled": ["battery"], "battery_units": 10}, "tiny has no battery"),
    ({"enabled": ["phase"], "phase_site": "tiny"}, "choose a site other than the one running"),
    ({"step": "7min"}, "is not one of"),
])
def test_whatif_bad_input_reports_and_starts_nothing(tiny, change, message):
    from dashboards.whatif import validate_form

    spec, errors = validate_form(_Ctx(tiny), {**GOOD, **change}, datetime(2025, 7, 1, 13))
    assert spec is None
    assert any(message in e for e in errors), errors


# ------------------------------------------------------------------------------ background jobs


@pytest.mark.unit
def test_jobs_run_side_by_side_with_progress():
    jobs = RunJobs(max_workers=2)
    gate = threading.Barrier(2, timeout=5)  # both jobs must be running at once to pass the barrier

    def work(progress):
        progress(0.5, "half way")
        gate.wait()
        return 42

    a, b = jobs.submit("a", work), jobs.submit("b", work)
    deadline = time.time() + 10
    while not all(jobs.status(j).finished for j in (a, b)) and time.time() < deadline:
        time.sleep(0.01)
    assert [jobs.status(j).state for j in (a, b)] == ["done", "done"]
    assert jobs.status(a).result == 42 and jobs.status(a).progress_pu == 1.0

    def bad(progress):
        raise ValueError("no good")

    c = jobs.submit("c", bad)
    while not jobs.status(c).finished:
        time.sleep(0.01)
    assert jobs.status(c).state == "failed" and "no good" in jobs.status(c).error
    jobs.shutdown()


# ----------------------------------------------------------------------------------- twin clock


@pytest.mark.integration
def test_clock_runs_consecutive_windows_on_tiny(tiny):
    from dashboards.clock import TwinClock

    clock = TwinClock("tiny", tiny, speed=600.0, window_s=600.0, step_s=10.0)
    assert clock.snapshot().status == "starting"
    assert clock.step_once()  # first window
    s0 = clock.snapshot()
    assert s0.ready and s0.p_rack_kw.shape == (8,) and np.isfinite(s0.values["p_facility_kw"])
    # power balance the twin reports: facility = IT + conversion losses + cooling - unserved
    v = s0.values
    assert v["p_facility_kw"] == pytest.approx(v["p_it_kw"] + v["p_loss_kw"] + v["p_cooling_kw"] - v["p_unserved_kw"], rel=1e-6)
    # the next window continues where the last ended
    clock._anchor_twin_s = clock._buffer_end_s - 1.0  # jump near the end so that the buffer runs short
    assert clock.step_once()
    assert len(clock._frames) >= 1
    assert clock._buffer_end_s == pytest.approx(1200.0)
    # twin time moves at `speed` x real time
    t1 = clock.now_s()
    time.sleep(0.2)
    assert clock.now_s() - t1 == pytest.approx(0.2 * 600.0, rel=0.5)
    hist = clock.history(3600)
    assert len(hist["t_s"]) > 0 and np.all(np.diff(hist["t_s"]) > 0)


@pytest.mark.integration
def test_clock_replays_a_stored_run(tiny, tmp_path):
    from dashboards.clock import TwinClock
    from twin import simulate
    from twin.errors import InputError
    from twin.runs import save_run
    from twin.schema.scenario import Scenario

    sc = Scenario(name="replay", site="tiny", start=datetime(2025, 7, 1), hours=2, step="5min",
                  events=({"kind": "outage", "component": "hall-1-tx1", "start_h": 1, "hours": 0.5},))
    ds = simulate("tiny", sc)
    run_id = save_run(ds, base=tmp_path)
    clock = TwinClock("tiny", tiny, speed=60.0, replay=run_id, runs_dir=tmp_path)
    assert clock.mode == "replay" and clock.step_s == 300.0 and clock.epoch == datetime(2025, 7, 1)
    assert clock.step_once()
    s = clock.snapshot()
    assert s.values["p_facility_kw"] == pytest.approx(float(ds["p_facility_kw"][0]))
    np.testing.assert_allclose(s.p_rack_kw, ds["p_rack_kw"].values[0], rtol=1e-6)
    # the frames carry the outage: hall-1-tx1 is out from 1 h to 1.5 h (steps 12-17)
    frame = clock._frames[0]
    out = frame.failed[:, tiny.index["hall-1-tx1"]]
    np.testing.assert_array_equal(np.flatnonzero(out), np.arange(12, 18))
    with pytest.raises(InputError, match="--site tiny"):
        TwinClock("colossus-1", expand(load_site("colossus-1")), replay=run_id, runs_dir=tmp_path)


@pytest.mark.unit
def test_port_check_reports_a_busy_port():
    import socket

    from twin.cli.dash_cmd import port_problem

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert "already in use" in port_problem("127.0.0.1", port)
    assert port_problem("127.0.0.1", port) is None  # free again once closed
    assert "out of range" in port_problem("127.0.0.1", 70000)


@pytest.mark.unit
def test_compare_rows_labels_and_differences():
    from dashboards.whatif import compare_rows

    table = [{"kpi": "energy_facility_mwh", "base": 1000.0, "case": 990.5, "difference": -9.5},
             {"kpi": "stranded_gpus_max", "base": 0.0, "case": 1856.0, "difference": 1856.0},
             {"kpi": "pue", "base": 1.25, "case": float("nan"), "difference": float("nan")},
             {"kpi": "not_a_labelled_kpi", "base": 1.0, "case": 2.0, "difference": 1.0}]
    rows = compare_rows(table)
    assert rows == [("facility energy (MWh)", "1,000.0", "990.5", "-9.5"),
                    ("stranded GPUs (max)", "0", "1,856", "+1,856")]


@pytest.mark.unit
def test_history_decimation_keeps_envelope_and_newest_point():
    from dashboards.views import decimate

    n = 1500
    t = np.arange(n, dtype=float)
    hist = {"t_s": t, "time": t.astype("datetime64[s]"), "p_it_kw": np.full(n, 5.0),
            "p_it_min_kw": np.full(n, 1.0), "p_it_max_kw": np.full(n, 9.0)}
    hist["p_it_min_kw"][700] = -3.0
    hist["p_it_max_kw"][1200] = 40.0
    out = decimate(hist, 720)
    assert len(out["t_s"]) <= 720
    assert out["p_it_min_kw"].min() == -3.0 and out["p_it_max_kw"].max() == 40.0  # extremes survive binning
    assert out["p_it_kw"].mean() == pytest.approx(5.0)
    assert out["t_s"][-1] >= n - 3  # the newest bin is kept
