"""`twin whatif --optimize`: a simulation and an optimisation chained for the baseline and the changed case."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.schema.scenario import scenario_from_dict
from twin.whatif import whatif

pytestmark = pytest.mark.integration

DAY = {"name": "day", "site": "colossus-1", "start": "2025-07-15T00:00", "hours": 24, "step": "1h", "seed": 2,
       "initial_state": {"battery_soc_pu": 0.5}}
P_UNIT_MW = 16.5  # Solar SMT-130 (data/catalog)


def _kpi(table, key):
    row = table.set_index("kpi").loc[key]
    return float(row["base"]), float(row["case"]), float(row["difference"])


def test_dispatch_chained_after_both_cases_compares_their_plans(tmp_path):
    changes = tmp_path / "three.yaml"
    changes.write_text("changes:\n  limits:\n    turbines_max: 3\n")
    res = whatif(scenario_from_dict(DAY), file=changes, optimize="dispatch")
    assert set(res.optimized) == {"base", "case"} and not res.infeasible
    base_e, case_e, diff = _kpi(res.table, "dispatch_turbine_energy_mwh")
    # turbines ($0.0426/kWh: $3.5/MMBtu fuel + O&M) beat the grid at a flat load ($0.0338/kWh off-peak plus
    # the day's share of the $12.38/kW-month demand charge, ~$0.017/kWh): the base runs them for nearly all
    # of the bus load, the case runs all 3 allowed units flat out: 3 x 16.5 MW x 24 h
    load_mwh = float(res.optimized["base"].load_kw.sum()) / 1e3
    assert base_e > 0.9 * load_mwh
    assert case_e == pytest.approx(3 * P_UNIT_MW * 24, rel=1e-6)
    assert diff == pytest.approx(case_e - base_e)
    # the case buys the rest from the grid and pays for it
    b, c, d = _kpi(res.table, "dispatch_cost_total_usd")
    assert c > b and d == pytest.approx(c - b)
    assert _kpi(res.table, "dispatch_simulator_limits_ok")[:2] == (1.0, 1.0)


def test_cli_whatif_optimize_prints_the_plans_and_exits_1_when_a_case_is_infeasible(tmp_path):
    base = tmp_path / "day.yaml"
    base.write_text("\n".join(f"{k}: {v}" for k, v in DAY.items() if k != "initial_state")
                    + "\ninitial_state: {battery_soc_pu: 0.5}\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["whatif", str(base), "--event", "curtailment:60MW@12h+4h", "--optimize", "dispatch"])
    assert ok.exit_code == 0, ok.output
    assert "dispatch_cost_total_usd" in ok.output and "dispatch_simulator_limits_ok" in ok.output
    # no turbines and a 10 MW grid for a day: the battery cannot carry ~100 MW for 24 h
    bad = tmp_path / "none.yaml"
    bad.write_text("changes:\n  limits:\n    turbines_max: 0\n    grid_import_max_kw: 10000\n")
    res = runner.invoke(app, ["whatif", str(base), "--file", str(bad), "--optimize", "dispatch"])
    assert res.exit_code == 1
    assert "infeasible in the case" in res.output and "grid" in res.output.lower()
    # an optimiser the what-if cannot chain: the CLI's entry point reports the InputError and exits 1
    wrong = subprocess.run([sys.executable, "-c", "from twin.cli import main; main()", "whatif", str(base),
                            "--event", "curtailment:60MW@12h+4h", "--optimize", "placement"],
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 1 and "--optimize" in wrong.stderr + wrong.stdout
    assert "expected one of dispatch, capping" in wrong.stderr + wrong.stdout


def test_capping_chained_sees_the_curtailed_site_limit():
    # a 90 MW curtailment of the 150 MW grid cap: the capping optimiser's site limit at the tightest hour
    # falls by exactly 60 MW, and each case's capped load stays within its limit
    res = whatif(scenario_from_dict(DAY), ["curtailment:90MW@12h+4h"], optimize="capping")
    base, case, diff = _kpi(res.table, "capping_p_site_max_mw")
    assert diff == pytest.approx(-60.0, abs=1e-6)
    for name, limit in (("base", base), ("case", case)):
        assert res.optimized[name].attrs["p_capped_kw"] / 1e3 <= limit + 1e-6


def test_capping_limit_leaves_out_supply_that_is_out_of_service():
    # no turbines allowed and the Megapacks out all day: in the curtailed hours the site limit is the
    # 90 MW grid alone (not 90 MW + 150 MW of battery), and the capped load stays within it
    day = dict(DAY, limits={"turbines_max": 0},
               events=[{"kind": "outage", "component": "megapack", "start_h": 0, "hours": 24}])
    res = whatif(scenario_from_dict(day), ["curtailment:90MW@12h+4h"], optimize="capping")
    base, case, _ = _kpi(res.table, "capping_p_site_max_mw")
    assert base == pytest.approx(150.0) and case == pytest.approx(90.0)
    assert res.optimized["case"].attrs["p_capped_kw"] <= 90e3 + 1e-3
