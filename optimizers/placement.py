"""Job placement: a queue of jobs onto the free GPU nodes of a site, under power limits at every level of
the power tree, heat limits at every CDU, facility loop and heat-rejection plant, optionally keeping an N-1
reserve.

Decision unit: the *segment*, the racks of one GPU array (8-rack, 512-GPU network pod) that hang from one
leaf distribution unit (busway/PDU) and one facility loop. Every rack of a segment loads exactly the same
equipment, so placing whole nodes on segments is exact for every power and heat limit above the rack; the
array-level answer (job x array GPUs) is the sum over an array's segments (colossus-1: 196 arrays, 341
segments). Rack-level limits (rack power, in-rack CDU) are enforced per free node slot: a job may use a
segment only if its node power and liquid heat fit the tightest slot of every rack in it
(`min((p_rack_max - p_rack_now) / free_nodes)`), so the fill of segments into racks can never break them.
This is conservative only when a rack is already loaded unevenly; stated in `attrs["rack_limit_rule"]`.

Model (row families named after what they state; `LinearModel` keeps the matrix and the Pyomo mirror):

    job_nodes_admitted     sum_s x[j,s] = nodes_j * y[j]                      (all or nothing)
    segment_free_nodes     sum_j x[j,s] <= free_nodes[s]
    hall_locality_choice   sum_h zh[j,h] = y[j]             (jobs with locality "hall")
    hall_locality_link     sum_{s in h} x[j,s] <= nodes_j * zh[j,h]
    array_locality_choice  sum_a za[j,a] = y[j]             (jobs with locality "array")
    array_locality_link    sum_{s in a} x[j,s] <= nodes_j * za[j,a]
    equipment_power_limit  sum_{j,s} p_node_j * share[s,e] * x[j,s] <= (1 - reserve_e) * p_max_e - p_now_e
    cdu_heat_limit         sum_j q_liquid_j * x[j,s] <= CDU headroom of the racks of s
    loop_heat_limit        sum_{j,s in loop} q_node_j * x[j,s] <= q_max_loop - q_now_loop
    heat_rejection_limit   share of loop heat on each chiller plant / dry cooler <= firm capacity - now
    balanced_headroom      new_e / cap_e + m <= (cap_e - p_now_e) / cap_e     (m = smallest headroom)

`share[s, e]` is the share of a segment's load that equipment e carries: the layout's sparse rack->feeder
and child->parent incidence matrices multiplied down the power levels (2N feeds split 1/k). Losses of the
stages between rack and equipment are not added (< 2 % at these stages; the cross-check reports the
loaded figures from the same aggregation).

Objective (weighted lexicographic): maximise sum_j priority_j * gpus_j * duration_h_j * y[j], then the
smallest power headroom m (weight 1/20 of the smallest job value, so it never outweighs admitting a job).

Solving (`solve_placement`), and why the N-1 reserve case was hard
-----------------------------------------------------------------
Benchmark (benchmarks/bench_placement.py: colossus-1, 200 jobs, half the GPU nodes busy, 1 % gap, 20 s
limit; 2 shared cores, each figure run twice). Before: no reserve 5.4 / 4.2 s, gap 0.44 %, 13,100,672;
25 % reserve stopped at the 20 s limit, gap 3.42 %, 12,227,456 (24.7 / 24.9 s in all, LP bound 12,646,016).

Diagnosis (reserve case): the bound was not the problem. The (job x hall) master below, without margin,
is a relaxation; solved to 0.01 % it gives 12,589,696 (bound 12,590,951), against the LP bound 12,646,016,
so a 1 % gap needs an incumbent >= 12.52 M. The greedy start gave 12,227,456 and HiGHS found nothing
better in 120 s (nor with mip_heuristic_effort 0.3, presolve off, or the hall-by-hall LNS: all still
12,227,456 / 3.4 %). The reserve makes each transformer a unit (48 units, ~1,000 kW room for ~140 free
nodes), so halls are bins in nodes *and* kW; four 1,024-node and two 512-node jobs admit only if the right
pairs share a hall (a 1,024-node job at 6.98 kW per node and a 512-node job at 7.59 kW fit hall-4; with
the 1,024-node job at 7.54 kW they miss hall-3 by ~15 nodes' power). The greedy rules and HiGHS's
heuristics place the big jobs one by one and lose a 512-node job (1.1 M). An LP dive (fix the biggest
split job to the hall with the best LP) fell to 11.0-12.3 M: the LP spreads the other big jobs over halls
and does not see which pairs fit. Restricting the full MILP to the LP's jobs found 12.51 M in 20 s.

Kept:
  * hall master (`hall_master`, `hall_master_start`): a MILP over y[j] and w[j,h] only (~1,000 columns,
    solved by HiGHS to 0.1 % in ~1 s) where each hall is one bin described by valid rows: free nodes,
    power, and for levels mu at the quantiles of the job powers sum_j min(p_j, mu) nodes_j w[j,h] <=
    sum_{u in h} min(R_u, mu F_u) (valid per unit: sum min(p, mu) x <= sum p x <= R_u and <= mu sum x <=
    mu F_u), so a hall whose units differ in kW per free node is not over-counted; rows that load whole
    halls alike stay rows over halls; array jobs only take halls with an array they fit. Each unit's room
    is cut by 0.5 node of the hungriest job for the integer split. Its jobs are placed in their halls by
    the greedy rule (biggest first), a restricted MILP (the model with y <= master, hall and array
    binaries fixed to the master's hall) places what the greedy misses, then the greedy fills the rest.
    Reserve case: 12,546,816 (gap 0.79 % to the LP bound) in ~2 s. Margin 0 gives 12,575,616 but its
    restricted MILP took 6 s on seeds 1-2; margin 1 node misses the gap on seed 0 (12,515,456), so the
    master is retried at margin 0 when the first start misses the gap.
  * branch and bound skipped when the start is feasible and within rel_gap of the LP relaxation bound
    (`lp_bound`, the same model's relaxation, already solved for the guide and duals): HiGHS only repeats
    that LP at its root (presolve 3.8 s + root LP 4.8 s, then "optimal" at 0.79 %). `termination` says so.
  * the master without margin as a bound: every row of it is implied by the full model, so its HiGHS dual
    bound (value; m <= m_ub for the headroom term) bounds the MILP. It is used when tighter than the LP:
    with 35 % reserve the LP bound is 9,572,907 but the master optimum is 9,456,000 (bound 9,456,941 at
    0.01 %), so no start could be within 1 % of the LP; the start 9,404,160 is 0.64 % from the master
    bound (8.8 s in all; before these changes: 21.0 s, gap 2.42 %, 9,329,280; with the LP bound only,
    HiGHS ran out of time before its root bound, gap "inf"). After branch and bound the reported gap is
    the smaller of HiGHS's and the one against this bound.
  * LP relaxation without simplex scaling (`RELAX_HIGHS_OPTIONS`): 3,000 instead of 15,000 dual simplex
    iterations, 0.5 s instead of 2.9 s (reserve case; seeds 1-3: 1.2-5.7 s -> 0.5-0.7 s), same optimum,
    duals equal to 1e-7. (Other scalings 2, 3: 2.9 s; 4: 5.0 s; strategy 2: 2.1 s; ipm 5.4 s; pdlp 9.2 s.)
  * greedy starts ranked by the model objective (value, then headroom), plus one most-room run not led
    by the LP, so a start that ends the solve keeps the headroom tie-break.
After: no reserve 1.58 / 1.59 s, gap 0.06 %, 13,150,144; 25 % reserve 3.71 / 3.75 s, gap 0.79 %,
12,546,816 (both without branch and bound). Seeds 1-3 (reserve 25 %): gaps 0.27-0.40 % (old code:
0.46-0.87 %). Other cases, all within 1 % in 1.4-8.8 s: busy 30 % / 70 %, 300 jobs, reserve 15 %, 35 %,
100 jobs, seeds 5-6.

Not kept / not needed: VUB rows off (LP 0.7 s but bound 12,661,977: start gap 0.91 %); dropping the
headroom term (LP 1.4 s; changes the objective); hall-by-hall LNS (`lns`, no gain, +6 s); HiGHS
mip_heuristic_effort 0.3 / presolve off (no better incumbent in 20 s); the unit-level master with
continuous x (same bound, HiGHS needs 15-56 s to find 12.55-12.58 M). Left: array-locality jobs still
have a node column per (job, segment) (14,760 of 30,911 columns); one per (job, array piece) would
shrink the model when branch and bound does run.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pyomo.environ as pyo
import scipy.sparse as sp
import xarray as xr

from optimizers.common import (
    INF,
    HighsHandle,
    LinearModel,
    SolveInfo,
    elastic_resolve,
    raise_if_out_of_time,
    solve,
)
from twin.errors import InfeasibleError, InputError
from twin.layout import SiteLayout

_SRC = "<placement jobs>"
Locality = Literal["none", "hall", "array"]
RESERVE_KINDS_DEFAULT = ("substation", "transformer")


# ------------------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class PlacementJob:
    """One job in the queue. `p_gpu_kw` is the job's average per-GPU board power while it runs."""

    name: str
    gpus: int
    p_gpu_kw: float
    priority: float = 1.0
    duration_h: float = 1.0
    locality: Locality = "hall"
    gpu_type: str | None = None  # catalog GPU; None = any
    required: bool = False  # True: the placement is infeasible unless this job is placed


@dataclass(frozen=True)
class SiteState:
    """What is already running: free GPU nodes and electrical load (kW, rack input) per rack, plus load of
    equipment fed outside the racks (cooling plant, kW) per equipment."""

    free_nodes: np.ndarray  # int, per rack
    p_rack_kw: np.ndarray  # float, per rack
    p_own_kw: np.ndarray | None = None  # float, per equipment (cooling plant electrical load)

    @classmethod
    def empty(cls, layout: SiteLayout, p_other_racks_pu: float | None = None) -> SiteState:
        """Every GPU node free; non-GPU racks (network, storage, CPU) at their typical load."""
        r = layout.racks
        p = np.zeros(len(r))
        if p_other_racks_pu is None:
            typ = np.array([g.rack.p_it_typical_pu for g in layout.groups])[r.group]
        else:
            typ = np.full(len(r), float(p_other_racks_pu))
        other = r.role != 0
        p[other] = r.p_max_kw[other] * typ[other]
        return cls(free_nodes=r.n_nodes.copy(), p_rack_kw=p)

    @classmethod
    def random(cls, layout: SiteLayout, busy_pu: float, p_gpu_kw: float, seed: int = 0) -> SiteState:
        """A site with a random `busy_pu` share of GPU nodes taken (whole racks' prefixes), each busy node
        drawing `p_gpu_kw` per GPU plus its server base load. For benchmarks and demos."""
        st = cls.empty(layout)
        rng = np.random.default_rng(seed)
        r = layout.racks
        busy = np.where(r.role == 0, rng.binomial(r.n_nodes, busy_pu), 0)
        p_node = node_power_kw(layout, np.full(len(r), p_gpu_kw), rack_groups=r.group)
        return cls(free_nodes=r.n_nodes - busy, p_rack_kw=st.p_rack_kw + busy * p_node)


@dataclass(frozen=True)
class PlacementOptions:
    reserve_pu: float = 0.0  # N-1 style reserve kept on the `reserve_kinds` equipment
    reserve_kinds: tuple[str, ...] = RESERVE_KINDS_DEFAULT
    limits_kw: dict[str, float] = field(default_factory=dict)  # override of equipment limits (curtailment)
    heat_rejection_derate_pu: float = 1.0  # heat wave: firm chiller capacity times this
    headroom_weight_pu: float = 0.05  # weight of the smallest headroom, fraction of the smallest job value
    time_limit_s: float = 20.0
    rel_gap: float = 0.01
    relaxation_duals: bool = True  # solve the LP relaxation as well, for the prices of the limits
    highs_options: dict = field(default_factory=dict)  # extra HiGHS options for the MIP
    lns: bool = False  # improve the greedy start hall by hall (improve_by_hall) before the MIP
    vub_cuts: bool = True  # variable-upper-bound rows linking node counts to the locality binaries
    hall_master: bool = True  # warm start from the (job, hall) master MILP as well as the greedy rules
    master_margin_nodes: float = 0.5  # hall master: each unit's room less this many nodes of the largest job


