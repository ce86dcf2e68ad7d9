"""KPIs of a site power time series: ramp rates, 15-minute peak demand, load factor, swing energy by
frequency band, and peak-to-peak swings. Pure numpy/scipy on a 1-D series p_kw sampled every dt_s seconds."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d
from scipy.signal import welch

BANDS_HZ = ((0.1, 2.0), (3.0, 30.0))  # bands named by arXiv 2508.14318 (utility oscillation limits)


def _series(p_kw, dt_s: float) -> np.ndarray:
    p = np.asarray(p_kw, dtype=np.float64)
    if p.ndim != 1 or len(p) < 2:
        raise ValueError("p_kw must be a 1-D series of at least two samples")
    if not dt_s > 0:
        raise ValueError(f"dt_s must be positive, got {dt_s}")
    return p


def ramp_rates(p_kw, dt_s: float) -> dict[str, float]:
    """Ramp rates of the series.

    Native step: largest rise and fall in MW/s (falls reported as positive numbers) and p50/p95/p99 of |ramp|.
    Minute scale: differences over 60 s (rolling, when dt_s <= 60 s and divides 60 s to the nearest sample;
    for coarser steps the native difference is scaled to MW/min)."""
    p = _series(p_kw, dt_s) / 1000.0
    step = np.diff(p) / dt_s
    minute = minute_ramps_mw_min(p_kw, dt_s)
    out = {
        "ramp_up_max_mw_s": float(max(0.0, step.max())),
        "ramp_down_max_mw_s": float(max(0.0, -step.min())),
        "ramp_up_max_mw_min": float(max(0.0, minute.max())),
        "ramp_down_max_mw_min": float(max(0.0, -minute.min())),
    }
    for q in (50, 95, 99):
        out[f"ramp_abs_p{q}_mw_s"] = float(np.percentile(np.abs(step), q))
        out[f"ramp_abs_p{q}_mw_min"] = float(np.percentile(np.abs(minute), q))
    return out


def minute_ramps_mw_min(p_kw, dt_s: float) -> np.ndarray:
    """The minute-scale ramps of `ramp_rates`, MW/min: 60 s rolling differences when dt_s <= 60 s (to the nearest
    sample), else the native difference scaled to MW/min; one zero for a series shorter than the lag (nothing
    ramps within it). The report's ramp histogram uses this too, so it shows the KPI's own distribution."""
    if not dt_s > 0:
        raise ValueError(f"dt_s must be positive, got {dt_s}")
    p = np.asarray(p_kw, dtype=np.float64) / 1000.0
    lag = max(1, int(round(60.0 / dt_s))) if dt_s <= 60.0 else 1
    if p.ndim != 1 or len(p) <= lag:
        return np.zeros(1)
    return (p[lag:] - p[:-lag]) / (lag * dt_s / 60.0)


def welch_psd_mw2_hz(p_kw, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density of the linearly detrended series in MW^2/Hz (Hann windows of up to 600 s,
    half overlap): the estimator behind `band_energy` and the report's swing spectrum."""
    p = _series(p_kw, dt_s) / 1000.0
    nperseg = int(min(len(p), max(16, round(600.0 / dt_s))))
    return welch(p, fs=1.0 / dt_s, window="hann", nperseg=nperseg, detrend="linear", scaling="density")


def block_means_kw(p_kw, dt_s: float, window_s: float = 900.0, t0_s: float = 0.0) -> np.ndarray:
    """Averages over clock-aligned blocks [k*window_s, (k+1)*window_s); sample n sits at t0_s + n*dt_s.

    t0_s is the clock time of the first sample (s after midnight, or after any block boundary). Blocks cut by
    the ends of the series average the samples they have. Steps coarser than the window give their own value."""
    p = _series(p_kw, dt_s)
    block = np.floor((t0_s + np.arange(len(p)) * dt_s) / window_s + 1e-9).astype(np.int64)
    block -= block[0]
    sums = np.bincount(block, weights=p)
    counts = np.bincount(block)
    return sums[counts > 0] / counts[counts > 0]


def peak_demand_kw(p_kw, dt_s: float, window_s: float = 900.0, t0_s: float = 0.0) -> float:
    """Peak demand: the largest clock-aligned window_s average (15 minutes by default), kW."""
    return float(block_means_kw(p_kw, dt_s, window_s, t0_s).max())


def load_factor(p_kw, dt_s: float, window_s: float = 900.0, t0_s: float = 0.0) -> float:
    """Mean power over the 15-minute peak demand (1 = flat)."""
    p = _series(p_kw, dt_s)
    peak = peak_demand_kw(p, dt_s, window_s, t0_s)
    return float(p.mean() / peak) if peak > 0 else float("nan")


def band_energy(p_kw, dt_s: float, bands=BANDS_HZ) -> dict[tuple[float, float], float]:
    """Spectral energy of the linearly detrended series in each frequency band, MW^2.

    Integral of the Welch power spectral density (Hann windows of up to 600 s, half overlap) over
    lo <= f <= hi; the energies of all bands sum to the variance of the series. A band whose lower edge
    lies at or above the Nyquist frequency 1/(2 dt_s) cannot be seen at this step and returns NaN; a band
    that straddles Nyquist is integrated up to Nyquist only. A band narrower than the frequency resolution
    (1 / segment length) may hold no bin and returns 0."""
    f, psd = welch_psd_mw2_hz(p_kw, dt_s)
    df = f[1] - f[0]
    nyquist = 0.5 / dt_s
    out = {}
    for lo, hi in bands:
        if lo >= nyquist:
            out[(lo, hi)] = float("nan")
            continue
        sel = (f >= lo) & (f <= hi)
        out[(lo, hi)] = float(psd[sel].sum() * df)
    return out


def swing_mw(p_kw, dt_s: float, window_s: float) -> float:
    """Largest max - min within any window of window_s seconds (window_s/dt_s + 1 samples), MW."""
    p = _series(p_kw, dt_s) / 1000.0
    n = int(np.floor(window_s / dt_s + 1e-9)) + 1
    if n < 2:
        return 0.0
    n = min(n, len(p))
    # trailing windows: origin shifts the filter so sample i covers [i - n + 1, i]
    hi = maximum_filter1d(p, n, mode="nearest", origin=(n - 1) // 2)
    lo = minimum_filter1d(p, n, mode="nearest", origin=(n - 1) // 2)
    return float((hi - lo).max())
