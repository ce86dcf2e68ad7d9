"""The utility report (twin.report): self-contained HTML, the figures a planner reads checked against the KPIs
and hand calculations, every site component in the assumptions table with its source, the PDF, the CLI."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import twin
from twin.errors import InputError
from twin.report import build_report, phase_table, report_html, write_report
from twin.report.pdf import CHROMIUM, pdf_pages
from twin.runs import save_run
from twin.schema.scenario import scenario_from_dict

pytestmark = pytest.mark.integration

CI = os.environ.get("CI", "").lower() == "true"
needs_chromium = pytest.mark.skipif(not CI and not Path(CHROMIUM).exists(),
                                    reason=f"no Chromium at {CHROMIUM}: the PDF cannot be printed here (runs on CI)")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def week(store):
    """Colossus 1, one winter week hourly, every GPU in training, stored in a private run store."""
    sc = scenario_from_dict({"name": "c1-week", "site": "colossus-1", "hours": 168, "step": "1h", "seed": 1,
                             "workload": {"fill_pu": 1.0}}, "test")
    ds = twin.simulate(None, sc)
    rid = save_run(ds, base=store)
    return ds, rid


@pytest.fixture(scope="module")
def page(week, store):
    return report_html(week[1], store)


@pytest.fixture(scope="module")
def rep(week):
    return build_report(week[0], week[1])


def _kpi_cell(page: str, key: str) -> str:
    m = re.search(rf'data-kpi="{re.escape(key)}">([^<]*)</td>', page)
    assert m, f"no KPI cell {key}"
    return html.unescape(m.group(1))


def test_html_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", page, re.I), "a script loads from the network"
    assert not re.search(r"<link[^>]+href=[\"']?(https?:)?//", page, re.I), "a stylesheet loads from the network"
    assert '<script src="http' not in page
    # plotly.js itself is embedded, exactly once, and every figure is drawn by it
    import plotly.offline

    assert page.count(plotly.offline.get_plotlyjs()) == 1
    for fig_id in ("fig-profile", "fig-ldc", "fig-ramps", "fig-energy", "fig-dispatch"):
        assert f'id="{fig_id}"' in page


def test_peak_and_load_factor_match_kpis_and_hand_calculation(week, page):
    ds, _ = week
    k = ds.twin.kpis()
    p_mw = ds["p_facility_kw"].values / 1000.0
    # hourly steps: every clock-aligned 15-minute block lies inside one hour, so the 15-min peak is the largest hour
    assert k["peak_demand_15min_mw"] == pytest.approx(p_mw.max(), rel=1e-12)
    assert k["load_factor"] == pytest.approx(p_mw.mean() / p_mw.max(), rel=1e-12)
    assert _kpi_cell(page, "peak_demand_15min_mw") == f"{k['peak_demand_15min_mw']:,.2f} MW"
    assert _kpi_cell(page, "load_factor") == f"{k['load_factor']:.3f}"
    assert 60.0 < k["peak_demand_15min_mw"] < 150.0  # Colossus 1: ~100k H100 under a 150 MW feed


def test_every_component_in_assumptions_with_its_source(week, rep, page):
    ds, _ = week
    site = twin.load_site("colossus-1")
    table = rep.tables["assumptions"]
    assert set(table["confidence"]) <= {"published", "derived", "assumed", "not stated", "high"}
    for c in site.components:
        rows = table[table["item"].str.split(" ").str[0] == c.id]
        assert len(rows) == 1, f"component {c.id} missing from the assumptions table"
        assert c.source and rows["source"].iloc[0] == c.source
        assert rows["confidence"].iloc[0] == c.confidence
        assert html.escape(c.source, quote=True) in page, f"source of {c.id} not in the HTML"
    for h in site.halls:
        assert any(table["item"].str.startswith(h.id)), f"hall {h.id} missing"
    for kind, entries in site.parts.model_dump().items():
        for name in entries:
            assert ((table["group"] == f"catalog part: {kind}") & (table["item"] == name)).any(), f"{kind} {name} missing"
    # the engine's prices and factors carry their sources too: every entry of data/costs.yaml the engine reads
    from twin.sim.engine import COST_KEYS

    prices = table[table["group"] == "prices and factors"]
    assert sorted(prices["item"]) == sorted(f"{sec}.{key}" for sec, key in COST_KEYS.values())
    assert (prices["source"] != "not stated").all()


def test_load_duration_curve_is_the_sorted_profile(week, rep):
    ds, _ = week
    fig = rep.figures["fig-ldc"]
    x, y = np.asarray(fig.data[0].x, float), np.asarray(fig.data[0].y, float)
    expect = np.sort(ds["p_facility_kw"].values)[::-1] / 1000.0
    np.testing.assert_allclose(y, expect, rtol=1e-12)
    assert x[-1] == pytest.approx(100.0) and np.all(np.diff(x) > 0)


def test_ramp_histogram_is_the_kpi_ramp_distribution(week, rep):
    ds, _ = week
    k = ds.twin.kpis()
    x = np.asarray(rep.figures["fig-ramps"].data[0].x, float)
    # hourly steps: each ramp is the hour-to-hour change scaled to MW/min, by hand
    np.testing.assert_allclose(x, np.diff(ds["p_facility_kw"].values / 1000.0) / 60.0, rtol=1e-12)
    assert x.max() == pytest.approx(k["ramp_up_max_mw_min"], rel=1e-12)
    assert -x.min() == pytest.approx(k["ramp_down_max_mw_min"], rel=1e-12)


def test_energy_balances_and_months_add_up(week, rep):
    ds, _ = week
    k = ds.twin.kpis()
    e = dict(rep.tables["energy"].values)
    supply = e["grid import"] + e["on-site gas turbines"] + e["battery discharge"] - e["battery charge"]
    assert supply == pytest.approx(e["site demand (boundary)"], rel=1e-9)
    assert e["IT"] + e["cooling"] + e["conversion losses"] - e["unserved"] == pytest.approx(e["site demand (boundary)"], rel=1e-6)
    m = rep.tables["monthly"]
    assert m["energy_facility_mwh"].sum() == pytest.approx(k["energy_facility_mwh"], rel=1e-9)
    assert m["peak_demand_15min_mw"].max() == pytest.approx(k["peak_demand_15min_mw"], rel=1e-12)
    assert m["co2_t"].sum() == pytest.approx(k["co2_t"], rel=1e-9)


def test_n1_table_is_twin_sim_n1(week, rep, page):
    ds, _ = week
    expect = ds.twin.n1()
    got = rep.tables["n1"]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expect.reset_index(drop=True))
    worst = int(expect["stranded_gpus"].max())
    assert worst > 0 and f">{worst:,}<" in page


def test_hourly_csv_is_the_profile(week, store, tmp_path):
    ds, rid = week
    paths = write_report(rid, tmp_path, pdf=False, base=store)
    assert paths["html"].exists() and "pdf" not in paths
    csv = pd.read_csv(paths["csv"], index_col=0, parse_dates=True)
    assert len(csv) == 168
    np.testing.assert_allclose(csv["facility_mw"].values, ds["p_facility_kw"].values / 1000.0, atol=1e-4)


def test_phase_table_compares_peaks(week, store):
    ds, rid = week
    tiny = twin.simulate(None, twin.load_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "tiny-fixed.yaml"))
    tid = save_run(tiny, base=store)
    from twin.report import _resolve

    table = phase_table([_resolve(r, store) for r in (rid, tid)])
    assert list(table["phase"]) == ["colossus-1", "tiny"]
    for (_, row), d in zip(table.iterrows(), (ds, tiny), strict=True):
        assert row["peak_demand_15min_mw"] == pytest.approx(d.twin.kpis()["peak_demand_15min_mw"])
        assert row["gpus"] == d.attrs["n_gpus"]


def test_bad_run_id_is_an_input_error(store):
    with pytest.raises(InputError, match="no such run"):
        report_html("no-such-run", store)


def _cli(args, env_extra, cwd):
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-c", "from twin.cli import main; main()", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def test_cli_bad_run_id_exits_1(store, tmp_path):
    res = _cli(["report", "no-such-run", "--out", str(tmp_path)], {"TWIN_RUNS_DIR": str(store)}, tmp_path)
    assert res.returncode == 1
    assert "no-such-run" in res.stderr and "no such run" in res.stderr and "Traceback" not in res.stderr


def test_cli_no_pdf_prints_paths(week, store, tmp_path):
    _, rid = week
    res = _cli(["report", rid, "--out", str(tmp_path), "--no-pdf"], {"TWIN_RUNS_DIR": str(store)}, tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"html: {tmp_path / (rid + '.html')}" in res.stdout
    assert (tmp_path / f"{rid}.html").exists() and not (tmp_path / f"{rid}.pdf").exists()


def test_cli_missing_browser_exits_1(week, store, tmp_path):
    _, rid = week
    res = _cli(["report", rid, "--out", str(tmp_path)], {"TWIN_RUNS_DIR": str(store), "TWIN_CHROMIUM": "/nonexistent/chromium"},
               tmp_path)
    assert res.returncode == 1
    assert "/nonexistent/chromium" in res.stderr and "--no-pdf" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.browser
@needs_chromium
def test_pdf_has_pages(week, store, tmp_path):
    _, rid = week
    paths = write_report(rid, tmp_path, pdf=True, base=store)
    data = paths["pdf"].read_bytes()
    assert data[:4] == b"%PDF"
    assert data.count(b"/Type /Page") - data.count(b"/Type /Pages") >= 2
    assert pdf_pages(paths["pdf"]) >= 2
    assert not list(tmp_path.glob(".*")), "temporary files left behind"
