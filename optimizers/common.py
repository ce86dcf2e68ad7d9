"""Shared machinery of the optimisers: linear Pyomo models kept in matrix form, the HiGHS solve step,
elastic (penalised-slack) re-solves that explain infeasibility, and xarray extraction.

Why a matrix registry beside the Pyomo model
--------------------------------------------
Every optimiser here is a linear (mixed-integer) programme whose constraint families are uniform over
time. Builders declare each variable family and each constraint family once, as numpy blocks
(`LinearModel.var`, `LinearModel.rows`). From that one declaration we build

* the Pyomo components (`model.<name>`: an indexed `Var` or `Constraint` with the same name), so the model
  can be inspected, written to an LP file or solved by any Pyomo solver
  (`solve(..., backend="pyomo")` goes through `pyomo.contrib.solver` 'highs');
* the sparse matrix that the default backend (`backend="matrix"`) hands to highspy in one `passModel`.

The matrix hand-over skips Pyomo's per-constraint expression walk, which on a year-hourly dispatch costs
more than HiGHS's own solve (see benchmarks/bench_dispatch.py). Both come from the same declaration, and
`tests/unit/test_dispatch.py` checks that the two backends return the same optimum.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import highspy
import numpy as np
import pyomo.environ as pyo
import xarray as xr
from pyomo.core.base.matrix_constraint import MatrixConstraint
from pyomo.core.expr.numeric_expr import LinearExpression
from scipy import sparse

from twin.errors import InfeasibleError

INF = highspy.kHighsInf

# --------------------------------------------------------------------------------------------- HiGHS banner


def _swallow_highs_banner() -> None:
    """HiGHS 1.16 writes its banner ("Running HiGHS ...") from C++ to file descriptor 1 when the first
    `Highs` object of the process is constructed, before any option can be set; later constructions
    print nothing. The CLI prints tables on stdout, so this constructs that first instance here, at
    import, with fd 1 pointed at /dev/null (C stdio flushed before and after). Every later
    `highspy.Highs()` in the process (ours, Pyomo's, a benchmark's) is then silent. If fd 1 cannot be
    redirected (no stdout), the banner goes wherever fd 1 goes, as before."""
    import ctypes
    import os
    import sys

    try:
        libc = ctypes.CDLL(None)
        flush = lambda: libc.fflush(None)  # noqa: E731
    except OSError:  # pragma: no cover - no C library handle (not on Linux/macOS)
        flush = lambda: None  # noqa: E731
    for stream in (sys.stdout, sys.__stdout__):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    try:
        saved = os.dup(1)
    except OSError:
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        flush()
        os.dup2(devnull, 1)
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        flush()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    del h


_swallow_highs_banner()


def new_highs(**options) -> highspy.Highs:
    """A `highspy.Highs` with output off (set right after construction) and `options` applied. The
    banner of the process's first construction has already been swallowed at import of this module."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    for k, v in options.items():
        h.setOptionValue(k, v)
    return h

# --------------------------------------------------------------------------------------------- registry


@dataclass
class VarFamily:
    name: str
    offset: int  # first global column
    size: int
    lb: np.ndarray
    ub: np.ndarray
    integer: bool
    units: str
    long_name: str

    @property
    def cols(self) -> np.ndarray:
        return np.arange(self.offset, self.offset + self.size)


@dataclass
class RowFamily:
    name: str
    offset: int  # first global row
    size: int
    lb: np.ndarray
    ub: np.ndarray
    rows: np.ndarray  # local row of each nonzero
    cols: np.ndarray  # global column of each nonzero
    vals: np.ndarray
    long_name: str
    dual_units: str


def _bound_list(a: np.ndarray) -> list:
    """Float list with None where the bound is infinite (Pyomo's 'no bound')."""
    o = np.asarray(a, float).astype(object)
    o[~np.isfinite(np.asarray(a, float))] = None
    return o.tolist()


