"""Power chain: node DC load -> PSU AC input -> racks -> conversion stages level by level -> the site bus.

Every stage's loss model is its component's own `p_in_kw` (Transformer: no-load + load-squared;
EfficiencyStage: (P + c) / eta; CurveStage: P / eta(load)). Demand climbs the tree with one sparse product
per generation of `layout.power_levels`; equipment of one generation that share a model (the units of one
hall level) are evaluated in one vectorised call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from twin.layout import SiteLayout
from twin.schema.components import SOURCE_KINDS


def psu_ac_kw(p_dc_node_kw: np.ndarray, server, psu) -> np.ndarray:
    """AC input of one node from its DC load through its PSUs (equal sharing); no PSU = DC equals AC."""
    if psu is None:
        return p_dc_node_kw
    rating = psu.p_unit_max_kw * server.psu_count
    return p_dc_node_kw / psu.efficiency_at(p_dc_node_kw / rating)


def available_shares(layout: SiteLayout, out: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Power incidence with the parents in `out` removed and each child's shares renormalised.

    Returns the matrix and a mask of equipment left with no load-side parent although it had one (stranded)."""
    A = layout.power_incidence.tocoo()
    keep = ~out[A.col]
    rows, cols = A.row[keep], A.col[keep]
    n = A.shape[0]
    had = np.bincount(A.row, minlength=n) > 0
    count = np.bincount(rows, minlength=n)
    vals = 1.0 / count[rows]
    stranded = had & (count == 0)
    return sp.csr_matrix((vals, (rows, cols)), shape=A.shape), stranded


def source_fed(layout: SiteLayout) -> np.ndarray:
    """Equipment with a source (utility feed, turbine, battery) among its direct parents."""
    idx = layout.index
    is_src = np.isin(layout.kind_array, SOURCE_KINDS)
    return np.array([any(p in idx and is_src[idx[p]] for p in ps) for ps in layout.equip.power_parents])


def stranded_equipment(layout: SiteLayout, out: np.ndarray) -> np.ndarray:
    """Equipment (and therefore everything below it) that has no path left to the sources.

    Only conversion-stage outages strand; a lost source shows up in the dispatch (less supply), and a stage
    fed directly by a source keeps that path."""
    A, lost = available_shares(layout, out)
    anchored = source_fed(layout)
    dead = out | (lost & ~anchored)
    # a child whose every remaining parent is dead is dead too: iterate over generations (top-down)
    A_csr = A.tocsr()
    for _ in range(len(layout.power_levels) + 2):
        alive_parent = A_csr @ (~dead).astype(float)
        has_parent = np.diff(A_csr.indptr) > 0
        new = dead | (has_parent & (alive_parent <= 0) & ~anchored)
        if np.array_equal(new, dead):
            break
        dead = new
    return dead


@dataclass
class ChainResult:
    p_in_kw: np.ndarray  # (time, equip)
    p_out_kw: np.ndarray  # (time, equip)


