"""`twin optimize placement|capping|dispatch|expansion|cooling SCENARIO`: simulate the scenario (the
current site state and load), run one optimiser on it through `optimizers.adapters`, print a summary
table and write the result to the run store. An infeasible problem prints the planner's explanation and
exits 1 without writing anything."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from twin.cli import app
from twin.errors import InfeasibleError

opt_app = typer.Typer(no_args_is_help=True, help="Optimise a scenario: placement, capping, dispatch, expansion, cooling")
app.add_typer(opt_app, name="optimize")

ScenarioArg = Annotated[Path, typer.Argument(help="Scenario YAML")]
NoSave = Annotated[bool, typer.Option("--no-save", help="Do not write the result to the run store")]


def _console():
    from rich.console import Console

    con = Console()
    return con if con.is_terminal else Console(width=120)


def _fmt(v) -> str:
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        v = float(v)
        if v != v:
            return "-"
        a = abs(v)
        return f"{v:,.0f}" if a >= 1000 else f"{v:,.3f}" if a >= 1 or a == 0 else f"{v:.4g}"
    return str(v)


def _table(title: str, rows: list[tuple[str, object]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    for k, v in rows:
        t.add_row(k, _fmt(v))
    return t


class _Steps:
    """A rich progress bar over the named steps of one optimisation."""

    def __init__(self, label: str, steps: list[str]):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.steps = steps
        self.prog = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                             TimeElapsedColumn(), console=_console(), transient=True)
        self.label = label

    def __enter__(self):
        self.prog.__enter__()
        self.task = self.prog.add_task(self.label, total=len(self.steps))
        return self

    def __exit__(self, *a):
        return self.prog.__exit__(*a)

    def step(self, name: str):
        i = self.steps.index(name)
        self.prog.update(self.task, completed=i, description=f"{self.label}: {name}")

    def sim_tick(self, f, stage):
        i = self.steps.index("simulate")
        self.prog.update(self.task, completed=i + f, description=f"{self.label}: simulate ({stage})")


def _load(scenario: Path):
    from twin.schema.scenario import load_scenario

    return load_scenario(scenario)


def _fail(exc: InfeasibleError) -> None:
    from rich.console import Console

    err = Console(stderr=True)
    # a solve stopped by its time limit has proved nothing infeasible (optimizers.common.raise_if_out_of_time)
    label = "no solution:" if exc.details.get("status") == "time_limit" else "infeasible:"
    err.print(f"[bold red]{label}[/]", str(exc), markup=True, highlight=False)
    raise typer.Exit(1)


def _save(ds, sc, kind: str, summary: dict, no_save: bool) -> str | None:
    if no_save:
        return None
    from twin.runs import save_run

    out = ds.copy()
    for k, v in list(out.data_vars.items()):
        if v.dtype == bool:
            out[k] = v.astype(np.int8)
        elif v.dtype == object:
            out[k] = v.astype(str)
    for k, v in list(out.coords.items()):
        if v.dtype == object:
            out = out.assign_coords({k: v.astype(str)})
    out.attrs = {k: (int(v) if isinstance(v, bool | np.bool_) else v) for k, v in out.attrs.items()
                 if isinstance(v, str | int | float | np.integer | np.floating | bool | np.bool_)}
    raw = sc.resolved()
    raw["name"] = f"{sc.name}-opt-{kind}"
    out.attrs["scenario"] = json.dumps(raw, default=str)
    out.attrs["site"] = str(sc.site)
    out.attrs["optimizer"] = kind
    clean = {k: (float(v) if isinstance(v, np.floating) else int(v) if isinstance(v, np.integer) else v)
             for k, v in summary.items()}
    return save_run(out, clean)


Rows = list[tuple[str, object]]
# run(sc, ds_sim, step) -> (result, summary rows); calls step(name) on entering each of its stages
Solver = Callable[..., tuple[object, Rows]]


def _optimize(scenario: Path, kind: str, title: str, stages: list[str], run: Solver, no_save: bool) -> None:
    """What every subcommand shares: load the scenario, simulate it under a progress bar over the steps
    ["simulate", *stages, "done"], let `run(sc, ds_sim, step)` do the optimiser's part (it calls `step(name)` on
    entering each of `stages`) and return the result Dataset and its summary rows, then print the table "<title> on <site> (<scenario>)" and write the run as "<scenario>-opt-<kind>".
    Bad input raises InputError (the CLI's entry point prints it and exits 1); an infeasible problem prints the
    planner's explanation and exits 1 before anything is printed or written."""
    from optimizers.adapters import simulated

    sc = _load(scenario)
    con = _console()
    with _Steps(kind, ["simulate", *stages, "done"]) as st:
        ds_sim = simulated(sc, progress=st.sim_tick)
        try:
            ds, rows = run(sc, ds_sim, st.step)
        except InfeasibleError as exc:
            st.__exit__(None, None, None)
            _fail(exc)
        st.step("done")
    _finish(con, f"{title} on {sc.site} ({sc.name})", rows, ds, sc, kind, no_save)


def _finish(con, title, rows, ds, sc, kind, no_save):
    # a solve stopped by its time limit with an incumbent is usable but not proven optimal: say so
    status = ds.attrs.get("solver_status")
    if status is not None:
        gap = ds.attrs.get("solver_mip_gap", 0.0)
        rows = [*rows, ("solver status", status + (f" (MIP gap {gap:.2%})" if ds.attrs.get("solver_is_mip") else ""))]
    con.print(_table(title, rows))
    rid = _save(ds, sc, kind, dict(rows), no_save)
    if rid:
        con.print(f"run id: [bold]{rid}[/]")
        typer.echo(rid)


# --------------------------------------------------------------------------------------------- placement


@opt_app.command("placement")
def placement_cmd(
    scenario: ScenarioArg,
    queue: Annotated[Path | None, typer.Option("--queue", help="Job queue YAML (jobs: [{name, gpus, p_gpu_kw, ...}])")] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="Without --queue: a synthetic queue of this many jobs")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic queue")] = 0,
    reserve: Annotated[float, typer.Option("--reserve", help="N-1 reserve kept on transformers and substations, per unit")] = 0.0,
    no_save: NoSave = False,
) -> None:
    """Place a queue of jobs on the free GPUs the scenario leaves, under every power and heat limit."""
    from optimizers.adapters import layout_of, load_queue, placement_state
    from optimizers.placement import PlacementOptions, optimize_placement, random_jobs

    def run(sc, ds_sim, step):
        step("state")
        layout = layout_of(sc)
        state = placement_state(sc, layout, ds_sim)
        q = load_queue(queue) if queue is not None else random_jobs(jobs, seed)
        step("solve")
        ds = optimize_placement(layout, q, state, PlacementOptions(
            reserve_pu=reserve, time_limit_s=sc.solver.time_limit_s, rel_gap=sc.solver.rel_gap))
        a = ds.attrs
        r = layout.racks
        gpus_per_node = np.array([g.server.gpus_per_node if g.server else 0 for g in layout.groups])[r.group]
        return ds, [
            ("jobs in queue", ds.sizes["job"]), ("jobs admitted", a["jobs_admitted"]), ("GPUs admitted", a["gpus_admitted"]),
            ("GPUs free before", int((state.free_nodes * gpus_per_node)[r.role == 0].sum())),
            ("value admitted (priority x GPU-h)", a["objective_value"]), ("value requested", a["value_requested"]),
            ("LP bound on value", a.get("relaxation_objective_value", float("nan"))),
            ("MIP gap", a["solver_mip_gap"]), ("smallest power headroom (pu)", a["min_headroom_pu"]),
            ("binding limits", a["binding_limits"][:80]),
            ("cross-check", "ok" if a["cross_check_max_overload_kw"] <= 1e-3 else "VIOLATION"),
            ("solve time incl. warm start (s)", a["solver_handover_s"] + a["solver_solve_s"])]

    _optimize(scenario, "placement", "placement", ["state", "solve"], run, no_save)