class RowFamilyConstraint(MatrixConstraint):
    """Pyomo's `MatrixConstraint` (CSR rows, body built on access) with the iteration signatures that
    current Pyomo block traversal passes (`values(sort)` etc.)."""

    def keys(self, sort=False, ordered=False):
        return iter(range(len(self)))

    def values(self, sort=False, ordered=False):
        return iter(self._data)

    def items(self, sort=False, ordered=False):
        return iter(enumerate(self._data))


Term = tuple[str, np.ndarray | Sequence[int] | None, np.ndarray | Sequence[int] | None, np.ndarray | float]
"""(variable family, local rows, positions in the variable family, coefficients); `None` rows/positions
mean arange(size) of the constraint family; coefficients broadcast."""


class LinearModel:
    """A linear (MI)LP declared in numpy blocks, mirrored into a Pyomo `ConcreteModel`.

    Attach with `lm = LinearModel(pyo.ConcreteModel(name))`; `lm.model._linear is lm`.
    """

    def __init__(self, model: pyo.ConcreteModel):
        self.model = model
        model._linear = self
        self.vars: dict[str, VarFamily] = {}
        self.families: dict[str, RowFamily] = {}
        self.cost = np.zeros(0)
        self.cost_offset = 0.0
        self._vardata: list = []
        self.build_s = 0.0  # builders add their own wall time here
        self.handle: HighsHandle | None = None  # persistent HiGHS instance, when one is kept
        self._objective_name = "total_cost"
        self._pyomo_objective_stale = False  # cost changed since the Pyomo objective was written
        self._elastic: dict[str, tuple[str, np.ndarray]] = {}  # slack family -> (row family, its rows)

    # ---- declaration
    @property
    def n_cols(self) -> int:
        return len(self.cost)

    @property
    def n_rows(self) -> int:
        return sum(f.size for f in self.families.values())

    def var(self, name: str, size: int, lb=0.0, ub=INF, integer: bool = False, units: str = "",
            long_name: str = "") -> pyo.Var:
        lb_a = np.broadcast_to(np.asarray(lb, float), (size,)).copy()
        ub_a = np.broadcast_to(np.asarray(ub, float), (size,)).copy()
        fam = VarFamily(name, self.n_cols, size, lb_a, ub_a, integer, units, long_name)
        self.vars[name] = fam
        self.cost = np.concatenate([self.cost, np.zeros(size)])
        lbs, ubs = _bound_list(lb_a), _bound_list(ub_a)
        if len(set(lbs)) <= 1 and len(set(ubs)) <= 1:  # uniform bounds: the fast path of Var
            bounds = (lbs[0] if lbs else None, ubs[0] if ubs else None)
        else:
            def bounds(m, i):
                return (lbs[i], ubs[i])
        comp = pyo.Var(range(size), domain=pyo.Integers if integer else pyo.Reals, bounds=bounds, doc=long_name)
        self.model.add_component(name, comp)
        self._vardata.extend(comp[i] for i in range(size))
        self.handle = None
        return comp

    def rows(self, name: str, size: int, terms: list[Term], lb=-INF, ub=INF, long_name: str = "",
             dual_units: str = "") -> pyo.Constraint:
        """Constraint family `lb <= sum(terms) <= ub`, `size` rows; equality when lb == ub."""
        r_all, c_all, v_all = [], [], []
        for var_name, rows, pos, coef in terms:
            vf = self.vars[var_name]
            rows_a = np.arange(size) if rows is None else np.asarray(rows, dtype=np.int64)
            pos_a = np.arange(vf.size) if pos is None else np.asarray(pos, dtype=np.int64)
            pos_a = np.broadcast_to(pos_a, rows_a.shape)
            coef_a = np.broadcast_to(np.asarray(coef, float), rows_a.shape)
            keep = coef_a != 0.0
            r_all.append(rows_a[keep])
            c_all.append(pos_a[keep] + vf.offset)
            v_all.append(coef_a[keep])
        fam = RowFamily(
            name, self.n_rows, size,
            np.broadcast_to(np.asarray(lb, float), (size,)).copy(),
            np.broadcast_to(np.asarray(ub, float), (size,)).copy(),
            np.concatenate(r_all) if r_all else np.zeros(0, np.int64),
            np.concatenate(c_all) if c_all else np.zeros(0, np.int64),
            np.concatenate(v_all) if v_all else np.zeros(0),
            long_name, dual_units,
        )
        self.families[name] = fam
        self._add_pyomo_constraint(fam)
        self.handle = None
        return getattr(self.model, name)

    def add_cost(self, var_name: str, coef, pos=None) -> None:
        vf = self.vars[var_name]
        idx = vf.cols if pos is None else vf.offset + np.asarray(pos, dtype=np.int64)
        np.add.at(self.cost, idx, np.broadcast_to(np.asarray(coef, float), idx.shape))

    def set_cost(self, var_name: str, coef, pos=None) -> None:
        """Replace cost coefficients of one variable family (kept in sync with a persistent handle)."""
        vf = self.vars[var_name]
        idx = vf.cols if pos is None else vf.offset + np.asarray(pos, dtype=np.int64)
        self.cost[idx] = np.broadcast_to(np.asarray(coef, float), idx.shape)
        if self.handle is not None:
            self.handle.h.changeColsCost(len(idx), idx.astype(np.int32), self.cost[idx])
        self._pyomo_objective_stale = True

    def set_row_bounds(self, family: str, lb, ub) -> None:
        """Replace the bounds of one constraint family (kept in sync with a persistent handle and the
        Pyomo mirror)."""
        f = self.families[family]
        f.lb = np.broadcast_to(np.asarray(lb, float), (f.size,)).copy()
        f.ub = np.broadcast_to(np.asarray(ub, float), (f.size,)).copy()
        if self.handle is not None:
            idx = np.arange(f.offset, f.offset + f.size, dtype=np.int32)
            self.handle.h.changeRowsBounds(f.size, idx, f.lb.copy(), f.ub.copy())
        self._add_pyomo_constraint(f)

    def finish(self, objective_name: str = "total_cost", pyomo_objective: bool = False) -> None:
        """Close the declaration. The Pyomo objective (`model.<objective_name>`, a LinearExpression over
        every costed column: ~0.4 s for a year-hourly dispatch) is written now if `pyomo_objective`,
        else on demand by `sync_pyomo_objective()`, which `solve(..., backend="pyomo")` calls."""
        self._objective_name = objective_name
        self._pyomo_objective_stale = True
        if pyomo_objective:
            self.sync_pyomo_objective()

    def sync_pyomo_objective(self) -> None:
        name = self._objective_name
        nz = np.flatnonzero(self.cost)
        expr = LinearExpression(constant=float(self.cost_offset), linear_coefs=self.cost[nz].tolist(),
                                linear_vars=[self._vardata[i] for i in nz])
        if hasattr(self.model, name):
            self.model.del_component(name)
        self.model.add_component(name, pyo.Objective(expr=expr, sense=pyo.minimize))
        self._pyomo_objective_stale = False

    def _add_pyomo_constraint(self, fam: RowFamily) -> None:
        """Mirror a row family into Pyomo as a `MatrixConstraint` (CSR rows over the model's variables;
        each row's body is built only when something asks for it), named after the family."""
        order = np.argsort(fam.rows, kind="stable")
        indptr = np.searchsorted(fam.rows[order], np.arange(fam.size + 1))
        lb, ub = _bound_list(fam.lb), _bound_list(fam.ub)
        comp = RowFamilyConstraint(fam.vals[order].tolist(), fam.cols[order].tolist(), indptr.tolist(), lb, ub,
                                self._vardata)
        comp.doc = fam.long_name
        if hasattr(self.model, fam.name):
            self.model.del_component(fam.name)
        self.model.add_component(fam.name, comp)

    def materialise(self) -> None:
        """Replace every `RowFamilyConstraint` by an ordinary indexed `Constraint` with one expression per
        row (what Pyomo's solver interfaces and writers walk). Slow on big models (~2 s per 10^5 rows);
        `solve(..., backend="pyomo")` calls it."""
        for fam in self.families.values():
            if isinstance(self.model.component(fam.name), pyo.Constraint) and not isinstance(
                    self.model.component(fam.name), RowFamilyConstraint):
                continue
            order = np.argsort(fam.rows, kind="stable")
            b = np.searchsorted(fam.rows[order], np.arange(fam.size + 1)).tolist()
            cols_l, vals_l = fam.cols[order].tolist(), fam.vals[order].tolist()
            lb = [None if not np.isfinite(v) else float(v) for v in fam.lb]
            ub = [None if not np.isfinite(v) else float(v) for v in fam.ub]
            vd = self._vardata

            def rule(m, i, b=b, cols_l=cols_l, vals_l=vals_l, lb=lb, ub=ub, vd=vd):
                if lb[i] is None and ub[i] is None:
                    return pyo.Constraint.Skip
                body = LinearExpression(constant=0.0, linear_coefs=vals_l[b[i]:b[i + 1]],
                                        linear_vars=[vd[c] for c in cols_l[b[i]:b[i + 1]]])
                return (lb[i], body, ub[i]) if lb[i] != ub[i] else body == lb[i]

            self.model.del_component(fam.name)
            self.model.add_component(fam.name, pyo.Constraint(range(fam.size), rule=rule, doc=fam.long_name))
        if self._pyomo_objective_stale:
            self.sync_pyomo_objective()

    # ---- matrix
    def matrix(self) -> sparse.csc_array:
        fams = list(self.families.values())
        rows = np.concatenate([f.rows + f.offset for f in fams]) if fams else np.zeros(0, np.int64)
        cols = np.concatenate([f.cols for f in fams]) if fams else np.zeros(0, np.int64)
        vals = np.concatenate([f.vals for f in fams]) if fams else np.zeros(0)
        return sparse.csc_array((vals, (rows, cols)), shape=(self.n_rows, self.n_cols))

    def row_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        fams = list(self.families.values())
        return (np.concatenate([f.lb for f in fams]), np.concatenate([f.ub for f in fams]))

    def col_bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fams = list(self.vars.values())
        integ = np.concatenate([np.full(f.size, f.integer) for f in fams])
        return (np.concatenate([f.lb for f in fams]), np.concatenate([f.ub for f in fams]), integ)

    @property
    def is_mip(self) -> bool:
        return any(f.integer for f in self.vars.values())

    # ---- solution access
    def value(self, info: SolveInfo, name: str) -> np.ndarray:
        f = self.vars[name]
        return info.x[f.offset:f.offset + f.size]

    def dual(self, info: SolveInfo, name: str) -> np.ndarray:
        if info.row_dual is None:
            raise ValueError(f"no duals for {name!r}: the last solve was a MIP without a fixed-integer LP re-solve")
        f = self.families[name]
        return info.row_dual[f.offset:f.offset + f.size]

    def activity(self, info: SolveInfo, name: str) -> np.ndarray:
        f = self.families[name]
        return info.row_activity[f.offset:f.offset + f.size]


