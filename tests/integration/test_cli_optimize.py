"""`twin optimize placement|capping|dispatch|expansion|cooling` end to end on the tiny site: summary table, run
written to the store (or not with --no-save), bad input and infeasibility exit 1 with nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.runs import list_runs, open_run, run_summary

pytestmark = pytest.mark.integration

SCEN = Path(__file__).resolve().parents[2] / "scenarios" / "tiny-fixed.yaml"

# title and the rows each subcommand's table must show
EXPECT = {
    "placement": ("placement on tiny (tiny-fixed)",
                  ["jobs in queue", "jobs admitted", "GPUs free before", "binding limits", "cross-check", "solve time incl. warm start (s)"]),
    "capping": ("power capping on tiny (tiny-fixed)",
                ["hour", "site limit (MW)", "load uncapped (MW)", "lowest cap (pu)", "layout cross-check"]),
    "dispatch": ("dispatch on tiny (tiny-fixed)",
                 ["cost_total_usd", "load energy at the bus (MWh)", "steps", "simulator cross-check: limits respected",
                  "simulator: energy cost at the meter (USD)"]),
    "expansion": ("capacity expansion on tiny (tiny-fixed)",
                  ["turbines_new", "grid_new_kw", "chiller_new_kw_thermal", "cost_annual_total_usd"]),
    "cooling": ("cooling setpoints on tiny (tiny-fixed)",
                ["hours", "setpoint range (C)", "cost saved (USD)", "simulator cross-check"]),
}


def _invoke(args, runs: Path):
    return CliRunner().invoke(app, ["optimize", *args], env={"COLUMNS": "200", "TWIN_RUNS_DIR": str(runs)})


@pytest.mark.parametrize("kind", list(EXPECT))
def test_subcommand_prints_its_table_and_writes_the_run(kind, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("TWIN_RUNS_DIR", str(runs))
    res = _invoke([kind, str(SCEN)], runs)
    assert res.exit_code == 0, res.output
    title, labels = EXPECT[kind]
    out = res.stdout
    assert title in out
    for label in [*labels, "solver status"]:
        assert any(line.strip("│┃ ").startswith(label) for line in out.splitlines()), f"{label!r} not in\n{out}"
    rid = out.strip().splitlines()[-1]
    assert f"run id: {rid}" in out
    assert [m["id"] for m in list_runs(runs)] == [rid]
    summary = run_summary(rid, runs)
    assert summary["scenario"] == f"tiny-fixed-opt-{kind}" and summary["site"] == "tiny"
    assert set(labels) <= set(summary["kpis"]) and "solver status" in summary["kpis"]
    ds = open_run(rid, runs)
    assert ds.attrs["optimizer"] == kind and ds.attrs["site"] == "tiny"


def test_no_save_writes_nothing(tmp_path):
    runs = tmp_path / "runs"
    res = _invoke(["expansion", str(SCEN), "--no-save"], runs)
    assert res.exit_code == 0, res.output
    assert "capacity expansion on tiny (tiny-fixed)" in res.stdout and "run id" not in res.stdout
    assert not runs.exists() or not any(runs.iterdir())


def test_infeasible_explains_and_writes_nothing(tmp_path):
    runs = tmp_path / "runs"
    res = _invoke(["capping", str(SCEN), "--limit-mw", "0.01"], runs)
    assert res.exit_code == 1
    assert "infeasible:" in res.stderr and "site limit of 10.0 kW" in res.stderr
    assert "run id" not in res.stdout and "power capping on" not in res.stdout
    assert not runs.exists() or not any(runs.iterdir())


def test_bad_scenario_is_an_input_error_exit_1(tmp_path):
    missing = tmp_path / "nope.yaml"
    env = {"COLUMNS": "200", "TWIN_RUNS_DIR": str(tmp_path / "runs"), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", "from twin.cli import main; main()", "optimize", "dispatch", str(missing)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 1
    assert "error: invalid input" in res.stderr and f"{missing}: file not found" in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert not (tmp_path / "runs").exists()


def test_dispatch_table_shows_what_the_outages_left_in_service(tmp_path):
    # colossus-1's 15 turbines with 13 out for 10 h and the Megapacks out for 4 h: the plan works with 2
    # units and no battery power in those hours, and the table says so
    sc = tmp_path / "gt-out.yaml"
    sc.write_text("name: gt-out\nsite: colossus-1\nstart: 2025-07-15T00:00\nhours: 24\nstep: 1h\nseed: 2\n"
                  "initial_state: {battery_soc_pu: 0.5}\nevents:\n"
                  "  - {kind: outage, component: gt, units: 13, start_h: 8, hours: 10}\n"
                  "  - {kind: outage, component: megapack, start_h: 8, hours: 4}\n")
    res = _invoke(["dispatch", str(sc), "--no-save"], tmp_path / "runs")
    assert res.exit_code == 0, res.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in res.output.splitlines()
            if line.count("│") >= 3}
    assert rows["turbine units in service, fewest"] == "2"
    assert float(rows["battery power in service, least (MW)"]) == 0.0
    assert rows["simulator cross-check: limits respected"] == "yes"