# --------------------------------------------------------------------------------------------- capping


@opt_app.command("capping")
def capping_cmd(
    scenario: ScenarioArg,
    limit_mw: Annotated[float | None, typer.Option("--limit-mw", help="Site limit, MW (default: grid cap with curtailment + on-site generation)")] = None,
    no_save: NoSave = False,
) -> None:
    """Per-job GPU power caps that maximise throughput under the site limit at the tightest hour."""
    from optimizers.adapters import capping_cross_check, capping_inputs
    from optimizers.capping import optimize_capping

    def run(sc, ds_sim, step):
        step("solve")
        inp, t = capping_inputs(sc, ds_sim, None if limit_mw is None else limit_mw * 1000.0)
        ds = optimize_capping(inp)
        step("cross-check")
        cc = capping_cross_check(sc, ds_sim, t, ds)
        ds.attrs["cross_check_ok"] = int(cc["ok"])
        a = ds.attrs
        return ds, [
            ("hour", str(t)[:16]), ("site limit (MW)", a["p_site_max_kw"] / 1000),
            ("load uncapped (MW)", a["p_uncapped_kw"] / 1000), ("load capped (MW)", a["p_capped_kw"] / 1000),
            ("jobs", ds.sizes["job"]), ("lowest cap (pu)", float(ds["cap_pu"].min())),
            ("throughput lost (pu)", a["throughput_lost_pu"]), ("throughput lost (GPU-eq)", a["throughput_lost_gpu_eq"]),
            ("marginal throughput (GPU-eq per MW)", a.get("marginal_throughput_gpu_eq_per_mw", float("nan"))),
            ("layout check: site demand after caps (MW)", cc["p_site_after_kw"] / 1000),
            ("layout cross-check", "ok" if cc["ok"] else "VIOLATION")]

    _optimize(scenario, "capping", "power capping", ["solve", "cross-check"], run, no_save)


