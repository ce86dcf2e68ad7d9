"""Energy dispatch with unit commitment: grid import, identical gas turbines, a battery; grid import cap,
utility ramp limit, monthly demand charges, emissions caps and the 30-minute load-reduction commitment.

Model (one row family per statement, each a named Pyomo `Constraint` indexed by time step):

    power_balance               g + p_gt + p_dis - p_ch + p_cap = load                [dual -> price_usd_kwh]
    grid_import_limit           g <= grid_import_max
    grid_ramp_limit             |g[t] - g[t-1]| <= ramp * dt
    demand_peak                 peak[month(t)] >= g[t]
    turbine_output_max/min      p_min_pu * P * u <= p_gt <= P * u
    turbine_commitment_balance  u[t] - u[t-1] = su[t] - sd[t]
    turbine_min_up              sum(su[t-UT+1..t]) <= u[t]                 (aggregated identical units)
    turbine_min_down            sum(sd[t-DT+1..t]) <= N - u[t]
    (outages)                   u[t] <= A[t] (units in service); fsd[t] <= max(A[t-1] - A[t], 0) forced stops
                                enter the balance (u[t] - u[t-1] = su - sd - fsd) and relieve min up, not
                                min down, at a token cost only: a trip is never a start/stop violation
    battery_state_of_charge     soc[t] = soc[t-1] + (eta_c p_ch - p_dis / eta_d) dt
    battery_final_soc           soc[end] >= soc_final
    (battery outages)           p_ch, p_dis, r_bat power <= a_p[t] P_bat; with a_e < 1 the energy held by
                                units out of service is tracked (`battery_energy_out_of_service`) and the
                                units in service keep a_e soc_min E <= soc - out <= a_e soc_max E
    reserve_battery_power       r_bat <= P_bat - p_dis + p_ch
    reserve_battery_energy      r_bat * duration / eta_d <= soc - soc_min
    reserve_turbine_headroom    r_gt <= P * u - p_gt      (P * N - p_gt if units start within 30 min)
    load_reduction_reserve      r_bat + r_gt + capping_allowance >= reduction_kw
    emissions_cap / nox_cap     horizon totals (t)

u (units online), su, sd are integers (identical-unit aggregated commitment); `relax=True` makes them
continuous (the LP relaxation). Objective: energy + demand charges + fuel + turbine O&M + start costs +
value of lost load on capped load. Prices are the duals of `power_balance`; for a MIP they come from the
LP re-solved with the commitment fixed (standard practice: they price energy given the commitment).

Speed of the year-hourly LP relaxation (benchmarks/bench_dispatch.py, 2-core VM, HiGHS 1.16)
-------------------------------------------------------------------------------------------
colossus-1's planning year (`scenarios/colossus-1-year-permit.yaml`, simulated): 105,122 rows x 96,372
columns; the synthetic `colossus_like(8760)`: 122,642 x 96,372. The first solve is 25-30 s (dual simplex).
Re-solves after a price change (`DispatchSession`; only the cost vector changes) take one of two paths:

* Month blocks (optimizers/blocks.py): the twelve month LPs re-solved from their bases, once with the
  month-end state held at a kept full optimum (the answer and an upper bound) and once with the links
  and the NOx cap priced (a proven lower bound): at that optimum's duals when the turbine-weighted mean
  price change from it is within 3 % (e.g. hourly noise), else at the median of the held months' NOx
  budget duals (a tariff level change moves the NOx price). Accepted when the proven gap is within
  `rel_gap` (2-6e-4 measured), else the full LP answers and its optimum is kept as a further reference.
  ~3,000-5,000 pivots at ~0.1 ms on two threads, where the full LP needs about as many at ~1 ms (the
  battery's state-of-charge chain keeps the year's basis factors dense). Set-up after the first solve:
  ~5 s (24 block LPs solved once).
* The full LP from its kept basis by primal simplex (a change of costs only leaves the basis primal
  feasible; dual simplex first rebuilds its dual steepest-edge weights, ~3 s, then pivots more slowly).

Measured (bench, machine otherwise idle), colossus-1's year: all prices +10 % 0.12 s, on-peak +20 %
0.31 s, hourly noise 0.26-0.27 s, hourly noise on top of on-peak +20 % 0.31-0.35 s, all by blocks
(the full LP: 0.5, 1.7-2.0, 2.3-4 s). The synthetic year (ramp limit, curtailment, a tighter NOx cap):
on-peak +20 % 0.32 s and hourly noise 0.36-0.39 s by blocks; +10 % 0.87 s (the held months' median
misses the NOx price; the full LP answers); hourly noise on top of on-peak +20 % 5-9 s (the blocks'
proof falls just short, 1.2e-3, and the full LP starts from the base optimum's basis).

Measured and not kept (each against the figures above, same VM, one process at a time):
dual simplex with Devex weights on the re-solve (8.7 s); primal with Dantzig (4.1 s; 16.6 s on the
on-peak change) or steepest-edge pricing (23.7 s); simplex_update_limit 100-400 (no change); parallel
dual simplex (PAMI, 2 threads: first solve 136 s); Devex on the first solve (41 s); interior point
(IPX + crossover ~70 s, without crossover ~107 s; IPX has no warm start, so it cannot help a
re-solve); presolve off (58 s); the NOx cap and monthly peaks through per-day variables (no dense row or
columns: first solve 27.9 s, re-solve 2.3 s, i.e. no gain); eliminating variables fixed by equalities
(grid cap as a column bound, shutdowns and reserve variables substituted, the unused curtailment
column dropped: 96k x 61k; first solve ~31-39 s, re-solve 2.4 s: no gain, so the named rows stay);
NOx totals in kg instead of t (scaling: no gain); warm-starting the first solve from a rolling-horizon
plan through HiGHS crossover (slower: the plan is ~3 % off and the coupling must still be
re-optimised). For the blocks: the full LP with the month-end state held, as one LP (the same ~1 ms per
pivot: HiGHS does not exploit the block structure; 3.4 s); quarter- and half-month blocks (the monthly
peak then links blocks: proven gap 5-8e-3); the NOx cap priced in the held pass (every month then under-uses
it: 8.7e-3 from the optimum); the lower bound's NOx price taken from the held pass's budget duals (mean or
median) instead of the first solve's (the month LPs with NOx priced flip many turbine hours when that price
moves: 1-3 s per pass), so changes that move the NOx price go to the full LP; reallocating the NOx budgets
between months by a cutting-plane master after an on-peak +20 % change (the held answer comes within 8e-5
of the optimum after 5 rounds, 2.7 s, but the bound still needs the Lagrangian pass at the moved NOx
price); HiGHS crossover from the blocks' answer to a basis of the full LP for that change (0.7 s, then
1,556 primal pivots, 1.4 s: slower than the plain warm re-solve); dual simplex, Dantzig or steepest-edge
pricing, row-wise pricing and no scaling on the block LPs (all slower than primal Devex).
"""

from __future__ import annotations

import time as _time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import pyomo.environ as pyo
import xarray as xr

from optimizers.blocks import BlockResolver, month_blocks
from optimizers.common import (
    INF,
    LinearModel,
    SolveInfo,
    elastic_resolve,
    family_dataarray,
    raise_if_out_of_time,
    solve,
)
from twin.errors import InputError

KJ_PER_MMBTU = 1_055_055.85
_SETTLE_POOL = ThreadPoolExecutor(1, thread_name_prefix="dispatch-blocks-settle")
MAX_REFERENCES = 4  # full optima a DispatchSession keeps for its blocks' bound: the first and the last 3
# Cost of a stop forced by an outage, USD: a token, so the optimiser never starts a unit just to trip it (with
# free starts it could, and the starts would carry into the next window's minimum up time); not in cost_*_usd
FORCED_STOP_TOKEN_USD = 1e-3
_SRC = "<DispatchInputs>"

