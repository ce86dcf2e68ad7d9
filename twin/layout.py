"""Expand a Site's compact templates into flat, indexed equipment tables (numpy) for vectorised work.

Power side: every piece of power equipment gets an index in `equip`; racks and GPU nodes have their
own arrays. Links are sparse child->parent incidence matrices whose entries are the share of the
child's load that the parent carries (1, or 1/k for a child fed by k parents in 2N).
Cooling side likewise: racks -> facility loops -> heat rejection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from twin.schema.components import (
    CONVERSION_KINDS,
    COOLING_KINDS,
    HEAT_REJECTION_KINDS,
    SOURCE_KINDS,
    Component,
    cooling_p_elec_max_kw,
)
from twin.schema.site import Site

ROLES = ("gpu", "cpu", "storage", "network")


@dataclass
class Equipment:
    """Flat table of power and cooling equipment (explicit components and expanded hall units)."""

    ids: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    model: list[Component] = field(default_factory=list)  # shared by the units of one hall level
    hall: list[int] = field(default_factory=list)  # hall index, -1 outside halls
    power_parents: list[list[str]] = field(default_factory=list)
    cooling_parents: list[list[str]] = field(default_factory=list)

    def add(self, id_, model, hall=-1, power_parents=(), cooling_parents=()):
        self.ids.append(id_)
        self.kind.append(model.kind)
        self.model.append(model)
        self.hall.append(hall)
        self.power_parents.append(list(power_parents))
        self.cooling_parents.append(list(cooling_parents))


@dataclass(frozen=True)
class Racks:
    ids: np.ndarray  # str
    hall: np.ndarray  # int, index into SiteLayout.hall_ids
    row: np.ndarray  # int, row within the hall
    col: np.ndarray  # int, position within the row
    array: np.ndarray  # int, global GPU array index, -1 for non-GPU racks
    role: np.ndarray  # int, index into ROLES
    group: np.ndarray  # int, index into SiteLayout.groups
    n_nodes: np.ndarray  # int
    n_gpus: np.ndarray  # int
    p_max_kw: np.ndarray  # float, rack nameplate (servers + CDU pump / door fans)
    feeder: np.ndarray  # int, index into equip of the leaf distribution unit
    loop: np.ndarray  # int, index into equip of the facility loop

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class RackGroupInfo:
    """One rack group of one hall template, with the catalog parts it uses resolved."""

    hall_template: int
    rack: object
    server: object | None
    gpu: object | None
    cdu: object | None
    rdhx: object | None


@dataclass(frozen=True)
class SiteLayout:
    site: Site
    equip: Equipment
    hall_ids: list[str]
    groups: list[RackGroupInfo]
    racks: Racks
    node_rack: np.ndarray  # int, rack of each GPU node

    # ------------------------------------------------------------------ indices
    @cached_property
    def index(self) -> dict[str, int]:
        return {e: i for i, e in enumerate(self.equip.ids)}

    @cached_property
    def kind_array(self) -> np.ndarray:
        return np.array(self.equip.kind)

    def of_kind(self, *kinds: str) -> np.ndarray:
        return np.flatnonzero(np.isin(self.kind_array, kinds))

    @cached_property
    def p_max_kw(self) -> np.ndarray:
        """Electrical rating of each equipment (all units), 0 for cooling-only equipment."""
        return np.array([m.p_max_kw for m in self.equip.model])

    @cached_property
    def q_max_kw(self) -> np.ndarray:
        """Heat capacity of each cooling equipment (all units), 0 for power equipment."""
        return np.array([float(getattr(m, "q_max_kw", 0.0)) for m in self.equip.model])

    # ------------------------------------------------------------------ incidence
    def _incidence(self, parents: list[list[str]], rows: int, allowed: np.ndarray) -> sp.csr_matrix:
        idx = self.index
        r, c, v = [], [], []
        for child, ps in enumerate(parents):
            ps = [idx[p] for p in ps if p in idx and allowed[idx[p]]]
            for p in ps:
                r.append(child)
                c.append(p)
                v.append(1.0 / len(ps))
        return sp.csr_matrix((v, (r, c)), shape=(rows, len(self.equip.ids)))

    @cached_property
    def load_side(self) -> np.ndarray:
        """Conversion stages that carry demand toward the sources (not sources, not consumers)."""
        return np.isin(self.kind_array, CONVERSION_KINDS)

    @cached_property
    def consumers(self) -> np.ndarray:
        """Cooling plant fed from the power graph (chillers, towers, loop pumps): leaves like racks."""
        return np.flatnonzero(np.isin(self.kind_array, COOLING_KINDS) & np.array([bool(p) for p in self.equip.power_parents]))

    @cached_property
    def consumer_p_max_kw(self) -> np.ndarray:
        """Electrical rating of each cooling consumer (0 elsewhere), for the capacity chain."""
        out = np.zeros(len(self.equip.ids))
        for i in self.consumers:
            out[i] = cooling_p_elec_max_kw(self.equip.model[i], self.site)
        return out

    @cached_property
    def power_incidence(self) -> sp.csr_matrix:
        """equip x equip: row = child, column = load-side parent, value = share of the child's load."""
        return self._incidence(self.equip.power_parents, len(self.equip.ids), self.load_side)

    @cached_property
    def rack_power_incidence(self) -> sp.csr_matrix:
        """racks x equip: each rack's leaf distribution unit."""
        n = len(self.racks)
        return sp.csr_matrix((np.ones(n), (np.arange(n), self.racks.feeder)), shape=(n, len(self.equip.ids)))

    @cached_property
    def rack_cooling_incidence(self) -> sp.csr_matrix:
        n = len(self.racks)
        return sp.csr_matrix((np.ones(n), (np.arange(n), self.racks.loop)), shape=(n, len(self.equip.ids)))

    @cached_property
    def cooling_incidence(self) -> sp.csr_matrix:
        """equip x equip for heat: loop -> heat rejection, chiller -> tower (share of heat)."""
        allowed = np.isin(self.kind_array, ("facility_loop", *HEAT_REJECTION_KINDS))
        return self._incidence(self.equip.cooling_parents, len(self.equip.ids), allowed)

    @cached_property
    def power_levels(self) -> list[np.ndarray]:
        """Load-side equipment grouped by generation: level k is fed only by racks and levels < k.

        Aggregating demand level by level (one sparse product per level) is what lets the
        simulation walk the power tree without a Python loop over equipment.
        """
        return _generations(self.power_incidence, self.rack_power_incidence, self.load_side)

    @cached_property
    def sources(self) -> np.ndarray:
        return self.of_kind(*SOURCE_KINDS)

    # ------------------------------------------------------------------ aggregates
    def up(self, rack_values: np.ndarray, own_values: np.ndarray | None = None) -> np.ndarray:
        """Sum a per-rack (plus per-equipment `own`) quantity up the power tree, without losses."""
        below = self.rack_power_incidence.T @ rack_values
        if own_values is not None:
            below = below + own_values
        total = below.copy()
        A_T = self.power_incidence.T.tocsr()
        for _ in range(len(self.power_levels) + 1):
            # One more generation of children's totals reaches their parents on each pass.
            total = below + A_T @ total
        return total

    @cached_property
    def gpus_below(self) -> np.ndarray:
        return self.up(self.racks.n_gpus.astype(float))

    @cached_property
    def nameplate_below_kw(self) -> np.ndarray:
        """Nameplate of racks and cooling plant fed through each equipment."""
        return self.up(self.racks.p_max_kw, self.consumer_p_max_kw)

    # ------------------------------------------------------------------ summary
    @property
    def n_gpus(self) -> int:
        return int(self.racks.n_gpus.sum())

    @property
    def n_nodes(self) -> int:
        return int(len(self.node_rack))

    def gpus_by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for g, info in enumerate(self.groups):
            if info.server is None:
                continue
            name = info.server.gpu_type
            out[name] = out.get(name, 0) + int(self.racks.n_gpus[self.racks.group == g].sum())
        return out


