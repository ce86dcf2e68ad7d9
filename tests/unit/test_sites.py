"""Every shipped site loads and validates; Colossus 1 matches a hand calculation; GPU counts add up."""

from __future__ import annotations

import numpy as np
import pytest

from twin.layout import ROLES, expand
from twin.site import load_site, site_names
from twin.validate import validate_site

pytestmark = pytest.mark.unit

SITES = site_names()


@pytest.fixture(scope="module")
def layouts():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = expand(load_site(name))
        return cache[name]

    return get


def test_expected_sites_ship():
    for name in ("tiny", "colossus-1", "colossus-1-200k", "colossus-next", "frontier", "aurora"):
        assert name in SITES


@pytest.mark.parametrize("name", SITES)
def test_site_loads_and_validates_clean(name, layouts):
    layout = layouts(name)  # load_site raises InputError listing every problem
    assert validate_site(layout.site, name, layout) == []
    assert layout.n_gpus > 0
    assert layout.site.source, "every site names its source"


@pytest.mark.parametrize("name", SITES)
def test_every_component_carries_a_source_or_type(name, layouts):
    """Figures in sites/ carry their source: own `source`, or the catalog entry's (via `type`); an
    illustrative site (confidence: assumed at the top, like tiny) may cover its parts with its own source."""
    site = layouts(name).site
    blanket = site.confidence == "assumed" and bool(site.source)
    for comp in site.components:
        assert comp.source or blanket, f"{name}: component {comp.id} has no source"
    for hall in site.halls:
        assert hall.source or blanket, f"{name}: hall {hall.id} has no source"


def test_colossus_1_counts(layouts):
    lay = layouts("colossus-1")
    r = lay.racks
    is_gpu = r.role == ROLES.index("gpu")
    assert lay.n_gpus == 100_000
    assert lay.n_nodes == 12_500
    assert int(is_gpu.sum()) == 1_563  # 12,500 servers / 8 per rack = 1,562.5 -> 1,563 racks
    assert lay.gpus_by_type() == {"h100-sxm": 100_000}
    assert len(lay.hall_ids) == 4
    # Halls 1-3: 391 racks of 8 (3,128 servers); hall 4: 389 full racks + one of 3,116 - 389 x 8 = 4 servers.
    for h, (racks, servers) in enumerate([(391, 3128)] * 3 + [(390, 3116)]):
        sel = is_gpu & (r.hall == h)
        assert int(sel.sum()) == racks
        assert int(r.n_nodes[sel].sum()) == servers
    hall4 = r.n_nodes[is_gpu & (r.hall == 3)]
    assert hall4[-1] == 4 and (hall4[:-1] == 8).all()
    # 8-rack arrays within each hall: ceil(391 / 8) = ceil(390 / 8) = 49 per hall.
    assert len(np.unique(r.array[is_gpu])) == 4 * 49
    # 136 network + 16 storage + 8 CPU racks per hall.
    assert int((r.role == ROLES.index("network")).sum()) == 544
    assert int((r.role == ROLES.index("storage")).sum()) == 64
    assert int((r.role == ROLES.index("cpu")).sum()) == 32


def test_colossus_1_nameplate_hand_calculation(layouts):
    """IT nameplate written out from the catalog's figures (data/catalog/*.yaml)."""
    lay = layouts("colossus-1")
    r = lay.racks
    is_gpu = r.role == ROLES.index("gpu")
    server_kw, cdu_pump_kw = 10.2, 1.0  # hgx-h100-8gpu-lc p_max_kw; supermicro-cdu-4u p_pump_kw
    gpu_racks_kw = 12_500 * server_kw + 1_563 * cdu_pump_kw  # 127,500 + 1,563 = 129,063 kW
    door_fan_kw = 0.8  # active-rdhx-50kw p_fan_kw
    per_hall_kw = 136 * (20 + door_fan_kw) + 16 * (25 + door_fan_kw) + 8 * (30 + door_fan_kw)  # 3,488.0 kW
    other_kw = 4 * per_hall_kw  # 13,952.0 kW
    assert gpu_racks_kw == pytest.approx(129_063.0)
    assert float(r.p_max_kw[is_gpu].sum()) == pytest.approx(gpu_racks_kw, rel=1e-12)
    assert float(r.p_max_kw[~is_gpu].sum()) == pytest.approx(other_kw, rel=1e-12)
    it_kw = gpu_racks_kw + other_kw  # 143,015.0 kW
    assert float(r.p_max_kw.sum()) == pytest.approx(143_015.0, rel=1e-12)
    # A full GPU rack: 8 x 10.2 + 1.0 = 82.6 kW; the half rack of hall 4: 4 x 10.2 + 1.0 = 41.8 kW.
    assert r.p_max_kw[is_gpu].max() == pytest.approx(82.6)
    assert r.p_max_kw[is_gpu].min() == pytest.approx(41.8)
    # The substation carries all of it plus the powered cooling plant.
    sub = lay.index["sub63"]
    assert lay.nameplate_below_kw[sub] == pytest.approx(it_kw + lay.consumer_p_max_kw.sum(), rel=1e-9)
    # Each hall's 16 transformers: hall nameplate = 391 x 82.6 + 1,491.2 = 33,787.8 kW (halls 1-3).
    tx = lay.of_kind("transformer")
    hall_of_tx = np.array(lay.equip.hall)[tx]
    assert lay.nameplate_below_kw[tx[hall_of_tx == 0]].sum() == pytest.approx(391 * 82.6 + per_hall_kw)