# Elastic penalties (USD per kW-step, or per t for caps): the grid cap is the limit a planner negotiates
# first, so it carries the lowest penalty; a shortfall is then reported against it.
ELASTIC_PENALTIES_USD = {
    "grid_import_limit": 1.0e3,
    "grid_capacity_limit": 1.0e3,
    "load_reduction_reserve": 2.0e3,
    "grid_ramp_limit": 4.0e3,
    "battery_final_soc": 4.0e3,
    "emissions_cap": 1.0e6,
    "nox_cap": 1.0e7,
}
# What is left when even the elastic model has no solution: the limits that carry no slack.
HARD_LIMITS = "a hard limit (battery energy/power, turbine count, load-capping bounds)"


def elastic_penalties(families, dt_h: float) -> dict[str, float]:
    """ELASTIC_PENALTIES_USD of the families present, per kW of slack per step (x dt_h) except the
    horizon caps, whose slack is in tonnes."""
    return {k: v * (dt_h if k not in ("emissions_cap", "nox_cap") else 1.0)
            for k, v in ELASTIC_PENALTIES_USD.items() if k in families}


@dataclass(frozen=True)
class TurbineFleet:
    """Identical gas turbines, aggregated. Emission factors per MMBtu of fuel, HHV basis (AP-42)."""

    n_units: int
    p_max_kw: float  # per unit
    p_min_pu: float = 0.5
    heat_rate_kj_kwh: float = 10_240.0  # LHV (Solar Titan 130)
    hhv_lhv_ratio: float = 1.108
    start_cost_usd: float = 0.0
    min_up_h: float = 0.0
    min_down_h: float = 0.0
    vom_usd_kwh: float = 0.0
    co2_kg_per_mmbtu: float = 49.9  # AP-42 §3.1: 110 lb/MMBtu HHV
    nox_kg_per_mmbtu: float = 0.0449  # AP-42 §3.1 lean-premix 0.099 lb/MMBtu
    quick_start: bool = False  # True if an offline unit reaches full output within the 30-min window
    units_online_initial: int = 0
    startups_recent: tuple[int, ...] = ()  # starts in the steps just before t0 (last = step -1), net of trips
    shutdowns_recent: tuple[int, ...] = ()

    @property
    def fuel_mmbtu_per_kwh(self) -> float:
        """Fuel per kWh of electricity, HHV basis."""
        return self.heat_rate_kj_kwh * self.hhv_lhv_ratio / KJ_PER_MMBTU


@dataclass(frozen=True)
class Battery:
    p_max_kw: float
    e_max_kwh: float
    efficiency_roundtrip_pu: float = 0.9
    soc_initial_pu: float = 0.5
    soc_min_pu: float = 0.0
    soc_max_pu: float = 1.0
    soc_final_pu: float | None = None  # end-of-horizon minimum; None = soc_initial_pu

    @property
    def efficiency_oneway_pu(self) -> float:
        return float(np.sqrt(self.efficiency_roundtrip_pu))


@dataclass(frozen=True)
class DispatchInputs:
    time: np.ndarray  # datetime64, start of each step
    dt_h: float
    load_kw: np.ndarray
    price_usd_kwh: np.ndarray
    turbines: TurbineFleet
    battery: Battery
    grid_import_max_kw: float | np.ndarray = INF
    grid_ramp_max_kw_per_h: float = INF
    grid_import_initial_kw: float | None = None  # for the ramp limit at the first step
    demand_charge_usd_kw_month: float = 0.0
    demand_peak_floor_kw: np.ndarray | None = None  # peak already set earlier in each step's month
    # (n,) share of each step's month billed in this horizon (a 2-day horizon in June: 48 / 720), so a horizon
    # shorter than its months pays their demand charge pro rata; None: each month's whole charge
    demand_charge_share_pu: np.ndarray | None = None
    gas_price_usd_mmbtu: float | np.ndarray = 3.5
    grid_co2_kg_kwh: float = 0.2835
    emissions_cap_t_co2: float | None = None
    emissions_cap_includes_grid: bool = False  # False: on-site (turbine) CO2 only, like an air permit
    nox_cap_t: float | None = None
    reduction_kw: float = 0.0  # load-reduction commitment to hold at every step (TVA: within 30 min)
    reduction_duration_h: float = 1.0  # how long the battery must sustain its share (assumed)
    load_capping_allowance_kw: float | np.ndarray = 0.0  # load the site can shed on request (GPU capping)
    curtailment_max_kw: float | np.ndarray = 0.0  # load the optimiser may leave unserved ...
    value_of_lost_load_usd_kwh: float = 10.0  # ... at this price
    # per-step availability (outages, trips); None = everything in service at every step
    turbine_units_available: np.ndarray | None = None  # (n,) ints 0..n_units: units in service
    battery_p_available_pu: np.ndarray | None = None  # (n,) 0..1: share of the battery's power in service
    battery_e_available_pu: np.ndarray | None = None  # (n,) 0..1: share of its energy in service (units out keep their charge)

    @property
    def n(self) -> int:
        return len(self.load_kw)

    def arr(self, v) -> np.ndarray:
        return np.broadcast_to(np.asarray(v, float), (self.n,)).astype(float)

    def units_available(self) -> np.ndarray:
        """Turbine units in service per step, (n,) floats of whole numbers (all units when not given)."""
        if self.turbine_units_available is None:
            return np.full(self.n, float(self.turbines.n_units))
        return np.asarray(self.turbine_units_available, float).copy()

    def battery_p_available(self) -> np.ndarray:
        return np.ones(self.n) if self.battery_p_available_pu is None else np.asarray(self.battery_p_available_pu, float).copy()

    def battery_e_available(self) -> np.ndarray:
        return np.ones(self.n) if self.battery_e_available_pu is None else np.asarray(self.battery_e_available_pu, float).copy()

    def _validate_availability(self) -> None:
        n, units = self.n, self.turbines.n_units
        for key, hi, whole in (("turbine_units_available", units, True), ("battery_p_available_pu", 1.0, False),
                               ("battery_e_available_pu", 1.0, False)):
            v = getattr(self, key)
            if v is None:
                continue
            try:
                a = np.asarray(v, float)
            except (TypeError, ValueError):
                raise InputError.one(_SRC, key, f"expected a numeric array of shape ({n},)") from None
            what = f"whole numbers of units in 0..{units} (turbines.n_units)" if whole else "shares in 0..1"
            if a.shape != (n,):
                raise InputError.one(_SRC, key, f"shape {a.shape}, expected ({n},) (one value per step), {what}")
            bad = ~np.isfinite(a) | (a < 0) | (a > hi)
            if whole:
                bad |= np.abs(a - np.round(a)) > 1e-9
            if bad.any():
                k = int(np.argmax(bad))
                raise InputError.one(_SRC, key, f"{a[k]:g} at step {k} ({int(bad.sum())} bad steps), expected {what}")

    def validate(self) -> None:
        n = self.n
        for key in ("time", "price_usd_kwh"):
            if len(getattr(self, key)) != n:
                raise InputError.one(_SRC, key, f"length {len(getattr(self, key))}, expected {n} (as load_kw)")
        for key in ("grid_import_max_kw", "gas_price_usd_mmbtu", "load_capping_allowance_kw", "curtailment_max_kw"):
            v = np.asarray(getattr(self, key))
            if v.ndim and v.shape != (n,):
                raise InputError.one(_SRC, key, f"shape {v.shape}, expected a scalar or ({n},)")
        if not np.issubdtype(np.asarray(self.time).dtype, np.datetime64):
            raise InputError.one(_SRC, "time", "expected a numpy datetime64 array")
        if self.dt_h <= 0:
            raise InputError.one(_SRC, "dt_h", f"{self.dt_h}, expected > 0")
        if not np.all(np.isfinite(self.load_kw)) or np.any(np.asarray(self.load_kw) < 0):
            raise InputError.one(_SRC, "load_kw", "expected finite values >= 0")
        b, g = self.battery, self.turbines
        if not 0 < b.efficiency_roundtrip_pu <= 1:
            raise InputError.one(_SRC, "battery.efficiency_roundtrip_pu", f"{b.efficiency_roundtrip_pu}, expected in (0, 1]")
        if not 0 <= b.soc_min_pu <= b.soc_initial_pu <= b.soc_max_pu <= 1:
            raise InputError.one(_SRC, "battery.soc_initial_pu",
                                 "expected 0 <= soc_min_pu <= soc_initial_pu <= soc_max_pu <= 1")
        if g.n_units < 0 or not 0 <= g.p_min_pu <= 1:
            raise InputError.one(_SRC, "turbines", "expected n_units >= 0 and 0 <= p_min_pu <= 1")
        if not 0 <= g.units_online_initial <= g.n_units:
            raise InputError.one(_SRC, "turbines.units_online_initial", f"expected 0..{g.n_units}")
        self._validate_availability()
        if self.demand_charge_share_pu is not None:
            a = np.asarray(self.demand_charge_share_pu, float)
            if a.shape != (n,) or not np.all((a > 0) & (a <= 1)):
                raise InputError.one(_SRC, "demand_charge_share_pu", f"expected ({n},) shares in (0, 1], one per step")

    def demand_share_of_months(self) -> np.ndarray:
        """Share of each month of the horizon billed here (1 without `demand_charge_share_pu`)."""
        months, midx = _months(self.time)
        share = np.ones(len(months))
        if self.demand_charge_share_pu is not None:
            share[:] = 0.0
            np.maximum.at(share, midx, np.asarray(self.demand_charge_share_pu, float))
        return share