# --------------------------------------------------------------------------------------------- solving


@dataclass
class SolveInfo:
    """What one solve did: status, objective, timings (s) and, for the matrix backend, the raw vectors."""

    status: str  # "optimal" | "feasible" (time/gap limit with an incumbent) | "infeasible" | "unbounded" | "error"
    termination: str  # HiGHS model status text
    objective: float
    is_mip: bool
    mip_gap: float
    build_s: float
    handover_s: float
    solve_s: float
    extract_s: float
    n_rows: int
    n_cols: int
    n_integer: int
    backend: str
    simplex_iterations: int = 0
    x: np.ndarray | None = field(default=None, repr=False)
    row_dual: np.ndarray | None = field(default=None, repr=False)
    row_activity: np.ndarray | None = field(default=None, repr=False)
    duals_from_fixed_lp: bool = False

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible")

    @property
    def total_s(self) -> float:
        return self.build_s + self.handover_s + self.solve_s + self.extract_s

    def as_attrs(self, prefix: str = "solver_") -> dict:
        keys = ("status", "termination", "objective", "is_mip", "mip_gap", "build_s", "handover_s",
                "solve_s", "extract_s", "n_rows", "n_cols", "n_integer", "backend", "simplex_iterations")
        return {prefix + k: (int(v) if isinstance(v, bool) else v) for k in keys for v in [getattr(self, k)]}


