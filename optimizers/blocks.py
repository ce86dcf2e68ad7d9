"""Fast, certified re-solves of a long-horizon LP after a change of costs: solve it as time blocks
(calendar months) with the state at the block boundaries held, then prove how far the joined answer can
be from the true optimum.

Why: a year-hourly LP re-solved from its kept basis after an hourly change of prices needs thousands
of simplex pivots, each as costly as the whole year's basis factors (2-4 s on the dispatch LP). The same
pivots on twelve month LPs cost about a twelfth each.

How:

* Every column gets a block (its time step's block; columns of other sizes, such as a monthly peak,
  take the first block of the rows they sit in). A row whose columns lie in one block is local; in two
  blocks (a state-of-charge or ramp row at a block's first hour, a monthly peak row of a later block) a
  *link* row, kept by the later block; in more (a horizon cap: NOx, CO2) a *global* row.
* *Coupling* columns are the earlier block's columns in a link row (the last hour's state of charge,
  grid import, units online, recent starts; a monthly peak). Every block LP of the held pass holds them at
  their values in the reference solution (a full optimum), so the blocks are independent and their joined
  solution is feasible for the full LP. A global row is split into one budget row per block: each block may use what it used
  in the reference plus an equal share of the unused room, so the budgets add up to the full limit.
* Upper bound (the held pass): the cost of the joined solution, checked feasible against the full matrix.
* Lower bound (the Lagrangian pass): the same month LPs without the link and global rows, every column
  free within its bounds (tightened by bound propagation, so finite), costs reduced by the reference
  duals `y` of those rows. For any `y` the sum of the block optima plus the rows' terms

      sum_b min_x_b (c - A_L' y)' x_b  +  sum_i (y_i L_i if y_i > 0 else y_i U_i)

  is at most the full LP's optimum (weak duality of the Lagrangian relaxation); with the reference prices
  it equals it. `gap = (upper - lower) / |upper|` is therefore a proof, not an estimate. It stays small
  while the change leaves the link rows' and global rows' prices (state-of-charge value at midnight on
  a month's last day, the NOx price) near the reference's: hourly price noise does. A tariff level change
  in the hours the turbines run moves the NOx price: `global_price="held"` then prices the global rows at
  the median over the months of the held pass's budget duals.
* If the certified gap is within the caller's `rel_gap`, the joined solution is the answer; otherwise the
  caller re-solves the full LP, and may `rebase` the blocks on that optimum (3 ms, bases kept).

The block LPs are persistent HiGHS instances: a re-solve pushes the changed costs and starts from each
block's last basis (primal simplex: a cost change leaves it primal feasible).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import highspy
import numpy as np
from scipy import sparse

from optimizers.common import LinearModel, highs_from_arrays

INF = highspy.kHighsInf
_BIG = np.iinfo(np.int64).max // 4
DUAL_TOL = 1e-7  # HiGHS's default dual feasibility tolerance: reduced costs this small count as zero
PRIMAL_TOL = 1e-6  # HiGHS's default primal feasibility tolerance (absolute, on scaled-to-1 rows)


@dataclass
class BlockSolution:
    """A joined block solution and its certificate."""

    x: np.ndarray
    row_dual: np.ndarray
    row_activity: np.ndarray
    upper_usd: float  # objective of x
    lower_usd: float  # proven lower bound on the full LP's optimum
    solve_s: float  # wall time of the block solves
    total_s: float  # including cost push, joining and the certificate
    iterations: int

    @property
    def gap(self) -> float:
        return (self.upper_usd - self.lower_usd) / max(abs(self.upper_usd), 1.0)


def _segment_min_max(keys: np.ndarray, indptr: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per compressed segment (row of a CSR or column of a CSC) the min and max of `values` over the
    segment's nonzeros whose key is >= 0; (_BIG, -1) for segments with none."""
    n = len(indptr) - 1
    seg = np.repeat(np.arange(n), np.diff(indptr))
    ok = keys >= 0
    lo = np.full(n, _BIG, np.int64)
    hi = np.full(n, -1, np.int64)
    np.minimum.at(lo, seg[ok], values[ok])
    np.maximum.at(hi, seg[ok], values[ok])
    return lo, hi


