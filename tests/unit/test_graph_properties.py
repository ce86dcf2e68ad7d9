"""Property-based: random small generated sites keep the graph invariants.

For any site twin.sitegen builds (size, rack type, halls, 2N or not, heat rejection kind, sources):
- it validates clean;
- in the power graph every rack and every GPU node descends from a source;
- in the cooling graph every rack descends from heat rejection that reaches the atmosphere;
- GPU counts add up: summed by walking the networkx power graph (each child's GPUs split evenly over
  its load-side parents, the rule the incidence matrices use) they equal layout.gpus_below at every
  stage, and the whole site's GPUs arrive at the top of the load side exactly once.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.catalog import load_catalog
from twin.graphs import cooling_graph, power_graph
from twin.layout import expand
from twin.schema.components import CONVERSION_KINDS, HEAT_REJECTION_KINDS, SOURCE_KINDS
from twin.sitegen import generate_site, load_generated
from twin.validate import validate_site

pytestmark = pytest.mark.unit

CAT = load_catalog()
RACK_TYPES = [
    "gpu-rack-hgx-h100-lc",
    "gpu-rack-hgx-h200-lc",
    "gpu-rack-hgx-b200-lc",
    "gb200-nvl72",
    "frontier-ex-cabinet",
]


def _gpn(rack_type: str) -> int:
    return CAT.raw("server", CAT.raw("rack", rack_type)["node_type"])["gpus_per_node"]


@st.composite
def small_sites(draw):
    rack_type = draw(st.sampled_from(RACK_TYPES))
    gpn = _gpn(rack_type)
    nodes = draw(st.integers(1, 400))
    kwargs = {
        "gpus_per_hall": gpn * draw(st.integers(1, 200)),
        "rack_type": rack_type,
        "racks_per_row": draw(st.integers(1, 30)),
        "racks_per_array": draw(st.integers(1, 8)),
        "busways_per_transformer": draw(st.integers(1, 4)),
        "heat_rejection": draw(st.sampled_from(["air", "water", "dry"])),
        "halls_per_plant": draw(st.integers(1, 4)),
        "hall_redundancy": draw(st.sampled_from(["N", "2N"])),
        "aux_racks": draw(st.booleans()),
        "turbines": draw(st.booleans()),
        "battery": draw(st.booleans()),
    }
    return nodes * gpn, kwargs


def _walk_gpus(g: nx.DiGraph) -> dict[str, float]:
    """GPUs below each graph node, children first, each child's GPUs shared over its load-side parents."""
    below: dict[str, float] = {}
    for n in reversed(list(nx.topological_sort(g))):
        data = g.nodes[n]
        if data["kind"] == "server":
            below[n] = float(data["gpus"])
            continue
        total = 0.0
        for c in g.successors(n):
            parents = [p for p in g.predecessors(c) if g.nodes[p]["kind"] in CONVERSION_KINDS]
            if g.nodes[c]["kind"] in ("rack", "server"):
                share = 1.0
            elif data["kind"] in CONVERSION_KINDS:
                share = 1.0 / len(parents)
            else:
                share = 0.0  # sources hand load to the bus, they do not aggregate it
            total += below[c] * share
        below[n] = total
    return below


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_sites())
def test_generated_sites_keep_graph_invariants(spec):
    n_gpus, kwargs = spec
    site = load_generated(mapping=generate_site(n_gpus, catalog=CAT, **kwargs), catalog=CAT, validate=False)
    layout = expand(site)
    assert validate_site(site, "generated", layout) == []
    assert layout.n_gpus == n_gpus

    # Power: every rack and GPU node descends from a source.
    pg = power_graph(layout)
    sources = [n for n, d in pg.nodes(data=True) if d["kind"] in SOURCE_KINDS]
    fed = set().union(*(nx.descendants(pg, s) for s in sources))
    racks = [n for n, d in pg.nodes(data=True) if d["kind"] == "rack"]
    servers = [n for n, d in pg.nodes(data=True) if d["kind"] == "server"]
    assert len(racks) == len(layout.racks) and len(servers) == layout.n_nodes
    assert set(racks) <= fed and set(servers) <= fed
    assert sum(pg.nodes[s]["gpus"] for s in servers) == n_gpus

    # Cooling: every rack descends from heat rejection.
    cg = cooling_graph(layout)
    sinks = [n for n, d in cg.nodes(data=True) if d["kind"] in HEAT_REJECTION_KINDS]
    cooled = set().union(*(nx.descendants(cg, s) for s in sinks))
    assert {n for n, d in cg.nodes(data=True) if d["kind"] == "rack"} <= cooled

    # GPU counts add up: graph walk == incidence aggregation, at every stage.
    walked = _walk_gpus(pg)
    eq = layout.equip
    for i in np.flatnonzero(layout.load_side):
        assert walked[eq.ids[i]] == pytest.approx(layout.gpus_below[i], rel=1e-9, abs=1e-9), eq.ids[i]
        assert pg.nodes[eq.ids[i]]["gpus"] == round(layout.gpus_below[i])
    for r in racks:
        assert walked[r] == pg.nodes[r]["gpus"]
    # The whole site arrives once at the top of the load side (the substation).
    top = [
        eq.ids[i]
        for i in np.flatnonzero(layout.load_side)
        if not any(p in layout.index and layout.load_side[layout.index[p]] for p in eq.power_parents[i])
    ]
    assert sum(walked[t] for t in top) == pytest.approx(n_gpus)


def test_walk_detects_a_miscount():
    """The property above can fail: a GPU node removed from the graph changes the walked sum."""
    site = load_generated(64, catalog=CAT, aux_racks=False)
    layout = expand(site)
    pg = power_graph(layout)
    server = next(n for n, d in pg.nodes(data=True) if d["kind"] == "server")
    pg.remove_node(server)
    walked = _walk_gpus(pg)
    sub = layout.index["sub"]
    assert walked["sub"] == layout.gpus_below[sub] - 8
