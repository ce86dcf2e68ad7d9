"""Jobs -> mean power per GPU of each job over time (job x time), at sub-second or hourly steps.

Every quantity is the exact average over its step [t_n, t_n+1) of an idealised waveform, taken from closed-form
cumulative integrals (iteration square wave, checkpoint windows, downtime after failures and the ramps). One
model therefore serves both time scales: at 0.1 s steps the iterations show, at hourly steps they average out
and only the swing envelope (min/max within the step) is reported.

Per GPU, in fractions of TDP (pu):   p = a*w + (1 - a - o)*idle_in_job + o*idle
  w     work level: checkpoint share c at p_checkpoint, else compute/comm square wave (compute share d)
  a     share of the step the job runs (0 before start, during recovery after a failure, after end; ramps between)
  o     share of the step outside the job's [start, end) window (GPUs idle, no power floor)
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from twin.errors import InputError
from twin.schema.workload import InferenceJob, Job, Mitigations, TrainingJob

GPU_POWER_LAG_S = 0.05  # first-order lag of the GPU power controller (assumed; only used when resolving)
_CALLER = "twin.sim.workload.job_power_w"
# Inference noise is drawn per step of the scenario clock, in fixed blocks, so any window of a run sees the
# same noise as the whole run; its AR(1) filter starts NOISE_WARMUP_TAU time constants before the window
# (memory e^-12 of the stationary start), at most NOISE_WARMUP_MAX_STEPS steps.
NOISE_BLOCK_STEPS = 4096
NOISE_WARMUP_TAU = 12.0
NOISE_WARMUP_MAX_STEPS = 1_000_000
_NOISE_INDEX_OFFSET = 1 << 40  # block numbers go negative in the warm-up before the scenario start


@dataclass(frozen=True)
class WorkloadPower:
    """Per-job power of one GPU, job x time, float32. Multiply by the job's GPU count for the job's power."""

    time_s: np.ndarray  # (time,) step starts, s from the scenario start
    p_gpu_w: np.ndarray  # (job, time) mean power per GPU over the step, W
    active_pu: np.ndarray  # (job, time) share of the step the job's GPUs run the job (not idle/recovering)
    n_failures: np.ndarray  # (job,) interruptions that start inside the simulated window
    p_gpu_min_w: np.ndarray | None = None  # (job, time) lowest power within the step, W (not resolving only)
    p_gpu_max_w: np.ndarray | None = None  # (job, time) highest power within the step, W (not resolving only)


def job_power_w(
    jobs: Sequence[Job],
    time_s: np.ndarray,
    gpu_tdp_w: np.ndarray,
    gpu_idle_w: np.ndarray,
    mitigations: Mitigations | None = None,
    resolve: bool = False,
    *,
    t0_local_h: float = 0.0,
) -> WorkloadPower:
    """Mean power per GPU of each job at each step.

    time_s: increasing step starts (s from the scenario start); the last step is as long as the one before.
    gpu_tdp_w, gpu_idle_w: per job, from the catalog. resolve=True needs uniform steps (e.g. 0.1 s) and
    returns the waveform (iterations, GPU power lag, ramp limiter); resolve=False returns step averages and the
    min/max envelope within each step. t0_local_h: local clock hour at time_s = 0 (inference daily cycle).
    """
    t, edges = _check_time(time_s, resolve)
    tdp = np.asarray(gpu_tdp_w, dtype=np.float64).reshape(-1)
    idle = np.asarray(gpu_idle_w, dtype=np.float64).reshape(-1)
    if not (len(tdp) == len(idle) == len(jobs)):
        raise InputError.one(
            _CALLER, "gpu_tdp_w/gpu_idle_w", f"one value per job ({len(jobs)}), got {len(tdp)}/{len(idle)}"
        )
    if np.any(tdp <= 0) or np.any(idle < 0) or np.any(idle > tdp):
        raise InputError.one(_CALLER, "gpu_idle_w", "0 <= idle <= TDP and TDP > 0 for every job")
    mit = mitigations or Mitigations()
    n_job, n_t = len(jobs), len(t)
    p = np.empty((n_job, n_t), np.float32)
    active = np.ones((n_job, n_t), np.float32)
    lo = None if resolve else np.empty((n_job, n_t), np.float32)
    hi = None if resolve else np.empty((n_job, n_t), np.float32)
    n_fail = np.zeros(n_job, np.int64)
    idle_pu = idle / tdp

    train = [i for i, j in enumerate(jobs) if isinstance(j, TrainingJob)]
    infer = [i for i, j in enumerate(jobs) if isinstance(j, InferenceJob)]
    if train:
        ix = np.array(train)
        out = _training([jobs[i] for i in train], edges, idle_pu[ix], mit, resolve)
        p[ix], active[ix], n_fail[ix] = out[0], out[1], out[2]
        if not resolve:
            lo[ix], hi[ix] = out[3], out[4]
    if infer:
        ix = np.array(infer)
        out = _inference([jobs[i] for i in infer], edges, idle_pu[ix], mit, t0_local_h)
        p[ix] = out[0]
        if not resolve:
            lo[ix], hi[ix] = out[1], out[2]

    if resolve and n_job:
        h = float(edges[1] - edges[0])
        if mit.gpu_ramp_limit_pu_s is not None:
            p = rate_limit(p, mit.gpu_ramp_limit_pu_s * h)
        p = first_order_lag(p, h, GPU_POWER_LAG_S)
    scale = tdp.astype(np.float32)[:, None]
    return WorkloadPower(
        time_s=t,
        p_gpu_w=p * scale,
        active_pu=active,
        n_failures=n_fail,
        p_gpu_min_w=None if resolve else lo * scale,
        p_gpu_max_w=None if resolve else hi * scale,
    )


def _check_time(time_s: np.ndarray, resolve: bool) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(time_s, dtype=np.float64)
    if t.ndim != 1 or len(t) < 2:
        raise InputError.one(_CALLER, "time_s", "a 1-D array of at least two step starts")
    dt = np.diff(t)
    if np.any(dt <= 0):
        raise InputError.one(_CALLER, "time_s", "strictly increasing times")
    if resolve and not np.allclose(dt, dt[0], rtol=1e-6, atol=1e-9):
        raise InputError.one(_CALLER, "time_s", "uniform steps when resolve=True")
    return t, np.append(t, t[-1] + dt[-1])


# ---------------------------------------------------------------- training


def _training(jobs, edges, idle_pu, mit: Mitigations, resolve: bool):
    """Step averages (pu of TDP) for training jobs; with the envelope when not resolving."""
    col = lambda name: np.array([getattr(j, name) for j in jobs], np.float64)[:, None]  # noqa: E731
    h = np.diff(edges)
    period, duty = col("iteration_s"), col("compute_fraction_pu")
    start = col("start_s")
    rngs = [_rng(j.seed, j.name) for j in jobs]
    phase = np.array([r[0].random() for r in rngs])[:, None]  # random place in the iteration at the start

    # compute share of each step (iteration square wave) and checkpoint share (windows ending at start + k*interval)
    d = _step_share(edges, h, period, duty * period, start - phase * period)
    ck_len = col("checkpoint_duration_s")
    c = _step_share(edges, h, col("checkpoint_interval_s"), ck_len, start - ck_len)

    n_t = len(h)
    run = np.empty((len(jobs), n_t), np.float32)
    out_share = np.empty((len(jobs), n_t), np.float32)
    n_fail = np.zeros(len(jobs), np.int64)
    for k, job in enumerate(jobs):  # loop over jobs (ragged failure lists), each vectorised over time
        fails = _failure_times(job, rngs[k][1], edges[-1])
        n_fail[k] = np.count_nonzero((fails >= edges[0]) & (fails < edges[-1]))
        run[k], out_share[k] = _activity(job, fails, edges, h)

    filler, floor = mit.filler_load_pu, mit.gpu_power_floor_pu
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731  levels, (job, 1)
    top = f32(_lift(col("p_compute_pu"), filler, floor))  # compute level
    bot = f32(_lift(col("p_comm_pu"), filler, floor))  # communication level
    ck = f32(_lift(col("p_checkpoint_pu"), filler, floor))
    idle_in = f32(_lift(idle_pu[:, None], None, floor))  # the floor holds while the job owns its GPUs
    idle_out = f32(idle_pu[:, None])

    # float32 from here on, in place: a year of 200 jobs is 7 MB per array
    p = d * (top - bot)  # iteration level, step average
    if resolve:
        p += bot
        p = _lift(p, filler, floor)  # step values; ramp limit and lag come later
    else:
        mean, cyc_lo, cyc_hi = cycle_stats(
            top, bot, duty * period, (1 - duty) * period, mit.gpu_ramp_limit_pu_s
        )
        p += f32(bot + mean - (bot + (top - bot) * duty))  # exact d, plus the shift a ramp limit makes
    tmp = ck - p
    tmp *= c
    p += tmp  # work level w = c*ck + (1 - c)*iteration
    p *= run
    down = 1.0 - run
    down -= out_share
    np.clip(down, 0.0, 1.0, out=down)
    np.multiply(down, idle_in, out=tmp)
    p += tmp
    np.multiply(out_share, idle_out, out=tmp)
    p += tmp  # p = run*w + down*idle_in + out*idle_out
    if resolve:
        return p, run, n_fail

    eps = 1e-6
    lo = np.full(p.shape, np.inf, np.float32)
    hi = np.full(p.shape, -np.inf, np.float32)
    present = [
        ((run > eps) & (c < 1 - eps), cyc_lo, cyc_hi),
        ((run > eps) & (c > eps), ck, ck),
        (down > eps, idle_in, idle_in),
        (out_share > eps, idle_out, idle_out),
    ]
    for mask, lev_lo, lev_hi in present:
        np.minimum(lo, f32(lev_lo), out=lo, where=mask)
        np.maximum(hi, f32(lev_hi), out=hi, where=mask)
    return p, run, n_fail, lo, hi


def _step_share(edges, h, period, on, offset):
    """Share of each step inside windows [offset + k*period, offset + k*period + on), all integers k.

    Uses the antiderivative floor(y/period)*on + min(y mod period, on), valid for any sign of y. Float64 here:
    a year is 3e7 s and the difference of two such numbers must resolve 0.1 s."""
    y = edges[None, :] - offset
    q = np.floor(y / period)
    y -= q * period
    np.minimum(y, on, out=y)
    q *= on
    y += q
    share = np.diff(y, axis=1)
    share /= h
    return share.astype(np.float32)


def _lift(level, filler, floor):
    """Filler work and the GPU power floor raise a level; they never lower it."""
    if filler is not None:
        level = np.maximum(level, filler)
    if floor is not None:
        level = np.maximum(level, floor)
    return level


def cycle_stats(top, bot, t_top, t_bot, ramp_pu_s):
    """Steady-state mean, min, max of a square wave (top for t_top, bot for t_bot) behind a symmetric ramp limit.

    Without a limit: the duty-weighted mean and the two levels. With limit r: if r*min(t_top, t_bot) covers the
    step top-bot the wave becomes a trapezoid with the same mean; otherwise it saturates at the level held
    longer and swings r times the shorter phase away from it (mean shifts by r*t_short^2/period)."""
    period = t_top + t_bot
    mean = (top * t_top + bot * t_bot) / period
    lo, hi = np.minimum(top, bot), np.maximum(top, bot)
    if ramp_pu_s is None:
        return mean, lo, hi
    upper_longer = np.where(top >= bot, t_top, t_bot) >= np.where(top >= bot, t_bot, t_top)
    t_short = np.minimum(t_top, t_bot)
    swing = ramp_pu_s * t_short
    limited = swing < hi - lo
    shift = ramp_pu_s * t_short**2 / period
    mean = np.where(limited, np.where(upper_longer, hi - shift, lo + shift), mean)
    new_lo = np.where(limited & upper_longer, hi - swing, lo)
    new_hi = np.where(limited & ~upper_longer, lo + swing, hi)
    return mean, new_lo, new_hi


def _rng(seed: int, name: str) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent streams (phase, failures) fixed by the seed and the job name, not by the job order."""
    base = [seed & 0xFFFFFFFF, zlib.crc32(name.encode())]
    return np.random.default_rng([*base, 0]), np.random.default_rng([*base, 1])


