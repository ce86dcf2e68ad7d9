"""Cooling setpoints: hourly facility supply temperature and chiller staging that minimise cooling
electricity plus water cost under equipment temperature limits.

Linearisation (stated choice): the supply temperature of each plant group (one heat-rejection plant and the
facility loops it serves, which share one supply temperature) is chosen per hour from a few candidate
setpoints with binaries b[g, t, k] (sum_k b = 1). Everything that is nonlinear in the supply temperature
(COP against lift, the free-cooling share, tower water, fan cube laws, GPU leakage) is evaluated exactly
for each candidate beforehand, with the same formulas as the simulator (twin/sim/cooling.py):

    COP = cop_rated * (T_s / T_s,rated) * lift_rated / max(lift, LIFT_MIN_K)          (T in kelvin)
    lift = t_condenser_in + approach_condenser - t_supply
    f_free = clip((t_return - (t_src + free_cooling_approach)) / (t_return - t_supply), 0, 1)
    t_return = t_supply + dt_design (loop flow holds the design range)

so the model is linear in b and exact at the candidates; no piecewise COP is needed.

Model (row families named after what they state):

    setpoint_choice         sum_k b[g,t,k] = 1
    cdu_supply_limit        sum_k T_k b + approach_cdu * load_cdu_max[g,t] <= t_secondary_max   (CDU, GPU side)
    gpu_inlet_limit         sum_k T_k b + approach_cdu * load_cdu_max[g,t] <= t_gpu_inlet_max   (when given)
    free_cooling_floor      sum_k T_k b >= t_outdoor + approach * load     (towers/dry coolers on a loop)
    chiller_capacity        sum_k q_staged[g,t,k] b <= q_unit * n[g,t]     n = chillers running (integer)
    chiller_min_part_load   plr_min * q_unit * n <= sum_k q_staged b
    chiller_starts          n[g,t] - n[g,t-1] <= s[g,t]
    setpoint_ramp_limit     |sum_k T_k (b[t,k] - b[t-1,k])| <= ramp_k_per_h * dt

Objective: sum price[t] * (compressor + fans + IT leakage change + n * p_aux_unit) * dt
          + water price * water * dt + start cost * s.
IT leakage: GPU power rises with coolant temperature (leakage); `it_sensitivity_pu_per_k` x IT load x
(T_k - T_ref) (assumed 0.1 %/K; confidence assumed), which is what keeps the optimum from always being the
warmest allowed setpoint when free cooling is already complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo
import xarray as xr

from optimizers.common import INF, LinearModel, SolveInfo, elastic_resolve, raise_if_out_of_time, solve
from twin.errors import InfeasibleError, InputError
from twin.layout import SiteLayout
from twin.schema.components import Chiller, CoolingTower, DryCooler
from twin.sim.cooling import EVAP_M3_H_PER_KW, FAN_SPEED_MIN_PU, KELVIN, LIFT_MIN_K, T_CONDENSER_WATER_MIN_C

_SRC = "<cooling inputs>"


@dataclass(frozen=True)
class CoolingOptions:
    candidates_c: tuple[float, ...] = (18.0, 21.0, 24.0, 27.0, 30.0, 33.0, 36.0)
    t_fixed_c: float | None = None  # the fixed setpoint to compare with (None: the loops' own t_supply_c)
    t_gpu_inlet_max_c: float | None = None  # optional extra limit on the CDU secondary supply (GPU inlet)
    ramp_k_per_h: float = 6.0  # largest change of the supply setpoint per hour
    plr_min_pu: float = 0.1  # chillers do not run below this part load
    p_aux_unit_pu: float = 0.01  # condenser-water / primary pumps and controls per running chiller, kW per kW of unit capacity (assumed)
    start_cost_usd: float = 5.0  # wear cost of one chiller start (assumed)
    it_sensitivity_pu_per_k: float = 0.001  # IT power rise per K of supply temperature (GPU leakage, assumed)
    t_ref_c: float | None = None  # reference of the leakage term (None: the fixed setpoint)
    water_usd_m3: float = 0.5  # Memphis: ~0.19-0.32 USD per 100 gal reported (shared/facts/colossus.md §4) ~= 0.5-0.85 USD/m3
    time_limit_s: float = 60.0
    rel_gap: float = 1e-4


@dataclass(frozen=True)
class CoolingInputs:
    """Hourly heat and weather. `q_liquid_kw` / `q_air_kw`: (T, R) rack heat into CDUs / air (kW)."""

    layout: SiteLayout
    time: np.ndarray  # datetime64 (T,)
    q_liquid_kw: np.ndarray
    q_air_kw: np.ndarray
    t_dry_c: np.ndarray
    t_wet_c: np.ndarray
    price_usd_kwh: np.ndarray | float
    dt_h: float = 1.0
    options: CoolingOptions = field(default_factory=CoolingOptions)


@dataclass
class PlantGroup:
    name: str  # id of the primary heat-rejection plant
    plant: int  # equip index
    loops: np.ndarray  # equip indices
    model: object
    n_units: int
    dt_design_k: float
    secondary: object | None  # tower/dry cooler behind a water-cooled chiller


def plant_groups(layout: SiteLayout) -> list[PlantGroup]:
    loops = layout.of_kind("facility_loop")
    C = layout.cooling_incidence.tocsr()
    by_plant: dict[int, list[int]] = {}
    for lp in loops:
        ps = C.indices[C.indptr[lp]:C.indptr[lp + 1]]
        if len(ps) != 1:
            raise InputError.one(_SRC, f"site.{layout.equip.ids[lp]}.cooled_by",
                                 "the setpoint optimiser needs each facility loop cooled by exactly one plant")
        by_plant.setdefault(int(ps[0]), []).append(int(lp))
    out = []
    for p, lps in by_plant.items():
        m = layout.equip.model[p]
        sec = None
        if isinstance(m, Chiller) and m.condenser == "water":
            s = C.indices[C.indptr[p]:C.indptr[p + 1]]
            sec = layout.equip.model[int(s[0])] if len(s) else None
        dts = {layout.equip.model[lp].dt_design_k for lp in lps}
        out.append(PlantGroup(layout.equip.ids[p], p, np.array(lps), m, int(m.count), float(min(dts)), sec))
    return out


# ------------------------------------------------------------------------------------------ coefficients


@dataclass
class Coefficients:
    """Per group g, hour t, candidate k (arrays (G, T, K)) and per (G, T)."""

    T_k: np.ndarray  # (K,)
    p_plant_kw: np.ndarray  # compressor + fans of the plant and its towers/dry coolers
    p_it_delta_kw: np.ndarray  # IT leakage change against t_ref
    water_m3_h: np.ndarray
    q_staged_kw: np.ndarray  # load that sets chiller staging (0 for free-cooling-only plants)
    cop: np.ndarray
    f_free: np.ndarray
    q_kw: np.ndarray  # (G, T) heat into the group's loops
    cdu_rise_k: np.ndarray  # (G, T) CDU approach at the most loaded CDU
    t_cdu_max_c: np.ndarray  # (G,)
    floor_c: np.ndarray  # (G, T) free-cooling floor (-inf for chiller plants)
    q_unit_kw: np.ndarray  # (G,) 0 for non-chillers
    n_max: np.ndarray  # (G,)
    p_aux_unit_kw: np.ndarray  # (G,)
    p_fan_unit_kw: np.ndarray  # (G,) condenser fan of one chiller at full speed
    q_fan_kw: np.ndarray  # (G, T) load the condenser fans see (air-cooled: all the plant's heat)


def coefficients(inp: CoolingInputs, groups: list[PlantGroup]) -> Coefficients:
    L, opt = inp.layout, inp.options
    ql = np.asarray(inp.q_liquid_kw, float)
    qa = np.asarray(inp.q_air_kw, float)
    T = ql.shape[0]
    Tk = np.asarray(sorted(set(opt.candidates_c) | ({opt.t_fixed_c} if opt.t_fixed_c is not None else set())), float)
    G, K = len(groups), len(Tk)
    rack_loop = L.racks.loop
    cdu_q = np.array([g.cdu.q_max_kw if g.cdu else np.nan for g in L.groups])[L.racks.group]
    cdu_app = np.array([g.cdu.approach_k if g.cdu else np.nan for g in L.groups])[L.racks.group]
    cdu_tmax = np.array([g.cdu.t_secondary_max_c if g.cdu else np.nan for g in L.groups])[L.racks.group]
    q = np.zeros((G, T))
    rise = np.zeros((G, T))
    tmax = np.full(G, np.inf)
    floor = np.full((G, T), -np.inf)
    p_plant = np.zeros((G, T, K))
    water = np.zeros((G, T, K))
    staged = np.zeros((G, T, K))
    cop = np.full((G, T, K), np.nan)
    ffree = np.zeros((G, T, K))
    q_unit = np.zeros(G)
    n_max = np.zeros(G)
    p_aux = np.zeros(G)
    td, tw = np.asarray(inp.t_dry_c, float), np.asarray(inp.t_wet_c, float)
    for gi, g in enumerate(groups):
        racks = np.isin(rack_loop, g.loops)
        q[gi] = ql[:, racks].sum(axis=1) + qa[:, racks].sum(axis=1)
        has = racks & np.isfinite(cdu_q)
        if has.any():
            rise[gi] = (cdu_app[has][None, :] * ql[:, has] / cdu_q[has][None, :]).max(axis=1)
            tmax[gi] = float(np.nanmin(cdu_tmax[has]))
        m = g.model
        ts = Tk[None, :]
        tr = ts + g.dt_design_k
        if isinstance(m, Chiller):
            if m.condenser == "air":
                t_in = td
            else:
                app = g.secondary.approach_k if g.secondary is not None else 4.0
                t_in = np.maximum(tw + app, T_CONDENSER_WATER_MIN_C)
            t_in = t_in[:, None]
            if m.free_cooling_approach_k is not None:
                f = np.clip((tr - (t_in + m.free_cooling_approach_k)) / (tr - ts), 0.0, 1.0)
            else:
                f = np.zeros((T, K))
            lift = np.maximum(t_in + m.approach_condenser_k - ts, LIFT_MIN_K)
            lift_rated = m.t_condenser_rated_c + m.approach_condenser_k - m.t_supply_rated_c
            c = m.cop_rated * (ts + KELVIN) / (m.t_supply_rated_c + KELVIN) * lift_rated / lift
            q_mech = q[gi][:, None] * (1.0 - f)
            p_comp = q_mech / c
            cop[gi], ffree[gi] = c, f
            staged[gi] = np.broadcast_to(q[gi][:, None], (T, K)) if m.condenser == "air" else q_mech
            p_plant[gi] = p_comp
            if g.secondary is not None:
                sec = g.secondary
                q_rej = q[gi][:, None] + p_comp
                load = q_rej / max(sec.q_max_kw, 1e-9)
                out_t = (tw if isinstance(sec, CoolingTower) else td)[:, None]
                lv = np.maximum(out_t + sec.approach_k, T_CONDENSER_WATER_MIN_C)
                spd = np.clip(load * sec.approach_k / np.maximum(lv - out_t, 1e-9), FAN_SPEED_MIN_PU, 1.0)
                p_plant[gi] += sec.count * sec.p_fan_kw * spd**3
                if isinstance(sec, CoolingTower):
                    cyc = sec.cycles_of_concentration
                    water[gi] = EVAP_M3_H_PER_KW * q_rej * (1.0 + 1.0 / (cyc - 1.0))
            q_unit[gi] = m.q_unit_max_kw
            n_max[gi] = m.count
            p_aux[gi] = opt.p_aux_unit_pu * m.q_unit_max_kw
        elif isinstance(m, CoolingTower | DryCooler):
            out_t = (tw if isinstance(m, CoolingTower) else td)[:, None]
            load = q[gi][:, None] / m.q_max_kw
            floor[gi] = (out_t + m.approach_k * np.minimum(load, 1.0))[:, 0]
            spd = np.clip(load * m.approach_k / np.maximum(ts - out_t, 1e-9), FAN_SPEED_MIN_PU, 1.0)
            p_plant[gi] = m.count * m.p_fan_kw * spd**3
            if isinstance(m, CoolingTower):
                water[gi] = EVAP_M3_H_PER_KW * q[gi][:, None] * (1.0 + 1.0 / (m.cycles_of_concentration - 1.0))
        else:
            raise InputError.one(_SRC, f"site.{g.name}", f"unsupported heat rejection kind {m.kind}")
    t_ref = opt.t_ref_c if opt.t_ref_c is not None else (opt.t_fixed_c if opt.t_fixed_c is not None else float(Tk.mean()))
    p_it_delta = opt.it_sensitivity_pu_per_k * q[:, :, None] * (Tk[None, None, :] - t_ref)
    p_fan_unit = np.array([g.model.p_fan_kw if isinstance(g.model, Chiller) else 0.0 for g in groups])
    q_fan = staged.max(axis=2)  # air-cooled: independent of the setpoint; water-cooled: the largest (conservative)
    return Coefficients(Tk, p_plant, p_it_delta, water, staged, cop, ffree, q, rise, tmax, floor, q_unit, n_max, p_aux,
                        p_fan_unit, q_fan)


# ------------------------------------------------------------------------------------------ model


def build_cooling(inp: CoolingInputs, co: Coefficients, allowed: np.ndarray | None = None) -> pyo.ConcreteModel:
    """`allowed` (K,) bool restricts the candidates (the fixed-setpoint baseline uses one)."""
    t0 = time.perf_counter()
    opt = inp.options
    G, T, K = co.p_plant_kw.shape
    lm = LinearModel(pyo.ConcreteModel("cooling_setpoints"))
    ub_b = np.ones((G, T, K))
    if allowed is not None:
        ub_b[:, :, ~allowed] = 0.0
    lm.var("b", G * T * K, 0.0, ub_b.ravel(), integer=True, units="1", long_name="candidate setpoint chosen")
    chill = co.q_unit_kw > 0
    n_ub = np.repeat(np.where(chill, co.n_max, 0.0), T)
    lm.var("n", G * T, 0.0, n_ub, integer=True, units="1", long_name="chillers running")
    lm.var("s", G * T, 0.0, INF, units="1", long_name="chiller starts")
    gt = np.arange(G * T)
    gtk_row = np.repeat(gt, K)
    Tk_all = np.tile(co.T_k, G * T)
    lm.rows("setpoint_choice", G * T, [("b", gtk_row, None, 1.0)], lb=1.0, ub=1.0,
            long_name="one supply setpoint per plant group and hour")
    lim = np.repeat(co.t_cdu_max_c, T) - co.cdu_rise_k.ravel()
    lm.rows("cdu_supply_limit", G * T, [("b", gtk_row, None, Tk_all)], ub=np.where(np.isfinite(lim), lim, INF),
            long_name="CDU secondary supply = facility supply + CDU approach at load <= t_secondary_max",
            dual_units="USD/K")
    if opt.t_gpu_inlet_max_c is not None:
        lm.rows("gpu_inlet_limit", G * T, [("b", gtk_row, None, Tk_all)],
                ub=opt.t_gpu_inlet_max_c - co.cdu_rise_k.ravel(),
                long_name="GPU coolant inlet (CDU secondary supply) <= its limit", dual_units="USD/K")
    fl = co.floor_c.ravel()
    if np.isfinite(fl).any():
        lm.rows("free_cooling_floor", G * T, [("b", gtk_row, None, Tk_all)], lb=np.where(np.isfinite(fl), fl, -INF),
                long_name="supply no colder than outdoor + approach at load (towers/dry coolers on the loop)")
    qs = co.q_staged_kw.ravel()
    qu = np.repeat(co.q_unit_kw, T)
    lm.rows("chiller_capacity", G * T, [("b", gtk_row, None, qs), ("n", None, None, -qu)], ub=0.0,
            long_name="staged chiller load <= running chillers x unit capacity")
    define_condenser_fans(lm, inp, co)
    lm.rows("chiller_min_part_load", G * T, [("b", gtk_row, None, -qs), ("n", None, None, opt.plr_min_pu * qu)], ub=0.0,
            long_name="running chillers x minimum part load <= staged load")
    # starts: n[t] - n[t-1] - s[t] <= 0 (n before the horizon = the n the first hour needs, no start counted)
    prev = np.flatnonzero(gt % T > 0)
    lm.rows("chiller_starts", G * T, [("n", None, None, 1.0), ("n", prev, prev - 1, -1.0), ("s", None, None, -1.0)],
            ub=np.where(gt % T > 0, 0.0, INF), long_name="starts >= increase of chillers running")
    if T > 1:
        r = np.flatnonzero(gt % T > 0)
        nr = len(r)
        rows_cur = np.repeat(np.arange(nr), K)
        pos_cur = (r[:, None] * K + np.arange(K)[None, :]).ravel()
        ramp = opt.ramp_k_per_h * inp.dt_h
        lm.rows("setpoint_ramp_limit", nr, [("b", rows_cur, pos_cur, np.tile(co.T_k, nr)),
                                            ("b", rows_cur, pos_cur - K, -np.tile(co.T_k, nr))],
                lb=-ramp, ub=ramp, long_name="supply setpoint changes by at most ramp_k_per_h per hour")
    price = np.broadcast_to(np.asarray(inp.price_usd_kwh, float), (T,))
    pr = np.tile(np.repeat(price, K), G)
    lm.add_cost("b", pr * (co.p_plant_kw + co.p_it_delta_kw).ravel() * inp.dt_h
                + opt.water_usd_m3 * co.water_m3_h.ravel() * inp.dt_h)
    lm.add_cost("n", np.tile(price, G) * np.repeat(co.p_aux_unit_kw, T) * inp.dt_h)
    lm.add_cost("s", opt.start_cost_usd)
    lm.add_cost("p_fan", np.tile(price, G) * inp.dt_h)
    lm.finish("cooling_cost")
    lm.build_s = time.perf_counter() - t0
    return lm.model


def fan_kw(p_fan_unit_kw: float, q_kw: np.ndarray, q_unit_kw: float, n: np.ndarray) -> np.ndarray:
    """Condenser fans of n running chillers sharing q_kw: n * p_fan * speed^3, speed = q / (n q_unit)
    (at least FAN_SPEED_MIN_PU), as in the simulator."""
    n = np.asarray(n, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        speed_pu = np.clip(np.where(n > 0, q_kw / (np.maximum(n, 1.0) * q_unit_kw), 0.0), FAN_SPEED_MIN_PU, 1.0)
    return np.where(n > 0, n * p_fan_unit_kw * speed_pu**3, 0.0)


MAX_FAN_LINES = 12


def define_condenser_fans(lm, inp, co) -> None:
    """p_fan[g,t] >= secant of the convex fan power between consecutive chiller counts n0, n0 + 1 (exact at
    integers): running one more chiller lowers every fan's speed (cube law), which is what makes staging a
    trade-off against each unit's auxiliaries."""
    G, T = co.q_fan_kw.shape
    lm.var("p_fan", G * T, 0.0, INF, units="kW", long_name="chiller condenser fans")
    rows_gt, n0s = [], []
    for g in range(G):
        if co.p_fan_unit_kw[g] <= 0 or co.q_unit_kw[g] <= 0:
            continue
        lo = np.ceil(co.q_fan_kw[g] / co.q_unit_kw[g] - 1e-9)
        for d in range(MAX_FAN_LINES):
            n0 = lo + d
            ok = n0 + 1 <= co.n_max[g]
            rows_gt.append(np.flatnonzero(ok) + g * T)
            n0s.append(n0[ok])
    if not rows_gt:
        return
    gt = np.concatenate(rows_gt)
    n0 = np.concatenate(n0s)
    g_of = gt // T
    q = co.q_fan_kw.ravel()[gt]
    f0 = fan_kw(co.p_fan_unit_kw[g_of], q, co.q_unit_kw[g_of], n0)
    f1 = fan_kw(co.p_fan_unit_kw[g_of], q, co.q_unit_kw[g_of], n0 + 1)
    slope = f1 - f0
    r = np.arange(len(gt))
    lm.rows("condenser_fan_power", len(gt), [("p_fan", r, gt, 1.0), ("n", r, gt, -slope)], lb=f0 - slope * n0,
            long_name="condenser fan power >= its convex curve in the chillers running (secants)")


