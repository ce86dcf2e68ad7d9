"""`twin site ...`: list, show, validate and export the graphs of sites."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from twin.cli import app

site_app = typer.Typer(no_args_is_help=True, help="Inspect and validate site definitions")
app.add_typer(site_app, name="site")

# Order in which the power chain is shown, from the sources down to the racks.
CHAIN_ORDER = ("substation", "switchgear", "transformer", "ups", "busway", "pdu")


def _console():
    from rich.console import Console

    # Under a pipe or a test runner rich falls back to 80 columns; give the tables room instead.
    con = Console()
    return con if con.is_terminal else Console(width=120)


def _load(name_or_path: str, validate: bool = True):
    from twin.layout import expand
    from twin.site import load_site

    site = load_site(name_or_path, validate=validate)
    return site, expand(site)


@site_app.command("list")
def list_sites() -> None:
    """Sites shipped in sites/: name, GPUs, whether it validates, and a short description."""
    from rich.table import Table

    from twin.errors import InputError
    from twin.site import site_names, site_path
    from twin.validate import validate_site

    table = Table(title="Sites", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("GPUs", justify="right")
    table.add_column("status")
    table.add_column("description")
    for name in site_names():
        # A site that parses but fails validation still shows its size; `twin site validate` lists why.
        try:
            site, layout = _load(name, validate=False)
        except InputError as exc:
            table.add_row(name, "-", f"[red]{len(exc.problems)} problem(s)[/]", "")
            continue
        n_problems = len(validate_site(site, str(site_path(name)), layout))
        status = "valid" if not n_problems else f"[red]{n_problems} problem(s)[/]"
        table.add_row(name, f"{layout.n_gpus:,}", status, site.description)
    _console().print(table)


def summary(site, layout) -> dict:
    """The figures `twin site show` prints, as plain numbers (also used by tests and docs)."""
    import numpy as np

    from twin.layout import ROLES
    from twin.schema.components import HEAT_REJECTION_KINDS, SOURCE_KINDS
    from twin.validate import heat_served_kw

    r = layout.racks
    below = layout.nameplate_below_kw
    rating = layout.p_max_kw
    # Power chain rows: one per (kind, depth below the sources), so stacked line-ups of one kind
    # (a generation bus above hall switchgear) are not added together.
    depth = _depths(layout)
    rows: dict[tuple[str, int], list[int]] = {}
    for i in np.flatnonzero(layout.load_side):
        rows.setdefault((layout.equip.kind[i], int(depth[i])), []).append(int(i))
    tiers = Counter(kind for kind, _ in rows)
    chain = []
    for (kind, d), members in sorted(rows.items(), key=lambda kv: (kv[0][1], CHAIN_ORDER.index(kv[0][0]))):
        idx = np.array(members)
        with np.errstate(divide="ignore", invalid="ignore"):
            loading = np.where(rating[idx] > 0, below[idx] / rating[idx], 0.0)
        chain.append(
            {
                "kind": kind if tiers[kind] == 1 else f"{kind} (depth {d})",
                "depth": d,
                "units": int(sum(layout.equip.model[i].count for i in idx)),
                "nodes": len(idx),
                "rating_mw": float(rating[idx].sum()) / 1000,
                "below_mw": float(below[idx].sum()) / 1000,
                "max_loading_pu": float(loading.max()),
            }
        )
    heat = heat_served_kw(layout)
    q_max = layout.q_max_kw
    cooling = []
    for kind in ("facility_loop", *HEAT_REJECTION_KINDS):
        idx = layout.of_kind(kind)
        groups: dict[str, list[int]] = {}
        for i in idx:
            m = layout.equip.model[i]
            label = f"chiller ({m.condenser}-cooled)" if kind == "chiller" else kind.replace("_", " ")
            groups.setdefault(label, []).append(int(i))
        for label, members in groups.items():
            members = np.array(members)
            with np.errstate(divide="ignore", invalid="ignore"):
                loading = np.where(q_max[members] > 0, heat[members] / q_max[members], 0.0)
            row = {
                "kind": label,
                "groups": len(members),
                "units": int(sum(layout.equip.model[i].count for i in members)),
                "q_max_mw": float(q_max[members].sum()) / 1000,
                "heat_mw": float(heat[members].sum()) / 1000,
                "max_loading_pu": float(loading.max()),
            }
            if kind == "facility_loop":
                temps = sorted({layout.equip.model[i].t_supply_c for i in members})
                row["t_supply_c"] = temps
            cooling.append(row)
    sources = {k: float(rating[layout.of_kind(k)].sum()) / 1000 for k in SOURCE_KINDS}
    battery_mwh = float(sum(layout.equip.model[i].e_max_kwh for i in layout.of_kind("battery"))) / 1000
    is_gpu = r.role == ROLES.index("gpu")
    racks_by_role = {role: int((r.role == k).sum()) for k, role in enumerate(ROLES) if (r.role == k).any()}
    return {
        "name": site.name,
        "description": site.description,
        "gpus": layout.n_gpus,
        "gpus_by_type": layout.gpus_by_type(),
        "gpu_nodes": layout.n_nodes,
        "racks": len(r),
        "racks_by_role": racks_by_role,
        "gpu_racks": int(is_gpu.sum()),
        "halls": len(layout.hall_ids),
        "arrays": int(len(np.unique(r.array[is_gpu]))),
        "it_nameplate_mw": float(r.p_max_kw.sum()) / 1000,
        "gpu_rack_nameplate_mw": float(r.p_max_kw[is_gpu].sum()) / 1000,
        "cooling_plant_mw": float(layout.consumer_p_max_kw.sum()) / 1000,
        "oversubscription_pu": site.oversubscription_pu,
        "power_chain": chain,
        "cooling": cooling,
        "sources_mw": sources,
        "battery_mwh": battery_mwh,
    }


def _depths(layout):
    """Longest path (in edges) from a source, or from a root, down to each equipment of the power graph."""
    import networkx as nx
    import numpy as np

    g = nx.DiGraph()
    g.add_nodes_from(range(len(layout.equip.ids)))
    idx = layout.index
    for i, parents in enumerate(layout.equip.power_parents):
        g.add_edges_from((idx[p], i) for p in parents if p in idx)
    depth = np.zeros(len(layout.equip.ids), dtype=int)
    for i in nx.topological_sort(g):
        preds = list(g.predecessors(i))
        if preds:
            depth[i] = max(depth[p] for p in preds) + 1
    return depth


@site_app.command("show")
def show(
    site_ref: str = typer.Argument(..., metavar="NAME|PATH", help="Site name in sites/ or a YAML path"),
) -> None:
    """A summary: GPUs, nodes, racks, halls, nameplate, power chain, cooling and sources."""
    from rich.table import Table

    site, layout = _load(site_ref)
    s = summary(site, layout)
    con = _console()
    con.print(f"[bold]{s['name']}[/]: {s['description']}")

    it = Table(title="IT", title_justify="left", show_header=False)
    it.add_column("what")
    it.add_column("value", justify="right")
    it.add_row("GPUs", f"{s['gpus']:,}")
    for gpu, n in s["gpus_by_type"].items():
        it.add_row(f"  {gpu}", f"{n:,}")
    it.add_row("GPU nodes", f"{s['gpu_nodes']:,}")
    it.add_row("racks", f"{s['racks']:,}")
    for role, n in s["racks_by_role"].items():
        it.add_row(f"  {role} racks", f"{n:,}")
    it.add_row("halls", f"{s['halls']:,}")
    it.add_row("GPU arrays", f"{s['arrays']:,}")
    it.add_row("IT nameplate", f"{s['it_nameplate_mw']:,.1f} MW")
    it.add_row("  of which GPU racks", f"{s['gpu_rack_nameplate_mw']:,.1f} MW")
    it.add_row("cooling plant (electrical)", f"{s['cooling_plant_mw']:,.1f} MW")
    it.add_row("oversubscription allowed", f"{s['oversubscription_pu']:.2f}")
    con.print(it)

    chain = Table(title="Power chain", title_justify="left")
    for col, just in (
        ("level", "left"),
        ("units", "right"),
        ("rating MW", "right"),
        ("nameplate below MW", "right"),
        ("max loading", "right"),
    ):
        chain.add_column(col, justify=just)
    for row in s["power_chain"]:
        chain.add_row(
            row["kind"],
            f"{row['units']:,}",
            f"{row['rating_mw']:,.1f}",
            f"{row['below_mw']:,.1f}",
            f"{row['max_loading_pu']:.0%}",
        )
    con.print(chain)

    cool = Table(
        title="Cooling (heat at nameplate: every kW of rack nameplate is a kW of heat)", title_justify="left"
    )
    for col, just in (
        ("equipment", "left"),
        ("groups", "right"),
        ("units", "right"),
        ("capacity MW", "right"),
        ("heat MW", "right"),
        ("max loading", "right"),
    ):
        cool.add_column(col, justify=just)
    for row in s["cooling"]:
        label = row["kind"]
        if "t_supply_c" in row:
            label += " (" + ", ".join(f"{t:g}" for t in row["t_supply_c"]) + " °C supply)"
        cool.add_row(
            label,
            f"{row['groups']:,}",
            f"{row['units']:,}",
            f"{row['q_max_mw']:,.1f}",
            f"{row['heat_mw']:,.1f}",
            f"{row['max_loading_pu']:.0%}",
        )
    con.print(cool)

    src = Table(title="Sources", title_justify="left", show_header=False)
    src.add_column("what")
    src.add_column("value", justify="right")
    src.add_row("grid", f"{s['sources_mw']['utility_feed']:,.1f} MW")
    src.add_row("gas turbines", f"{s['sources_mw']['gas_turbine']:,.1f} MW")
    src.add_row("battery", f"{s['sources_mw']['battery']:,.1f} MW / {s['battery_mwh']:,.1f} MWh")
    con.print(src)


@site_app.command("validate")
def validate(
    path: str = typer.Argument(..., metavar="PATH", help="Site YAML file (or a name in sites/)"),
) -> None:
    """Exit 0 and print 'valid' when the site is valid; exit 1 listing every problem, one per line."""
    from twin.errors import InputError
    from twin.site import load_site

    try:
        load_site(path)
    except InputError as exc:
        # Plain lines (no wrapping), so each problem stays on one line for people and for grep.
        for p in exc.problems:
            typer.echo(str(p), err=True)
        typer.echo(f"{len(exc.problems)} problem(s) found", err=True)
        # sys.exit, not typer.Exit: twin.cli.main runs the app with standalone_mode=False, where click
        # returns an Exit's code instead of exiting with it.
        sys.exit(1)
    typer.echo("valid")


class GraphFormat(StrEnum):
    json = "json"
    graphml = "graphml"


def write_graph(graph, out: Path, fmt: str) -> None:
    """Write to a temporary file beside `out`, then rename: nothing is half-written."""
    import networkx as nx

    from twin.graphs import to_json

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if fmt == "json":
                json.dump(to_json(graph), fh)
            else:
                nx.write_graphml(graph, fh.buffer if hasattr(fh, "buffer") else fh)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@site_app.command("graph")
def graph(
    site_ref: Annotated[str, typer.Argument(metavar="NAME|PATH", help="Site name in sites/ or a YAML path")],
    out: Annotated[Path, typer.Option("--out", help="File to write")],
    fmt: Annotated[
        GraphFormat | None,
        typer.Option("--format", help="json (node-link) or graphml; default: graphml when --out ends in .graphml, else json"),
    ] = None,
    cooling: Annotated[
        bool, typer.Option("--cooling", help="Export the cooling graph, not the power graph")
    ] = False,
    no_nodes: Annotated[bool, typer.Option("--no-nodes", help="Stop the power graph at the racks")] = False,
) -> None:
    """Export the power (or cooling) graph of a site."""
    from twin.graphs import cooling_graph, power_graph

    if fmt is None:  # a .graphml file holding JSON is the surprise this avoids
        fmt = GraphFormat.graphml if out.suffix.lower() == ".graphml" else GraphFormat.json
    site, layout = _load(site_ref)
    g = cooling_graph(layout) if cooling else power_graph(layout, with_nodes=not no_nodes)
    write_graph(g, out, fmt.value)
    typer.echo(f"wrote {g.number_of_nodes():,} nodes and {g.number_of_edges():,} edges to {out} ({fmt.value})")