def highs_from_arrays(cost, col_lb, col_ub, row_lb, row_ub, A: sparse.csc_array, integer=None,
                      offset: float = 0.0) -> highspy.Highs:
    """A silent `highspy.Highs` holding `min cost'x + offset, row_lb <= A x <= row_ub, col_lb <= x <= col_ub`
    (columns flagged in `integer` integral), handed over as arrays."""
    A = sparse.csc_array(A)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(cost), A.shape[0]
    lp.col_cost_ = cost
    lp.offset_ = offset
    lp.col_lower_, lp.col_upper_ = col_lb, col_ub
    lp.row_lower_, lp.row_upper_ = row_lb, row_ub
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data
    if integer is not None and np.any(integer):
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                           for i in integer]
    h = new_highs()
    h.passModel(lp)
    return h


class HighsHandle:
    """A highspy instance holding one `LinearModel`; kept for fast re-solves (cost changes are pushed by
    `LinearModel.set_cost`, row bound changes by `LinearModel.set_row_bounds`)."""

    def __init__(self, lm: LinearModel):
        row_lb, row_ub = lm.row_bounds()
        col_lb, col_ub, integ = lm.col_bounds()
        h = highs_from_arrays(lm.cost, col_lb, col_ub, row_lb, row_ub, lm.matrix(), integ, lm.cost_offset)
        self.h, self.lm = h, lm
        self.integer_cols = np.flatnonzero(integ).astype(np.int32)
        self.n_rows, self.n_cols = lm.n_rows, lm.n_cols


