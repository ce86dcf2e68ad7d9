"""`twin simulate`, `twin runs list|show`, `twin whatif`: run the engine, store runs, compare cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from twin.cli import app
from twin.errors import InputError

runs_app = typer.Typer(no_args_is_help=True, help="Stored simulation runs (runs/ or $TWIN_RUNS_DIR)")
app.add_typer(runs_app, name="runs")

SHOWN = ("hours", "energy_facility_mwh", "pue", "p_facility_mean_mw", "p_facility_max_mw", "peak_demand_15min_mw",
         "load_factor", "ramp_up_max_mw_s", "ramp_down_max_mw_s", "ramp_up_max_mw_min", "band_energy_0.1_2_hz_mw2",
         "band_energy_3_30_hz_mw2", "swing_60s_max_mw", "swing_within_step_max_mw", "energy_grid_mwh",
         "energy_gas_turbine_mwh", "energy_battery_discharge_mwh", "energy_unserved_mwh", "water_gal_per_day",
         "wue_l_kwh", "co2_t", "nox_t", "cost_total_usd", "headroom_min_pu", "headroom_min_equipment",
         "stranded_gpus_max", "n1_stranded_gpus_max", "n1_stranded_mw_max", "n1_overloads", "job_failures")


def _console():
    from rich.console import Console

    con = Console()
    return con if con.is_terminal else Console(width=120)


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        a = abs(v)
        return f"{v:,.0f}" if a >= 1000 else f"{v:,.3f}" if a >= 1 or a == 0 else f"{v:.4g}"
    return str(v)


def _kpi_table(k: dict, title: str):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("KPI")
    t.add_column("value", justify="right")
    for key in SHOWN:
        if key in k and k[key] is not None:
            t.add_row(key, _fmt(k[key]))
    return t


def _run_with_progress(fn, label: str):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=_console(), transient=True) as prog:
        task = prog.add_task(label, total=1.0)

        def tick(f, stage):
            prog.update(task, completed=f, description=f"{label}: {stage}")

        return fn(tick)


@app.command("simulate")
def simulate_cmd(
    scenario: Annotated[Path | None, typer.Argument(help="Scenario YAML (or use --site for the default scenario)")] = None,
    site: Annotated[str | None, typer.Option("--site", help="Site name or path: runs every GPU in training")] = None,
    hours: Annotated[float | None, typer.Option("--hours", help="Span in hours (default scenario: 24)")] = None,
    step: Annotated[str | None, typer.Option("--step", help="Step: 1h, 15min, 1s, 0.1s")] = None,
    no_save: Annotated[bool, typer.Option("--no-save", help="Do not write the run to the run store")] = False,
) -> None:
    """Simulate a scenario, print its KPIs and store the run (prints the run id)."""
    from twin.runs import save_run
    from twin.schema.scenario import check_scenario, load_scenario, scenario_from_dict
    from twin.sim.engine import simulate

    if scenario is None and site is None:
        raise InputError.one("twin simulate", "SCENARIO", "give a scenario file or --site NAME")
    if scenario is not None:
        sc = load_scenario(scenario)
        if hours is not None or step is not None or site is not None:
            raw = sc.model_dump(mode="json")
            raw.update({k: v for k, v in (("hours", hours), ("step", step), ("site", site)) if v is not None})
            sc = scenario_from_dict(raw, str(scenario))
            check_scenario(sc, str(scenario))
    else:
        sc = scenario_from_dict({"name": f"{Path(site).stem}-default", "site": site, "hours": hours or 24.0,
                                 "step": step or "1h", "workload": {"fill_pu": 1.0}}, "twin simulate --site")
        check_scenario(sc, "twin simulate --site")
    ds = _run_with_progress(lambda tick: simulate(None, sc, progress=tick), f"simulating {sc.name}")
    import twin.accessor  # noqa: F401

    k = ds.twin.kpis(n1=True)
    con = _console()
    con.print(_kpi_table(k, f"{sc.name} on {ds.attrs['site']}: {sc.hours:g} h at {sc.step}"))
    if not no_save:
        rid = save_run(ds, k)
        con.print(f"run id: [bold]{rid}[/]")
        typer.echo(rid)


@runs_app.command("list")
def runs_list() -> None:
    """Stored runs, newest first."""
    from rich.table import Table

    from twin.runs import list_runs

    t = Table(title="Runs", title_justify="left")
    for col in ("id", "created (UTC)", "site", "scenario", "hours", "step s", "mean MW", "PUE"):
        t.add_column(col)
    for m in list_runs():
        k = m.get("kpis", {})
        t.add_row(m["id"], m.get("created_utc", ""), str(m.get("site")), str(m.get("scenario")), _fmt(m.get("hours")),
                  _fmt(m.get("step_s")), _fmt(k.get("p_facility_mean_mw")), _fmt(k.get("pue")))
    _console().print(t)


@runs_app.command("show")
def runs_show(run_id: Annotated[str, typer.Argument(help="Run id from `twin runs list`")]) -> None:
    """KPIs and scenario of one stored run."""
    from twin.runs import run_path, run_summary

    m = run_summary(run_id)
    con = _console()
    con.print(_kpi_table(m.get("kpis", {}), f"run {run_id}: {m.get('scenario')} on {m.get('site')}"))
    con.print(f"folder: {run_path(run_id)}")
    con.print(json.dumps({k: v for k, v in m.items() if k != "kpis"}, indent=2))


@app.command("whatif")
def whatif_cmd(
    base: Annotated[Path, typer.Argument(help="Baseline scenario YAML")],
    event: Annotated[list[str] | None, typer.Option("--event", help="e.g. outage:hall-1-tx1@2h+4h (repeatable)")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="What-if YAML with events and/or changes")] = None,
    optimize: Annotated[str | None, typer.Option(
        "--optimize", help="Chain an optimisation after each simulation: dispatch or capping")] = None,
) -> None:
    """Run the baseline and the changed case; print their KPIs side by side with the differences. With
    --optimize, each case's simulation is followed by the optimiser and its figures are compared too; a case
    the optimiser finds infeasible prints the planner's explanation and the command exits 1."""
    from rich.table import Table

    from twin.schema.scenario import load_scenario
    from twin.whatif import whatif

    sc = load_scenario(base)
    res = _run_with_progress(lambda tick: whatif(sc, event or [], file, progress=tick, optimize=optimize), "what-if")
    t = Table(title=f"what-if on {sc.name}", title_justify="left")
    for col in ("KPI", "base", "case", "difference"):
        t.add_column(col, justify="right" if col != "KPI" else "left")
    tab = res.table.set_index("kpi")
    for key in SHOWN:
        if key in tab.index:
            r = tab.loc[key]
            diff = r["difference"]
            style = "" if abs(diff) < 1e-9 else "bold"
            t.add_row(key, _fmt(r["base"]), _fmt(r["case"]), f"[{style}]{_fmt(diff)}[/]" if style else _fmt(diff))
    if optimize:
        t.add_section()
        for key, r in tab.iterrows():
            if key.startswith(f"{optimize}_"):
                diff = r["difference"]
                cell = f"[bold]{_fmt(diff)}[/]" if abs(diff) > 1e-9 else _fmt(diff)
                t.add_row(key, _fmt(r["base"]), _fmt(r["case"]), cell)
    _console().print(t)
    for name, why in res.infeasible.items():
        _console().print(f"[bold red]{optimize} infeasible in the {name}:[/] {why}")
    if res.infeasible:
        raise typer.Exit(1)
