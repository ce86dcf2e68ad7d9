"""Default placement until the placement optimiser is used: jobs laid onto GPU racks in array order.

Each GPU type is a queue of GPU slots: the site's racks of that type in rack order (hall by hall, array by
array). Jobs take consecutive slots in the order given. The result is a sparse job x rack matrix of GPU
counts, built with interval overlaps (searchsorted), no loop over racks.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from twin.errors import InputError, Problem
from twin.layout import SiteLayout
from twin.schema.workload import TrainingJob


def rack_gpu_type(layout: SiteLayout) -> np.ndarray:
    """GPU type name of every rack ('' for racks without GPUs)."""
    names = np.array([info.server.gpu_type if info.server is not None else "" for info in layout.groups] + [""])
    return names[layout.racks.group]


def gpu_capacity(layout: SiteLayout) -> dict[str, int]:
    return layout.gpus_by_type()


def default_gpu_type(layout: SiteLayout) -> str | None:
    cap = gpu_capacity(layout)
    return max(cap, key=cap.get) if cap else None


def resolve_jobs(scenario, layout: SiteLayout) -> list:
    """The scenario's jobs with `gpu_type` filled in, the fill job(s) expanded, job events applied, seeds mixed."""
    wl = scenario.workload
    cap = gpu_capacity(layout)
    default = default_gpu_type(layout)
    jobs = []
    if wl.fill_pu is not None:
        for gtype, n in cap.items():
            gpus = int(round(wl.fill_pu * n))
            if gpus > 0:
                jobs.append(TrainingJob(name=f"fill-{gtype}" if len(cap) > 1 else "fill", gpus=gpus,
                                        gpu_type=gtype, **wl.fill_job))
    problems = []
    for i, j in enumerate(wl.jobs):
        gtype = j.gpu_type or default
        if gtype not in cap:
            problems.append(Problem("<scenario>", f"workload.jobs[{i}].gpu_type",
                                    f"site {layout.site.name!r} has no {gtype!r} GPUs; expected one of {sorted(cap)}"))
            continue
        jobs.append(j.model_copy(update={"gpu_type": gtype}))
    if problems:
        raise InputError(problems)
    # job_start / job_end events move the job's window; the scenario seed is mixed into every job's seed
    by_name = {j.name: k for k, j in enumerate(jobs)}
    for ev in scenario.events:
        if ev.kind in ("job_start", "job_end") and ev.job in by_name:
            k = by_name[ev.job]
            j = jobs[k]
            if ev.kind == "job_start":
                upd = {"start_s": ev.at_h * 3600.0}
                if isinstance(j, TrainingJob) and j.end_s is not None and j.end_s <= upd["start_s"]:
                    upd["end_s"] = None
                jobs[k] = j.model_copy(update=upd) if isinstance(j, TrainingJob) else j
            elif isinstance(j, TrainingJob):
                jobs[k] = j.model_copy(update={"end_s": max(ev.at_h * 3600.0, j.start_s + 1e-3)})
    if scenario.seed:
        jobs = [j.model_copy(update={"seed": (j.seed + 1_000_003 * scenario.seed) & 0x7FFFFFFF}) for j in jobs]
    return jobs


def place(jobs, layout: SiteLayout) -> sp.csr_matrix:
    """job x rack GPU counts: each GPU type's jobs fill its racks in rack order."""
    n_r = len(layout.racks)
    rtype = rack_gpu_type(layout)
    rows, cols, vals = [], [], []
    for gtype in sorted({j.gpu_type for j in jobs}):
        racks = np.flatnonzero(rtype == gtype)
        size = layout.racks.n_gpus[racks].astype(np.int64)
        r_end = np.cumsum(size)
        r_start = r_end - size
        idx = np.array([k for k, j in enumerate(jobs) if j.gpu_type == gtype])
        g = np.array([jobs[k].gpus for k in idx], np.int64)
        j_end = np.cumsum(g)
        j_start = j_end - g
        if j_end[-1] > r_end[-1]:
            raise InputError.one("<scenario>", "workload.jobs", f"jobs need {j_end[-1]:,} {gtype} GPUs, "
                                 f"the site has {r_end[-1]:,}")
        # racks each job touches: from the rack holding its first slot to the one holding its last
        first = np.searchsorted(r_end, j_start, side="right")
        last = np.searchsorted(r_start, j_end, side="left") - 1
        span = last - first + 1
        jr = np.repeat(np.arange(len(idx)), span)
        rr = np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last, strict=True)]) if len(idx) else np.array([], int)
        overlap = np.minimum(j_end[jr], r_end[rr]) - np.maximum(j_start[jr], r_start[rr])
        keep = overlap > 0
        rows.append(idx[jr[keep]])
        cols.append(racks[rr[keep]])
        vals.append(overlap[keep])
    if not rows:
        return sp.csr_matrix((len(jobs), n_r))
    return sp.csr_matrix((np.concatenate(vals).astype(float), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(len(jobs), n_r))