# ------------------------------------------------------------------------------------------------ physics


def node_power_kw(layout: SiteLayout, p_gpu_kw: np.ndarray, rack_groups: np.ndarray) -> np.ndarray:
    """AC input of one server: GPUs at `p_gpu_kw` each plus the non-GPU base load, through its PSUs
    (efficiency read off the catalog PSU curve at the resulting load)."""
    out = np.zeros(len(p_gpu_kw))
    for g, info in enumerate(layout.groups):
        sel = rack_groups == g
        if info.server is None or not sel.any():
            continue
        srv = info.server
        dc = srv.gpus_per_node * np.asarray(p_gpu_kw)[sel] + srv.p_base_kw
        if srv.psu_type and srv.psu_type in layout.site.parts.psu:
            psu = layout.site.parts.psu[srv.psu_type]
            eta = psu.efficiency_at(dc / (psu.p_unit_max_kw * srv.psu_count))
        else:
            eta = 1.0
        out[sel] = dc / eta
    return out


def reach_matrix(layout: SiteLayout) -> sp.csr_matrix:
    """racks x equipment: share of each rack's load carried by each load-side equipment (all levels)."""
    R = layout.rack_power_incidence.tocsr()
    A = layout.power_incidence.tocsr()
    total = R.copy()
    cur = R
    for _ in range(len(layout.power_levels) + 1):
        cur = cur @ A
        if cur.nnz == 0:
            break
        total = total + cur
    return total.tocsr()


# ------------------------------------------------------------------------------------------------ problem


@dataclass
class PlacementProblem:
    """Everything the builder needs, in arrays over jobs (j), segments (s), pairs (j, s) and limits."""

    layout: SiteLayout
    jobs: list[PlacementJob]
    state: SiteState
    options: PlacementOptions
    # jobs
    nodes: np.ndarray
    p_node_kw: np.ndarray
    q_liquid_kw: np.ndarray
    value: np.ndarray
    # segments
    seg_racks: list[np.ndarray]  # racks of each segment (with free nodes)
    seg_rack_index: np.ndarray  # segment of each rack, -1 if none
    seg_free: np.ndarray
    seg_hall: np.ndarray
    seg_array: np.ndarray
    seg_loop: np.ndarray
    seg_cdu_headroom_kw: np.ndarray
    seg_share: sp.csr_matrix  # segments x equipment (power)
    # pairs
    pair_job: np.ndarray
    pair_seg: np.ndarray
    # limits
    power_equip: np.ndarray  # equipment indices with a power limit row
    power_cap_kw: np.ndarray  # (1 - reserve) * p_max (or override)
    power_now_kw: np.ndarray
    loops: np.ndarray  # equipment indices of facility loops
    loop_cap_kw: np.ndarray
    loop_now_kw: np.ndarray
    rejection: np.ndarray  # heat-rejection equipment fed directly by loops
    rejection_cap_kw: np.ndarray
    rejection_now_kw: np.ndarray
    loop_to_rejection: np.ndarray  # loops x rejection (share of each loop's heat)
    hall_jobs: np.ndarray
    array_jobs: np.ndarray
    arrays: np.ndarray  # array ids that have segments
    not_placeable: dict[str, str]  # job -> why it cannot be placed at all
    liquid_fraction_pu: float = 0.8
    # model layer (filled by `reduce_model`): units = segments merged where every active limit is alike
    active: dict = field(default_factory=dict)  # limit family -> positions of its rows kept in the model
    unit_of_seg: np.ndarray | None = None
    unit_hall: np.ndarray | None = None
    unit_free: np.ndarray | None = None
    unit_cdu_headroom_kw: np.ndarray | None = None
    unit_G: dict = field(default_factory=dict)  # family -> units x active rows (kW per kW)
    u_job: np.ndarray | None = None  # pairs (job, unit) of jobs without array locality
    u_unit: np.ndarray | None = None
    s_pair: np.ndarray | None = None  # indices into (pair_job, pair_seg) of array-locality jobs
    za_job: np.ndarray | None = None  # candidate (job, array position) pairs of array-locality jobs
    za_arr: np.ndarray | None = None
    m_ub: float = 1.0
    seg_feeder: np.ndarray | None = None

    @property
    def value_scale(self) -> float:
        """Objective scaling (HiGHS prefers costs near 1): the mean job value."""
        return float(self.value.mean())


def _firm_q_kw(model) -> float:
    """Firm heat-rejection capacity: N+1 plants count one unit fewer."""
    n = model.count - (1 if model.redundancy == "N+1" and model.count > 1 else 0)
    return float(model.q_unit_max_kw * n)