_STATUS = {
    "Optimal": "optimal",
    "Infeasible": "infeasible",
    "Primal infeasible or unbounded": "infeasible",
    "Unbounded": "unbounded",
    "Time limit reached": "time_limit",
    "Iteration limit reached": "time_limit",
    "Solution limit reached": "time_limit",
    "Interrupted by user": "time_limit",
}


def solve(model: pyo.ConcreteModel, time_limit_s: float = 60.0, rel_gap: float = 1e-3,
          persistent: HighsHandle | bool | None = None, backend: str = "matrix", duals: bool = True,
          load_pyomo: bool = True, options: dict | None = None) -> SolveInfo:
    """Solve a model built with `LinearModel` by HiGHS.

    backend "matrix": hand the declared matrix to highspy directly (fast; persistent re-solves).
      `persistent=True` keeps the highspy instance on `model._linear.handle` for later calls;
      passing a `HighsHandle` (or leaving `persistent=None` when one is kept) re-uses it: HiGHS then
      starts from its last basis. For a MIP with `duals=True` the integer columns are fixed at their
      optimum and the LP re-solved to obtain duals (standard practice for MILP shadow prices; they
      price energy given the commitment, not the commitment itself).
    backend "pyomo": `pyomo.contrib.solver` 'highs' on the Pyomo components (reference path, slower
      hand-over; no duals for MIPs).
    Non-optimal outcomes are returned in `status`, never raised; callers decide (see `elastic_resolve`).
    """
    lm: LinearModel = model._linear
    if backend == "pyomo":
        return _solve_pyomo(lm, time_limit_s, rel_gap, duals, options)
    t0 = time.perf_counter()
    handle = persistent if isinstance(persistent, HighsHandle) else lm.handle
    if handle is None or handle.n_rows != lm.n_rows or handle.n_cols != lm.n_cols:
        handle = HighsHandle(lm)
    if persistent:
        lm.handle = handle
    h = handle.h
    # HiGHS measures time_limit against the instance's cumulative run clock, so a kept (persistent)
    # instance would hit the limit on a later re-solve: allow time_limit_s beyond what has been used
    h.setOptionValue("time_limit", float(h.getRunTime()) + float(time_limit_s))
    h.setOptionValue("mip_rel_gap", float(rel_gap))
    for k, v in (options or {}).items():
        h.setOptionValue(k, v)
    t1 = time.perf_counter()
    h.run()
    t2 = time.perf_counter()
    ms = h.modelStatusToString(h.getModelStatus())
    info_h = h.getInfo()
    status = _STATUS.get(ms, "error")
    has_sol = info_h.primal_solution_status == 2
    if status == "time_limit":
        status = "feasible" if has_sol else "time_limit"
    is_mip = len(handle.integer_cols) > 0
    x = row_dual = act = None
    obj = float("nan")
    fixed_lp = False
    if status in ("optimal", "feasible"):
        sol = h.getSolution()
        x = np.asarray(sol.col_value)
        act = np.asarray(sol.row_value)
        obj = float(info_h.objective_function_value)
        if not is_mip:
            row_dual = np.asarray(sol.row_dual)
        elif duals:
            row_dual = _fixed_integer_duals(handle, x)
            fixed_lp = True
    t3 = time.perf_counter()
    if load_pyomo and x is not None:
        for vd, v in zip(lm._vardata, x.tolist(), strict=True):
            vd.set_value(v, skip_validation=True)
    t4 = time.perf_counter()
    return SolveInfo(
        status=status, termination=ms, objective=obj, is_mip=is_mip,
        mip_gap=float(info_h.mip_gap) if is_mip else 0.0,
        build_s=lm.build_s, handover_s=t1 - t0, solve_s=(t2 - t1) + ((t3 - t2) if fixed_lp else 0.0),
        extract_s=(t4 - t3) + (0.0 if fixed_lp else (t3 - t2)),
        n_rows=lm.n_rows, n_cols=lm.n_cols, n_integer=len(handle.integer_cols), backend="matrix",
        simplex_iterations=int(info_h.simplex_iteration_count), x=x, row_dual=row_dual, row_activity=act,
        duals_from_fixed_lp=fixed_lp,
    )