# --------------------------------------------------------------------------------------------- dispatch


@opt_app.command("dispatch")
def dispatch_cmd(
    scenario: ScenarioArg,
    relax: Annotated[bool, typer.Option("--relax", help="LP relaxation of the turbine commitment")] = False,
    window_h: Annotated[float | None, typer.Option("--window-h", help="Rolling horizon window, h (default: one solve)")] = None,
    no_save: NoSave = False,
) -> None:
    """Least-cost grid / turbine / battery dispatch of the simulated load under the scenario's limits, planned
    at the bus (optimizers.adapters.dispatch_inputs_at_bus) and fed back through the simulator, which checks
    every limit in its own terms (cap and ramp at the utility feed, battery, turbines, unserved load)."""
    from optimizers.adapters import dispatch_feedback, dispatch_inputs_at_bus
    from optimizers.dispatch import solve_dispatch, solve_dispatch_rolling
    from twin.sim.engine import check_limits

    def run(sc, ds_sim, step):
        step("solve")
        inp = dispatch_inputs_at_bus(sc, ds_sim)
        if window_h:
            ds = solve_dispatch_rolling(inp, window_h=window_h, time_limit_s=sc.solver.time_limit_s,
                                        rel_gap=sc.solver.rel_gap, relax=relax)
        else:
            ds = solve_dispatch(inp, time_limit_s=sc.solver.time_limit_s, rel_gap=sc.solver.rel_gap, relax=relax)
        step("cross-check")
        fb = dispatch_feedback(sc, ds_sim, ds)
        a, fa = ds.attrs, fb.attrs
        rows = [(k, a[k]) for k in ("cost_total_usd", "cost_energy_usd", "cost_demand_usd", "cost_fuel_usd",
                                    "cost_start_usd", "cost_curtailment_usd", "co2_onsite_t", "co2_grid_t", "nox_t")
                if k in a]
        rows += [("load energy at the bus (MWh)", float(inp.load_kw.sum() * inp.dt_h / 1000)), ("steps", inp.n)]
        if inp.turbine_units_available is not None:  # outages in the scenario: what the plan had to work with
            rows.append(("turbine units in service, fewest", int(np.min(inp.turbine_units_available))))
        if inp.battery_p_available_pu is not None:
            rows.append(("battery power in service, least (MW)",
                         float(np.min(inp.battery_p_available_pu)) * inp.battery.p_max_kw / 1000))
        lim = check_limits(fb)
        a["cross_check_ok"] = int(fa["feedback_limits_ok"])
        for k, v in lim.items():
            a[f"cross_check_{k}"] = v
        worst = fa["feedback_worst_limit"]
        unit = dict(zip(fb["limit"].values.tolist(), fb["limit_units"].values.tolist(), strict=True))[worst]
        rows += [("simulator cross-check: limits respected", bool(fa["feedback_limits_ok"])),
                 ("simulator: worst violation", ("none above 1 kW; largest " if fa["feedback_limits_ok"] else "")
                  + (f"{worst} {_fmt(float(lim[worst]))} {unit}" if lim[worst] > 0 else "0")),
                 ("simulator: SOC vs plan, max diff (kWh)", fa.get("feedback_soc_max_diff_kwh", float("nan"))),
                 ("simulator: grid at bus vs plan, max diff (kW)", fa.get("feedback_grid_bus_max_diff_kw", float("nan"))),
                 ("simulator: energy cost at the meter (USD)", fa["feedback_energy_cost_usd"])]
        return ds, rows

    _optimize(scenario, "dispatch", "dispatch", ["solve", "cross-check"], run, no_save)