def test_colossus_1_sources(layouts):
    lay = layouts("colossus-1")
    kw = {k: float(lay.p_max_kw[lay.of_kind(k)].sum()) for k in ("utility_feed", "gas_turbine", "battery")}
    assert kw["utility_feed"] == 150_000  # substation #63
    assert kw["gas_turbine"] == 15 * 16_500  # 15 permitted SMT-130
    assert kw["battery"] == pytest.approx(156 * 962)  # ~150 MW of Megapacks


def test_colossus_1_200k_mix(layouts):
    lay = layouts("colossus-1-200k")
    assert lay.gpus_by_type() == {"h100-sxm": 150_000, "h200-sxm": 50_000}
    assert float(lay.p_max_kw[lay.of_kind("utility_feed")].sum()) == 300_000  # substations #63 + #22


def test_colossus_next_b200(layouts):
    lay = layouts("colossus-next")
    assert lay.gpus_by_type() == {"b200": 300_000}
    assert lay.n_nodes == 37_500


def test_reference_systems(layouts):
    fr = layouts("frontier")
    assert (fr.n_nodes, fr.n_gpus, len(fr.racks)) == (74 * 128, 74 * 128 * 4, 74)
    au = layouts("aurora")
    assert (au.n_nodes, au.n_gpus, len(au.racks)) == (10_624, 10_624 * 6, 166)
    # Frontier cabinet conversion (RAPS): P_in = (P_out + 2.197 kW) / 0.9408 per cabinet.
    pdu = fr.equip.model[fr.of_kind("pdu")[0]]
    p_out = 128 * 2.0  # 2 kW per node
    rap = ((p_out * 1000 + 128 * 13) / 0.98 / 32 + 17) / 0.96 * 32 / 1000  # SIVOC per node, 32 rectifiers
    assert float(pdu.p_in_kw(np.array(p_out))) == pytest.approx(rap, rel=1e-4)


@pytest.mark.parametrize("name", SITES)
def test_gpu_counts_add_up_at_every_level(name, layouts):
    lay = layouts(name)
    r = lay.racks
    # GPU nodes -> racks: GPUs per node of each rack's group, summed over the rack's nodes.
    gpn = np.array([g.server.gpus_per_node if g.server else 0 for g in lay.groups])
    node_gpus = gpn[r.group[lay.node_rack]]
    assert (np.bincount(lay.node_rack, weights=node_gpus, minlength=len(r)) == r.n_gpus).all()
    assert int(np.bincount(lay.node_rack, minlength=len(r)).sum()) == lay.n_nodes
    # Racks -> halls -> site.
    per_hall = np.bincount(r.hall, weights=r.n_gpus, minlength=len(lay.hall_ids))
    assert per_hall.sum() == lay.n_gpus
    # Power tree: each load-side stage holds what its racks and its children hand up (child's share).
    direct = lay.rack_power_incidence.T @ r.n_gpus.astype(float)
    from_children = lay.power_incidence.T @ lay.gpus_below
    ls = lay.load_side
    np.testing.assert_allclose(lay.gpus_below[ls], (direct + from_children)[ls], rtol=1e-12)
    # Every GPU reaches the top of the load side exactly once (stages with no load-side parent).
    has_parent = np.asarray(lay.power_incidence.sum(axis=1)).ravel() > 0
    top = ls & ~has_parent
    assert lay.gpus_below[top].sum() == pytest.approx(lay.n_gpus)
    # Per kind, where every rack passes through that kind once (transformers, busways, PDUs).
    for kind in ("transformer", "busway", "pdu"):
        idx = lay.of_kind(kind)
        if len(idx):
            assert lay.gpus_below[idx].sum() == pytest.approx(lay.n_gpus)
