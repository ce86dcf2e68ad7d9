"""Power capping: per-job GPU power caps that maximise useful throughput under a site or feeder limit
(utility curtailment, a turbine trip, a heat wave derating the chillers).

Model (LP; the curves are concave so their hypograph is exact when throughput is maximised):

    throughput_curve     t[j] <= a_k * c[j] + b_k               every linear piece k of job j's curve
    site_power_limit     sum_j P_j * c[j] <= P_site - P_fixed    [dual -> GPU-equivalents per kW]
    feeder_power_limit   sum_j share[f, j] * P_j * c[j] <= P_f - P_fixed_f

c[j] is the cap as a fraction of the job's uncapped per-GPU power (floor = the curve's first point or the
job's own floor), P_j = gpus_j * p_gpu_j * facility_factor the job's uncapped draw as seen by the limit
(facility_factor > 1 folds in PSU/distribution losses and cooling that scale with IT power), t[j] the
throughput fraction. Objective: maximise sum_j weight_j * gpus_j * t[j], GPU-equivalents of useful work.
The dual of the site limit is the marginal throughput of one more MW of limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo
import xarray as xr

from optimizers.common import LinearModel, SolveInfo, elastic_resolve, raise_if_out_of_time, solve
from optimizers.throughput import ThroughputCurve, curve_for
from twin.errors import InputError

_SRC = "<capping inputs>"


@dataclass(frozen=True)
class CappingJob:
    name: str
    gpus: int
    p_gpu_kw: float  # uncapped average per-GPU power of the job
    curve: ThroughputCurve | None = None  # None: the curve of `gpu_type` / `workload`
    gpu_type: str | None = "h100-sxm"
    workload: str = "training"
    weight: float = 1.0  # value of one GPU-equivalent of this job's throughput
    cap_min_pu: float | None = None  # floor of the cap (None: the curve's first point)
    cap_max_pu: float = 1.0


@dataclass(frozen=True)
class FeederLimit:
    """A limit on part of the site: `share[j]` = fraction of job j's GPUs under this equipment."""

    name: str
    p_max_kw: float
    share: np.ndarray
    p_fixed_kw: float = 0.0


@dataclass(frozen=True)
class CappingInputs:
    jobs: list[CappingJob]
    p_site_max_kw: float | None  # None: no site-wide limit
    p_fixed_kw: float = 0.0  # load the caps do not touch (non-GPU racks, node base load, cooling)
    feeders: list[FeederLimit] = field(default_factory=list)
    facility_factor_pu: float = 1.0
    time_limit_s: float = 30.0

    def validate(self) -> None:
        if not self.jobs:
            raise InputError.one(_SRC, "jobs", "expected at least one job")
        for i, j in enumerate(self.jobs):
            if j.gpus <= 0 or not j.p_gpu_kw > 0:
                raise InputError.one(_SRC, f"jobs[{i}]", "expected gpus > 0 and p_gpu_kw > 0")
            if j.weight < 0:
                raise InputError.one(_SRC, f"jobs[{i}].weight", f"{j.weight}; expected >= 0")
        if self.p_site_max_kw is not None and self.p_site_max_kw < 0:
            raise InputError.one(_SRC, "p_site_max_kw", f"{self.p_site_max_kw}; expected >= 0")
        if self.facility_factor_pu < 1.0:
            raise InputError.one(_SRC, "facility_factor_pu", "expected >= 1")
        for k, f in enumerate(self.feeders):
            if np.shape(f.share) != (len(self.jobs),):
                raise InputError.one(_SRC, f"feeders[{k}].share", f"expected one share per job ({len(self.jobs)})")


def _curves(inp: CappingInputs) -> list[ThroughputCurve]:
    return [j.curve or curve_for(j.gpu_type, j.workload) for j in inp.jobs]


def _bounds(inp: CappingInputs, curves) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([max(j.cap_min_pu if j.cap_min_pu is not None else c.x_min, c.x_min) for j, c in zip(inp.jobs, curves, strict=True)])
    hi = np.array([min(j.cap_max_pu, 1.0) for j in inp.jobs])
    return lo, np.maximum(hi, lo)


def build_capping(inp: CappingInputs) -> pyo.ConcreteModel:
    t0 = time.perf_counter()
    inp.validate()
    curves = _curves(inp)
    lm = LinearModel(pyo.ConcreteModel("capping"))
    nj = len(inp.jobs)
    lo, hi = _bounds(inp, curves)
    lm.var("cap", nj, lo, hi, units="1", long_name="GPU power cap, fraction of the job's uncapped power")
    lm.var("throughput", nj, 0.0, 1.0, units="1", long_name="throughput, fraction of uncapped")
    define_throughput_curves(lm, curves)
    define_power_limits(lm, inp)
    gpus = np.array([j.gpus for j in inp.jobs], float)
    w = np.array([j.weight for j in inp.jobs])
    lm.add_cost("throughput", -w * gpus / _objective_scale(inp))
    lm.finish("useful_throughput")
    lm.build_s = time.perf_counter() - t0
    return lm.model