# --------------------------------------------------------------------------------------------- expansion


@opt_app.command("expansion")
def expansion_cmd(scenario: ScenarioArg, no_save: NoSave = False) -> None:
    """Least annualised cost turbines, battery, grid and chillers for the simulated load (the horizon
    stands for a year)."""
    from optimizers.adapters import expansion_inputs
    from optimizers.expansion import solve_expansion

    def run(sc, ds_sim, step):
        step("solve")
        ds = solve_expansion(expansion_inputs(sc, ds_sim), time_limit_s=max(sc.solver.time_limit_s, 60.0))
        rows = [(k, float(ds[k].values)) for k in ("turbines_new", "battery_p_new_kw", "battery_e_new_kwh",
                                                   "grid_new_kw", "chiller_new_kw_thermal") if k in ds]
        rows += [(k, v) for k, v in ds.attrs.items() if k.startswith("cost_annual") and isinstance(v, int | float)]
        return ds, rows

    _optimize(scenario, "expansion", "capacity expansion", ["solve"], run, no_save)


# --------------------------------------------------------------------------------------------- cooling


@opt_app.command("cooling")
def cooling_cmd(
    scenario: ScenarioArg,
    fixed_c: Annotated[float | None, typer.Option("--fixed-c", help="Fixed setpoint to compare with (default: the loops')")] = None,
    no_save: NoSave = False,
) -> None:
    """Hourly facility supply setpoints and chiller staging, against the fixed setpoint."""
    from dataclasses import replace

    from optimizers.adapters import cooling_inputs
    from optimizers.cooling import CoolingOptions, cross_check_cooling, optimize_cooling

    def run(sc, ds_sim, step):
        step("solve")
        opt = CoolingOptions(time_limit_s=sc.solver.time_limit_s)
        if fixed_c is not None:
            opt = replace(opt, t_fixed_c=fixed_c)
        inp = cooling_inputs(sc, ds_sim, opt)
        ds = optimize_cooling(inp)
        step("cross-check")
        cc = cross_check_cooling(inp, ds)
        ds.attrs["cross_check_ok"] = int(cc["ok"])
        a = ds.attrs
        return ds, [
            ("hours", ds.sizes["time"]), ("plant groups", ds.sizes["plant"]),
            ("setpoint range (C)", f"{float(ds['t_supply_c'].min()):g}-{float(ds['t_supply_c'].max()):g}"),
            ("fixed setpoint (C)", a.get("fixed_setpoint_c")),
            ("cost incl. IT leakage vs fixed setpoint (USD)", a["cost_total_usd"]),
            ("cost at fixed setpoint (USD)", a.get("cost_fixed_usd", float("nan"))),
            ("cost saved (USD)", a.get("cost_saved_usd", float("nan"))),
            ("cooling energy saved (kWh)", a.get("energy_saved_kwh", float("nan"))),
            ("water saved (m3)", a.get("water_saved_m3", float("nan"))),
            ("simulator: plant kWh optimised", cc["optimised"]["p_plant_kwh"]),
            ("simulator: plant kWh fixed", cc.get("fixed", {}).get("p_plant_kwh", float("nan"))),
            ("simulator: unmet heat (kWh)", cc["optimised"]["q_unmet_kwh"]),
            ("simulator cross-check", "ok" if cc["ok"] else "VIOLATION")]

    _optimize(scenario, "cooling", "cooling setpoints", ["solve", "cross-check"], run, no_save)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