def _check(inp: CoolingInputs) -> None:
    T = len(inp.time)
    R = len(inp.layout.racks)
    for k in ("q_liquid_kw", "q_air_kw"):
        if np.shape(getattr(inp, k)) != (T, R):
            raise InputError.one(_SRC, k, f"shape {np.shape(getattr(inp, k))}, expected ({T}, {R})")
    for k in ("t_dry_c", "t_wet_c"):
        if np.shape(getattr(inp, k)) != (T,):
            raise InputError.one(_SRC, k, f"expected ({T},)")
    if T == 0:
        raise InputError.one(_SRC, "time", "the horizon has no steps")
    if inp.options.water_usd_m3 < 0 or np.any(np.asarray(inp.price_usd_kwh) < 0):
        raise InputError.one(_SRC, "prices", "expected non-negative electricity and water prices")
    if not inp.options.candidates_c:
        raise InputError.one(_SRC, "options.candidates_c", "expected at least one candidate setpoint")


def describers(inp: CoolingInputs, groups, co: Coefficients) -> dict:
    T = len(inp.time)

    def cdu(pos, amt):
        g, t = pos // T, pos % T
        i = int(np.argmax(amt))
        return (f"CDU secondary supply limit: in {len(pos)} hour(s) (first {str(inp.time[t[0]])[:16]}, plant "
                f"{groups[g[i]].name}) even the coldest candidate setpoint {co.T_k.min():.1f} C plus the "
                f"{co.cdu_rise_k[g[i], t[i]]:.1f} K CDU approach at load exceeds {co.t_cdu_max_c[g[i]]:.1f} C: by up to "
                f"{amt.max():.2f} K")

    def gpu(pos, amt):
        return (f"GPU inlet limit {inp.options.t_gpu_inlet_max_c:.1f} C cannot be met in {len(pos)} hour(s) even at "
                f"{co.T_k.min():.1f} C supply: by up to {amt.max():.2f} K")

    def floor(pos, amt):
        g, t = pos // T, pos % T
        return (f"free-cooling plant {groups[g[0]].name}: the warmest candidate {co.T_k.max():.1f} C is below what the "
                f"weather allows in {len(pos)} hour(s) (first {str(inp.time[t[0]])[:16]}; outdoor + approach at load), "
                f"by up to {amt.max():.2f} K")

    def cap(pos, amt):
        g = pos // T
        return (f"chiller capacity: plant {groups[g[0]].name} ({int(co.n_max[g[0]])} x {co.q_unit_kw[g[0]]:,.0f} kW) "
                f"is short in {len(pos)} hour(s) by up to {amt.max():,.0f} kW")

    return {"cdu_supply_limit": cdu, "gpu_inlet_limit": gpu, "free_cooling_floor": floor, "chiller_capacity": cap}