def _objective_scale(inp: CappingInputs) -> float:
    """GPU-equivalents per unit of objective: the largest job, so objective coefficients stay near 1
    whatever the site's size (HiGHS tolerances are absolute)."""
    return max(max(j.gpus for j in inp.jobs), 1.0)


def define_throughput_curves(lm: LinearModel, curves: list[ThroughputCurve]) -> None:
    rows_j, a_all, b_all = [], [], []
    for j, c in enumerate(curves):
        a, b = c.segments()
        rows_j.append(np.full(len(a), j))
        a_all.append(a)
        b_all.append(b)
    rj, a, b = np.concatenate(rows_j), np.concatenate(a_all), np.concatenate(b_all)
    n = len(rj)
    lm.rows("throughput_curve", n, [("throughput", np.arange(n), rj, 1.0), ("cap", np.arange(n), rj, -a)], ub=b,
            long_name="throughput under the concave curve of the job (every linear piece)")


def job_power_kw(inp: CappingInputs) -> np.ndarray:
    """Uncapped draw of each job as the limit sees it (kW)."""
    return np.array([j.gpus * j.p_gpu_kw for j in inp.jobs]) * inp.facility_factor_pu


def define_power_limits(lm: LinearModel, inp: CappingInputs) -> None:
    P = job_power_kw(inp)
    nj = len(P)
    if inp.p_site_max_kw is not None:
        lm.rows("site_power_limit", 1, [("cap", np.zeros(nj, int), None, P)], ub=inp.p_site_max_kw - inp.p_fixed_kw,
                long_name="capped GPU load + fixed load <= site limit", dual_units="GPU-equivalent/kW")
    if inp.feeders:
        S = np.array([f.share for f in inp.feeders]) * P[None, :]
        r, c = np.nonzero(S)
        lm.rows("feeder_power_limit", len(inp.feeders), [("cap", r, c, S[r, c])],
                ub=np.array([f.p_max_kw - f.p_fixed_kw for f in inp.feeders]),
                long_name="capped GPU load + fixed load under each feeder <= its limit", dual_units="GPU-equivalent/kW")


def _p(kw: float) -> str:
    """A power in the unit a planner reads: MW from 1 MW up, else kW."""
    return f"{kw / 1000:,.3f} MW" if abs(kw) >= 1000 else f"{kw:,.1f} kW"


def describers(inp: CappingInputs) -> dict:
    curves = _curves(inp)
    lo, _ = _bounds(inp, curves)
    P = job_power_kw(inp)

    def site(pos, amt):
        floor = float(P @ lo)
        rng = f"{lo.min():.0%}" if np.isclose(lo.min(), lo.max()) else f"{lo.min():.0%}-{lo.max():.0%}"
        return (f"the site limit of {_p(inp.p_site_max_kw)} is below what the jobs draw at their lowest caps "
                f"({_p(floor)} at {rng} of uncapped power) plus {_p(inp.p_fixed_kw)} of load that capping does not "
                f"touch: short by {_p(float(amt.sum()))}")

    def feeder(pos, amt):
        parts = []
        for p, a in zip(pos.tolist(), amt.tolist(), strict=True):
            f = inp.feeders[p]
            parts.append(f"feeder {f.name} limit of {_p(f.p_max_kw)} is below its jobs at their lowest caps "
                         f"({_p(float((f.share * P) @ lo))}) plus {_p(f.p_fixed_kw)} of load that capping does not "
                         f"touch: short by {_p(a)}")
        return "; ".join(parts)

    return {"site_power_limit": site, "feeder_power_limit": feeder}


def optimize_capping(inp: CappingInputs) -> xr.Dataset:
    """Caps per job and the throughput lost; raises `InfeasibleError` when even the lowest caps break a limit."""
    model = build_capping(inp)
    lm = model._linear
    info = solve(model, inp.time_limit_s, 1e-6, load_pyomo=False)
    if not info.has_solution:
        raise_if_out_of_time(info, inp.time_limit_s, "power caps")
        # 1e3 GPU-equivalents per kW of slack: far above any job's throughput per kW
        pen = {k: 1e3 for k in ("site_power_limit", "feeder_power_limit") if k in lm.families}
        elastic_resolve(lambda: build_capping(inp), pen, describers(inp), inp.time_limit_s, 1e-6,
                        what="power capping", hard_limits="the jobs' own cap bounds")
    return extract_capping(inp, lm, info)