def prepare(layout: SiteLayout, jobs: list[PlacementJob], state: SiteState,
            options: PlacementOptions | None = None) -> PlacementProblem:
    """Check the inputs and reduce the site to segments, eligible (job, segment) pairs and limit rows."""
    opt = options or PlacementOptions()
    r = layout.racks
    nr, ne = len(r), len(layout.equip.ids)
    if not jobs:
        raise InputError.one(_SRC, "jobs", "the queue is empty; expected at least one job")
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise InputError.one(_SRC, "jobs", "job names must be unique")
    for i, j in enumerate(jobs):
        if j.gpus <= 0:
            raise InputError.one(_SRC, f"jobs[{i}].gpus", f"{j.gpus}; expected a positive GPU count")
        if not (j.p_gpu_kw > 0 and np.isfinite(j.p_gpu_kw)):
            raise InputError.one(_SRC, f"jobs[{i}].p_gpu_kw", f"{j.p_gpu_kw}; expected a positive power per GPU")
        if j.priority <= 0 or j.duration_h <= 0:
            raise InputError.one(_SRC, f"jobs[{i}]", "priority and duration_h must be positive")
        if j.locality not in ("none", "hall", "array"):
            raise InputError.one(_SRC, f"jobs[{i}].locality", f"{j.locality!r}; expected none, hall or array")
    if not 0 <= opt.reserve_pu < 1:
        raise InputError.one(_SRC, "options.reserve_pu", f"{opt.reserve_pu}; expected 0 <= reserve < 1")
    for k in opt.limits_kw:
        if k not in layout.index:
            raise InputError.one(_SRC, f"options.limits_kw.{k}", "unknown equipment id")
    free = np.asarray(state.free_nodes, dtype=np.int64)
    p_rack = np.asarray(state.p_rack_kw, float)
    if free.shape != (nr,) or p_rack.shape != (nr,):
        raise InputError.one(_SRC, "state", f"free_nodes and p_rack_kw need one value per rack ({nr})")
    if np.any(free < 0) or np.any(free > r.n_nodes):
        raise InputError.one(_SRC, "state.free_nodes", "expected 0 <= free nodes <= nodes of the rack")

    # ---- per-rack slot limits (rack power, in-rack CDU)
    groups = layout.groups
    gpn_rack = np.array([g.server.gpus_per_node if g.server else 0 for g in groups])[r.group]
    lf_rack = np.array([g.server.liquid_fraction_pu if g.server else 0.0 for g in groups])[r.group]
    cdu_q = np.array([g.cdu.q_max_kw if g.cdu else np.inf for g in groups])[r.group]
    gpu_type_rack = np.array([g.server.gpu_type if g.server else "" for g in groups])[r.group]
    with np.errstate(divide="ignore", invalid="ignore"):
        q_liq_now = lf_rack * p_rack
        slot_p = np.where(free > 0, (r.p_max_kw - p_rack) / free, -np.inf)
        slot_q = np.where(free > 0, (cdu_q - q_liq_now) / free, -np.inf)

    # ---- segments: (array, feeder, loop) over GPU racks with free nodes
    use = (r.role == 0) & (free > 0)
    key = np.stack([r.array, r.feeder, r.loop], axis=1)[use]
    uniq, seg_of = np.unique(key, axis=0, return_inverse=True)
    seg_of = seg_of.ravel()
    ns = len(uniq)
    rack_idx = np.flatnonzero(use)
    seg_rack_index = np.full(nr, -1)
    seg_rack_index[rack_idx] = seg_of
    order = np.argsort(seg_of, kind="stable")
    bounds = np.searchsorted(seg_of[order], np.arange(ns + 1))
    seg_racks = [rack_idx[order[bounds[s]:bounds[s + 1]]] for s in range(ns)]
    seg_free = np.bincount(seg_of, weights=free[use], minlength=ns).astype(np.int64)
    seg_hall = r.hall[rack_idx[order[bounds[:-1]]]] if ns else np.zeros(0, int)
    seg_array = uniq[:, 0]
    seg_loop = uniq[:, 2]
    seg_slot_p = np.full(ns, np.inf)
    seg_slot_q = np.full(ns, np.inf)
    np.minimum.at(seg_slot_p, seg_of, slot_p[use])
    np.minimum.at(seg_slot_q, seg_of, slot_q[use])
    seg_cdu = np.bincount(seg_of, weights=np.where(np.isfinite(cdu_q[use]), cdu_q[use] - q_liq_now[use], 1e9),
                          minlength=ns)
    seg_gpu_type = gpu_type_rack[rack_idx[order[bounds[:-1]]]] if ns else np.zeros(0, str)
    seg_group = r.group[rack_idx[order[bounds[:-1]]]] if ns else np.zeros(0, int)
    seg_gpn = gpn_rack[rack_idx[order[bounds[:-1]]]] if ns else np.zeros(0, int)
    if ns and np.unique(seg_gpn).size > 1:
        raise InputError.one(_SRC, "site", "placement needs one GPU count per node across the site's GPU racks")
    gpn = int(seg_gpn[0]) if ns else 8
    lf = float(lf_rack[rack_idx[0]]) if ns else 0.8

    # ---- jobs
    nj = len(jobs)
    nodes = np.array([-(-j.gpus // gpn) for j in jobs], dtype=np.int64)
    p_gpu = np.array([j.p_gpu_kw for j in jobs])
    rep_group = int(np.bincount(seg_group).argmax()) if ns else 0
    p_node = node_power_kw(layout, p_gpu, np.full(nj, rep_group))
    q_liq = lf * p_node
    value = np.array([j.priority * j.gpus * j.duration_h for j in jobs])

    # ---- eligible pairs: GPU type, rack slot power and CDU slot heat, array locality size
    elig = (p_node[:, None] <= seg_slot_p[None, :] + 1e-9) & (q_liq[:, None] <= seg_slot_q[None, :] + 1e-9)
    want_type = np.array([j.gpu_type or "" for j in jobs])
    elig &= (want_type[:, None] == "") | (want_type[:, None] == seg_gpu_type[None, :])
    pair_job, pair_seg = np.nonzero(elig)

    # ---- power limits: every load-side equipment with a rating
    share_rack = reach_matrix(layout)
    seg_share = share_rack[rack_idx[order[bounds[:-1]]]] if ns else sp.csr_matrix((0, ne))
    p_own = np.zeros(ne) if state.p_own_kw is None else np.asarray(state.p_own_kw, float)
    p_now = layout.up(p_rack, p_own)
    kinds = layout.kind_array
    cap = layout.p_max_kw.copy()
    reserve = np.where(np.isin(kinds, opt.reserve_kinds), opt.reserve_pu, 0.0)
    cap = cap * (1.0 - reserve)
    for k, v in opt.limits_kw.items():
        cap[layout.index[k]] = float(v)
    power_equip = np.flatnonzero(layout.load_side & (cap > 0) & np.isfinite(cap))

    # ---- heat limits: loops and the heat rejection they feed directly
    loops = layout.of_kind("facility_loop")
    q_rack_now = p_rack  # all electrical input of a rack ends as heat in facility water (cold plate + doors)
    loop_now = (layout.rack_cooling_incidence.T @ q_rack_now)[loops]
    loop_cap = np.array([layout.equip.model[i].q_max_kw for i in loops], float)
    C = layout.cooling_incidence.tocsr()[loops]  # loops x equip
    rej = np.unique(C.indices)
    rejection = rej[np.isin(kinds[rej], ("chiller", "dry_cooler", "cooling_tower"))]
    l2r = C[:, rejection].toarray()
    rej_cap = np.array([_firm_q_kw(layout.equip.model[i]) for i in rejection]) * opt.heat_rejection_derate_pu
    rej_now = l2r.T @ loop_now

    # ---- jobs that cannot be placed at all, whatever else happens
    why: dict[str, str] = {}
    free_pairs = np.zeros(nj)
    np.add.at(free_pairs, pair_job, seg_free[pair_seg])
    for jj, job in enumerate(jobs):
        segs = pair_seg[pair_job == jj]
        if segs.size == 0:
            why[job.name] = _no_slot_reason(job, p_node[jj], q_liq[jj], seg_slot_p, seg_slot_q, seg_gpu_type)
            continue
        g = nodes[jj] * gpn
        if job.locality == "hall":
            per_h = np.bincount(seg_hall[segs], weights=seg_free[segs], minlength=len(layout.hall_ids))
            if per_h.max() < nodes[jj]:
                h = int(per_h.argmax())
                why[job.name] = (f"job '{job.name}' needs {g:,} GPUs within one hall, but the hall with the most "
                                 f"free GPUs it can use, {layout.hall_ids[h]}, has {int(per_h[h]) * gpn:,}: short by "
                                 f"{g - int(per_h[h]) * gpn:,} GPUs")
        elif job.locality == "array":
            per_a = np.bincount(seg_array[segs], weights=seg_free[segs])
            if per_a.max() < nodes[jj]:
                why[job.name] = (f"job '{job.name}' needs {g:,} GPUs within one array (pod), but the most any array "
                                 f"has free is {int(per_a.max()) * gpn:,}: short by {g - int(per_a.max()) * gpn:,} GPUs")
        elif free_pairs[jj] < nodes[jj]:
            why[job.name] = (f"job '{job.name}' needs {g:,} GPUs, but only {int(free_pairs[jj]) * gpn:,} free GPUs "
                             f"can take it: short by {g - int(free_pairs[jj]) * gpn:,} GPUs")
    hall_jobs = np.array([jj for jj, j in enumerate(jobs) if j.locality == "hall"], dtype=np.int64)
    array_jobs = np.array([jj for jj, j in enumerate(jobs) if j.locality == "array"], dtype=np.int64)
    prob = PlacementProblem(
        layout, list(jobs), state, opt, nodes, p_node, q_liq, value,
        seg_racks, seg_rack_index, seg_free, seg_hall, seg_array, seg_loop, seg_cdu, seg_share.tocsr(),
        pair_job, pair_seg, power_equip, cap[power_equip], p_now[power_equip],
        loops, loop_cap, loop_now, rejection, rej_cap, rej_now, l2r, hall_jobs, array_jobs,
        np.unique(seg_array), why, lf,
    )
    prob.seg_feeder = uniq[:, 1] if ns else np.zeros(0, int)
    reduce_model(prob)
    return prob


def _no_slot_reason(job, p_node, q_liq, slot_p, slot_q, seg_type) -> str:
    if job.gpu_type and not np.any(seg_type == job.gpu_type):
        return f"job '{job.name}' asks for GPU type {job.gpu_type!r}, which no rack with free nodes holds"
    if slot_p.size == 0:
        return f"job '{job.name}' cannot be placed: no GPU node is free"
    if p_node > slot_p.max():
        return (f"job '{job.name}' needs {p_node:.2f} kW per node, but no rack with free nodes can give more than "
                f"{slot_p.max():.2f} kW per free node (rack power limit): short by {p_node - slot_p.max():.2f} kW per node")
    return (f"job '{job.name}' puts {q_liq:.2f} kW of heat per node into the in-rack CDU, but no rack's CDU has more than "
            f"{slot_q.max():.2f} kW per free node left: short by {q_liq - slot_q.max():.2f} kW per node")


# ------------------------------------------------------------------------------------------------ reduction


def reduce_model(prob: PlacementProblem) -> None:
    """Shrink the model without changing its optimum.

    1. A limit row is *inactive* when filling every free node under it with the most power-hungry job of
       the queue still keeps it within its limit; it can never bind and is left out (the cross-check still
       verifies it).
    2. Segments of one hall and loop whose coefficients on every active row are equal are merged into a
       *unit*: for jobs without array locality they are interchangeable, so those jobs are placed per unit
       (the extractor fills a unit's segments in order). Array-locality jobs stay on segments.
    """
    mats, rhs = segment_limit_matrices(prob), limit_rhs(prob)
    ns = len(prob.seg_free)
    p_max = float(prob.p_node_kw.max())
    cols = [prob.seg_hall[:, None].astype(float), prob.seg_loop[:, None].astype(float)]
    for f, G in mats.items():
        added = G.T @ (prob.seg_free * p_max)
        act = np.flatnonzero(added > rhs[f] + 1e-9)
        prob.active[f] = act
        cols.append(np.round(G[:, act].toarray(), 9))
    sig = np.hstack(cols) if ns else np.zeros((0, 2))
    _, unit_of_seg = np.unique(sig, axis=0, return_inverse=True)
    unit_of_seg = unit_of_seg.ravel()
    nu = int(unit_of_seg.max()) + 1 if ns else 0
    prob.unit_of_seg = unit_of_seg
    first = np.full(nu, -1)
    first[unit_of_seg[::-1]] = np.arange(ns)[::-1]
    prob.unit_hall = prob.seg_hall[first]
    prob.unit_free = np.bincount(unit_of_seg, weights=prob.seg_free, minlength=nu)
    prob.unit_cdu_headroom_kw = np.bincount(unit_of_seg, weights=prob.seg_cdu_headroom_kw, minlength=nu)
    prob.unit_G = {f: mats[f][first][:, prob.active[f]].tocsr() for f in mats}
    # inactive power rows still bound the smallest headroom m from above
    inactive = np.setdiff1d(np.arange(len(prob.power_equip)), prob.active["equipment_power_limit"])
    head_now = (prob.power_cap_kw - prob.power_now_kw) / prob.power_cap_kw
    head_now = head_now[inactive]
    prob.m_ub = float(min(1.0, head_now[head_now > 0].min(initial=1.0)))

    # eligibility per (job, unit): every segment of the unit must take the job
    nj = len(prob.jobs)
    elig = np.zeros((nj, ns), bool)
    elig[prob.pair_job, prob.pair_seg] = True
    order = np.argsort(unit_of_seg, kind="stable")
    starts = np.searchsorted(unit_of_seg[order], np.arange(nu))
    e_unit = np.logical_and.reduceat(elig[:, order], starts, axis=1) if ns else np.zeros((nj, 0), bool)
    is_array = np.array([j.locality == "array" for j in prob.jobs])
    blocked = np.array([j.name in prob.not_placeable for j in prob.jobs])
    e_unit[is_array | blocked] = False
    prob.u_job, prob.u_unit = np.nonzero(e_unit)
    # array-locality jobs: (job, segment) pairs in arrays with room for the whole job
    arr_pos = np.searchsorted(prob.arrays, prob.seg_array)
    arr_free = np.bincount(arr_pos, weights=prob.seg_free, minlength=len(prob.arrays))
    fits = arr_free[arr_pos[prob.pair_seg]] >= prob.nodes[prob.pair_job]
    sel = is_array[prob.pair_job] & fits & ~blocked[prob.pair_job]
    prob.s_pair = np.flatnonzero(sel)
    za = np.unique(prob.pair_job[sel] * len(prob.arrays) + arr_pos[prob.pair_seg[sel]])
    prob.za_job, prob.za_arr = za // max(len(prob.arrays), 1), za % max(len(prob.arrays), 1)


# ------------------------------------------------------------------------------------------------ builder


def build_placement(prob: PlacementProblem, relax: bool = False, elastic: bool = False) -> pyo.ConcreteModel:
    """The placement MILP (or its LP relaxation) as a `LinearModel`-backed Pyomo model. `elastic=True`
    drops the node bounds and valid cuts that duplicate the capacity rows, for `explain_infeasible`."""
    t0 = time.perf_counter()
    lm = LinearModel(pyo.ConcreteModel("placement"))
    integer = not relax
    define_variables(lm, prob, integer, elastic)
    define_job_admission(lm, prob)
    define_node_capacity(lm, prob)
    define_locality(lm, prob, cuts=not elastic)
    define_unit_load(lm, prob)
    define_power_limits(lm, prob)
    define_heat_limits(lm, prob)
    define_objective(lm, prob)
    lm.finish("admitted_value")
    lm.build_s = time.perf_counter() - t0
    return lm.model


def define_variables(lm, prob, integer, elastic=False) -> None:
    required = np.array([j.required for j in prob.jobs])
    blocked = np.array([j.name in prob.not_placeable for j in prob.jobs])
    sj, ss = prob.pair_job[prob.s_pair], prob.pair_seg[prob.s_pair]
    big = np.inf if elastic else 1.0
    lm.var("xu", len(prob.u_job), 0.0, np.minimum(prob.nodes[prob.u_job], big * prob.unit_free[prob.u_unit]).astype(float),
           integer=integer, units="node", long_name="GPU nodes of a job placed on a unit (merged segments)")
    lm.var("xs", len(sj), 0.0, np.minimum(prob.nodes[sj], big * prob.seg_free[ss]).astype(float),
           integer=integer, units="node", long_name="GPU nodes of an array-locality job placed on a segment")
    lm.var("y", len(prob.jobs), np.where(required, 1.0, 0.0), np.where(blocked & ~required, 0.0, 1.0),
           integer=integer, units="1", long_name="job admitted")
    lm.var("zh", len(prob.hall_jobs) * len(prob.layout.hall_ids), 0.0, 1.0, integer=integer, units="1",
           long_name="hall chosen for a hall-locality job")
    lm.var("za", len(prob.za_job), 0.0, 1.0, integer=integer, units="1", long_name="array chosen for an array-locality job")
    lm.var("m", 1, -1.0, prob.m_ub, units="1", long_name="smallest power headroom, fraction of the limit")


def define_job_admission(lm, prob) -> None:
    lm.rows("job_nodes_admitted", len(prob.jobs),
            [("xu", prob.u_job, None, 1.0), ("xs", prob.pair_job[prob.s_pair], None, 1.0),
             ("y", None, None, -prob.nodes.astype(float))],
            lb=0.0, ub=0.0, long_name="a job gets all its nodes or none", dual_units="value/node")


def define_node_capacity(lm, prob) -> None:
    ss = prob.pair_seg[prob.s_pair]
    lm.rows("unit_free_nodes", len(prob.unit_free),
            [("xu", prob.u_unit, None, 1.0), ("xs", prob.unit_of_seg[ss], None, 1.0)],
            ub=prob.unit_free.astype(float), long_name="nodes placed on a unit <= its free nodes", dual_units="value/node")
    lm.rows("segment_free_nodes", len(prob.seg_free), [("xs", ss, None, 1.0)], ub=prob.seg_free.astype(float),
            long_name="nodes of array-locality jobs on a segment <= its free nodes", dual_units="value/node")


def define_locality(lm, prob, cuts: bool = True) -> None:
    nh = len(prob.layout.hall_ids)
    hj = prob.hall_jobs
    k = len(hj)
    pos = np.full(len(prob.jobs), -1)
    pos[hj] = np.arange(k)
    lm.rows("hall_locality_choice", k, [("zh", np.repeat(np.arange(k), nh), None, 1.0), ("y", None, hj, -1.0)],
            lb=0.0, ub=0.0, long_name="a hall-locality job runs in exactly one hall if admitted")
    sel = np.flatnonzero(pos[prob.u_job] >= 0)
    lm.rows("hall_locality_link", k * nh,
            [("xu", pos[prob.u_job[sel]] * nh + prob.unit_hall[prob.u_unit[sel]], sel, 1.0),
             ("zh", None, None, -np.repeat(prob.nodes[hj], nh).astype(float))],
            ub=0.0, long_name="a hall-locality job's nodes stay in the hall chosen for it")
    if cuts and prob.options.vub_cuts and len(sel):
        # variable upper bounds: a job's nodes on a unit only if the unit's hall is chosen (tightens the LP)
        cap = np.minimum(prob.nodes[prob.u_job[sel]], prob.unit_free[prob.u_unit[sel]]).astype(float)
        r = np.arange(len(sel))
        lm.rows("hall_locality_unit_bound", len(sel),
                [("xu", r, sel, 1.0), ("zh", r, pos[prob.u_job[sel]] * nh + prob.unit_hall[prob.u_unit[sel]], -cap)],
                ub=0.0, long_name="nodes of a hall-locality job on a unit <= its room there x hall chosen (valid cut)")
    hall_free = np.bincount(prob.unit_hall, weights=prob.unit_free, minlength=nh) if cuts else np.full(nh, INF)
    lm.rows("hall_free_nodes", nh, [("zh", np.tile(np.arange(nh), k), None, np.repeat(prob.nodes[hj], nh).astype(float))],
            ub=hall_free, long_name="hall-locality jobs chosen for a hall fit its free nodes (valid cut)")
    # arrays
    aj = prob.array_jobs
    ka = len(aj)
    apos = np.full(len(prob.jobs), -1)
    apos[aj] = np.arange(ka)
    lm.rows("array_locality_choice", ka, [("za", apos[prob.za_job], None, 1.0), ("y", None, aj, -1.0)],
            lb=0.0, ub=0.0, long_name="an array-locality job runs in exactly one array if admitted")
    na = len(prob.arrays)
    za_key = prob.za_job * na + prob.za_arr
    sj, ss = prob.pair_job[prob.s_pair], prob.pair_seg[prob.s_pair]
    s_key = sj * na + np.searchsorted(prob.arrays, prob.seg_array[ss])
    lm.rows("array_locality_link", len(za_key),
            [("xs", np.searchsorted(za_key, s_key), None, 1.0), ("za", None, None, -prob.nodes[prob.za_job].astype(float))],
            ub=0.0, long_name="an array-locality job's nodes stay in the array chosen for it")
    if cuts and prob.options.vub_cuts and len(s_key):
        capa = np.minimum(prob.nodes[sj], prob.seg_free[ss]).astype(float)
        r = np.arange(len(s_key))
        lm.rows("array_locality_segment_bound", len(s_key),
                [("xs", r, None, 1.0), ("za", r, np.searchsorted(za_key, s_key), -capa)],
                ub=0.0, long_name="nodes of an array-locality job on a segment <= its room there x array chosen (valid cut)")
    arr_free = np.bincount(np.searchsorted(prob.arrays, prob.seg_array), weights=prob.seg_free, minlength=na)
    if not cuts:
        arr_free = np.full(na, INF)
    lm.rows("array_free_nodes", na, [("za", prob.za_arr, None, prob.nodes[prob.za_job].astype(float))],
            ub=arr_free, long_name="array-locality jobs chosen for an array fit its free nodes (valid cut)")


def define_unit_load(lm, prob) -> None:
    nu = len(prob.unit_free)
    sj, ss = prob.pair_job[prob.s_pair], prob.pair_seg[prob.s_pair]
    lm.var("p_unit", nu, 0.0, INF, units="kW", long_name="load the placement adds to a unit")
    lm.rows("unit_load_definition", nu,
            [("xu", prob.u_unit, None, -prob.p_node_kw[prob.u_job]), ("xs", prob.unit_of_seg[ss], None, -prob.p_node_kw[sj]),
             ("p_unit", None, None, 1.0)],
            lb=0.0, ub=0.0, long_name="unit load = sum of the node powers placed on it")


def segment_limit_matrices(prob) -> dict[str, sp.csr_matrix]:
    """segments x limit rows, kW on the limit per kW of segment load, for each limit family."""
    ns = len(prob.seg_free)
    loop_row = np.searchsorted(prob.loops, prob.seg_loop)
    S_loop = sp.csr_matrix((np.ones(ns), (np.arange(ns), loop_row)), shape=(ns, len(prob.loops)))
    out = {"equipment_power_limit": prob.seg_share[:, prob.power_equip].tocsr(), "loop_heat_limit": S_loop}
    if len(prob.rejection):
        out["heat_rejection_limit"] = sp.csr_matrix(S_loop @ sp.csr_matrix(prob.loop_to_rejection))
    return out


def limit_rhs(prob) -> dict[str, np.ndarray]:
    """Room left on each limit row (kW), never below zero (a limit already overrun only blocks new load)."""
    out = {"equipment_power_limit": np.maximum(prob.power_cap_kw - prob.power_now_kw, 0.0),
           "loop_heat_limit": np.maximum(prob.loop_cap_kw - prob.loop_now_kw, 0.0)}
    if len(prob.rejection):
        out["heat_rejection_limit"] = np.maximum(prob.rejection_cap_kw - prob.rejection_now_kw, 0.0)
    return out


def define_power_limits(lm, prob) -> None:
    f = "equipment_power_limit"
    act = prob.active[f]
    G = prob.unit_G[f].tocoo()
    lm.rows(f, len(act), [("p_unit", G.col, G.row, G.data)], ub=limit_rhs(prob)[f][act],
            long_name="load of each power equipment <= its rating less reserve (active rows)", dual_units="value/kW")
    # equipment already over its limit before placement cannot take new load (rhs 0 above); it is left
    # out of the balance so that m measures the headroom the placement can still change
    cap, now = prob.power_cap_kw[act], prob.power_now_kw[act]
    ok = now < cap
    sel = ok[G.col]
    k = np.cumsum(ok) - 1
    lm.rows("balanced_headroom", int(ok.sum()),
            [("p_unit", k[G.col[sel]], G.row[sel], G.data[sel] / cap[G.col[sel]]), ("m", None, np.zeros(int(ok.sum()), int), 1.0)],
            ub=((cap - now) / cap)[ok], long_name="smallest power headroom m <= every equipment's headroom")


def define_heat_limits(lm, prob) -> None:
    lm.rows("cdu_heat_limit", len(prob.unit_free), [("p_unit", None, None, prob.liquid_fraction_pu)],
            ub=prob.unit_cdu_headroom_kw, long_name="liquid heat placed in a unit <= CDU headroom of its racks",
            dual_units="value/kW")
    rhs = limit_rhs(prob)
    for fam, what in (("loop_heat_limit", "heat into each facility loop <= its design heat"),
                      ("heat_rejection_limit", "heat on each heat-rejection plant <= its firm capacity")):
        if fam not in prob.unit_G:
            continue
        G = prob.unit_G[fam].tocoo()
        lm.rows(fam, G.shape[1], [("p_unit", G.col, G.row, G.data)], ub=rhs[fam][prob.active[fam]], long_name=what,
                dual_units="value/kW")


def define_objective(lm, prob) -> None:
    scale = prob.value_scale
    lm.add_cost("y", -prob.value / scale)
    lm.add_cost("m", -prob.options.headroom_weight_pu * float(prob.value.min()) / scale)


# ------------------------------------------------------------------------------------------------ warm start


def greedy_start(prob: PlacementProblem, y_lp: np.ndarray | None = None,
                 x_lp: np.ndarray | None = None, order: np.ndarray | None = None,
                 best_fit: bool = True, allow_pair: np.ndarray | None = None,
                 x0: np.ndarray | None = None, y0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A feasible placement by a greedy rule, handed to HiGHS as its first incumbent: jobs in order of
    their admission in the LP relaxation (`y_lp`, when given), then value per node (ties: larger first),
    each into the locality group (hall / array / site) with the most room, filling its segments with the
    most room first. With the LP relaxation's placement `x_lp` (nodes per (pair_job, pair_seg)), groups and
    segments where the LP put the job come first. `allow_pair` (bool per pair) restricts where jobs may go
    (the hall master's choice); `x0, y0` is a placement to keep and fill around (its jobs are not moved).
    Returns (x per (pair_job, pair_seg), y per job)."""
    pref = np.zeros(len(prob.pair_job)) if x_lp is None else np.asarray(x_lp, float)
    mats, rem = segment_limit_matrices(prob), limit_rhs(prob)
    fams = list(mats)
    G = {f: mats[f].tocsr() for f in fams}
    rem = {f: rem[f].copy() for f in fams}
    free = prob.seg_free.astype(float).copy()
    cdu_rem = prob.seg_cdu_headroom_kw / max(prob.liquid_fraction_pu, 1e-9)
    x = np.zeros(len(prob.pair_job)) if x0 is None else np.asarray(x0, float).copy()
    y = np.zeros(len(prob.jobs)) if y0 is None else np.asarray(y0, float).copy()
    if x0 is not None:  # the kept placement's load comes off every limit first
        n_seg = np.bincount(prob.pair_seg, weights=x, minlength=len(free))
        p_seg = np.bincount(prob.pair_seg, weights=x * prob.p_node_kw[prob.pair_job], minlength=len(free))
        free -= n_seg
        cdu_rem -= p_seg
        for f in fams:
            rem[f] -= G[f].T @ p_seg
    required = np.array([j.required for j in prob.jobs])
    if order is not None:
        pass
    elif y_lp is None:
        order = np.lexsort((-prob.nodes, -prob.value / prob.nodes, ~required))
    else:  # the LP's choice first, largest jobs first within it (they fragment worst), then by value per node
        lp = -np.round(np.asarray(y_lp), 6)
        order = np.lexsort((-prob.value / prob.nodes, -prob.nodes, lp, ~required))
    pair_start = np.searchsorted(prob.pair_job, np.arange(len(prob.jobs) + 1))  # pairs are sorted by job
    arr_idx = np.searchsorted(prob.arrays, prob.seg_array)
    nu = len(prob.unit_free)
    ok = np.zeros(len(prob.pair_job), bool)
    ok[prob.s_pair] = True
    ukeys = prob.u_job * nu + prob.u_unit
    pk = prob.pair_job * nu + prob.unit_of_seg[prob.pair_seg]
    ix = np.minimum(np.searchsorted(ukeys, pk), max(len(ukeys) - 1, 0))
    ok |= (ukeys[ix] == pk) if len(ukeys) else False
    if allow_pair is not None:
        ok &= allow_pair

    def allowed(segs, p):
        a = np.minimum(free[segs], np.floor(cdu_rem[segs] / p + 1e-9))
        for f in fams:
            M = G[f][segs]
            if M.nnz == 0:
                continue
            q = rem[f][M.indices] / (M.data * p)
            cnt = np.diff(M.indptr)
            has = cnt > 0
            mins = np.full(len(segs), np.inf)
            mins[has] = np.minimum.reduceat(q, M.indptr[:-1][has])
            a = np.minimum(a, np.floor(mins + 1e-9))
        return np.maximum(a, 0.0)

    for j in order:
        job = prob.jobs[j]
        if job.name in prob.not_placeable or y[j] > 0.5:
            continue
        pairs = np.arange(pair_start[j], pair_start[j + 1])
        pairs = pairs[ok[pairs]]
        segs = prob.pair_seg[pairs]
        p, need = prob.p_node_kw[j], float(prob.nodes[j])
        a = allowed(segs, p)
        if a.sum() < need:
            continue
        if job.locality == "hall":
            grp = prob.seg_hall[segs]
        elif job.locality == "array":
            grp = arr_idx[segs]
        else:
            grp = np.zeros(len(segs), int)
        room = np.bincount(grp, weights=a)
        score = np.bincount(grp, weights=pref[pairs], minlength=len(room))
        # best fit: the group with the least room that still takes the job (ties: where the LP put it)
        for g in (np.lexsort((-score, room)) if best_fit else np.lexsort((-room, -score))):
            if room[g] < need:
                continue
            sel = np.flatnonzero(grp == g)
            take = np.zeros(len(sel))
            left = need
            for k in sel[np.lexsort((-a[sel], -pref[pairs][sel]))]:
                s = segs[k]
                n = min(left, float(allowed(np.array([s]), p)[0]))
                if n <= 0:
                    continue
                take[sel == k] = n
                free[s] -= n
                cdu_rem[s] -= n * p
                for f in fams:
                    row = G[f][s]
                    rem[f][row.indices] -= row.data * n * p
                left -= n
                if left <= 0:
                    break
            if left <= 0:
                x[pairs[sel]] = take
                y[j] = 1.0
                break
            # roll back this group and try the next
            for kk, n in zip(sel.tolist(), take.tolist(), strict=True):
                if n > 0:
                    s = segs[kk]
                    free[s] += n
                    cdu_rem[s] += n * p
                    for f in fams:
                        row = G[f][s]
                        rem[f][row.indices] += row.data * n * p
    return x, y


def start_objective(prob: PlacementProblem, x: np.ndarray, y: np.ndarray) -> float:
    """The model's objective (maximised, in value units) of a placement: admitted value plus the weighted
    smallest power headroom m, as `full_start` sets m."""
    p_seg = np.bincount(prob.pair_seg, weights=x * prob.p_node_kw[prob.pair_job], minlength=len(prob.seg_free))
    G = segment_limit_matrices(prob)["equipment_power_limit"]
    cap = prob.power_cap_kw
    head = ((cap - prob.power_now_kw - G.T @ p_seg) / cap)[prob.power_now_kw < cap]
    m = max(-1.0, min(prob.m_ub, float(head.min()))) if head.size else prob.m_ub
    return float(prob.value @ y) + prob.options.headroom_weight_pu * float(prob.value.min()) * m


def best_greedy(prob: PlacementProblem, y_lp: np.ndarray | None = None, x_lp: np.ndarray | None = None):
    """The best (by `start_objective`) of a few greedy orders (value per kW, value per node, the LP's
    admissions first) and both group rules (best fit, most room): no single order wins when power or when
    nodes bind."""
    req = np.array([j.required for j in prob.jobs])
    dn = prob.value / prob.nodes
    dk = dn / prob.p_node_kw
    orders = [np.lexsort((-prob.nodes, -dk, ~req)), np.lexsort((-prob.nodes, -dn, ~req))]
    if y_lp is not None:
        lp = -np.round(np.asarray(y_lp), 6)
        orders.append(np.lexsort((-dn, -prob.nodes, lp, ~req)))
    best = (-np.inf, None, None)
    runs = [(orders[0], True), (orders[0], False), (orders[1], True)] + \
        ([(orders[2], True), (orders[2], False)] if len(orders) > 2 else [])
    runs.append((orders[0], None))  # most room first, not led by the LP: the best headroom for equal value
    for o, bf in runs:
        if bf is None:
            x, y = greedy_start(prob, order=o, best_fit=False)
        else:
            x, y = greedy_start(prob, y_lp, x_lp, order=o, best_fit=bf)
        v = start_objective(prob, x, y)  # value first, then the smallest headroom (ties of value)
        if v > best[0] and (y[req] > 0.5).all():
            best = (v, x, y)
    if best[1] is None:
        return greedy_start(prob, y_lp, x_lp)
    return best[1], best[2]


def improve_by_hall(prob: PlacementProblem, x: np.ndarray, y: np.ndarray, y_lp: np.ndarray | None = None,
                    time_limit_s: float = 2.0, max_candidates: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Large-neighbourhood search, one hall at a time: keep every job outside the hall where it is, free the
    jobs wholly inside it, add the best unplaced candidates (admitted in the LP relaxation first, then by
    value per kW), and re-solve that hall exactly (a small MILP of the same model). A hall's answer is kept
    when it admits more value. Returns the improved (x per (pair_job, pair_seg), y)."""
    L = prob.layout
    x, y = x.copy(), y.copy()
    nh = len(L.hall_ids)
    ns = len(prob.seg_free)
    pkeys = prob.pair_job * ns + prob.pair_seg
    seg_key = {(int(a), int(f), int(lp)): s for s, (a, f, lp) in
               enumerate(zip(prob.seg_array, prob.seg_feeder, prob.seg_loop, strict=True))}
    dk = prob.value / (prob.nodes * prob.p_node_kw)
    lp = np.zeros(len(prob.jobs)) if y_lp is None else np.asarray(y_lp)
    for h in range(nh):
        job_rack = disaggregate(prob, x).tocsr()
        in_h = L.racks.hall == h
        nodes_h = np.asarray(job_rack[:, in_h].sum(axis=1)).ravel()
        nodes_all = np.asarray(job_rack.sum(axis=1)).ravel()
        inside = (nodes_h > 0) & (nodes_h == nodes_all)
        unplaced = (y < 0.5) & np.array([j.name not in prob.not_placeable for j in prob.jobs])
        cand = np.flatnonzero(unplaced)
        cand = cand[np.lexsort((-dk[cand], -lp[cand]))][:max_candidates]
        free_jobs = np.concatenate([np.flatnonzero(inside), cand])
        if free_jobs.size == 0:
            continue
        fixed = np.setdiff1d(np.flatnonzero(nodes_all > 0), free_jobs)
        fixed_nodes = np.asarray(job_rack[fixed].sum(axis=0)).ravel() if fixed.size else np.zeros(len(L.racks))
        fixed_kw = np.asarray(job_rack[fixed].T @ prob.p_node_kw[fixed]).ravel() if fixed.size else 0.0
        free_sub = np.where(in_h, prob.state.free_nodes - fixed_nodes, 0).astype(np.int64)
        st = SiteState(free_nodes=np.maximum(free_sub, 0), p_rack_kw=prob.state.p_rack_kw + fixed_kw,
                       p_own_kw=prob.state.p_own_kw)
        jobs_sub = [prob.jobs[j] for j in free_jobs]
        opt = replace(prob.options, time_limit_s=time_limit_s, relaxation_duals=False)
        try:
            sub = prepare(L, jobs_sub, st, opt)
        except InputError:
            continue
        if len(sub.pair_job) == 0:
            continue
        mr = build_placement(sub, relax=True)
        ri = solve_relaxation(sub, mr, duals=False)
        if not ri.has_solution:
            continue
        ms = build_placement(sub)
        si = solve_placement(sub, ms, y_lp=mr._linear.value(ri, "y"),
                             x_lp=segment_allocation(sub, mr._linear, ri, integral=False), lns=False)
        if not si.has_solution:
            continue
        y_sub = np.rint(ms._linear.value(si, "y"))
        if float(sub.value @ y_sub) <= float(prob.value[free_jobs] @ y[free_jobs]) + 1e-9:
            continue
        xs_sub = segment_allocation(sub, ms._linear, si)
        # write back: clear the freed jobs, add the hall's new placement
        x[np.isin(prob.pair_job, free_jobs)] = 0.0
        y[free_jobs] = y_sub
        keep = xs_sub > 0
        for sj, ss, n in zip(sub.pair_job[keep], sub.pair_seg[keep], xs_sub[keep], strict=True):
            s = seg_key[(int(sub.seg_array[ss]), int(sub.seg_feeder[ss]), int(sub.seg_loop[ss]))]
            j = int(free_jobs[sj])
            x[np.searchsorted(pkeys, j * ns + s)] += n
    return x, y


def unit_room_kw(prob: PlacementProblem) -> np.ndarray:
    """Most load (kW) each unit could take on its own: the tightest of its active limit rows (room / share)
    and its racks' CDU headroom (inf where nothing limits it)."""
    rhs = limit_rhs(prob)
    room = prob.unit_cdu_headroom_kw / max(prob.liquid_fraction_pu, 1e-9)
    for f, G in prob.unit_G.items():
        G = G.tocsr()
        if G.nnz == 0:
            continue
        q = rhs[f][prob.active[f]][G.indices] / G.data
        has = np.diff(G.indptr) > 0
        mins = np.full(G.shape[0], np.inf)
        mins[has] = np.minimum.reduceat(q, G.indptr[:-1][has])
        room = np.minimum(room, mins)
    return room


@contextlib.contextmanager
def _c_stdout_silenced():
    """File descriptor 1 to /dev/null for the block (C stdio flushed before and after), so C-level prints
    of a solver do not land in a table printed on stdout. A no-op where fd 1 cannot be redirected."""
    import ctypes
    import os
    import sys

    try:
        flush = ctypes.CDLL(None).fflush
    except (OSError, AttributeError):  # pragma: no cover - no C library handle
        yield
        return
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        flush(None)
        os.dup2(devnull, 1)
        yield
    finally:
        flush(None)
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def hall_master(prob: PlacementProblem, time_limit_s: float = 5.0, rel_gap: float = 1e-3,
                margin_nodes: float | None = None) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Admission and hall of every job from a small MILP over (job, hall) only, for the warm start.

    Each hall is one bin with the exact LP description of what its units can hold, projected onto the
    jobs: for every level mu (kW per node) and every unit u, sum_j min(p_j, mu) x_ju <= min(R_u, mu F_u)
    (R_u: the unit's own power room, F_u: its free nodes); summed over the hall's units this is valid for
    the hall's totals, so with mu at the quantiles of the job powers (plus mu -> 0: nodes, mu = inf:
    power) the bins are tight where the units' kW per free node differ. Limit rows that cover whole halls
    alike (substation, per-hall switchgear or loop) are kept as rows over the halls. Array-locality jobs may
    only take a hall with an array where they fit. Each unit's room is cut by `margin_nodes` nodes of
    the most power-hungry job, for the integer split over units. Returns (y, hall per job, -1 if not
    admitted or placed across halls, bound) or None without a solution. With `margin_nodes=0` every row
    is implied by the full model, so the master is a relaxation and `bound` (HiGHS's dual bound of the
    master) is an upper bound of the admitted value of any placement; with a margin it is inf."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    L = prob.layout
    nj, nh = len(prob.jobs), len(L.hall_ids)
    nu = len(prob.unit_free)
    if nu == 0 or nj == 0:
        return None
    margin = prob.options.master_margin_nodes if margin_nodes is None else margin_nodes
    room = unit_room_kw(prob)
    room = np.where(np.isfinite(room), np.maximum(room - margin * float(prob.p_node_kw.max()), 0.0), room)
    F = prob.unit_free.astype(float)
    p, n = prob.p_node_kw, prob.nodes.astype(float)
    loc = np.array([j.locality for j in prob.jobs])
    blocked = np.array([j.name in prob.not_placeable for j in prob.jobs])
    required = np.array([j.required for j in prob.jobs])
    # (job, hall) eligibility: enough eligible free nodes in the hall; array jobs: an array that fits
    free_jh = np.zeros((nj, nh))
    np.add.at(free_jh, (prob.u_job, prob.unit_hall[prob.u_unit]), F[prob.u_unit])
    elig = free_jh >= n[:, None]
    arr_hall = np.zeros(len(prob.arrays), int)
    arr_hall[np.searchsorted(prob.arrays, prob.seg_array)] = prob.seg_hall
    is_arr = loc == "array"
    elig[is_arr] = False
    elig[prob.za_job, arr_hall[prob.za_arr]] = True
    is_none = loc == "none"
    elig[is_none] = (free_jh[is_none] > 0)  # site jobs split over halls
    elig[blocked] = False
    # bins: nodes, power (mu = inf) and mu levels at the quantiles of the job powers
    mus = np.unique(np.quantile(p, np.linspace(0.0, 1.0, 9)))
    hall_of_unit = prob.unit_hall
    cap_mu = np.zeros((nh, len(mus)))
    for k, mu in enumerate(mus):
        cap_mu[:, k] = np.bincount(hall_of_unit, weights=np.minimum(room, mu * F), minlength=nh)
    cap_p = np.bincount(hall_of_unit, weights=np.where(np.isfinite(room), room, 0.0), minlength=nh)
    p_fin = np.bincount(hall_of_unit, weights=~np.isfinite(room), minlength=nh) == 0
    cap_n = np.bincount(hall_of_unit, weights=F, minlength=nh)
    coef = np.hstack([n[:, None], np.minimum(p[:, None], mus[None, :]) * n[:, None], (p * n)[:, None]])  # jobs x bins
    caps = np.hstack([cap_n[:, None], cap_mu, np.where(p_fin, cap_p, np.inf)[:, None]])  # halls x bins
    nb = coef.shape[1]
    # columns: y (nj), w (nj*nh, job-major)
    wj, wh = np.repeat(np.arange(nj), nh), np.tile(np.arange(nh), nj)
    ncol = nj + nj * nh
    r_link = np.concatenate([np.arange(nj), wj])
    c_link = np.concatenate([np.arange(nj), nj + np.arange(nj * nh)])
    v_link = np.concatenate([-np.ones(nj), np.ones(nj * nh)])
    A_link = sp.csr_matrix((v_link, (r_link, c_link)), shape=(nj, ncol))
    rb = (wh[:, None] * nb + np.arange(nb)[None, :]).ravel()
    A_bin = sp.csr_matrix((coef[wj].ravel(), (rb, np.repeat(nj + np.arange(nj * nh), nb))), shape=(nh * nb, ncol))
    ub_bin = caps.ravel()
    blocks, lbs, ubs = [A_link], [np.zeros(nj)], [np.zeros(nj)]
    keep = np.isfinite(ub_bin)
    blocks.append(A_bin[keep])
    lbs.append(np.full(int(keep.sum()), -np.inf))
    ubs.append(ub_bin[keep])
    # limit rows that load whole halls alike: one row over the halls
    rhs = limit_rhs(prob)
    for f, G in prob.unit_G.items():
        Gd = G.toarray()
        if Gd.size == 0:
            continue
        gmax = np.zeros((nh, Gd.shape[1]))
        gmin = np.full((nh, Gd.shape[1]), np.inf)
        np.maximum.at(gmax, hall_of_unit, Gd)
        np.minimum.at(gmin, hall_of_unit, Gd)
        whole = np.all(np.isclose(gmax, np.where(np.isfinite(gmin), gmin, gmax)), axis=0) & (gmax.max(axis=0) > 0)
        for e in np.flatnonzero(whole):
            row = np.zeros(ncol)
            row[nj:] = (p * n)[wj] * gmax[wh, e]
            blocks.append(sp.csr_matrix(row[None, :]))
            lbs.append(np.array([-np.inf]))
            ubs.append(np.array([rhs[f][prob.active[f][e]]]))
    A = sp.vstack(blocks).tocsr()
    c = np.concatenate([-prob.value / prob.value_scale, np.zeros(nj * nh)])
    integ = np.concatenate([np.ones(nj), np.repeat((~is_none).astype(float), nh)])
    lo = np.concatenate([required.astype(float), np.zeros(nj * nh)])
    hi = np.concatenate([(~blocked | required).astype(float), elig.ravel().astype(float)])
    with _c_stdout_silenced():  # scipy's HiGHS build prints a debug line from C on some MIPs
        res = milp(c, constraints=LinearConstraint(A, np.concatenate(lbs), np.concatenate(ubs)), integrality=integ,
                   bounds=Bounds(lo, hi), options={"time_limit": float(time_limit_s), "mip_rel_gap": float(rel_gap)})
    if res.x is None:
        return None
    y = np.rint(res.x[:nj])
    W = res.x[nj:].reshape(nj, nh)
    hall = np.where((y > 0.5) & ~is_none, W.argmax(axis=1), -1)
    dual = getattr(res, "mip_dual_bound", None)
    bound = -float(dual) * prob.value_scale if margin == 0 and dual is not None and np.isfinite(dual) else np.inf
    return y, hall, bound


def hall_master_start(prob: PlacementProblem, lm: LinearModel, time_limit_s: float = 5.0,
                      margin_nodes: float | None = None) -> tuple[np.ndarray, np.ndarray, float] | None:
    """A placement from the hall master (`hall_master`): its jobs placed in their halls by the greedy rule
    (largest first); if some do not fit, the full model restricted to the master's admissions and halls
    (a small MILP, started from the greedy) places them; then the greedy fills what is left with the
    other jobs. Returns (x per (pair_job, pair_seg), y, the master's value bound (see `hall_master`)) or
    None."""
    t0 = time.perf_counter()
    got = hall_master(prob, time_limit_s=max(0.5, time_limit_s / 2), rel_gap=min(prob.options.rel_gap / 4, 1e-3),
                      margin_nodes=margin_nodes)
    if got is None:
        return None
    y_m, hall, bound = got
    ph = hall[prob.pair_job]
    allow = (y_m[prob.pair_job] > 0.5) & ((ph < 0) | (prob.seg_hall[prob.pair_seg] == ph))
    order = np.lexsort((-prob.value / prob.nodes, -prob.nodes))
    x, y = greedy_start(prob, order=order, allow_pair=allow)
    if (y < y_m - 0.5).any():
        nh = len(prob.layout.hall_ids)
        h = HighsHandle(lm)

        def cap_cols(name, hi):
            f = lm.vars[name]
            idx = f.cols.astype(np.int32)
            h.h.changeColsBounds(len(idx), idx, f.lb.copy(), np.minimum(f.ub, hi).astype(float))

        cap_cols("y", y_m)
        zh = np.zeros((len(prob.hall_jobs), nh))
        hj = hall[prob.hall_jobs]
        zh[np.flatnonzero(hj >= 0), hj[hj >= 0]] = 1.0
        cap_cols("zh", zh.ravel())
        arr_hall = np.zeros(len(prob.arrays), int)
        arr_hall[np.searchsorted(prob.arrays, prob.seg_array)] = prob.seg_hall
        cap_cols("za", (hall[prob.za_job] == arr_hall[prob.za_arr]).astype(float))
        h.h.setSolution(lm.n_cols, np.arange(lm.n_cols, dtype=np.int32), full_start(prob, lm, x, y))
        left = max(0.5, time_limit_s - (time.perf_counter() - t0))
        info = solve(lm.model, left, min(prob.options.rel_gap / 4, 1e-3), persistent=h, duals=False, load_pyomo=False)
        lm.handle = None  # the restricted instance is not the model's
        if info.has_solution:
            y_s = np.rint(lm.value(info, "y"))
            if float(prob.value @ y_s) > float(prob.value @ y):
                x, y = segment_allocation(prob, lm, info), y_s
    x, y = greedy_start(prob, x0=x, y0=y)
    return x, y, bound


def full_start(prob: PlacementProblem, lm: LinearModel, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Every column of the model from a segment-level placement (x over (pair_job, pair_seg), y)."""
    col = np.zeros(lm.n_cols)

    def put(name, v):
        f = lm.vars[name]
        col[f.offset:f.offset + f.size] = v

    nu, na, nh = len(prob.unit_free), len(prob.arrays), len(prob.layout.hall_ids)
    put("xs", x[prob.s_pair])
    is_s = np.zeros(len(x), bool)
    is_s[prob.s_pair] = True
    ukeys = prob.u_job * nu + prob.u_unit
    rest = np.flatnonzero(~is_s & (x > 0))
    xu = np.zeros(len(ukeys))
    np.add.at(xu, np.searchsorted(ukeys, prob.pair_job[rest] * nu + prob.unit_of_seg[prob.pair_seg[rest]]), x[rest])
    put("xu", xu)
    put("y", y)
    zh = np.zeros(len(prob.hall_jobs) * nh)
    hpos = np.full(len(prob.jobs), -1)
    hpos[prob.hall_jobs] = np.arange(len(prob.hall_jobs))
    used = x > 0
    hsel = used & (hpos[prob.pair_job] >= 0)
    zh[hpos[prob.pair_job[hsel]] * nh + prob.seg_hall[prob.pair_seg[hsel]]] = 1.0
    put("zh", zh)
    za = np.zeros(len(prob.za_job))
    zkeys = prob.za_job * na + prob.za_arr
    ssel = prob.s_pair[x[prob.s_pair] > 0]
    za[np.searchsorted(zkeys, prob.pair_job[ssel] * na + np.searchsorted(prob.arrays, prob.seg_array[prob.pair_seg[ssel]]))] = 1.0
    put("za", za)
    p_seg = np.bincount(prob.pair_seg, weights=x * prob.p_node_kw[prob.pair_job], minlength=len(prob.seg_free))
    put("p_unit", np.bincount(prob.unit_of_seg, weights=p_seg, minlength=nu))
    G = segment_limit_matrices(prob)["equipment_power_limit"]
    cap = prob.power_cap_kw
    head = ((cap - prob.power_now_kw - G.T @ p_seg) / cap)[prob.power_now_kw < cap]
    put("m", max(-1.0, min(prob.m_ub, float(head.min()))) if head.size else prob.m_ub)
    return col


def segment_allocation(prob: PlacementProblem, lm: LinearModel, info: SolveInfo, integral: bool = True) -> np.ndarray:
    """Nodes per (pair_job, pair_seg) from a model solution: array-locality jobs as solved, the other jobs'
    unit totals filled into their unit's segments in order after them (`integral=False`: fractional LP
    values kept, for guiding the greedy start)."""
    rnd = np.rint if integral else (lambda v: np.asarray(v, float))
    xs = rnd(lm.value(info, "xs"))
    xu = rnd(lm.value(info, "xu"))
    x = np.zeros(len(prob.pair_job))
    x[prob.s_pair] = xs
    left = prob.seg_free - np.bincount(prob.pair_seg[prob.s_pair], weights=xs, minlength=len(prob.seg_free))
    keep = xu > 1e-9
    items = np.flatnonzero(keep)
    ii, cc, amt = _interval_fill(prob.u_unit[items], xu[items], prob.unit_of_seg, np.maximum(left, 0.0))
    jobs, segs = prob.u_job[items[ii]], cc
    ns = len(prob.seg_free)
    pkeys = prob.pair_job * ns + prob.pair_seg  # sorted: pairs come from np.nonzero (job-major)
    np.add.at(x, np.searchsorted(pkeys, jobs * ns + segs), amt)
    return x


def _interval_fill(item_grp: np.ndarray, item_amt: np.ndarray, cont_grp: np.ndarray, cont_cap: np.ndarray):
    """Lay the items of each group end to end over the containers of the same group (each container
    `cont_cap` long, in index order); return (item, container, overlap) for every non-empty overlap."""
    io = np.argsort(item_grp, kind="stable")
    co = np.argsort(cont_grp, kind="stable")
    ig, ia = item_grp[io], np.asarray(item_amt, float)[io]
    cg, ca = cont_grp[co], np.asarray(cont_cap, float)[co]
    ng = int(max(ig.max(initial=-1), cg.max(initial=-1))) + 1
    i_end = np.cumsum(ia) - np.concatenate([[0.0], np.cumsum(ia)])[np.searchsorted(ig, ig)]
    c_cum = np.concatenate([[0.0], np.cumsum(ca)])
    c_first = np.searchsorted(cg, np.arange(ng))
    c_last = np.searchsorted(cg, np.arange(ng), side="right")
    c_end = np.cumsum(ca) - c_cum[c_first[cg]]
    i_start = i_end - ia
    c_start = c_end - ca
    n_c = (c_last - c_first)[ig]
    rep_i = np.repeat(np.arange(len(ig)), n_c)
    k = np.arange(len(rep_i)) - np.repeat(np.cumsum(n_c) - n_c, n_c)
    rep_c = c_first[ig[rep_i]] + k
    ov = np.minimum(i_end[rep_i], c_end[rep_c]) - np.maximum(i_start[rep_i], c_start[rep_c])
    m = ov > 1e-9
    return io[rep_i[m]], co[rep_c[m]], ov[m]


# ------------------------------------------------------------------------------------------------ solve


@dataclass
class PlacementResult:
    dataset: xr.Dataset
    info: SolveInfo
    relaxation: SolveInfo | None


def optimize_placement(layout: SiteLayout, jobs: list[PlacementJob], state: SiteState | None = None,
                       options: PlacementOptions | None = None) -> xr.Dataset:
    """Place the queue; returns the placement Dataset. Raises `InfeasibleError` (planner's words) when the
    required jobs cannot all be placed, `InputError` for bad input."""
    opt = options or PlacementOptions()
    state = state or SiteState.empty(layout)
    prob = prepare(layout, jobs, state, opt)
    req_blocked = [prob.not_placeable[j.name] for j in jobs if j.required and j.name in prob.not_placeable]
    if req_blocked:
        raise InfeasibleError("; ".join(req_blocked), {"jobs": [j.name for j in jobs if j.required
                                                                and j.name in prob.not_placeable]})
    # LP relaxation first: its admissions guide the greedy start, its duals price the limits
    mr = build_placement(prob, relax=True)
    relax_info = solve_relaxation(prob, mr)
    if not relax_info.has_solution:
        raise_if_out_of_time(relax_info, opt.time_limit_s, "placement (LP relaxation)")
        explain_infeasible(prob)
    lm_relax = mr._linear
    model = build_placement(prob)
    info = solve_placement(prob, model, y_lp=lm_relax.value(relax_info, "y"),
                           x_lp=segment_allocation(prob, lm_relax, relax_info, integral=False),
                           lp_bound=relax_info.objective if relax_info.status == "optimal" else None)
    if not info.has_solution:
        raise_if_out_of_time(info, opt.time_limit_s, "placement")
        explain_infeasible(prob)
    return extract_placement(prob, model._linear, info, lm_relax, relax_info)


RELAX_HIGHS_OPTIONS = {"simplex_scale_strategy": 0}
"""HiGHS options for the LP relaxation. Without scaling, dual simplex needs ~3,000 iterations instead of
~15,000 on colossus-1 with the reserve (0.5 s instead of 2.9 s; same optimum and duals to 1e-7)."""


def solve_relaxation(prob: PlacementProblem, model: pyo.ConcreteModel, duals: bool = True) -> SolveInfo:
    """The LP relaxation (`build_placement(prob, relax=True)`): admissions to guide the warm start, the
    bound for `solve_placement` and, with `duals`, the prices of the limits."""
    return solve(model, prob.options.time_limit_s, prob.options.rel_gap, duals=duals, load_pyomo=False,
                 options=RELAX_HIGHS_OPTIONS)


def start_check(lm: LinearModel, col: np.ndarray, tol: float = 1e-6) -> tuple[bool, np.ndarray]:
    """(is `col` a feasible integer point of the model, its row activities)."""
    act = lm.matrix() @ col
    r_lb, r_ub = lm.row_bounds()
    c_lb, c_ub, integ = lm.col_bounds()
    ok = bool(np.all(act >= r_lb - tol * np.maximum(1.0, np.abs(r_lb))) and
              np.all(act <= r_ub + tol * np.maximum(1.0, np.abs(r_ub))) and
              np.all(col >= c_lb - tol) and np.all(col <= c_ub + tol) and
              np.all(np.abs(col[integ] - np.rint(col[integ])) <= tol))
    return ok, act


def solve_placement(prob: PlacementProblem, model: pyo.ConcreteModel, warm_start: bool = True,
                    y_lp: np.ndarray | None = None, x_lp: np.ndarray | None = None, lns: bool = True,
                    lp_bound: float | None = None) -> SolveInfo:
    """HiGHS on the placement MILP, starting from the best of the greedy placements (guided by the LP
    relaxation's admissions `y_lp` when given) and the hall master's placement.

    `lp_bound`: objective of the LP relaxation of this same model (`build_placement(prob, relax=True)`),
    a valid bound on the MILP's optimum. The hall master without unit margin is a relaxation too (see
    `hall_master`); it is solved when the starts miss the gap, and its bound is used when tighter. When the
    warm start is feasible and already within `rel_gap` of the best bound, branch and bound could only
    confirm what is known, so it is not run: the start is returned with status "optimal" and its gap
    against that bound (`termination` says which). After branch and bound, the reported gap is the smaller
    of HiGHS's and the one against that bound."""
    lm = model._linear
    opt = prob.options
    t0 = time.perf_counter()
    col = None
    bound = float(lp_bound) if lp_bound is not None and np.isfinite(lp_bound) else -np.inf  # objective, minimised
    bound_src = "the LP relaxation bound"
    w_m = opt.headroom_weight_pu * float(prob.value.min()) / prob.value_scale

    def gap_of(obj: float) -> float:
        return max(0.0, obj - bound) / max(abs(obj), 1e-12) if np.isfinite(bound) else np.inf

    if warm_start:
        x, y = best_greedy(prob, y_lp, x_lp)
        if lns and opt.lns and len(prob.layout.hall_ids) > 1:
            x, y = improve_by_hall(prob, x, y, y_lp, time_limit_s=min(3.0, opt.time_limit_s / 8))
        col = full_start(prob, lm, x, y)
        # the hall master, first with its unit margin, then (gap not met yet) without: a tighter packing
        # that the restricted MILP may need longer to place, and a bound
        margins = [opt.master_margin_nodes] + ([0.0] if opt.master_margin_nodes > 0 else [])
        for k, margin in enumerate(margins if opt.hall_master else []):
            if k and (gap_of(float(lm.cost @ col)) <= opt.rel_gap or time.perf_counter() - t0 > opt.time_limit_s / 3):
                break
            got = hall_master_start(prob, lm, time_limit_s=min(6.0, opt.time_limit_s / 4), margin_nodes=margin)
            if got is None:
                continue
            col_m = full_start(prob, lm, got[0], got[1])
            if lm.cost @ col_m < lm.cost @ col - 1e-12:
                col = col_m
            b = -got[2] / prob.value_scale - w_m * prob.m_ub  # value bound -> objective bound (m <= m_ub)
            if b > bound:
                bound, bound_src = b, "the hall master's bound"
    if col is not None and np.isfinite(bound):
        obj = float(lm.cost @ col + lm.cost_offset)
        ok, act = start_check(lm, col)
        if ok and gap_of(obj) <= opt.rel_gap:
            integ = lm.col_bounds()[2]
            return SolveInfo(
                status="optimal", objective=obj, is_mip=True, mip_gap=gap_of(obj), build_s=lm.build_s,
                termination=f"Optimal (warm start within the gap of {bound_src}; branch and bound not run)",
                handover_s=time.perf_counter() - t0, solve_s=0.0, extract_s=0.0, n_rows=lm.n_rows, n_cols=lm.n_cols,
                n_integer=int(integ.sum()), backend="matrix", x=col, row_activity=act)
    handle = HighsHandle(lm)
    if col is not None:
        handle.h.setSolution(lm.n_cols, np.arange(lm.n_cols, dtype=np.int32), col)
    warm_s = time.perf_counter() - t0
    # the warm start spends part of the time limit
    info = solve(model, max(1.0, opt.time_limit_s - warm_s), opt.rel_gap, persistent=handle, duals=False,
                 load_pyomo=False, options=opt.highs_options or None)
    info.handover_s += warm_s
    if info.has_solution and gap_of(info.objective) < info.mip_gap:
        info.mip_gap = gap_of(info.objective)
        if info.status == "feasible" and info.mip_gap <= opt.rel_gap:
            info.status = "optimal"
            info.termination += f" (gap met against {bound_src})"
    return info


ELASTIC_FAMILIES = ("unit_free_nodes", "segment_free_nodes", "equipment_power_limit", "cdu_heat_limit",
                    "loop_heat_limit", "heat_rejection_limit")


def explain_infeasible(prob: PlacementProblem) -> None:
    """Re-solve with penalised slack on every capacity limit (and no node bounds or valid cuts that would
    hide a shortfall) and raise `InfeasibleError` naming each limit the required jobs overrun and by how much."""
    model = build_placement(prob, elastic=True)
    lm = model._linear
    per_node = float((prob.value / prob.nodes).max()) / prob.value_scale
    per_kw = float((prob.value / (prob.nodes * prob.p_node_kw)).max()) / prob.value_scale
    pen = {k: 1e3 * (per_node if k.endswith("free_nodes") else per_kw) for k in ELASTIC_FAMILIES if k in lm.families}
    elastic_resolve(lambda: model, pen, describers(prob), max(prob.options.time_limit_s, 10.0), 1e-4,
                    what="the placement of the required jobs", prefix="the required jobs cannot all be placed: ",
                    hard_limits="their locality or GPU type, which rules them out of every segment")


def describers(prob: PlacementProblem) -> dict:
    """Planner's words for the slack of each elastic family (positions are rows of the model's families)."""
    L = prob.layout
    gpn = _gpn(prob)
    nh = len(L.hall_ids)
    hall_free = np.bincount(prob.seg_hall, weights=prob.seg_free, minlength=nh)

    def nodes_by_hall(hall_of_row):
        def f(pos, amt):
            short = np.bincount(hall_of_row[pos], weights=amt, minlength=nh)
            parts = [f"{L.hall_ids[h]} has {int(hall_free[h]) * gpn:,} free GPUs, short by "
                     f"{int(round(short[h])) * gpn:,} GPUs" for h in np.flatnonzero(short > 1e-6)]
            return "free GPU nodes: " + ", ".join(parts)
        return f

    act_p = prob.active.get("equipment_power_limit", np.zeros(0, int))

    def power(pos, amt):
        parts = []
        for p, a in sorted(zip(act_p[pos].tolist(), amt.tolist(), strict=True), key=lambda t: -t[1])[:6]:
            e = prob.power_equip[p]
            rating = L.p_max_kw[e]
            cap = prob.power_cap_kw[p]
            extra = f" (rating {rating:,.0f} kW less {1 - cap / rating:.0%} reserve)" if cap < rating - 1e-6 else ""
            parts.append(f"{L.equip.kind[e]} {L.equip.ids[e]} limit {cap:,.0f} kW{extra} with "
                         f"{prob.power_now_kw[p]:,.0f} kW already used: over by {a:,.1f} kW")
        more = f" (+{len(pos) - 6} more)" if len(pos) > 6 else ""
        return "power: " + "; ".join(parts) + more

    def heat(fam, what, ids, cap, now):
        act = prob.active.get(fam, np.zeros(0, int))

        def f(pos, amt):
            parts = [f"{what} {ids[p]} limit {cap[p]:,.0f} kW with {now[p]:,.0f} kW already used: over by {a:,.1f} kW"
                     for p, a in zip(act[pos].tolist(), amt.tolist(), strict=True)]
            return "heat: " + "; ".join(parts)
        return f

    def cdu(pos, amt):
        return (f"in-rack CDUs of {len(pos)} rack group(s) over their heat capacity by {amt.sum():,.1f} kW in all "
                f"(worst in {L.hall_ids[prob.unit_hall[pos[amt.argmax()]]]}: {amt.max():,.1f} kW)")

    ids = L.equip.ids
    return {
        "unit_free_nodes": nodes_by_hall(prob.unit_hall),
        "segment_free_nodes": nodes_by_hall(prob.seg_hall),
        "equipment_power_limit": power,
        "loop_heat_limit": heat("loop_heat_limit", "facility loop", [ids[i] for i in prob.loops], prob.loop_cap_kw,
                                prob.loop_now_kw),
        "heat_rejection_limit": heat("heat_rejection_limit", "heat rejection", [ids[i] for i in prob.rejection],
                                     prob.rejection_cap_kw, prob.rejection_now_kw),
        "cdu_heat_limit": cdu,
    }


def _gpn(prob) -> int:
    for g in prob.layout.groups:
        if g.server is not None:
            return int(g.server.gpus_per_node)
    return 8


# ------------------------------------------------------------------------------------------------ extract


def disaggregate(prob: PlacementProblem, x: np.ndarray) -> sp.csr_matrix:
    """Nodes of each job on each rack (jobs x racks) from nodes per (pair_job, pair_seg): every segment's
    racks filled in order, jobs one after another (valid because rack limits hold per free node slot)."""
    keep = np.flatnonzero(np.rint(x) > 0)
    racks = np.concatenate(prob.seg_racks) if prob.seg_racks else np.zeros(0, int)
    rack_seg = prob.seg_rack_index[racks]
    ii, cc, amt = _interval_fill(prob.pair_seg[keep], np.rint(x[keep]), rack_seg, prob.state.free_nodes[racks])
    return sp.csr_matrix((np.rint(amt), (prob.pair_job[keep[ii]], racks[cc])),
                         shape=(len(prob.jobs), len(prob.layout.racks)))


def _binding(lm: LinearModel, info: SolveInfo, fam: str, rel_tol: float = 1e-6) -> np.ndarray:
    f = lm.families[fam]
    act = lm.activity(info, fam)
    return np.isfinite(f.ub) & (act >= f.ub - rel_tol * np.maximum(1.0, np.abs(f.ub)) - 1e-6)


def extract_placement(prob: PlacementProblem, lm: LinearModel, info: SolveInfo, lm_relax: LinearModel | None = None,
                      relax_info: SolveInfo | None = None) -> xr.Dataset:
    L, jobs = prob.layout, prob.jobs
    gpn = _gpn(prob)
    x = segment_allocation(prob, lm, info)
    y = np.rint(lm.value(info, "y")).astype(bool)
    job_rack = disaggregate(prob, x)
    job_names = [j.name for j in jobs]
    na = int(L.racks.array.max()) + 1 if (L.racks.array >= 0).any() else 0
    job_array = np.zeros((len(jobs), na))
    np.add.at(job_array, (prob.pair_job, prob.seg_array[prob.pair_seg]), x * gpn)
    rack_nodes_new = np.asarray(job_rack.sum(axis=0)).ravel()
    p_rack_new = np.asarray(job_rack.T @ prob.p_node_kw).ravel()
    p_rack_total = prob.state.p_rack_kw + p_rack_new
    # loads through the layout's own aggregation (the cross-check)
    p_own = np.zeros(len(L.equip.ids)) if prob.state.p_own_kw is None else prob.state.p_own_kw
    p_equip = L.up(p_rack_total, p_own)
    pe = prob.power_equip
    q_loop = (L.rack_cooling_incidence.T @ p_rack_total)[prob.loops]
    hall_of_job = np.full(len(jobs), "", dtype=object)
    placed_racks = [job_rack.indices[job_rack.indptr[j]:job_rack.indptr[j + 1]] for j in range(len(jobs))]
    for j, rk in enumerate(placed_racks):
        if rk.size:
            hs = np.unique(L.racks.hall[rk])
            hall_of_job[j] = ",".join(L.hall_ids[h] for h in hs)
    array_ids = np.array([f"array-{a:03d}" for a in range(na)])
    eq_ids = np.array(L.equip.ids)[pe]
    cap = prob.power_cap_kw
    ds = xr.Dataset(
        {
            "admitted": ("job", y, {"units": "1", "long_name": "job admitted"}),
            "gpus_requested": ("job", np.array([j.gpus for j in jobs]), {"units": "GPU", "long_name": "GPUs the job asks for"}),
            "gpus_placed": ("job", (np.bincount(prob.pair_job, weights=x, minlength=len(jobs)) * gpn).astype(int),
                            {"units": "GPU", "long_name": "GPUs given to the job (whole nodes)"}),
            "p_node_kw": ("job", prob.p_node_kw, {"units": "kW", "long_name": "AC input of one node of the job"}),
            "value": ("job", prob.value, {"units": "priority*GPU*h", "long_name": "priority-weighted GPU-hours"}),
            "hall": ("job", hall_of_job.astype(str), {"units": "", "long_name": "hall(s) the job runs in"}),
            "not_placeable": ("job", np.array([prob.not_placeable.get(n, "") for n in job_names]),
                              {"units": "", "long_name": "why the job cannot be placed at all (empty if it can)"}),
            "gpus_job_array": (("job", "array"), job_array.astype(int),
                               {"units": "GPU", "long_name": "GPUs of each job in each array"}),
            "nodes_job_rack": (("job", "rack"), job_rack.toarray().astype(np.int16),
                               {"units": "node", "long_name": "GPU nodes of each job in each rack"}),
            "p_rack_kw": ("rack", p_rack_total, {"units": "kW", "long_name": "rack load after placement"}),
            "p_rack_new_kw": ("rack", p_rack_new, {"units": "kW", "long_name": "rack load added by the placement"}),
            "nodes_free_after": ("rack", prob.state.free_nodes - rack_nodes_new,
                                 {"units": "node", "long_name": "free GPU nodes after placement"}),
            "p_equipment_kw": ("equipment", p_equip[pe], {"units": "kW", "long_name": "load after placement (layout aggregation, no losses)"}),
            "p_equipment_before_kw": ("equipment", prob.power_now_kw, {"units": "kW", "long_name": "load before placement"}),
            "p_limit_kw": ("equipment", cap, {"units": "kW", "long_name": "power limit used (rating less reserve or override)"}),
            "headroom_pu": ("equipment", 1 - p_equip[pe] / cap, {"units": "1", "long_name": "power headroom, fraction of the limit"}),
            "power_limit_binding": ("equipment", _full(prob, "equipment_power_limit", _binding(lm, info, "equipment_power_limit"), False),
                                    {"units": "1", "long_name": "power limit at its bound in the placement"}),
            "q_loop_kw": ("loop", q_loop, {"units": "kW", "long_name": "heat into the facility loop after placement"}),
            "q_loop_limit_kw": ("loop", prob.loop_cap_kw, {"units": "kW", "long_name": "design heat of the loop"}),
        },
        coords={"job": job_names, "array": array_ids, "rack": L.racks.ids, "equipment": eq_ids,
                "equipment_kind": ("equipment", L.kind_array[pe]),
                "loop": np.array(L.equip.ids)[prob.loops]},
    )
    if lm_relax is not None and relax_info is not None and relax_info.row_dual is not None:
        sc = prob.value_scale
        d = _full(prob, "equipment_power_limit", -lm_relax.dual(relax_info, "equipment_power_limit") * sc, 0.0)
        ds["value_per_kw"] = ("equipment", d, {"units": "priority*GPU*h/kW",
                                               "long_name": "marginal value of 1 kW more limit (dual, LP relaxation)"})
        dl = _full(prob, "loop_heat_limit", -lm_relax.dual(relax_info, "loop_heat_limit") * sc, 0.0)
        ds["value_per_kw_loop"] = ("loop", dl, {"units": "priority*GPU*h/kW",
                                                "long_name": "marginal value of 1 kW more loop heat (dual, LP relaxation)"})
    binding = binding_limits(prob, lm, info)
    cc = cross_check(prob, ds)
    ds.attrs.update({
        "optimizer": "placement",
        "objective_value": float(prob.value[y].sum()),
        "value_requested": float(prob.value.sum()),
        "min_headroom_pu": float(lm.value(info, "m")[0]),
        "equipment_over_limit_before": ", ".join(np.array(L.equip.ids)[prob.power_equip[prob.power_now_kw > prob.power_cap_kw]]) or "none",
        "jobs_admitted": int(y.sum()),
        "gpus_admitted": int(ds["gpus_placed"].sum()),
        "binding_limits": "; ".join(binding) if binding else "none",
        "rack_limit_rule": "rack power and CDU limits enforced per free node slot (conservative for uneven racks)",
        "cross_check_max_overload_kw": cc["max_overload_kw"],
        "cross_check": cc["summary"],
        "reserve_pu": prob.options.reserve_pu,
        **info.as_attrs(),
    })
    if relax_info is not None:
        ds.attrs["relaxation_objective_value"] = (float(prob.value @ lm_relax.value(relax_info, "y"))
                                                  if relax_info.has_solution else float("nan"))
    return ds


def _full(prob: PlacementProblem, fam: str, values: np.ndarray, fill) -> np.ndarray:
    """Values on a family's active rows spread back over all its rows (inactive rows get `fill`)."""
    n = {"equipment_power_limit": len(prob.power_equip), "loop_heat_limit": len(prob.loops),
         "heat_rejection_limit": len(prob.rejection)}[fam]
    out = np.full(n, fill, dtype=bool if isinstance(fill, bool) else float)
    out[prob.active[fam]] = values
    return out


def binding_limits(prob: PlacementProblem, lm: LinearModel, info: SolveInfo) -> list[str]:
    L = prob.layout
    out = []
    b = _full(prob, "equipment_power_limit", _binding(lm, info, "equipment_power_limit"), False)
    for p in np.flatnonzero(b & (prob.power_cap_kw - prob.power_now_kw > 1e-6)):
        e = prob.power_equip[p]
        out.append(f"{L.equip.kind[e]} {L.equip.ids[e]} at {prob.power_cap_kw[p]:,.0f} kW")
    for fam, ids, what in (("loop_heat_limit", prob.loops, "facility loop"),
                           ("heat_rejection_limit", prob.rejection, "heat rejection")):
        if fam in lm.families:
            for p in prob.active[fam][_binding(lm, info, fam)]:
                out.append(f"{what} {L.equip.ids[ids[p]]}")
    nb = int(_binding(lm, info, "unit_free_nodes").sum())
    if nb:
        out.append(f"free nodes full in {nb} of {len(prob.unit_free)} units")
    nc = int(_binding(lm, info, "cdu_heat_limit").sum())
    if nc:
        out.append(f"CDU heat full in {nc} segments")
    return out


def cross_check(prob: PlacementProblem, ds: xr.Dataset, tol_kw: float = 1e-3) -> dict:
    """Feed the rack-level placement back through the layout's aggregation: every power limit, loop heat,
    rack nameplate and in-rack CDU must hold, and no rack may hold more nodes than were free."""
    L = prob.layout
    over_p = ds["p_equipment_kw"].values - ds["p_limit_kw"].values
    over_p = np.where(prob.power_now_kw > prob.power_cap_kw, 0.0, over_p)  # already over before: not ours
    over_l = ds["q_loop_kw"].values - ds["q_loop_limit_kw"].values
    over_l = np.where(prob.loop_now_kw > prob.loop_cap_kw, 0.0, over_l)
    p_rack = ds["p_rack_kw"].values
    over_r = np.where(ds["p_rack_new_kw"].values > 0, p_rack - L.racks.p_max_kw, 0.0)
    neg_free = int((ds["nodes_free_after"].values < 0).sum())
    worst = float(max(over_p.max(initial=0.0), over_l.max(initial=0.0), over_r.max(initial=0.0)))
    ok = worst <= tol_kw and neg_free == 0
    summary = ("ok: every power, loop and rack limit holds in the layout aggregation" if ok else
               f"VIOLATION: worst overload {worst:.3f} kW, racks over-filled: {neg_free}")
    return {"ok": ok, "max_overload_kw": worst, "overfilled_racks": neg_free, "summary": summary}


def random_jobs(n: int, seed: int = 0, p_gpu_kw: tuple[float, float] = (0.45, 0.70)) -> list[PlacementJob]:
    """A synthetic queue: sizes 64-8,192 GPUs (power-of-two, small jobs commoner), priority 1-5,
    1-72 h, pod locality for jobs that fit one array, hall locality for most of the rest."""
    rng = np.random.default_rng(seed)
    sizes = rng.choice([64, 128, 256, 512, 1024, 2048, 4096, 8192], size=n,
                       p=[0.2, 0.2, 0.18, 0.14, 0.12, 0.08, 0.05, 0.03])
    out = []
    for i, g in enumerate(sizes.tolist()):
        loc = "array" if g <= 512 and rng.random() < 0.5 else ("hall" if rng.random() < 0.8 else "none")
        out.append(PlacementJob(name=f"job-{i:03d}", gpus=int(g), p_gpu_kw=float(rng.uniform(*p_gpu_kw)),
                                priority=float(rng.integers(1, 6)), duration_h=float(rng.integers(1, 73)),
                                locality=loc))
    return out


__all__ = [
    "PlacementJob", "SiteState", "PlacementOptions", "PlacementProblem", "prepare", "build_placement",
    "optimize_placement", "solve_relaxation", "solve_placement", "extract_placement", "explain_infeasible",
    "cross_check", "node_power_kw", "reach_matrix", "greedy_start", "best_greedy", "start_objective", "hall_master",
    "hall_master_start", "unit_room_kw", "full_start", "start_check", "segment_allocation", "random_jobs", "replace", "INF",
]