def _failure_times(job: TrainingJob, rng: np.random.Generator, t_end: float) -> np.ndarray:
    """Poisson interruptions from the job start on (rate = per-GPU rate x GPUs), until the end ramp or t_end.

    Drawn from the job start whatever the window, so any window of the same job sees the same failures."""
    rate_s = job.failure_rate_per_gpu_h * job.gpus / 3600.0
    horizon = t_end if job.end_s is None else min(t_end, job.end_s - job.ramp_s)
    span = horizon - job.start_s
    if rate_s <= 0 or span <= 0:
        return np.empty(0)
    expected = rate_s * span
    times = job.start_s + np.cumsum(rng.exponential(1.0 / rate_s, int(expected + 6 * np.sqrt(expected) + 16)))
    while times[-1] < horizon:  # rare: draw more from the same stream (its prefix stays the same)
        more = rng.exponential(1.0 / rate_s, len(times))
        times = np.concatenate([times, times[-1] + np.cumsum(more)])
    return times[times < horizon]


def _activity(job: TrainingJob, fails: np.ndarray, edges: np.ndarray, h: np.ndarray):
    """Share of each step the job runs, and share outside [start, end). Deficit = 1 - running, integrated.

    Units are a down interval (before the start, or recovery after a failure; overlapping ones merge) followed
    by a linear ramp back to full load that the next failure may cut short; the end ramp goes down to idle."""
    ramp = job.ramp_s
    start, end = job.start_s, job.end_s
    fails = fails[fails + job.recovery_s + ramp > edges[0] - 1.0]  # earlier failures no longer matter
    s = np.concatenate([[min(edges[0], start) - 1.0], fails])
    e = np.concatenate([[start], fails + job.recovery_s])
    reach = np.maximum.accumulate(e)
    new = np.concatenate([[True], s[1:] > reach[:-1]])
    last = np.concatenate([new[1:], [True]])
    gs, ge = s[new], reach[last]
    r = np.minimum(ramp, np.append(gs[1:] - ge[:-1], ramp))
    if end is not None:
        cut = end - ramp
        keep = gs < cut
        gs, ge, r = gs[keep], np.minimum(ge[keep], cut), r[keep]
        r = np.clip(np.minimum(r, cut - ge), 0.0, None)
    ramp_safe = max(ramp, 1e-12)
    total = (ge - gs) + r - r**2 / (2 * ramp_safe)
    cum_total = np.concatenate([[0.0], np.cumsum(total)])
    idx = np.searchsorted(gs, edges, side="right") - 1
    ii = np.clip(idx, 0, None)
    u_down = np.clip(edges - gs[ii], 0.0, ge[ii] - gs[ii])
    u_ramp = np.clip(edges - ge[ii], 0.0, r[ii])
    deficit = np.where(idx >= 0, cum_total[ii] + u_down + u_ramp - u_ramp**2 / (2 * ramp_safe), 0.0)
    outside = np.minimum(edges, start)  # antiderivative of the indicator of t < start
    if end is not None:
        u = np.clip(edges - (end - ramp), 0.0, ramp)
        deficit += u**2 / (2 * ramp_safe) + np.maximum(edges - end, 0.0)
        outside = outside + np.maximum(edges - end, 0.0)
    run = np.clip(1.0 - np.diff(deficit) / h, 0.0, 1.0)
    return run, np.clip(np.diff(outside) / h, 0.0, 1.0)


