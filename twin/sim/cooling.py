"""Thermal and cooling: rack heat -> CDUs / rear doors -> facility loops -> chillers, towers, dry coolers.

One call, vectorised over time x rack, time x loop and time x plant unit (Python loops only over the handful of
loops, heat-rejection components and loop groups):

    res = simulate_cooling(layout, q_liquid_kw, q_air_kw, t_dry_c, t_wet_c, dt_s, setpoints=None, outages=None,
                           rack_outputs=True)
    ds = res.to_dataset(time, rack_ids, consumer_ids)   # dims time, rack, loop, plant, consumer; units in attrs

Inputs (kW are step means):
  q_liquid_kw  (T, R)  heat each rack's cold plates put into its CDU
  q_air_kw     (T, R)  heat each rack puts into air (rear door if it has one, else the hall air handlers)
  t_dry_c, t_wet_c (T,)  outdoor dry-bulb and wet-bulb
  dt_s         scalar or (T,)  step lengths
  setpoints    CoolingSetpoints or {loop id: t_supply_c (float or (T,))}: overrides the loops' supply setpoints
  outages      {equipment id: units out (int or (T,))}: chiller/tower/dry-cooler units, or loop pumps, out of service
  rack_outputs False skips the (T, R) outputs (long 0.1 s runs); loop, plant and totals are unchanged
  racks_off    (T, R) bool or None: racks without power (stranded by an outage); their CDU pumps and door fans
               stop, so they add neither electricity nor heat

The model, step by step (every constant below is a documented, assumed engineering value):

Racks.  CDU secondary supply = loop supply + CDU approach x (q_liquid / q_max_cdu): a counterflow exchanger at
fixed UA has an approach proportional to its load. CDU pumps hold the design secondary range, so their flow is
design flow x load fraction (at least FLOW_MIN_PU) and their power is p_pump x flow_pu^3 (affinity). Active rear
doors: fan speed = q_air / q_max_door (>= FAN_SPEED_MIN_PU), power p_fan x speed^3. Racks without a door put
their air heat into hall air handlers on the same facility water, whose fans take AHU_FAN_KW_PER_KW of the
loop's design air heat at full speed, again by the cube law. Heat of every pump and fan inside the hall ends up
in the facility water, so it is part of the loop heat.

Facility loop.  Flow holds the design range: m = q / (c_p dt_design) (q seen through the flow controller's
first-order lag FLOW_CONTROL_TAU_S), between FLOW_MIN_PU of design flow and the
available pumps' rated flow; all available pumps run in parallel at one speed, power
n x P_rated x (m / (n m_rated))^3 with P_rated = rho g Q H / eta. Pump work heats the loop water.
The loop is a well-mixed volume C = V rho c_p (V at least V_MIN_S seconds of design flow) on the return side:
C dtheta/dt = q_in - m c_p theta, theta = return - supply. This is solved exactly per step (an affine recursion
in time, done by an associative scan), so at 0.1 s steps the loop smooths GPU swings with the time constant
V / flow (minutes) and at hourly steps it is quasi-steady. Stored heat E = C (t_supply + theta) + U (U, the
backlog below); the heat the plant must remove is q_dem = q_in - dE/dt with E at the ends of the steps, so
  q_generated = q_rejected + (E_n - E_{n-1}) / dt  exactly at every step.

Heat rejection.  Loops joined through the equipment that cools them form a group; parallel equipment of a group
shares the load in proportion to its available capacity (units - outage) x q_unit_max_kw.
* Chiller with economiser: free cooling removes the part of the range the outdoor source can reach:
  f_free = clip((t_return - (t_src + free_cooling_approach)) / (t_return - t_supply), 0, 1), t_src = outdoor dry
  bulb (air-cooled) or condenser water (water-cooled, waterside economiser); the rest is mechanical.
  COP is a Carnot fraction calibrated at the rating point:
      COP = cop_rated x (T_supply / T_supply_rated) x lift_rated / max(lift, LIFT_MIN_K)   (T in kelvin)
      lift = t_condenser_in + approach_condenser - t_supply,  t_condenser_in = dry bulb (air) or condenser water.
  Staging: units on = ceil(load / q_unit) (all load for air-cooled units, whose condenser fans also drive the
  free-cooling coil; mechanical load only for water-cooled units), never more than are available. Condenser fans:
  units_on x p_fan x speed^3, speed = load per unit on / q_unit. Condenser heat (load + compressor work) goes to
  the chiller's cooled_by towers / dry coolers by the incidence shares.
* Cooling tower / dry cooler behind a chiller: leaving water = max(t_wet (t_dry) + approach, T_CONDENSER_WATER_MIN_C);
  all available cells run, fan speed = load fraction x approach / (leaving - outdoor) (>= FAN_SPEED_MIN_PU), power
  n x p_fan x speed^3. A tower short of capacity limits the chillers it serves (capacity / condenser factor).
* Cooling tower / dry cooler serving a loop directly (free cooling only): the supply cannot go below
  outdoor + approach x load fraction (at full fan speed); when the weather forbids the setpoint, the supply
  setpoint is raised to that floor (a heat wave raises the supply temperature, heat is still rejected).
* Towers' water: evaporation by the CTI rule 0.00085 per degF of range x circulating flow, i.e.
  EVAP_M3_H_PER_KW = 0.00153 / (rho c_p) x 3600 ~ 1.32 m3/h per MW of heat rejected (about 88 % of the heat
  leaves as latent heat at 2,400 kJ/kg; constant through the year, so winter evaporation is overstated, where in
  practice more of the heat leaves as sensible heat); drift = drift_pu x circulating flow at TOWER_RANGE_K;
  blowdown = evaporation / (cycles - 1) - drift (>= 0): drift carries dissolved solids out as blowdown does, so
  the solids balance fixes blowdown + drift, not blowdown alone. water = evaporation + blowdown + drift
  = evaporation x cycles / (cycles - 1) (the make-up water; optimizers.cooling uses the same figure).

Shortfall.  If a group cannot reject q_dem (outage, tower short, pumps lost), the heat stays in the loop water:
the backlog U (kJ) follows Lindley's recursion U_n = max(0, U_{n-1} + (q_dem - capacity) dt), computed in closed
form (cumulative sum minus its running minimum). q_rejected = q_dem - dU/dt <= capacity, q_unmet = the part of
q_dem not rejected in the step, and the supply temperature rises by U / C of the group (all loops of a group
warm together). When capacity returns, the plant runs flat out until the backlog is gone. Performance (COP, free
cooling, fans) is evaluated at the setpoint, not the raised temperature (conservative). A loop's transport
limit is its available pumps' flow at DT_LOOP_MAX_PU x design range. Nothing caps the rise: a long outage drives
the supply far above what the IT tolerates, which is the caller's cue (t_cdu_supply_c against t_cdu_max_c) to
throttle or trip the racks; this module does not feed that back into the heat.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from twin.errors import InputError
from twin.layout import SiteLayout
from twin.schema.components import (
    CP_WATER_KJ_KG_K,
    GRAVITY_M_S2,
    WATER_RHO_KG_M3,
    Chiller,
    CoolingTower,
    DryCooler,
)

_CALLER = "twin.sim.cooling.simulate_cooling"

# ----------------------------------------------------------------------------- assumed engineering constants
FLOW_MIN_PU = 0.3  # lowest pump flow, fraction of design (loop pumps and CDU pumps; motor cooling / control)
FAN_SPEED_MIN_PU = 0.2  # lowest fan speed of variable-speed fans (towers, dry coolers, condensers, doors, AHUs)
LIFT_MIN_K = 10.0  # compressors hold at least this lift (head-pressure control), which caps the COP
T_CONDENSER_WATER_MIN_C = 10.0  # towers/dry coolers behind chillers never make water colder (freeze, oil return)
DT_LOOP_MAX_PU = 2.0  # return may rise to twice the design range when flow is limited; beyond it heat is unmet
FLOW_CONTROL_TAU_S = 120.0  # time constant of the loop flow control (pump VFDs holding the design range)
V_MIN_S = 60.0  # loop volume is at least one minute of design flow (pipes, headers)
AHU_FAN_KW_PER_KW = 0.02  # hall air handlers (fan walls) at full speed, kW of fan per kW of air heat at design
TOWER_RANGE_K = 5.6  # condenser water range through a tower (10 degF), for circulating flow and drift
EVAP_FACTOR_PER_K = 0.00085 * 1.8  # CTI rule: evaporation = 0.00085 x range(degF) x circulating flow
EVAP_M3_H_PER_KW = EVAP_FACTOR_PER_K * 3600.0 / (WATER_RHO_KG_M3 * CP_WATER_KJ_KG_K)  # ~1.32e-3
KELVIN = 273.15


@dataclass(frozen=True)
class CoolingSetpoints:
    """Loop supply temperature setpoints by loop id (float or (T,) array, degC); unset loops use the site's."""

    t_supply_c: Mapping[str, float | np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class CoolingResult:
    """Cooling time series. Shapes: T steps, R racks, L loops (`loop_ids`), P heat-rejection components
    (`plant_ids`), C cooling consumers (`consumer_equip`, indices into layout.equip = layout.consumers).
    Rack arrays are float32, the rest float64. kW are step means, temperatures degC at the end of the step.

    Electricity: `p_consumer_kw` goes on the consumers' feeders in the power tree; `p_rack_aux_kw` (CDU pumps,
    door fans) on the racks' feeders (it is not in q_liquid/q_air; its heat is added to the loops here).
    p_cooling_kw = p_consumer_kw.sum(1) + p_rack_aux_kw.sum(1) (+ power of plant not fed from the power graph).
    """

    loop_ids: list[str]
    plant_ids: list[str]
    plant_kind: list[str]
    consumer_equip: np.ndarray  # (C,) equip indices
    t_cdu_max_c: np.ndarray  # (R,) highest allowed CDU secondary supply (NaN: rack without CDU)
    # per rack (T, R)
    t_cdu_supply_c: np.ndarray | None  # CDU secondary supply (NaN: rack without CDU); None if not asked for
    flow_cdu_m3_h: np.ndarray | None  # CDU secondary flow (0: rack without CDU)
    p_rack_aux_kw: np.ndarray | None  # CDU pump + rear-door fans, electric
    # per loop (T, L)
    q_loop_kw: np.ndarray  # heat into the loop: racks + rack aux + air handlers + loop pumps
    q_rejected_loop_kw: np.ndarray  # heat the plant removed from the loop
    q_stored_loop_kw: np.ndarray  # d(stored heat)/dt = q_loop - q_rejected_loop
    e_stored_loop_kwh: np.ndarray  # stored heat relative to the state before the first step
    q_unmet_loop_kw: np.ndarray  # heat the plant should have removed to hold the setpoint but could not
    e_unmet_loop_kwh: np.ndarray  # backlog of unrejected heat held in the loop water
    t_supply_c: np.ndarray  # facility supply (setpoint, raised by weather floor and backlog)
    t_supply_set_c: np.ndarray  # setpoint in force (after the weather floor of free-cooling-only plants)
    t_return_c: np.ndarray
    flow_loop_m3_h: np.ndarray
    p_pump_kw: np.ndarray  # loop pumps, electric
    p_ahu_kw: np.ndarray  # hall air handler fans, electric (booked on the loop's consumer)
    p_rack_aux_loop_kw: np.ndarray  # p_rack_aux_kw summed over the loop's racks (on rack feeders, not the loop's)
    # per heat-rejection component (T, P)
    q_plant_kw: np.ndarray  # chillers: heat taken from loops; towers/dry coolers: heat rejected outdoors
    q_free_kw: np.ndarray  # chillers: part removed by free cooling (economiser); towers/dry coolers: = q_plant
    units_on: np.ndarray  # units running (chillers staged; towers/dry coolers: all available while loaded)
    units_available: np.ndarray
    capacity_kw: np.ndarray  # effective capacity this step (after outages and condenser-side limits)
    cop: np.ndarray  # mechanical COP (NaN for towers/dry coolers)
    t_condenser_in_c: np.ndarray  # air or water entering the condenser (chillers); leaving water (towers/dry)
    p_compressor_kw: np.ndarray
    p_fan_kw: np.ndarray
    p_plant_kw: np.ndarray  # compressor + fans
    evaporation_m3_h: np.ndarray
    blowdown_m3_h: np.ndarray
    drift_m3_h: np.ndarray
    water_plant_m3_h: np.ndarray
    # per consumer (T, C)
    p_consumer_kw: np.ndarray
    # totals (T,)
    p_cooling_kw: np.ndarray
    water_m3_h: np.ndarray
    q_generated_kw: np.ndarray  # = q_loop_kw.sum(1)
    q_rejected_kw: np.ndarray
    q_stored_kw: np.ndarray
    q_unmet_kw: np.ndarray

    UNITS = {
        "t_cdu_supply_c": ("degC", "CDU secondary supply temperature"),
        "flow_cdu_m3_h": ("m3/h", "CDU secondary coolant flow"),
        "p_rack_aux_kw": ("kW", "rack cooling auxiliaries (CDU pump, rear-door fans), electric"),
        "q_loop_kw": ("kW", "heat into the facility loop"),
        "q_rejected_loop_kw": ("kW", "heat removed from the facility loop by the plant"),
        "q_stored_loop_kw": ("kW", "rate of change of heat stored in the facility loop"),
        "e_stored_loop_kwh": ("kWh", "heat stored in the facility loop since the start"),
        "q_unmet_loop_kw": ("kW", "heat the plant could not reject to hold the setpoint"),
        "e_unmet_loop_kwh": ("kWh", "backlog of unrejected heat held in the loop"),
        "t_supply_c": ("degC", "facility water supply temperature"),
        "t_supply_set_c": ("degC", "facility water supply setpoint in force"),
        "t_return_c": ("degC", "facility water return temperature"),
        "flow_loop_m3_h": ("m3/h", "facility water flow"),
        "p_pump_kw": ("kW", "facility loop pumps, electric"),
        "p_ahu_kw": ("kW", "hall air handler fans, electric"),
        "p_rack_aux_loop_kw": ("kW", "rack cooling auxiliaries of the loop's racks, electric"),
        "q_plant_kw": ("kW", "heat handled by the heat-rejection component"),
        "q_free_kw": ("kW", "heat removed without compressors (free cooling)"),
        "units_on": ("1", "units running"),
        "units_available": ("1", "units in service"),
        "capacity_kw": ("kW", "effective heat-rejection capacity"),
        "cop": ("1", "chiller compressor coefficient of performance"),
        "t_condenser_in_c": ("degC", "condenser entering air/water (chillers), leaving water (towers, dry coolers)"),
        "p_compressor_kw": ("kW", "chiller compressors, electric"),
        "p_fan_kw": ("kW", "condenser / tower / dry-cooler fans, electric"),
        "p_plant_kw": ("kW", "heat-rejection component, electric"),
        "evaporation_m3_h": ("m3/h", "cooling-tower evaporation"),
        "blowdown_m3_h": ("m3/h", "cooling-tower blowdown"),
        "drift_m3_h": ("m3/h", "cooling-tower drift"),
        "water_plant_m3_h": ("m3/h", "water use of the heat-rejection component"),
        "p_consumer_kw": ("kW", "electric power of each cooling consumer in the power tree"),
        "p_cooling_kw": ("kW", "all cooling electricity (plant, loop pumps, air handlers, rack auxiliaries)"),
        "water_m3_h": ("m3/h", "site cooling water use (evaporation + blowdown + drift)"),
        "q_generated_kw": ("kW", "heat into all facility loops"),
        "q_rejected_kw": ("kW", "heat removed from all facility loops"),
        "q_stored_kw": ("kW", "rate of change of heat stored in all facility loops"),
        "q_unmet_kw": ("kW", "heat the plant could not reject to hold the setpoints"),
    }
    DIMS = {"rack": ("t_cdu_supply_c", "flow_cdu_m3_h", "p_rack_aux_kw"),
            "loop": ("q_loop_kw", "q_rejected_loop_kw", "q_stored_loop_kw", "e_stored_loop_kwh", "q_unmet_loop_kw",
                     "e_unmet_loop_kwh", "t_supply_c", "t_supply_set_c", "t_return_c", "flow_loop_m3_h",
                     "p_pump_kw", "p_ahu_kw", "p_rack_aux_loop_kw"),
            "plant": ("q_plant_kw", "q_free_kw", "units_on", "units_available", "capacity_kw", "cop",
                      "t_condenser_in_c", "p_compressor_kw", "p_fan_kw", "p_plant_kw", "evaporation_m3_h",
                      "blowdown_m3_h", "drift_m3_h", "water_plant_m3_h"),
            "consumer": ("p_consumer_kw",)}

    def to_dataset(self, time, rack_ids, consumer_ids):
        """xarray Dataset with dims time, rack, loop, plant, consumer; units and long names in attrs."""
        import xarray as xr

        dim_of = {v: d for d, vs in self.DIMS.items() for v in vs}
        data = {}
        for f in fields(self):
            if f.name not in self.UNITS or getattr(self, f.name) is None:
                continue
            units, long_name = self.UNITS[f.name]
            dims = ("time", dim_of[f.name]) if f.name in dim_of else ("time",)
            data[f.name] = xr.Variable(dims, getattr(self, f.name), {"units": units, "long_name": long_name})
        data["t_cdu_max_c"] = xr.Variable(("rack",), self.t_cdu_max_c,
                                          {"units": "degC", "long_name": "highest allowed CDU secondary supply"})
        coords = {"time": time, "rack": np.asarray(rack_ids), "loop": self.loop_ids, "plant": self.plant_ids,
                  "plant_kind": ("plant", self.plant_kind), "consumer": list(consumer_ids)}
        return xr.Dataset(data, coords=coords)


# ----------------------------------------------------------------------------- helpers


def _affine_scan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x_n = a_n x_{n-1} + b_n with x_{-1} = 0, along axis 0, by recursive doubling (log2 T numpy passes)."""
    a = a.copy()
    b = b.copy()
    n = a.shape[0]
    s = 1
    while s < n:
        b[s:] = a[s:] * b[:-s] + b[s:]
        a[s:] = a[s:] * a[:-s]
        s *= 2
    return b


class _LoopSum:
    """Sum (T, R) columns into (T, L) loops: np.add.reduceat when racks come in loop order (one block per loop,
    the usual layout), else one matmul with a 0/1 matrix. Result float64."""

    def __init__(self, rack_loop: np.ndarray, L: int):
        self.L = L
        self.rack_loop = rack_loop
        order_ok = len(rack_loop) > 0 and np.all(np.diff(rack_loop) >= 0)
        self.starts = np.flatnonzero(np.r_[True, np.diff(rack_loop) > 0]) if order_ok else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        T = x.shape[0]
        out = np.zeros((T, self.L))
        if x.shape[1] == 0:
            return out
        if self.starts is not None:
            out[:, self.rack_loop[self.starts]] = np.add.reduceat(x, self.starts, axis=1, dtype=np.float64)
            return out
        M = np.zeros((x.shape[1], self.L), dtype=x.dtype)
        M[np.arange(x.shape[1]), self.rack_loop] = 1.0
        return (x @ M).astype(np.float64)


def _lindley(x: np.ndarray) -> np.ndarray:
    """U_n = max(0, U_{n-1} + x_n), U_{-1} = 0, along axis 0: cumulative sum minus its running minimum (<= 0)."""
    s = np.cumsum(x, axis=0)
    return s - np.minimum(np.minimum.accumulate(s, axis=0), 0.0)


def _units_out(outages, eid: str, T: int, count: int) -> np.ndarray:
    if not outages or eid not in outages:
        return np.zeros(T)
    out = np.broadcast_to(np.asarray(outages[eid], dtype=float), (T,))
    if np.any(out < 0):
        raise InputError.one(_CALLER, f"outages.{eid}", f"units out must be >= 0, got min {out.min():g}")
    return np.minimum(out, count)


def _per_step(v, T: int, key: str) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    if a.ndim == 0:
        return np.full(T, float(a))
    if a.shape != (T,):
        raise InputError.one(_CALLER, key, f"expected a scalar or an array of {T} steps, got shape {a.shape}")
    return a


def _fan_speed(load_pu, approach_k, headroom_k):
    """Speed to hold a leaving temperature `headroom_k` above outdoor when full speed gives `approach_k` at full load."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(headroom_k > 0, load_pu * approach_k / headroom_k, 1.0)
    return np.clip(s, FAN_SPEED_MIN_PU, 1.0)


# ----------------------------------------------------------------------------- main entry


def simulate_cooling(
    layout: SiteLayout,
    q_liquid_kw: np.ndarray,
    q_air_kw: np.ndarray,
    t_dry_c: np.ndarray,
    t_wet_c: np.ndarray,
    dt_s: float | np.ndarray,
    setpoints: CoolingSetpoints | Mapping[str, float | np.ndarray] | None = None,
    outages: Mapping[str, int | np.ndarray] | None = None,
    rack_outputs: bool = True,
    racks_off: np.ndarray | None = None,
) -> CoolingResult:
    """Cooling and water for every step; see the module docstring for the model and CoolingResult for outputs.

    rack_outputs=False skips the (T, R) outputs (t_cdu_supply_c, flow_cdu_m3_h, p_rack_aux_kw are None; the rack
    auxiliaries are still in the loop heat and p_cooling_kw, and their per-loop sum is p_rack_aux_loop_kw): use it
    for long 0.1 s runs where per-rack CDU temperatures are not wanted.
    """
    q_liquid_kw = np.asarray(q_liquid_kw, dtype=np.float32)
    q_air_kw = np.asarray(q_air_kw, dtype=np.float32)
    if q_liquid_kw.ndim != 2 or q_liquid_kw.shape != q_air_kw.shape or q_liquid_kw.shape[1] != len(layout.racks):
        raise InputError.one(_CALLER, "q_liquid_kw/q_air_kw", f"expected two (time, {len(layout.racks)}) arrays, "
                             f"got {q_liquid_kw.shape} and {q_air_kw.shape}")
    T, R = q_liquid_kw.shape
    for name, q in (("q_liquid_kw", q_liquid_kw), ("q_air_kw", q_air_kw)):
        lo = float(q.min()) if q.size else 0.0
        if not lo >= 0:  # also catches NaN
            raise InputError.one(_CALLER, name, f"rack heat must be finite and >= 0, got min {lo}")
    t_dry = _per_step(t_dry_c, T, "t_dry_c")
    t_wet = _per_step(t_wet_c, T, "t_wet_c")
    dt = _per_step(dt_s, T, "dt_s")
    if not np.all(dt > 0):
        raise InputError.one(_CALLER, "dt_s", "step lengths must be > 0")
    if not (np.all(np.isfinite(t_dry)) and np.all(np.isfinite(t_wet))):
        raise InputError.one(_CALLER, "t_dry_c/t_wet_c", "weather must be finite at every step")
    if isinstance(setpoints, CoolingSetpoints):
        setpoints = setpoints.t_supply_c
    setpoints = dict(setpoints or {})
    eq = layout.equip
    kinds = layout.kind_array
    loops = layout.of_kind("facility_loop")
    loop_ids = [eq.ids[i] for i in loops]
    for k in setpoints:
        if k not in loop_ids:
            raise InputError.one(_CALLER, f"setpoints.{k}", f"not a facility loop; expected one of {loop_ids}")
    for k in outages or {}:
        if k not in layout.index:
            raise InputError.one(_CALLER, f"outages.{k}", "unknown equipment id")
    L = len(loops)
    r = layout.racks
    loop_pos = np.full(len(eq.ids), -1)
    loop_pos[loops] = np.arange(L)
    rack_loop = loop_pos[np.maximum(r.loop, 0)]
    if np.any(r.loop < 0) or np.any(rack_loop < 0):
        bad = r.ids[(r.loop < 0) | (rack_loop < 0)][:3]
        raise InputError.one(_CALLER, "racks", f"racks {list(bad)} are cooled by no facility loop")

    # ------------------------------------------------------------------ racks (T x R, float32)
    groups = layout.groups
    g = r.group

    def per_group(fn, default=0.0):
        return np.array([fn(info) if fn(info) is not None else default for info in groups], dtype=np.float32)[g]

    cdu_q = per_group(lambda i: i.cdu.q_max_kw if i.cdu else None, np.nan)
    cdu_app = per_group(lambda i: i.cdu.approach_k if i.cdu else None)
    cdu_flow = per_group(lambda i: i.cdu.flow_secondary_m3_h if i.cdu else None)
    cdu_pump = per_group(lambda i: i.cdu.p_pump_kw if i.cdu else None)
    cdu_tmax = per_group(lambda i: i.cdu.t_secondary_max_c if i.cdu else None, np.nan)
    door_q = per_group(lambda i: i.rdhx.q_max_kw if i.rdhx else None, np.nan)
    door_fan = per_group(lambda i: i.rdhx.p_fan_kw if i.rdhx else None)
    has_cdu = ~np.isnan(cdu_q)
    has_door = ~np.isnan(door_q)
    # Design air heat of racks without a door (for the hall air handlers): servers' air share + other IT.
    air_design = per_group(lambda i: (i.server.p_max_kw * (1 - i.server.liquid_fraction_pu) if i.server else 0.0))
    air_design = air_design * r.n_nodes + per_group(lambda i: i.rack.p_it_max_kw)
    air_design = np.where(has_door, 0.0, air_design).astype(np.float32)

    # T x R work in float32, whole arrays, in place where possible: this is the hot part of a year x every rack.
    inv_cdu = np.where(has_cdu, 1.0 / np.where(has_cdu, cdu_q, 1.0), 0.0).astype(np.float32)
    dcols = np.flatnonzero(has_door)
    to_loops = _LoopSum(rack_loop, L)

    if racks_off is not None and np.shape(racks_off) != (T, R):
        raise InputError.one(_CALLER, "racks_off", f"expected a ({T}, {R}) bool array, got shape {np.shape(racks_off)}")

    def rack_pass(ql, qa, off):
        """CDU load fraction, CDU flow fraction, rack auxiliaries (T, R) and the loop sums of one block of steps."""
        load = ql * inv_cdu  # CDU load fraction (0 without CDU)
        flow = np.clip(load, FLOW_MIN_PU, 1.0)  # CDU pump flow fraction
        aux = flow * flow
        aux *= flow
        aux *= cdu_pump  # 0 for racks without CDU
        qa_door = qa[:, dcols]
        if len(dcols):
            aux[:, dcols] += door_fan[dcols] * np.clip(qa_door / door_q[dcols], FAN_SPEED_MIN_PU, 1.0) ** 3
        if off is not None:  # pumps and fans idle at their minimum speed otherwise, heating water no rack heats
            aux[off] = 0.0
        aux_loop = to_loops(aux)
        air_loop = to_loops(qa)
        q_loop = to_loops(ql) + air_loop + aux_loop
        air_nodoor = air_loop - door_loops(qa_door)
        air_nodoor[air_nodoor <= 1e-9 * air_loop] = 0.0  # rounding left over when every rack has a door
        return load, flow, aux, q_loop, aux_loop, air_nodoor

    door_loops = _LoopSum(rack_loop[dcols], L)
    # Blocks of steps that stay in cache (a few hundred blocks for a year, not a loop over steps).
    q_racks, p_aux_loop, q_air_nodoor = np.empty((T, L)), np.empty((T, L)), np.empty((T, L))
    if rack_outputs:
        t_cdu, flow_cdu, p_aux = (np.empty((T, R), dtype=np.float32) for _ in range(3))
    block = max(1, (1 << 18) // max(R, 1))
    for s0 in range(0, T, block):
        sl = slice(s0, min(s0 + block, T))
        off = None if racks_off is None else racks_off[sl]
        load, flow, aux, q_racks[sl], p_aux_loop[sl], q_air_nodoor[sl] = rack_pass(q_liquid_kw[sl], q_air_kw[sl], off)
        if rack_outputs:
            np.multiply(flow, cdu_flow, out=flow_cdu[sl])  # m3/h, 0 without CDU
            np.multiply(load, cdu_app, out=t_cdu[sl])  # approach; the loop supply is added below
            p_aux[sl] = aux
    air_design_loop = to_loops(air_design[None, :])[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ahu_speed = np.clip(np.where(air_design_loop > 0, q_air_nodoor / air_design_loop, 0.0), FAN_SPEED_MIN_PU, 1.0)
    p_ahu = np.where(q_air_nodoor > 0, AHU_FAN_KW_PER_KW * air_design_loop * ahu_speed**3, 0.0)
    q_in = q_racks + p_ahu

    # ------------------------------------------------------------------ loops (T x L, float64)
    lm = [eq.model[i] for i in loops]
    cp = CP_WATER_KJ_KG_K
    dt_design = np.array([m.dt_design_k for m in lm])
    m_design = np.array([m.q_max_kw for m in lm]) / (cp * dt_design)  # kg/s
    m_max = np.empty((T, L))
    p_pump_rated = np.zeros(L)  # per pump, electric at the rating point
    m_pump_rated = np.zeros(L)  # per pump, kg/s
    n_pumps = np.zeros((T, L))
    for j, m in enumerate(lm):
        if m.pump_type is not None:
            pump = layout.site.parts.pump[m.pump_type]
            m_pump_rated[j] = pump.flow_rated_m3_h * WATER_RHO_KG_M3 / 3600.0
            p_pump_rated[j] = (WATER_RHO_KG_M3 * GRAVITY_M_S2 * pump.flow_rated_m3_h / 3600.0 * pump.head_rated_m
                               / 1000.0 / pump.efficiency_pu)
            n_pumps[:, j] = m.pump_count - _units_out(outages, loop_ids[j], T, m.pump_count)
            m_max[:, j] = n_pumps[:, j] * m_pump_rated[j]
        else:  # no pump modelled: design flow is available, no pump power
            m_max[:, j] = m_design[j]
    # Flow control acts on the loop heat seen through a first-order lag (FLOW_CONTROL_TAU_S): at hourly steps
    # it is the step's heat, at 0.1 s steps the pumps do not chase each GPU swing.
    a_ctl = np.exp(-dt / FLOW_CONTROL_TAU_S)[:, None] * np.ones((1, L))
    q_ctl = _affine_scan(a_ctl, (1 - a_ctl) * q_in) + np.cumprod(a_ctl, axis=0) * q_in[0]
    flow = np.minimum(np.maximum(q_ctl / (cp * dt_design), FLOW_MIN_PU * m_design), m_max)  # kg/s
    with np.errstate(divide="ignore", invalid="ignore"):
        per_pump = np.where(n_pumps > 0, flow / np.maximum(n_pumps, 1) / np.maximum(m_pump_rated, 1e-12), 0.0)
    p_pump = n_pumps * p_pump_rated * per_pump**3
    q_in = q_in + p_pump  # pump work heats the water
    volume = np.array([m.volume_m3 for m in lm])
    C = np.maximum(volume * WATER_RHO_KG_M3, V_MIN_S * m_design) * cp  # kJ/K
    dt_max = DT_LOOP_MAX_PU * dt_design
    theta_star = np.minimum(q_in / (cp * np.maximum(flow, 1e-9)), dt_max)
    a = np.exp(-dt[:, None] * flow * cp / C)
    theta0 = theta_star[0]
    theta = _affine_scan(a, (1 - a) * theta_star)
    theta += np.cumprod(a, axis=0) * theta0  # initial state: steady at the first step
    cap_transport = m_max * cp * dt_max

    # supply setpoints
    t_set = np.empty((T, L))
    for j, lid in enumerate(loop_ids):
        t_set[:, j] = _per_step(setpoints.get(lid, lm[j].t_supply_c), T, f"setpoints.{lid}")

    # ------------------------------------------------------------------ plant topology
    plant = layout.of_kind("chiller", "cooling_tower", "dry_cooler")
    plant_ids = [eq.ids[i] for i in plant]
    P = len(plant)
    ppos = {int(e): k for k, e in enumerate(plant)}
    A = layout.cooling_incidence.tocsr()
    loop_to_plant = np.zeros((L, P))  # shares
    chiller_to_sec = np.zeros((P, P))
    for j, e in enumerate(loops):
        row = A.getrow(e)
        for c, v in zip(row.indices, row.data, strict=True):
            if int(c) in ppos:
                loop_to_plant[j, ppos[int(c)]] = v
        if loop_to_plant[j].sum() == 0:
            raise InputError.one(_CALLER, f"{loop_ids[j]}.cooled_by", "facility loop reaches no heat rejection")
    for k, e in enumerate(plant):
        row = A.getrow(e)
        for c, v in zip(row.indices, row.data, strict=True):
            if int(c) in ppos:
                chiller_to_sec[k, ppos[int(c)]] = v
    models = [eq.model[i] for i in plant]
    is_chiller = np.array([isinstance(m, Chiller) for m in models], dtype=bool)
    primary = loop_to_plant.sum(axis=0) > 0
    for k, m in enumerate(models):
        if isinstance(m, Chiller) and m.condenser == "water" and chiller_to_sec[k].sum() == 0:
            raise InputError.one(_CALLER, f"{plant_ids[k]}.cooled_by", "water-cooled chiller needs a cooling tower or "
                                 "dry cooler in cooled_by")
    # groups of loops: connected through shared primary plant
    label = np.arange(L)
    for _ in range(L):
        for k in np.flatnonzero(primary):
            js = np.flatnonzero(loop_to_plant[:, k])
            label[js] = label[js].min()
    for _ in range(L):
        label = label[label]
    group_labels = np.unique(label)

    units_avail = np.zeros((T, P))
    q_unit = np.array([m.q_unit_max_kw for m in models])
    for k, m in enumerate(models):
        units_avail[:, k] = m.count - _units_out(outages, plant_ids[k], T, m.count)
    cap_units = units_avail * q_unit  # (T, P)

    # secondary (behind chillers): leaving water at design approach
    t_leave = np.full((T, P), np.nan)
    for k, m in enumerate(models):
        if isinstance(m, CoolingTower | DryCooler):
            outdoor = t_wet if isinstance(m, CoolingTower) else t_dry
            t_leave[:, k] = np.maximum(outdoor + m.approach_k, T_CONDENSER_WATER_MIN_C)

    # ------------------------------------------------------------------ per group: demand, capacity, backlog
    q_plant = np.zeros((T, P))
    q_free = np.zeros((T, P))
    cop = np.full((T, P), np.nan)
    t_cond = np.full((T, P), np.nan)
    f_free = np.zeros((T, P))
    capacity = np.zeros((T, P))
    t_set_eff = t_set.copy()
    q_dem = np.empty((T, L))
    U_loop = np.zeros((T, L))
    for lab in group_labels:
        js = np.flatnonzero(label == lab)
        ks = np.flatnonzero(loop_to_plant[js].sum(axis=0) > 0)
        # supply floor of free-cooling-only groups (towers / dry coolers directly on the loops)
        if not is_chiller[ks].any():
            q_g = q_in[:, js].sum(axis=1)
            cap_g = cap_units[:, ks].sum(axis=1)
            load = np.where(cap_g > 0, q_g / np.maximum(cap_g, 1e-9), 1.0)
            floor = np.full(T, -np.inf)
            w = cap_units[:, ks] / np.maximum(cap_g, 1e-9)[:, None]
            floor_k = []
            for k in ks:
                m = models[k]
                outdoor = t_wet if isinstance(m, CoolingTower) else t_dry
                floor_k.append(outdoor + m.approach_k * np.minimum(load, 1.0))
            floor = np.where(cap_g > 0, (w * np.stack(floor_k, axis=1)).sum(axis=1), np.max(np.stack(floor_k, 1), 1))
            t_set_eff[:, js] = np.maximum(t_set[:, js], floor[:, None])
        # stored heat and demand, per loop
        E = C[js] * (t_set_eff[:, js] + theta[:, js])  # kJ at step ends
        E_prev = np.vstack([C[js] * (t_set_eff[0, js] + theta0[js]), E[:-1]])
        q_dem[:, js] = q_in[:, js] - (E - E_prev) / dt[:, None]
        # group mixing temperatures (flow-weighted)
        fl = flow[:, js]
        fsum = np.maximum(fl.sum(axis=1), 1e-9)
        ts_g = (fl * t_set_eff[:, js]).sum(axis=1) / fsum
        tr_g = (fl * (t_set_eff[:, js] + theta[:, js])).sum(axis=1) / fsum
        rng = tr_g - ts_g
        # capacity of each primary unit
        for k in ks:
            m = models[k]
            if isinstance(m, Chiller):
                sec = np.flatnonzero(chiller_to_sec[k])
                if m.condenser == "air":
                    t_in = t_dry
                else:
                    t_in = (t_leave[:, sec] * chiller_to_sec[k, sec]).sum(axis=1) / chiller_to_sec[k, sec].sum()
                t_cond[:, k] = t_in
                if m.free_cooling_approach_k is not None:
                    t_fc = t_in + m.free_cooling_approach_k
                    with np.errstate(divide="ignore", invalid="ignore"):
                        f = np.where(rng > 1e-9, (tr_g - t_fc) / np.where(rng > 1e-9, rng, 1.0),
                                     (t_fc <= ts_g).astype(float))
                    f_free[:, k] = np.clip(f, 0.0, 1.0)
                lift = np.maximum(t_in + m.approach_condenser_k - ts_g, LIFT_MIN_K)
                lift_rated = m.t_condenser_rated_c + m.approach_condenser_k - m.t_supply_rated_c
                cop[:, k] = m.cop_rated * (ts_g + KELVIN) / (m.t_supply_rated_c + KELVIN) * lift_rated / lift
                capacity[:, k] = cap_units[:, k]
                if len(sec):
                    cond_factor = 1.0 + (1.0 - f_free[:, k]) / cop[:, k]
                    # each secondary unit's capacity is split among the chillers it serves by their capacity
                    lim = np.full(T, np.inf)
                    for s in sec:
                        users = np.flatnonzero(chiller_to_sec[:, s])
                        claim = (chiller_to_sec[users, s] * cap_units[:, users]).sum(axis=1)
                        mine = chiller_to_sec[k, s] * cap_units[:, k]
                        alloc = np.where(claim > 0, cap_units[:, s] * mine / np.maximum(claim, 1e-9), 0.0)
                        lim = np.minimum(lim, alloc / chiller_to_sec[k, s])
                    capacity[:, k] = np.minimum(capacity[:, k], lim / cond_factor)
            else:
                capacity[:, k] = cap_units[:, k]
        cap_g = np.minimum(capacity[:, ks].sum(axis=1), cap_transport[:, js].sum(axis=1))
        qd_g = q_dem[:, js].sum(axis=1)
        U = _lindley((qd_g - cap_g) * dt)  # kJ
        U_prev = np.concatenate([[0.0], U[:-1]])
        q_rej_g = qd_g - (U - U_prev) / dt
        # spread: backlog by heat capacity (common temperature rise), plant load by capacity
        U_loop[:, js] = U[:, None] * (C[js] / C[js].sum())[None, :]
        share = capacity[:, ks] / np.maximum(capacity[:, ks].sum(axis=1), 1e-9)[:, None]
        share = np.where(capacity[:, ks].sum(axis=1)[:, None] > 0, share, 1.0 / len(ks))
        q_plant[:, ks] = q_rej_g[:, None] * share

    # per-loop outputs of the balance
    U_prev_loop = np.vstack([np.zeros((1, L)), U_loop[:-1]])
    q_rej_loop = q_dem - (U_loop - U_prev_loop) / dt[:, None]
    E_loop = C * (t_set_eff + theta) + U_loop
    E_start = C * (t_set_eff[0] + theta0)
    q_stored_loop = q_in - q_rej_loop
    q_unmet_loop = np.maximum(q_dem - q_rej_loop, 0.0)
    t_supply = t_set_eff + U_loop / C
    t_return = t_supply + theta

    # ------------------------------------------------------------------ plant performance
    q_chil = np.where(is_chiller, q_plant, 0.0)
    q_free = np.where(is_chiller, q_chil * f_free, q_plant)
    q_mech = q_chil - np.where(is_chiller, q_free, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_comp = np.where(is_chiller & (q_mech > 0), q_mech / np.where(np.isnan(cop), 1.0, cop), 0.0)
    units_on = np.zeros((T, P))
    p_fan = np.zeros((T, P))
    for k, m in enumerate(models):
        if isinstance(m, Chiller):
            staged = q_chil[:, k] if m.condenser == "air" else q_mech[:, k]
            n_on = np.minimum(np.ceil(staged / m.q_unit_max_kw - 1e-9), units_avail[:, k])
            n_on = np.maximum(n_on, 0.0)
            units_on[:, k] = n_on
            if m.p_fan_kw > 0:
                with np.errstate(divide="ignore", invalid="ignore"):
                    spd = np.clip(np.where(n_on > 0, staged / (np.maximum(n_on, 1) * m.q_unit_max_kw), 0.0),
                                  FAN_SPEED_MIN_PU, 1.0)
                p_fan[:, k] = np.where(n_on > 0, n_on * m.p_fan_kw * spd**3, 0.0)
    # condenser heat of chillers -> secondary towers / dry coolers
    q_cond = q_chil + p_comp  # evaporator heat + compressor work (condenser fans of air-cooled units reject to air)
    q_sec = q_cond @ chiller_to_sec  # (T, P)
    sec_mask = chiller_to_sec.sum(axis=0) > 0
    q_plant = np.where(sec_mask, q_plant + q_sec, q_plant)
    q_free = np.where(is_chiller, q_free, q_plant)
    evap = np.zeros((T, P))
    blow = np.zeros((T, P))
    drift = np.zeros((T, P))
    for k, m in enumerate(models):
        if isinstance(m, CoolingTower | DryCooler):
            outdoor = t_wet if isinstance(m, CoolingTower) else t_dry
            n = units_avail[:, k]
            load = np.where(n > 0, q_plant[:, k] / np.maximum(n * m.q_unit_max_kw, 1e-9), 0.0)
            if sec_mask[k]:
                leave = t_leave[:, k]
            else:  # serving loops directly: the supply in force
                js = np.flatnonzero(loop_to_plant[:, k])
                leave = t_set_eff[:, js].mean(axis=1)
            t_cond[:, k] = leave
            spd = _fan_speed(load, m.approach_k, leave - outdoor)
            running = (q_plant[:, k] > 0) & (n > 0)
            units_on[:, k] = np.where(running, n, 0.0)
            p_fan[:, k] = np.where(running, n * m.p_fan_kw * spd**3, 0.0)
            if isinstance(m, CoolingTower):
                qk = np.maximum(q_plant[:, k], 0.0)
                evap[:, k] = EVAP_M3_H_PER_KW * qk
                drift[:, k] = m.drift_pu * qk * 3600.0 / (WATER_RHO_KG_M3 * CP_WATER_KJ_KG_K * TOWER_RANGE_K)
                blow[:, k] = np.maximum(evap[:, k] / (m.cycles_of_concentration - 1.0) - drift[:, k], 0.0)
    p_plant = p_comp + p_fan
    water_plant = evap + blow + drift

    # ------------------------------------------------------------------ consumers and totals
    consumers = layout.consumers
    C_n = len(consumers)
    p_consumer = np.zeros((T, C_n))
    cpos = {int(e): c for c, e in enumerate(consumers)}
    for j, e in enumerate(loops):
        if int(e) in cpos:
            p_consumer[:, cpos[int(e)]] += p_pump[:, j] + p_ahu[:, j]
    for k, e in enumerate(plant):
        if int(e) in cpos:
            p_consumer[:, cpos[int(e)]] += p_plant[:, k]
    p_cooling = p_plant.sum(axis=1) + p_pump.sum(axis=1) + p_ahu.sum(axis=1) + p_aux_loop.sum(axis=1)

    # CDU secondary supply: loop supply + approach x load (approach already in t_cdu)
    t_sup32 = t_supply.astype(np.float32)
    for j in range(L if rack_outputs else 0):  # racks of a loop are usually one contiguous block: add in place, no T x R temporary
        cols = np.flatnonzero(rack_loop == j)
        if len(cols) and cols[-1] - cols[0] + 1 == len(cols):
            t_cdu[:, cols[0]:cols[-1] + 1] += t_sup32[:, j:j + 1]
        elif len(cols):
            t_cdu[:, cols] += t_sup32[:, j:j + 1]
    if rack_outputs:
        t_cdu[:, ~has_cdu] = np.nan
    else:
        t_cdu = flow_cdu = p_aux = None

    to_m3_h = 3600.0 / WATER_RHO_KG_M3
    return CoolingResult(
        loop_ids=loop_ids, plant_ids=plant_ids, plant_kind=[str(kinds[i]) for i in plant],
        consumer_equip=np.asarray(consumers), t_cdu_max_c=cdu_tmax,
        t_cdu_supply_c=t_cdu, flow_cdu_m3_h=flow_cdu, p_rack_aux_kw=p_aux,
        q_loop_kw=q_in, q_rejected_loop_kw=q_rej_loop, q_stored_loop_kw=q_stored_loop,
        e_stored_loop_kwh=(E_loop - E_start) / 3600.0, q_unmet_loop_kw=q_unmet_loop,
        e_unmet_loop_kwh=U_loop / 3600.0, t_supply_c=t_supply, t_supply_set_c=t_set_eff, t_return_c=t_return,
        flow_loop_m3_h=flow * to_m3_h, p_pump_kw=p_pump, p_ahu_kw=p_ahu,
        p_rack_aux_loop_kw=p_aux_loop,
        q_plant_kw=q_plant, q_free_kw=q_free, units_on=units_on, units_available=units_avail,
        capacity_kw=np.where(primary, capacity, cap_units), cop=cop, t_condenser_in_c=t_cond,
        p_compressor_kw=p_comp, p_fan_kw=p_fan, p_plant_kw=p_plant,
        evaporation_m3_h=evap, blowdown_m3_h=blow, drift_m3_h=drift, water_plant_m3_h=water_plant,
        p_consumer_kw=p_consumer,
        p_cooling_kw=p_cooling, water_m3_h=water_plant.sum(axis=1),
        q_generated_kw=q_in.sum(axis=1), q_rejected_kw=q_rej_loop.sum(axis=1),
        q_stored_kw=q_stored_loop.sum(axis=1), q_unmet_kw=q_unmet_loop.sum(axis=1),
    )