def _generations(A: sp.csr_matrix, R: sp.csr_matrix, load_side: np.ndarray) -> list[np.ndarray]:
    """Peel the load side from the racks upward: a stage joins level k once none of its load-side
    children is still without a level (one sparse product per level, not a scan per stage)."""
    children_of = A.T.tocsr()  # parent x child
    pending = load_side.copy()
    levels: list[np.ndarray] = []
    while pending.any():
        waiting_on = children_of @ pending.astype(float)  # pending load-side children of each stage
        ready = pending & (waiting_on == 0)
        if not ready.any():  # a cycle: validation reports it; stop rather than spin
            break
        levels.append(np.flatnonzero(ready))
        pending &= ~ready
    return levels


def expand(site: Site) -> SiteLayout:
    equip = Equipment()
    for comp in site.components:
        equip.add(comp.id, comp, -1, comp.fed_by, comp.cooled_by)

    hall_ids: list[str] = []
    groups: list[RackGroupInfo] = []
    rack_cols: dict[str, list[np.ndarray]] = {k: [] for k in Racks.__dataclass_fields__}
    node_racks: list[np.ndarray] = []
    n_racks_before = 0
    n_arrays_before = 0
    parts = site.parts

    for t, hall in enumerate(site.halls):
        group_base = len(groups)
        # Each expanded unit is one unit: `count` on a level means units per parent, not in parallel.
        units = [lv.model_copy(update={"count": 1}) for lv in hall.distribution]
        for g in hall.racks:
            server = parts.server.get(g.rack.node_type) if g.rack.node_type else None
            groups.append(RackGroupInfo(
                t, g.rack, server,
                parts.gpu.get(server.gpu_type) if server else None,
                parts.cdu.get(g.rack.cdu_type) if g.rack.cdu_type else None,
                parts.rdhx.get(g.rack.rdhx_type) if g.rack.rdhx_type else None,
            ))
        # Racks of every instance of this template, all groups in order, laid row by row: the columns
        # are the same in each instance, so they are built once here from per-group figures.
        counts = np.array([g.count for g in hall.racks])
        nr = int(counts.sum())
        pos = np.arange(nr)
        local = np.repeat(np.arange(len(hall.racks)), counts)  # group within the template
        group = local + group_base
        infos = groups[group_base:]
        n_nodes = np.zeros(nr, dtype=np.int64)
        start = 0
        for g in hall.racks:
            if g.rack.role == "gpu":
                per = int(g.rack.nodes_per_rack)
                block = np.full(g.count, per)
                block[-1] = g.nodes_total - per * (g.count - 1)
                n_nodes[start:start + g.count] = block
            start += g.count
        gpn = np.array([i.server.gpus_per_node if i.server else 0 for i in infos])[local]
        p_node_kw = np.array([i.server.p_max_kw if i.server else 0.0 for i in infos])[local]
        p_rack_other_kw = np.array([_rack_overhead_kw(i) for i in infos])[local]
        role = np.array([ROLES.index(i.rack.role) for i in infos])[local]
        is_gpu = role == ROLES.index("gpu")
        row = pos // hall.racks_per_row
        col = pos % hall.racks_per_row
        rack_suffix = np.char.add(np.char.add("-r", np.char.zfill((row + 1).astype(str), 2)),
                                  np.char.add("-", np.char.zfill((col + 1).astype(str), 2)))
        for k in range(hall.count):
            n = hall.index_start + k
            h = len(hall_ids)
            hid = hall.id.format(n=n)
            hall_ids.append(hid)
            feeds = [f.format(n=n) for f in hall.fed_by]
            loops = [c.format(n=n) for c in hall.cooled_by]

            # Distribution levels: unit i of a level hangs under unit i // count of the level above.
            parents_ids = [hid]
            for d, level in enumerate(hall.distribution):
                unit = units[d]
                ids = [
                    level.id.format(parent=parents_ids[i // level.count], i=i % level.count + 1, n=n, hall=hid)
                    for i in range(len(parents_ids) * level.count)
                ]
                for i, uid in enumerate(ids):
                    if d == 0:
                        up = feeds if hall.redundancy == "2N" else [feeds[i % len(feeds)]]
                    else:
                        up = [parents_ids[i // level.count]]
                    equip.add(uid, unit, h, up)
                parents_ids = ids
            leaf_first = len(equip.ids) - len(parents_ids)

            array = np.full(nr, -1)
            array[is_gpu] = n_arrays_before + np.arange(is_gpu.sum()) // hall.racks_per_array
            if is_gpu.any():
                n_arrays_before = int(array.max()) + 1
            rack_cols["ids"].append(np.char.add(hid, rack_suffix))  # '<hall>-rRR-CC'
            rack_cols["hall"].append(np.full(nr, h))
            rack_cols["row"].append(row)
            rack_cols["col"].append(col)
            rack_cols["array"].append(array)
            rack_cols["role"].append(role)
            rack_cols["group"].append(group)
            rack_cols["n_nodes"].append(n_nodes)
            rack_cols["n_gpus"].append(n_nodes * gpn)
            rack_cols["p_max_kw"].append(n_nodes * p_node_kw + p_rack_other_kw)
            rack_cols["feeder"].append(leaf_first + pos * len(parents_ids) // nr)
            loop_idx = np.array([equip_index_or_minus1(equip, lp) for lp in loops])
            rack_cols["loop"].append(loop_idx[pos * len(loops) // nr])
            node_racks.append(np.repeat(n_racks_before + pos, n_nodes))
            n_racks_before += nr

    racks = Racks(**{k: np.concatenate(v) for k, v in rack_cols.items()})
    return SiteLayout(site, equip, hall_ids, groups, racks, np.concatenate(node_racks))


def equip_index_or_minus1(equip: Equipment, id_: str) -> int:
    try:
        return equip.ids.index(id_)
    except ValueError:
        return -1


def _rack_overhead_kw(info: RackGroupInfo) -> float:
    """Nameplate of a rack beyond its servers: the CDU pump or door fans, or a non-GPU rack's IT."""
    p = info.rack.p_it_max_kw  # non-GPU IT, or a GPU rack's switch trays
    if info.cdu is not None:
        p += info.cdu.p_pump_kw
    if info.rdhx is not None:
        p += info.rdhx.p_fan_kw
    return p
