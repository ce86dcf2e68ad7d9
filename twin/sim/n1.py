"""N-1: for each conversion stage and each source group, what losing it (one unit of a multi-unit component,
the whole of a single-unit one) overloads or strands at the scenario's peak.

Overloads: equipment pushed beyond its rating when the peak load re-flows through what remains (parallel
feeds in 2N pick up their partner's share; a substation that loses a unit loads the other). Strands: racks
with no remaining path (a failed transformer's racks). Sources: the peak demand the remaining sources
cannot carry. One loop over components (hundreds), each a one-step power-chain run.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from twin.layout import SiteLayout
from twin.schema.components import CONVERSION_KINDS
from twin.sim.power import PowerChain

COLUMNS = ["component", "kind", "units_lost", "stranded_racks", "stranded_gpus", "stranded_mw", "overloaded",
           "max_loading_pu", "supply_shortfall_mw"]


def _peak_inputs(layout: SiteLayout, ds: xr.Dataset):
    t = int(ds["p_bus_kw"].argmax("time"))
    rack_dim = ds["p_rack_kw"].dims[0]
    tr = t if rack_dim == "time" else int(np.searchsorted(ds[rack_dim].values, ds["time"].values[t], side="right") - 1)
    p_rack = ds["p_rack_kw"].isel({rack_dim: tr}).values.astype(np.float64)
    cons = layout.consumers
    ids = list(ds["equipment"].values)
    p_eq = ds["p_equipment_in_kw"].isel(time=t).values
    p_cons = np.array([p_eq[ids.index(layout.equip.ids[i])] for i in cons], dtype=np.float64)
    return t, p_rack, p_cons, float(ds["p_bus_kw"].values[t])


def n1_table(layout: SiteLayout, ds: xr.Dataset) -> pd.DataFrame:
    t, p_rack, p_cons, demand = _peak_inputs(layout, ds)
    cons = layout.consumers
    E = len(layout.equip.ids)
    feeder = layout.racks.feeder

    def flow(state):
        ch = PowerChain(layout, state)
        dead_r = ch.dead[feeder]
        rack_sum = np.bincount(feeder, weights=np.where(dead_r, 0.0, p_rack), minlength=E)[None, :]
        res = ch.run(rack_sum, (p_cons * ~ch.dead[cons])[None, :], cons, skip_upstream=False)
        load = np.divide(res.p_out_kw[0], ch.p_max_kw, out=np.zeros(E), where=ch.p_max_kw > 0)
        load[ch.out] = 0.0
        return ch, dead_r, load

    _, _, base_load = flow({})
    kinds = layout.kind_array
    rows = []
    for i in np.flatnonzero(np.isin(kinds, CONVERSION_KINDS)):
        m = layout.equip.model[i]
        units = 1 if m.count > 1 else m.count
        ch, dead_r, load = flow({int(i): units})
        over = np.flatnonzero((load > 1.0 + 1e-9) & (base_load <= 1.0 + 1e-9) & np.isin(kinds, CONVERSION_KINDS))
        rows.append({
            "component": layout.equip.ids[i], "kind": kinds[i], "units_lost": units,
            "stranded_racks": int(dead_r.sum()), "stranded_gpus": int(layout.racks.n_gpus[dead_r].sum()),
            "stranded_mw": float(p_rack[dead_r].sum()) / 1000.0,
            "overloaded": ",".join(layout.equip.ids[j] for j in over),
            "max_loading_pu": float(load[np.isin(kinds, CONVERSION_KINDS)].max(initial=0.0)),
            "supply_shortfall_mw": 0.0,
        })
    # source groups: the peak demand the remaining sources cannot carry
    src = {k: np.flatnonzero(kinds == k) for k in ("utility_feed", "gas_turbine", "battery")}
    cap = {k: sum(layout.equip.model[i].p_max_kw for i in ix) for k, ix in src.items()}
    for k, ix in src.items():
        for i in ix:
            m = layout.equip.model[i]
            units = 1 if m.count > 1 else m.count
            lost = m.p_max_kw * units / m.count
            remaining = sum(cap.values()) - lost
            rows.append({"component": layout.equip.ids[i], "kind": k, "units_lost": units, "stranded_racks": 0,
                         "stranded_gpus": 0, "stranded_mw": 0.0, "overloaded": "", "max_loading_pu": np.nan,
                         "supply_shortfall_mw": max(0.0, demand - remaining) / 1000.0})
    return pd.DataFrame(rows, columns=COLUMNS)


def n1_from_result(ds: xr.Dataset) -> pd.DataFrame:
    from twin.sim.engine import site_layout

    sc = json.loads(ds.attrs["scenario"])
    return n1_table(site_layout(sc["site"], sc.get("base_dir")), ds)


def n1(site, scenario) -> pd.DataFrame:
    """Simulate the scenario and return its N-1 table."""
    from twin.sim.engine import simulate, site_layout

    ds = simulate(site, scenario)
    sc = json.loads(ds.attrs["scenario"])
    return n1_table(site_layout(site if site is not None else sc["site"], sc.get("base_dir")), ds)