def extract_capping(inp: CappingInputs, lm: LinearModel, info: SolveInfo) -> xr.Dataset:
    curves = _curves(inp)
    cap = lm.value(info, "cap").copy()
    # the throughput variable sits on the curve at the optimum; read it off the curve itself
    thr = np.array([c(x) for c, x in zip(curves, cap, strict=True)])
    gpus = np.array([j.gpus for j in inp.jobs], float)
    w = np.array([j.weight for j in inp.jobs])
    p_gpu = np.array([j.p_gpu_kw for j in inp.jobs])
    P = job_power_kw(inp)
    ds = xr.Dataset(
        {
            "cap_pu": ("job", cap, {"units": "1", "long_name": "GPU power cap, fraction of the job's uncapped power"}),
            "p_gpu_cap_kw": ("job", cap * p_gpu, {"units": "kW", "long_name": "per-GPU power cap"}),
            "throughput_pu": ("job", thr, {"units": "1", "long_name": "throughput, fraction of uncapped"}),
            "p_job_kw": ("job", cap * P, {"units": "kW", "long_name": "job draw under the cap, as the limit sees it"}),
            "p_job_uncapped_kw": ("job", P, {"units": "kW", "long_name": "job draw uncapped, as the limit sees it"}),
            "throughput_lost_gpu_eq": ("job", w * gpus * (1 - thr),
                                       {"units": "GPU-equivalent", "long_name": "weighted throughput lost to the cap"}),
            "curve": ("job", np.array([c.name for c in curves]), {"units": "", "long_name": "throughput curve used"}),
        },
        coords={"job": [j.name for j in inp.jobs]},
    )
    attrs = {
        "optimizer": "capping",
        "throughput_gpu_eq": float((w * gpus * thr).sum()),
        "throughput_uncapped_gpu_eq": float((w * gpus).sum()),
        "throughput_lost_gpu_eq": float((w * gpus * (1 - thr)).sum()),
        "throughput_lost_pu": float((w * gpus * (1 - thr)).sum() / max((w * gpus).sum(), 1e-12)),
        "p_capped_kw": float(P @ cap + inp.p_fixed_kw),
        "p_uncapped_kw": float(P.sum() + inp.p_fixed_kw),
        "p_site_max_kw": float(inp.p_site_max_kw) if inp.p_site_max_kw is not None else float("nan"),
        **info.as_attrs(),
    }
    if "site_power_limit" in lm.families and info.row_dual is not None:
        d = -float(lm.dual(info, "site_power_limit")[0]) * _objective_scale(inp)
        attrs["marginal_throughput_gpu_eq_per_mw"] = d * 1000.0
        attrs["site_limit_binding"] = int(abs(lm.activity(info, "site_power_limit")[0] -
                                              (inp.p_site_max_kw - inp.p_fixed_kw)) < 1e-6 * max(1.0, inp.p_site_max_kw))
    if "feeder_power_limit" in lm.families and info.row_dual is not None:
        ds = ds.assign_coords(feeder=[f.name for f in inp.feeders])
        ds["marginal_throughput_gpu_eq_per_mw_feeder"] = (
            "feeder", -lm.dual(info, "feeder_power_limit") * _objective_scale(inp) * 1000.0,
            {"units": "GPU-equivalent/MW", "long_name": "marginal throughput of 1 MW more feeder limit (dual)"})
    ds.attrs.update(attrs)
    return ds


def cross_check_capping(layout, ds: xr.Dataset, job_rack_gpus, p_rack_other_kw: np.ndarray,
                        limits_kw: dict[str, float] | None = None, gpus_per_node: int = 8,
                        p_node_base_kw: float = 0.0) -> dict:
    """Feed the caps back through the layout's power aggregation: rack load = capped GPUs of each job on
    the rack (+ node base + other load), summed up the power tree; returns the load of each limited
    equipment against its limit."""
    import scipy.sparse as sp

    M = sp.csr_matrix(job_rack_gpus)  # jobs x racks, GPU counts
    p_gpu = ds["p_gpu_cap_kw"].values
    p_rack = (M.T @ p_gpu) + np.asarray(M.sum(axis=0)).ravel() / gpus_per_node * p_node_base_kw + p_rack_other_kw
    up = layout.up(p_rack)
    out = {}
    for eid, lim in (limits_kw or {}).items():
        v = float(up[layout.index[eid]])
        out[eid] = {"p_kw": v, "limit_kw": float(lim), "ok": v <= lim * (1 + 1e-9) + 1e-6}
    return {"p_rack_kw": p_rack, "p_equipment_kw": up, "limits": out,
            "ok": all(v["ok"] for v in out.values())}
