"""Run store: round trip, listing, and a failed write leaves nothing behind."""

from __future__ import annotations

import json

import numpy as np
import pytest

import twin
from twin.errors import InputError
from twin.runs import list_runs, open_run, run_summary, save_run
from twin.schema.scenario import scenario_from_dict

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def ds():
    return twin.simulate(None, scenario_from_dict({"name": "rt", "site": "tiny", "hours": 6, "step": "1h"}))


def test_round_trip(tmp_path, ds):
    rid = save_run(ds, base=tmp_path)
    assert [m["id"] for m in list_runs(tmp_path)] == [rid]
    back = open_run(rid, tmp_path)
    for name in ("p_facility_kw", "p_rack_kw", "p_equipment_in_kw", "t_cdu_supply_c"):
        np.testing.assert_array_equal(back[name].values, ds[name].values)
    assert back.attrs["scenario"] == ds.attrs["scenario"]
    assert back.p_facility_kw.attrs["units"] == "kW"
    s = run_summary(rid, tmp_path)
    assert s["kpis"]["pue"] == pytest.approx(ds.twin.pue())
    assert (tmp_path / rid / "scenario.yaml").read_text().startswith("name: rt")
    assert back.twin.pue() == pytest.approx(ds.twin.pue())
    assert (tmp_path / rid).stat().st_mode & 0o777 == 0o755  # not the temporary folder's private mode
    assert [p.name for p in tmp_path.iterdir()] == [rid]  # no temporary folder left beside it


def test_summary_of_a_window_gives_the_window_span(tmp_path, ds):
    window = twin.simulate(None, scenario_from_dict({"name": "rt", "site": "tiny", "hours": 6, "step": "1h"}),
                           hours=2, start_offset_s=3 * 3600)
    rid = save_run(window, base=tmp_path)
    assert run_summary(rid, tmp_path)["hours"] == 2.0 and run_summary(save_run(ds, base=tmp_path), tmp_path)["hours"] == 6.0


def test_failed_write_leaves_nothing(tmp_path, ds):
    bad = ds.copy()
    bad.attrs["not_serialisable"] = {"a": object()}  # the writer raises on this attribute
    with pytest.raises((TypeError, ValueError)):
        save_run(bad, {"x": 1}, base=tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert list_runs(tmp_path) == []


def test_unknown_run(tmp_path):
    with pytest.raises(InputError, match="no such run"):
        open_run("nope", tmp_path)


def test_summary_is_json_with_no_nan(tmp_path, ds):
    rid = save_run(ds, {"a": float("nan"), "b": np.float64(2.0)}, base=tmp_path)
    s = json.loads((tmp_path / rid / "summary.json").read_text())
    assert s["kpis"] == {"a": None, "b": 2.0}
