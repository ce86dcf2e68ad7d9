"""Power and cooling graphs (networkx DiGraphs) derived from the expanded site, and their JSON export.

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
    feeding = {p for parents in eq.power_parents for p in parents}
    for i, (eid, kind, model) in enumerate(zip(eq.ids, eq.kind, eq.model, strict=True)):
        if not eq.power_parents[i] and kind not in SOURCE_KINDS and eid not in feeding:
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
    q_max_kw = layout.q_max_kw
    for i, (eid, kind, model) in enumerate(zip(eq.ids, eq.kind, eq.model, strict=True)):
        if kind in ("facility_loop", *HEAT_REJECTION_KINDS):
            g.add_node(eid, kind=kind, count=model.count, q_max_kw=float(q_max_kw[i]))
    for i, parents in enumerate(eq.cooling_parents):
        for p in parents:
            g.add_edge(p, eq.ids[i])
    r = layout.racks
    rack_ids = r.ids.tolist()
    g.add_nodes_from((rid, {"kind": "rack", "role": ROLES[role]}) for rid, role in zip(rack_ids, r.role, strict=True))
    loop_ids = np.array(eq.ids, dtype=object)[np.maximum(r.loop, 0)]
    for kind in ("cdu", "rdhx"):
        # The rack's heat exchanger of this kind, if its group has one, sits between the rack and its loop.
        parts = [getattr(info, kind) for info in layout.groups]
        has = np.array([p is not None for p in parts])[r.group]
        hx_q_max_kw = np.array([p.q_max_kw if p is not None else 0.0 for p in parts])[r.group]
        sel = np.flatnonzero(has)
        hx = np.char.add(r.ids[sel], f"-{kind}").tolist()
        g.add_nodes_from((h, {"kind": kind, "q_max_kw": float(q)}) for h, q in zip(hx, hx_q_max_kw[sel], strict=True))
        g.add_edges_from(zip(hx, r.ids[sel].tolist(), strict=True))
        on_loop = r.loop[sel] >= 0
        g.add_edges_from(zip(loop_ids[sel][on_loop].tolist(), np.array(hx, dtype=object)[on_loop].tolist(), strict=True))
    return g


# ---------------------------------------------------------------------- export


def to_json(graph: nx.DiGraph) -> dict:
    return nx.node_link_data(graph, edges="edges")
