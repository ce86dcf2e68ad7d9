"""Topology views of the power and cooling graphs for the browser, built once per site.

Colossus has ~12,500 GPU nodes and ~1,800 racks: the browser gets the equipment down to the leaf
distribution units (busways) and one aggregate node per leaf unit for the racks it feeds, and on the
cooling side one aggregate node per facility loop for its CDUs and rear doors. Positions are computed
here (layered, one block per hall side by side) so the browser does no layout work, and live values are
mapped onto nodes with one sparse product per update.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import scipy.sparse as sp

from twin.graphs import cooling_graph, power_graph
from twin.layout import ROLES, SiteLayout
from twin.schema.components import HEAT_REJECTION_KINDS

DX_PX = 38.0  # horizontal spacing of leaves
DY_PX = 110.0  # vertical spacing of levels
HALL_GAP_PX = 120.0

KIND_LABEL = {
    "utility_feed": "utility feed", "gas_turbine": "gas turbines", "battery": "battery",
    "substation": "substation", "switchgear": "MV switchgear", "transformer": "transformer",
    "busway": "busway", "pdu": "PDU", "ups": "UPS", "facility_loop": "facility loop",
    "chiller": "chillers", "cooling_tower": "cooling towers", "dry_cooler": "dry coolers",
    "racks": "racks", "cdus": "CDUs / rear doors",
}


@dataclass(frozen=True)
class TopoNode:
    id: str
    label: str
    kind: str
    hall: int  # -1 outside halls
    rating_kw: float  # electrical rating (power graph) or heat capacity (cooling graph), 0 if none
    x: float
    y: float
    equip: int  # index into layout.equip, -1 for aggregate nodes
    n_racks: int  # racks the node stands for (aggregates) or feeds (equipment)
    n_gpus: int


@dataclass(frozen=True)
class TopoView:
    """One graph as the browser sees it, plus the matrices that put live values on its nodes."""

    name: str  # "power" | "cooling"
    nodes: tuple[TopoNode, ...]
    edges: tuple[tuple[str, str], ...]
    equip_nodes: np.ndarray  # positions (into nodes) of equipment nodes
    equip_index: np.ndarray  # their index into layout.equip
    agg_nodes: np.ndarray  # positions of aggregate nodes
    rack_to_agg: sp.csr_matrix  # (n_agg, n_racks) 1 where a rack belongs to an aggregate node
    children: dict[str, tuple[str, ...]]  # node -> direct children shown in the view

    def position(self) -> dict[str, int]:
        return {n.id: i for i, n in enumerate(self.nodes)}


@dataclass(frozen=True)
class Topology:
    power: TopoView  # every hall
    cooling: TopoView
    power_by_hall: dict[str, TopoView]  # one hall and what feeds it, laid out on its own

    def view(self, name: str, hall: str | None = None) -> TopoView:
        if name == "power":
            return self.power_by_hall.get(hall or "all", self.power)
        if name == "cooling":
            return self.cooling
        raise ValueError(f"unknown graph {name!r}; expected 'power' or 'cooling'")


def build_topology(layout: SiteLayout) -> Topology:
    pg = power_graph(layout, with_nodes=False)
    cg = cooling_graph(layout)
    by_hall = {hid: _power_view(layout, pg, h) for h, hid in enumerate(layout.hall_ids)} if len(layout.hall_ids) > 1 else {}
    return Topology(_power_view(layout, pg), _cooling_view(layout, cg), by_hall)


# ------------------------------------------------------------------------------------------ power


def _power_view(layout: SiteLayout, pg: nx.DiGraph, hall: int | None = None) -> TopoView:
    """The power view of every hall, or of one hall with only the equipment upstream of it."""
    eq = layout.equip
    r = layout.racks
    keep = [n for n, d in pg.nodes(data=True) if d["kind"] != "rack"]
    if hall is not None:
        mine = {n for n in keep if pg.nodes[n].get("hall", -1) == hall}
        up = set().union(*(nx.ancestors(pg, n) for n in mine)) if mine else set()
        keep = [n for n in keep if n in mine or n in up]
    sub = pg.subgraph(keep)
    # One aggregate node per distribution unit that feeds racks.
    feeders = np.unique(r.feeder if hall is None else r.feeder[r.hall == hall])
    rack_sel = np.isin(r.feeder, feeders)
    agg_ids = [f"{eq.ids[f]}/racks" for f in feeders]
    rows = np.flatnonzero(rack_sel)
    agg_of_rack = np.searchsorted(feeders, r.feeder[rows])
    rack_to_agg = sp.csr_matrix((np.ones(len(rows)), (agg_of_rack, rows)), shape=(len(feeders), len(r)))
    n_racks = np.asarray(rack_to_agg.sum(axis=1)).ravel().astype(int)
    gpus = np.asarray(rack_to_agg @ r.n_gpus).astype(int)
    pmax = np.asarray(rack_to_agg @ r.p_max_kw)

    g = nx.DiGraph()
    g.add_nodes_from(sub.nodes)
    g.add_edges_from(sub.edges)
    for f, a in zip(feeders, agg_ids, strict=True):
        g.add_edge(eq.ids[f], a)
    hall_of = {eid: eq.hall[i] for i, eid in enumerate(eq.ids)}
    hall_of.update({a: eq.hall[f] for f, a in zip(feeders, agg_ids, strict=True)})
    xy = _layered_positions(g, hall_of, leaf_order=[*eq.ids, *agg_ids], n_halls=len(layout.hall_ids))

    idx = layout.index
    racks_below = _racks_below(layout)
    nodes = []
    for n in g.nodes:
        x, y = xy[n]
        if n in idx:
            i = idx[n]
            d = pg.nodes[n]
            kind = d["kind"]
            label = _short_label(n, [*pg.predecessors(n), layout.hall_ids[eq.hall[i]]]) if eq.hall[i] >= 0 else n
            nodes.append(TopoNode(n, label, kind, eq.hall[i], float(d["p_max_kw"]), x, y, i,
                                  int(racks_below[i]), int(layout.gpus_below[i])))
    for k, a in enumerate(agg_ids):
        x, y = xy[a]
        nodes.append(TopoNode(a, f"{n_racks[k]} racks", "racks", hall_of[a], float(pmax[k]), x, y, -1,
                              int(n_racks[k]), int(gpus[k])))
    return _finish("power", nodes, g, rack_to_agg)


def _short_label(node: str, parents: list[str]) -> str:
    """`hall-1-tx3-bw2` under `hall-1-tx3` -> `bw2`: the hall box and the parent give the rest."""
    for p in parents:
        if node.startswith(p + "-"):
            return node[len(p) + 1:]
    return node


def _racks_below(layout: SiteLayout) -> np.ndarray:
    return layout.up(np.ones(len(layout.racks)))


# ---------------------------------------------------------------------------------------- cooling


def _cooling_view(layout: SiteLayout, cg: nx.DiGraph) -> TopoView:
    eq = layout.equip
    r = layout.racks
    keep = [n for n, d in cg.nodes(data=True) if d["kind"] in ("facility_loop", *HEAT_REJECTION_KINDS)]
    g = nx.DiGraph()
    g.add_nodes_from(keep)
    g.add_edges_from((u, v) for u, v in cg.subgraph(keep).edges)
    loops = np.unique(r.loop[r.loop >= 0])
    agg_ids = [f"{eq.ids[lp]}/cdus" for lp in loops]
    in_loop = r.loop >= 0
    agg_of_rack = np.searchsorted(loops, r.loop[in_loop])
    rack_to_agg = sp.csr_matrix((np.ones(int(in_loop.sum())), (agg_of_rack, np.flatnonzero(in_loop))),
                                shape=(len(loops), len(r)))
    n_racks = np.asarray(rack_to_agg.sum(axis=1)).ravel().astype(int)
    gpus = np.asarray(rack_to_agg @ r.n_gpus).astype(int)
    q_hx = np.array([_hx_q_max_kw(layout, grp) for grp in range(len(layout.groups))])
    q_max = np.asarray(rack_to_agg @ q_hx[r.group])
    for lp, a in zip(loops, agg_ids, strict=True):
        g.add_edge(eq.ids[lp], a)
    hall_of = {n: -1 for n in g.nodes}
    xy = _layered_positions(g, hall_of, leaf_order=[*eq.ids, *agg_ids], n_halls=0)
    idx = layout.index
    nodes = []
    for n in g.nodes:
        x, y = xy[n]
        if n in idx:
            i = idx[n]
            q = float(cg.nodes[n].get("q_max_kw", 0.0))
            served = np.isin(r.loop, _loops_below(g, n, idx, eq.kind))
            nodes.append(TopoNode(n, n, eq.kind[i], -1, q, x, y, i, int(served.sum()), int(r.n_gpus[served].sum())))
    for k, a in enumerate(agg_ids):
        x, y = xy[a]
        nodes.append(TopoNode(a, f"CDUs/doors of {n_racks[k]} racks", "cdus", -1, float(q_max[k]), x, y, -1,
                              int(n_racks[k]), int(gpus[k])))
    return _finish("cooling", nodes, g, rack_to_agg)


def _hx_q_max_kw(layout: SiteLayout, group: int) -> float:
    info = layout.groups[group]
    return sum(p.q_max_kw for p in (info.cdu, info.rdhx) if p is not None)


def _loops_below(g: nx.DiGraph, n: str, idx: dict[str, int], kinds: list[str]) -> list[int]:
    """Equipment indices of the facility loops at or below a cooling node."""
    down = {n} | nx.descendants(g, n)
    return [idx[d] for d in down if d in idx and kinds[idx[d]] == "facility_loop"]


# ------------------------------------------------------------------------------------------ layout


def _finish(name: str, nodes: list[TopoNode], g: nx.DiGraph, rack_to_agg: sp.csr_matrix) -> TopoView:
    equip_nodes = np.array([i for i, n in enumerate(nodes) if n.equip >= 0], dtype=int)
    agg_nodes = np.array([i for i, n in enumerate(nodes) if n.equip < 0], dtype=int)
    return TopoView(
        name=name,
        nodes=tuple(nodes),
        edges=tuple((u, v) for u, v in g.edges),
        equip_nodes=equip_nodes,
        equip_index=np.array([nodes[i].equip for i in equip_nodes], dtype=int),
        agg_nodes=agg_nodes,
        rack_to_agg=rack_to_agg.tocsr(),
        children={n: tuple(g.successors(n)) for n in g.nodes},
    )


def _layered_positions(g: nx.DiGraph, hall_of: dict[str, int], leaf_order: list[str], n_halls: int) -> dict[str, tuple[float, float]]:
    """Rows by longest path from the sources; leaves spread in their given order, one block per hall
    side by side; every parent centred over its children."""
    depth: dict[str, int] = {}
    for n in nx.topological_sort(g):
        preds = list(g.predecessors(n))
        depth[n] = 0 if not preds else max(depth[p] for p in preds) + 1
    # Hall blocks start on one common row so that the halls line up.
    hall_nodes = [n for n in g.nodes if hall_of.get(n, -1) >= 0]
    if hall_nodes:
        top = min(depth[n] for n in hall_nodes)
        shift = {n: top for n in hall_nodes}
        for n in nx.topological_sort(g.subgraph(hall_nodes)):
            preds = [p for p in g.predecessors(n) if p in shift]
            depth[n] = top if not preds else max(depth[p] for p in preds) + 1
    order = {n: i for i, n in enumerate(leaf_order)}
    x: dict[str, float] = {}
    # Leaves (no children) placed left to right: hall by hall, within a hall in equipment order.
    leaves = sorted((n for n in g.nodes if g.out_degree(n) == 0),
                    key=lambda n: (hall_of.get(n, -1), order.get(n, 0)))
    cursor = 0.0
    last_hall = None
    for n in leaves:
        h = hall_of.get(n, -1)
        if last_hall is not None and h != last_hall:
            cursor += HALL_GAP_PX
        x[n] = cursor
        cursor += DX_PX if h >= 0 else DX_PX * 3
        last_hall = h
    # Parents centred over their children, bottom-up.
    for n in reversed(list(nx.topological_sort(g))):
        if n in x:
            continue
        kids = [x[c] for c in g.successors(n) if c in x]
        x[n] = float(np.mean(kids)) if kids else 0.0
    # Rows holding several nodes at (nearly) the same x: spread them so labels do not overlap.
    by_row: dict[int, list[str]] = {}
    for n, d in depth.items():
        by_row.setdefault(d, []).append(n)
    for row in by_row.values():
        row.sort(key=lambda n: (x[n], order.get(n, 0)))
        for a, b in zip(row, row[1:], strict=False):
            gap = DX_PX if hall_of.get(a, -1) >= 0 and hall_of.get(b, -1) >= 0 else DX_PX * 3
            if x[b] - x[a] < gap:
                x[b] = x[a] + gap
    return {n: (x[n], depth[n] * DY_PX) for n in g.nodes}


# ------------------------------------------------------------------------------------- live values


def node_values(view: TopoView, layout: SiteLayout, loading_pu: np.ndarray | None, p_rack_kw: np.ndarray | None,
                q_rack_kw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Loading (pu) and load (kW) of every node of a view, NaN where the twin has no value.

    loading_pu: per layout.equip; p_rack_kw: per rack (power aggregates); q_rack_kw: per rack heat
    to the loop (cooling aggregates)."""
    n = len(view.nodes)
    loading = np.full(n, np.nan)
    load = np.full(n, np.nan)
    rating = np.array([nd.rating_kw for nd in view.nodes])
    if loading_pu is not None:
        lp = np.asarray(loading_pu, dtype=float)[view.equip_index]
        loading[view.equip_nodes] = lp
        load[view.equip_nodes] = lp * rating[view.equip_nodes]
    rack_vals = p_rack_kw if view.name == "power" else q_rack_kw
    if rack_vals is not None and len(view.agg_nodes):
        s = view.rack_to_agg @ np.asarray(rack_vals, dtype=float)
        load[view.agg_nodes] = s
        with np.errstate(divide="ignore", invalid="ignore"):
            loading[view.agg_nodes] = np.where(rating[view.agg_nodes] > 0, s / rating[view.agg_nodes], np.nan)
    return loading, load


def role_counts(layout: SiteLayout, racks: np.ndarray) -> dict[str, int]:
    counts = np.bincount(layout.racks.role[racks], minlength=len(ROLES))
    return {ROLES[i]: int(c) for i, c in enumerate(counts) if c}