def _solve_or_explain(inp, groups, co, allowed=None, what="cooling setpoints"):
    model = build_cooling(inp, co, allowed)
    info = solve(model, inp.options.time_limit_s, inp.options.rel_gap, duals=False, load_pyomo=False)
    if info.has_solution:
        return model._linear, info
    raise_if_out_of_time(info, inp.options.time_limit_s, f"schedule of {what}")
    fams = [f for f in ("cdu_supply_limit", "gpu_inlet_limit", "free_cooling_floor", "chiller_capacity")
            if f in model._linear.families]
    elastic_resolve(lambda: build_cooling(inp, co, allowed), {f: 1e6 for f in fams}, describers(inp, groups, co),
                    inp.options.time_limit_s, 1e-4, what=what, prefix=f"{what}: ",
                    hard_limits="the candidate setpoints, the setpoint ramp limit or the chiller count")


def optimize_cooling(inp: CoolingInputs) -> xr.Dataset:
    """Hourly setpoints and staging, with the cost, energy and water saved against the fixed setpoint."""
    _check(inp)
    L = inp.layout
    groups = plant_groups(L)
    opt = inp.options
    t_fixed = opt.t_fixed_c
    if t_fixed is None:
        t_fixed = float(np.median([L.equip.model[lp].t_supply_c for g in groups for lp in g.loops]))
        inp = CoolingInputs(**{**inp.__dict__, "options": CoolingOptions(**{**opt.__dict__, "t_fixed_c": t_fixed})})
    co = coefficients(inp, groups)
    lm, info = _solve_or_explain(inp, groups, co)
    ds = extract_cooling(inp, groups, co, lm, info, "")
    try:
        lmb, ib = _solve_or_explain(inp, groups, co, allowed=np.isclose(co.T_k, t_fixed), what="fixed setpoint")
        base = extract_cooling(inp, groups, co, lmb, ib, "_fixed")
        for v in ("t_supply_c", "chillers_on", "p_plant_kw", "water_m3_h", "cost_usd"):
            ds[f"{v}_fixed"] = base[f"{v}_fixed"]
        ds.attrs.update({
            "fixed_setpoint_c": t_fixed,
            "fixed_feasible": 1,
            "cost_fixed_usd": base.attrs["cost_total_usd_fixed"],
            "cost_saved_usd": base.attrs["cost_total_usd_fixed"] - ds.attrs["cost_total_usd"],
            "energy_saved_kwh": base.attrs["e_cooling_kwh_fixed"] - ds.attrs["e_cooling_kwh"],
            "water_saved_m3": base.attrs["water_m3_fixed"] - ds.attrs["water_m3"],
        })
    except InfeasibleError as exc:
        ds.attrs.update({"fixed_setpoint_c": t_fixed, "fixed_feasible": 0, "fixed_infeasible_reason": str(exc)})
    return ds


