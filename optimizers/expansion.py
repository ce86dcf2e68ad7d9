"""Capacity expansion for a new phase: how many turbines, MW and MWh of battery, MW of grid connection and
MW of chillers, at least annualised cost (capex x capital recovery factor + fixed O&M) plus the cost of
operating them over a horizon of hourly load (a full year, or a representative period scaled by
`cost_weight`), under the same operating limits as the dispatch (it re-uses `dispatch.define_operation`
with the capacities as decision variables).

Capacity rows (besides the operating rows of dispatch.py):
    turbine_units_available   u[t] <= N_existing + N_new
    battery_charge/discharge_limit, battery_soc_min/max   against P_existing + P_new, E_existing + E_new
    grid_capacity_limit       g[t] <= G_existing + G_new
    chiller_capacity          C_existing + C_new >= (1 + margin) * cooling load[t]
    battery_duration_min/max  E >= d_min * P, E <= d_max * P
The chiller's electricity (cooling load / COP) is added to the site load. Commitment is relaxed by
default (continuous units online, a year-hourly LP plus one integer: turbines built).
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field, replace

import numpy as np
import pyomo.environ as pyo
import xarray as xr

from optimizers.common import INF, LinearModel, elastic_resolve, raise_if_out_of_time, solve
from optimizers.costs import Costs, crf, load_costs
from optimizers.dispatch import (
    HARD_LIMITS,
    Capacity,
    DispatchInputs,
    OperationCapacities,
    define_operation,
    describers,
    elastic_penalties,
    extract_dispatch,
)
from twin.errors import InputError

_SRC = "<ExpansionInputs>"


def _cost(section: str, key: str):
    """Default of an ExpansionInputs field: the figure of data/costs.yaml (its source is there)."""
    return field(default_factory=lambda: float(getattr(getattr(load_costs(), section), key)))


@dataclass(frozen=True)
class ExpansionInputs:
    """`operation` holds the horizon (load, prices, limits) and the technology performance; its
    `turbines.n_units`, `battery.p_max_kw` / `e_max_kwh` are the capacities that exist already. Costs and the
    chiller COP not given default to the shipped data/costs.yaml (`from_costs` takes another file's)."""

    operation: DispatchInputs
    discount_rate_pu: float = _cost("financial", "discount_rate_pu")
    # turbines of the type in operation.turbines
    turbine_capex_usd_kw: float = _cost("turbine_smt130", "capex_usd_kw")
    turbine_fom_usd_kw_year: float = _cost("turbine_smt130", "fom_usd_kw_year")
    turbine_lifetime_years: float = _cost("turbine_smt130", "lifetime_years")
    turbine_units_max: float = INF
    turbine_integer: bool = True
    # battery
    battery_capex_usd_kwh: float = _cost("battery_megapack", "capex_usd_kwh")
    battery_capex_usd_kw: float = _cost("battery_megapack", "capex_usd_kw")
    battery_fom_usd_kw_year: float = _cost("battery_megapack", "fom_usd_kw_year")
    battery_lifetime_years: float = _cost("battery_megapack", "lifetime_years")
    battery_p_new_max_kw: float = INF
    battery_e_new_max_kwh: float = INF
    battery_duration_min_h: float | None = None
    battery_duration_max_h: float | None = None
    # grid connection
    grid_existing_kw: float = 0.0
    grid_capex_usd_kw: float = _cost("grid", "interconnection_capex_usd_kw")
    grid_fom_usd_kw_year: float = _cost("grid", "interconnection_fom_usd_kw_year")
    grid_lifetime_years: float = _cost("grid", "interconnection_lifetime_years")
    grid_new_max_kw: float = INF
    # chillers
    cooling_load_kw_thermal: np.ndarray | None = None
    chiller_cop: np.ndarray | float = _cost("chiller", "cop_pu")  # scalar or per step (e.g. the simulated COP)
    chiller_existing_kw_thermal: float = 0.0
    chiller_margin_pu: float = 0.0  # spare capacity above the peak cooling load (e.g. N+1 as a fraction)
    chiller_capex_usd_kw_thermal: float = _cost("chiller", "capex_usd_kw_thermal")
    chiller_fom_usd_kw_thermal_year: float = _cost("chiller", "fom_usd_kw_thermal_year")
    chiller_lifetime_years: float = _cost("chiller", "lifetime_years")
    # operation
    relax_commitment: bool = True
    cost_weight: float = 1.0  # per-step operating costs x this = a year (8760 h / horizon h)
    demand_months_weight: float = 1.0  # billed months each month of the horizon stands for

    @classmethod
    def from_costs(cls, operation: DispatchInputs, costs: Costs, **over) -> ExpansionInputs:
        t, b, g, c = costs.turbine_smt130, costs.battery_megapack, costs.grid, costs.chiller
        kw = dict(
            discount_rate_pu=costs.financial.discount_rate_pu,
            turbine_capex_usd_kw=t.capex_usd_kw, turbine_fom_usd_kw_year=t.fom_usd_kw_year,
            turbine_lifetime_years=t.lifetime_years,
            battery_capex_usd_kwh=b.capex_usd_kwh, battery_capex_usd_kw=b.capex_usd_kw,
            battery_fom_usd_kw_year=b.fom_usd_kw_year, battery_lifetime_years=b.lifetime_years,
            grid_capex_usd_kw=g.interconnection_capex_usd_kw, grid_fom_usd_kw_year=g.interconnection_fom_usd_kw_year,
            grid_lifetime_years=g.interconnection_lifetime_years,
            chiller_capex_usd_kw_thermal=c.capex_usd_kw_thermal,
            chiller_fom_usd_kw_thermal_year=c.fom_usd_kw_thermal_year, chiller_lifetime_years=c.lifetime_years,
            chiller_cop=c.cop_pu,
        )
        kw.update(over)
        return cls(operation=operation, **kw)

    # annualised cost per unit of each capacity
    @property
    def turbine_annual_usd_per_unit(self) -> float:
        p = self.operation.turbines.p_max_kw
        return p * (self.turbine_capex_usd_kw * crf(self.discount_rate_pu, self.turbine_lifetime_years)
                     + self.turbine_fom_usd_kw_year)

    @property
    def battery_annual_usd_kw(self) -> float:
        return self.battery_capex_usd_kw * crf(self.discount_rate_pu, self.battery_lifetime_years) + self.battery_fom_usd_kw_year

    @property
    def battery_annual_usd_kwh(self) -> float:
        return self.battery_capex_usd_kwh * crf(self.discount_rate_pu, self.battery_lifetime_years)

    @property
    def grid_annual_usd_kw(self) -> float:
        return self.grid_capex_usd_kw * crf(self.discount_rate_pu, self.grid_lifetime_years) + self.grid_fom_usd_kw_year

    @property
    def chiller_annual_usd_kw_thermal(self) -> float:
        return (self.chiller_capex_usd_kw_thermal * crf(self.discount_rate_pu, self.chiller_lifetime_years)
                + self.chiller_fom_usd_kw_thermal_year)

    def site_load_kw(self) -> np.ndarray:
        """IT/site load plus the chillers' electricity."""
        op = self.operation
        load = op.arr(op.load_kw)
        if self.cooling_load_kw_thermal is None:
            return load
        return load + np.asarray(self.cooling_load_kw_thermal, float) / op.arr(self.chiller_cop)

    def validate(self) -> None:
        self.operation.validate()
        n = self.operation.n
        if self.cooling_load_kw_thermal is not None:
            q = np.asarray(self.cooling_load_kw_thermal, float)
            if q.shape != (n,) or np.any(q < 0):
                raise InputError.one(_SRC, "cooling_load_kw_thermal", f"expected ({n},) values >= 0")
            cop = np.asarray(self.chiller_cop, float)
            if np.any(cop <= 0) or (cop.ndim and cop.shape != (n,)):
                raise InputError.one(_SRC, "chiller_cop", f"expected a scalar or ({n},) values > 0")
        if not 0 <= self.discount_rate_pu < 1:
            raise InputError.one(_SRC, "discount_rate_pu", f"{self.discount_rate_pu}, expected in [0, 1)")


def build_expansion(inp: ExpansionInputs) -> pyo.ConcreteModel:
    t0 = _time.perf_counter()
    inp.validate()
    op = inp.operation
    lm = LinearModel(pyo.ConcreteModel("expansion"))
    lm.var("turbines_new", 1, 0.0, inp.turbine_units_max, integer=inp.turbine_integer, units="1",
           long_name="turbines to add")
    lm.var("battery_p_new_kw", 1, 0.0, inp.battery_p_new_max_kw, units="kW", long_name="battery power to add")
    lm.var("battery_e_new_kwh", 1, 0.0, inp.battery_e_new_max_kwh, units="kWh", long_name="battery energy to add")
    lm.var("grid_new_kw", 1, 0.0, inp.grid_new_max_kw, units="kW", long_name="grid connection capacity to add")
    lm.var("chiller_new_kw_thermal", 1, 0.0, INF, units="kW", long_name="chiller capacity to add (thermal)")
    caps = OperationCapacities(
        turbine_units=Capacity(op.turbines.n_units, "turbines_new"),
        battery_p_kw=Capacity(op.battery.p_max_kw, "battery_p_new_kw"),
        battery_e_kwh=Capacity(op.battery.e_max_kwh, "battery_e_new_kwh"),
        grid_kw=Capacity(inp.grid_existing_kw, "grid_new_kw"),
    )
    define_operation(lm, op, caps, relax=inp.relax_commitment, load_kw=inp.site_load_kw(),
                     cost_weight=inp.cost_weight, demand_months_weight=inp.demand_months_weight, cyclic_soc=True)
    if inp.cooling_load_kw_thermal is not None:
        q = np.asarray(inp.cooling_load_kw_thermal, float) * (1 + inp.chiller_margin_pu)
        lm.rows("chiller_capacity", 1, [("chiller_new_kw_thermal", [0], [0], 1.0)],
                lb=float(q.max()) - inp.chiller_existing_kw_thermal, long_name="chillers cover the peak cooling load")
    e0, p0 = op.battery.e_max_kwh, op.battery.p_max_kw
    if inp.battery_duration_min_h is not None:
        d = inp.battery_duration_min_h
        lm.rows("battery_duration_min", 1, [("battery_e_new_kwh", [0], [0], 1.0), ("battery_p_new_kw", [0], [0], -d)],
                lb=d * p0 - e0, long_name="battery energy at least min duration x power")
    if inp.battery_duration_max_h is not None:
        d = inp.battery_duration_max_h
        lm.rows("battery_duration_max", 1, [("battery_e_new_kwh", [0], [0], 1.0), ("battery_p_new_kw", [0], [0], -d)],
                ub=d * p0 - e0, long_name="battery energy at most max duration x power")
    lm.add_cost("turbines_new", inp.turbine_annual_usd_per_unit)
    lm.add_cost("battery_p_new_kw", inp.battery_annual_usd_kw)
    lm.add_cost("battery_e_new_kwh", inp.battery_annual_usd_kwh)
    lm.add_cost("grid_new_kw", inp.grid_annual_usd_kw)
    lm.add_cost("chiller_new_kw_thermal", inp.chiller_annual_usd_kw_thermal)
    lm.finish("total_annual_cost")
    lm.build_s = _time.perf_counter() - t0
    return lm.model


def solve_expansion(inp: ExpansionInputs, time_limit_s: float = 300.0, rel_gap: float = 1e-4,
                    backend: str = "matrix") -> xr.Dataset:
    """Least-annualised-cost capacities and the operation that goes with them, as a Dataset: time series
    of the operation (as `solve_dispatch`) plus scalar capacity variables and an annual cost split."""
    model = build_expansion(inp)
    lm: LinearModel = model._linear
    info = solve(model, time_limit_s, rel_gap, backend=backend, load_pyomo=False)
    if not info.has_solution:
        raise_if_out_of_time(info, time_limit_s, "feasible expansion plan")
        pen = elastic_penalties(lm.families, inp.operation.dt_h)
        elastic_resolve(lambda: build_expansion(inp), pen, describers(inp.operation), time_limit_s, rel_gap,
                        what="the expansion plan", hard_limits=HARD_LIMITS)
    op = inp.operation
    site = replace(op, load_kw=inp.site_load_kw())
    ds = extract_dispatch(lm, info, site)
    v = lambda name: float(lm.value(info, name)[0])  # noqa: E731
    n_new, pb, eb, gk, ck = (v("turbines_new"), v("battery_p_new_kw"), v("battery_e_new_kwh"), v("grid_new_kw"),
                             v("chiller_new_kw_thermal"))
    scal = lambda x, units, ln: xr.DataArray(x, attrs={"units": units, "long_name": ln})  # noqa: E731
    ds["turbines_new"] = scal(n_new, "1", "turbines to add")
    ds["turbines_total"] = scal(op.turbines.n_units + n_new, "1", "turbines installed after expansion")
    ds["turbine_capacity_new_kw"] = scal(n_new * op.turbines.p_max_kw, "kW", "turbine capacity to add")
    ds["battery_p_new_kw"] = scal(pb, "kW", "battery power to add")
    ds["battery_e_new_kwh"] = scal(eb, "kWh", "battery energy to add")
    ds["grid_new_kw"] = scal(gk, "kW", "grid connection capacity to add")
    ds["chiller_new_kw_thermal"] = scal(ck, "kW", "chiller capacity to add (thermal)")
    if inp.cooling_load_kw_thermal is not None:
        ds["chiller_p_kw"] = xr.DataArray(np.asarray(inp.cooling_load_kw_thermal) / op.arr(inp.chiller_cop),
                                          dims="time", attrs={"units": "kW", "long_name": "chiller electricity"})
    annual = {
        "cost_annual_turbines_usd": n_new * inp.turbine_annual_usd_per_unit,
        "cost_annual_battery_usd": pb * inp.battery_annual_usd_kw + eb * inp.battery_annual_usd_kwh,
        "cost_annual_grid_usd": gk * inp.grid_annual_usd_kw,
        "cost_annual_chillers_usd": ck * inp.chiller_annual_usd_kw_thermal,
    }
    op_cost = (inp.cost_weight * (ds.attrs["cost_total_usd"] - ds.attrs["cost_demand_usd"])
               + inp.demand_months_weight * ds.attrs["cost_demand_usd"])
    annual["cost_annual_operation_usd"] = op_cost
    annual["cost_annual_total_usd"] = float(sum(annual.values()))
    ds.attrs.update(annual)
    ds.attrs["horizon_cost_weight"] = inp.cost_weight
    ds.attrs["demand_months_weight"] = inp.demand_months_weight
    return ds