# ------------------------------------------------------------------------------------------- capacities


@dataclass(frozen=True)
class Capacity:
    """A capacity that is fixed (`existing`) or existing plus a decision variable (`var`, size 1, in the
    same unit; `per_unit` converts the variable to the unit of `existing`, e.g. kW per turbine)."""

    existing: float
    var: str | None = None
    per_unit: float = 1.0

    def terms(self, rows: np.ndarray, coef) -> list:
        """Terms moving `coef * (existing + per_unit * var)` to the left-hand side (as `- coef * var`)."""
        if self.var is None:
            return []
        return [(self.var, rows, np.zeros(len(rows), np.int64), -np.asarray(coef, float) * self.per_unit)]


@dataclass(frozen=True)
class OperationCapacities:
    turbine_units: Capacity
    battery_p_kw: Capacity
    battery_e_kwh: Capacity
    grid_kw: Capacity | None = None  # a built grid connection (expansion); None in dispatch


def _months(time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(time).astype("datetime64[M]")
    uniq, idx = np.unique(m, return_inverse=True)
    return uniq, idx


def _recent_sum(recent: tuple[int, ...], window: int, n: int) -> np.ndarray:
    """For each step t, the events in `recent` (steps -L..-1) that fall in the window [t-window+1, t]."""
    out = np.zeros(n)
    if window <= 1 or not recent:
        return out
    r = np.asarray(recent, float)
    L = len(r)
    for t in range(min(n, window - 1)):  # at most window-1 steps, not a hot loop
        lo = t - window + 1  # first step of the window (negative = before t0)
        out[t] = r[max(0, L + lo):L].sum()
    return out


def define_operation(lm: LinearModel, inp: DispatchInputs, caps: OperationCapacities, relax: bool,
                     load_kw: np.ndarray | None = None, cost_weight: float = 1.0,
                     demand_months_weight: float = 1.0, cyclic_soc: bool = False) -> None:
    """Declare the operating variables and constraints of one horizon on `lm` (shared by dispatch and
    expansion). `cost_weight` scales per-step costs (a representative period standing for a year),
    `demand_months_weight` the billed months each month group stands for; `cyclic_soc` starts the
    battery at soc_initial_pu of its (possibly variable) energy capacity and ends it at least there."""
    n, dt = inp.n, float(inp.dt_h)
    T = np.arange(n)
    g, b = inp.turbines, inp.battery
    load = inp.arr(inp.load_kw if load_kw is None else load_kw)
    tu, bp, be = caps.turbine_units, caps.battery_p_kw, caps.battery_e_kwh
    # availability: units of the installed fleet out of service, battery shares in service (1 = all)
    out_units = g.n_units - inp.units_available()
    n_units_max = np.maximum(tu.existing - out_units, 0.0) if tu.var is None else INF
    # units an outage takes offline: a fall of the units in service (at t0: below the units online before)
    prev_avail = np.concatenate([[g.units_online_initial], g.n_units - out_units[:-1]]) if n else np.zeros(0)
    trip = np.maximum(prev_avail - (g.n_units - out_units), 0.0)
    ap, ae = inp.battery_p_available(), inp.battery_e_available()
    eta = b.efficiency_oneway_pu
    integer = not relax

    # ---- variables
    lm.var("grid_import_kw", n, 0.0, INF, units="kW", long_name="grid import")
    lm.var("turbine_p_kw", n, 0.0, INF, units="kW", long_name="gas turbine output, all units")
    lm.var("turbines_online", n, 0.0, n_units_max, integer=integer, units="1", long_name="turbines online")
    lm.var("turbine_startups", n, 0.0, INF, integer=integer, units="1", long_name="turbine starts")
    lm.var("turbine_shutdowns", n, 0.0, INF, integer=integer, units="1", long_name="turbine stops")
    if trip.any():  # forced stops: at most the units the outage takes, no start/stop constraint on them
        lm.var("turbine_forced_shutdowns", n, 0.0, trip, integer=integer, units="1",
               long_name="turbine units taken offline by an outage")
    pb_ub = ap * bp.existing if bp.var is None else INF
    lm.var("battery_charge_kw", n, 0.0, pb_ub, units="kW", long_name="battery charging power (AC)")
    lm.var("battery_discharge_kw", n, 0.0, pb_ub, units="kW", long_name="battery discharging power (AC)")
    if be.var is None:
        lm.var("battery_soc_kwh", n, b.soc_min_pu * be.existing, b.soc_max_pu * be.existing,
               units="kWh", long_name="battery state of charge, end of step")
    else:
        lm.var("battery_soc_kwh", n, 0.0, INF, units="kWh", long_name="battery state of charge, end of step")
    lm.var("curtailed_kw", n, 0.0, inp.arr(inp.curtailment_max_kw), units="kW", long_name="load left unserved (capped)")

    # ---- power balance and grid
    lm.rows("power_balance", n, [("grid_import_kw", None, None, 1.0), ("turbine_p_kw", None, None, 1.0),
                                 ("battery_discharge_kw", None, None, 1.0), ("battery_charge_kw", None, None, -1.0),
                                 ("curtailed_kw", None, None, 1.0)],
            lb=load, ub=load, long_name="power balance", dual_units="USD per kW-step")
    cap = inp.arr(inp.grid_import_max_kw)
    lm.rows("grid_import_limit", n, [("grid_import_kw", None, None, 1.0)], ub=cap,
            long_name="grid import cap", dual_units="USD per kW-step")
    if caps.grid_kw is not None and caps.grid_kw.var is not None:
        lm.rows("grid_capacity_limit", n, [("grid_import_kw", None, None, 1.0)] + caps.grid_kw.terms(T, 1.0),
                ub=caps.grid_kw.existing, long_name="grid connection capacity")
    if np.isfinite(inp.grid_ramp_max_kw_per_h):
        r = inp.grid_ramp_max_kw_per_h * dt
        terms = [("grid_import_kw", T, T, 1.0), ("grid_import_kw", T[1:], T[:-1], -1.0)]
        lo, hi = np.full(n, -r), np.full(n, r)
        if inp.grid_import_initial_kw is None:
            lo[0], hi[0] = -INF, INF
        else:
            lo[0] += inp.grid_import_initial_kw
            hi[0] += inp.grid_import_initial_kw
        lm.rows("grid_ramp_limit", n, terms, lb=lo, ub=hi, long_name="utility ramp limit on grid import")

    # ---- demand charge: monthly peak of grid import
    if inp.demand_charge_usd_kw_month > 0:
        months, midx = _months(inp.time)
        floor = np.zeros(len(months))
        if inp.demand_peak_floor_kw is not None:
            np.maximum.at(floor, midx, np.asarray(inp.demand_peak_floor_kw, float))
        lm.var("peak_grid_import_kw", len(months), floor, INF, units="kW", long_name="monthly peak grid import")
        lm.rows("demand_peak", n, [("peak_grid_import_kw", None, midx, 1.0), ("grid_import_kw", None, None, -1.0)],
                lb=0.0, long_name="monthly peak covers grid import")
        lm.add_cost("peak_grid_import_kw", inp.demand_charge_usd_kw_month * demand_months_weight * inp.demand_share_of_months())

    # ---- turbines: output range and aggregated commitment
    lm.rows("turbine_output_max", n, [("turbine_p_kw", None, None, 1.0), ("turbines_online", None, None, -g.p_max_kw)],
            ub=0.0, long_name="turbine output within online capacity")
    if g.p_min_pu > 0:
        lm.rows("turbine_output_min", n, [("turbine_p_kw", None, None, 1.0),
                                          ("turbines_online", None, None, -g.p_min_pu * g.p_max_kw)],
                lb=0.0, long_name="turbine output above minimum stable load")
    u0 = np.zeros(n)
    u0[0] = g.units_online_initial
    forced = [("turbine_forced_shutdowns", None, None, 1.0)] if trip.any() else []
    lm.rows("turbine_commitment_balance", n,
            [("turbines_online", T, T, 1.0), ("turbines_online", T[1:], T[:-1], -1.0),
             ("turbine_startups", None, None, -1.0), ("turbine_shutdowns", None, None, 1.0)] + forced,
            lb=u0, ub=u0, long_name="units online change by starts, stops and outages")
    if tu.var is not None:
        lm.rows("turbine_units_available", n, [("turbines_online", None, None, 1.0)] + tu.terms(T, 1.0),
                ub=tu.existing - out_units, long_name="units online within units installed and in service")
    ut = int(np.ceil(g.min_up_h / dt - 1e-9))
    if ut > 1:
        rows, pos = _window_terms(n, ut)
        # units started in the window stay on, except those an outage took offline since
        tripped = [("turbine_forced_shutdowns", rows, pos, -1.0)] if trip.any() else []
        lm.rows("turbine_min_up", n, [("turbine_startups", rows, pos, 1.0), ("turbines_online", None, None, -1.0)]
                + tripped, ub=-_recent_sum(g.startups_recent, ut, n), long_name="minimum up time")
    dtn = int(np.ceil(g.min_down_h / dt - 1e-9))
    if dtn > 1:
        rows, pos = _window_terms(n, dtn)
        lm.rows("turbine_min_down", n, [("turbine_shutdowns", rows, pos, 1.0), ("turbines_online", None, None, 1.0)]
                + tu.terms(T, 1.0), ub=tu.existing - _recent_sum(g.shutdowns_recent, dtn, n),
                long_name="minimum down time")

    # ---- battery
    if bp.var is not None:
        lm.rows("battery_charge_limit", n, [("battery_charge_kw", None, None, 1.0)] + bp.terms(T, ap),
                ub=ap * bp.existing, long_name="battery charging power limit")
        lm.rows("battery_discharge_limit", n, [("battery_discharge_kw", None, None, 1.0)] + bp.terms(T, ap),
                ub=ap * bp.existing, long_name="battery discharging power limit")
    if be.var is not None:
        lm.rows("battery_soc_max", n, [("battery_soc_kwh", None, None, 1.0)] + be.terms(T, b.soc_max_pu),
                ub=b.soc_max_pu * be.existing, long_name="battery SOC below maximum")
        lm.rows("battery_soc_min", n, [("battery_soc_kwh", None, None, 1.0)] + be.terms(T, b.soc_min_pu),
                lb=b.soc_min_pu * be.existing, long_name="battery SOC above minimum")
    soc_terms = [("battery_soc_kwh", T, T, 1.0), ("battery_soc_kwh", T[1:], T[:-1], -1.0),
                 ("battery_charge_kw", None, None, -eta * dt), ("battery_discharge_kw", None, None, dt / eta)]
    rhs = np.zeros(n)
    rhs[0] = b.soc_initial_pu * be.existing
    if cyclic_soc:
        soc_terms += be.terms(np.array([0]), b.soc_initial_pu)
    lm.rows("battery_state_of_charge", n, soc_terms, lb=rhs, ub=rhs, long_name="battery energy balance",
            dual_units="USD per kWh")
    soc_final = b.soc_initial_pu if (b.soc_final_pu is None or cyclic_soc) else b.soc_final_pu
    lm.rows("battery_final_soc", 1, [("battery_soc_kwh", [0], [n - 1], 1.0)] + be.terms(np.array([0]), soc_final),
            lb=soc_final * be.existing, long_name="battery state of charge at the end of the horizon")
    out_soc = _battery_out_of_service(lm, inp, be, ae, cyclic_soc) if np.any(ae < 1.0) else []

    # ---- 30-minute load-reduction commitment
    if inp.reduction_kw > 0:
        lm.var("reserve_battery_kw", n, 0.0, INF, units="kW", long_name="battery headroom held for load reduction")
        lm.var("reserve_turbine_kw", n, 0.0, INF, units="kW", long_name="turbine headroom held for load reduction")
        lm.rows("reserve_battery_power", n, [("reserve_battery_kw", None, None, 1.0),
                                             ("battery_discharge_kw", None, None, 1.0),
                                             ("battery_charge_kw", None, None, -1.0)] + bp.terms(T, ap),
                ub=ap * bp.existing, long_name="battery reserve within power headroom")
        # only the energy of the units in service (above their minimum) can serve the reserve
        lm.rows("reserve_battery_energy", n, [("reserve_battery_kw", None, None, inp.reduction_duration_h / eta),
                                              ("battery_soc_kwh", None, None, -1.0)]
                + [(name, r, p, -c) for name, r, p, c in out_soc] + be.terms(T, -ae * b.soc_min_pu),
                ub=-ae * b.soc_min_pu * be.existing, long_name="battery reserve within stored energy")
        if g.quick_start:
            lm.rows("reserve_turbine_headroom", n, [("reserve_turbine_kw", None, None, 1.0),
                                                    ("turbine_p_kw", None, None, 1.0)] + tu.terms(T, g.p_max_kw),
                    ub=(tu.existing - out_units) * g.p_max_kw,
                    long_name="turbine reserve within installed capacity in service (quick start)")
        else:
            lm.rows("reserve_turbine_headroom", n, [("reserve_turbine_kw", None, None, 1.0),
                                                    ("turbine_p_kw", None, None, 1.0),
                                                    ("turbines_online", None, None, -g.p_max_kw)],
                    ub=0.0, long_name="turbine reserve within online (spinning) headroom")
        lm.rows("load_reduction_reserve", n, [("reserve_battery_kw", None, None, 1.0),
                                              ("reserve_turbine_kw", None, None, 1.0)],
                lb=inp.reduction_kw - inp.arr(inp.load_capping_allowance_kw),
                long_name="30-minute load-reduction commitment", dual_units="USD per kW-step")

    # ---- emissions
    fuel = g.fuel_mmbtu_per_kwh * dt  # MMBtu per kW-step
    if inp.emissions_cap_t_co2 is not None:
        terms = [("turbine_p_kw", np.zeros(n, np.int64), T, fuel * g.co2_kg_per_mmbtu / 1000.0)]
        if inp.emissions_cap_includes_grid:
            terms.append(("grid_import_kw", np.zeros(n, np.int64), T, dt * inp.grid_co2_kg_kwh / 1000.0))
        lm.rows("emissions_cap", 1, terms, ub=inp.emissions_cap_t_co2, long_name="CO2 cap over the horizon",
                dual_units="USD per t")
    if inp.nox_cap_t is not None:
        lm.rows("nox_cap", 1, [("turbine_p_kw", np.zeros(n, np.int64), T, fuel * g.nox_kg_per_mmbtu / 1000.0)],
                ub=inp.nox_cap_t, long_name="NOx cap over the horizon", dual_units="USD per t")

    # ---- costs
    w = cost_weight
    lm.add_cost("grid_import_kw", w * inp.arr(inp.price_usd_kwh) * dt)
    lm.add_cost("turbine_p_kw", w * (inp.arr(inp.gas_price_usd_mmbtu) * fuel + g.vom_usd_kwh * dt))
    lm.add_cost("turbine_startups", w * g.start_cost_usd)
    if "turbine_forced_shutdowns" in lm.vars:  # a token cost: no start-and-trip cycles when starts are free
        lm.add_cost("turbine_forced_shutdowns", w * FORCED_STOP_TOKEN_USD)
    lm.add_cost("curtailed_kw", w * inp.value_of_lost_load_usd_kwh * dt)


def _battery_out_of_service(lm: LinearModel, inp: DispatchInputs, be: Capacity, ae: np.ndarray,
                            cyclic_soc: bool) -> list:
    """Energy held by battery units out of service (`ae` < 1), for identical units at one state of charge.

    battery_soc_kwh stays the energy of the whole battery (as the simulator meters it). Units taken out at
    the start of step t take their share of the in-service energy X = soc - out with them and keep it
    until they return; units returning bring back their share of the held energy:

        out[t] = (1 - d_out - d_in) out[t-1] + d_out soc[t-1]        (out[-1] = 0, soc[-1] = initial SOC)
        d_out = (a[t-1] - a[t]) / a[t-1] when a falls,  d_in = (a[t] - a[t-1]) / (1 - a[t-1]) when it rises
        a soc_min E <= soc - out <= a soc_max E                      (battery_soc_in_service_min/max)

    Exact for whole units at equal SOC; always feasible (what the units out hold stays within their own
    window). Returns the term that makes a row holding `soc` hold the in-service energy `soc - out`."""
    n, b = inp.n, inp.battery
    T = np.arange(n)
    a_prev = np.concatenate([[1.0], ae[:-1]])
    fall, rise = np.maximum(a_prev - ae, 0.0), np.maximum(ae - a_prev, 0.0)
    d_out = np.divide(fall, a_prev, out=np.zeros(n), where=a_prev > 0)
    d_in = np.divide(rise, 1.0 - a_prev, out=np.zeros(n), where=a_prev < 1)
    keep = 1.0 - d_out - d_in
    name = "battery_soc_out_of_service_kwh"
    lm.var(name, n, 0.0, INF, units="kWh", long_name="energy held by battery units out of service, end of step")
    rhs = np.zeros(n)
    rhs[0] = d_out[0] * b.soc_initial_pu * be.existing
    terms = [(name, T, T, 1.0), (name, T[1:], T[:-1], -keep[1:]), ("battery_soc_kwh", T[1:], T[:-1], -d_out[1:])]
    if cyclic_soc:
        terms += be.terms(np.array([0]), d_out[0] * b.soc_initial_pu)
    lm.rows("battery_energy_out_of_service", n, terms, lb=rhs, ub=rhs,
            long_name="energy taken out and brought back by battery units out of service")
    x = [("battery_soc_kwh", None, None, 1.0), (name, None, None, -1.0)]
    lm.rows("battery_soc_in_service_min", n, x + be.terms(T, ae * b.soc_min_pu), lb=ae * b.soc_min_pu * be.existing,
            long_name="battery units in service above their minimum SOC")
    lm.rows("battery_soc_in_service_max", n, x + be.terms(T, ae * b.soc_max_pu), ub=ae * b.soc_max_pu * be.existing,
            long_name="battery units in service below their maximum SOC")
    return [(name, None, None, -1.0)]


def _window_terms(n: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, positions) of sum(x[t-window+1..t]) for every row t (vectorised)."""
    k = np.arange(window)
    rows = np.repeat(np.arange(n), window)
    pos = rows - np.tile(k, n)
    keep = pos >= 0
    return rows[keep], pos[keep]


# ------------------------------------------------------------------------------------------- build/solve


def fixed_capacities(inp: DispatchInputs) -> OperationCapacities:
    return OperationCapacities(Capacity(inp.turbines.n_units), Capacity(inp.battery.p_max_kw),
                               Capacity(inp.battery.e_max_kwh))


def build_dispatch(inputs: DispatchInputs, relax: bool = False) -> pyo.ConcreteModel:
    """The dispatch model for `inputs` (see module doc). `relax=True`: LP relaxation of the commitment."""
    t0 = _time.perf_counter()
    inputs.validate()
    lm = LinearModel(pyo.ConcreteModel("dispatch"))
    define_operation(lm, inputs, fixed_capacities(inputs), relax)
    lm.finish("total_cost")
    lm.build_s = _time.perf_counter() - t0
    return lm.model


def _fmt_t(t) -> str:
    return str(np.datetime_as_string(np.datetime64(t, "m"))).replace("T", " ")


def describers(inp: DispatchInputs, time: np.ndarray | None = None) -> dict:
    """Planner-readable sentences for the elastic families of the operation model."""
    time = inp.time if time is None else time
    dt = inp.dt_h

    def per_step(label, limit_mw, verb, unit="MW", per_h=False):
        def d(pos, amt):
            k = int(np.argmax(amt))
            worst, t = amt[k] / 1000.0, time[pos[k]]
            lim = limit_mw(pos[k])
            s = f"{label} of {lim:.4g} {unit} cannot be met at {_fmt_t(t)}: {verb} by {worst:.3g} {unit}"
            if len(pos) > 1:
                s += (f" (worst step; {len(pos)} steps affected from {_fmt_t(time[pos.min()])} to "
                      f"{_fmt_t(time[pos.max()])}" + ("" if per_h else f", {amt.sum() * dt / 1000.0:.4g} MWh in total") + ")")
            return s
        return d

    cap = inp.arr(inp.grid_import_max_kw)
    red = inp.reduction_kw - inp.arr(inp.load_capping_allowance_kw)
    return {
        "grid_import_limit": per_step("grid import cap", lambda p: cap[p] / 1000.0, "short"),
        "grid_capacity_limit": per_step("grid connection capacity", lambda p: np.nan, "short"),
        "grid_ramp_limit": per_step("utility ramp limit on grid import", lambda p: inp.grid_ramp_max_kw_per_h / 1000.0,
                                    "exceeded", unit="MW/h", per_h=True),
        "load_reduction_reserve": per_step("30-minute load-reduction commitment", lambda p: red[p] / 1000.0, "short"),
        "battery_final_soc": lambda pos, amt: (f"end-of-horizon battery state of charge cannot be reached: short by "
                                               f"{amt.max() / 1000.0:.3g} MWh"),
        "emissions_cap": lambda pos, amt: (f"CO2 cap of {inp.emissions_cap_t_co2:.6g} t over the horizon cannot be met: "
                                           f"exceeded by {amt.max():.4g} t"),
        "nox_cap": lambda pos, amt: (f"NOx cap of {inp.nox_cap_t:.6g} t over the horizon cannot be met: "
                                     f"exceeded by {amt.max():.4g} t"),
    }


def _raise_infeasible(inputs: DispatchInputs, relax: bool, time_limit_s: float, rel_gap: float) -> None:
    def build():
        return build_dispatch(inputs, relax=relax)

    pen = elastic_penalties(build()._linear.families, inputs.dt_h)
    elastic_resolve(build, pen, describers(inputs), time_limit_s, rel_gap, what="the dispatch", hard_limits=HARD_LIMITS)


def extract_dispatch(lm: LinearModel, info: SolveInfo, inp: DispatchInputs) -> xr.Dataset:
    """Solution, prices and cost split of a solved dispatch model as a Dataset on `time`."""
    t0 = _time.perf_counter()
    dt, tcoord = inp.dt_h, np.asarray(inp.time)
    v = lambda name: lm.value(info, name)  # noqa: E731
    da = lambda name, **kw: family_dataarray(lm, info, name, "time", tcoord, **kw)  # noqa: E731
    ch, dis = v("battery_charge_kw"), v("battery_discharge_kw")
    g = inp.turbines
    p_gt = v("turbine_p_kw")
    fuel = p_gt * g.fuel_mmbtu_per_kwh * dt
    grid = v("grid_import_kw")
    attr = lambda units, long_name: {"units": units, "long_name": long_name}  # noqa: E731
    ds = xr.Dataset({
        "load_kw": xr.DataArray(inp.arr(inp.load_kw), dims="time", attrs=attr("kW", "site demand to be served")),
        "grid_import_kw": da("grid_import_kw"),
        "turbine_p_kw": da("turbine_p_kw"),
        "turbines_online": da("turbines_online"),
        "turbine_startups": da("turbine_startups"),
        "battery_p_kw": xr.DataArray(dis - ch, dims="time", attrs=attr("kW", "battery power, discharge positive")),
        "battery_discharge_kw": da("battery_discharge_kw"),
        "battery_charge_kw": da("battery_charge_kw"),
        "battery_soc_kwh": da("battery_soc_kwh"),
        "curtailed_kw": da("curtailed_kw"),
        "fuel_mmbtu": xr.DataArray(fuel, dims="time", attrs=attr("MMBtu", "turbine fuel, HHV")),
        "co2_onsite_kg": xr.DataArray(fuel * g.co2_kg_per_mmbtu, dims="time", attrs=attr("kg", "turbine CO2")),
        "co2_grid_kg": xr.DataArray(grid * dt * inp.grid_co2_kg_kwh, dims="time", attrs=attr("kg", "grid CO2")),
        "nox_kg": xr.DataArray(fuel * g.nox_kg_per_mmbtu, dims="time", attrs=attr("kg", "turbine NOx")),
    }, coords={"time": tcoord})
    if "turbine_forced_shutdowns" in lm.vars:
        ds["turbine_forced_shutdowns"] = da("turbine_forced_shutdowns")
    if "battery_soc_out_of_service_kwh" in lm.vars:
        ds["battery_soc_out_of_service_kwh"] = da("battery_soc_out_of_service_kwh")
    if inp.turbine_units_available is not None:
        ds["turbine_units_available"] = xr.DataArray(inp.units_available(), dims="time",
                                                      attrs=attr("1", "turbine units in service"))
    if inp.battery_p_available_pu is not None or inp.battery_e_available_pu is not None:
        ds["battery_p_available_kw"] = xr.DataArray(inp.battery_p_available() * inp.battery.p_max_kw, dims="time",
                                                     attrs=attr("kW", "battery power in service"))
        ds["battery_e_available_kwh"] = xr.DataArray(inp.battery_e_available() * inp.battery.e_max_kwh, dims="time",
                                                     attrs=attr("kWh", "battery energy capacity in service"))
    if "reserve_battery_kw" in lm.vars:
        ds["reserve_battery_kw"] = da("reserve_battery_kw")
        ds["reserve_turbine_kw"] = da("reserve_turbine_kw")
    if info.row_dual is not None:
        ds["price_usd_kwh"] = family_dataarray(
            lm, info, "power_balance", "time", tcoord, dual=True, scale=1.0 / dt, units="USD/kWh",
            long_name="marginal cost of serving load (dual of power_balance"
                      + ("; commitment fixed, LP re-solved)" if info.duals_from_fixed_lp else ")"))
    ds.attrs.update(_costs(ds, inp))
    ds.attrs.update(info.as_attrs())
    ds.attrs["solver_extract_s"] = info.extract_s + (_time.perf_counter() - t0)
    ds.attrs["model_relaxed"] = int(not info.is_mip)
    return ds


def _costs(ds: xr.Dataset, inp: DispatchInputs) -> dict:
    """Cost split recomputed from the dispatch itself (so rolling windows add up)."""
    dt, g = inp.dt_h, inp.turbines
    grid = ds["grid_import_kw"].values
    months, midx = _months(inp.time)
    peak = np.zeros(len(months))
    np.maximum.at(peak, midx, grid)
    if inp.demand_peak_floor_kw is not None:
        np.maximum.at(peak, midx, np.asarray(inp.demand_peak_floor_kw, float))
    c = {
        "cost_energy_usd": float(np.sum(inp.arr(inp.price_usd_kwh) * grid) * dt),
        "cost_demand_usd": float(inp.demand_charge_usd_kw_month * (inp.demand_share_of_months() @ peak)),
        "cost_fuel_usd": float(np.sum(inp.arr(inp.gas_price_usd_mmbtu) * ds["fuel_mmbtu"].values)),
        "cost_turbine_vom_usd": float(g.vom_usd_kwh * ds["turbine_p_kw"].values.sum() * dt),
        "cost_start_usd": float(g.start_cost_usd * ds["turbine_startups"].values.sum()),
        "cost_curtailment_usd": float(inp.value_of_lost_load_usd_kwh * ds["curtailed_kw"].values.sum() * dt),
    }
    c["cost_total_usd"] = float(sum(c.values()))
    c["co2_onsite_t"] = float(ds["co2_onsite_kg"].values.sum() / 1000.0)
    c["co2_grid_t"] = float(ds["co2_grid_kg"].values.sum() / 1000.0)
    c["nox_t"] = float(ds["nox_kg"].values.sum() / 1000.0)
    c["peak_grid_import_kw_by_month"] = peak.tolist()
    return c


def solve_dispatch(inputs: DispatchInputs, time_limit_s: float = 60.0, rel_gap: float = 1e-3,
                   relax: bool = False, backend: str = "matrix", load_pyomo: bool = False) -> xr.Dataset:
    """Build, solve and extract one dispatch; raises `InfeasibleError` naming the limit that cannot be met.
    `relax=True` solves the LP relaxation of the commitment; `load_pyomo=True` also writes the solution
    into the Pyomo variables (not needed for the Dataset; ~0.4 s on a year-hourly model)."""
    model = build_dispatch(inputs, relax=relax)
    info = solve(model, time_limit_s, rel_gap, backend=backend, load_pyomo=load_pyomo)
    if not info.has_solution:
        raise_if_out_of_time(info, time_limit_s, "feasible dispatch")
        _raise_infeasible(inputs, relax, time_limit_s, rel_gap)
    return extract_dispatch(model._linear, info, inputs)


# ------------------------------------------------------------------------------------------- rolling


def _slice_inputs(inp: DispatchInputs, s: slice, **over) -> DispatchInputs:
    def cut(v):
        a = np.asarray(v)
        return a[s] if a.ndim == 1 else v

    return replace(inp, time=inp.time[s], load_kw=cut(inp.load_kw), price_usd_kwh=cut(inp.price_usd_kwh),
                   grid_import_max_kw=cut(inp.grid_import_max_kw), gas_price_usd_mmbtu=cut(inp.gas_price_usd_mmbtu),
                   load_capping_allowance_kw=cut(inp.load_capping_allowance_kw),
                   curtailment_max_kw=cut(inp.curtailment_max_kw),
                   turbine_units_available=cut(inp.turbine_units_available),
                   battery_p_available_pu=cut(inp.battery_p_available_pu),
                   battery_e_available_pu=cut(inp.battery_e_available_pu),
                   demand_charge_share_pu=cut(inp.demand_charge_share_pu), **over)


def solve_dispatch_rolling(inputs: DispatchInputs, window_h: float = 168, overlap_h: float = 24,
                           time_limit_s: float = 60.0, rel_gap: float = 1e-3, relax: bool = False) -> xr.Dataset:
    """Dispatch a long horizon in windows of `window_h`, committing the first `window_h - overlap_h`
    of each and carrying battery SOC, units online, recent starts/stops (min up/down), the last grid
    import (ramp) and the month's peak so far (demand charge) into the next. A horizon CO2/NOx cap is
    shared out in proportion to each window's length, unused budget carried forward. (Sharing it by the
    full horizon's LP use of the cap instead was measured on colossus-1's permit year: 48.95 M USD against
    48.76 M, so the length rule stays.)"""
    inputs.validate()
    n, dt = inputs.n, inputs.dt_h
    w = max(1, int(round(window_h / dt)))
    step = max(1, w - int(round(overlap_h / dt)))
    g, b = inputs.turbines, inputs.battery
    ut = int(np.ceil(g.min_up_h / dt - 1e-9))
    dtn = int(np.ceil(g.min_down_h / dt - 1e-9))
    hist = max(ut, dtn, 1)
    state = dict(soc=b.soc_initial_pu, u=g.units_online_initial, su=tuple(g.startups_recent),
                 sd=tuple(g.shutdowns_recent), grid=inputs.grid_import_initial_kw)
    peak_floor = np.zeros(n) if inputs.demand_peak_floor_kw is None else np.asarray(inputs.demand_peak_floor_kw, float).copy()
    _, midx = _months(inputs.time)
    co2_left = inputs.emissions_cap_t_co2
    nox_left = inputs.nox_cap_t
    parts, infos = [], []
    start = 0
    while start < n:
        end = min(n, start + w)
        commit = n - start if end == n else step
        s = slice(start, end)
        frac = (end - start) / (n - start)
        sub = _slice_inputs(
            inputs, s,
            turbines=replace(g, units_online_initial=int(round(state["u"])), startups_recent=state["su"],
                             shutdowns_recent=state["sd"]),
            battery=replace(b, soc_initial_pu=state["soc"], soc_final_pu=b.soc_final_pu if b.soc_final_pu is not None
                            else b.soc_initial_pu),
            grid_import_initial_kw=state["grid"],
            demand_peak_floor_kw=peak_floor[s],
            emissions_cap_t_co2=None if co2_left is None else co2_left * frac,
            nox_cap_t=None if nox_left is None else nox_left * frac,
        )
        ds = solve_dispatch(sub, time_limit_s, rel_gap, relax=relax).isel(time=slice(0, commit))
        parts.append(ds)
        infos.append(ds.attrs)
        # carry state
        soc_end = float(ds["battery_soc_kwh"].values[-1])
        # starts net of outage stops (the next window's min up is relieved by the trips as here), no more
        # of them in any last k steps than units online at the boundary (see _starts_still_online)
        forced = ds["turbine_forced_shutdowns"].values if "turbine_forced_shutdowns" in ds else 0.0
        su = np.concatenate([np.asarray(state["su"], float), ds["turbine_startups"].values - forced])[-hist:]
        su = _starts_still_online(su, float(ds["turbines_online"].values[-1]))
        sd_all = np.concatenate([np.asarray(state["sd"], float), _shutdowns(ds, state["u"])])[-hist:]
        state = dict(soc=soc_end / b.e_max_kwh if b.e_max_kwh > 0 else 0.0,
                     u=float(ds["turbines_online"].values[-1]), su=tuple(np.round(su).astype(int).tolist()),
                     sd=tuple(np.round(sd_all).astype(int).tolist()), grid=float(ds["grid_import_kw"].values[-1]))
        state["soc"] = float(np.clip(state["soc"], b.soc_min_pu, b.soc_max_pu))
        # peak so far of each month, as a floor for the remaining steps of that month
        seen = np.full(midx.max() + 1, 0.0)
        np.maximum.at(seen, midx[start:start + commit], ds["grid_import_kw"].values)
        peak_floor = np.maximum(peak_floor, seen[midx])
        # budget used by the committed steps only (the window's attrs also count its overlap, which the
        # next window plans again)
        if co2_left is not None:
            used_kg = float(ds["co2_onsite_kg"].sum()) + (float(ds["co2_grid_kg"].sum())
                                                         if inputs.emissions_cap_includes_grid else 0.0)
            co2_left = max(0.0, co2_left - used_kg / 1000.0)
        if nox_left is not None:
            nox_left = max(0.0, nox_left - float(ds["nox_kg"].sum()) / 1000.0)
        start += commit
    out = xr.concat(parts, dim="time", combine_attrs="drop")
    out.attrs.update(_costs(out, inputs))
    out.attrs["rolling_windows"] = len(parts)
    out.attrs["rolling_window_h"] = float(window_h)
    out.attrs["rolling_overlap_h"] = float(overlap_h)
    for k in ("solver_build_s", "solver_handover_s", "solver_solve_s", "solver_extract_s"):
        out.attrs[k] = float(sum(i[k] for i in infos))
    out.attrs["solver_status"] = "optimal" if all(i["solver_status"] == "optimal" for i in infos) else "feasible"
    return out


def _starts_still_online(net_starts: np.ndarray, u_end: float) -> np.ndarray:
    """Net starts (starts - trips) of the last steps, cut so that those of any last k steps are at most the
    units online at the end: units started in the last k steps and still on cannot be more. Without the cut,
    a trip that relieved min up inside a window (aggregated units: any trip counts) could leave the next
    window with more recent starts than units online once it slides out, and no schedule would fit."""
    out = np.asarray(net_starts, float).copy()
    room = float(u_end)
    for k in range(len(out) - 1, -1, -1):  # at most max(min up, min down) steps, not a hot loop
        out[k] = min(out[k], room)
        room -= out[k]
    return out


def _shutdowns(ds: xr.Dataset, u_prev: float) -> np.ndarray:
    """Voluntary stops per step (the units an outage took offline are not under the minimum down time)."""
    u = ds["turbines_online"].values
    du = np.diff(np.concatenate([[u_prev], u]))
    forced = ds["turbine_forced_shutdowns"].values if "turbine_forced_shutdowns" in ds else 0.0
    return np.maximum(0.0, -du - forced)


# ------------------------------------------------------------------------------------------- persistent


@dataclass
class DispatchSession:
    """A dispatch model kept in a HiGHS instance for fast what-if re-solves.

    `set_prices` changes only cost coefficients (and `set_grid_import_max` only row bounds), so an LP
    re-solve starts from the previous optimal basis (by primal simplex after a cost-only change, dual
    simplex otherwise: `resolve_options`). Use `relax=True` for the year-hourly LP relaxation; re-solve
    times are in the module doc.

    Price re-solves of a relaxed horizon of two months or more go by calendar-month blocks first
    (`optimizers/blocks.py`, set up after the first solve): the joined month solutions are accepted when
    their proven gap to the full LP's optimum is within `rel_gap`, else the full LP is re-solved. The
    blocks' lower bound prices the NOx/CO2 caps at the duals of a kept full optimum (the first solve's,
    and those of later full answers) when the prices are near its own (`block_price_shift_max_pu`);
    for a change that moves the caps' price (a tariff level change where the turbines run) it prices
    them at the held months' budget duals. If the proof falls short, the full LP answers and its optimum
    is kept for the changes around it; the blocks then catch up with it in the background (`settle`).
    `last_path` says which path answered.
    """

    inputs: DispatchInputs
    relax: bool = False
    time_limit_s: float = 60.0
    rel_gap: float = 1e-3
    block_resolve: bool = True
    block_min_steps: int = 1000  # shorter LPs re-solve in full in well under 0.1 s
    block_price_shift_max_pu: float = 0.03
    model: pyo.ConcreteModel = field(init=False)
    last_info: SolveInfo | None = field(init=False, default=None)
    _changed: set = field(init=False, default_factory=set)
    last_options: dict = field(init=False, default_factory=dict)
    last_path: str = field(init=False, default="")
    blocks: BlockResolver | None = field(init=False, default=None)
    blocks_setup_s: float = field(init=False, default=0.0)
    # full optima the blocks can be based on: (prices, solution, row duals); the first solve's always kept
    _references: list = field(init=False, default_factory=list)
    _reference_in_use: int = field(init=False, default=0)
    _settling: Future | None = field(init=False, default=None)  # blocks re-solving at the last prices

    def __post_init__(self):
        self.model = build_dispatch(self.inputs, relax=self.relax)

    @property
    def lm(self) -> LinearModel:
        return self.model._linear

    def set_prices(self, price_usd_kwh) -> None:
        price = self.inputs.arr(price_usd_kwh)
        self.inputs = replace(self.inputs, price_usd_kwh=price)
        self.lm.set_cost("grid_import_kw", price * self.inputs.dt_h)
        self._changed.add("cost")

    def set_grid_import_max(self, grid_import_max_kw) -> None:
        cap = self.inputs.arr(grid_import_max_kw)
        self.inputs = replace(self.inputs, grid_import_max_kw=cap)
        self.lm.set_row_bounds("grid_import_limit", self.lm.families["grid_import_limit"].lb, cap)
        self._changed.add("bounds")
        self.blocks = None  # they hold the old caps; set up again after the next full solve

    def resolve_options(self) -> dict:
        """HiGHS options for the next solve. After a change of cost coefficients only, the kept basis is
        still primal feasible, so the LP is re-solved by primal simplex from it (measured on the year LP:
        ~3x faster than dual simplex, which must first re-initialise its dual steepest-edge weights, one
        BTRAN per row); after bound changes the basis stays dual feasible: dual simplex. A MIP is left to
        HiGHS's own choices."""
        if self.relax and self.lm.handle is not None and self._changed == {"cost"}:
            return {"simplex_strategy": 4}
        return {"simplex_strategy": 1}

    def settle(self) -> None:
        """Wait until the blocks have finished re-solving at the last answered prices (started in the
        background after the full LP answered a change, so that the next change starts them from there)."""
        if self._settling is not None:
            try:
                self._settling.result()
            except Exception:  # noqa: BLE001 - a failed warm-up only costs speed: set the blocks up anew
                self.blocks = None
            self._settling = None

    def solve(self, load_pyomo: bool = False) -> xr.Dataset:
        self.settle()
        mode = self._block_mode()
        if mode is not None:
            info = self._solve_by_blocks(*mode)
            if info is not None:
                self._changed = set()
                self.last_info, self.last_path = info, "blocks"
                if load_pyomo:
                    for vd, v in zip(self.lm._vardata, info.x.tolist(), strict=True):
                        vd.set_value(v, skip_validation=True)
                return extract_dispatch(self.lm, info, self.inputs)
        self.last_options = self.resolve_options()
        info = solve(self.model, self.time_limit_s, self.rel_gap, persistent=True, load_pyomo=load_pyomo,
                     options=self.last_options)
        cost_only = self._changed == {"cost"}
        self._changed = set()
        self.last_info, self.last_path = info, "full"
        if not info.has_solution:
            raise_if_out_of_time(info, self.time_limit_s, "feasible dispatch")
            _raise_infeasible(self.inputs, self.relax, self.time_limit_s, self.rel_gap)
        if self.blocks is not None and cost_only and info.status == "optimal":
            # the blocks could not answer this change: keep this optimum as a reference for the next
            # changes around these prices (with the first solve's, and the last few)
            self._references = [self._references[0], *self._references[1:][-(MAX_REFERENCES - 2):],
                                (self.inputs.arr(self.inputs.price_usd_kwh).copy(), info.x.copy(),
                                 info.row_dual.copy())]
            self._use_reference(len(self._references) - 1)
            # the blocks' bases are still at the last prices they answered: move them here in the
            # background (the next solve waits for it if it comes first)
            self._settling = _SETTLE_POOL.submit(self.blocks.resolve, self.time_limit_s)
        if self.blocks is None and self._blocks_wanted() and info.status == "optimal":
            t0 = _time.perf_counter()
            self.blocks = BlockResolver(self.lm, month_blocks(self.lm, self.inputs.time))
            self.blocks.reference(info.x, info.row_dual, self.time_limit_s)
            self._references = [(self.inputs.arr(self.inputs.price_usd_kwh).copy(), info.x.copy(),
                                 info.row_dual.copy())]
            self._reference_in_use = 0
            self.blocks_setup_s = _time.perf_counter() - t0
        return extract_dispatch(self.lm, info, self.inputs)

    def _blocks_wanted(self) -> bool:
        n_months = len(np.unique(np.asarray(self.inputs.time).astype("datetime64[M]")))
        return self.block_resolve and self.relax and n_months >= 2 and self.inputs.n >= self.block_min_steps

    def _block_mode(self) -> tuple[str, int] | None:
        """None when the blocks cannot answer (not set up, or more than prices changed); else how their
        bound prices the NOx/CO2 caps, and at which kept optimum: the reference whose prices are nearest
        by the turbine-output-weighted mean relative change of the grid price (the hours that set the
        caps' price); within `block_price_shift_max_pu` of it, at its duals ("reference"), else at the held
        months' budget duals ("held")."""
        if self.blocks is None or self._changed != {"cost"}:
            return None
        if len(self.blocks.global_rows) == 0:
            return "reference", self._reference_in_use
        w = self.blocks.x_ref[self.lm.vars["turbine_p_kw"].cols]
        if w.sum() <= 0:
            return "reference", self._reference_in_use
        price = self.inputs.arr(self.inputs.price_usd_kwh)
        shifts = [abs(float(w @ ((price - ref) / np.where(ref != 0, ref, 1.0))) / float(w.sum()))
                  for ref, _x, _y in self._references]
        k = int(np.argmin(shifts))
        return ("reference" if shifts[k] <= self.block_price_shift_max_pu else "held"), k

    def _use_reference(self, k: int) -> None:
        if k != self._reference_in_use:
            _, x, y = self._references[k]
            self.blocks.rebase(x, y)
            self._reference_in_use = k

    def _solve_by_blocks(self, mode: str, reference: int) -> SolveInfo | None:
        t0 = _time.perf_counter()
        self._use_reference(reference)
        sol = self.blocks.resolve(self.time_limit_s, global_price=mode)
        if sol is None or sol.gap > self.rel_gap:
            return None
        # no new reference: a reference's duals are exact at its prices, while the held months' median
        # NOx price only has to be good enough for this one change
        lm = self.lm
        how = "NOx price from the held months" if mode == "held" else "NOx price of the reference"
        return SolveInfo(status="optimal", termination=f"month blocks ({how}), proven gap {sol.gap:.1e}",
                         objective=sol.upper_usd, is_mip=False, mip_gap=sol.gap, build_s=lm.build_s,
                         handover_s=0.0, solve_s=sol.solve_s, extract_s=_time.perf_counter() - t0 - sol.solve_s,
                         n_rows=lm.n_rows, n_cols=lm.n_cols, n_integer=0, backend="matrix, month blocks",
                         simplex_iterations=sol.iterations, x=sol.x, row_dual=sol.row_dual,
                         row_activity=sol.row_activity)