class PowerChain:
    """The load side of one site under one outage state (which units are out)."""

    def __init__(self, layout: SiteLayout, out_units: dict[int, int] | None = None):
        self.layout = layout
        n = len(layout.equip.ids)
        out_units = out_units or {}
        fully_out = np.zeros(n, bool)
        models = list(layout.equip.model)
        for i, k in out_units.items():
            m = models[i]
            if k >= m.count:
                fully_out[i] = True
            else:
                models[i] = m.model_copy(update={"count": m.count - k})
        self.models = models
        self.out = fully_out
        self.dead = stranded_equipment(layout, fully_out)
        A, _ = available_shares(layout, fully_out)
        self.A = A.tocsc()
        self.p_max_kw = np.array([m.p_max_kw for m in models])
        self.levels = [lv[~self.dead[lv]] for lv in layout.power_levels]
        self.groups = []  # per level: list of (indices, model)
        for lv in self.levels:
            by_model: dict[int, list[int]] = {}
            for i in lv:
                by_model.setdefault(id(models[i]), []).append(int(i))
            self.groups.append([(np.array(ix), models[ix[0]]) for ix in by_model.values()])
        kinds = layout.kind_array
        onsite = set(np.flatnonzero(np.isin(kinds, ("gas_turbine", "battery"))))
        utility = set(np.flatnonzero(kinds == "utility_feed"))
        idx = layout.index
        parents = [[idx[p] for p in ps if p in idx] for ps in layout.equip.power_parents]
        load_side = layout.load_side
        bus = [i for i in range(n) if load_side[i] and any(p in onsite for p in parents[i])]
        if not bus:  # no on-site sources: the bus is the top of the load side
            bus = [i for i in range(n) if load_side[i] and not any(load_side[p] for p in parents[i])]
        self.bus = np.array(sorted(bus), dtype=int)
        # equipment between the utility feeds and the bus (substations): carries the grid's share only
        up = np.zeros(n, bool)
        frontier = np.zeros(n, bool)
        frontier[self.bus] = True
        Acsr = layout.power_incidence.tocsr()
        for _ in range(len(layout.power_levels) + 1):
            par = (Acsr.T @ frontier.astype(float)) > 0
            par &= ~up & load_side
            par[self.bus] = False
            if not par.any():
                break
            up |= par
            frontier = par
        self.upstream = up
        # what feeds an upstream stage (bus units, upstream stages): run_upstream works on these columns only
        feeds_up = np.flatnonzero(self.A[:, np.flatnonzero(up)].getnnz(axis=1) > 0) if up.any() else np.zeros(0, int)
        self._up_rows = feeds_up
        self._A_up = self.A[feeds_up, :].tocsc()
        self._up_pos = np.full(n, -1)
        self._up_pos[feeds_up] = np.arange(len(feeds_up))
        # where grid import is metered: load-side equipment fed by a utility feed
        self.grid_entry = np.array([i for i in range(n) if load_side[i] and any(p in utility for p in parents[i])], int)

    def run(self, rack_sum_kw: np.ndarray, consumer_kw: np.ndarray, consumers: np.ndarray,
            skip_upstream: bool = True) -> ChainResult:
        """rack_sum_kw (time, equip): power the racks draw from each leaf unit; consumer_kw (time, consumers)."""
        T, n = rack_sum_kw.shape
        p_in = np.zeros((T, n))
        p_out = np.zeros((T, n))
        p_in[:, consumers] = consumer_kw
        for lv, groups in zip(self.levels, self.groups, strict=True):
            if skip_upstream:
                lv = lv[~self.upstream[lv]]
                if not len(lv):
                    continue
            out = rack_sum_kw[:, lv] + np.asarray(p_in @ self.A[:, lv])
            p_out[:, lv] = out
            for ix, model in groups:
                if skip_upstream:
                    ix = ix[~self.upstream[ix]]
                    if not len(ix):
                        continue
                p_in[:, ix] = model.p_in_kw(p_out[:, ix])
        return ChainResult(p_in, p_out)

    def run_upstream(self, res: ChainResult, grid_share: np.ndarray) -> None:
        """After dispatch: upstream stages carry only the grid's share of each bus unit's input.

        Works on the columns that feed an upstream stage, not on every piece of equipment: the engine calls
        this a dozen times per run (the bus cap's fixed point), and at 0.1 s steps a copy of the whole
        (time, equipment) input was most of its cost."""
        if not self.upstream.any():
            return
        rows, pos = self._up_rows, self._up_pos
        p_in = res.p_in_kw[:, rows]  # a copy
        p_in[:, np.isin(rows, self.bus)] *= grid_share[:, None]
        for lv, groups in zip(self.levels, self.groups, strict=True):
            lv_up = lv[self.upstream[lv]]
            if not len(lv_up):
                continue
            res.p_out_kw[:, lv_up] = np.asarray(p_in @ self._A_up[:, lv_up])
            for ix, model in groups:
                ix = ix[self.upstream[ix]]
                if len(ix):
                    val = model.p_in_kw(res.p_out_kw[:, ix])
                    res.p_in_kw[:, ix] = val
                    k = pos[ix]
                    p_in[:, k[k >= 0]] = val[:, k >= 0]  # an upstream stage that feeds another
