"""Hall floor grids: every rack of every hall placed on a row x column numpy grid, built once per site.

The grid index (row * n_cols + col of each rack) is computed when the app starts; a live update is then
one fancy-indexed assignment per hall, whatever the number of racks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.layout import ROLES, SiteLayout

# The floor metrics a user can pick: key -> (label, units, plotly colour scale).
METRICS: dict[str, tuple[str, str, str]] = {
    "power": ("Rack power", "kW", "YlOrRd"),  # drawn reversed: light = low, dark red = high
    "t_cdu": ("CDU supply temperature", "°C", "RdBu_r"),
    "headroom": ("Headroom to rack nameplate", "kW", "Viridis"),
}


@dataclass(frozen=True)
class HallGrid:
    """One hall's racks on a row x column grid (empty positions stay NaN)."""

    hall_id: str
    n_rows: int
    n_cols: int
    racks: np.ndarray  # indices into layout.racks, in the hall's order
    flat: np.ndarray  # row * n_cols + col of each of those racks
    rack_ids: np.ndarray  # (n_rows, n_cols) object array of rack ids, "" where there is no rack
    roles: np.ndarray  # (n_rows, n_cols) object array of rack roles, "" where there is no rack

    def fill(self, values: np.ndarray) -> np.ndarray:
        """(n_rows, n_cols) grid of a per-rack quantity (all racks of the site), NaN where no rack."""
        z = np.full(self.n_rows * self.n_cols, np.nan)
        z[self.flat] = values[self.racks]
        return z.reshape(self.n_rows, self.n_cols)


@dataclass(frozen=True)
class FloorGrid:
    halls: tuple[HallGrid, ...]
    p_max_kw: np.ndarray  # rack nameplate, for the headroom metric

    def grids(self, values: np.ndarray) -> list[np.ndarray]:
        return [h.fill(values) for h in self.halls]

    def metric_values(self, metric: str, p_rack_kw: np.ndarray | None, t_cdu_supply_c: np.ndarray | None) -> np.ndarray:
        """Per-rack values of one floor metric (NaN when the twin has not produced them yet)."""
        n = len(self.p_max_kw)
        if metric == "power":
            return np.full(n, np.nan) if p_rack_kw is None else np.asarray(p_rack_kw, dtype=float)
        if metric == "t_cdu":
            return np.full(n, np.nan) if t_cdu_supply_c is None else np.asarray(t_cdu_supply_c, dtype=float)
        if metric == "headroom":
            return np.full(n, np.nan) if p_rack_kw is None else self.p_max_kw - np.asarray(p_rack_kw, dtype=float)
        raise ValueError(f"unknown floor metric {metric!r}; expected one of {', '.join(METRICS)}")


def build_floor(layout: SiteLayout) -> FloorGrid:
    r = layout.racks
    halls = []
    role_names = np.array(ROLES, dtype=object)
    for h, hid in enumerate(layout.hall_ids):
        idx = np.flatnonzero(r.hall == h)
        n_rows = int(r.row[idx].max()) + 1
        n_cols = int(r.col[idx].max()) + 1
        flat = r.row[idx] * n_cols + r.col[idx]
        ids = np.full(n_rows * n_cols, "", dtype=object)
        ids[flat] = r.ids[idx]
        roles = np.full(n_rows * n_cols, "", dtype=object)
        roles[flat] = role_names[r.role[idx]]
        halls.append(HallGrid(hid, n_rows, n_cols, idx, flat, ids.reshape(n_rows, n_cols), roles.reshape(n_rows, n_cols)))
    return FloorGrid(tuple(halls), np.asarray(r.p_max_kw, dtype=float))