# ---------------------------------------------------------------- inference


def _inference(jobs, edges, idle_pu, mit: Mitigations, t0_local_h: float):
    """Daily cosine (exact step average) plus first-order (Ornstein-Uhlenbeck) noise averaged over the step."""
    col = lambda name: np.array([getattr(j, name) for j in jobs], np.float64)[:, None]  # noqa: E731
    h = np.diff(edges)
    omega = 2 * np.pi / 86400.0
    phi = omega * (t0_local_h * 3600.0 - col("peak_hour") * 3600.0)
    sin_edges = np.sin(omega * edges[None, :] + phi)
    cos_mean = np.diff(sin_edges, axis=1) / (omega * h)
    w = col("p_mean_pu") + col("daily_amplitude_pu") * cos_mean

    h_mean = float(np.mean(h))
    tau, sigma = col("noise_tau_s"), col("noise_pu")
    x = h_mean / tau
    # std of the mean of an OU process over a step of length h: sigma * sqrt(2 (x - 1 + e^-x)) / x
    sigma_step = sigma * np.sqrt(2 * (x - 1 + np.exp(-x))) / x
    rho = np.exp(-x)
    noise = np.empty_like(w)
    i0 = int(round(edges[0] / h_mean))  # the first step's number on the scenario clock
    for k, job in enumerate(jobs):  # per job: its own seeded stream; the AR(1) runs in C (lfilter)
        warm = int(min(np.ceil(NOISE_WARMUP_TAU / x[k, 0]), NOISE_WARMUP_MAX_STEPS))
        eps = _normals_at(job, i0 - warm, w.shape[1] + warm)
        gain = float(np.sqrt(1 - rho[k, 0] ** 2))
        noise[k] = lfilter([gain], [1.0, -rho[k, 0]], eps, zi=[eps[0] * (1.0 - gain)])[0][warm:]
    w = np.clip(w + sigma_step * noise, idle_pu[:, None], 1.0)
    w = _lift(w, mit.filler_load_pu, mit.gpu_power_floor_pu)
    lo = _lift(np.clip(w - 2 * sigma, idle_pu[:, None], 1.0), mit.filler_load_pu, mit.gpu_power_floor_pu)
    hi = np.clip(w + 2 * sigma, 0.0, 1.0)
    return w.astype(np.float32), lo.astype(np.float32), hi.astype(np.float32)


