"""`twin report RUN_ID [RUN_ID ...] [--out DIR] [--no-pdf]` and `twin report --scenario FILE`: the utility
planning report (HTML + PDF) of a stored run, a phase comparison of several, or of a scenario simulated now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin.cli import app
from twin.errors import InputError


@app.command("report")
def report_cmd(
    run_ids: Annotated[list[str] | None, typer.Argument(help="Run id(s) from `twin runs list`; several = phase comparison")] = None,
    scenario: Annotated[Path | None, typer.Option("--scenario", help="Simulate this scenario YAML, store the run, report it")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the report files")] = Path("reports"),
    no_pdf: Annotated[bool, typer.Option("--no-pdf", help="HTML (and CSV) only; no Chromium needed")] = False,
) -> None:
    """Write the utility planning report and print the paths of the files written."""
    from twin.report import BrowserMissingError, write_report

    if scenario is not None and run_ids:
        raise InputError.one("twin report", "RUN_ID", "give run ids or --scenario, not both")
    if scenario is None and not run_ids:
        raise InputError.one("twin report", "RUN_ID", "give a run id (see `twin runs list`) or --scenario FILE")
    if scenario is not None:
        from twin.cli.sim_cmd import _run_with_progress
        from twin.runs import save_run
        from twin.schema.scenario import load_scenario
        from twin.sim.engine import simulate

        sc = load_scenario(scenario)
        ds = _run_with_progress(lambda tick: simulate(None, sc, progress=tick), f"simulating {sc.name}")
        run_ids = [save_run(ds)]
        typer.echo(f"run id: {run_ids[0]}")
    else:
        from twin.runs import run_path

        for rid in run_ids:
            if rid.endswith((".yaml", ".yml")) and Path(rid).is_file():
                raise InputError.one("twin report", "RUN_ID", f"{rid} is a scenario file; use --scenario {rid}")
            run_path(rid)  # InputError naming the unknown run before any work
    target = run_ids[0] if len(run_ids) == 1 else run_ids
    try:
        paths = write_report(target, out, pdf=not no_pdf)
    except BrowserMissingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for key in ("html", "csv", "pdf"):
        if key in paths:
            typer.echo(f"{key}: {paths[key]}")
    extra = f", {paths['pdf_pages']} PDF pages" if "pdf_pages" in paths else ""
    typer.echo(f"report written in {paths['seconds']:.1f} s{extra}")
