"""Power and cooling graphs (networkx DiGraphs) derived from the expanded site, and queries on them.

Power graph edges run from each source toward the load: feed -> substation -> switchgear -> transformer
-> busway -> rack -> GPU node. Cooling graph edges run from heat rejection toward the heat source:
tower -> chiller -> facility loop -> CDU / rear door -> rack. Aggregates (GPU counts, nameplate) come
from the layout's incidence matrices, not from graph walks.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from twin.layout import ROLES, SiteLayout
from twin.schema.components import HEAT_REJECTION_KINDS, SOURCE_KINDS


def power_graph(layout: SiteLayout, with_nodes: bool = True) -> nx.DiGraph:
    """Sources -> ... -> racks (-> GPU nodes when `with_nodes`)."""
    g = nx.DiGraph(name=f"{layout.site.name} power")
    eq = layout.equip
    gpus = layout.gpus_below
    below = layout.nameplate_below_kw
    consumer_kw = layout.consumer_p_max_kw
    for i, (eid, kind, model) in enumerate(zip(eq.ids, eq.kind, eq.model, strict=True)):
        if not eq.power_parents[i] and kind not in SOURCE_KINDS and not _feeds_something(layout, i):
            continue  # cooling-only equipment with no electrical link (e.g. a passive loop)
        g.add_node(eid, kind=kind, count=model.count, p_max_kw=float(model.p_max_kw or consumer_kw[i]),
                   p_below_kw=float(below[i]), gpus=int(gpus[i]), hall=int(eq.hall[i]))
    for i, parents in enumerate(eq.power_parents):
        for p in parents:
            g.add_edge(p, eq.ids[i])
    r = layout.racks
    g.add_nodes_from(
        (rid, {"kind": "rack", "role": ROLES[role], "p_max_kw": float(pk), "gpus": int(ng), "hall": int(h),
               "row": int(row), "col": int(col)})
        for rid, role, pk, ng, h, row, col in zip(r.ids.tolist(), r.role, r.p_max_kw, r.n_gpus, r.hall, r.row, r.col, strict=True)
    )
    g.add_edges_from(zip(np.array(eq.ids)[r.feeder].tolist(), r.ids.tolist(), strict=True))
    if with_nodes:
        node_ids, racks_of, gpn, pmax = node_table(layout)
        g.add_nodes_from((nid, {"kind": "server", "gpus": int(k), "p_max_kw": float(p)})
                         for nid, k, p in zip(node_ids, gpn, pmax, strict=True))
        g.add_edges_from(zip(r.ids[racks_of].tolist(), node_ids, strict=True))
    return g


def _feeds_something(layout: SiteLayout, i: int) -> bool:
    eid = layout.equip.ids[i]
    return any(eid in ps for ps in layout.equip.power_parents)


def node_table(layout: SiteLayout):
    """GPU node ids, their rack index, GPUs per node and node nameplate."""
    r = layout.racks
    rack_of = layout.node_rack
    # k-th node within its rack: position minus the first node index of that rack.
    first = np.searchsorted(rack_of, rack_of, side="left")
    k = np.arange(len(rack_of)) - first + 1
    ids = np.char.add(np.char.add(r.ids[rack_of].astype(str), "-n"), k.astype(str)).tolist()
    groups = layout.groups
    gpn = np.array([g.server.gpus_per_node if g.server else 0 for g in groups])[r.group[rack_of]]
    pmax = np.array([g.server.p_max_kw if g.server else 0.0 for g in groups])[r.group[rack_of]]
    return ids, rack_of, gpn, pmax


def cooling_graph(layout: SiteLayout) -> nx.DiGraph:
    """Heat rejection -> facility loops -> CDUs / rear doors -> racks."""
    g = nx.DiGraph(name=f"{layout.site.name} cooling")
    eq = layout.equip
    for eid, kind, model in zip(eq.ids, eq.kind, eq.model, strict=True):
        if kind in ("facility_loop", *HEAT_REJECTION_KINDS):
            g.add_node(eid, kind=kind, count=model.count, q_max_kw=float(getattr(model, "q_max_kw", 0.0)))
    for i, parents in enumerate(eq.cooling_parents):
        for p in parents:
            g.add_edge(p, eq.ids[i])
    r = layout.racks
    loop_ids = np.array(eq.ids)[np.maximum(r.loop, 0)].tolist()
    for rid, grp, loop_ok, loop_id, role in zip(r.ids.tolist(), r.group, r.loop >= 0, loop_ids, r.role, strict=True):
        info = layout.groups[grp]
        g.add_node(rid, kind="rack", role=ROLES[role])
        for kind, part in (("cdu", info.cdu), ("rdhx", info.rdhx)):
            if part is None:
                continue
            hx = f"{rid}-{kind}"
            g.add_node(hx, kind=kind, q_max_kw=float(part.q_max_kw))
            g.add_edge(hx, rid)
            if loop_ok:
                g.add_edge(loop_id, hx)
    return g


# ---------------------------------------------------------------------- queries


def paths_to_sources(power: nx.DiGraph, node: str) -> list[list[str]]:
    """Every path from a source down to `node` (source first)."""
    sources = [n for n in nx.ancestors(power, node) if power.nodes[n]["kind"] in SOURCE_KINDS]
    rev = power.reverse(copy=False)
    paths = []
    for s in sources:
        paths.extend(p[::-1] for p in nx.all_simple_paths(rev, node, s))
    return paths


def fed_by(graph: nx.DiGraph, component: str, kind: str | None = None) -> set[str]:
    """Everything downstream of `component` (optionally only of one kind)."""
    down = nx.descendants(graph, component)
    return {n for n in down if kind is None or graph.nodes[n].get("kind") == kind}


def heat_sinks(cooling: nx.DiGraph, rack: str) -> set[str]:
    """The heat rejection equipment a rack's heat reaches."""
    return {n for n in nx.ancestors(cooling, rack) if cooling.nodes[n]["kind"] in HEAT_REJECTION_KINDS}


def to_json(graph: nx.DiGraph) -> dict:
    return nx.node_link_data(graph, edges="edges")