def _normals_at(job, first: int, count: int) -> np.ndarray:
    """Standard normals of steps first .. first + count - 1 of the scenario clock: one seeded stream per block
    of NOISE_BLOCK_STEPS steps, so a step's value does not depend on where the simulated window starts."""
    b0, b1 = first // NOISE_BLOCK_STEPS, (first + count - 1) // NOISE_BLOCK_STEPS
    base = [job.seed & 0xFFFFFFFF, zlib.crc32(job.name.encode()), 2]
    eps = np.concatenate([np.random.default_rng([*base, b + _NOISE_INDEX_OFFSET]).standard_normal(NOISE_BLOCK_STEPS)
                          for b in range(b0, b1 + 1)])
    off = first - b0 * NOISE_BLOCK_STEPS
    return eps[off:off + count]


# ---------------------------------------------------------------- GPU-level filters (resolved steps)


def first_order_lag(p: np.ndarray, dt_s: float, tau_s: float) -> np.ndarray:
    """Exact discrete first-order lag along time (axis 1), starting settled at the first value."""
    alpha = 1.0 - np.exp(-dt_s / tau_s)
    zi = ((1.0 - alpha) * p[:, :1]).astype(p.dtype)
    return lfilter([alpha], [1.0, alpha - 1.0], p, axis=1, zi=zi)[0].astype(np.float32)