def extract_cooling(inp: CoolingInputs, groups, co: Coefficients, lm: LinearModel, info: SolveInfo,
                    suffix: str) -> xr.Dataset:
    G, T, K = co.p_plant_kw.shape
    b = np.rint(lm.value(info, "b")).reshape(G, T, K)
    n = np.rint(lm.value(info, "n")).reshape(G, T)
    s = lm.value(info, "s").reshape(G, T)
    pick = lambda a: (a * b).sum(axis=2)  # noqa: E731
    t_sup = pick(np.broadcast_to(co.T_k, (G, T, K)))
    p_fan = np.stack([fan_kw(co.p_fan_unit_kw[g], co.q_fan_kw[g], max(co.q_unit_kw[g], 1e-9), n[g]) for g in range(G)])
    p_plant = pick(co.p_plant_kw) + n * co.p_aux_unit_kw[:, None] + p_fan
    p_it = pick(co.p_it_delta_kw)
    water = pick(co.water_m3_h)
    price = np.broadcast_to(np.asarray(inp.price_usd_kwh, float), (T,))
    cost = price[None, :] * (p_plant + p_it) * inp.dt_h + inp.options.water_usd_m3 * water * inp.dt_h
    cost_total = float(cost.sum() + inp.options.start_cost_usd * s.sum())
    dims = ("time", "plant")  # as the simulator's heat-rejection variables
    sfx = suffix
    ds = xr.Dataset(
        {
            f"t_supply_c{sfx}": (dims, _t(t_sup), {"units": "degC", "long_name": "facility supply setpoint"}),
            f"chillers_on{sfx}": (dims, _t(n.astype(int)), {"units": "1", "long_name": "chillers running"}),
            f"p_plant_kw{sfx}": (dims, _t(p_plant), {"units": "kW", "long_name": "compressors, fans and chiller auxiliaries"}),
            f"p_fan_kw{sfx}": (dims, _t(p_fan), {"units": "kW", "long_name": "chiller condenser fans"}),
            f"p_it_delta_kw{sfx}": (dims, _t(p_it), {"units": "kW", "long_name": "IT power change from coolant temperature (leakage)"}),
            f"water_m3_h{sfx}": (dims, _t(water), {"units": "m3/h", "long_name": "cooling-tower water (evaporation + blowdown)"}),
            f"cost_usd{sfx}": (dims, _t(cost), {"units": "USD", "long_name": "cooling electricity and water cost of the hour"}),
            f"cop{sfx}": (dims, _t(pick(np.nan_to_num(co.cop))), {"units": "1", "long_name": "chiller COP at the setpoint (0: no chiller)"}),
            f"free_cooling_pu{sfx}": (dims, _t(pick(co.f_free)), {"units": "1", "long_name": "share of the heat removed by free cooling"}),
            f"t_cdu_supply_max_c{sfx}": (dims, _t(t_sup + co.cdu_rise_k), {"units": "degC", "long_name": "hottest CDU secondary supply"}),
            f"q_heat_kw{sfx}": (dims, _t(co.q_kw), {"units": "kW", "long_name": "heat into the group's facility loops"}),
        },
        coords={"plant": [g.name for g in groups], "time": inp.time,
                "loops": ("plant", [",".join(inp.layout.equip.ids[i] for i in g.loops) for g in groups])},
    )
    ds.attrs.update({
        "optimizer": "cooling",
        f"cost_total_usd{sfx}": cost_total,
        f"e_cooling_kwh{sfx}": float(((p_plant + p_it) * inp.dt_h).sum()),
        f"e_plant_kwh{sfx}": float((p_plant * inp.dt_h).sum()),
        f"water_m3{sfx}": float((water * inp.dt_h).sum()),
        f"chiller_starts{sfx}": float(s.sum()),
        "candidates_c": ",".join(f"{t:g}" for t in co.T_k),
        "linearisation": "candidate setpoints with binaries; COP, free cooling, water and fans exact at each candidate",
        **({} if sfx else info.as_attrs()),
    })
    return ds