def _fixed_integer_duals(handle: HighsHandle, x: np.ndarray) -> np.ndarray:
    """Fix integer columns at their (rounded) optimum, relax integrality, re-solve the LP, read row
    duals, then restore the MIP on the same instance."""
    h, ic = handle.h, handle.integer_cols
    lm = handle.lm
    col_lb, col_ub, _ = lm.col_bounds()
    v = np.round(x[ic])
    n = len(ic)
    h.changeColsIntegrality(n, ic, np.array([highspy.HighsVarType.kContinuous] * n))
    h.changeColsBounds(n, ic, v, v)
    h.run()
    dual = np.asarray(h.getSolution().row_dual).copy()
    h.changeColsBounds(n, ic, col_lb[ic], col_ub[ic])
    h.changeColsIntegrality(n, ic, np.array([highspy.HighsVarType.kInteger] * n))
    return dual


def _solve_pyomo(lm: LinearModel, time_limit_s, rel_gap, duals, options) -> SolveInfo:
    from pyomo.contrib.solver.common.factory import SolverFactory as ContribSolverFactory
    from pyomo.contrib.solver.common.results import TerminationCondition as TC

    t0 = time.perf_counter()
    lm.materialise()
    opt = ContribSolverFactory("highs")
    res = opt.solve(lm.model, time_limit=time_limit_s, rel_gap=rel_gap, load_solutions=False,
                    raise_exception_on_nonoptimal_result=False, solver_options=options or {})
    t1 = time.perf_counter()
    tc = res.termination_condition
    status = {TC.convergenceCriteriaSatisfied: "optimal", TC.provenInfeasible: "infeasible",
              TC.infeasibleOrUnbounded: "infeasible", TC.unbounded: "unbounded",
              TC.maxTimeLimit: "time_limit"}.get(tc, "error")
    x = dual = None
    obj = float("nan")
    if res.solution_status.name in ("optimal", "feasible"):
        if status == "time_limit":
            status = "feasible"
        res.solution_loader.load_vars()
        x = np.fromiter((vd.value for vd in lm._vardata), float, len(lm._vardata))
        obj = float(res.incumbent_objective)
        if duals and not lm.is_mip:
            cons = [lm.model.component(f) for f in lm.families]
            dmap = res.solution_loader.get_duals()
            dual = np.concatenate([
                np.fromiter((dmap.get(c[i], 0.0) if i in c else 0.0 for i in range(lm.families[c.local_name].size)),
                            float, lm.families[c.local_name].size)
                for c in cons])
    t2 = time.perf_counter()
    try:
        highs_s = float(res.timing_info.highs_time)
    except (AttributeError, TypeError, ValueError):
        highs_s = t1 - t0
    return SolveInfo(
        status=status, termination=str(tc), objective=obj, is_mip=lm.is_mip, mip_gap=0.0,
        build_s=lm.build_s, handover_s=(t1 - t0) - highs_s, solve_s=highs_s, extract_s=t2 - t1,
        n_rows=lm.n_rows, n_cols=lm.n_cols, n_integer=int(sum(f.size for f in lm.vars.values() if f.integer)),
        backend="pyomo.contrib.solver highs", x=x, row_dual=dual,
    )


