"""Vectorised psychrometrics for moist air (numpy in, numpy out).

Method: ASHRAE Handbook - Fundamentals (2017), chapter 1 "Psychrometrics":

* saturation pressure over liquid water from the Hyland-Wexler formulation (ASHRAE eq. 6), used at all
  temperatures: relative humidity and dew point follow the WMO convention (with respect to liquid water),
  and the wet bulb below 0 degC is that of a supercooled wet wick (within a few tenths of a kelvin of the
  ice bulb; irrelevant to cooling plant, which cares about the warm tail);
* humidity ratio ``W = 0.621945 p_w / (p - p_w)`` (eq. 20);
* thermodynamic wet bulb from the psychrometric equation (eq. 33) solved by vectorised Newton iteration,
  started from Stull's (2011) empirical fit and safeguarded to stay within [dew point, dry bulb];
* standard-atmosphere station pressure from elevation (eq. 3).

All functions broadcast their arguments; temperatures in degC, pressures in Pa, RH in percent.
"""

from __future__ import annotations

import numpy as np

P_STD_PA = 101_325.0
EPS_MW = 0.621945  # ratio of molar masses water / dry air

# Hyland-Wexler coefficients over liquid water (ASHRAE 2017 Fundamentals ch. 1 eq. 6), T in K, p in Pa
_C8, _C9, _C10 = -5.8002206e3, 1.3914993, -4.8640239e-2
_C11, _C12, _C13 = 4.1764768e-5, -1.4452093e-8, 6.5459673
_T0_K = 273.15


def _ln_p_sat(t_k: np.ndarray) -> np.ndarray:
    return _C8 / t_k + _C9 + t_k * (_C10 + t_k * (_C11 + t_k * _C12)) + _C13 * np.log(t_k)


def _dln_p_sat_dt(t_k: np.ndarray) -> np.ndarray:
    return -_C8 / t_k**2 + _C10 + t_k * (2.0 * _C11 + 3.0 * _C12 * t_k) + _C13 / t_k


def p_sat_pa(t_c):
    """Saturation vapour pressure over liquid water [Pa] at temperature ``t_c`` [degC] (Hyland-Wexler)."""
    return np.exp(_ln_p_sat(np.asarray(t_c, dtype=float) + _T0_K))


def station_pressure_pa(elevation_m):
    """Standard-atmosphere station pressure [Pa] at ``elevation_m`` above sea level (ASHRAE eq. 3)."""
    z = np.asarray(elevation_m, dtype=float)
    return P_STD_PA * (1.0 - 2.25577e-5 * z) ** 5.2559


def humidity_ratio_kg_kg(p_w_pa, p_atm_pa=P_STD_PA):
    """Humidity ratio [kg water / kg dry air] from the partial pressure of water vapour."""
    p_w = np.asarray(p_w_pa, dtype=float)
    return EPS_MW * p_w / (np.asarray(p_atm_pa, dtype=float) - p_w)


def dew_point_c(t_dry_c, rh_pct):
    """Dew point [degC] from dry bulb [degC] and relative humidity [%] (w.r.t. liquid water).

    Inverts the Hyland-Wexler saturation curve by Newton iteration (converges to < 1e-9 K in 4 steps).
    RH is clipped to [1e-3, 100] %.
    """
    t_dry = np.asarray(t_dry_c, dtype=float)
    rh = np.clip(np.asarray(rh_pct, dtype=float), 1e-3, 100.0)
    target = _ln_p_sat(t_dry + _T0_K) + np.log(rh / 100.0)
    return _invert_ln_p_sat(target)


def _invert_ln_p_sat(ln_p_w: np.ndarray) -> np.ndarray:
    # Magnus start, then Newton on the Hyland-Wexler curve
    g = ln_p_w - np.log(611.2)
    t_k = 243.12 * g / (17.62 - g) + _T0_K
    for _ in range(4):
        t_k = t_k - (_ln_p_sat(t_k) - ln_p_w) / _dln_p_sat_dt(t_k)
    return t_k - _T0_K


def relative_humidity_pct(t_dry_c, t_dew_c):
    """Relative humidity [%] (w.r.t. liquid water) from dry bulb and dew point [degC]."""
    t_dry = np.asarray(t_dry_c, dtype=float) + _T0_K
    t_dew = np.asarray(t_dew_c, dtype=float) + _T0_K
    return 100.0 * np.exp(_ln_p_sat(t_dew) - _ln_p_sat(t_dry))


def _stull_wet_bulb_c(t_c: np.ndarray, rh_pct: np.ndarray) -> np.ndarray:
    """Stull (2011) empirical wet bulb at sea level; only the starting guess for Newton."""
    rh = np.clip(rh_pct, 5.0, 99.0)
    return (
        t_c * np.arctan(0.151977 * np.sqrt(rh + 8.313659))
        + np.arctan(t_c + rh)
        - np.arctan(rh - 1.676331)
        + 0.00391838 * rh**1.5 * np.arctan(0.023101 * rh)
        - 4.686035
    )


def wet_bulb_c(t_dry_c, *, rh_pct=None, t_dew_c=None, p_atm_pa=P_STD_PA, tol_k: float = 1e-6):
    """Thermodynamic wet-bulb temperature [degC].

    Give the humidity either as ``rh_pct`` or as ``t_dew_c`` (dew point wins if both are given). Solves the
    ASHRAE psychrometric equation (Fundamentals 2017 ch. 1 eq. 33)::

        W = ((2501 - 2.326 t*) W_s(t*) - 1.006 (t - t*)) / (2501 + 1.86 t - 4.186 t*)

    for ``t*`` by vectorised Newton iteration with an analytic derivative, bracketed by [dew point, dry bulb].
    Saturated air returns ``t* = t`` exactly.
    """
    t = np.asarray(t_dry_c, dtype=float)
    p = np.asarray(p_atm_pa, dtype=float)
    if t_dew_c is not None:
        t_dew = np.minimum(np.asarray(t_dew_c, dtype=float), t)
        rh = relative_humidity_pct(t, t_dew)
    elif rh_pct is not None:
        rh = np.clip(np.asarray(rh_pct, dtype=float), 1e-3, 100.0)
        t_dew = dew_point_c(t, rh)
    else:
        raise TypeError("wet_bulb_c needs rh_pct or t_dew_c")
    t, t_dew, rh, p = np.broadcast_arrays(t, t_dew, rh, p)
    w = humidity_ratio_kg_kg(p_sat_pa(t_dew), p)

    lo, hi = t_dew.copy(), t.copy()
    ts = np.clip(_stull_wet_bulb_c(t, rh), lo, hi)
    for _ in range(30):
        ps = p_sat_pa(ts)
        ws = EPS_MW * ps / (p - ps)
        num = (2501.0 - 2.326 * ts) * ws - 1.006 * (t - ts)
        den = 2501.0 + 1.86 * t - 4.186 * ts
        f = num / den - w  # increasing in ts
        # derivative of num/den w.r.t. ts
        dws = ws * (p / (p - ps)) * _dln_p_sat_dt(ts + _T0_K)
        dnum = -2.326 * ws + (2501.0 - 2.326 * ts) * dws + 1.006
        df = (dnum * den + 4.186 * num) / den**2
        # keep a bracket so Newton can never leave [t_dew, t]
        lo = np.where(f < 0, ts, lo)
        hi = np.where(f > 0, ts, hi)
        step = f / df
        new = ts - step
        bad = ~((new > lo) & (new < hi))
        new = np.where(bad, 0.5 * (lo + hi), new)
        done = np.abs(new - ts) < tol_k
        ts = new
        if np.all(done):
            break
    return ts