def implied_bounds(A_csr: sparse.csr_array, row_lb, row_ub, col_lb, col_ub, rounds: int = 3
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Column bounds tightened by bound propagation over the rows (`rounds` passes; e.g. turbine output
    <= P x units online <= P x N). The feasible set is unchanged; the certificate needs finite bounds
    where a reduced cost has the wrong sign."""
    lb, ub = col_lb.astype(float).copy(), col_ub.astype(float).copy()
    rows = np.repeat(np.arange(A_csr.shape[0]), np.diff(A_csr.indptr))
    j, a = A_csr.indices, A_csr.data
    n_rows = A_csr.shape[0]
    for _ in range(rounds):
        lo_c = np.where(a > 0, a * lb[j], a * ub[j])  # smallest contribution of each nonzero
        hi_c = np.where(a > 0, a * ub[j], a * lb[j])
        new_lb, new_ub = lb.copy(), ub.copy()
        for contrib, side, tighten_upper in ((lo_c, row_ub, True), (hi_c, row_lb, False)):
            fin = np.isfinite(contrib)
            n_inf = np.bincount(rows, ~fin, n_rows)
            s_fin = np.bincount(rows, np.where(fin, contrib, 0.0), n_rows)
            # the rest of the row without this nonzero: finite only if no other contribution is infinite
            others_inf = n_inf[rows] - (~fin)
            rest = np.where(others_inf > 0, np.nan, s_fin[rows] - np.where(fin, contrib, 0.0))
            limit = (side[rows] - rest) / a  # a x_j <= U - rest (or >= L - rest)
            ok = np.isfinite(limit)
            # dividing by a < 0 flips the side
            to_ub = ok & ((a > 0) == tighten_upper)
            to_lb = ok & ((a > 0) != tighten_upper)
            np.minimum.at(new_ub, j[to_ub], limit[to_ub])
            np.maximum.at(new_lb, j[to_lb], limit[to_lb])
        if np.array_equal(new_lb, lb) and np.array_equal(new_ub, ub):
            break
        lb, ub = new_lb, new_ub
    return lb, ub


def row_terms(y, row_lb, row_ub) -> tuple[np.ndarray, np.ndarray]:
    """Multipliers with the wrong sign for an infinite side set to zero (a valid choice for any bound),
    and each row's term of the weak-duality bound (HiGHS's sign: y > 0 on a row held at its lower side)."""
    y = np.where((y > 0) & ~np.isfinite(row_lb), 0.0, y)
    y = np.where((y < 0) & ~np.isfinite(row_ub), 0.0, y)
    term = np.where(y > 0, y * np.where(np.isfinite(row_lb), row_lb, 0.0),
                    y * np.where(np.isfinite(row_ub), row_ub, 0.0))
    return y, term


def col_terms(d, col_lb, col_ub) -> np.ndarray:
    """Each column's term `min(d l, d u)` of the weak-duality bound; reduced costs within DUAL_TOL of zero
    on a column with an infinite bound count as zero (the solver's own optimality tolerance)."""
    d = np.where((np.abs(d) <= DUAL_TOL) & (~np.isfinite(col_lb) | ~np.isfinite(col_ub)), 0.0, d)
    with np.errstate(invalid="ignore"):
        return np.where(d > 0, d * col_lb, np.where(d < 0, d * col_ub, 0.0))


def month_blocks(lm: LinearModel, time: np.ndarray) -> np.ndarray:
    """Column blocks by calendar month: the columns of every family indexed by time step (size = number
    of steps) get their step's month; the others -1 (their rows decide)."""
    month = np.unique(np.asarray(time).astype("datetime64[M]"), return_inverse=True)[1]
    col_block = np.full(lm.n_cols, -1, np.int64)
    for f in lm.vars.values():
        if f.size == len(month):
            col_block[f.cols] = month
    return col_block


class BlockResolver:
    """Certified block re-solves of one `LinearModel` after cost changes (see the module doc).

    `col_block[j]` is the block of column j, or -1 to let the rows decide. Build once per model; call
    `reference(x, y)` with a full optimum and its row duals, then `resolve()` after each change of
    `lm.cost`. `threads` splits each pass's blocks over that many threads.
    """

    def __init__(self, lm: LinearModel, col_block: np.ndarray, threads: int = 2):
        self.lm = lm
        A = lm.matrix()
        self.A_csc = sparse.csc_array(A)
        self.A_csr = sparse.csr_array(A)
        self._abs_A = abs(self.A_csr)
        self.row_lb, self.row_ub = lm.row_bounds()
        self.col_lb0, self.col_ub0, _ = lm.col_bounds()
        self.col_lb, self.col_ub = implied_bounds(self.A_csr, self.row_lb, self.row_ub, self.col_lb0, self.col_ub0)
        cb = np.asarray(col_block, np.int64).copy()
        # columns without a block take the first block of the rows they sit in
        key = cb[self.A_csr.indices]
        lo, _ = _segment_min_max(key, self.A_csr.indptr, key)
        rkey = np.where(lo < _BIG, lo, -1)[self.A_csc.indices]
        clo, _ = _segment_min_max(rkey, self.A_csc.indptr, rkey)
        unknown = cb < 0
        cb[unknown] = np.where(clo[unknown] < _BIG, clo[unknown], -1)
        # rows by the blocks of their columns: one block -> local; two -> a link row, kept by the later
        # block, whose columns from the earlier one are held; more -> global (split into budget rows)
        key = cb[self.A_csr.indices]
        lo, hi = _segment_min_max(key, self.A_csr.indptr, key)
        seg = np.repeat(np.arange(A.shape[0]), np.diff(self.A_csr.indptr))
        ok = key >= 0
        pairs = np.unique(np.stack([seg[ok], key[ok]]), axis=1)
        n_blocks_in_row = np.bincount(pairs[0], minlength=A.shape[0])
        is_global = (n_blocks_in_row > 2) | (hi < 0)
        row_block = np.where(is_global, -1, hi)
        link = ~is_global & (n_blocks_in_row == 2)
        # coupling (held) columns: those of a link row that belong to its earlier block, and columns in
        # no block at all
        in_link = link[seg] & (key >= 0) & (key < row_block[seg])
        coupling = np.zeros(A.shape[1], bool)
        coupling[self.A_csr.indices[in_link]] = True
        coupling |= cb < 0
        self.owner, self.row_block, self.coupling = cb, row_block, coupling
        self.global_rows = np.flatnonzero(is_global)
        self._global_blocks = self._blocks_in_rows(self.global_rows)  # blocks with columns in each global row
        self.n_blocks = int(max(cb.max(), row_block.max()) + 1)
        # rows the Lagrangian pass prices instead of keeping: global rows and link rows
        self.span_rows = np.flatnonzero(is_global | link)
        self.global_cols = np.flatnonzero(cb < 0)
        self._blocks: list[_Block] | None = None
        self._lagr: list[_Block] | None = None
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self.last_failure = ""
        self.x_ref: np.ndarray | None = None

    # ---- set-up
    def reference(self, x_ref: np.ndarray, y_ref: np.ndarray, time_limit_s: float = 600.0) -> float:
        """Build both passes around a full optimum: the held pass holds the coupling columns at `x_ref` and
        splits the global rows around it; the Lagrangian pass prices the link and global rows at their
        duals in `y_ref`. Every block LP is solved once from scratch (the session's one-off cost).
        Returns the wall time, s."""
        t0 = time.perf_counter()
        self.x_ref = np.asarray(x_ref, float).copy()
        self._blocks = [self._make_block(b) for b in range(self.n_blocks)]
        for blk in self._blocks:
            blk.h.setOptionValue("time_limit", float(time_limit_s))
            blk.h.run()
        self._price_spans(y_ref)
        self._lagr = [self._make_lagrangian_block(b) for b in range(self.n_blocks)]
        for blk in self._lagr:
            blk.h.setOptionValue("time_limit", float(time_limit_s))
            blk.h.run()
        return time.perf_counter() - t0

    def _make_block(self, b: int) -> _Block:
        Ar = self.A_csr
        rows = np.flatnonzero(self.row_block == b)
        owned = np.flatnonzero(self.owner == b)
        sub_local = Ar[rows]
        cols = np.union1d(owned, np.unique(sub_local.indices))
        # budget rows: each global row's coefficients on the columns this block owns
        G = Ar[self.global_rows][:, owned]
        keep = np.flatnonzero(np.diff(G.indptr) > 0)
        G, gidx = G[keep], self.global_rows[keep]
        g_lb, g_ub = self._budgets(G, gidx, owned)
        pos = np.searchsorted(cols, owned)
        G_cols = sparse.csr_array((G.data, pos[G.indices], G.indptr), shape=(len(gidx), len(cols)))
        M = sparse.vstack([sub_local[:, cols], G_cols], format="csc")
        lb, ub = self.col_lb0[cols].copy(), self.col_ub0[cols].copy()
        held = self.coupling[cols]
        lb[held] = ub[held] = self.x_ref[cols[held]]
        is_owned = self.owner[cols] == b
        cost = np.where(is_owned, self.lm.cost[cols], 0.0)
        h = highs_from_arrays(cost, lb, ub, np.concatenate([self.row_lb[rows], g_lb]),
                              np.concatenate([self.row_ub[rows], g_ub]), M)
        return _Block(index=b, h=h, rows=rows, cols=cols, free=cols[~held], free_pos=np.flatnonzero(~held),
                      owned_pos=np.flatnonzero(is_owned), cost=cost, budget=(G, gidx, owned))

    def _budgets(self, G: sparse.csr_array, gidx: np.ndarray, owned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of a block's budget rows: what it uses of each global row in the reference and an equal
        share of the row's unused room, so the blocks' budgets add up to the full limit."""
        used_b = G @ self.x_ref[owned]
        act = self.A_csr[gidx] @ self.x_ref
        share = 1.0 / np.maximum(1, self._global_blocks[np.searchsorted(self.global_rows, gidx)])
        g_ub = np.where(np.isfinite(self.row_ub[gidx]), used_b + (self.row_ub[gidx] - act) * share, INF)
        g_lb = np.where(np.isfinite(self.row_lb[gidx]), used_b - (act - self.row_lb[gidx]) * share, -INF)
        return g_lb, g_ub

    def rebase(self, x_ref: np.ndarray, y_ref: np.ndarray) -> None:
        """Move the reference to another full optimum without rebuilding: its boundary values and budget
        split in the held pass, its duals as the Lagrangian pass's multipliers (3 ms). The block LPs keep
        their bases; the next `resolve` re-solves them from there."""
        self.x_ref = np.asarray(x_ref, float).copy()
        for blk in self._blocks:
            held = np.flatnonzero(self.coupling[blk.cols])
            if len(held):
                v = self.x_ref[blk.cols[held]]
                blk.h.changeColsBounds(len(held), held.astype(np.int32), v, v)
            G, gidx, owned = blk.budget
            if len(gidx):
                g_lb, g_ub = self._budgets(G, gidx, owned)
                pos = np.arange(len(blk.rows), len(blk.rows) + len(gidx), dtype=np.int32)
                blk.h.changeRowsBounds(len(gidx), pos, g_lb, g_ub)
            blk.rebased = True
        self._price_spans(y_ref)

    def _price_spans(self, y_full: np.ndarray) -> None:
        """The Lagrangian pass's multipliers: the link and global rows' entries of `y_full`."""
        self.y_span = self._span_multipliers(np.asarray(y_full, float))
        self.lagr_adjust = self._lagrangian_adjust(self.y_span)

    def _span_multipliers(self, y_full: np.ndarray) -> np.ndarray:
        """The link and global rows' entries of a full dual vector, with those of the wrong sign for an
        infinite side dropped, so the block costs and the rows' terms of the bound use the same ones."""
        y, _ = row_terms(y_full[self.span_rows], self.row_lb[self.span_rows], self.row_ub[self.span_rows])
        return y

    def _make_lagrangian_block(self, b: int) -> _Block:
        """Block b of the Lagrangian pass: its own rows except those spanning two blocks, every column
        it owns free within its implied bounds, costs reduced by the reference duals of the spanning and
        global rows (`lagr_adjust`)."""
        span = np.zeros(len(self.row_lb), bool)
        span[self.span_rows] = True
        rows = np.flatnonzero((self.row_block == b) & ~span)
        cols = np.flatnonzero(self.owner == b)
        M = sparse.csc_array(self.A_csr[rows][:, cols])
        cost = self.lm.cost[cols] + self.lagr_adjust[cols]
        h = highs_from_arrays(cost, self.col_lb[cols], self.col_ub[cols], self.row_lb[rows], self.row_ub[rows], M)
        all_pos = np.arange(len(cols))
        return _Block(index=b, h=h, rows=rows, cols=cols, free=cols, free_pos=all_pos, owned_pos=all_pos, cost=cost)

    def _blocks_in_rows(self, gidx: np.ndarray) -> np.ndarray:
        sub = self.A_csr[gidx]
        own = self.owner[sub.indices]
        seg = np.repeat(np.arange(len(gidx)), np.diff(sub.indptr))
        pairs = np.unique(np.stack([seg[own >= 0], own[own >= 0]]), axis=1)
        return np.bincount(pairs[0], minlength=len(gidx))

    def _lagrangian_adjust(self, y_span: np.ndarray) -> np.ndarray:
        return -(self.A_csc.T @ _scatter(len(self.row_lb), self.span_rows, y_span))

    # ---- re-solve
    def resolve(self, time_limit_s: float = 60.0, global_price: str = "reference") -> BlockSolution | None:
        """Push the model's current costs to every block, re-solve them from their bases and certify the
        joined solution: the held pass gives the solution and the upper bound, the Lagrangian pass (the
        link rows priced at the reference duals) the lower bound. The global rows are priced in the
        Lagrangian pass at the reference duals (`global_price="reference"`: right when the change leaves
        their price, e.g. the NOx price, where it was) or at the median of the held pass's budget duals
        over the months (`"held"`: a change that moves that price, such as a tariff level change). Each
        pass runs its blocks on `threads` threads (HiGHS releases the GIL). None if a block did not solve
        to optimality or the joined solution is off (`last_failure` says which): the caller then
        re-solves in full. The caller compares `gap` with its tolerance."""
        if self._blocks is None:
            raise RuntimeError("BlockResolver.resolve before reference()")
        t0 = time.perf_counter()
        lm = self.lm
        if not self._bounds_unchanged():
            self.last_failure = "the model's bounds changed since reference(): the blocks hold the old ones"
            return None
        failed, held = self._run(self._blocks, lm.cost, time_limit_s)
        y_span, adjust = self.y_span, self.lagr_adjust
        if not failed and global_price == "held" and len(self.global_rows):
            y_span = self._y_span_held(held)
            adjust = self._lagrangian_adjust(y_span)
        if not failed:
            failed, lagr = self._run(self._lagr, lm.cost + adjust, time_limit_s)
        if failed:
            self.last_failure = failed
            return None
        t_solve = time.perf_counter() - t0
        x = self.x_ref.copy()
        y = np.zeros(len(self.row_lb))
        for blk, col_value, row_dual, _obj in held:
            x[blk.free] = col_value[blk.free_pos]
            y[blk.rows] = row_dual[:len(blk.rows)]
        # the global rows' duals: the multipliers of the bound (the held pass prices them month by month)
        y[self.global_rows] = _scatter(len(self.row_lb), self.span_rows, y_span)[self.global_rows]
        activity = self.A_csr @ x
        if not self._feasible(x, activity):
            return None
        upper = float(lm.cost @ x + lm.cost_offset)
        lower = self._lower_bound([obj for *_, obj in lagr], y_span)
        iters = sum(int(blk.h.getInfo().simplex_iteration_count) for blk in self._blocks + self._lagr)
        return BlockSolution(x=x, row_dual=y, row_activity=activity, upper_usd=upper, lower_usd=lower,
                             solve_s=t_solve, total_s=time.perf_counter() - t0, iterations=iters)

    def _y_span_held(self, held: list) -> np.ndarray:
        """Reference multipliers with each global row's replaced by the median over the months of its
        budget row's dual in the held pass (each month's price of the cap; the median passes over the
        months a held boundary or budget pins at an outlying price)."""
        y_full = _scatter(len(self.row_lb), self.span_rows, self.y_span)
        per_row: dict[int, list[float]] = {}
        for blk, _x, row_dual, _obj in held:
            gidx = blk.budget[1]
            for g, v in zip(gidx.tolist(), row_dual[len(blk.rows):].tolist(), strict=True):
                per_row.setdefault(g, []).append(v)
        for g, vals in per_row.items():
            y_full[g] = float(np.median(vals))
        return self._span_multipliers(y_full)

    def _bounds_unchanged(self) -> bool:
        row_lb, row_ub = self.lm.row_bounds()
        col_lb, col_ub, _ = self.lm.col_bounds()
        return (np.array_equal(row_lb, self.row_lb) and np.array_equal(row_ub, self.row_ub)
                and np.array_equal(col_lb, self.col_lb0) and np.array_equal(col_ub, self.col_ub0))

    def _run(self, blocks: list[_Block], cost_full: np.ndarray, time_limit_s: float):
        """One pass over `blocks`, split round-robin over the threads."""
        if self.threads <= 1:
            return _run_pass(blocks, cost_full, time_limit_s)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads)
        parts = [blocks[k::self.threads] for k in range(self.threads)]
        results = list(self._pool.map(lambda part: _run_pass(part, cost_full, time_limit_s), parts))
        failed = next((f for f, _ in results if f), "")
        return failed, sorted((r for _, rs in results for r in rs), key=lambda r: r[0].index)

    def _feasible(self, x: np.ndarray, activity: np.ndarray) -> bool:
        """The joined solution against the full LP, to HiGHS's tolerance relative to each row's size."""
        scale = np.maximum(1.0, self._abs_A @ np.abs(x))
        bad_r = np.flatnonzero((activity < self.row_lb - PRIMAL_TOL * scale) | (activity > self.row_ub + PRIMAL_TOL * scale))
        tol_c = PRIMAL_TOL * np.maximum(1.0, np.abs(x))
        bad_c = np.flatnonzero((x < self.col_lb0 - tol_c) | (x > self.col_ub0 + tol_c))
        if len(bad_r) or len(bad_c):
            self.last_failure = f"joined solution infeasible: rows {bad_r[:5].tolist()}, columns {bad_c[:5].tolist()}"
            return False
        return True

    def _lower_bound(self, block_objectives: list[float], y_span: np.ndarray) -> float:
        """The Lagrangian bound: the block optima with the spanning and global rows priced at `y_span`,
        plus those rows' terms and the terms of columns no block owns."""
        lm = self.lm
        _, term = row_terms(y_span, self.row_lb[self.span_rows], self.row_ub[self.span_rows])
        d_glob = lm.cost[self.global_cols] + self._lagrangian_adjust(y_span)[self.global_cols]
        col = col_terms(d_glob, self.col_lb[self.global_cols], self.col_ub[self.global_cols])
        if not np.all(np.isfinite(col)):
            return -np.inf
        return float(lm.cost_offset + sum(block_objectives) + term.sum() + col.sum())


def _run_pass(blocks: list[_Block], cost_full: np.ndarray, time_limit_s: float):
    """Push costs and re-solve each block of one pass. Returns (failure text or "", [(block, x, y, obj)])."""
    out = []
    for blk in blocks:
        new = cost_full[blk.cols[blk.owned_pos]]
        changed = np.flatnonzero(new != blk.cost[blk.owned_pos])
        if len(changed):
            idx = blk.owned_pos[changed]
            blk.cost[idx] = new[changed]
            blk.h.changeColsCost(len(idx), idx.astype(np.int32), blk.cost[idx])
        # after a cost change alone the basis stays primal feasible: primal simplex; after a rebase (bounds
        # moved too) neither side is feasible, so HiGHS chooses
        blk.h.setOptionValue("simplex_strategy", 0 if blk.rebased else 4)
        blk.rebased = False
        blk.h.setOptionValue("time_limit", float(blk.h.getRunTime()) + float(time_limit_s))
        blk.h.run()
        if blk.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return f"block {blk.index}: {blk.h.modelStatusToString(blk.h.getModelStatus())}", out
        sol = blk.h.getSolution()
        out.append((blk, np.asarray(sol.col_value), np.asarray(sol.row_dual),
                    float(blk.h.getInfo().objective_function_value)))
    return "", out


def _scatter(n: int, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros(n)
    out[idx] = values
    return out


@dataclass
class _Block:
    index: int
    h: highspy.Highs
    rows: np.ndarray  # full-model rows of this block (its budget rows follow them in the block LP)
    cols: np.ndarray  # full-model columns in the block LP
    free: np.ndarray  # full-model columns the block decides (not held)
    free_pos: np.ndarray  # their positions in `cols`
    owned_pos: np.ndarray  # positions in `cols` of the columns this block owns (costed)
    cost: np.ndarray  # the block LP's current cost vector
    budget: tuple | None = None  # held pass: (coefficients, global rows, owned columns) of its budget rows
    rebased: bool = False  # bounds moved by `rebase`: the next re-solve lets HiGHS choose the simplex