# --------------------------------------------------------------------------------------------- elastic


@dataclass(frozen=True)
class Violation:
    family: str
    position: np.ndarray  # rows of the family with a slack
    amount: np.ndarray  # slack, in the row's units (positive = limit exceeded / requirement short)
    message: str


Describer = Callable[[np.ndarray, np.ndarray], str]
"""(positions, amounts) -> planner-readable sentence naming the limit and by how much."""


def add_elastic(lm: LinearModel, penalties: dict[str, float]) -> None:
    """Add penalised slack columns to the named constraint families, in both the matrix and the Pyomo
    model: `body - s_hi <= ub`, `body + s_lo >= lb` (both on equalities). The penalty (objective units
    per unit of slack) should dominate every real cost so that slack appears only where a limit cannot
    be met; give the limits a planner would relax first the lowest penalty."""
    for name, penalty in penalties.items():
        f = lm.families[name]
        for side, sign, bound in (("hi", -1.0, f.ub), ("lo", 1.0, f.lb)):
            rows = np.flatnonzero(np.isfinite(bound))
            if rows.size == 0:
                continue
            sname = f"{name}__slack_{side}"
            lm.var(sname, rows.size, 0.0, INF, units="", long_name=f"elastic slack on {name} ({side})")
            vf = lm.vars[sname]
            f.rows = np.concatenate([f.rows, rows])
            f.cols = np.concatenate([f.cols, vf.cols])
            f.vals = np.concatenate([f.vals, np.full(rows.size, sign)])
            lm.add_cost(sname, penalty)
            lm._elastic[sname] = (name, rows)
        lm._add_pyomo_constraint(f)
    lm.handle = None
    lm._pyomo_objective_stale = True