def rate_limit(p: np.ndarray, step_max: float, block: int = 512) -> np.ndarray:
    """Causal two-sided rate limiter along time (axis 1): y[n] = clip(p[n], y[n-1] - step_max, y[n-1] + step_max).

    The two-sided limiter has no closed form (one-sided it would be a cumulative min of p - r t), so time is cut
    into blocks that run side by side, each from a guessed start (its first input); a block's start is then set
    from the previous block's end and the blocks rerun until no block end changes. The result is then exact:
    every block starts where the one before ends. Trajectories of the limiter merge once they meet the input,
    so two or three passes of `block` steps usually do; a wave that never meets its input needs up to one pass
    per block (then about twice the cost of a plain loop over time)."""
    n_job, n_t = p.shape
    n_blk = -(-n_t // block)
    x = np.empty((n_blk * block, n_job), np.float32)
    x[:n_t] = p.T
    x[n_t:] = x[n_t - 1]  # padding after the end cannot change earlier values
    x = np.ascontiguousarray(x.reshape(n_blk, block, n_job).transpose(1, 0, 2))  # (step in block, block, job)
    y = np.empty_like(x)
    lo = np.empty_like(x[0])
    hi = np.empty_like(x[0])
    c = np.float32(step_max)
    # value before each block's first step; first guess: the block's own first input (exact for block 0)
    start = x[0].copy()
    for _ in range(n_blk + 1):  # after k passes the first k blocks are exact, so this always ends
        prev = start
        for n in range(block):
            np.subtract(prev, c, out=lo)
            np.add(prev, c, out=hi)
            np.maximum(x[n], lo, out=y[n])
            np.minimum(y[n], hi, out=y[n])
            prev = y[n]
        new_start = np.concatenate([x[0, :1], y[-1, :-1]])  # block b starts where block b-1 ends
        if np.array_equal(new_start, start):
            break
        start = new_start
    return np.ascontiguousarray(y.transpose(1, 0, 2).reshape(-1, n_job)[:n_t].T)