def _t(a: np.ndarray) -> np.ndarray:
    """(plant, time) -> (time, plant)."""
    return np.asarray(a).T


def setpoints_for_simulator(ds: xr.Dataset, layout: SiteLayout, fixed: bool = False) -> dict[str, np.ndarray]:
    """{loop id: (T,) supply setpoint} for twin.sim.cooling.simulate_cooling (the cross-check)."""
    v = ds["t_supply_c_fixed" if fixed else "t_supply_c"]
    out = {}
    for g, loops in zip(ds.plant.values, ds["loops"].values, strict=True):
        for lp in str(loops).split(","):
            out[lp] = v.sel(plant=g).values.astype(float)
    return out


def cross_check_cooling(inp: CoolingInputs, ds: xr.Dataset) -> dict:
    """Run the simulator's cooling model with the optimised and the fixed setpoints: CDU secondary supply
    within its limit and no unmet heat at every step, and the plant electricity/water compared."""
    from twin.sim.cooling import simulate_cooling

    out = {}
    for tag, fixed in (("optimised", False), ("fixed", True)):
        if fixed and "t_supply_c_fixed" not in ds:
            continue
        sp = setpoints_for_simulator(ds, inp.layout, fixed)
        r = simulate_cooling(inp.layout, inp.q_liquid_kw, inp.q_air_kw, inp.t_dry_c, inp.t_wet_c, inp.dt_h * 3600.0,
                             setpoints=sp)
        tcdu = r.t_cdu_supply_c
        over = np.nanmax(tcdu - r.t_cdu_max_c[None, :]) if tcdu is not None else np.nan
        out[tag] = {"p_plant_kwh": float(r.p_plant_kw.sum() * inp.dt_h),
                    "p_cooling_kwh": float(r.p_cooling_kw.sum() * inp.dt_h),
                    "water_m3": float(r.water_m3_h.sum() * inp.dt_h),
                    "q_unmet_kwh": float(r.q_unmet_kw.sum() * inp.dt_h),
                    "cdu_over_limit_k": float(over)}
    ok = out["optimised"]["q_unmet_kwh"] <= 1e-6 and not out["optimised"]["cdu_over_limit_k"] > 1e-6
    out["ok"] = bool(ok)
    return out