def violations(lm: LinearModel, info: SolveInfo, describers: dict[str, Describer], tol: float = 1e-6
               ) -> list[Violation]:
    """Slack left in each elastic family after an elastic solve, described in words."""
    out: dict[str, list] = {}
    for sname, (fam, rows) in lm._elastic.items():
        s = lm.value(info, sname)
        hit = s > tol * max(1.0, float(np.abs(lm.families[fam].ub[np.isfinite(lm.families[fam].ub)]).max(initial=1.0)))
        if hit.any():
            p, a = out.setdefault(fam, [[], []])
            p.append(rows[hit])
            a.append(s[hit])
    res = []
    for fam, (p, a) in out.items():
        pos, amt = np.concatenate(p), np.concatenate(a)
        desc = describers.get(fam)
        msg = desc(pos, amt) if desc else f"{fam} cannot be met in {pos.size} rows (max shortfall {amt.max():.6g})"
        res.append(Violation(fam, pos, amt, msg))
    return res


def raise_if_out_of_time(info: SolveInfo, time_limit_s: float, what: str) -> None:
    """A solve stopped by its time limit before any solution proves nothing about feasibility: say so
    rather than run an elastic re-solve that would explain a limit that may not bind."""
    if info.status == "time_limit":
        raise InfeasibleError(f"no {what} found within the {time_limit_s:g} s time limit: HiGHS stopped before any "
                              "feasible solution, which does not mean none exists; allow more time or shorten the "
                              "horizon", {"status": "time_limit"})


def elastic_resolve(build: Callable[[], pyo.ConcreteModel], penalties: dict[str, float],
                    describers: dict[str, Describer], time_limit_s: float, rel_gap: float,
                    what: str = "the problem", hard_limits: str = "a limit that is not relaxed",
                    prefix: str = "") -> NoReturn:
    """Re-build the model with elastic slacks on `penalties` families, re-solve, and raise
    `InfeasibleError` naming each limit that cannot be met and by how much (after `prefix`).
    `hard_limits` names, for the planner, what is left when even the relaxed model has no solution."""
    model = build()
    lm: LinearModel = model._linear
    add_elastic(lm, penalties)
    info = solve(model, time_limit_s, rel_gap, duals=False, load_pyomo=False)
    if info.status == "time_limit" and not info.has_solution:
        raise InfeasibleError(f"{what} is infeasible, and the re-solve that would say which limit cannot be met ran "
                              f"out of its {time_limit_s:g} s time limit", {"families": list(penalties)})
    if not info.has_solution:
        raise InfeasibleError(f"{what} is infeasible, and stays infeasible with the limits "
                              f"{', '.join(penalties)} relaxed: the cause lies in {hard_limits}",
                              {"families": list(penalties)})
    viols = violations(lm, info, describers)
    if not viols:
        raise InfeasibleError(f"{what} is infeasible (HiGHS), but the elastic re-solve needs no slack: "
                              "numerical trouble; check the input scaling", {})
    raise InfeasibleError(prefix + "; ".join(v.message for v in viols),
                          {v.family: {"position": v.position.tolist(), "amount": v.amount.tolist()}
                           for v in viols})


# --------------------------------------------------------------------------------------------- xarray


def family_dataarray(lm: LinearModel, info: SolveInfo, name: str, dim: str, coord, units: str | None = None,
                     long_name: str | None = None, scale: float = 1.0, dual: bool = False) -> xr.DataArray:
    """One variable family (or, with dual=True, the duals of one constraint family) as a DataArray."""
    if dual:
        f = lm.families[name]
        data = lm.dual(info, name) * scale
        units = units or f.dual_units
        long_name = long_name or f"dual of {f.long_name or name}"
    else:
        f = lm.vars[name]
        data = lm.value(info, name) * scale
        units = units if units is not None else f.units
        long_name = long_name or f.long_name or name
    return xr.DataArray(np.array(data), dims=(dim,), coords={dim: coord},
                        attrs={"units": units, "long_name": long_name})
